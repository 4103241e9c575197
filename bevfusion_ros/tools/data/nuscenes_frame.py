"""Reader for the one-frame nuScenes export in ``../shared/data/nuscenes_frame`` (frame.json).

The data stays where it is (CC BY-NC-SA); this only reads it, for bags and geometry checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import DataError
from bevfusion_ros.core.optional import import_cv2
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig, scale_intrinsics

LIDAR_FIELDS = ("x", "y", "z", "intensity", "ring")


@dataclass(frozen=True)
class FrameCamera:
    name: str
    image_bgr: npt.NDArray[np.uint8]
    intrinsics: CameraIntrinsics
    lidar2cam: npt.NDArray[np.float64]
    cam2ego: npt.NDArray[np.float64]
    timestamp: float


@dataclass(frozen=True)
class NuScenesFrame:
    token: str
    timestamp: float
    cameras: tuple[FrameCamera, ...]
    points: npt.NDArray[np.float32]  # (N, 5): x, y, z, intensity, ring in the LIDAR_TOP frame
    lidar2ego: npt.NDArray[np.float64]
    boxes: Detections  # geometric centres, LIDAR_TOP frame, valid boxes of the 10 classes
    class_names: tuple[str, ...]


def _matrix(value: object, shape: tuple[int, int], where: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        msg = f"{where} has shape {arr.shape}, expected {shape}"
        raise DataError(msg)
    return arr


def load_frame(folder: Path | str, decode_images: bool = True) -> NuScenesFrame:
    folder = Path(folder)
    meta_path = folder / "frame.json"
    if not meta_path.is_file():
        msg = f"no frame.json in {folder}: expected the nuScenes frame export (../shared/data/nuscenes_frame)"
        raise DataError(msg)
    meta = json.loads(meta_path.read_text())
    cv2 = import_cv2() if decode_images else None
    cams = []
    for name, cam in meta["cameras"].items():
        img = np.zeros((0, 0, 3), np.uint8)
        if cv2 is not None:
            decoded = cv2.imread(str(folder / cam["file"]), cv2.IMREAD_COLOR)
            if decoded is None:
                msg = f"camera {name}: image {cam['file']} is missing or unreadable in {folder}"
                raise DataError(msg)
            img = decoded
        k = _matrix(cam["cam2img"], (3, 3), f"{name}.cam2img")
        h, w = img.shape[:2] if img.size else (900, 1600)
        cams.append(
            FrameCamera(
                name,
                img,
                CameraIntrinsics.from_arrays(k, w, h, "plumb_bob", np.zeros(5)),
                _matrix(cam["lidar2cam"], (4, 4), f"{name}.lidar2cam"),
                _matrix(cam["cam2ego"], (4, 4), f"{name}.cam2ego"),
                float(cam["timestamp"]),
            )
        )
    lidar = meta["lidar"]
    raw = np.fromfile(folder / lidar["file"], dtype="<f4")
    nfeat = int(lidar["num_pts_feats"])
    if raw.size == 0 or raw.size % nfeat:
        msg = f"lidar file {lidar['file']} holds {raw.size} floats, not a multiple of {nfeat}"
        raise DataError(msg)
    points = raw.reshape(-1, nfeat)[:, :5].astype(np.float32)
    names = tuple(meta["class_names"])
    keep = [b for b in meta["boxes_3d"] if b["label"] in names and b.get("valid", True)]
    arr = np.asarray([b["box"] for b in keep], dtype=np.float64).reshape(-1, 7)
    centers = arr[:, :3].copy()
    centers[:, 2] += arr[:, 5] / 2.0  # the export stores the bottom-face centre
    boxes = Detections.create(
        centers,
        arr[:, 3:6],
        arr[:, 6],
        np.ones(len(keep)),
        [names.index(b["label"]) for b in keep],
        names,
        np.asarray([b["velocity"] for b in keep], dtype=np.float64).reshape(-1, 2),
    )
    return NuScenesFrame(
        str(meta["token"]),
        float(meta["timestamp"]),
        tuple(cams),
        points,
        _matrix(lidar["lidar2ego"], (4, 4), "lidar.lidar2ego"),
        boxes,
        names,
    )


def frame_rig(frame_dir: Path | str, names: tuple[str, ...], width: int = 1600, height: int = 900) -> CameraRig:
    """The nuScenes frame's rig in model camera order, intrinsics scaled to width x height."""
    f = load_frame(frame_dir, decode_images=False)
    by_name = {c.name: c for c in f.cameras}
    ks = []
    for n in names:
        k = by_name[n].intrinsics
        ks.append(
            CameraIntrinsics.from_arrays(scale_intrinsics(k.K, width / k.width, height / k.height), width, height)
        )
    return CameraRig.create(names, ks, [by_name[n].lidar2cam for n in names])
