"""The perception node's names and its per-frame timing record: one encode/decode pair that the node
(publishing ``~/timing``), the monitor (reading it) and the replay evaluation (reading a recording of
it) share, so no reader guesses which ``*_ms`` keys are stages.

On the wire (a diagnostic_msgs/KeyValue list, values as text): one ``<stage>_ms`` per pipeline
stage (plus ``postprocess_ms`` and ``total_ms``), the frame-level ``host_ms``, ``latency_ms``,
``stamp_age_ms``, ``camera_skew_ms``, the counts ``masked_cameras``, ``points``, ``detections``, and
``mode``: the sensors the frame ran on (full, camera_only, lidar_only; older recordings lack it: full).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.model import FULL, SENSOR_MODES

PERCEPTION_NODE = "bevfusion_perception"
MONITOR_NODE = "bevfusion_monitor"
PERCEPTION_NODE_PATH = f"/{PERCEPTION_NODE}"  # its fully qualified name with no namespace: its ~/ topics
TIMING_TOPIC = f"{PERCEPTION_NODE_PATH}/timing"

_FRAME_MS = ("host_ms", "latency_ms", "stamp_age_ms", "camera_skew_ms")
_COUNTS = ("masked_cameras", "points", "detections")


@dataclass(frozen=True)
class FrameTiming:
    stages_ms: dict[str, float]  # per stage name, plus "postprocess" and "total"
    host_ms: float  # numpy work on the CPU: runtime stages, decoding, publishing
    latency_ms: float  # from the frame being complete to its outputs published
    stamp_age_ms: float  # ROS clock at publication - the LiDAR stamp (sensor to output)
    camera_skew_ms: float  # the largest |image stamp - LiDAR stamp| in the frame
    masked_cameras: int  # by the sync policy or because the image could not be decoded
    points: int
    detections: int
    mode: str = FULL  # degraded when not full: a sensor was lost for this frame

    def encode(self) -> dict[str, float | int | str]:
        values: dict[str, float | int | str] = {f"{k}_ms": v for k, v in self.stages_ms.items()}
        values.update({k: getattr(self, k) for k in (*_FRAME_MS, *_COUNTS)})
        values["mode"] = self.mode
        return values

    @classmethod
    def decode(cls, values: Mapping[str, str | float | int]) -> FrameTiming:
        """From the key/value pairs of one timing status; a missing or non-numeric frame-level
        key is a MessageError naming it."""
        frame: dict[str, float] = {}
        for key in (*_FRAME_MS, *_COUNTS):
            if key not in values:
                msg = f"timing message has no '{key}' (keys: {', '.join(sorted(values)) or 'none'})"
                raise MessageError(msg)
            frame[key] = _number(key, values[key])
        stages = {k[:-3]: _number(k, v) for k, v in values.items() if k.endswith("_ms") and k not in _FRAME_MS}
        mode = str(values.get("mode", FULL))
        if mode not in SENSOR_MODES:
            msg = f"timing value 'mode' is {mode!r}; allowed: {', '.join(SENSOR_MODES)}"
            raise MessageError(msg)
        return cls(
            stages,
            frame["host_ms"],
            frame["latency_ms"],
            frame["stamp_age_ms"],
            frame["camera_skew_ms"],
            int(frame["masked_cameras"]),
            int(frame["points"]),
            int(frame["detections"]),
            mode,
        )


def _number(key: str, value: str | float | int) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        msg = f"timing value '{key}' is {value!r}, not a number"
        raise MessageError(msg) from None
