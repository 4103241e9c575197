"""engines/examples/: the two real-layout example models load with the shapes of the exports they
copy, run through ``infer`` and ``evaluate``, and every ONNX stage builds against the FAKE TensorRT
(the sparse encoder with its plugin library). The node runs cuda_bevfusion_tiny on a bag with ego
motion in test/tools/commands/test_run_node.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bevfusion_ros.core.model import StageKind, load_model
from bevfusion_ros.tools import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "engines" / "examples"
CUDA_BEVFUSION = EXAMPLES / "cuda_bevfusion_tiny" / "model.yaml"
POINTPILLARS = EXAMPLES / "pointpillars_tiny" / "model.yaml"


def test_cuda_bevfusion_tiny_has_cuda_bevfusion_s_shapes() -> None:
    spec = load_model(CUDA_BEVFUSION)
    assert spec.tensor("img").shape == (1, 6, 3, 256, 704)
    assert spec.tensor("camera_feature").shape == (1, 6, 80, 32, 88)
    assert spec.tensor("camera_depth_weights").shape == (1, 6, 118, 32, 88) and spec.camera_bev.depth_bins == 118
    assert spec.tensor("feat_in").shape[2:] == (360, 360) and spec.tensor("lidar_feature").shape[2:] == (180, 180)
    vox = spec.stage("lidar.voxelize").voxels
    assert vox is not None and vox.grid.shape == (40, 1440, 1440) and vox.reduce == "mean"
    assert spec.lidar.sweeps == 10 and spec.lidar.point_features[-1] == "time_lag"
    assert spec.stage("lidar.backbone").plugins == ("GetIndicePairsImplicitGemm", "ImplicitGemm")
    assert spec.post.decoder == "transfusion" and spec.tensor("score").shape == (1, 10, 200)
    assert spec.tensor("vel").shape == (1, 2, 200) and spec.map is None
    size = sum(spec.path(s).stat().st_size for s in spec.stages if s.file)
    assert size < 5e6


def test_pointpillars_tiny_is_the_reference_with_a_pointpillars_branch() -> None:
    spec = load_model(POINTPILLARS)
    kinds = [spec.stage(n).kind for n in ("lidar.voxelize", "lidar.pillar_features", "lidar.pfn", "lidar.scatter")]
    assert kinds == [StageKind.VOXELIZE, StageKind.PILLAR_FEATURES, StageKind.ONNX, StageKind.SCATTER]
    assert spec.tensor("pillar_points").shape == (-1, 32, 4) and spec.tensor("lidar_canvas").shape[1] == 32
    assert spec.path(spec.stage("fuser")).resolve() == (EXAMPLES.parent / "reference" / "fuser.onnx").resolve()


@pytest.mark.parametrize("model", [CUDA_BEVFUSION, POINTPILLARS], ids=["cuda_bevfusion_tiny", "pointpillars_tiny"])
def test_infer_runs_the_example(model: Path, tmp_path: Path, frame_dir: Path) -> None:
    out = tmp_path / "infer"
    assert cli.main(["infer", "--model", str(model), "--frame", str(frame_dir), "--out", str(out), "--score", "0"]) == 0
    summary = json.loads((out / "detections.json").read_text())
    assert summary["points_used"] > 20_000 and summary["detections"]  # random weights: boxes, just noise
    for stage in load_model(model).stages:
        assert summary["timings_ms"][stage.name] >= 0
    assert (out / "bev.png").stat().st_size > 10_000


def test_evaluate_replays_pointpillars_tiny(tmp_path: Path, frame_dir: Path) -> None:
    bag = tmp_path / "bag"
    assert (
        cli.main(["make-bag", "--frame", str(frame_dir), "--scene", "10000400", "--frames", "2", "--out", str(bag)])
        == 0
    )
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(bag), "--model", str(POINTPILLARS), "--out", str(out), "--no-progress"]) == 0
    (run,) = json.loads((out / "evaluation.json").read_text())["runs"]
    assert run["frames"] == 2 and run["frames_scored"] == 2 and run["map"]["miou"] is not None
    assert run["latency_ms"]["lidar.pfn"]["n"] == 2


def test_every_example_stage_builds_against_the_fake_tensorrt(trt_fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.cuda import driver as cuda
    from bevfusion_ros.core.trt.build import build_stage
    from bevfusion_ros.core.trt.common import load_plugins
    from bevfusion_ros.core.trt.engine_config import StageBuild

    lib = tmp_path / "libautoware_tensorrt_plugins.so"  # the fake's plugin library: the op names it registers
    lib.write_text("GetIndicePairsImplicitGemm v3\nImplicitGemm v3\n")  # V3 creators, as Autoware's
    ctx = cuda.CudaContext(0)
    with ctx.active():
        for model in (CUDA_BEVFUSION, POINTPILLARS):
            spec = load_model(model)
            load_plugins(trt_fakes.trt, [lib], required=[p for s in spec.stages for p in s.plugins])
            for stage in (s for s in spec.stages if s.file):
                dynamic = {t.name: t.shape for t in stage.inputs if -1 in t.shape}
                profiles = {n: tuple(tuple(1000 * k if d == -1 else d for d in shape) for k in (1, 2, 4))
                            for n, shape in dynamic.items()}  # fmt: skip
                sb = StageBuild(precision="fp16", profiles=profiles)  # type: ignore[arg-type]
                r = build_stage(trt_fakes.trt, stage, spec.path(stage), sb, tmp_path / spec.name, ("FAKE", "8.7"))
                assert r.engine.is_file(), stage.name
    ctx.release()


def test_a_cloud_without_the_time_channel_is_one_clear_error(frame, frame_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.errors import InputError
    from bevfusion_ros.core.pipeline.pipeline import Pipeline
    from bevfusion_ros.tools.data.nuscenes_frame import frame_rig

    spec = load_model(CUDA_BEVFUSION)
    with Pipeline(spec, "onnxruntime") as pipe:
        pipe.set_calibration(frame_rig(frame_dir, spec.cameras))
        with pytest.raises(InputError) as err:
            pipe([c.image_bgr for c in frame.cameras], frame.points[:, :4])
    assert str(err.value) == (
        "the model reads x, y, z, intensity, time_lag per point (10 sweeps) but the cloud has 4 columns: densify "
        "the sweeps first (core/sensors/sweeps.py; the node's lidar_sweeps)"
    )
