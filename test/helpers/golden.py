"""Golden files of training/export.py (per stage: a fixed sample of PyTorch's output elements, the
tensor's mean/std/max |value| and shape; the decoded boxes) against what the ONNX Runtime pipeline
computes for the same inputs. One home for the comparison, used by every model's golden test."""

from __future__ import annotations

from typing import Any

import numpy as np

# Per tensor, the max error relative to the tensor's max |value| (fp32 CPU kernels of ORT vs
# PyTorch; errors grow a little along the chain since each stage is fed by the previous ORT stage,
# and the sparse encoder sums in another order than PyTorch). Inputs are the runtime's own.
REL_TOL = {
    "images": 1e-6,
    "lidar_pillars": 1e-6,
    "voxels": 1e-6,
    "coors": 0.0,
    "camera_feature": 1e-4,
    "camera_depth": 1e-4,
    "camera_bev": 1e-4,
    "camera_bev_feature": 1e-4,
    "lidar_bev_feature": 1e-4,
    "fused": 2e-4,
    "heatmap": 2e-4,
    "reg": 2e-4,
    "height": 2e-4,
    "dim": 2e-4,
    "rot": 2e-4,
    "vel": 2e-4,
    "map_probs": 2e-4,
}


def scale(g: Any, name: str) -> float:
    """The PyTorch tensor's max |value| (at least 1e-6): what errors are relative to."""
    return max(float(g[f"{name}/stats"][2]), 1e-6)


def assert_stage_matches(g: Any, name: str, got: Any) -> np.ndarray:
    """``got`` has the golden shape and, at the sampled elements, errs by at most REL_TOL[name] x
    max |value|; returns it as float32."""
    arr = np.asarray(got, np.float32)
    assert list(arr.shape) == g[f"{name}/shape"].tolist()
    err = np.abs(arr.reshape(-1)[g[f"{name}/index"]] - g[f"{name}/values"]).max() / scale(g, name)
    assert err <= REL_TOL[name], f"{name}: max error {err:.2e} x max|value| exceeds {REL_TOL[name]:.0e}"
    return arr


def assert_boxes_match(g: Any, det: Any) -> None:
    """The decoded boxes: the same count (over 10), classes, centres within 1 mm, scores within 1e-4."""
    assert len(det) == len(g["boxes/scores"]) > 10
    assert np.array_equal(det.labels, g["boxes/labels"])
    assert np.allclose(det.centers, g["boxes/centers"], atol=1e-3)
    assert np.allclose(det.scores, g["boxes/scores"], atol=1e-4)
