"""Multi-sweep densification, as Autoware's BEVFusion / CenterPoint ``PointCloudDensification`` and
mmdetection3d's ``LoadPointsFromMultiSweeps`` build a VoxelNet model's input: the current sweep
plus up to ``sweeps - 1`` past ones, each moved into the current sweep's LiDAR frame by ego motion,
with a time-lag column (seconds before the current sweep; 0 for it).

Ego motion comes as each sweep's pose in a fixed frame (``fixed_from_lidar``, 4x4: the TF lookup
of odom/map -> LiDAR at the sweep's stamp, done by the caller). A sweep without a pose is never
used untransformed: a past one without a pose is left out and counted, and a current one without a
pose leaves every past one out (a single-sweep cloud). A past sweep whose pose puts it further from
the current one than a road vehicle can travel in the time between them (``MAX_EGO_SPEED``), or
whose relative pose is not a rotation, is left out too: a TF that jumped (a relocalisation, a
wrong frame, a broken odometry source) would smear every object over the grid. The buffer is
bounded by ``sweeps``; a stamp that goes backwards (a bag started over) empties it. The model's
point cap applies after densification: the oldest points go first, and how many is reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import ConfigError, InputError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

MAX_EGO_SPEED = 70.0  # m/s (252 km/h): faster implied ego motion between two sweeps is a broken pose
RIGID_TOL = 1e-3  # |R^T R - I| beyond this: a scaled or sheared "rotation", not a rigid motion


@dataclass(frozen=True)
class _Sweep:
    points: F32  # (N, 4) x, y, z, intensity in its own LiDAR frame
    stamp_s: float
    fixed_from_lidar: F64 | None


@dataclass(frozen=True)
class DensifiedCloud:
    points: F32  # (M, 5) x, y, z, intensity, time lag in the current LiDAR frame
    sweeps_used: int
    sweeps_left_out: int  # past sweeps in the buffer that could not be placed (no pose: theirs or the current one's)
    points_over_cap: int = 0  # oldest points cut to keep max_points
    sweeps_implausible: int = 0  # past sweeps left out: their pose moves faster than MAX_EGO_SPEED or is not rigid
    implausible: str = ""  # the worst of them, in words


class SweepBuffer:
    def __init__(self, sweeps: int, max_points: int | None = None) -> None:
        if sweeps < 1:
            msg = f"lidar sweeps must be >= 1, got {sweeps}"
            raise ConfigError(msg)
        self.sweeps = sweeps
        self.max_points = max_points
        self._past: deque[_Sweep] = deque(maxlen=max(sweeps - 1, 1))

    @property
    def newest_stamp_s(self) -> float | None:
        return self._past[-1].stamp_s if self._past else None

    def remember(self, points: npt.ArrayLike, stamp_s: float, fixed_from_lidar: npt.ArrayLike | None) -> None:
        """Keep a sweep for the next ones without densifying it (one the caller had no time to process)."""
        current = self._sweep(points, stamp_s, fixed_from_lidar)
        if self.sweeps > 1:
            self._past.append(current)

    def _sweep(self, points: npt.ArrayLike, stamp_s: float, fixed_from_lidar: npt.ArrayLike | None) -> _Sweep:
        p = np.asarray(points, np.float32)
        if p.ndim != 2 or p.shape[1] < 4:
            msg = f"a sweep must be (N, >=4) with x, y, z, intensity columns, got shape {p.shape}"
            raise InputError(msg)
        pose = None if fixed_from_lidar is None else np.asarray(fixed_from_lidar, np.float64)
        if pose is not None and (pose.shape != (4, 4) or not np.isfinite(pose).all()):
            msg = f"a sweep's pose must be a finite 4x4 transform, got shape {pose.shape}"
            raise InputError(msg)
        if self._past and stamp_s <= self._past[-1].stamp_s:
            self._past.clear()  # time went backwards: a bag restarted, the old sweeps are not the past
        return _Sweep(np.ascontiguousarray(p[:, :4]), float(stamp_s), pose)

    def add(self, points: npt.ArrayLike, stamp_s: float, fixed_from_lidar: npt.ArrayLike | None) -> DensifiedCloud:
        """The densified cloud at this sweep; the sweep is then kept for the next ones."""
        current = self._sweep(points, stamp_s, fixed_from_lidar)
        p, pose = current.points, current.fixed_from_lidar
        parts = [np.concatenate([p, np.zeros((len(p), 1), np.float32)], axis=1)]
        missing = implausible = 0
        worst = ""
        if self.sweeps > 1:
            if pose is None:
                missing = len(self._past)
            else:
                current_from_fixed = np.linalg.inv(pose)
                for past in reversed(self._past):
                    if past.fixed_from_lidar is None:
                        missing += 1
                        continue
                    t = current_from_fixed @ past.fixed_from_lidar
                    why = _implausible(t, stamp_s - past.stamp_s)
                    if why:
                        implausible += 1
                        worst = worst or why
                        continue
                    xyz = past.points[:, :3].astype(np.float64) @ t[:3, :3].T + t[:3, 3]
                    lag = np.full((len(xyz), 1), stamp_s - past.stamp_s, np.float32)
                    parts.append(np.concatenate([xyz.astype(np.float32), past.points[:, 3:4], lag], axis=1))
            self._past.append(current)
        cloud = np.concatenate(parts)
        over = 0 if self.max_points is None else max(0, len(cloud) - self.max_points)
        return DensifiedCloud(cloud[: len(cloud) - over], len(parts), missing, over, implausible, worst)


def _implausible(current_from_past: F64, dt_s: float) -> str:
    """Why a past sweep's pose relative to the current one cannot be ego motion ('' when it can)."""
    r = current_from_past[:3, :3]
    off = float(np.abs(r.T @ r - np.eye(3)).max())
    if off > RIGID_TOL:
        return f"its pose is not a rigid motion (rotation off orthonormal by {off:.3g})"
    dist, dt = float(np.linalg.norm(current_from_past[:3, 3])), max(dt_s, 1e-3)
    if dist > MAX_EGO_SPEED * dt:
        return f"its pose is {dist:.1f} m away {dt_s:.2f} s earlier ({dist / dt:.0f} m/s, over {MAX_EGO_SPEED:.0f} m/s)"
    return ""
