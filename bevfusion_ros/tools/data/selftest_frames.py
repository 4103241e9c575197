"""Frames the self-test can use on any machine: generated scenes (tools/data/scenes.py) seen by a synthetic
six-camera ring in the model's camera order. Backend agreement (TensorRT vs ONNX Runtime) does not
depend on real calibration, so nothing from a data set needs to ship; ``--bag`` uses real frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.tools.data import scenes

# Yaw (deg, counter-clockwise from the LiDAR's x axis) of each nuScenes camera name.
_YAW = {
    "CAM_FRONT": 0.0,
    "CAM_FRONT_RIGHT": -55.0,
    "CAM_FRONT_LEFT": 55.0,
    "CAM_BACK": 180.0,
    "CAM_BACK_LEFT": 110.0,
    "CAM_BACK_RIGHT": -110.0,
}
FIRST_SEED = 40_000_000  # apart from training (< 30 M), quantisation (30 M) and evaluation seeds


@dataclass(frozen=True)
class SyntheticFrame:
    images: list[npt.NDArray[np.uint8]]
    points: npt.NDArray[np.float32]
    rig: CameraRig
    seed: int


def ring_rig(names: tuple[str, ...], width: int, height: int) -> CameraRig:
    """Cameras 0.8 m from the LiDAR, 0.3 m below it, looking out horizontally at the nuScenes yaws
    (unknown names are spread evenly), ~64 degree horizontal field of view."""
    yaws = [_YAW.get(n, 360.0 * i / len(names)) for i, n in enumerate(names)]
    f = 0.8 * width
    k = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
    extrinsics = []
    for yaw in np.radians(yaws):
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        r = np.stack([right, down, forward])  # rows: camera x, y, z axes in the LiDAR frame
        centre = 0.8 * forward + np.array([0.0, 0.0, -0.3])
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = -r @ centre
        extrinsics.append(m)
    return CameraRig.create(names, [CameraIntrinsics.from_arrays(k, width, height)] * len(names), extrinsics)


def synthetic_frames(names: tuple[str, ...], count: int, first_seed: int = FIRST_SEED) -> Iterator[SyntheticFrame]:
    w, h = scenes.RENDER_SIZE
    rig = ring_rig(names, w, h)
    for seed in range(first_seed, first_seed + count):
        sc = scenes.generate_scene(seed)
        yield SyntheticFrame(scenes.render_cameras(sc, rig, w, h), scenes.lidar_sweep(sc), rig, seed)
