"""The monitor's judgement, ROS-free: a sliding window over the perception node's timing stream and
hardware snapshots, each compared with its budget -> (level, message, values) per diagnostic.

Levels, per check (``Budgets`` holds the limits; defaults from the product's targets):
* rate: OK at >= ``min_fps``; WARN below; ERROR when no timing message came for ``stale_s``.
* latency p95 (frame complete -> outputs published): OK within ``max_latency_ms``; WARN above;
  ERROR above twice the budget.
* power (module total): OK within ``max_power_w``; WARN above; ERROR above 1.25 x the budget.
* temperature (hottest sensor): OK below ``max_temp_c`` - 10; WARN within 10 C of it; ERROR above.
* source: WARN when the hardware source has problems or is absent (the message says which).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from bevfusion_ros.core.monitor.sources import HwSnapshot

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


@dataclass(frozen=True)
class Budgets:
    min_fps: float = 10.0
    max_latency_ms: float = 100.0
    max_power_w: float = 60.0
    max_temp_c: float = 95.0
    stale_s: float = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    level: int
    message: str
    values: dict[str, Any]


class TimingWindow:
    """Timing messages of the last ``window_s`` seconds (bounded: at most ``max_items``)."""

    def __init__(self, window_s: float = 10.0, max_items: int = 10_000) -> None:
        self.window_s = window_s
        self.items: deque[tuple[float, float, dict[str, float]]] = deque(maxlen=max_items)
        self.last_s: float | None = None
        self.total = 0

    def add(self, t_s: float, latency_ms: float, stages_ms: dict[str, float]) -> None:
        if not math.isfinite(latency_ms):
            return
        self.items.append((t_s, latency_ms, stages_ms))
        self.last_s = t_s
        self.total += 1

    def _trim(self, now_s: float) -> None:
        while self.items and self.items[0][0] < now_s - self.window_s:
            self.items.popleft()

    def stats(self, now_s: float) -> dict[str, Any]:
        self._trim(now_s)
        n = len(self.items)
        out: dict[str, Any] = {"frames_in_window": n, "frames_total": self.total}
        if n == 0:
            return out
        lat = np.array([x[1] for x in self.items])
        first, last = self.items[0][0], self.items[-1][0]
        # n frames span n - 1 intervals; a single frame counts over the whole window
        out["fps"] = (n - 1) / (last - first) if last > first else n / self.window_s
        for q in (50, 95, 99):
            out[f"latency_p{q}_ms"] = float(np.percentile(lat, q))
        stages = sorted({k for x in self.items for k in x[2]})
        out["stages_ms"] = {k: float(np.median([x[2][k] for x in self.items if k in x[2]])) for k in stages}
        return out


def judge(
    stats: dict[str, Any], snap: HwSnapshot, now_s: float, last_timing_s: float | None, b: Budgets
) -> list[Check]:
    checks = []
    silent = last_timing_s is None or now_s - last_timing_s > b.stale_s
    fps = stats.get("fps", 0.0)
    if silent:
        since = "never" if last_timing_s is None else f"{now_s - last_timing_s:.1f} s ago"
        checks.append(
            Check(
                "perception rate",
                ERROR,
                f"no timing message from perception (last: {since})",
                {"fps": 0.0, "min_fps": b.min_fps},
            )
        )
    else:
        level = OK if fps >= b.min_fps else WARN
        checks.append(
            Check(
                "perception rate", level, f"{fps:.1f} fps (budget >= {b.min_fps:g})", {"fps": fps, "min_fps": b.min_fps}
            )
        )
    p95 = stats.get("latency_p95_ms")
    if p95 is None or silent:
        checks.append(Check("perception latency", OK if p95 is not None else WARN, "no recent frames", {}))
    else:
        level = OK if p95 <= b.max_latency_ms else WARN if p95 <= 2 * b.max_latency_ms else ERROR
        vals = {k: stats[k] for k in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")}
        vals.update({f"stage {k} ms": v for k, v in stats.get("stages_ms", {}).items()})
        checks.append(Check("perception latency", level, f"p95 {p95:.1f} ms (budget {b.max_latency_ms:g} ms)", vals))
    if snap.total_w is not None:
        w = snap.total_w
        level = OK if w <= b.max_power_w else WARN if w <= 1.25 * b.max_power_w else ERROR
        vals = {"total_w": w, **{f"{k}_w": v for k, v in snap.rails_w.items()}}
        checks.append(Check("power", level, f"{w:.1f} W (budget {b.max_power_w:g} W)", vals))
    if snap.temperatures_c:
        name, t = max(snap.temperatures_c.items(), key=lambda kv: kv[1])
        level = OK if t < b.max_temp_c - 10 else WARN if t <= b.max_temp_c else ERROR
        checks.append(
            Check(
                "temperature",
                level,
                f"hottest {name} {t:.1f} C (limit {b.max_temp_c:g} C)",
                {f"{k}_c": v for k, v in snap.temperatures_c.items()},
            )
        )
    load = {
        k: v
        for k, v in (
            ("gpu_load_pct", snap.gpu_load_pct),
            ("cpu_load_pct", snap.cpu_load_pct),
            ("emc_load_pct", snap.emc_load_pct),
            ("ram_used_mb", snap.ram_used_mb),
            ("ram_total_mb", snap.ram_total_mb),
        )
        if v is not None
    }
    if load:
        checks.append(Check("load", OK, ", ".join(f"{k} {v:.0f}" for k, v in load.items()), load))
    src_level = WARN if snap.problems or snap.source == "none" else OK
    msg = "; ".join(snap.problems) if snap.problems else f"reading from {snap.source}"
    checks.append(Check("hardware source", src_level, msg, {"source": snap.source, "age_s": snap.age_s}))
    return checks


def metrics_vector(stats: dict[str, Any], snap: HwSnapshot) -> tuple[list[str], list[float]]:
    """Fixed-order numbers for plotting (NaN where unknown)."""
    keys = ["fps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
    values = [float(stats.get(k, math.nan)) for k in keys]
    hw = [
        ("power_w", snap.total_w),
        ("gpu_load_pct", snap.gpu_load_pct),
        ("cpu_load_pct", snap.cpu_load_pct),
        ("emc_load_pct", snap.emc_load_pct),
        ("ram_used_mb", snap.ram_used_mb),
        ("temp_max_c", max(snap.temperatures_c.values()) if snap.temperatures_c else None),
    ]
    keys += [k for k, _ in hw]
    values += [math.nan if v is None else float(v) for _, v in hw]
    return keys, values
