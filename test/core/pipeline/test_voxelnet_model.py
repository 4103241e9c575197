"""The VoxelNet reference model (engines/voxelnet): ONNX Runtime with the CPU sparse-conv plugin ops
against PyTorch's golden outputs, on the last frame of a generated drive (5 densified sweeps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import golden

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "test" / "data" / "golden_voxelnet.npz"
MODEL = ROOT / "engines" / "voxelnet" / "model.yaml"
# every tensor the voxelnet golden file holds (tolerances: helpers/golden.py)
TENSORS = (
    "images", "voxels", "coors", "camera_feature", "camera_depth", "camera_bev", "camera_bev_feature",
    "lidar_bev_feature", "fused", "heatmap", "reg", "height", "dim", "rot", "vel", "map_probs",
)  # fmt: skip


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
    assert names == set(TENSORS)


@pytest.mark.parametrize("name", TENSORS)
def test_onnxruntime_matches_pytorch_per_stage(voxelnet_run, name: str) -> None:  # type: ignore[no-untyped-def]
    g, result, _ = voxelnet_run
    golden.assert_stage_matches(g, name, result.tensors[name])


def test_decoded_boxes_and_velocities_match_pytorch(voxelnet_run) -> None:  # type: ignore[no-untyped-def]
    g, result, _ = voxelnet_run
    det = result.detections
    golden.assert_boxes_match(g, det)
    assert np.isfinite(det.velocities).all()
    assert np.allclose(det.velocities, g["boxes/velocities"], atol=1e-3)
