"""core/cuda/voxels.py on a real CUDA GPU against core/pipeline/voxels.py (skips where pycuda or a GPU
is absent, as in CI; scripts/gpu_tests.sh runs it): voxel numbering, kept points, caps and counts
exactly equal, features to float32 tolerance, on random clouds with both caps hit and on the real
sweep densified to 10 sweeps (BEVFUSION_GPU_FRAME, as test_kernels.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.cuda_io import from_device

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.kernels import upload
from bevfusion_ros.core.model import VoxelGrid
from bevfusion_ros.core.pipeline import voxels as ref

VOXELNET = VoxelGrid((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), (0.075, 0.075, 0.2))
PILLARS = VoxelGrid((-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), (0.2, 0.2, 8.0))
SMALL = VoxelGrid((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), (1.0, 1.0, 1.0))


def densified_sweep() -> np.ndarray:
    path = os.environ.get("BEVFUSION_GPU_FRAME", "")
    if not path or not Path(path).is_file():
        pytest.skip("set BEVFUSION_GPU_FRAME to the decoded real frame (.npz)")
    sweep = np.load(path)["points"][:, :4].astype(np.float32)
    rng = np.random.default_rng(0)
    copies = [sweep + rng.normal(0, 0.05, sweep.shape).astype(np.float32) * np.float32([1, 1, 1, 0]) for _ in range(10)]
    lag = np.repeat(np.arange(10, dtype=np.float32) * 0.05, len(sweep))[:, None]
    return np.concatenate([np.concatenate(copies), lag], axis=1)


def run_voxelize(points: np.ndarray, grid: VoxelGrid, max_points: int, max_voxels: int, reduce: str):  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.cuda.voxels import CudaVoxelizer

    stream = cuda.Stream()
    c = points.shape[1]
    vox = CudaVoxelizer(grid, max_points, max_voxels, reduce, c, capacity=max(len(points), 1))
    dev = upload(points.astype(np.float32), stream)
    try:
        count = vox.launch(dev.ptr, len(points), stream)
        m = count.voxels
        shape = (m, c) if reduce == "mean" else (m, max_points, c)
        got = (
            from_device(vox.features, shape, np.float32, stream),
            from_device(vox.num_points, (m,), np.int32, stream),
            from_device(vox.coords, (m, 4), np.int32, stream),
        )
        return count, got, vox, stream
    finally:
        dev.free()


def check_voxelize(points: np.ndarray, grid: VoxelGrid, max_points: int, max_voxels: int, reduce: str) -> int:
    want = ref.voxelize(points, grid, max_points, max_voxels, reduce)
    count, (features, num_points, coords), vox, _ = run_voxelize(points, grid, max_points, max_voxels, reduce)
    vox.free()
    assert count.voxels == len(want.coords)
    assert (count.dropped_voxels, count.dropped_points) == (want.dropped_voxels, want.dropped_points)
    np.testing.assert_array_equal(coords, want.coords)  # the same voxels, numbered the same way
    np.testing.assert_array_equal(num_points, want.num_points)
    np.testing.assert_allclose(features, want.features, rtol=1e-6, atol=1e-6)
    return count.voxels


@pytest.mark.parametrize("reduce", ["mean", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voxelize_equals_numpy_with_both_caps_hit(ctx, reduce: str, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    pts = rng.normal(0, 2.5, (5000, 4)).astype(np.float32)
    pts[::97, 0] = np.nan  # non-finite and far-outside points are never kept
    pts[::89, 1] = 1e9
    assert check_voxelize(pts, SMALL, max_points=3, max_voxels=60, reduce=reduce) == 60


def test_empty_and_all_outside_clouds(ctx) -> None:  # type: ignore[no-untyped-def]
    assert check_voxelize(np.zeros((0, 4), np.float32), SMALL, 3, 10, "mean") == 0
    assert check_voxelize(np.full((50, 4), 100.0, np.float32), SMALL, 3, 10, "mean") == 0


REAL_CASES = [(VOXELNET, 10, 160000, "mean"), (PILLARS, 32, 40000, "none")]


@pytest.mark.parametrize(("grid", "max_points", "max_voxels", "reduce"), REAL_CASES, ids=["voxelnet", "pillars"])
def test_voxelize_the_densified_real_sweep(ctx, grid: VoxelGrid, max_points: int, max_voxels: int, reduce: str) -> None:  # type: ignore[no-untyped-def]
    assert check_voxelize(densified_sweep(), grid, max_points, max_voxels, reduce) > 10_000


@pytest.mark.parametrize("with_distance", [False, True])
def test_pillar_features_and_scatter_equal_numpy(ctx, with_distance: bool) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.cuda.voxels import pillar_point_features, scatter

    pts = np.random.default_rng(3).normal(0, 20, (30000, 4)).astype(np.float32)
    want_vox = ref.voxelize(pts, PILLARS, 32, 20000, "none")
    want = ref.pillar_features(want_vox, PILLARS, with_distance)
    count, _, vox, stream = run_voxelize(pts, PILLARS, 32, 20000, "none")
    m, f = count.voxels, want.shape[2]
    out = cuda.DeviceBuffer(max(m * 32 * f * 4, 4))
    pillar_point_features(vox.features.ptr, vox.num_points.ptr, vox.coords.ptr, m, 32, 4, PILLARS, with_distance,
                          out.ptr, stream)  # fmt: skip
    got = from_device(out, (m, 32, f), np.float32, stream)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    learned = np.random.default_rng(4).normal(size=(m, 16)).astype(np.float32)
    feat = upload(learned, stream)
    _, ny, nx = PILLARS.shape
    canvas = cuda.DeviceBuffer(16 * ny * nx * 4)
    scatter(feat.ptr, vox.coords.ptr, m, 16, PILLARS, canvas.ptr, stream)
    np.testing.assert_array_equal(
        from_device(canvas, (1, 16, ny, nx), np.float32, stream), ref.scatter(learned, want_vox.coords, PILLARS)
    )
    for b in (out, feat, canvas):
        b.free()
    vox.free()
