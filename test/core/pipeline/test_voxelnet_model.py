"""The VoxelNet reference model (engines/voxelnet): ONNX Runtime with the CPU sparse-conv plugin ops
against PyTorch's golden outputs, on the last frame of a generated drive (5 densified sweeps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "test" / "data" / "golden_voxelnet.npz"
MODEL = ROOT / "engines" / "voxelnet" / "model.yaml"
# relative to the tensor's max |value|; the sparse encoder's sums run in another order than PyTorch's
REL_TOL = {
    "images": 1e-6,
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


@pytest.fixture(scope="module")
def voxelnet_run(frame_dir):  # type: ignore[no-untyped-def]
    g = np.load(GOLDEN)
    spec = load_model(MODEL)
    rig = frame_rig(frame_dir, spec.cameras, *scenes.RENDER_SIZE)
    scene, cloud = scenes.drive(int(g["seed"]), spec.lidar.sweeps, frames=1)[-1]
    with Pipeline(spec, "onnxruntime") as pipe:
        pipe.set_calibration(rig)
        result = pipe(scenes.render_cameras(scene, rig, *scenes.RENDER_SIZE), cloud, keep_tensors=True)
    return g, result, scene


def test_the_golden_file_covers_every_tensor() -> None:
    names = {k.split("/")[0] for k in np.load(GOLDEN).files} - {"seed", "boxes"}
    assert names == set(REL_TOL)


@pytest.mark.parametrize("name", sorted(REL_TOL))
def test_onnxruntime_matches_pytorch_per_stage(voxelnet_run, name: str) -> None:  # type: ignore[no-untyped-def]
    g, result, _ = voxelnet_run
    got = np.asarray(result.tensors[name], np.float32)
    assert list(got.shape) == g[f"{name}/shape"].tolist()
    scale = max(float(g[f"{name}/stats"][2]), 1e-6)
    err = np.abs(got.reshape(-1)[g[f"{name}/index"]] - g[f"{name}/values"]).max() / scale
    assert err <= REL_TOL[name], f"{name}: max error {err:.2e} x max|value| exceeds {REL_TOL[name]:.0e}"


def test_decoded_boxes_and_velocities_match_pytorch(voxelnet_run) -> None:  # type: ignore[no-untyped-def]
    g, result, _ = voxelnet_run
    det = result.detections
    assert len(det) == len(g["boxes/scores"]) > 10
    assert np.array_equal(det.labels, g["boxes/labels"])
    assert np.allclose(det.centers, g["boxes/centers"], atol=1e-3)
    assert np.allclose(det.scores, g["boxes/scores"], atol=1e-4)
    assert np.isfinite(det.velocities).all()
    assert np.allclose(det.velocities, g["boxes/velocities"], atol=1e-3)
