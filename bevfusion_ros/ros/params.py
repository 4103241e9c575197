"""ROS parameters <-> the core's PerceptionConfig: every entry of core.config.PARAMETERS is declared
with its description, type and range, so `ros2 param describe` shows them and rclpy refuses an
out-of-range value (with the name and the range) before the node ever reads it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.paramspec import ParamSpec
from bevfusion_ros.core.perception.config import PARAMETERS, PerceptionConfig, load_config


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, description=spec.description)
    default = spec.default
    if isinstance(default, bool):
        d.type = ParameterType.PARAMETER_BOOL
    elif isinstance(default, int):
        d.type = ParameterType.PARAMETER_INTEGER
        if spec.range is not None:
            d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    elif isinstance(default, float):
        d.type = ParameterType.PARAMETER_DOUBLE
        if spec.range is not None:
            d.floating_point_range = [FloatingPointRange(from_value=spec.range[0], to_value=spec.range[1])]
    elif isinstance(default, list):
        d.type = ParameterType.PARAMETER_STRING_ARRAY
    else:
        d.type = ParameterType.PARAMETER_STRING
    if spec.choices:
        d.additional_constraints = f"one of: {', '.join(spec.choices)}"
    return d


def declare(node: Node, specs: Sequence[ParamSpec] = PARAMETERS) -> None:
    """Declare every parameter of ``specs`` (default: the perception node's) on ``node``."""
    for spec in specs:
        if node.has_parameter(spec.name):
            continue
        default = spec.default
        if isinstance(default, list) and not default:
            # An empty list says nothing of its element type (rclpy would guess a byte array): declare
            # the type, then give it a typed empty value unless an override set one. Without a value,
            # `ros2 param dump` skips it and `ros2 param get` says "Parameter not set".
            node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, _descriptor(spec))
            try:
                node.get_parameter(spec.name)
            except ParameterUninitializedException:
                node.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY, [])])
            continue
        node.declare_parameter(spec.name, default, _descriptor(spec))


def refuse_unknown_overrides(node: Node) -> None:
    """A ``-p name:=value`` (or params-file entry) that names no declared parameter is a typo the node
    would otherwise ignore without a word: ConfigError naming it and listing the known names."""
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps them only privately
    unknown = sorted(name for name in overrides if not node.has_parameter(name))
    if unknown:
        known = sorted(node._parameters)  # rclpy has no public list of declared names
        msg = f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}"
        raise ConfigError(msg)


def read(node: Node) -> PerceptionConfig:
    """The validated config from the node's current parameter values (ConfigError names the key)."""
    return load_config(values(node, PARAMETERS))


def values(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    return {spec.name: _value(node, spec) for spec in specs}


def _value(node: Node, spec: ParamSpec) -> Any:
    value = node.get_parameter(spec.name).value
    if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
