"""The perception node's diagnostics: input health, synchronisation, processing time vs budget.

Three DiagnosticStatus entries, named so rqt_robot_monitor groups them under 'bevfusion':
  bevfusion: inputs      per-topic rate (Hz) and silence (s); bad messages by cause
  bevfusion: sync        frames made, masked per camera, stale/missing/backwards/duplicate stamps,
                         frames replaced while the model was busy (dropped_busy)
  bevfusion: processing  frames processed, total / host / latency p50 and p99 against the budget
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticStatus

from bevfusion_ros.ros import diagnostics

if TYPE_CHECKING:  # the node imports this module
    from bevfusion_ros.ros.perception_node import PerceptionNode

INPUT_PROBLEMS = ("bad_image", "bad_camera_info", "bad_header", "zero_stamp", "frame_dropped_MessageError")


def node_statuses(node: PerceptionNode) -> list[DiagnosticStatus]:
    """Inputs, sync and processing statuses of an active node (nothing before it is active)."""
    cfg, inputs = node.cfg, node.inputs
    if cfg is None or inputs is None:
        return []
    hw = node.pipeline.spec.name if node.pipeline is not None else ""
    now = time.monotonic()
    problems = dict(node.problems.counts)

    values: dict[str, Any] = {}
    silent: list[str] = []
    for topic, meter in inputs.rates.items():
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
    inputs_status = diagnostics.status("bevfusion: inputs", hw, level, message, values)

    counts = inputs.sync_counts
    sync_values: dict[str, Any] = {"policy": cfg.sync_policy, **counts}
    for name, n in zip(cfg.camera_names, inputs.masked_per_camera, strict=False):
        sync_values[f"masked {name}"] = n
    sync_values["dropped_busy"] = node.slot.dropped
    sync_values["dropped_too_many_masked"] = problems.get("frame_too_many_masked", 0)
    masked = counts.get("frames_masked", 0)
    level = diagnostics.WARN if masked or sync_values["dropped_too_many_masked"] else diagnostics.OK
    message = f"{counts.get('frames', 0)} frames, {masked} with masked cameras, {node.slot.dropped} replaced while busy"
    sync_status = diagnostics.status("bevfusion: sync", hw, level, message, sync_values)

    proc: dict[str, Any] = {
        "processed": node.processed,
        "budget_ms": cfg.processing_budget_ms,
        "output Hz": node.published.rate(now),
    }
    for key, stats in (("total", node.total_ms), ("host", node.host_ms), ("latency", node.latency_ms)):
        s = stats.summary()
        if s is not None:
            proc[f"{key} p50 ms"], proc[f"{key} p99 ms"] = s.p50, s.p99
    errors = {k: v for k, v in problems.items() if k.startswith("frame_dropped_") or k.startswith("calibration")}
    proc.update(errors)
    total = node.total_ms.summary()
    if total is None:
        level, message = diagnostics.OK, "no frame processed yet"
    elif total.p50 > cfg.processing_budget_ms:
        level, message = diagnostics.WARN, f"p50 {total.p50:.0f} ms over the {cfg.processing_budget_ms:.0f} ms budget"
    else:
        level, message = diagnostics.OK, f"p50 {total.p50:.0f} ms within the {cfg.processing_budget_ms:.0f} ms budget"
    if errors:
        level = diagnostics.worst([level, diagnostics.WARN])
    proc_status = diagnostics.status("bevfusion: processing", hw, level, message, proc)
    return [inputs_status, sync_status, proc_status]
