"""The perception node's diagnostic tasks (diagnostic_updater adds the node's name in front):
  bevfusion_perception: inputs       per-topic rate (Hz) and silence (s); bad messages by cause
  bevfusion_perception: sync         frames made, masked per camera, stale/missing/backwards/duplicate
                                     stamps, frames replaced while the model was busy (dropped_busy)
  bevfusion_perception: processing   frames processed, total / host / latency p50 and p99 against the budget
  bevfusion_perception: sensor modes frames per mode (full, camera_only, lidar_only) and the changes
                                     between them; WARN while the newest frame ran without a sensor
  bevfusion_perception: output rate  diagnostic_updater's FrequencyStatus on published frames (while
                                     active: ERROR when none came in its window)
Each task reads the node's counters when the Updater runs; a node that is not active says so.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bevfusion_ros.core.model import FULL, SENSOR_MODES
from bevfusion_ros.ros import diagnostics

if TYPE_CHECKING:  # the node imports this module
    from bevfusion_ros.ros.perception_node import PerceptionNode

INPUT_PROBLEMS = (
    "bad_image",
    "bad_camera_info",
    "bad_header",
    "zero_stamp",
    "frame_dropped_MessageError",
    "lidar_capped",  # frames whose sweep had more voxels or points per voxel than the model's caps
    "sweeps_without_pose",  # multi-sweep frames that left past sweeps out: no TF at their stamps
    "implausible_ego_motion",  # ... or a TF that jumps faster than a vehicle moves, or is not rigid
    "stamp_in_future",  # frames refused: stamped over 1 s ahead of the node's clock
)
OUTPUT_RATE = "output rate"
# FrequencyStatus counts over this many Updater periods
OUTPUT_RATE_WINDOW = 5


def tasks(node: PerceptionNode) -> dict[str, Any]:
    return {
        "inputs": lambda stat: inputs(node, stat),
        "sync": lambda stat: sync(node, stat),
        "processing": lambda stat: processing(node, stat),
        "sensor modes": lambda stat: sensor_modes(node, stat),
    }


def output_rate() -> Any:
    """Any output in the window is OK: the rate a 2-core replay or an Orin reaches is the monitor's
    judgement (``min_fps``); this task catches a node that is active and publishes nothing."""
    from diagnostic_updater import FrequencyStatus, FrequencyStatusParam

    return FrequencyStatus(FrequencyStatusParam({"min": 0.0}, 0.0, OUTPUT_RATE_WINDOW), OUTPUT_RATE)


def inputs(node: PerceptionNode, stat: Any) -> Any:
    cfg, subscribed = node.cfg, node.inputs
    if cfg is None or subscribed is None:
        return diagnostics.fill(stat, diagnostics.WARN, "not subscribed: the node is not active", {})
    now = time.monotonic()
    problems = dict(node.problems.counts)
    values: dict[str, Any] = {}
    silent: list[str] = []
    for topic, meter in subscribed.rates.items():
        age = meter.last_age(now)
        values[f"{topic} Hz"] = meter.rate(now)
        values[f"{topic} received"] = meter.total
        if age is None or age > cfg.stale_input_timeout:
            silent.append(topic)
    for cause in INPUT_PROBLEMS:
        values[cause] = problems.get(cause, 0)
    lidar_silent = cfg.lidar_topic in silent
    level = diagnostics.ERROR if lidar_silent else diagnostics.WARN if silent else diagnostics.OK
    if any(problems.get(c, 0) for c in INPUT_PROBLEMS) and level == diagnostics.OK:
        level = diagnostics.WARN
    message = f"silent: {', '.join(silent)}" if silent else "all inputs arriving"
    return diagnostics.fill(stat, level, message, values)


def sync(node: PerceptionNode, stat: Any) -> Any:
    cfg, subscribed = node.cfg, node.inputs
    if cfg is None or subscribed is None:
        return diagnostics.fill(stat, diagnostics.WARN, "no frames: the node is not active", {})
    problems = dict(node.problems.counts)
    counts = subscribed.sync_counts
    values: dict[str, Any] = {"policy": cfg.sync_policy, **counts}
    for name, n in zip(cfg.camera_names, subscribed.masked_per_camera, strict=False):
        values[f"masked {name}"] = n
    values["dropped_busy"] = node.slot.dropped
    values["dropped_too_many_masked"] = problems.get("frame_too_many_masked", 0)
    masked = counts.get("frames_masked", 0)
    level = diagnostics.WARN if masked or values["dropped_too_many_masked"] else diagnostics.OK
    message = f"{counts.get('frames', 0)} frames, {masked} with masked cameras, {node.slot.dropped} replaced while busy"
    return diagnostics.fill(stat, level, message, values)


def processing(node: PerceptionNode, stat: Any) -> Any:
    cfg = node.cfg
    if cfg is None:
        return diagnostics.fill(stat, diagnostics.WARN, "no model: the node is not configured", {})
    problems = dict(node.problems.counts)
    values: dict[str, Any] = {
        "processed": node.processed,
        "budget_ms": cfg.processing_budget_ms,
        "output Hz": node.published.rate(time.monotonic()),
    }
    for key, stats in (("total", node.total_ms), ("host", node.host_ms), ("latency", node.latency_ms)):
        s = stats.summary()
        if s is not None:
            values[f"{key} p50 ms"], values[f"{key} p99 ms"] = s.p50, s.p99
    errors = {k: v for k, v in problems.items() if k.startswith("frame_dropped_") or k.startswith("calibration")}
    values.update(errors)
    total = node.total_ms.summary()
    if total is None:
        level, message = diagnostics.OK, "no frame processed yet"
    elif total.p50 > cfg.processing_budget_ms:
        level, message = diagnostics.WARN, f"p50 {total.p50:.0f} ms over the {cfg.processing_budget_ms:.0f} ms budget"
    else:
        level, message = diagnostics.OK, f"p50 {total.p50:.0f} ms within the {cfg.processing_budget_ms:.0f} ms budget"
    if errors:
        level = diagnostics.worst([level, diagnostics.WARN])
    return diagnostics.fill(stat, level, message, values)


def sensor_modes(node: PerceptionNode, stat: Any) -> Any:
    modes = node.modes
    values: dict[str, Any] = {"mode": modes.current or "none yet"}
    values.update({f"frames {m}": modes.frames.get(m, 0) for m in SENSOR_MODES})
    values.update({f"changes {k}": n for k, n in sorted(modes.transitions.items())})
    if modes.current is None or modes.current == FULL:
        return diagnostics.fill(stat, diagnostics.OK, "all sensors in use" if modes.current else "no frame yet", values)
    since = time.monotonic() - modes.since if modes.since is not None else 0.0
    return diagnostics.fill(stat, diagnostics.WARN, f"degraded: {modes.current} for {since:.1f} s", values)
