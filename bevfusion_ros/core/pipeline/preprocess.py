"""Pre-processing in numpy: camera images -> network tensor, point cloud -> cropped points -> pillar grid.

Image path (BEVFusion's): scale to the network width keeping the aspect ratio, keep the bottom
``input_height`` rows (the sky is cropped), normalise with mean/std. Downscaling by a large factor
first averages k x k blocks (k = the integer part of the factor) so that a 1600x900 camera and a
400x225 camera see the same input; the remaining factor is bilinear with pixel centres aligned.
All index maps are computed once per image size.

Per frame, only the band of rows the bilinear taps reach is read. Its k x k block sums are exact
integers (uint16): rows summed in numpy, columns by OpenCV's area resize (numpy where OpenCV is
absent), the division by k*k folded into the normalisation. The bilinear steps then run on the small
pooled image, channel-major, so the result is written straight into the network's layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import InputError
from bevfusion_ros.core.model import ImageConfig, LidarConfig
from bevfusion_ros.core.optional import cv2_or_none

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

PILLAR_FEATURES = ("log_count", "z_max", "z_mean", "z_min", "intensity_mean")


@dataclass(frozen=True)
class ImageTransform:
    """Maps an image of (width, height) to the network input: block-average by ``pool``, scale, bottom crop."""

    width: int
    height: int
    pool: int
    scale: float  # network pixels per image pixel
    crop_top: int  # rows of the scaled image dropped at the top

    @classmethod
    def create(cls, width: int, height: int, cfg: ImageConfig) -> ImageTransform:
        scale = cfg.input_width / width
        scaled_h = round(height * scale)
        if scaled_h < cfg.input_height:
            msg = (
                f"image {width}x{height} scaled to width {cfg.input_width} is {scaled_h} rows high, fewer than "
                f"the network input height {cfg.input_height}: the camera's aspect ratio is too wide for this model"
            )
            raise InputError(msg)
        pool = max(1, int(np.floor(1.0 / scale + 1e-9)))
        while pool > 1 and (width % pool or height % pool):
            pool -= 1
        return cls(width, height, pool, scale, scaled_h - cfg.input_height)

    def input_to_image(
        self, u: npt.ArrayLike, v: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Network-input pixel coordinates (pixel centres at integers) -> original image coordinates."""
        uu = np.asarray(u, dtype=np.float64)
        vv = np.asarray(v, dtype=np.float64)
        return (uu + 0.5) / self.scale - 0.5, (vv + self.crop_top + 0.5) / self.scale - 0.5

    def image_to_input(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        xx = np.asarray(x, dtype=np.float64)
        yy = np.asarray(y, dtype=np.float64)
        return (xx + 0.5) * self.scale - 0.5, (yy + 0.5) * self.scale - 0.5 - self.crop_top


def _bilinear_taps(out_n: int, src_n: int, coords: npt.NDArray[np.float64]) -> tuple[I64, I64, F32]:
    c = np.clip(coords, 0.0, src_n - 1.0)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, src_n - 1)
    w = (c - i0).astype(np.float32)
    assert i0.shape == (out_n,)
    return i0, i1, w


# uint16 holds every k x k block sum of uint8 up to k = 15 (and k times a column sum, the column
# pooling's input): larger factors sum in uint32 through numpy
MAX_UINT16_POOL = 15


