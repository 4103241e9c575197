"""core/monitor/sources.py: source choice, the INA3221 reader on a FAKE of a Jetson's sysfs tree (laid out
as JetPack 5/6 AGX Orin hwmon; NC channels, an unreadable file, an absurd value), tegrastats through
its test double, and NVML's clear refusal where there is no NVIDIA driver (as here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers.tegrastats_lines import ORIN_JP6

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.monitor import sources as hw_sources
from bevfusion_ros.core.monitor.tegrastats_process import TegrastatsProcess

DOUBLE = Path(__file__).resolve().parents[2] / "helpers" / "tegrastats_double.py"


def fake_ina3221(root: Path, channels: dict[str, tuple[str, str]]) -> Path:
    """FAKE sysfs as on an AGX Orin: ina3221/1-0040/hwmon/hwmon3/in{n}_label, in{n}_input (mV),
    curr{n}_input (mA)."""
    d = root / "1-0040" / "hwmon" / "hwmon3"
    d.mkdir(parents=True)
    for n, (label, (mv, ma)) in enumerate(channels.items(), start=1):
        (d / f"in{n}_label").write_text(label.split("#")[0] + "\n")
        (d / f"in{n}_input").write_text(mv + "\n")
        (d / f"curr{n}_input").write_text(ma + "\n")
    return root


def test_ina3221_rails_skip_nc_and_sum_without_vdd_in(tmp_path: Path) -> None:
    root = fake_ina3221(
        tmp_path / "ina",
        {
            "VDD_GPU_SOC": ("5000", "480"),
            "VDD_CPU_CV": ("5000", "80"),
            "VIN_SYS_5V0": ("5000", "806"),
            "NC#1": ("0", "0"),
        },
    )
    src = hw_sources.Ina3221Source(root)
    snap = src.snapshot()
    assert snap.rails_w == pytest.approx({"VDD_GPU_SOC": 2.4, "VDD_CPU_CV": 0.4, "VIN_SYS_5V0": 4.03})
    assert snap.total_w == pytest.approx(6.83) and not snap.problems and snap.ram_total_mb


def test_ina3221_uses_vdd_in_and_reports_bad_channels(tmp_path: Path) -> None:
    root = fake_ina3221(
        tmp_path / "ina", {"VDD_IN": ("5000", "2496"), "VDD_SOC": ("5000", "-9e12"), "VDD_CPU_GPU_CV": ("5000", "x")}
    )
    snap = hw_sources.Ina3221Source(root).snapshot()
    assert snap.total_w == pytest.approx(12.48)
    assert any("VDD_SOC" in p and "not a plausible" in p for p in snap.problems)
    assert any("VDD_CPU_GPU_CV: cannot read" in p for p in snap.problems)


def test_auto_picks_ina3221_here_when_present_and_none_otherwise(tmp_path: Path) -> None:
    root = fake_ina3221(tmp_path / "ina", {"VDD_IN": ("5000", "1000")})
    assert isinstance(hw_sources.select_source("auto", ina_root=root), hw_sources.Ina3221Source)
    none = hw_sources.select_source("auto", ina_root=tmp_path / "missing")
    assert isinstance(none, hw_sources.NullSource)
    text = none.snapshot().problems[0]
    assert "tegrastats: tegrastats is not on PATH" in text and "ina3221: no INA3221" in text and "nvml:" in text
    with pytest.raises(ConfigError, match="'source' = 'jtop' is not one of"):
        hw_sources.select_source("jtop")


def test_nvml_without_a_driver_says_why() -> None:
    src = hw_sources.NvmlSource()
    assert not src.available and src.reason
    assert src.snapshot().problems == [src.reason]


def test_tegrastats_source_snapshot(tmp_path: Path) -> None:
    lines = tmp_path / "l.txt"
    lines.write_text(ORIN_JP6 + "\n")
    proc = TegrastatsProcess(
        command=[sys.executable, str(DOUBLE), str(lines), str(tmp_path / "s"), "run", "--interval", "20"]
    )
    src = hw_sources.TegrastatsSource(process=proc)
    src.start()
    try:
        assert hw_sources.wait_for_sample(src, 5)
        snap = src.snapshot()
    finally:
        src.stop()
    assert snap.total_w == pytest.approx(7.056) and snap.rails_w["VDD_GPU_SOC"] == pytest.approx(2.34)
    assert snap.gpu_load_pct == 0.0 and snap.temperatures_c["tj"] == 44.343 and snap.ram_used_mb == 4321
    assert not snap.problems


def test_power_sampler_polls_a_source_and_can_run_twice(tmp_path: Path) -> None:
    from bevfusion_ros.core.monitor.power import PowerSampler

    root = fake_ina3221(tmp_path / "ina", {"VDD_IN": ("5000", "2000"), "VDD_SOC": ("5000", "400")})
    sampler = PowerSampler(hw_sources.Ina3221Source(root), period_s=0.01)
    for _ in range(2):
        with sampler:
            _until_samples(sampler, 5)
        s = sampler.summary()
        assert s["source"] == "ina3221" and s["samples"] >= 5
        assert s["VDD_IN"] == {"mean_w": 10.0, "max_w": 10.0} and s["VDD_SOC"]["mean_w"] == 2.0


def _until_samples(sampler, n: int) -> None:  # type: ignore[no-untyped-def]
    import time

    end = time.monotonic() + 5
    while len(sampler.samples) < n:
        assert time.monotonic() < end
        time.sleep(0.01)
