"""What the benchmarks share: the median wall time of a call (after one warm-up call), the GPU time
of a launch on a stream, the real sweep densified as 10 sweeps would be, and the decoded real frame
the GPU benchmarks read (no OpenCV on the lent machine)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig


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


def gpu_times(launch: Callable[[], Any], stream: Any, n: int, warmups: int = 3) -> dict[str, float]:
    """Median and p99 GPU time (ms) of ``launch``: CUDA events around it on ``stream`` (a
    core.cuda.driver.Stream; imported here so the CPU benchmarks need no pycuda)."""
    from bevfusion_ros.core.cuda import driver as cuda

    for _ in range(warmups):
        launch()
    a, b = cuda.Event(), cuda.Event()
    times = []
    for _ in range(n):
        a.record(stream)
        launch()
        b.record(stream)
        b.synchronize()
        times.append(b.elapsed_ms(a))
    return {"median_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99))}


def decoded_frame(path: str | Path) -> tuple[list[npt.NDArray[np.uint8]], npt.NDArray[np.float32], CameraRig]:
    """scripts/export_gpu_frame.py's npz -> (6 BGR images, (N, 4) x, y, z, intensity, the CameraRig)."""
    z = np.load(path)
    rig = CameraRig.create(
        tuple(str(n) for n in z["names"]),
        [CameraIntrinsics.from_arrays(k, int(w), int(h)) for k, (w, h) in zip(z["K"], z["wh"], strict=True)],
        list(z["lidar2cam"]),
    )
    return list(z["images"]), np.ascontiguousarray(z["points"][:, :4], np.float32), rig
