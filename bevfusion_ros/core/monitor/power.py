"""Power sampled while something runs (selftest, GPU benchmarks), from the monitor's hardware
sources (core/monitor/sources.py: tegrastats on a Jetson, INA3221 sysfs, NVML on a discrete GPU).

``PowerSampler`` polls the source's newest reading at a fixed period in a background thread, so the
per-rail means are time-weighted whatever the source's own rate, and summarises mean and max watts.
"""

from __future__ import annotations

import statistics
import threading
from typing import Any

from bevfusion_ros.core.monitor.sources import Source, select_source


class PowerSampler:
    def __init__(self, source: Source | None = None, period_s: float = 0.02) -> None:
        self.source = source if source is not None else select_source("auto", interval_ms=100)
        self.period_s = period_s
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.source.name

    def __enter__(self) -> PowerSampler:
        self.samples.clear()
        self._stop.clear()
        self.source.start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.source.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            snap = self.source.snapshot()
            if snap.age_s is not None and snap.rails_w:
                self.samples.append(dict(snap.rails_w))

    def summary(self) -> dict[str, Any]:
        rails = sorted({k for s in self.samples for k in s})
        out: dict[str, Any] = {"source": self.source.name, "samples": len(self.samples)}
        for r in rails:
            vals = [s[r] for s in self.samples if r in s]
            out[r] = {"mean_w": round(statistics.fmean(vals), 3), "max_w": round(max(vals), 3)}
        return out
