"""One ``tegrastats`` line -> a typed sample, keyed by field name with regular expressions, never by
column position: the columns differ between Jetsons and JetPack releases (IRAM on Nano/TX1,
``MTS`` on TX2/Xavier, ``GR3D_FREQ x%@f`` on JetPack 5 vs ``x%@[f,f]`` on 6, rails with or without
``mW``, ``cur/avg`` or ``cur/avg/max``, temperature names upper- or lower-case, engines ``off``).

The line is read left to right; at each position the first matching field pattern wins. Anything
no pattern knows is kept in ``unknown`` and counted, never an exception; values that cannot be
real (a negative or > 1 kW rail, a temperature outside -40..150 C) go to ``invalid`` with the
reason. ``-256C`` is how tegrastats marks an absent sensor: such sensors are listed in ``absent``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_RAIL_MW = 1_000_000  # 1 kW: no Jetson rail comes close
TEMP_RANGE_C = (-40.0, 150.0)
ABSENT_C = -256.0


@dataclass(frozen=True)
class Cpu:
    online: bool
    load_pct: float | None = None
    freq_mhz: float | None = None


@dataclass(frozen=True)
class Engine:
    """A clocked unit (EMC, GR3D, VIC, NVENC, NVDLA0, APE, ...): ``off``, or load and/or clocks."""

    on: bool
    load_pct: float | None = None
    freq_mhz: tuple[float, ...] = ()  # one value, or one per GPC (JetPack 6 GR3D_FREQ)


@dataclass(frozen=True)
class Rail:
    cur_mw: float
    avg_mw: float
    max_mw: float | None = None  # JetPack 7 prints cur/avg/max


@dataclass
class TegraSample:
    timestamp: str = ""
    ram_mb: tuple[int, int] | None = None  # used, total
    lfb: tuple[int, int] | None = None  # count, block MB
    swap_mb: tuple[int, int] | None = None
    swap_cached_mb: int | None = None
    iram_kb: tuple[int, int] | None = None
    cpus: tuple[Cpu, ...] = ()
    engines: dict[str, Engine] = field(default_factory=dict)
    temperatures_c: dict[str, float] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    rails: dict[str, Rail] = field(default_factory=dict)
    nc_rails: int = 0
    unknown: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Whether anything at all was understood."""
        return bool(self.ram_mb or self.cpus or self.engines or self.temperatures_c or self.rails)

    @property
    def total_power_mw(self) -> float | None:
        """Module input power: VDD_IN (Orin Nano/NX, TX1/TX2, Xavier NX) or POM_5V_IN (Nano) when
        printed, else the sum of the rails (AGX Orin and AGX Xavier print no input rail; there
        VIN_SYS_5V0 / SYS5V is the carrier's 5 V rail, one term of the sum, not the total)."""
        for name in ("VDD_IN", "POM_5V_IN"):
            if name in self.rails:
                return self.rails[name].cur_mw
        return sum(r.cur_mw for r in self.rails.values()) if self.rails else None

    @property
    def gpu_load_pct(self) -> float | None:
        e = self.engines.get("GR3D_FREQ") or self.engines.get("GR3D")
        return e.load_pct if e is not None else None

    @property
    def cpu_load_pct(self) -> float | None:
        loads = [c.load_pct for c in self.cpus if c.online and c.load_pct is not None]
        return sum(loads) / len(loads) if loads else None


Handler = Callable[[TegraSample, "re.Match[str]"], None]
_NUM = r"(-?\d+(?:\.\d+)?)"


def _ram(s: TegraSample, m: re.Match[str]) -> None:
    s.ram_mb = (int(m["used"]), int(m["total"]))
    if m["n"]:
        s.lfb = (int(m["n"]), int(m["size"]))


def _swap(s: TegraSample, m: re.Match[str]) -> None:
    s.swap_mb = (int(m["used"]), int(m["total"]))
    if m["cached"]:
        s.swap_cached_mb = int(m["cached"])


def _iram(s: TegraSample, m: re.Match[str]) -> None:
    s.iram_kb = (int(m["used"]), int(m["total"]))


_CORE = re.compile(r"^(?:(?P<off>off)|(?P<load>\d+)%(?:@(?P<freq>\d+))?)$")


def _cpu(s: TegraSample, m: re.Match[str]) -> None:
    cores = []
    for raw in m["list"].split(","):
        c = _CORE.match(raw.strip())
        if c is None:
            s.unknown.append(f"CPU[{raw.strip()}]")
            continue
        if c["off"]:
            cores.append(Cpu(False))
        else:
            cores.append(Cpu(True, float(c["load"]), float(c["freq"]) if c["freq"] else None))
    s.cpus = tuple(cores)


