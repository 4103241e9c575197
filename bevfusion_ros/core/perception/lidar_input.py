"""A frame's LiDAR input as the model reads it: the decoded sweep, densified with past sweeps when
the model was trained on several (core/sensors/sweeps.py). The node and offline replay both call
``densify`` and report its problems their own way (node diagnostics, replay drop counts)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.sensors.sweeps import SweepBuffer

Problem = tuple[str, str]  # (cause counted in diagnostics, message)


def densify(
    sweeps: SweepBuffer | None,
    points: npt.NDArray[np.float32],
    stamp_ns: int,
    fixed_from_lidar: npt.NDArray[np.float64] | None,
    where: str,
) -> tuple[npt.NDArray[np.float32], list[Problem]]:
    """``where`` names the pose's source for the messages (e.g. "TF odom -> lidar_top")."""
    if sweeps is None:
        return points, []
    cloud = sweeps.add(points, stamp_ns * 1e-9, fixed_from_lidar)
    problems: list[Problem] = []
    if cloud.sweeps_left_out:
        why = "for the current sweep" if fixed_from_lidar is None else "at their stamps"
        problems.append(
            (
                "sweeps_without_pose",
                f"{cloud.sweeps_left_out} past sweep(s) left out at {stamp_ns} ns: no {where} {why}; "
                f"{cloud.sweeps_used} of {sweeps.sweeps} sweeps used",
            )
        )
    if cloud.sweeps_implausible:
        problems.append(
            (
                "implausible_ego_motion",
                f"{cloud.sweeps_implausible} past sweep(s) left out at {stamp_ns} ns: {where}: {cloud.implausible}; "
                f"{cloud.sweeps_used} of {sweeps.sweeps} sweeps used",
            )
        )
    if cloud.points_over_cap:
        problems.append(
            ("lidar_capped", f"densified sweeps exceed lidar.max_points: the {cloud.points_over_cap} oldest points cut")
        )
    return cloud.points, problems
