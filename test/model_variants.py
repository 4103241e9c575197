"""Model variants the tests build from the shipped reference model (test helpers, not fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1] / "engines" / "reference"
GRID = {"voxel_size": [0.4, 0.4, 8.0]}  # the reference model's 256 x 256 LiDAR grid
PILLAR_POINTS = {"shape": [-1, 16, 4]}
NUM_POINTS = {"shape": [-1], "dtype": "int32"}
COORDS = {"shape": [-1, 4], "dtype": "int32"}


def _pfn_onnx(path: Path) -> None:
    """A PillarFeatureNet as exported: a linear layer per point, then the max over the pillar's points."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((9, 5)).astype(np.float32) * 0.1, "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["pillar_point_features", "w"], ["lin"]),
            helper.make_node("ReduceMax", ["lin"], ["pillar_features"], axes=[1], keepdims=0),
        ],
        "pfn",
        [helper.make_tensor_value_info("pillar_point_features", TensorProto.FLOAT, ["M", 16, 9])],
        [helper.make_tensor_value_info("pillar_features", TensorProto.FLOAT, ["M", 5])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def pointpillars_yaml(tmp_path: Path, **voxelize: Any) -> Path:
    """The reference model with its hand-made pillar statistics replaced by a PointPillars branch."""
    import yaml

    raw = yaml.safe_load((REFERENCE / "model.yaml").read_text())
    branch = {
        "lidar.voxelize": {
            "kind": "voxelize", **GRID, "max_points": 16, "max_voxels": 30000, "reduce": "none", **voxelize,
            "inputs": {},
            "outputs": {"pillar_points": PILLAR_POINTS, "pillar_num_points": NUM_POINTS, "pillar_coords": COORDS},
        },
        "lidar.pillar_features": {
            "kind": "pillar_features", **GRID,
            "inputs": {"pillar_points": PILLAR_POINTS, "pillar_num_points": NUM_POINTS, "pillar_coords": COORDS},
            "outputs": {"pillar_point_features": {"shape": [-1, 16, 9]}},
        },
        "lidar.pfn": {
            "file": "pfn.onnx",
            "inputs": {"pillar_point_features": {"shape": [-1, 16, 9]}},
            "outputs": {"pillar_features": {"shape": [-1, 5]}},
        },
        "lidar.scatter": {
            "kind": "scatter", **GRID,
            "inputs": {"pillar_features": {"shape": [-1, 5]}, "pillar_coords": COORDS},
            "outputs": {"lidar_pillars": {"shape": [1, 5, 256, 256]}},
        },
    }  # fmt: skip
    stages: dict[str, Any] = {}
    for name, stage in raw["stages"].items():
        stages.update(branch if name == "lidar.pillarize" else {name: stage})
    raw["stages"] = stages
    for f in REFERENCE.glob("*.onnx"):
        (tmp_path / f.name).symlink_to(f)
    _pfn_onnx(tmp_path / "pfn.onnx")
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
