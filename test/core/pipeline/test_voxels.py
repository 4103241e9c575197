"""core/pipeline/voxels.py against straightforward per-point loops written from mmcv's hard
voxelisation and mmdetection3d's PillarFeatureNet / PointPillarsScatter: random clouds on small
grids (caps hit on purpose), the empty and all-outside cases, and the real nuScenes sweep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_variants import pointpillars_yaml

from bevfusion_ros.core.errors import ConfigError, InputError
from bevfusion_ros.core.model import VoxelGrid
from bevfusion_ros.core.pipeline.voxels import pillar_features, scatter, voxelize

SMALL = VoxelGrid((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), (1.0, 1.0, 1.0))  # 4 x 8 x 8 cells
PILLARS = VoxelGrid((-4.0, -4.0, -2.0, 4.0, 4.0, 2.0), (0.5, 0.5, 4.0))  # 1 x 16 x 16


def reference_voxelize(points: Any, grid: VoxelGrid, max_points: int, max_voxels: int) -> dict[str, Any]:
    """mmcv's hard_voxelize, one point at a time."""
    nz, ny, nx = grid.shape
    r, v = grid.point_cloud_range, grid.voxel_size
    ids: dict[tuple[int, int, int], int] = {}
    members: list[list[Any]] = []
    coords: list[tuple[int, int, int, int]] = []
    dropped_points = 0
    for p in points:
        if not all(math.isfinite(float(x)) for x in p[:3]):
            continue
        c = [math.floor((float(p[i]) - r[i]) / v[i]) for i in range(3)]
        if not (0 <= c[0] < nx and 0 <= c[1] < ny and 0 <= c[2] < nz):
            continue
        key = (c[2], c[1], c[0])
        if key not in ids:
            if len(ids) >= max_voxels:
                ids[key] = -1  # seen, but over the cap
                continue
            ids[key] = len(members)
            members.append([])
            coords.append((0, *key))
        i = ids[key]
        if i < 0:
            continue
        if len(members[i]) < max_points:
            members[i].append(np.asarray(p, np.float32))
        else:
            dropped_points += 1
    return {
        "members": members,
        "coords": np.asarray(coords, np.int32).reshape(-1, 4),
        "dropped_voxels": sum(1 for i in ids.values() if i < 0),
        "dropped_points": dropped_points,
    }


def random_cloud(n: int, seed: int, spread: float = 5.0) -> Any:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-spread, spread, (n, 4)).astype(np.float32)
    pts[:, 2] *= 0.5
    return pts


@pytest.mark.parametrize(("n", "max_points", "max_voxels"), [(400, 5, 1000), (400, 3, 40), (2000, 100, 1000)])
def test_voxelize_matches_the_reference(n: int, max_points: int, max_voxels: int) -> None:
    pts = random_cloud(n, n + max_points)
    ref = reference_voxelize(pts, SMALL, max_points, max_voxels)
    mean = voxelize(pts, SMALL, max_points, max_voxels, "mean")
    full = voxelize(pts, SMALL, max_points, max_voxels, "none")
    np.testing.assert_array_equal(mean.coords, ref["coords"])
    np.testing.assert_array_equal(full.coords, ref["coords"])
    assert mean.num_points.tolist() == [len(m) for m in ref["members"]]
    want_mean = np.stack([np.mean(m, axis=0) for m in ref["members"]])
    np.testing.assert_allclose(mean.features, want_mean, rtol=1e-6, atol=1e-6)
    assert full.features.shape == (len(ref["members"]), max_points, 4)
    for got, members, k in zip(full.features, ref["members"], full.num_points, strict=True):
        np.testing.assert_array_equal(got[:k], np.stack(members))
        assert not got[k:].any()
    assert (mean.dropped_voxels, mean.dropped_points) == (ref["dropped_voxels"], ref["dropped_points"])
    if max_voxels == 40:
        assert mean.dropped_voxels > 0 and mean.dropped_points > 0  # both caps were hit


