"""The monitor node: is the car's computer within its power, thermal and latency budget right now?

* Reads power, load and temperatures from tegrastats, the INA3221 sysfs rails or NVML (parameter
  ``source``, ``auto`` by default; the diagnostic says which, or why none), never blocking: the
  tegrastats subprocess has its own thread, the other sources are quick reads.
* Subscribes to the perception node's timing topic (its own callback group) and keeps a sliding
  window: rate and end-to-end latency p50/p95/p99, per-stage medians.
* Every ``period_s``: the judgement (core.monitor.judge), ``~/metrics`` (std_msgs/Float64MultiArray,
  labels in layout.dim, for rqt_plot) and optionally one JSON line in a rotating log; diagnostic_updater
  publishes ``/diagnostics`` at the same period, one task per check (``bevfusion_monitor: <check>``,
  OK/WARN/ERROR against the budget parameters, hardware_id the power/load source).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import math
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.monitor.config import MONITOR_PARAMETERS, MonitorConfig, load_monitor_config
from bevfusion_ros.core.monitor.judge import ERROR, OK, WARN, Check, TimingWindow, judge, metrics_vector
from bevfusion_ros.core.monitor.sources import select_source
from bevfusion_ros.core.perception.timing import MONITOR_NODE, FrameTiming
from bevfusion_ros.ros import diagnostics, params

NODE_NAME = MONITOR_NODE
_LEVELS = {OK: diagnostics.OK, WARN: diagnostics.WARN, ERROR: diagnostics.ERROR}


class MonitorNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self, MONITOR_PARAMETERS)
        params.refuse_unknown_overrides(self)
        self.cfg: MonitorConfig = load_monitor_config(params.values(self, MONITOR_PARAMETERS))
        self.source = select_source(self.cfg.source, self.cfg.tegrastats_interval_ms)
        self.source.start()
        self.window = TimingWindow(self.cfg.window_s)
        self.bad_timing = 0
        self._log = _rotating_log(self.cfg) if self.cfg.log_path else None
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(DiagnosticArray, self.cfg.timing_topic, self._on_timing, qos)
        self.checks: dict[str, Check] = {}  # the latest judgement, read by the updater's tasks
        self.tasks: set[str] = set()
        self.updater = diagnostics.make_updater(self, self.cfg.period_s, self.source.name, {})
        self.metrics_pub = self.create_publisher(Float64MultiArray, "~/metrics", 10)
        self.create_timer(self.cfg.period_s, self._tick)
        self.get_logger().info(
            f"monitoring {self.cfg.timing_topic}; hardware source: {self.source.name}"
            + (f" ({self.source.snapshot().problems[0]})" if self.source.name == "none" else "")
        )

    def _on_timing(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            try:
                timing = FrameTiming.decode(diagnostics.values(status))
            except MessageError:
                self.bad_timing += 1  # counted and shown; never raised into the executor
                continue
            self.window.add(time.monotonic(), timing.latency_ms, timing.stages_ms)

    def _tick(self) -> None:
        now = time.monotonic()
        stats = self.window.stats(now)
        snap = self.source.snapshot()
        checks = judge(stats, snap, now, self.window.last_s, self.cfg.budgets)
        if self.bad_timing:
            why = f"{self.bad_timing} timing messages were ignored (not the perception node's timing record)"
            ignored = {"ignored": self.bad_timing, "topic": self.cfg.timing_topic}
            checks.append(Check("timing input", WARN, why, ignored))
        for check in checks:
            if check.name not in self.tasks:  # a check appears once its source has data (power, temperature)
                self.updater.add(check.name, lambda stat, name=check.name: self._report(name, stat))
                self.tasks.add(check.name)
        self.checks = {c.name: c for c in checks}
        stamp = self.get_clock().now().nanoseconds
        keys, values = metrics_vector(stats, snap)
        msg = Float64MultiArray(data=values)
        msg.layout.dim = [MultiArrayDimension(label=k, size=1, stride=1) for k in keys]
        self.metrics_pub.publish(msg)
        if self._log is not None:
            row = {
                "t": stamp / 1e9,
                **{k: (None if math.isnan(v) else v) for k, v in zip(keys, values, strict=True)},
                "levels": {c.name: c.level for c in checks},
            }
            self._log.info(json.dumps(row))

    def _report(self, name: str, stat: Any) -> Any:
        check = self.checks.get(name)
        if check is None:  # e.g. the power source stopped answering
            return diagnostics.fill(stat, diagnostics.WARN, "no data in the last period", {})
        return diagnostics.fill(stat, _LEVELS[check.level], check.message, check.values)

    def destroy_node(self) -> None:
        # also called by rclpy's shutdown on a node whose __init__ was refused half-way
        source = getattr(self, "source", None)
        if source is not None:
            source.stop()
        log = getattr(self, "_log", None)
        if log is not None:
            for h in log.handlers:
                h.close()
        super().destroy_node()


def _rotating_log(cfg: MonitorConfig) -> logging.Logger:
    log = logging.getLogger(f"{MONITOR_NODE}.{id(cfg)}")
    log.propagate = False
    handler = logging.handlers.RotatingFileHandler(
        cfg.log_path, maxBytes=int(cfg.log_max_mb * 1e6), backupCount=cfg.log_backups
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return log


def main(args: list[str] | None = None) -> int:
    from bevfusion_ros.ros.node_main import run

    return run(NODE_NAME, MonitorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
