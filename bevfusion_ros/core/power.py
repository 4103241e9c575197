"""Power sampling while something runs: tegrastats on a Jetson (per-rail mW), NVML on a discrete GPU.

Both are context managers that sample in a background thread and summarise per rail (mean and max
watts) from the current value of each rail. Neither needs a Python package.
"""

from __future__ import annotations

import ctypes
import shutil
import statistics
import subprocess
import threading
import time
from typing import Any

from bevfusion_ros.core.tegrastats import parse_line


def parse_rails(line: str) -> dict[str, float]:
    """Watts per rail in one tegrastats line (core/tegrastats.py reads every field)."""
    return {name: rail.cur_mw / 1000.0 for name, rail in parse_line(line).rails.items()}


class _Sampler:
    source = "none"

    def __init__(self) -> None:
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return False

    def __enter__(self) -> _Sampler:
        self.samples.clear()
        self._stop.clear()
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._close()  # ends a blocking reader first, so the join is quick
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        rails = sorted({k for s in self.samples for k in s})
        out: dict[str, Any] = {"source": self.source, "samples": len(self.samples)}
        for r in rails:
            vals = [s[r] for s in self.samples if r in s]
            out[r] = {"mean_w": round(statistics.fmean(vals), 3), "max_w": round(max(vals), 3)}
        return out


class NvmlPower(_Sampler):
    """Board power of one GPU through libnvidia-ml (ctypes)."""

    source = "nvml"

    def __init__(self, device: int = 0, period_s: float = 0.02) -> None:
        super().__init__()
        self.period_s = period_s
        self._lib: Any = None
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            handle = ctypes.c_void_p()
            if lib.nvmlInit_v2() == 0 and lib.nvmlDeviceGetHandleByIndex_v2(device, ctypes.byref(handle)) == 0:
                self._lib, self._handle = lib, handle
        except OSError:
            pass

    @property
    def available(self) -> bool:
        return self._lib is not None

    def read(self) -> float | None:
        if self._lib is None:
            return None
        mw = ctypes.c_uint()
        ok = self._lib.nvmlDeviceGetPowerUsage(self._handle, ctypes.byref(mw)) == 0
        return mw.value / 1000.0 if ok else None

    def _run(self) -> None:
        while not self._stop.is_set():
            w = self.read()
            if w is not None:
                self.samples.append({"GPU_BOARD": w})
            time.sleep(self.period_s)


class TegrastatsPower(_Sampler):
    """Per-rail power from the ``tegrastats`` binary (JetPack; may need root for some rails)."""

    source = "tegrastats"

    def __init__(self, interval_ms: int = 100, binary: str = "tegrastats") -> None:
        super().__init__()
        self.interval_ms = interval_ms
        self.binary = shutil.which(binary)
        self._proc: subprocess.Popen[str] | None = None

    @property
    def available(self) -> bool:
        return self.binary is not None

    def _run(self) -> None:
        assert self.binary is not None
        self._proc = subprocess.Popen([self.binary, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            rails = parse_rails(line)
            if rails:
                self.samples.append(rails)
            if self._stop.is_set():
                break

    def _close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)
            self._proc = None


def power_sampler() -> _Sampler:
    """tegrastats where it exists (a Jetson), else NVML, else one that records nothing."""
    t = TegrastatsPower()
    if t.available:
        return t
    n = NvmlPower()
    return n if n.available else _Sampler()