def test_voxelize_edge_cases() -> None:
    empty = voxelize(np.zeros((0, 4), np.float32), SMALL, 5, 10)
    assert empty.features.shape == (0, 4) and empty.coords.shape == (0, 4) and empty.num_points.shape == (0,)
    outside = voxelize(np.array([[9.0, 0, 0, 1], [0, 0, 2.0, 1], [-4.01, 0, 0, 1]], np.float32), SMALL, 5, 10)
    assert outside.features.shape == (0, 4)  # x beyond, z at the (exclusive) top, x below
    nan = voxelize(np.array([[np.nan, 0, 0, 1], [0.5, 0.5, 0.5, 2]], np.float32), SMALL, 5, 10)
    assert nan.coords.tolist() == [[0, 2, 4, 4]] and nan.features.tolist() == [[0.5, 0.5, 0.5, 2.0]]
    with pytest.raises(InputError, match=r"\(N, >=3\)"):
        voxelize(np.zeros((3,), np.float32), SMALL, 5, 10)
    with pytest.raises(ConfigError, match="reduce must be one of mean, none"):
        voxelize(np.zeros((1, 4), np.float32), SMALL, 5, 10, "max")
    with pytest.raises(ConfigError, match=r"lidar\.voxel_size must be positive"):
        VoxelGrid((0, 0, 0, 1, 1, 1), (0.0, 1.0, 1.0)).validate("lidar")


def test_voxelize_the_real_sweep(frame) -> None:  # type: ignore[no-untyped-def]
    grid = VoxelGrid((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), (0.075, 0.075, 0.2))  # CUDA-BEVFusion's
    assert grid.shape == (40, 1440, 1440)
    pts = np.asarray(frame.points, np.float32)
    ref = reference_voxelize(pts[:4000], grid, 10, 120000)
    got = voxelize(pts[:4000], grid, 10, 120000)
    np.testing.assert_array_equal(got.coords, ref["coords"])
    whole = voxelize(pts, grid, 10, 120000)
    assert whole.num_points.sum() + whole.dropped_points <= len(pts) and whole.dropped_voxels == 0
    assert len(np.unique(whole.coords, axis=0)) == len(whole.coords)  # one row per voxel


def reference_pillar_features(pts: Any, grid: VoxelGrid, with_distance: bool) -> Any:
    vox = reference_voxelize(pts, grid, 8, 1000)
    r, v = grid.point_cloud_range, grid.voxel_size
    out = np.zeros((len(vox["members"]), 8, 4 + 5 + int(with_distance)), np.float32)
    for i, (members, c) in enumerate(zip(vox["members"], vox["coords"], strict=True)):
        mean = np.mean([m[:3] for m in members], axis=0)
        cx, cy = c[3] * v[0] + v[0] / 2 + r[0], c[2] * v[1] + v[1] / 2 + r[1]
        for j, m in enumerate(members):
            extra = [float(np.linalg.norm(m[:3]))] if with_distance else []
            out[i, j] = [*m, *extra, *(m[:3] - mean), m[0] - cx, m[1] - cy]
    return out


@pytest.mark.parametrize("with_distance", [False, True])
def test_pillar_features_match_the_reference(with_distance: bool) -> None:
    pts = random_cloud(600, 7, spread=4.5)
    got = pillar_features(voxelize(pts, PILLARS, 8, 1000, "none"), PILLARS, with_distance)
    np.testing.assert_allclose(got, reference_pillar_features(pts, PILLARS, with_distance), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="needs voxelize reduce: none"):
        pillar_features(voxelize(pts, PILLARS, 8, 1000, "mean"), PILLARS)


