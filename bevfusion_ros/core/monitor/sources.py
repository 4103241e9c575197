"""Where the monitor's power, load and temperature come from, behind one ``snapshot()``:

* ``tegrastats``: the managed subprocess (core/monitor/tegrastats_process.py), every field of the line.
* ``ina3221``: the INA3221 power monitors in sysfs, read the way jetson-stats does (hwmon
  ``inN_label``, ``inN_input`` mV, ``currN_input`` mA; channels labelled NC are skipped). No
  loads or temperatures, but no subprocess and finer timing.
* ``nvml``: a desktop/datacenter NVIDIA GPU through nvidia-ml-py (board power, GPU and memory
  utilisation, GPU temperature).
* ``none``: nothing readable; the monitor still reports perception latency.

``auto`` picks the first that works in that order. Host RAM always comes from /proc/meminfo.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import ConfigError, DependencyError
from bevfusion_ros.core.monitor.tegrastats_process import ABSENT, TegrastatsProcess
from bevfusion_ros.core.optional import import_pynvml

SOURCES = ("auto", "tegrastats", "ina3221", "nvml", "none")
INA3221_ROOT = Path("/sys/bus/i2c/drivers/ina3221")


@dataclass
class HwSnapshot:
    source: str
    rails_w: dict[str, float] = field(default_factory=dict)
    total_w: float | None = None
    gpu_load_pct: float | None = None
    cpu_load_pct: float | None = None
    emc_load_pct: float | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
    ram_used_mb: float | None = None
    ram_total_mb: float | None = None
    problems: list[str] = field(default_factory=list)
    age_s: float | None = None  # how old the newest reading is (None: no reading yet)


def meminfo_mb(path: Path = Path("/proc/meminfo")) -> tuple[float, float] | None:
    """(used, total) MB as ``free`` computes used: MemTotal - MemAvailable."""
    try:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        total = float(fields["MemTotal"].split()[0]) / 1024
        avail = float(fields["MemAvailable"].split()[0]) / 1024
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return total - avail, total


class TegrastatsSource:
    name = "tegrastats"

    def __init__(self, interval_ms: int = 500, process: TegrastatsProcess | None = None) -> None:
        self.process = process or TegrastatsProcess(interval_ms)

    @property
    def available(self) -> bool:
        return bool(self.process.command)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def snapshot(self) -> HwSnapshot:
        st = self.process.status()
        snap = HwSnapshot(self.name, age_s=st.last_sample_age_s)
        if st.state == ABSENT or st.last_error:
            snap.problems.append(st.last_error or "tegrastats is absent")
        snap.problems += st.problems
        s = self.process.latest
        if s is None:
            return snap
        snap.rails_w = {k: r.cur_mw / 1000 for k, r in s.rails.items()}
        total = s.total_power_mw
        snap.total_w = total / 1000 if total is not None else None
        snap.gpu_load_pct, snap.cpu_load_pct = s.gpu_load_pct, s.cpu_load_pct
        emc = s.engines.get("EMC_FREQ")
        snap.emc_load_pct = emc.load_pct if emc is not None else None
        snap.temperatures_c = dict(s.temperatures_c)
        if s.ram_mb is not None:
            snap.ram_used_mb, snap.ram_total_mb = float(s.ram_mb[0]), float(s.ram_mb[1])
        return snap


class Ina3221Source:
    name = "ina3221"

    def __init__(self, root: Path = INA3221_ROOT) -> None:
        self.root = root

    def channels(self) -> list[tuple[str, Path, Path]]:
        """(label, voltage file, current file) of every labelled, connected channel."""
        out = []
        for label_file in sorted(self.root.glob("*/hwmon/hwmon*/in*_label")):
            n = label_file.name[2:-6]
            try:
                label = label_file.read_text().strip()
            except OSError:
                continue
            if label and label != "NC":
                d = label_file.parent
                out.append((label, d / f"in{n}_input", d / f"curr{n}_input"))
        return out

    @property
    def available(self) -> bool:
        return bool(self.channels())

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def snapshot(self) -> HwSnapshot:
        snap = HwSnapshot(self.name, age_s=0.0)
        for label, vfile, cfile in self.channels():
            try:
                mv, ma = float(vfile.read_text()), float(cfile.read_text())
            except (OSError, ValueError) as exc:
                snap.problems.append(f"{label}: cannot read {vfile.name}/{cfile.name}: {exc}")
                continue
            w = mv * ma / 1e6
            if not 0 <= w < 1000:
                snap.problems.append(f"{label}: {mv:g} mV x {ma:g} mA is not a plausible power")
                continue
            snap.rails_w[label] = w
        if snap.rails_w:
            snap.total_w = snap.rails_w.get("VDD_IN", sum(snap.rails_w.values()))
        mem = meminfo_mb()
        if mem is not None:
            snap.ram_used_mb, snap.ram_total_mb = mem
        return snap


class NvmlSource:
    name = "nvml"

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self._nvml: Any = None
        self._handle: Any = None
        self.reason = ""
        self._open()

    def _open(self) -> None:
        try:
            nvml = import_pynvml()
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.device)
            self._nvml = nvml
            self.gpu_name = str(nvml.nvmlDeviceGetName(self._handle))
        except DependencyError as exc:
            self.reason = str(exc)
        except Exception as exc:  # pynvml raises NVMLError subclasses per driver status
            self.reason = f"NVML is not usable here: {exc}"

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def start(self) -> None:
        if self._nvml is None:  # stopped before: NVML is initialised again
            self._open()

    def stop(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def snapshot(self) -> HwSnapshot:
        snap = HwSnapshot(self.name, age_s=0.0)
        nvml = self._nvml
        if nvml is None:
            snap.problems.append(self.reason or "NVML was stopped")
            return snap
        reads: list[tuple[str, Callable[[], None]]] = [
            ("power", lambda: snap.rails_w.__setitem__("GPU_BOARD", nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000)),
            ("utilisation", lambda: _util(snap, nvml.nvmlDeviceGetUtilizationRates(self._handle))),
            (
                "temperature",
                lambda: snap.temperatures_c.__setitem__(
                    "GPU", float(nvml.nvmlDeviceGetTemperature(self._handle, nvml.NVML_TEMPERATURE_GPU))
                ),
            ),
        ]
        for what, read in reads:
            try:
                read()
            except Exception as exc:  # a GPU may not support a query (NVMLError_NotSupported)
                snap.problems.append(f"NVML {what}: {exc}")
        snap.total_w = snap.rails_w.get("GPU_BOARD")
        mem = meminfo_mb()
        if mem is not None:
            snap.ram_used_mb, snap.ram_total_mb = mem
        return snap


def _util(snap: HwSnapshot, rates: Any) -> None:
    snap.gpu_load_pct = float(rates.gpu)
    snap.emc_load_pct = float(rates.memory)


class NullSource:
    name = "none"
    available = True

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def snapshot(self) -> HwSnapshot:
        snap = HwSnapshot(self.name, problems=[self.reason])
        mem = meminfo_mb()
        if mem is not None:
            snap.ram_used_mb, snap.ram_total_mb = mem
        return snap


Source = TegrastatsSource | Ina3221Source | NvmlSource | NullSource


def select_source(choice: str = "auto", interval_ms: int = 500, ina_root: Path = INA3221_ROOT) -> Source:
    """The source to use and, for ``none``, why nothing else was."""
    if choice not in SOURCES:
        msg = f"parameter 'source' = '{choice}' is not one of: {', '.join(SOURCES)}"
        raise ConfigError(msg)
    tried = []
    for name in ("tegrastats", "ina3221", "nvml") if choice == "auto" else (choice,):
        if name == "none":
            break
        src: Source
        if name == "tegrastats":
            src = TegrastatsSource(interval_ms)
            why = "tegrastats is not on PATH"
        elif name == "ina3221":
            src = Ina3221Source(ina_root)
            why = f"no INA3221 channels under {ina_root}"
        else:
            src = NvmlSource()
            why = src.reason
        if src.available:
            return src
        tried.append(f"{name}: {why}")
    return NullSource("no power/load source: " + "; ".join(tried) if tried else "source is 'none'")


def wait_for_sample(source: Source, timeout_s: float) -> bool:
    """Wait until the source has a reading (tegrastats needs one interval)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if source.snapshot().age_s is not None:
            return True
        time.sleep(0.05)
    return False