def _rail(s: TegraSample, m: re.Match[str]) -> None:
    name = m["name"]
    values = [float(v) for v in (m["cur"], m["avg"], m["max"]) if v is not None]
    if name == "NC":
        s.nc_rails += 1
        return
    if any(v < 0 or v > MAX_RAIL_MW for v in values):
        s.invalid.append(f"rail {name} reports {'/'.join(f'{v:.0f}' for v in values)} mW")
        return
    s.rails[name] = Rail(values[0], values[1], values[2] if len(values) > 2 else None)


def _temp(s: TegraSample, m: re.Match[str]) -> None:
    name, value = m["name"], float(m["value"])
    if value == ABSENT_C:
        s.absent.append(name)
    elif not TEMP_RANGE_C[0] <= value <= TEMP_RANGE_C[1]:
        s.invalid.append(f"temperature {name} reports {value:g} C")
    else:
        s.temperatures_c[name] = value


def _engine(s: TegraSample, m: re.Match[str]) -> None:
    d = m.groupdict()
    if d.get("off"):
        s.engines[m["name"]] = Engine(False)
        return
    freqs = d.get("freqs") or d.get("freq") or ""
    f = tuple(float(x) for x in freqs.split(",") if x.strip())
    load = float(d["load"]) if d.get("load") else None
    s.engines[m["name"]] = Engine(True, load, f)


def _mts(s: TegraSample, m: re.Match[str]) -> None:
    s.engines["MTS_FG"] = Engine(True, float(m["fg"]))
    s.engines["MTS_BG"] = Engine(True, float(m["bg"]))


def _timestamp(s: TegraSample, m: re.Match[str]) -> None:
    s.timestamp = m[0]


_KNOWN = r"(?!(?:RAM|SWAP|IRAM|CPU|MTS) )"  # names of fields with their own pattern
_NOT_MEM = r"(?!(?:RAM|SWAP|IRAM) )"  # Xavier prints a rail named CPU ("CPU 216/216")
_ENG = r"(?P<name>[A-Z][A-Z0-9_]*)"
_RAIL = (  # "NAME cur/avg" or "NAME cur/avg/max", in mW with or without the unit
    r"(?P<name>[A-Za-z][A-Za-z0-9_]*) (?P<cur>-?\d+)(?:mW)?/(?P<avg>-?\d+)(?:mW)?(?:/(?P<max>-?\d+)(?:mW)?)?(?=\s|$)"
)
PATTERNS: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (re.compile(p), h)
    for p, h in (
        (r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}", _timestamp),
        (r"RAM (?P<used>\d+)/(?P<total>\d+)MB(?: \(lfb (?P<n>\d+)x(?P<size>\d+)MB\))?", _ram),
        (r"SWAP (?P<used>\d+)/(?P<total>\d+)MB(?: \(cached (?P<cached>\d+)MB\))?", _swap),
        (r"IRAM (?P<used>\d+)/(?P<total>\d+)kB ?(?:\(lfb \d+kB\))?", _iram),
        (r"CPU \[(?P<list>[^\]]*)\]", _cpu),
        (r"MTS fg (?P<fg>\d+)% bg (?P<bg>\d+)%", _mts),
        (_NOT_MEM + _RAIL, _rail),
        (r"(?P<name>[A-Za-z][A-Za-z0-9_]*)@(?P<value>" + _NUM[1:-1] + r")C(?=\s|$)", _temp),
        (_KNOWN + _ENG + r" (?P<load>\d+)%@\[(?P<freqs>[\d,]*)\](?=\s|$)", _engine),
        (_KNOWN + _ENG + r" (?P<load>\d+)%@(?P<freq>\d+)(?=\s|$)", _engine),
        (_KNOWN + _ENG + r" (?P<load>\d+)%(?=\s|$)", _engine),
        (_KNOWN + _ENG + r" @(?P<freq>\d+)(?=\s|$)", _engine),
        (_KNOWN + _ENG + r" @\[(?P<freqs>[\d,]*)\](?=\s|$)", _engine),
        (_KNOWN + _ENG + r" (?P<off>off)(?=\s|$)", _engine),
        (_KNOWN + _ENG + r" (?P<freq>\d+)(?=\s|$)", _engine),
    )
)
_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")


def parse_line(line: str) -> TegraSample:
    """Parse one line; never raises (unknown tokens and impossible values are recorded)."""
    s = TegraSample()
    pos, n = 0, len(line)
    while pos < n:
        sp = _SPACE.match(line, pos)
        if sp is not None:
            pos = sp.end()
            continue
        for pattern, handler in PATTERNS:
            m = pattern.match(line, pos)
            if m is not None:
                handler(s, m)
                pos = m.end()
                break
        else:
            w = _WORD.match(line, pos)
            assert w is not None
            s.unknown.append(w[0])
            pos = w.end()
    return s