def test_scatter_puts_each_pillar_at_its_cell() -> None:
    pts = random_cloud(600, 9, spread=4.5)
    vox = voxelize(pts, PILLARS, 8, 1000, "mean")
    feats = np.arange(len(vox.coords) * 3, dtype=np.float32).reshape(-1, 3) + 1
    bev = scatter(feats, vox.coords, PILLARS)
    want = np.zeros((1, 3, 16, 16), np.float32)
    for f, (_, _, y, x) in zip(feats, vox.coords, strict=True):
        want[0, :, y, x] = f
    np.testing.assert_array_equal(bev, want)
    assert scatter(np.zeros((0, 3), np.float32), np.zeros((0, 4), np.int32), PILLARS).shape == (1, 3, 16, 16)
    with pytest.raises(InputError, match=r"features \[M, C\] and coords \[M, 4\]"):
        scatter(feats, vox.coords[:, :3], PILLARS)


# -- a PointPillars branch in a whole model ------------------------------------------------------------


def test_a_pointpillars_branch_runs_in_the_pipeline(tmp_path: Path, frame, rig) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.model import load_model
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    spec = load_model(pointpillars_yaml(tmp_path))
    branch = ("lidar.voxelize", "lidar.pillar_features", "lidar.pfn", "lidar.scatter")
    assert [spec.stage(n).kind.value for n in branch] == ["voxelize", "pillar_features", "onnx", "scatter"]
    with Pipeline(spec, "onnxruntime") as pipe:
        pipe.set_calibration(rig)
        result = pipe([c.image_bgr for c in frame.cameras], frame.points, keep_tensors=True)
    t = result.tensors
    m = len(t["pillar_coords"])
    assert t["pillar_points"].shape == (m, 16, 4) and t["pillar_point_features"].shape == (m, 16, 9)
    assert t["pillar_features"].shape == (m, 5) and t["lidar_pillars"].shape == (1, 5, 256, 256)
    _, _, y, x = t["pillar_coords"].T
    np.testing.assert_array_equal(t["lidar_pillars"][0][:, y, x].T, t["pillar_features"])  # scattered in place
    assert 1000 < m <= 30000 and result.points_used > 0
    assert {"lidar.voxelize", "lidar.pillar_features", "lidar.scatter"} <= set(result.timings_ms)
    assert result.lidar_dropped.get("lidar.voxelize.points_over_max_points", 0) > 0  # 16 points per pillar


def test_the_caps_are_reported_per_frame(tmp_path: Path, frame, rig) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.model import load_model
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    spec = load_model(pointpillars_yaml(tmp_path, max_voxels=500))
    with Pipeline(spec, "onnxruntime") as pipe:
        pipe.set_calibration(rig)
        result = pipe([c.image_bgr for c in frame.cameras], frame.points)
    want = voxelize(frame.points[:, :4], spec.stage("lidar.voxelize").voxels.grid, 16, 500, "none")
    assert result.lidar_dropped == {
        "lidar.voxelize.voxels_over_max_voxels": want.dropped_voxels,
        "lidar.voxelize.points_over_max_points": want.dropped_points,
    }
    assert want.dropped_voxels > 1000


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ({"reduce": "max"}, "stages.lidar.voxelize.reduce is 'max'; allowed: mean, none"),
        ({"max_voxels": 0}, "stages.lidar.voxelize.max_voxels must be >= 1"),
        ({"voxel_size": [0.4, 0.4]}, "stages.lidar.voxelize.voxel_size must be a list of 3 numbers"),
        ({"max_pillars": 5}, "unknown key(s) max_pillars for a voxelize stage; allowed: kind, inputs, outputs"),
        ({"max_points": 8}, "stages.lidar.voxelize.outputs.pillar_points must be [-1, max_points=8, C]"),
        ({"reduce": "mean"}, "stages.lidar.voxelize.outputs must be features [-1, C], optionally num_points"),
    ],
)
def test_voxel_stage_keys_are_validated_at_load(tmp_path: Path, keys: dict[str, Any], fragment: str) -> None:
    from bevfusion_ros.core.model import load_model

    with pytest.raises(ConfigError) as err:
        load_model(pointpillars_yaml(tmp_path, **keys))
    assert fragment in str(err.value)
