"""scenes.drive: the multi-sweep frames the VoxelNet model trains and is scored on. Past sweeps must
land where the node's SweepBuffer would put them: static objects stay put, moving ones trail behind."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bevfusion_ros.tools.data import scenes

SWEEPS = 5


def inside(points: npt.NDArray[np.float32], center: npt.NDArray, size: npt.NDArray, yaw: float) -> npt.NDArray:
    d = points[:, :2] - center[:2]
    c, s = np.cos(yaw), np.sin(yaw)
    along, across = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    return (np.abs(along) <= size[0] / 2 + 0.3) & (np.abs(across) <= size[1] / 2 + 0.3)


def hits_per_lag(cloud: npt.NDArray[np.float32], center: npt.NDArray, size: npt.NDArray, yaw: float) -> list[int]:
    lags = np.round(cloud[:, 4], 3)
    return [int(inside(cloud[lags == round(k / 10, 3)], center, size, yaw).sum()) for k in range(SWEEPS)]


def test_a_drive_yields_densified_frames_with_a_time_lag_per_sweep() -> None:
    frames = scenes.drive(3, SWEEPS, frames=2, ego_speed=8.0)
    assert len(frames) == 2
    for _, cloud in frames:
        assert cloud.shape[1] == 5
        assert np.allclose(np.unique(np.round(cloud[:, 4], 3)), [0.0, 0.1, 0.2, 0.3, 0.4])
    assert not np.array_equal(frames[0][1], frames[1][1])


def test_static_objects_collect_points_from_every_sweep_despite_ego_motion() -> None:
    scene, cloud = scenes.drive(3, SWEEPS, frames=1, ego_speed=12.0)[-1]
    b = scene.boxes
    still = np.flatnonzero((np.hypot(*b.velocities.T) == 0) & (np.hypot(*b.centers[:, :2].T) < 25))
    assert still.size
    counts = np.array([hits_per_lag(cloud, b.centers[i], b.sizes[i], b.yaw[i]) for i in still])
    seen = counts[:, 0] > 5
    assert seen.any()
    # 4.8 m of ego travel over the window: without compensation the oldest sweep would miss them
    assert (counts[seen, -1] > 0).all(), counts


def test_moving_objects_trail_their_past_points_behind_them() -> None:
    scene, cloud = scenes.drive(3, SWEEPS, frames=1, ego_speed=0.0)[-1]
    b = scene.boxes
    speed = np.hypot(*b.velocities.T)
    fast = np.flatnonzero((speed > 6.0) & (np.hypot(*b.centers[:, :2].T) < 30))
    checked = 0
    for i in fast:
        now = hits_per_lag(cloud, b.centers[i], b.sizes[i], b.yaw[i])
        back = b.centers[i].copy()
        back[:2] -= b.velocities[i] * 0.4
        then = hits_per_lag(cloud, back, b.sizes[i], b.yaw[i])
        if now[0] < 30:  # hidden from the LiDAR, or too few points to tell
            continue
        # older sweeps saw it further back along its velocity: hits move from where it is now to
        # where it was 0.4 s ago (the two boxes overlap for long vehicles)
        assert now[0] > now[-1] and then[-1] > then[0], (now, then)
        checked += 1
    assert checked >= 1
