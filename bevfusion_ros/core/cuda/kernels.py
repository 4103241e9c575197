"""The numpy pre-processing on the GPU: image resize + normalise, pillar scatter, bevpool.

Kernels live in kernels.cu and are compiled once per process by pycuda (nvcc at first use; on
the Orin that is JetPack's). Everything that depends only on calibration or image size (bilinear
taps, bevpool index) is uploaded once; per frame only sensor data moves. Every launch takes a
stream and returns without waiting. Each class mirrors a numpy reference and is tested against it
on a real GPU (test/core/cuda/test_kernels.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.errors import BackendError, InputError
from bevfusion_ros.core.model import ImageConfig, LidarConfig
from bevfusion_ros.core.optional import import_pycuda_compiler, import_pycuda_driver
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from bevfusion_ros.core.pipeline.preprocess import PILLAR_FEATURES, ImagePreprocessor

SOURCE = Path(__file__).with_name("kernels.cu")
# nvcc options for every source (pycuda adds --cubin -arch sm_XX for the current device); the sources are
# compiled with these for the Orin and Thor in test/core/cuda/test_nvcc_targets.py
NVCC_OPTIONS = ("-std=c++14",)
# one compiled module per (context, source): pycuda modules belong to one context
_MODULES: dict[tuple[int, Path], Any] = {}


def kernel(name: str, source: Path = SOURCE) -> Any:
    """A compiled kernel of ``source`` (kernels.cu by default; call inside an active context)."""
    compiler = import_pycuda_compiler()
    drv = import_pycuda_driver()
    key = (id(drv.Context.get_current()), source)
    if key not in _MODULES:
        try:
            _MODULES[key] = compiler.SourceModule(source.read_text(), no_extern_c=True, options=list(NVCC_OPTIONS))
        except drv.CompileError as exc:
            msg = f"cannot compile {source.name} with nvcc: {exc}"
            raise BackendError(msg) from None
    return _MODULES[key].get_function(name)


def upload(arr: npt.NDArray[Any], stream: cuda.Stream) -> cuda.DeviceBuffer:
    arr = np.ascontiguousarray(arr)
    host = cuda.HostBuffer(arr.shape, arr.dtype)
    np.copyto(host.array, arr)
    buf = cuda.DeviceBuffer(max(arr.nbytes, 1))
    cuda.copy_to_device(buf, host.array, stream)
    stream.synchronize()  # the page-locked staging copy is freed when this returns
    return buf


def ptr(x: cuda.DeviceBuffer | int) -> np.uintp:
    return np.uintp(x.ptr if isinstance(x, cuda.DeviceBuffer) else x)


class CudaImagePreprocessor:
    """uint8 HxWx3 images on the device -> (N, 3, H, W) float32/float16 network input on the device."""

    def __init__(self, cfg: ImageConfig, input_order: str = "bgr", out_dtype: str = "float32") -> None:
        if out_dtype not in ("float32", "float16"):
            msg = f"image pre-processing output dtype must be float32 or float16, got {out_dtype!r}"
            raise InputError(msg)
        self.cfg = cfg
        self.reference = ImagePreprocessor(cfg, input_order)  # the numpy twin: same taps, same constants
        self.swap = np.int32(input_order != cfg.channel_order)
        self.out_dtype = out_dtype
        self._taps: dict[tuple[int, int], tuple[int, list[cuda.DeviceBuffer]]] = {}
        self._fn = kernel("preprocess_image_f32" if out_dtype == "float32" else "preprocess_image_f16")

    @property
    def plane_bytes(self) -> int:
        return 3 * self.cfg.input_height * self.cfg.input_width * np.dtype(self.out_dtype).itemsize

    def _plan(self, width: int, height: int, stream: cuda.Stream) -> tuple[int, list[cuda.DeviceBuffer]]:
        key = (width, height)
        if key not in self._taps:
            t, (x0, x1, wx), (y0, y1, wy) = self.reference._plan(width, height)
            arrays = [x0.astype(np.int32), x1.astype(np.int32), wx, y0.astype(np.int32), y1.astype(np.int32), wy]
            self._taps[key] = (t.pool, [upload(a, stream) for a in arrays])
        return self._taps[key]

    def launch(self, image: cuda.DeviceBuffer | int, width: int, height: int, out: int, stream: cuda.Stream) -> None:
        """One camera: ``image`` (height x width x 3 uint8) -> ``out`` (3 x H x W) at byte address ``out``."""
        pool, taps = self._plan(width, height, stream)
        mean = [np.float32(m) for m in self.reference._mean]
        inv = [np.float32(s) for s in self.reference._inv_std]
        h, w = self.cfg.input_height, self.cfg.input_width
        self._fn(
            ptr(image),
            np.int32(width),
            np.int32(pool),
            *(ptr(b) for b in taps),
            np.int32(w),
            np.int32(h),
            self.swap,
            *mean,
            *inv,
            np.uintp(out),
            block=(32, 8, 1),
            grid=((w + 31) // 32, (h + 7) // 8),
            stream=stream.raw,
        )


class CudaPillarizer:
    """(M, 4) float32 x, y, z, intensity on the device -> (1, 5, ny, nx) pillar statistics on the device."""

    def __init__(self, cfg: LidarConfig) -> None:
        g = cfg.grid
        self.cfg = cfg
        self.cells = g.nx * g.ny
        self.out_bytes = len(PILLAR_FEATURES) * self.cells * 4
        self._scratch = [cuda.DeviceBuffer(self.cells * 4) for _ in range(5)]  # count, zsum, isum, zmax, zmin
        self._acc = kernel("pillar_accumulate")
        self._fin = kernel("pillar_finalize")

    def launch(self, points: cuda.DeviceBuffer | int, n: int, out: int, stream: cuda.Stream) -> None:
        drv = import_pycuda_driver()
        count, zsum, isum, zmax, zmin = self._scratch
        for b in (count, zsum, isum, zmax):  # 0 bits are 0 and 0.0f; zmin starts at +inf
            drv.memset_d32_async(b.ptr, 0, self.cells, stream.raw)
        drv.memset_d32_async(zmin.ptr, 0x7F800000, self.cells, stream.raw)
        r, g = self.cfg.point_cloud_range, self.cfg.grid
        f = np.float32
        if n:
            self._acc(
                ptr(points),
                np.int32(n),
                f(r[0]),
                f(r[1]),
                f(r[2]),
                f(r[3]),
                f(r[4]),
                f(r[5]),
                f(g.xmin),
                f(g.ymin),
                f(g.resolution),
                np.int32(g.nx),
                np.int32(g.ny),
                f(r[5] - r[2]),
                f(self.cfg.intensity_scale),
                *(ptr(b) for b in self._scratch),
                block=(256, 1, 1),
                grid=((n + 255) // 256, 1),
                stream=stream.raw,
            )
        self._fin(
            *(ptr(b) for b in self._scratch),
            np.int32(self.cells),
            np.uintp(out),
            block=(256, 1, 1),
            grid=((self.cells + 255) // 256, 1),
            stream=stream.raw,
        )

    def free(self) -> None:
        for b in self._scratch:
            b.free()


class CudaBevPool:
    """The bevpool index of one calibration on the device; features + depth -> (1, C, ny, nx).

    ``dtype`` float32: bit-exact with the numpy reference. float16 (engines with fp16 outputs):
    features, depth and output in half, sums in float32; needs channels in multiples of 8."""

    def __init__(
        self, index: BevPoolIndex, channels: int, stream: cuda.Stream, slots: int = 2, dtype: str = "float32"
    ) -> None:
        if index.points >= 2**31:
            msg = f"bevpool index has {index.points} points, more than the kernel's int32 indexing allows"
            raise BackendError(msg)
        if dtype not in ("float32", "float16") or (dtype == "float16" and channels % 8):
            msg = f"bevpool dtype must be 'float32' or 'float16' (channels a multiple of 8), got {dtype} for {channels}"
            raise BackendError(msg)
        self.index = index
        self.channels = channels
        self.dtype = dtype
        item = 4 if dtype == "float32" else 2
        starts = np.r_[index.interval_starts, index.points].astype(np.int32)
        self._bufs = [
            upload(index.depth_index.astype(np.int32), stream),
            upload(index.feature_index.astype(np.int32), stream),
            upload(starts, stream),
            upload(index.interval_cells.astype(np.int32), stream),
        ]
        # One camera mask per in-flight frame: the host writes frame N+1's while frame N's copy may
        # still be queued.
        self._mask_host = [cuda.HostBuffer((index.n_cameras,), np.int32) for _ in range(slots)]
        self._mask = [cuda.DeviceBuffer(index.n_cameras * 4) for _ in range(slots)]
        fh, fw = index.feature_hw
        self._pixel_major = [cuda.DeviceBuffer(index.n_cameras * fh * fw * channels * item) for _ in range(slots)]
        ny, nx = index.grid_hw
        self.out_bytes = channels * ny * nx * item
        half = dtype == "float16"
        self._fn = kernel("bevpool_half8" if half else "bevpool")
        self._transpose = kernel("channels_last_half" if half else "channels_last")
        self._threads_per_cell = channels // 8 if half else channels

    def launch(
        self, features: int, depth: int, out: int, stream: cuda.Stream, masked: Sequence[int] = (), slot: int = 0
    ) -> None:
        drv = import_pycuda_driver()
        ix = self.index
        mask_host, mask = self._mask_host[slot], self._mask[slot]
        mask_host.array[...] = 0
        mask_host.array[list(masked)] = 1
        cuda.copy_to_device(mask, mask_host.array, stream)
        drv.memset_d32_async(int(out), 0, self.out_bytes // 4, stream.raw)  # empty cells stay 0 (C is even)
        fh, fw = ix.feature_hw
        pixel_major = self._pixel_major[slot]
        total = ix.n_cameras * self.channels * fh * fw
        dims = (np.int32(ix.n_cameras), np.int32(self.channels), np.int32(fh * fw))
        self._transpose(np.uintp(features), *dims, ptr(pixel_major), block=(256, 1, 1),
                        grid=((total + 255) // 256, 1), stream=stream.raw)  # fmt: skip
        n = int(ix.interval_cells.size) * self._threads_per_cell
        ny, nx = ix.grid_hw
        self._fn(
            ptr(pixel_major),
            np.uintp(depth),
            *(ptr(b) for b in self._bufs),
            np.int32(ix.interval_cells.size),
            np.int32(self.channels),
            np.int32(fh * fw),
            np.int32(ny * nx),
            ptr(mask),
            np.uintp(out),
            block=(256, 1, 1),
            grid=((n + 255) // 256, 1),
            stream=stream.raw,
        )

    def free(self) -> None:
        for b in (*self._bufs, *self._mask, *self._pixel_major):
            b.free()


class StandInEngine:
    """GPU work in place of a TensorRT engine where TensorRT does not exist (benchmarks only): reads
    its inputs, spends ``iters`` multiply-adds per output element, writes its outputs. It has the
    device-level interface the streamed pipeline uses (``device_ptr``, ``enqueue``)."""

    def __init__(self, stage: Any, iters: int) -> None:
        self.stage = stage
        self.iters = iters
        self._bufs = {t.name: cuda.DeviceBuffer(int(np.prod(t.shape)) * 4) for t in (*stage.inputs, *stage.outputs)}
        self._fn = kernel("standin_work")

    def device_ptr(self, name: str) -> int:
        return self._bufs[name].ptr

    def enqueue(self, stream: cuda.Stream | None = None, bind: dict[str, int] | None = None) -> None:
        assert stream is not None
        bind = bind or {}
        ins = [(bind.get(t.name, self.device_ptr(t.name)), int(np.prod(t.shape))) for t in self.stage.inputs[:2]]
        (pa, na), (pb, nb) = ins[0], ins[1] if len(ins) > 1 else (ins[0][0], 0)
        for out in self.stage.outputs:
            n_out = int(np.prod(out.shape))
            self._fn(
                np.uintp(pa),
                np.int64(na),
                np.uintp(pb),
                np.int64(nb),
                np.uintp(self.device_ptr(out.name)),
                np.int64(n_out),
                np.int32(self.iters),
                block=(256, 1, 1),
                grid=(min((n_out + 255) // 256, 4096), 1),
                stream=stream.raw,
            )

    def free(self) -> None:
        for b in self._bufs.values():
            b.free()
