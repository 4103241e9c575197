"""Pinhole camera intrinsics as read from CameraInfo or a calibration file."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import MessageError

Matrix = npt.NDArray[np.float64]


MIN_FOCAL_PX = 1.0


@dataclass(frozen=True)
class CameraIntrinsics:
    """K (3x3), distortion, image size; P (3x4) as the driver reported it."""

    K: Matrix
    width: int
    height: int
    distortion_model: str = ""
    D: Matrix = field(default_factory=lambda: np.zeros(0))
    P: Matrix = field(default_factory=lambda: np.zeros((3, 4)))

    @classmethod
    def from_arrays(
        cls,
        k: npt.ArrayLike,
        width: int,
        height: int,
        distortion_model: str = "",
        d: npt.ArrayLike = (),
        p: npt.ArrayLike | None = None,
    ) -> CameraIntrinsics:
        K = np.asarray(k, dtype=np.float64).reshape(3, 3)
        if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
            msg = f"camera matrix K is not a valid pinhole matrix (fx, fy > 0, K[2,2] = 1): {K.tolist()}"
            raise MessageError(msg)
        if width <= 0 or height <= 0:
            msg = f"camera info has no image size (width={width}, height={height})"
            raise MessageError(msg)
        # a focal length under MIN_FOCAL_PX, or a principal point far off the image, is no lens: every
        # frustum point would land in one BEV cell (fx = 1e-12 was once accepted in silence)
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        if min(fx, fy) < MIN_FOCAL_PX or not (-width <= cx <= 2 * width and -height <= cy <= 2 * height):
            msg = (
                f"camera matrix K is degenerate for a {width}x{height} image: fx={fx:g}, fy={fy:g} (need >= "
                f"{MIN_FOCAL_PX:g} px), cx={cx:g}, cy={cy:g} (need within one image size of the image)"
            )
            raise MessageError(msg)
        P = np.asarray(p, dtype=np.float64).reshape(3, 4) if p is not None else np.hstack([K, np.zeros((3, 1))])
        return cls(K, int(width), int(height), distortion_model, np.asarray(d, dtype=np.float64), P)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])
