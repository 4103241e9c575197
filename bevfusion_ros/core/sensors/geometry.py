"""Rigid transforms and rotations (numpy, float64)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def rotation_to_quaternion(rot: npt.ArrayLike) -> F64:
    """3x3 rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    m = np.asarray(rot, dtype=np.float64)
    if m.shape != (3, 3):
        msg = f"rotation must be 3x3, got {m.shape}"
        raise ValueError(msg)
    # Pick the largest of the four 4*q_i^2 terms as pivot for numerical stability.
    tr = np.trace(m)
    cands = np.array([1 + 2 * m[0, 0] - tr, 1 + 2 * m[1, 1] - tr, 1 + 2 * m[2, 2] - tr, 1 + tr])
    i = int(np.argmax(cands))
    s = 2.0 * np.sqrt(max(cands[i], 1e-300))
    if i == 3:
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif i == 0:
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif i == 1:
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    out: F64 = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return out if out[3] >= 0 else -out


def quaternion_to_rotation(q: npt.ArrayLike) -> F64:
    """Quaternion (x, y, z, w) -> 3x3 rotation matrix."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rigid_transform(translation: npt.ArrayLike, quaternion: npt.ArrayLike) -> F64:
    """The 4x4 of a translation (x, y, z) and a rotation quaternion (x, y, z, w), as TF gives them."""
    mat = np.eye(4)
    mat[:3, :3] = quaternion_to_rotation(quaternion)
    mat[:3, 3] = np.asarray(translation, np.float64)
    return mat


def transform_points(matrix: npt.ArrayLike, points: npt.ArrayLike) -> F64:
    """Apply a 4x4 homogeneous transform to (N, 3) points."""
    t = np.asarray(matrix, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return np.asarray(p @ t[:3, :3].T + t[:3, 3])
