"""The package's exception types. Messages are complete sentences that name the culprit."""

from __future__ import annotations


class BevFusionError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(BevFusionError):
    """A configuration value is missing or outside its allowed values."""


class MessageError(BevFusionError):
    """A sensor message is malformed or uses an encoding/layout this package cannot read."""


class BagError(BevFusionError):
    """A rosbag is missing, unreadable or lacks what the command needs."""


class DataError(BevFusionError):
    """A data set on disk (e.g. the nuScenes frame) is missing or inconsistent."""


class DependencyError(BevFusionError):
    """An optional package needed for the requested feature is not installed."""


class InputError(BevFusionError):
    """One frame's sensor input cannot be processed (wrong camera count, image size, empty cloud...)."""


class CalibrationError(BevFusionError):
    """Camera or LiDAR calibration is unusable (not a rigid transform, bad intrinsics, wrong count)."""


class BackendError(BevFusionError):
    """An inference backend failed to load a model or run it, or its model disagrees with the YAML."""
