"""The camera rig: intrinsics + LiDAR->camera extrinsics per camera, validated once, and projection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import CalibrationError
from bevfusion_ros.core.sensors.camera import CameraIntrinsics

F64 = npt.NDArray[np.float64]


def scale_intrinsics(k: npt.ArrayLike, sx: float, sy: float) -> F64:
    """K of the same camera resampled by (sx, sy), pixel centres aligned (centres at integer coordinates)."""
    m = np.asarray(k, dtype=np.float64).copy()
    m[0, 0] *= sx
    m[1, 1] *= sy
    m[0, 2] = sx * (m[0, 2] + 0.5) - 0.5
    m[1, 2] = sy * (m[1, 2] + 0.5) - 0.5
    return m


def check_rigid(matrix: npt.ArrayLike, where: str, tol: float = 1e-3) -> F64:
    """A 4x4 with an orthonormal, right-handed rotation and a (0, 0, 0, 1) last row, else CalibrationError."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        msg = f"{where} must be a 4x4 matrix, got shape {m.shape}"
        raise CalibrationError(msg)
    if not np.all(np.isfinite(m)):
        msg = f"{where} has non-finite entries"
        raise CalibrationError(msg)
    if not np.allclose(m[3], [0, 0, 0, 1], atol=tol):
        msg = f"{where} last row must be [0, 0, 0, 1], got {m[3].tolist()}"
        raise CalibrationError(msg)
    r = m[:3, :3]
    err = float(np.abs(r @ r.T - np.eye(3)).max())
    if err > tol or np.linalg.det(r) < 0:
        msg = (
            f"{where} is not a rigid transform: rotation part is not orthonormal "
            f"(max |R R^T - I| = {err:.3g}) or det < 0"
        )
        raise CalibrationError(msg)
    return m


@dataclass(frozen=True)
class CameraRig:
    """N cameras in model order. ``lidar2cam[i]`` maps LiDAR-frame points into camera i's optical frame."""

    names: tuple[str, ...]
    intrinsics: tuple[CameraIntrinsics, ...]
    lidar2cam: F64  # (N, 4, 4)

    @classmethod
    def create(
        cls, names: Sequence[str], intrinsics: Sequence[CameraIntrinsics], lidar2cam: Sequence[npt.ArrayLike]
    ) -> CameraRig:
        if not (len(names) == len(intrinsics) == len(lidar2cam)) or not names:
            msg = (
                f"camera rig needs one intrinsics and one lidar2cam per camera: {len(names)} names, "
                f"{len(intrinsics)} intrinsics, {len(lidar2cam)} extrinsics"
            )
            raise CalibrationError(msg)
        mats = np.stack([check_rigid(m, f"lidar2cam of camera {n}") for n, m in zip(names, lidar2cam, strict=True)])
        for n, k in zip(names, intrinsics, strict=True):
            if k.fx <= 0 or k.fy <= 0 or k.width <= 0 or k.height <= 0:
                msg = (
                    f"camera {n}: intrinsics need fx, fy > 0 and an image size, "
                    f"got K={k.K.tolist()} {k.width}x{k.height}"
                )
                raise CalibrationError(msg)
        return cls(tuple(names), tuple(intrinsics), mats)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def K(self) -> F64:
        return np.stack([k.K for k in self.intrinsics])

    @property
    def cam2lidar(self) -> F64:
        return np.asarray(np.linalg.inv(self.lidar2cam))

    def image_sizes(self) -> list[tuple[int, int]]:
        """(width, height) per camera."""
        return [(k.width, k.height) for k in self.intrinsics]

    def project(self, points: npt.ArrayLike, camera: int) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
        """LiDAR-frame (N, 3) points -> pixel (N, 2), depth (N,), in-image mask (depth > 0.1 m)."""
        p = np.asarray(points, dtype=np.float64)[:, :3]
        m = self.lidar2cam[camera]
        cam = p @ m[:3, :3].T + m[:3, 3]
        depth = cam[:, 2]
        k = self.intrinsics[camera]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (cam @ k.K.T)[:, :2] / depth[:, None]
        inside = (depth > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < k.width) & (uv[:, 1] >= 0) & (uv[:, 1] < k.height)
        return uv, depth, inside


def box_corners(centers: npt.ArrayLike, sizes: npt.ArrayLike, yaw: npt.ArrayLike) -> F64:
    """(N, 8, 3) corners of boxes with geometric centres, sizes (l, w, h) and yaw about +z."""
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    y = np.asarray(yaw, dtype=np.float64).reshape(-1)
    unit = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
    local = unit[None] * s[:, None, :]
    cos, sin = np.cos(y)[:, None], np.sin(y)[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin
    yy = local[..., 0] * sin + local[..., 1] * cos
    return np.stack([x, yy, local[..., 2]], axis=-1) + c[:, None, :]


def points_in_boxes(
    points: npt.ArrayLike, centers: npt.ArrayLike, sizes: npt.ArrayLike, yaw: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """(P, B) mask: point p lies inside box b."""
    p = np.asarray(points, dtype=np.float64)[:, :3]
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    y = np.asarray(yaw, dtype=np.float64).reshape(-1)
    d = p[:, None, :] - c[None]
    cos, sin = np.cos(y)[None], np.sin(y)[None]
    lx = d[..., 0] * cos + d[..., 1] * sin
    ly = -d[..., 0] * sin + d[..., 1] * cos
    return np.asarray(
        (np.abs(lx) <= s[None, :, 0] / 2) & (np.abs(ly) <= s[None, :, 1] / 2) & (np.abs(d[..., 2]) <= s[None, :, 2] / 2)
    )
