"""core/monitor/judge.py: the timing window's statistics and each budget's OK/WARN/ERROR boundaries."""

from __future__ import annotations

import math

import pytest

from bevfusion_ros.core.monitor.judge import ERROR, OK, WARN, Budgets, TimingWindow, judge, metrics_vector
from bevfusion_ros.core.monitor.sources import HwSnapshot


def _window(latencies: list[float], period: float = 0.05) -> TimingWindow:
    w = TimingWindow(window_s=10)
    for i, lat in enumerate(latencies):
        w.add(i * period, lat, {"fuser_ms": 3.0, "total_ms": lat - 5})
    return w


def _levels(checks) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {c.name: c.level for c in checks}


def test_window_rate_and_percentiles() -> None:
    w = _window([float(x) for x in range(1, 101)])
    s = w.stats(now_s=99 * 0.05)
    assert s["fps"] == pytest.approx(20.0) and s["frames_in_window"] == 100
    assert s["latency_p50_ms"] == pytest.approx(50.5) and s["latency_p99_ms"] == pytest.approx(99.01)
    assert s["stages_ms"] == {"fuser_ms": 3.0, "total_ms": pytest.approx(45.5)}
    assert w.stats(now_s=30)["frames_in_window"] == 0  # everything slid out
    w.add(31.0, math.nan, {})
    assert w.total == 100  # a NaN latency is not a frame


@pytest.mark.parametrize(
    ("lat", "period", "rate", "latency"),
    [(50.0, 0.05, OK, OK), (150.0, 0.05, OK, WARN), (250.0, 0.05, OK, ERROR), (50.0, 0.2, WARN, OK)],
)
def test_rate_and_latency_levels_flip_at_the_budgets(lat: float, period: float, rate: int, latency: int) -> None:
    w = _window([lat] * 50, period)
    now = 49 * period
    levels = _levels(judge(w.stats(now), HwSnapshot("none"), now, w.last_s, Budgets()))
    assert levels["perception rate"] == rate and levels["perception latency"] == latency


def test_silent_perception_is_an_error() -> None:
    w = _window([50.0] * 10)
    checks = judge(w.stats(10.45), HwSnapshot("none"), 10.45, w.last_s, Budgets(stale_s=2))
    rate = next(c for c in checks if c.name == "perception rate")
    assert rate.level == ERROR and "last: 10.0 s ago" in rate.message
    never = judge({}, HwSnapshot("none"), 1.0, None, Budgets())
    assert "never" in next(c for c in never if c.name == "perception rate").message


@pytest.mark.parametrize(("watts", "level"), [(59.0, OK), (61.0, WARN), (80.0, ERROR)])
def test_power_budget(watts: float, level: int) -> None:
    snap = HwSnapshot("tegrastats", rails_w={"VDD_GPU_SOC": watts}, total_w=watts)
    assert _levels(judge({}, snap, 0.0, None, Budgets()))["power"] == level


@pytest.mark.parametrize(("temp", "level"), [(70.0, OK), (88.0, WARN), (97.0, ERROR)])
def test_temperature_limit(temp: float, level: int) -> None:
    snap = HwSnapshot("tegrastats", temperatures_c={"tj": temp, "CPU": 40.0})
    checks = judge({}, snap, 0.0, None, Budgets())
    assert _levels(checks)["temperature"] == level
    assert "hottest tj" in next(c for c in checks if c.name == "temperature").message


def test_source_problems_warn_and_metrics_are_nan_when_unknown() -> None:
    snap = HwSnapshot("none", problems=["no power/load source: tegrastats: not on PATH"])
    src = next(c for c in judge({}, snap, 0.0, None, Budgets()) if c.name == "hardware source")
    assert src.level == WARN and "not on PATH" in src.message
    keys, values = metrics_vector({"fps": 12.0}, snap)
    assert keys[0] == "fps" and values[0] == 12.0 and math.isnan(values[keys.index("power_w")])
