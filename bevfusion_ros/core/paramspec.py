"""Node parameters as data: one table per node (name, default, description, range or choices) that
the ROS layer declares as ROS parameters and the core validates once, each error naming the key and
what is allowed. Choices come from the module that owns them, so a new mode is added in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bevfusion_ros.core.errors import ConfigError


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive
    choices: tuple[str, ...] | None = None


def check_value(spec: ParamSpec, value: Any) -> Any:
    """``value`` converted to the type of ``spec.default`` (lists become tuples), or ConfigError."""
    default = spec.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"parameter '{spec.name}' must be true or false, got {value!r}")
        return value
    if isinstance(default, list):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"parameter '{spec.name}' must be a list of strings, got {value!r}")
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"parameter '{spec.name}' must hold non-empty strings, got {list(value)!r}")
        return tuple(value)
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter '{spec.name}' must be a number, got {value!r}")
        if isinstance(default, int) and int(value) != value:
            raise ConfigError(f"parameter '{spec.name}' must be an integer, got {value!r}")
        value = type(default)(value)
        if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
            lo, hi = spec.range
            raise ConfigError(f"parameter '{spec.name}' = {value} is outside the allowed range [{lo}, {hi}]")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"parameter '{spec.name}' must be a string, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"parameter '{spec.name}' = '{value}' is not one of: {', '.join(spec.choices)}")
    return value


def check_values(specs: Sequence[ParamSpec], values: Mapping[str, Any], what: str = "parameter") -> dict[str, Any]:
    """Every parameter of ``specs`` checked, missing ones at their defaults; unknown names fail."""
    known = {p.name for p in specs}
    unknown = sorted(set(values) - known)
    if unknown:
        msg = f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(p.name for p in specs)}"
        raise ConfigError(msg)
    return {p.name: check_value(p, values.get(p.name, p.default)) for p in specs}


def parse_override(text: str) -> tuple[str, Any]:
    """``NAME:=VALUE`` (the ros2 CLI's spelling of one parameter) -> (name, YAML-typed value)."""
    import yaml

    name, sep, value = text.partition(":=")
    if not sep or not name:
        msg = f"--param '{text}' must look like NAME:=VALUE"
        raise ConfigError(msg)
    return name, yaml.safe_load(value)
