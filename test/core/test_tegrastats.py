"""core/tegrastats.py on real tegrastats lines of several Jetsons and JetPack releases, and on bad
input (truncated, garbage, impossible values): every field by name, nothing ever raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bevfusion_ros.core.tegrastats import Cpu, Engine, Rail, parse_line

# AGX Orin, JetPack 5 and JetPack 6 (the vectors).
ORIN_JP5 = (
    "04-24-2023 00:01:24 RAM 1282/62795MB (lfb 15152x4MB) SWAP 0/31398MB (cached 0MB) CPU [0%@729,0%@729,0%@729,"
    "0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@0 GR3D2_FREQ 0%@0 "
    "VIC_FREQ 729 APE 174 CV0@-256C CPU@42.593C Tboard@32C SOC2@39.343C Tdiode@33.25C SOC0@39.375C CV1@-256C "
    "GPU@-256C tj@42.593C SOC1@40.468C CV2@-256C VDD_GPU_SOC 2399mW/2399mW VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 "
    "4032mW/4032mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
)
ORIN_JP6 = (
    "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU [0%@729,0%@729,0%@729,"
    "0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 "
    "APE 174 CV0@-256C CPU@44.562C Tboard@32C SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C "
    "SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW "
    "VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
)
# AGX Orin, JetPack 6 (L4T R36.4.4): lower-case temperatures, video engines and DLA reported off.
ORIN_R36_4 = (
    "05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112,"
    "8%@2035,14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,10%@1036] EMC_FREQ 3%@2133 "
    "GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off VIC 36%@115 OFA off NVDLA0 off NVDLA1 off "
    "PVA0_FREQ off APE 174 cpu@52.562C soc2@48.437C soc0@49.093C tj@52.562C soc1@49.656C VDD_GPU_SOC 2412mW/2412mW "
    "VDD_CPU_CV 1607mW/1607mW VIN_SYS_5V0 4707mW/4707mW"
)
# AGX Orin, JetPack 6, TensorRT running on DLA core 0: "NVDLA0_FREQ @1600" (clock without a load).
ORIN_DLA = (
    "11-21-2025 08:49:48 RAM 13983/62780MB (lfb 424x4MB) SWAP 126/31390MB (cached 0MB) CPU [90%@2201,100%@2201,"
    "100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201] EMC_FREQ "
    "1%@2133 GR3D_FREQ 14%@[407,407] VIC_FREQ 115 NVDLA0_FREQ @1600 APE 174 CV0@73.625C CPU@77.281C Tboard@62C "
    "SOC2@70C Tdiode@62.25C SOC0@69.531C CV1@72.5C GPU@69.125C tj@77.281C SOC1@68.968C CV2@67.25C VDD_GPU_SOC "
    "3150mW/2971mW VDD_CPU_CV 14312mW/12415mW VIN_SYS_5V0 4968mW/5048mW VDDQ_VDD2_1V8AO 1091mW/1091mW"
)
# Orin Nano, JetPack 6: a module input rail VDD_IN, one GPC.
ORIN_NANO = (
    "11-15-2024 08:38:09 RAM 6185/7620MB (lfb 8x2MB) SWAP 851/3810MB (cached 1MB) CPU [15%@729,11%@729,14%@729,"
    "13%@729,11%@729,8%@729] EMC_FREQ 43%@2133 GR3D_FREQ 63%@[621] NVDEC off NVJPG off NVJPG1 off VIC off OFA off "
    "APE 200 cpu@53.968C soc2@52.437C soc0@50.75C gpu@53.343C tj@53.968C soc1@51.656C VDD_IN 12479mW/12479mW "
    "VDD_CPU_GPU_CV 4667mW/4667mW VDD_SOC 2817mW/2817mW"
)
# Jetson Nano (JetPack 4): no timestamp, load without clocks, rails without a unit.
NANO = (
    "RAM 613/3964MB (lfb 634x4MB) SWAP 0/1982MB (cached 0MB) CPU [2%@102,1%@102,0%@102,0%@102] EMC_FREQ 0% "
    "GR3D_FREQ 0% PLL@39C CPU@40.5C PMIC@100C GPU@41C AO@46C thermal@41C POM_5V_IN 943/943 POM_5V_GPU 0/0 "
    "POM_5V_CPU 123/123"
)
# Jetson TX1: IRAM; TX2: cores off, BCPU/MCPU sensors; AGX Xavier: rails named GPU/CPU/SOC.
TX1 = (
    "RAM 1179/3983MB (lfb 120x4MB) IRAM 0/252kB(lfb 252kB) CPU [1%@102,4%@102,0%@102,0%@102] EMC_FREQ 7%@408 "
    "GR3D_FREQ 0%@76 APE 25 AO@42.5C CPU@37.5C GPU@39C PLL@37C Tdiode@42.75C PMIC@100C Tboard@42C thermal@38.5C "
    "VDD_IN 2532/2698 VDD_CPU 76/178 VDD_GPU 19/19"
)
TX2 = (
    "RAM 1345/7829MB (lfb 1290x4MB) SWAP 0/512MB (cached 0MB) CPU [2%@345,off,off,off,off,off] EMC_FREQ 13%@40 "
    "GR3D_FREQ 0%@114 APE 150 BCPU@35C MCPU@35C GPU@41C PLL@35C AO@35.5C Tboard@35C Tdiode@36C PMIC@100C "
    "thermal@35.5C VDD_IN 2003/2658 VDD_CPU 320/518 VDD_GPU 400/735 VDD_SOC 400/415 VDD_WIFI 0/0 VDD_DDR 240/348"
)
XAVIER = (
    "RAM 1903/15692MB (lfb 3251x4MB) CPU [1%@1190,1%@1190,2%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190] "
    "EMC_FREQ 0% GR3D_FREQ 0% AO@32.5C GPU@32C Tboard@32C Tdiode@34.75C AUX@31.5C CPU@33.5C thermal@32.9C "
    "PMIC@100C GPU 0/0 CPU 216/216 SOC 864/864 CV 0/0 VDDRQ 144/144 SYS5V 1889/1889"
)
# JetPack 7 prints rails as cur/avg/max. CONSTRUCTED from that documented form (no recorded line at
# hand): the AGX Orin JetPack 6 rails with a third value.
JP7_RAILS = "VDD_GPU_SOC 2340mW/2340mW/2990mW VDD_CPU_CV 390mW/390mW/512mW GR3D_FREQ 5%@[306,306,306]"


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
