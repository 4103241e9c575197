"""core/sensors/sweeps.py: past sweeps land where the same world points are in the current sweep,
with their time lag; the buffer is bounded; a sweep without a pose is never used untransformed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bevfusion_ros.core.errors import ConfigError, InputError
from bevfusion_ros.core.sensors.sweeps import SweepBuffer


def pose(x: float, y: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    t = np.eye(4)
    t[:2, :2] = [[c, -s], [s, c]]
    t[:2, 3] = [x, y]
    return t


WORLD = np.asarray([[10.0, 0.0, 1.0, 7.0], [5.0, -3.0, 0.5, 20.0], [-8.0, 4.0, 2.0, 99.0]])


def seen_from(fixed_from_lidar: np.ndarray) -> np.ndarray:
    """The world points in the LiDAR frame at that pose (intensity kept)."""
    lidar_from_fixed = np.linalg.inv(fixed_from_lidar)
    xyz = WORLD[:, :3] @ lidar_from_fixed[:3, :3].T + lidar_from_fixed[:3, 3]
    return np.concatenate([xyz, WORLD[:, 3:]], axis=1).astype(np.float32)


def test_past_sweeps_move_into_the_current_frame_with_their_time_lag() -> None:
    buf = SweepBuffer(3)
    poses = [pose(0.0, 0.0, 0.0), pose(1.0, 0.2, 0.1), pose(2.5, 0.5, 0.4)]
    for k, p in enumerate(poses):
        cloud = buf.add(seen_from(p), 100.0 + 0.05 * k, p)
    assert cloud.sweeps_used == 3 and cloud.sweeps_left_out == 0
    current = seen_from(poses[-1])
    pts = cloud.points.reshape(3, len(WORLD), 5)  # newest first
    for k in range(3):
        np.testing.assert_allclose(pts[k, :, :4], current, atol=1e-4)  # the same world points, same intensity
    np.testing.assert_allclose(pts[:, 0, 4], [0.0, 0.05, 0.10], atol=1e-6)


def test_the_buffer_keeps_only_the_model_s_sweeps() -> None:
    buf = SweepBuffer(3)
    for k in range(6):
        cloud = buf.add(seen_from(pose(k, 0, 0)), float(k), pose(k, 0, 0))
    assert cloud.sweeps_used == 3 and len(cloud.points) == 3 * len(WORLD)
    assert sorted(set(cloud.points[:, 4].tolist())) == [0.0, 1.0, 2.0]


def test_a_single_sweep_model_gets_a_zero_time_lag_column() -> None:
    buf = SweepBuffer(1)
    for k in range(3):
        cloud = buf.add(WORLD, float(k), None)
    assert cloud.points.shape == (len(WORLD), 5) and not cloud.points[:, 4].any() and cloud.sweeps_left_out == 0


def test_a_sweep_without_a_pose_is_never_used_untransformed() -> None:
    buf = SweepBuffer(4)
    buf.add(seen_from(pose(0, 0, 0)), 0.0, pose(0, 0, 0))
    buf.add(seen_from(pose(1, 0, 0)), 0.1, None)  # its TF lookup failed
    cloud = buf.add(seen_from(pose(2, 0, 0)), 0.2, pose(2, 0, 0))
    assert cloud.sweeps_used == 2 and cloud.sweeps_left_out == 1
    np.testing.assert_allclose(cloud.points[len(WORLD) :, :3], seen_from(pose(2, 0, 0))[:, :3], atol=1e-4)
    # the current sweep's own pose missing: nothing in the past can be placed
    cloud = buf.add(seen_from(pose(3, 0, 0)), 0.3, None)
    assert cloud.sweeps_used == 1 and cloud.sweeps_left_out == 3


def test_time_going_backwards_starts_over() -> None:
    buf = SweepBuffer(3)
    buf.add(WORLD, 5.0, np.eye(4))
    buf.add(WORLD, 5.1, np.eye(4))
    cloud = buf.add(WORLD, 1.0, np.eye(4))  # the bag was played again
    assert cloud.sweeps_used == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="sweeps must be >= 1"):
        SweepBuffer(0)
    with pytest.raises(InputError, match="x, y, z, intensity"):
        SweepBuffer(2).add(np.zeros((4, 3)), 0.0, np.eye(4))
    with pytest.raises(InputError, match="finite 4x4"):
        SweepBuffer(2).add(WORLD, 0.0, np.full((4, 4), np.nan))


def test_the_point_cap_applies_after_densification_oldest_points_first() -> None:
    buf = SweepBuffer(3, max_points=7)
    for k in range(3):
        cloud = buf.add(WORLD, float(k), np.eye(4))
    assert len(cloud.points) == 7 and cloud.points_over_cap == 2 and cloud.sweeps_used == 3
    assert cloud.points[:6, 4].tolist() == [0.0] * 3 + [1.0] * 3 and cloud.points[6, 4] == 2.0


def test_a_pose_that_jumps_or_is_not_rigid_leaves_its_sweeps_out_and_says_why() -> None:
    buf = SweepBuffer(4)
    buf.add(seen_from(pose(0, 0, 0)), 0.0, pose(0, 0, 0))
    buf.add(seen_from(pose(1, 0, 0)), 0.1, pose(1, 0, 0))  # 10 m/s: a car
    # the odometry relocalises 500 m away: the two sweeps before it cannot be moved into this one
    cloud = buf.add(seen_from(pose(500, 0, 0)), 0.2, pose(500, 0, 0))
    assert (cloud.sweeps_used, cloud.sweeps_implausible, cloud.sweeps_left_out) == (1, 2, 0)
    assert "499.0 m away 0.10 s earlier (4990 m/s, over 70 m/s)" in cloud.implausible
    # from the new pose on, motion is plausible again: the jumped sweep is the past
    cloud = buf.add(seen_from(pose(501, 0, 0)), 0.3, pose(501, 0, 0))
    assert (cloud.sweeps_used, cloud.sweeps_implausible) == (2, 2)
    placed = cloud.points[len(WORLD) : 2 * len(WORLD), :3]
    np.testing.assert_allclose(placed, seen_from(pose(501, 0, 0))[:, :3], atol=1e-3)
    sheared = pose(502, 0, 0)
    sheared[:3, :3] *= 1.01  # a scaled "rotation": a broken quaternion turned into a matrix
    cloud = buf.add(seen_from(pose(502, 0, 0)), 0.4, sheared)
    assert cloud.sweeps_implausible == 3 and "not a rigid motion" in cloud.implausible


def test_the_ego_speed_limit_is_a_vehicle_s() -> None:
    buf = SweepBuffer(2)
    buf.add(seen_from(pose(0, 0, 0)), 0.0, pose(0, 0, 0))
    assert buf.add(seen_from(pose(6.9, 0, 0)), 0.1, pose(6.9, 0, 0)).sweeps_implausible == 0  # 69 m/s
    assert buf.add(seen_from(pose(14.0, 0, 0)), 0.2, pose(14.0, 0, 0)).sweeps_implausible == 1  # 71 m/s
