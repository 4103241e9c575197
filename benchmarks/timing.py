"""What the benchmarks share: the median wall time of a call (after one warm-up call), and the real
sweep densified as 10 sweeps would be."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def densified(sweep: npt.NDArray[np.float32], sweeps: int = 10, seed: int = 0) -> npt.NDArray[np.float32]:
    """(N, 4) x, y, z, intensity -> (sweeps * N, 5) with a time lag column: copies jittered by 5 cm
    (positions move a little between sweeps, intensities do not), 50 ms apart."""
    rng = np.random.default_rng(seed)
    jitter = np.float32([1, 1, 1, 0])
    pts = np.concatenate([sweep + rng.normal(0, 0.05, sweep.shape).astype(np.float32) * jitter for _ in range(sweeps)])
    lag = np.repeat(np.arange(sweeps, dtype=np.float32) * 0.05, len(sweep))[:, None]
    return np.concatenate([pts, lag], axis=1).astype(np.float32)
