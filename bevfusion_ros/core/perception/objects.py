"""The model's classes as Autoware sees them: the class-remap table of the node's ~/objects output
(autoware_perception_msgs/DetectedObjects), loaded and checked once at configure. Names, not the
message's numbers: the ROS layer resolves them on the message class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.yamlfile import load_yaml

# ObjectClassification's labels and DetectedObjectKinematics' orientation availabilities
AUTOWARE_LABELS = (
    "UNKNOWN", "CAR", "TRUCK", "BUS", "TRAILER", "MOTORCYCLE", "BICYCLE", "PEDESTRIAN", "ANIMAL", "HAZARD",
    "OVER_DRIVABLE", "UNDER_DRIVABLE",
)  # fmt: skip
ORIENTATIONS = ("UNAVAILABLE", "SIGN_UNKNOWN", "AVAILABLE")


@dataclass(frozen=True)
class ClassRemap:
    """Per model class (class_names order): its Autoware label and orientation availability."""

    labels: tuple[str, ...]
    orientations: tuple[str, ...]


def parse_class_remap(raw: Any, class_names: Sequence[str], where: str) -> ClassRemap:
    table = raw.get("classes") if isinstance(raw, Mapping) else None
    if not isinstance(table, Mapping):
        msg = f"{where}: needs a 'classes' mapping of model class -> {{label, orientation}}"
        raise ConfigError(msg)
    missing = [c for c in class_names if c not in table]
    if missing:
        msg = f"{where}: classes lacks the model's {', '.join(missing)} (every model class needs an Autoware label)"
        raise ConfigError(msg)
    labels, orientations = [], []
    for name in class_names:
        entry = table[name] if isinstance(table[name], Mapping) else {}
        label = str(entry.get("label", ""))
        orientation = str(entry.get("orientation", "AVAILABLE"))
        if label not in AUTOWARE_LABELS:
            msg = f"{where}: classes.{name}.label is {label!r}; allowed: {', '.join(AUTOWARE_LABELS)}"
            raise ConfigError(msg)
        if orientation not in ORIENTATIONS:
            msg = f"{where}: classes.{name}.orientation is {orientation!r}; allowed: {', '.join(ORIENTATIONS)}"
            raise ConfigError(msg)
        labels.append(label)
        orientations.append(orientation)
    return ClassRemap(tuple(labels), tuple(orientations))


def load_class_remap(path: Path | str, class_names: Sequence[str]) -> ClassRemap:
    return parse_class_remap(load_yaml(Path(path), "class remap", ConfigError), class_names, str(path))