@dataclass(frozen=True)
class PooledBilinear:
    """One image size's precomputed pooling band and bilinear taps, relative to the band."""

    pool: int
    row_first: int  # first pooled row the taps reach
    rows: int  # pooled rows from there on
    y0: I64
    y1: I64
    wy: F32  # (1, H, 1)
    x0: I64
    x1: I64
    wx: F32  # (W,)
    scale: F32  # (3, 1, 1): 1 / (pool^2 * std), network channel order
    offset: F32  # (3, 1, 1): -mean / std

    def block_sums(self, image: npt.NDArray[np.uint8], use_cv2: bool | None = None) -> npt.NDArray[Any]:
        """(rows, width // pool, 3) exact sums of the band's pool x pool blocks (pool 1: the band)."""
        k, w = self.pool, image.shape[1]
        band = image[self.row_first * k : (self.row_first + self.rows) * k]
        if k == 1:
            return band
        narrow = k <= MAX_UINT16_POOL
        b = band.reshape(self.rows, k, w * 3)
        col: npt.NDArray[Any] = b[:, 0].astype(np.uint16 if narrow else np.uint32)
        for j in range(1, k):
            col += b[:, j]
        cv2 = cv2_or_none() if use_cv2 in (None, True) else None
        if cv2 is not None and narrow:
            # the area resize averages k columns: of k times the column sums, that average is their sum,
            # an integer, so it is exact whatever its rounding
            col *= k
            pooled: npt.NDArray[Any] = cv2.resize(
                col.reshape(self.rows, w, 3), (w // k, self.rows), interpolation=cv2.INTER_AREA
            )
            return pooled
        v = col.reshape(self.rows, w // k, k, 3)
        sums: npt.NDArray[Any] = v[:, :, 0].copy()
        for j in range(1, k):
            sums += v[:, :, j]
        return sums


class ImagePreprocessor:
    """uint8 HxWx3 camera images -> float32 (1, N, 3, H, W) normalised network input."""

    def __init__(self, cfg: ImageConfig, input_order: str = "bgr") -> None:
        if input_order not in ("rgb", "bgr"):
            msg = f"image input order must be 'rgb' or 'bgr', got {input_order!r}"
            raise InputError(msg)
        self.cfg = cfg
        swap = input_order != cfg.channel_order
        self._channels = np.array([2, 1, 0] if swap else [0, 1, 2])
        # mean/std are given in the network's channel order, which is the order after the swap.
        self._mean = np.asarray(cfg.mean, np.float32)
        self._inv_std = 1.0 / np.asarray(cfg.std, np.float32)
        self._taps: dict[tuple[int, int], tuple[ImageTransform, tuple[I64, I64, F32], tuple[I64, I64, F32]]] = {}
        self._pooled: dict[tuple[int, int], PooledBilinear] = {}

    def transform(self, width: int, height: int) -> ImageTransform:
        return self._plan(width, height)[0]

    def _plan(self, width: int, height: int) -> tuple[ImageTransform, tuple[I64, I64, F32], tuple[I64, I64, F32]]:
        key = (width, height)
        if key not in self._taps:
            t = ImageTransform.create(width, height, self.cfg)
            x, y = t.input_to_image(np.arange(self.cfg.input_width), np.arange(self.cfg.input_height))
            # Image coordinates -> coordinates in the block-averaged image (centres aligned).
            px, py = (x + 0.5) / t.pool - 0.5, (y + 0.5) / t.pool - 0.5
            self._taps[key] = (
                t,
                _bilinear_taps(self.cfg.input_width, width // t.pool, px),
                _bilinear_taps(self.cfg.input_height, height // t.pool, py),
            )
        return self._taps[key]

    def pooled_bilinear(self, width: int, height: int) -> PooledBilinear:
        key = (width, height)
        if key not in self._pooled:
            t, (x0, x1, wx), (y0, y1, wy) = self._plan(width, height)
            first, last = int(min(y0.min(), y1.min())), int(max(y0.max(), y1.max()))
            inv_std = self._inv_std[:, None, None]
            self._pooled[key] = PooledBilinear(
                t.pool, first, last - first + 1, y0 - first, y1 - first, wy[None, :, None], x0, x1, wx,
                (inv_std / np.float32(t.pool * t.pool)).astype(np.float32),
                (-self._mean[:, None, None] * inv_std).astype(np.float32),
            )  # fmt: skip
        return self._pooled[key]

    def one(self, image: npt.NDArray[np.uint8], out: F32, use_cv2: bool | None = None) -> None:
        """Write one camera's (3, H, W) normalised input into ``out``."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            msg = f"camera image must be HxWx3 uint8, got shape {image.shape} dtype {image.dtype}"
            raise InputError(msg)
        h, w = image.shape[:2]
        p = self.pooled_bilinear(w, h)
        sums = p.block_sums(image, use_cv2)
        planes = sums.transpose(2, 0, 1)[self._channels].astype(np.float32)  # (3, rows, W/k), network order
        a = planes[:, p.y0] * (1 - p.wy) + planes[:, p.y1] * p.wy
        left, right = a[:, :, p.x0], a[:, :, p.x1]
        right -= left
        right *= p.wx
        left += right
        np.multiply(left, p.scale, out=out)
        out += p.offset

    def __call__(self, images: Sequence[npt.NDArray[np.uint8] | None], expected: int) -> F32:
        """``None`` marks a masked camera: its input is zeros (the normalised mean grey)."""
        if len(images) != expected:
            msg = f"expected {expected} camera images (one per model camera), got {len(images)}"
            raise InputError(msg)
        out = np.empty((1, expected, 3, self.cfg.input_height, self.cfg.input_width), np.float32)
        for i, img in enumerate(images):
            if img is None:
                out[0, i] = 0.0
                continue
            try:
                self.one(np.asarray(img), out[0, i])
            except InputError as exc:
                msg = f"camera {i}: {exc}"
                raise InputError(msg) from None
        return out


def crop_points(points: npt.ArrayLike, cfg: LidarConfig) -> F32:
    """(N, >=C) points -> float32 (M, C) finite points inside the point-cloud range, C the model's
    ``lidar.point_features`` (x, y, z, intensity[, time_lag])."""
    p = np.asarray(points)
    columns = len(cfg.point_features)
    if p.ndim != 2 or p.shape[1] < 4:
        msg = f"point cloud must be (N, >=4) with x, y, z, intensity columns, got shape {p.shape}"
        raise InputError(msg)
    if p.shape[1] < columns:
        msg = (
            f"the model reads {', '.join(cfg.point_features)} per point ({cfg.sweeps} sweeps) but the cloud has "
            f"{p.shape[1]} columns: densify the sweeps first (core/sensors/sweeps.py; the node's lidar_sweeps)"
        )
        raise InputError(msg)
    if p.shape[0] > cfg.max_points:
        msg = f"point cloud has {p.shape[0]} points, more than lidar.max_points = {cfg.max_points}"
        raise InputError(msg)
    p = p[:, :columns].astype(np.float32, copy=False)
    r = cfg.point_cloud_range
    # a NaN or infinite coordinate fails its range test, so only the other columns need isfinite
    keep = (p[:, 0] >= r[0]) & (p[:, 0] < r[3]) & (p[:, 1] >= r[1]) & (p[:, 1] < r[4])
    keep &= (p[:, 2] >= r[2]) & (p[:, 2] < r[5])
    for c in range(3, columns):
        keep &= np.isfinite(p[:, c])
    if not keep.any():
        finite = np.isfinite(p).all(axis=1)
        if not finite.any():
            msg = f"point cloud has no finite points ({p.shape[0]} points received)"
            raise InputError(msg)
        # a sweep in other units or another frame: the model would see no LiDAR at all
        msg = (
            f"none of the cloud's {int(finite.sum())} finite points lies inside lidar.point_cloud_range "
            f"{list(r)} (wrong units or frame?)"
        )
        raise InputError(msg)
    return np.ascontiguousarray(p[keep])


def run_starts(sorted_keys: I64) -> I64:
    """Index of the first element of every run of equal values in a sorted array."""
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def pillarize(points: F32, cfg: LidarConfig) -> F32:
    """Cropped (M, 4) points -> (1, 5, ny, nx) pillar statistics (see PILLAR_FEATURES); empty cells are 0.

    Scatter reductions over the points in their own order, no sort: counts and sums by bincount
    (float64 sums, then float32 means), extremes by ufunc.at; each is linear in the points."""
    g = cfg.grid
    r = cfg.point_cloud_range
    n = g.ny * g.nx
    out = np.zeros((len(PILLAR_FEATURES), n), np.float32)
    if points.shape[0]:
        ix = np.clip(((points[:, 0] - g.xmin) / g.resolution).astype(np.int64), 0, g.nx - 1)
        iy = np.clip(((points[:, 1] - g.ymin) / g.resolution).astype(np.int64), 0, g.ny - 1)
        cell = iy * g.nx + ix
        z = (points[:, 2] - r[2]) / (r[5] - r[2])
        counts = np.bincount(cell, minlength=n)
        cells = np.flatnonzero(counts)
        c = counts[cells].astype(np.float32)
        out[0, cells] = np.log1p(c)
        np.maximum.at(out[1], cell, z)  # cropped points have z >= 0: an empty cell's 0 never wins
        out[2, cells] = np.bincount(cell, z, n)[cells] / c
        bottom = np.full(n, np.inf, np.float32)
        np.minimum.at(bottom, cell, z)
        out[3, cells] = bottom[cells]
        out[4, cells] = np.bincount(cell, points[:, 3] / cfg.intensity_scale, n)[cells] / c
    return out.reshape(1, len(PILLAR_FEATURES), g.ny, g.nx)
