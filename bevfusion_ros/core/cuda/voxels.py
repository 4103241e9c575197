"""The real exports' LiDAR front ends on the GPU (voxels.cu), mirroring core/pipeline/voxels.py and
held to it on a real GPU (test/core/cuda/test_voxel_kernels.py; run by scripts/gpu_tests.sh).

``CudaVoxelizer`` takes the points already on the device and leaves features, num_points and coords
there; the kept voxel count is the one number that comes back to the host (the next stage's input
shape depends on it). Buffers are sized once for ``capacity`` points and ``max_voxels`` voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.kernels import kernel, ptr
from bevfusion_ros.core.errors import ConfigError, InputError
from bevfusion_ros.core.model import REDUCE, VoxelGrid
from bevfusion_ros.core.optional import import_pycuda_driver

SOURCE = Path(__file__).with_name("voxels.cu")
SCAN_BLOCK = 1024  # as in voxels.cu
THREADS = 256
WARP = 32  # vox_finalize runs a warp per voxel


def _blocks(n: int, per: int = THREADS) -> tuple[int, int]:
    return (max(1, (n + per - 1) // per), 1)


class _Scan:
    """Exclusive prefix sum of int32 device arrays of up to ``capacity`` values, in place of ``out``."""

    def __init__(self, capacity: int) -> None:
        self._levels: list[tuple[cuda.DeviceBuffer, cuda.DeviceBuffer]] = []
        n = max(capacity, 1)
        while True:  # per level: the block sums and their scan
            blocks = (n + SCAN_BLOCK - 1) // SCAN_BLOCK
            self._levels.append((cuda.DeviceBuffer(blocks * 4), cuda.DeviceBuffer(blocks * 4)))
            if blocks == 1:
                break
            n = blocks
        self._block = kernel("scan_block", SOURCE)
        self._add = kernel("scan_add", SOURCE)

    def run(self, src: int, n: int, out: int, stream: cuda.Stream, level: int = 0) -> None:
        blocks = (n + SCAN_BLOCK - 1) // SCAN_BLOCK
        sums, sums_scanned = self._levels[level]
        self._block(np.uintp(src), np.int32(n), np.uintp(out), ptr(sums), block=(SCAN_BLOCK, 1, 1),
                    grid=(blocks, 1), stream=stream.raw)  # fmt: skip
        if blocks > 1:
            self.run(sums.ptr, blocks, sums_scanned.ptr, stream, level + 1)
            self._add(np.uintp(out), np.int32(n), ptr(sums_scanned), block=(SCAN_BLOCK, 1, 1), grid=(blocks, 1),
                      stream=stream.raw)  # fmt: skip

    def free(self) -> None:
        for a, b in self._levels:
            a.free()
            b.free()


@dataclass(frozen=True)
class VoxelCount:
    voxels: int  # kept voxels, the rows of features / num_points / coords that are valid
    dropped_voxels: int
    dropped_points: int


class CudaVoxelizer:
    """Hard voxelisation of (n, C) float32 points on the device (x, y, z first)."""

    def __init__(
        self, grid: VoxelGrid, max_points: int, max_voxels: int, reduce: str, channels: int, capacity: int
    ) -> None:
        if reduce not in REDUCE:
            msg = f"voxelize reduce must be one of {', '.join(REDUCE)}, got {reduce!r}"
            raise ConfigError(msg)
        nz, ny, nx = grid.shape
        if nz * ny * nx >= 2**31:
            msg = f"voxel grid {grid.shape} has more cells than the kernels' int32 keys hold"
            raise ConfigError(msg)
        self.grid, self.max_points, self.max_voxels, self.reduce = grid, max_points, max_voxels, reduce
        self.channels, self.capacity = channels, capacity
        self.table_size = 2 * capacity + 1
        per_voxel = channels if reduce == "mean" else max_points * channels
        self.features = cuda.DeviceBuffer(max_voxels * per_voxel * 4)
        self.num_points = cuda.DeviceBuffer(max_voxels * 4)
        self.coords = cuda.DeviceBuffer(max_voxels * 4 * 4)
        self._kept_index = cuda.DeviceBuffer(max_voxels * max_points * 4)
        i32 = 4
        self._table_key, self._table_first = (cuda.DeviceBuffer(self.table_size * i32) for _ in range(2))
        self._point = {k: cuda.DeviceBuffer(capacity * i32) for k in ("key", "slot", "flag", "rank", "voxel", "bucket")}
        self._voxel = {k: cuda.DeviceBuffer(max(capacity, 1) * i32) for k in ("count", "start", "fill")}
        self._totals = cuda.DeviceBuffer(2 * i32)  # the points cut by max_points (+ padding)
        self._totals_host = cuda.HostBuffer((3,), np.int32)  # last rank, last flag, points cut
        self._scan = _Scan(max(capacity, max_voxels))
        self._fn = {
            n: kernel(n, SOURCE) for n in ("vox_insert", "vox_first", "vox_assign", "vox_bucket", "vox_finalize")
        }

    def launch(self, points: int, n: int, stream: cuda.Stream) -> VoxelCount:
        """Voxelise ``n`` points at device address ``points``; waits for the stream to read the count."""
        if n > self.capacity:
            msg = f"{n} points exceed the GPU voxeliser's capacity of {self.capacity} (lidar.max_points)"
            raise InputError(msg)
        drv = import_pycuda_driver()
        s = stream.raw
        drv.memset_d32_async(self._table_key.ptr, 0xFFFFFFFF, self.table_size, s)  # -1: empty
        drv.memset_d32_async(self._table_first.ptr, 0x7FFFFFFF, self.table_size, s)  # INT_MAX
        for k in ("count", "fill"):
            drv.memset_d32_async(self._voxel[k].ptr, 0, self.capacity, s)
        drv.memset_d32_async(self._totals.ptr, 0, 2, s)
        if n == 0:
            return VoxelCount(0, 0, 0)
        g, f = self.grid, np.float32
        nz, ny, nx = g.shape
        r, v = g.point_cloud_range, g.voxel_size
        p = self._point
        self._fn["vox_insert"](np.uintp(points), np.int32(n), np.int32(self.channels), f(r[0]), f(r[1]), f(r[2]),
                               f(v[0]), f(v[1]), f(v[2]), np.int32(nx), np.int32(ny), np.int32(nz),
                               ptr(self._table_key), ptr(self._table_first), np.int32(self.table_size),
                               ptr(p["key"]), ptr(p["slot"]), block=(THREADS, 1, 1), grid=_blocks(n),
                               stream=s)  # fmt: skip
        self._fn["vox_first"](ptr(p["slot"]), ptr(self._table_first), np.int32(n), ptr(p["flag"]),
                              block=(THREADS, 1, 1), grid=_blocks(n), stream=s)  # fmt: skip
        self._scan.run(p["flag"].ptr, n, p["rank"].ptr, stream)
        # voxels found = the last point's rank + its flag
        last = self._totals_host.array
        cuda.copy_to_host(last[0:1], cuda.DeviceView(p["rank"].ptr + (n - 1) * 4, 4), stream)
        cuda.copy_to_host(last[1:2], cuda.DeviceView(p["flag"].ptr + (n - 1) * 4, 4), stream)
        self._fn["vox_assign"](ptr(p["slot"]), ptr(self._table_first), ptr(p["rank"]), np.int32(n),
                               np.int32(self.max_voxels), ptr(p["voxel"]), ptr(self._voxel["count"]),
                               block=(THREADS, 1, 1), grid=_blocks(n), stream=s)  # fmt: skip
        stream.synchronize()
        found = int(self._totals_host.array[0] + self._totals_host.array[1])
        kept = min(found, self.max_voxels)
        if kept:
            self._scan.run(self._voxel["count"].ptr, kept, self._voxel["start"].ptr, stream)
            self._fn["vox_bucket"](ptr(p["voxel"]), np.int32(n), ptr(self._voxel["start"]), ptr(self._voxel["fill"]),
                                   ptr(p["bucket"]), block=(THREADS, 1, 1), grid=_blocks(n), stream=s)  # fmt: skip
            warps = (kept * WARP + THREADS - 1) // THREADS
            self._fn["vox_finalize"](np.uintp(points), np.int32(self.channels), ptr(p["key"]), ptr(p["bucket"]),
                                     ptr(self._voxel["start"]), ptr(self._voxel["count"]), np.int32(kept),
                                     np.int32(self.max_points), np.int32(nx), np.int32(ny),
                                     np.int32(self.reduce == "mean"), ptr(self._kept_index), ptr(self.features),
                                     ptr(self.num_points), ptr(self.coords), ptr(self._totals),
                                     block=(THREADS, 1, 1), grid=(warps, 1), stream=s)  # fmt: skip
        cuda.copy_to_host(self._totals_host.array[2:3], cuda.DeviceView(self._totals.ptr, 4), stream)
        stream.synchronize()
        return VoxelCount(kept, found - kept, int(self._totals_host.array[2]))

    def free(self) -> None:
        bufs = [self.features, self.num_points, self.coords, self._kept_index, self._table_key, self._table_first]
        bufs.append(self._totals)
        for b in (*bufs, *self._point.values(), *self._voxel.values()):
            b.free()
        self._scan.free()


def pillar_point_features(
    points: int, num_points: int, coords: int, m: int, max_points: int, channels: int, grid: VoxelGrid,
    with_distance: bool, out: int, stream: cuda.Stream,
) -> None:  # fmt: skip
    """[m, max_points, C] pillar points on the device -> [m, max_points, C (+1) + 5] at ``out``."""
    if m == 0:
        return
    r, v = grid.point_cloud_range, grid.voxel_size
    f = np.float32
    kernel("pillar_point_features", SOURCE)(
        np.uintp(points), np.uintp(num_points), np.uintp(coords), np.int32(m), np.int32(max_points),
        np.int32(channels), f(v[0]), f(v[1]), f(v[0] / 2 + r[0]), f(v[1] / 2 + r[1]), np.int32(with_distance),
        np.uintp(out), block=(THREADS, 1, 1), grid=_blocks(m * max_points), stream=stream.raw,
    )  # fmt: skip


def scatter(features: int, coords: int, m: int, channels: int, grid: VoxelGrid, out: int, stream: cuda.Stream) -> None:
    """[m, C] pillar features at coords -> the zeroed canvas [1, C, ny, nx] at ``out``."""
    _, ny, nx = grid.shape
    import_pycuda_driver().memset_d32_async(int(out), 0, channels * ny * nx, stream.raw)
    if m:
        kernel("scatter_canvas", SOURCE)(np.uintp(features), np.uintp(coords), np.int32(m), np.int32(channels),
                                         np.int32(ny), np.int32(nx), np.uintp(out), block=(THREADS, 1, 1),
                                         grid=_blocks(m * channels), stream=stream.raw)  # fmt: skip
