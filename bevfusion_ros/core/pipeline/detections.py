"""3D detections as a struct of arrays: one row per box, vectorised everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


def _f32(a: npt.ArrayLike, shape: tuple[int, ...]) -> F32:
    return np.asarray(a, dtype=np.float32).reshape(shape)


@dataclass(frozen=True)
class Detections:
    """N oriented 3D boxes in one frame.

    ``centers`` are geometric box centres (not bottom centres), ``sizes`` are (length along the
    heading, width, height), ``yaw`` is the heading about +z in radians; ``labels`` index
    ``class_names``. ``velocities`` are (vx, vy) m/s in the same frame, NaN where unknown.
    """

    centers: F32
    sizes: F32
    yaw: F32
    scores: F32
    labels: I32
    class_names: tuple[str, ...]
    velocities: F32 = field(default_factory=lambda: np.zeros((0, 2), np.float32))

    def __post_init__(self) -> None:
        n = self.centers.shape[0]
        shapes = {
            "centers": (self.centers.shape, (n, 3)),
            "sizes": (self.sizes.shape, (n, 3)),
            "yaw": (self.yaw.shape, (n,)),
            "scores": (self.scores.shape, (n,)),
            "labels": (self.labels.shape, (n,)),
            "velocities": (self.velocities.shape, (n, 2)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                msg = f"Detections.{name} has shape {got}, expected {want}"
                raise ValueError(msg)
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            msg = f"Detections.labels must index class_names (0..{len(self.class_names) - 1})"
            raise ValueError(msg)

    @classmethod
    def create(
        cls,
        centers: npt.ArrayLike,
        sizes: npt.ArrayLike,
        yaw: npt.ArrayLike,
        scores: npt.ArrayLike,
        labels: npt.ArrayLike,
        class_names: Sequence[str],
        velocities: npt.ArrayLike | None = None,
    ) -> Detections:
        lab = np.asarray(labels, dtype=np.int32).reshape(-1)
        n = lab.shape[0]
        vel = np.full((n, 2), np.nan, np.float32) if velocities is None else _f32(velocities, (n, 2))
        return cls(
            _f32(centers, (n, 3)),
            _f32(sizes, (n, 3)),
            _f32(yaw, (n,)),
            _f32(scores, (n,)),
            lab,
            tuple(class_names),
            vel,
        )

    @classmethod
    def empty(cls, class_names: Sequence[str]) -> Detections:
        return cls.create(np.zeros((0, 3)), np.zeros((0, 3)), [], [], [], class_names)

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    def label_names(self) -> list[str]:
        return [self.class_names[i] for i in self.labels.tolist()]

    def select(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.integer]) -> Detections:
        return Detections(
            self.centers[mask],
            self.sizes[mask],
            self.yaw[mask],
            self.scores[mask],
            self.labels[mask],
            self.class_names,
            self.velocities[mask],
        )


def yaw_to_quaternion(yaw: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N,) yaw about +z -> (N, 4) quaternions (x, y, z, w)."""
    half = np.asarray(yaw, dtype=np.float64) * 0.5
    q = np.zeros((*half.shape, 4))
    q[..., 2] = np.sin(half)
    q[..., 3] = np.cos(half)
    return q


def quaternion_to_yaw(q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, 4) quaternions (x, y, z, w) -> yaw about +z (rotation about other axes is ignored)."""
    a = np.asarray(q, dtype=np.float64)
    x, y, z, w = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    return np.asarray(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
