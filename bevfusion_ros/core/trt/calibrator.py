"""TensorRT INT8 entropy calibration (``IInt8EntropyCalibrator2``, the calibrator NVIDIA requires for
DLA) fed by real frames, with a calibration cache so calibration runs once per model and data set.

A stage's calibration inputs are its own input tensors, produced by running the fp32 pipeline
(the real pre-processing, bevpool and upstream stages) on bag frames: ``collect_stage_inputs`` writes
them as .npy files, ``make_entropy_calibrator`` streams them to the device one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.errors import BackendError

Feeds = Mapping[str, npt.NDArray[Any]]


def collect_stage_inputs(
    run_frame: Callable[[Any], Mapping[str, npt.NDArray[Any]]],
    frames: Iterable[Any],
    stage_inputs: Mapping[str, tuple[str, ...]],
    out_dir: Path,
    limit: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run ``run_frame`` (frame -> every tensor by name) on up to ``limit`` frames and save each
    stage's inputs to ``out_dir/<stage>/<i>.npz``. Returns the number of frames used."""
    n = 0
    for frame in frames:
        if n >= limit:
            break
        tensors = run_frame(frame)
        for stage, names in stage_inputs.items():
            d = out_dir / stage
            d.mkdir(parents=True, exist_ok=True)
            arrays: dict[str, Any] = {k: np.asarray(tensors[k]) for k in names}
            np.savez(d / f"{n:05d}.npz", **arrays)
        n += 1
        if progress is not None:
            progress(1)
    return n


def stage_batches(directory: Path) -> Iterator[dict[str, npt.NDArray[Any]]]:
    files = sorted(directory.glob("*.npz"))
    if not files:
        msg = f"no calibration tensors in {directory}: run build-engines with --calibration-bag"
        raise BackendError(msg)
    for f in files:
        with np.load(f) as z:
            yield {k: z[k] for k in z.files}


def make_entropy_calibrator(
    trt: Any,
    batches: Iterable[Feeds] | None,
    cache_path: Path | None,
    on_batch: Callable[[], None] | None = None,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``batches`` (batch size 1: our stages take one frame).

    Call it inside an active CUDA context; ``batches`` may be None when a cache is expected (a build
    without frames then fails in TensorRT with a clear calibration error instead of guessing scales).

    TensorRT catches every exception raised in these methods, prints it and carries on as if the
    batches had ended (or there were no cache): an engine calibrated on the batches before the error,
    whose scales it would then write to the cache. So the methods catch their own errors: the first
    is kept in ``error`` (check it after the build: ``raise_if_failed``), batches end, and no cache is
    written once anything failed.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 base: must be initialised explicitly
            self._iter = iter(batches) if batches is not None else iter(())
            self._device: dict[str, cuda.DeviceBuffer] = {}
            self._host: dict[str, cuda.HostBuffer] = {}
            self._stream = cuda.Stream()
            self.batches_used = 0
            self.cache_read = False
            self.cache_written = False
            self.error: BaseException | None = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str], *_: Any) -> list[int] | None:
            if self.error is not None:
                return None
            try:
                return self._next_batch(names)
            except Exception as exc:  # TensorRT would print it and calibrate on what it had
                self.error = exc
                return None

        def _next_batch(self, names: list[str]) -> list[int] | None:
            try:
                feeds = next(self._iter)
            except StopIteration:
                return None
            missing = [n for n in names if n not in feeds]
            if missing:
                msg = f"calibration batch lacks inputs {missing} (has {sorted(feeds)})"
                raise BackendError(msg)
            ptrs = []
            for name in names:
                arr = np.ascontiguousarray(feeds[name])
                if name not in self._device or self._device[name].nbytes < arr.nbytes:
                    self._device[name] = cuda.DeviceBuffer(arr.nbytes)
                    self._host[name] = cuda.HostBuffer(arr.shape, arr.dtype)
                host = self._host[name].array
                if host.shape != arr.shape or host.dtype != arr.dtype:
                    self._host[name] = cuda.HostBuffer(arr.shape, arr.dtype)
                    host = self._host[name].array
                np.copyto(host, arr)
                cuda.copy_to_device(self._device[name], host, self._stream)
                ptrs.append(self._device[name].ptr)
            self._stream.synchronize()  # TensorRT reads the batch as soon as get_batch returns
            self.batches_used += 1
            if on_batch is not None:
                on_batch()
            return ptrs

        def read_calibration_cache(self) -> bytes | None:
            try:
                if cache_path is not None and cache_path.is_file() and cache_path.stat().st_size > 0:
                    data = cache_path.read_bytes()
                    self.cache_read = True
                    return data
            except OSError as exc:
                self.error = exc
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is None or self.error is not None:  # never keep scales of a failed calibration
                return
            try:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_path.with_suffix(cache_path.suffix + ".tmp")
                tmp.write_bytes(bytes(cache))
                tmp.replace(cache_path)
                self.cache_written = True
            except OSError as exc:
                self.error = exc

        def raise_if_failed(self, stage: str) -> None:
            if self.error is not None:
                msg = (
                    f"stage {stage}: INT8 calibration failed after {self.batches_used} batch(es): {self.error}; "
                    "no engine and no calibration cache were written"
                )
                raise BackendError(msg) from self.error

        def free(self) -> None:
            for b in self._device.values():
                b.free()
            self._device.clear()
            self._host.clear()

    return EntropyCalibrator()
