"""The model YAML contract: the reference loads; each inconsistency is one ConfigError naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bevfusion_ros.core.errors import BackendError, ConfigError
from bevfusion_ros.core.model import load_model, parse_model
from bevfusion_ros.core.pipeline.backend import create_backend

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "engines" / "reference" / "model.yaml"


def raw() -> dict:
    return yaml.safe_load(REF.read_text())


def test_reference_model_loads_and_files_exist() -> None:
    spec = load_model(REF)
    assert spec.camera_bev.depth_bins == 48
    assert spec.lidar.grid.nx == 256 and spec.post.out_grid.nx == 128
    assert spec.map is not None and spec.map.grid.nx == 200 and len(spec.map.classes) == 6
    assert sum(spec.path(s).stat().st_size for s in spec.stages if s.file) < 10e6


def test_cuda_bevfusion_example_describes_the_real_split() -> None:
    spec = load_model(ROOT / "engines" / "cuda_bevfusion.example.yaml", check_files=False)
    vox = spec.stage("lidar.voxelize").voxels
    assert vox is not None and vox.grid.shape == (40, 1440, 1440) and (vox.max_points, vox.max_voxels) == (10, 160000)
    lidar = spec.stage("lidar.backbone")
    assert lidar.plugins == ("GetIndicePairsImplicitGemm", "ImplicitGemm")  # Autoware's sparse-conv plugins
    assert spec.tensor("camera_depth_weights").shape[2] == 118
    assert spec.lidar.sweeps == 10 and spec.lidar.point_features[-1] == "time_lag"


def test_voxel_features_must_be_the_point_features() -> None:
    import yaml

    d = yaml.safe_load((ROOT / "engines" / "cuda_bevfusion.example.yaml").read_text())
    d["lidar"].update(point_features=["x", "y", "z", "intensity"], sweeps=1)
    with pytest.raises(ConfigError) as err:
        parse_model(d, ROOT / "engines", check_files=False)
    assert str(err.value) == (
        "stages.lidar.voxelize.outputs.voxels has 5 features per point but lidar.point_features names 4 "
        "(x, y, z, intensity)"
    )


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.pop("cameras"), "cameras is missing"),
        (lambda d: d["postprocess"].update(decoder="yolo"), "postprocess.decoder"),
        (lambda d: d["postprocess"].update(score_threshold=1.5), "score_threshold"),
        (lambda d: d["postprocess"].update(nms_radius=[1.0]), "nms_radius"),
        (lambda d: d["image"].update(feature_stride=7), "feature_stride"),
        (lambda d: d["camera_bev"].update(depth=[1.0, 60.0, 1.0]), "depth_bins=59"),
        (lambda d: d["camera_bev"].update(xbound=[-51.2, 51.2, 0.7]), "camera_bev"),
        (lambda d: d["lidar"].update(voxel_size=[0.4, 0.5, 8.0]), "voxel_size"),
        (
            lambda d: d["stages"]["fuser"]["inputs"]["lidar_bev_feature"].update(shape=[1, 32, 128, 128]),
            "stages.fuser.inputs.lidar_bev_feature",
        ),
        (
            lambda d: d["stages"]["fuser"]["inputs"].update(radar={"shape": [1, 8, 128, 128]}),
            "stages.fuser.inputs.radar",
        ),
        (lambda d: d["stages"]["head.bbox"]["outputs"]["heatmap"].update(dtype="float64"), "dtype"),
        (lambda d: d["stages"]["camera.backbone"].update(kind="tensorflow"), "kind"),
        (lambda d: d["stages"]["fuser"].update(plugins="libx.so"), "plugins for a onnx stage; allowed: kind, inputs"),
        (lambda d: d["map"].update(classes=["drivable_area"]), "map.classes"),
        (lambda d: d["stages"]["fuser"].update(plugin=[""]), "stages.fuser.plugin must be a TensorRT plugin name"),
        (
            lambda d: d["lidar"].update(point_features=["x", "y", "z"]),
            "lidar.point_features is ['x', 'y', 'z']; allowed: ['x', 'y', 'z', 'intensity'] or",
        ),
        (lambda d: d["lidar"].update(sweeps=10), "above 1 only with the time_lag point feature; got 10"),
    ],
)
def test_bad_model_yaml_is_one_clear_error(edit, words: str) -> None:  # type: ignore[no-untyped-def]
    d = copy.deepcopy(raw())
    edit(d)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(".", r"\.")):
        parse_model(d, REF.parent, check_files=False)


def test_missing_onnx_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(REF.read_text())
    with pytest.raises(ConfigError, match=r"camera\.backbone\.onnx does not exist"):
        load_model(tmp_path / "model.yaml")


def test_yaml_shape_disagreeing_with_onnx_is_refused_at_activate() -> None:
    d = raw()
    d["stages"]["head.map"]["outputs"]["map_probs"]["shape"] = [1, 6, 100, 100]
    d["map"]["grid"] = {"xbound": [-50.0, 50.0, 1.0], "ybound": [-50.0, 50.0, 1.0]}
    spec = parse_model(d, REF.parent)
    backend = create_backend("onnxruntime", spec, spec.stage("head.map"))
    with pytest.raises(BackendError, match=r"map_probs is \[1, 6, 100, 100\] float32 in the model YAML"):
        backend.activate()


def test_unknown_backend_names_the_allowed_ones() -> None:
    spec = load_model(REF)
    with pytest.raises(ConfigError, match="allowed: onnxruntime"):
        create_backend("openvino", spec, spec.stage("fuser"))
