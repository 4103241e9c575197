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


def _with_lidar_branch(tmp_path: Path, raw: dict[str, Any], branch: dict[str, Any]) -> Path:
    """The reference model ``raw`` with ``branch``'s stages in place of its pillarize stage, written
    beside links to the reference ONNX files."""
    import yaml

    stages: dict[str, Any] = {}
    for name, stage in raw["stages"].items():
        stages.update(branch if name == "lidar.pillarize" else {name: stage})
    raw["stages"] = stages
    for f in REFERENCE.glob("*.onnx"):
        (tmp_path / f.name).symlink_to(f)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def pointpillars_yaml(tmp_path: Path, **voxelize: Any) -> Path:
    """The reference model with its hand-made pillar statistics replaced by a PointPillars branch."""
    import yaml

    raw = yaml.safe_load((REFERENCE / "model.yaml").read_text())
    branch = {
        "lidar.voxelize": {
            "kind": "voxelize", **GRID, "max_points": 16, "max_voxels": 30000, "reduce": "none",
            "inputs": {},
            "outputs": {"pillar_points": PILLAR_POINTS, "pillar_num_points": NUM_POINTS, "pillar_coords": COORDS},
            **voxelize,
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
    _pfn_onnx(tmp_path / "pfn.onnx")
    return _with_lidar_branch(tmp_path, raw, branch)


# A VoxelNet-style encoder on the reference model's LiDAR grid: 0.4 m voxels, 2 m high (4 of them
# over the 8 m range), a submanifold layer, then two z-strided layers down to one slice of 5
# channels, the reference backbone's [1, 5, 256, 256] input. (cout, ksize, stride, padding, subm)
VOXEL_GRID = {"voxel_size": [0.4, 0.4, 2.0]}
SPARSE_PLUGINS = ("GetIndicePairsImplicitGemm", "ImplicitGemm")
SPARSE_SHAPE = (4, 256, 256)
SPARSE_LAYERS = (
    (8, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (8, (3, 1, 1), (2, 1, 1), (1, 0, 0), False),
    (5, (3, 1, 1), (2, 1, 1), (1, 0, 0), False),
)


def sparse_encoder_onnx(
    path: Path,
    in_channels: int,
    sparse_shape: tuple[int, int, int],
    layers: Any = SPARSE_LAYERS,
    seed: int = 0,
    op_domain: str = "autoware",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Writes a sparse encoder in Autoware's plugin-op contract (each layer: GetIndicePairsImplicitGemm,
    ImplicitGemm, bias Add, Relu; then spconv's dense() as ScatterND + Transpose + Reshape) and returns
    its (filters, bias) per layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, params = [], [], []
    feats, coords, shape, cin = "voxels", "coors", tuple(sparse_shape), in_channels
    for i, (cout, ksize, stride, padding, subm) in enumerate(layers):
        w = (rng.standard_normal((cout, *ksize, cin)) / np.sqrt(cin * np.prod(ksize))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        params.append((w, b))
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = [f"idx{i}", f"pair{i}", f"mask{i}", f"argsort{i}", f"count{i}"]
        nodes.append(helper.make_node(
            "GetIndicePairsImplicitGemm", [coords], out, name=f"pairs{i}", domain=op_domain,
            batch_size=1, spatial_shape=list(shape), algo=1, ksize=list(ksize), stride=list(stride),
            padding=list(padding), dilation=[1, 1, 1], out_padding=[0, 0, 0], subm=int(subm), transpose=0,
            is_train=0,
        ))  # fmt: skip
        nodes.append(helper.make_node(
            "ImplicitGemm", [feats, f"w{i}", f"pair{i}", f"mask{i}", f"argsort{i}"], [f"gemm{i}"],
            name=f"conv{i}", domain=op_domain, act_alpha=0.0, act_beta=0.0, is_subm=int(subm), is_train=0,
            output_add_scale=0.0, output_scale=1.0,
        ))  # fmt: skip
        nodes.append(helper.make_node("Add", [f"gemm{i}", f"b{i}"], [f"biased{i}"]))
        nodes.append(helper.make_node("Relu", [f"biased{i}"], [f"act{i}"]))
        if not subm:
            shape = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(shape, ksize, stride, padding, strict=True))
        feats, coords, cin = f"act{i}", f"idx{i}", cout
    d, h, w_ = shape
    inits.append(numpy_helper.from_array(np.asarray([1, d, h, w_, cin], np.int64), "dense_shape"))
    inits.append(numpy_helper.from_array(np.asarray([1, cin * d, h, w_], np.int64), "bev_shape"))
    nodes += [
        helper.make_node("ConstantOfShape", ["dense_shape"], ["zeros"]),
        helper.make_node("Cast", [coords], ["coords64"], to=TensorProto.INT64),
        helper.make_node("ScatterND", ["zeros", "coords64", feats], ["dense"]),
        helper.make_node("Transpose", ["dense"], ["dense_cf"], perm=[0, 4, 1, 2, 3]),
        helper.make_node("Reshape", ["dense_cf", "bev_shape"], ["lidar_pillars"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sparse_encoder",
        [
            helper.make_tensor_value_info("voxels", TensorProto.FLOAT, ["M", in_channels]),
            helper.make_tensor_value_info("coors", TensorProto.INT32, ["M", 4]),
        ],
        [helper.make_tensor_value_info("lidar_pillars", TensorProto.FLOAT, [1, cin * d, h, w_])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(op_domain, 1)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return params


def voxelnet_yaml(tmp_path: Path, sweeps: int = 1, **voxelize: Any) -> Path:
    """The reference model with its pillar statistics replaced by a VoxelNet branch: voxelize (mean)
    -> the sparse encoder above (plugin ops) -> the reference backbone. ``sweeps`` > 1: a multi-sweep
    model (x, y, z, intensity, time_lag per point)."""
    import yaml

    raw = yaml.safe_load((REFERENCE / "model.yaml").read_text())
    features = 4 if sweeps == 1 else 5
    if sweeps > 1:
        raw["lidar"].update(point_features=["x", "y", "z", "intensity", "time_lag"], sweeps=sweeps)
    voxels = {"shape": [-1, features]}
    branch: dict[str, Any] = {
        "lidar.voxelize": {
            "kind": "voxelize", **VOXEL_GRID, "max_points": 10, "max_voxels": 60000, "reduce": "mean",
            "inputs": {}, "outputs": {"voxels": voxels, "coors": COORDS}, **voxelize,
        },
        "lidar.encoder": {
            "file": "sparse_encoder.onnx", "plugin": list(SPARSE_PLUGINS), "dla": False,
            "inputs": {"voxels": voxels, "coors": COORDS},
            "outputs": {"lidar_pillars": {"shape": [1, 5, 256, 256]}},
        },
    }  # fmt: skip
    sparse_encoder_onnx(tmp_path / "sparse_encoder.onnx", features, SPARSE_SHAPE)
    return _with_lidar_branch(tmp_path, raw, branch)
