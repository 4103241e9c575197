"""The monitor node's parameters: one table (name, default, description, range or choices) declared
as ROS parameters, and the frozen dataclass the node uses; validated once, errors name the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bevfusion_ros.core.monitor.judge import Budgets
from bevfusion_ros.core.monitor.sources import SOURCES
from bevfusion_ros.core.paramspec import ParamSpec, check_values
from bevfusion_ros.core.perception.timing import TIMING_TOPIC

MONITOR_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("source", "auto", "power/load source: auto, tegrastats, ina3221, nvml or none", choices=SOURCES),
    ParamSpec("tegrastats_interval_ms", 500, "tegrastats --interval (ms)", (50, 10000)),
    ParamSpec("timing_topic", TIMING_TOPIC, "the perception node's per-frame timing topic"),
    ParamSpec("window_s", 10.0, "sliding window for rate and latency percentiles (s)", (1.0, 600.0)),
    ParamSpec("period_s", 1.0, "seconds between diagnostics and metrics messages", (0.1, 60.0)),
    ParamSpec("min_fps", 10.0, "perception rate below this is WARN", (0.1, 1000.0)),
    ParamSpec("max_latency_ms", 100.0, "latency p95 above this is WARN, above twice it ERROR", (1.0, 100000.0)),
    ParamSpec("max_power_w", 60.0, "module power above this is WARN, above 1.25x ERROR", (1.0, 2000.0)),
    ParamSpec("max_temp_c", 95.0, "hottest sensor within 10 C of this is WARN, above ERROR", (30.0, 150.0)),
    ParamSpec("stale_s", 2.0, "no timing message for this long is ERROR (s)", (0.1, 600.0)),
    ParamSpec("log_path", "", "append one JSON line per period here (rotated); empty = no log"),
    ParamSpec("log_max_mb", 10.0, "rotate the log at this size (MB)", (0.01, 10000.0)),
    ParamSpec("log_backups", 3, "rotated log files kept", (0, 100)),
)


@dataclass(frozen=True)
class MonitorConfig:
    source: str
    tegrastats_interval_ms: int
    timing_topic: str
    window_s: float
    period_s: float
    budgets: Budgets
    log_path: str
    log_max_mb: float
    log_backups: int


def load_monitor_config(values: Mapping[str, Any]) -> MonitorConfig:
    v = check_values(MONITOR_PARAMETERS, values, "monitor parameter")
    budgets = Budgets(
        v.pop("min_fps"), v.pop("max_latency_ms"), v.pop("max_power_w"), v.pop("max_temp_c"), v.pop("stale_s")
    )
    return MonitorConfig(budgets=budgets, **v)
