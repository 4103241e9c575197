"""The calibration file: per camera its frame, image size, K and the lidar->camera 4x4 transform.

    lidar_frame: lidar_top
    cameras:
      - {name: cam_front, frame_id: cam_front, width: 1600, height: 900,
         K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], lidar2cam: [[...4x4...]]}

``bevfusion-ros make-bag`` writes one next to every bag; on a vehicle it comes from the calibration
procedure (or the extrinsics come from TF, see the perception node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import CalibrationError, MessageError
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig, check_rigid
from bevfusion_ros.core.yamlfile import load_yaml


@dataclass(frozen=True)
class CameraCalibration:
    frame_id: str
    intrinsics: CameraIntrinsics
    lidar2cam: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Calibration:
    lidar_frame: str
    cameras: dict[str, CameraCalibration]  # by frame id

    def select(self, frames: Sequence[str]) -> list[CameraCalibration]:
        missing = [f for f in frames if f not in self.cameras]
        if missing:
            msg = f"calibration has no camera(s) {missing}; it has {sorted(self.cameras)}"
            raise CalibrationError(msg)
        return [self.cameras[f] for f in frames]

    def rig(
        self,
        names: Sequence[str],
        frames: Sequence[str],
        intrinsics: Sequence[CameraIntrinsics | None] | None = None,
        extrinsics: Sequence[npt.ArrayLike | None] | None = None,
    ) -> CameraRig:
        """The rig for ``names``; per-camera ``intrinsics``/``extrinsics`` override the file's where given."""
        sel = self.select(frames)
        ks: list[CameraIntrinsics] = []
        es: list[npt.NDArray[np.float64]] = []
        for i, c in enumerate(sel):
            k = intrinsics[i] if intrinsics else None
            e = extrinsics[i] if extrinsics else None
            ks.append(c.intrinsics if k is None else k)
            es.append(c.lidar2cam if e is None else np.asarray(e, np.float64))
        return CameraRig.create(tuple(names), ks, es)


def _camera(raw: Any, where: str) -> CameraCalibration:
    if not isinstance(raw, dict):
        msg = f"{where} must be a mapping with name, width, height, K, lidar2cam"
        raise CalibrationError(msg)
    missing = [k for k in ("width", "height", "K", "lidar2cam") if k not in raw]
    if missing or not ("frame_id" in raw or "name" in raw):
        msg = f"{where} lacks {', '.join(missing) or 'frame_id/name'}"
        raise CalibrationError(msg)
    try:
        intr = CameraIntrinsics.from_arrays(np.asarray(raw["K"], np.float64), int(raw["width"]), int(raw["height"]))
        mat = np.asarray(raw["lidar2cam"], np.float64)
    except (MessageError, ValueError, TypeError) as exc:
        msg = f"{where}: {exc}"
        raise CalibrationError(msg) from None
    if mat.shape != (4, 4):
        msg = f"{where}.lidar2cam must be 4x4, got shape {mat.shape}"
        raise CalibrationError(msg)
    return CameraCalibration(str(raw.get("frame_id", raw.get("name"))), intr, check_rigid(mat, f"{where}.lidar2cam"))


def load_calibration(path: Path | str) -> Calibration:
    path = Path(path)
    raw = load_yaml(path, "calibration file", CalibrationError)
    if not isinstance(raw, dict) or not isinstance(raw.get("cameras"), list):
        msg = f"calibration file {path} needs a 'cameras' list"
        raise CalibrationError(msg)
    cams = [_camera(c, f"{path.name}: cameras[{i}]") for i, c in enumerate(raw["cameras"])]
    return Calibration(str(raw.get("lidar_frame", "")), {c.frame_id: c for c in cams})
