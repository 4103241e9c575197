"""core/monitor/tegrastats.py on real tegrastats lines of several Jetsons and JetPack releases, and on bad
input (truncated, garbage, impossible values): every field by name, nothing ever raises."""

from __future__ import annotations

import pytest
from helpers.tegrastats_lines import (
    JP7_RAILS,
    NANO,
    ORIN_DLA,
    ORIN_JP5,
    ORIN_JP6,
    ORIN_NANO,
    ORIN_R36_4,
    TX1,
    TX2,
    XAVIER,
)
from hypothesis import given
from hypothesis import strategies as st

from bevfusion_ros.core.monitor.tegrastats import Cpu, Engine, Rail, parse_line


def test_orin_jetpack5_every_field() -> None:
    s = parse_line(ORIN_JP5)
    assert s.timestamp == "04-24-2023 00:01:24" and not s.unknown and not s.invalid
    assert s.ram_mb == (1282, 62795) and s.lfb == (15152, 4) and s.swap_mb == (0, 31398) and s.swap_cached_mb == 0
    assert len(s.cpus) == 12 and s.cpus[0] == Cpu(True, 0.0, 729.0)
    assert s.engines["GR3D_FREQ"] == Engine(True, 0.0, (0.0,)) and s.engines["EMC_FREQ"].freq_mhz == (2133.0,)
    assert s.engines["VIC_FREQ"] == Engine(True, None, (729.0,)) and "GR3D2_FREQ" in s.engines
    assert s.absent == ["CV0", "CV1", "GPU", "CV2"] and s.temperatures_c["tj"] == 42.593
    assert s.rails["VDD_GPU_SOC"] == Rail(2399.0, 2399.0) and s.nc_rails == 2 and "NC" not in s.rails
    assert s.total_power_mw == 2399 + 400 + 4032 + 301  # no input rail on AGX Orin: the sum


def test_orin_jetpack6_gr3d_per_gpc() -> None:
    s = parse_line(ORIN_JP6)
    assert s.engines["GR3D_FREQ"] == Engine(True, 0.0, (0.0, 0.0)) and not s.unknown
    assert s.swap_mb == (19, 31400) and s.temperatures_c["CPU"] == 44.562


def test_orin_r36_4_engines_off_and_lowercase_sensors() -> None:
    s = parse_line(ORIN_R36_4)
    assert not s.unknown and not s.invalid
    assert s.engines["NVENC"] == Engine(True, 79.0, (166.0,)) and s.engines["VIC"] == Engine(True, 36.0, (115.0,))
    for off in ("NVDEC", "NVJPG", "NVJPG1", "OFA", "NVDLA0", "NVDLA1", "PVA0_FREQ"):
        assert s.engines[off] == Engine(False), off
    assert s.temperatures_c == {"cpu": 52.562, "soc2": 48.437, "soc0": 49.093, "tj": 52.562, "soc1": 49.656}
    assert s.cpus[3] == Cpu(True, 14.0, 2201.0) and s.cpu_load_pct == pytest.approx(171 / 12)


def test_orin_with_dla_running() -> None:
    s = parse_line(ORIN_DLA)
    assert s.engines["NVDLA0_FREQ"] == Engine(True, None, (1600.0,))
    assert s.engines["GR3D_FREQ"] == Engine(True, 14.0, (407.0, 407.0)) and s.gpu_load_pct == 14.0
    assert s.rails["VDD_CPU_CV"] == Rail(14312.0, 12415.0) and s.temperatures_c["CV0"] == 73.625


def test_orin_nano_uses_its_input_rail() -> None:
    s = parse_line(ORIN_NANO)
    assert s.total_power_mw == 12479 and s.lfb == (8, 2) and s.engines["VIC"] == Engine(False)


@pytest.mark.parametrize(
    ("line", "total", "checks"),
    [
        (NANO, 943, lambda s: s.engines["EMC_FREQ"] == Engine(True, 0.0) and s.temperatures_c["PMIC"] == 100.0),
        (TX1, 2532, lambda s: s.iram_kb == (0, 252) and s.swap_mb is None and s.rails["VDD_GPU"] == Rail(19, 19)),
        (TX2, 2003, lambda s: [c.online for c in s.cpus] == [True] + [False] * 5 and "BCPU" in s.temperatures_c),
        (XAVIER, 0 + 216 + 864 + 0 + 144 + 1889, lambda s: s.rails["CPU"] == Rail(216, 216) and len(s.cpus) == 8),
    ],
)
def test_older_jetsons(line: str, total: float, checks) -> None:  # type: ignore[no-untyped-def]
    s = parse_line(line)
    assert not s.unknown and not s.invalid and s.timestamp == ""
    assert s.total_power_mw == total and checks(s)


def test_jetpack7_three_value_rails() -> None:
    s = parse_line(JP7_RAILS)
    assert s.rails["VDD_GPU_SOC"] == Rail(2340.0, 2340.0, 2990.0) and s.engines["GR3D_FREQ"].freq_mhz == (306.0,) * 3


@pytest.mark.parametrize(
    ("line", "unknown", "invalid"),
    [
        ("RAM 1282/627", ["RAM", "1282/627"], []),  # truncated mid-field
        ("garbage \x00 %% ][", ["garbage", "\x00", "%%", "]["], []),
        ("VDD_IN -500mW/100mW VDD_SOC 900mW/900mW", [], ["rail VDD_IN reports -500/100 mW"]),
        ("VDD_GPU 99999999mW/1mW", [], ["rail VDD_GPU reports 99999999/1 mW"]),
        ("tj@420C CPU@40C", [], ["temperature tj reports 420 C"]),
        ("CPU [5%@102,??,off] FUTURE_THING 7x", ["CPU[??]", "FUTURE_THING", "7x"], []),
        ("", [], []),
    ],
)
def test_bad_input_is_recorded_never_raised(line: str, unknown: list[str], invalid: list[str]) -> None:
    s = parse_line(line)
    assert s.unknown == unknown and s.invalid == invalid


def test_impossible_rail_is_left_out_of_the_total() -> None:
    s = parse_line("VDD_IN -500mW/100mW VDD_SOC 900mW/900mW")
    assert s.total_power_mw == 900 and s.valid
    assert not parse_line("complete nonsense").valid


@given(st.text(max_size=200))
def test_any_text_parses_without_raising(text: str) -> None:
    s = parse_line(text)
    assert isinstance(s.unknown, list)


@given(st.integers(0, 100), st.integers(0, 3000), st.integers(0, 60000))
def test_generated_fields_round_trip(load: int, mhz: int, mw: int) -> None:
    s = parse_line(f"GR3D_FREQ {load}%@[{mhz},{mhz}] VDD_GPU_SOC {mw}mW/{mw}mW CPU [{load}%@{mhz},off]")
    assert s.engines["GR3D_FREQ"] == Engine(True, float(load), (float(mhz), float(mhz)))
    assert s.rails["VDD_GPU_SOC"].cur_mw == mw and s.cpus == (Cpu(True, float(load), float(mhz)), Cpu(False))
