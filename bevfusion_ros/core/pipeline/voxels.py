"""The LiDAR front ends of real BEVFusion exports, vectorised numpy (CUDA twins beside the other
kernels): hard voxelisation, PointPillars' per-point pillar features, and the scatter of pillar
features onto the BEV canvas.

Semantics follow mmdetection3d / mmcv (``Voxelization`` with ``max_num_points`` > 0, i.e. hard
voxelisation; ``PillarFeatureNet``; ``PointPillarsScatter``), which CUDA-BEVFusion and Autoware's
BEVFusion reproduce:
* a point belongs to voxel ``floor((p - range_min) / voxel_size)`` when that index is inside the grid;
* voxels are numbered in the order their first point appears in the input, and only the first
  ``max_voxels`` of them are kept; each keeps its first ``max_points`` points in input order;
* coordinates are (batch, z, y, x), as spconv and the scatter expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import ConfigError, InputError
from bevfusion_ros.core.model import REDUCE, VoxelGrid
from bevfusion_ros.core.pipeline.preprocess import run_starts

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Voxels:
    """``features``: [M, C] (reduce mean) or [M, max_points, C] zero-padded (reduce none);
    ``num_points``: [M] points kept per voxel; ``coords``: [M, 4] int32 (batch 0, z, y, x)."""

    features: F32
    num_points: I32
    coords: I32
    dropped_voxels: int  # voxels beyond max_voxels (their points are lost)
    dropped_points: int  # points beyond max_points in a kept voxel


def voxelize(points: npt.ArrayLike, grid: VoxelGrid, max_points: int, max_voxels: int, reduce: str = "mean") -> Voxels:
    """Hard voxelisation of (N, C) points whose first three columns are x, y, z."""
    if reduce not in REDUCE:
        msg = f"voxelize reduce must be one of {', '.join(REDUCE)}, got {reduce!r}"
        raise ConfigError(msg)
    p = np.asarray(points, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] < 3:
        msg = f"points must be (N, >=3) with x, y, z first, got shape {p.shape}"
        raise InputError(msg)
    nz, ny, nx = grid.shape
    lo = np.asarray(grid.point_cloud_range[:3], np.float32)
    size = np.asarray(grid.voxel_size, np.float32)
    finite = np.asarray(np.isfinite(p[:, :3]).all(axis=1))
    # clipped to one cell beyond the grid first: NaN and huge coordinates do not survive an int cast
    scaled = np.where(finite[:, None], (p[:, :3] - lo) / size, -1.0)
    cell = np.floor(np.clip(scaled, -1.0, np.asarray([nx, ny, nz], np.float32))).astype(np.int64)  # x, y, z
    inside = finite & (cell >= 0).all(axis=1) & (cell[:, 0] < nx) & (cell[:, 1] < ny) & (cell[:, 2] < nz)
    index = np.flatnonzero(inside)
    key = (cell[index, 2] * ny + cell[index, 1]) * nx + cell[index, 0]
    # One stable sort does it all: runs of equal keys are the voxels, the first of a run is the
    # voxel's first point in input order, and a point's place in its run is its rank in the voxel.
    perm = np.argsort(key, kind="stable")
    sorted_key = key[perm]
    starts = run_starts(sorted_key) if sorted_key.size else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, sorted_key.size])
    order = np.argsort(perm[starts], kind="stable")  # voxels numbered by their first point's position
    voxel_of_run = np.empty_like(order)
    voxel_of_run[order] = np.arange(order.size)
    voxel = np.repeat(voxel_of_run, lengths)  # per sorted point
    rank = np.arange(sorted_key.size) - np.repeat(starts, lengths)
    kept_voxels = min(order.size, max_voxels)
    in_kept = voxel < kept_voxels
    keep = in_kept & (rank < max_points)
    v, r, rows = voxel[keep], rank[keep], index[perm[keep]]
    num_points = np.bincount(v, minlength=kept_voxels).astype(np.int32)
    c = p.shape[1]
    if reduce == "mean":
        sums = np.stack([np.bincount(v, p[rows, j], minlength=kept_voxels) for j in range(c)], axis=1)
        features = (sums / np.maximum(num_points, 1)[:, None]).astype(np.float32).reshape(kept_voxels, c)
    else:
        features = np.zeros((kept_voxels, max_points, c), np.float32)
        features[v, r] = p[rows]
    unique_keys = sorted_key[starts]
    k = unique_keys[order[:kept_voxels]]
    coords = np.zeros((kept_voxels, 4), np.int32)
    coords[:, 1], rest = np.divmod(k, ny * nx)
    coords[:, 2], coords[:, 3] = np.divmod(rest, nx)
    dropped_voxels = int(order.size - kept_voxels)
    dropped_points = int(np.count_nonzero(in_kept & (rank >= max_points)))
    return Voxels(features, num_points, coords, dropped_voxels, dropped_points)


def pillar_features(voxels: Voxels, grid: VoxelGrid, with_distance: bool = False) -> F32:
    """PointPillars' augmented point features, [M, P, C + 5 (+1)]: the point's own C columns, its
    x, y, z offset to the mean of its pillar's points, its x, y offset to the pillar's centre, and
    with ``with_distance`` its distance to the origin inserted after the C columns; padded slots
    are all zero. Needs ``voxelize(..., reduce="none")``."""
    pts = voxels.features
    if pts.ndim != 3:
        msg = f"pillar_features needs voxelize reduce: none ([M, max_points, C] points), got shape {pts.shape}"
        raise ConfigError(msg)
    m, slots, _ = pts.shape
    n = voxels.num_points.astype(np.float32)
    mask = (np.arange(slots)[None, :] < voxels.num_points[:, None])[:, :, None]
    mean = pts[:, :, :3].sum(axis=1) / np.maximum(n, 1)[:, None]
    cluster = pts[:, :, :3] - mean[:, None, :]
    r, v = grid.point_cloud_range, grid.voxel_size
    centre_x = voxels.coords[:, 3].astype(np.float32) * v[0] + (v[0] / 2 + r[0])
    centre_y = voxels.coords[:, 2].astype(np.float32) * v[1] + (v[1] / 2 + r[1])
    centre = pts[:, :, :2] - np.stack([centre_x, centre_y], axis=1)[:, None, :]
    parts: list[Any] = [pts]
    if with_distance:
        parts.append(np.linalg.norm(pts[:, :, :3], axis=2, keepdims=True))
    parts += [cluster, centre]
    out = np.concatenate(parts, axis=2).astype(np.float32, copy=False)
    return np.where(mask, out, np.float32(0)).reshape(m, slots, -1)


def scatter(features: npt.ArrayLike, coords: npt.ArrayLike, grid: VoxelGrid) -> F32:
    """Pillar features [M, C] at coords (batch, z, y, x) -> the dense BEV canvas [1, C, ny, nx]."""
    f = np.asarray(features, np.float32)
    c = np.asarray(coords)
    _, ny, nx = grid.shape
    if f.ndim != 2 or c.shape != (f.shape[0], 4):
        msg = f"scatter needs features [M, C] and coords [M, 4], got {f.shape} and {c.shape}"
        raise InputError(msg)
    canvas = np.zeros((f.shape[1], ny * nx), np.float32)
    canvas[:, c[:, 2].astype(np.int64) * nx + c[:, 3].astype(np.int64)] = f.T
    return canvas.reshape(1, f.shape[1], ny, nx)
