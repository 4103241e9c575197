"""core/backends/onnxruntime with a stage whose ONNX graph holds Autoware's sparse-convolution plugin
ops: ONNX Runtime runs the standard nodes, the CPU plugin ops the rest, and the whole encoder equals
a dense masked convolution chain computed here; a VoxelNet branch runs in the whole model; what
cannot run is refused at activate with the node named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.dense_conv import dense_conv
from model_variants import SPARSE_LAYERS, SPARSE_PLUGINS, SPARSE_SHAPE, sparse_encoder_onnx, voxelnet_yaml

from bevfusion_ros.core.errors import BackendError
from bevfusion_ros.core.model import Stage, StageKind, TensorSpec, load_model
from bevfusion_ros.core.pipeline.backend import create_backend

VOXELS = TensorSpec("voxels", (-1, 4))
COORS = TensorSpec("coors", (-1, 4), "int32")


def encoder_stage(file: str, plugins: tuple[str, ...] = SPARSE_PLUGINS) -> Stage:
    out = TensorSpec("lidar_pillars", (1, 5, *SPARSE_SHAPE[1:]))
    return Stage("lidar.encoder", StageKind.ONNX, (VOXELS, COORS), (out,), file, plugins, False)


def dense_reference(sites: Any, features: Any, params: Any) -> Any:
    """The encoder as dense convolutions: each layer on the whole grid, then masked to the sites a
    sparse layer keeps (submanifold: its input sites; strided: every site an active input reaches)."""
    occupied = np.zeros((1, *SPARSE_SHAPE))
    occupied[(0, *sites[:, 1:].T)] = 1.0
    x = np.zeros((features.shape[1], *SPARSE_SHAPE))
    x[(slice(None), *sites[:, 1:].T)] = features.T
    for (w, b), (_, ksize, stride, padding, subm) in zip(params, SPARSE_LAYERS, strict=True):
        x = dense_conv(x, w, stride, padding, (1, 1, 1)) + b[:, None, None, None]
        reach = dense_conv(occupied, np.ones((1, *ksize, 1)), stride, padding, (1, 1, 1)) > 0
        occupied = occupied if subm else reach.astype(np.float64)
        x = np.maximum(x, 0.0) * occupied
    return x.reshape(1, -1, *x.shape[2:])


def test_the_encoder_runs_and_equals_the_dense_chain(tmp_path: Path, spec) -> None:  # type: ignore[no-untyped-def]
    params = sparse_encoder_onnx(tmp_path / "enc.onnx", 4, SPARSE_SHAPE)
    rng = np.random.default_rng(0)
    flat = rng.choice(np.prod(SPARSE_SHAPE), 3000, replace=False)
    sites = np.concatenate([np.zeros((3000, 1), np.int64), np.stack(np.unravel_index(flat, SPARSE_SHAPE), 1)], 1)
    features = rng.standard_normal((3000, 4)).astype(np.float32)
    stage = encoder_stage(str(tmp_path / "enc.onnx"))
    with create_backend("onnxruntime", spec, stage) as backend:
        out = backend.infer({"voxels": features, "coors": sites.astype(np.int32)})["lidar_pillars"]
    want = dense_reference(sites, features, params)
    assert out.shape == want.shape == (1, 5, 256, 256)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    assert (out != 0).sum() > 1000  # not an all-zero map that agrees trivially


def test_a_voxelnet_branch_runs_in_the_pipeline(tmp_path: Path, frame, rig) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    spec = load_model(voxelnet_yaml(tmp_path))
    with Pipeline(spec, "onnxruntime") as pipe:
        pipe.set_calibration(rig)
        result = pipe([c.image_bgr for c in frame.cameras], frame.points, keep_tensors=True)
    t = result.tensors
    assert t["voxels"].shape[1] == 4 and t["coors"].shape[1] == 4 and len(t["coors"]) > 3000
    bev = t["lidar_pillars"]
    assert bev.shape == (1, 5, 256, 256)
    # every non-zero BEV cell lies under an occupied voxel column (z-strided layers keep x, y)
    occupied = np.zeros((256, 256), bool)
    occupied[t["coors"][:, 2], t["coors"][:, 3]] = True
    assert (bev[0] != 0).any(axis=0)[~occupied].sum() == 0 and (bev != 0).sum() > 1000
    assert "lidar.encoder" in result.timings_ms and result.detections is not None


def test_an_op_without_a_cpu_implementation_is_named(tmp_path: Path, spec) -> None:  # type: ignore[no-untyped-def]
    sparse_encoder_onnx(tmp_path / "enc.onnx", 4, SPARSE_SHAPE, op_domain="spconv")
    backend = create_backend("onnxruntime", spec, encoder_stage(str(tmp_path / "enc.onnx")))
    with pytest.raises(BackendError) as err:
        backend.activate()
    assert str(err.value) == (
        "stage lidar.encoder (TensorRT plugins GetIndicePairsImplicitGemm, ImplicitGemm): node 'pairs0' "
        "(spconv::GetIndicePairsImplicitGemm) in enc.onnx has no CPU implementation registered (implemented: "
        "autoware::GetIndicePairsImplicitGemm, autoware::ImplicitGemm)"
    )


def test_plugin_ops_without_the_plugin_key_say_what_to_declare(tmp_path: Path, spec) -> None:  # type: ignore[no-untyped-def]
    sparse_encoder_onnx(tmp_path / "enc.onnx", 4, SPARSE_SHAPE)
    backend = create_backend("onnxruntime", spec, encoder_stage(str(tmp_path / "enc.onnx"), plugins=()))
    with pytest.raises(BackendError) as err:
        backend.activate()
    assert str(err.value) == (
        "stage lidar.encoder: enc.onnx holds TensorRT-plugin ops (autoware::GetIndicePairsImplicitGemm, "
        "autoware::ImplicitGemm); name the plugin library with the stage's `plugin:` key in the model YAML"
    )


def test_a_grid_the_encoder_disagrees_with_fails_the_frame_with_the_node_named(tmp_path: Path, spec) -> None:  # type: ignore[no-untyped-def]
    sparse_encoder_onnx(tmp_path / "enc.onnx", 4, SPARSE_SHAPE)
    with create_backend("onnxruntime", spec, encoder_stage(str(tmp_path / "enc.onnx"))) as backend:
        coors = np.asarray([[0, 4, 0, 0]], np.int32)  # z = 4 on a 4-high grid
        with pytest.raises(BackendError) as err:
            backend.infer({"voxels": np.ones((1, 4), np.float32), "coors": coors})
    assert str(err.value).startswith(
        "stage lidar.encoder: node 'pairs0' (autoware::GetIndicePairsImplicitGemm) in enc.onnx: 1 sparse indices "
        "lie outside batch 1 x spatial_shape [4, 256, 256]"
    )


def test_onnxruntime_matches_the_pytorch_golden(spec) -> None:  # type: ignore[no-untyped-def]
    """training/sparse_conv.py's PyTorch layers (a dense-table rule book, gather-GEMM-scatter) and
    their torch.onnx export, against this package's CPU ops on the same voxels: the real sweep on
    the reference grid. Regenerate with `make sparse-golden` (torch, its own venv)."""
    golden = Path(__file__).resolve().parents[2] / "data" / "sparse_encoder_golden"
    g = np.load(golden.with_suffix(".npz"))
    assert len(g["coors"]) > 3000
    with create_backend("onnxruntime", spec, encoder_stage(str(golden.with_suffix(".onnx")))) as backend:
        out = backend.infer({"voxels": g["voxels"], "coors": g["coors"]})["lidar_pillars"]
    np.testing.assert_allclose(out, g["lidar_pillars"], rtol=1e-5, atol=1e-6)
    assert (g["lidar_pillars"] != 0).sum() > 5000


def test_a_voxel_grid_the_encoder_disagrees_with_is_refused_at_activate(tmp_path: Path) -> None:
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    # 0.5 m voxels: 205 x 205 cells, but the encoder was exported for the 256 x 256 grid
    spec = load_model(voxelnet_yaml(tmp_path, voxel_size=[0.5, 0.5, 2.0]))
    with pytest.raises(BackendError) as err, Pipeline(spec, "onnxruntime"):
        pass
    assert str(err.value) == (
        "stage lidar.encoder: its sparse encoder reads coors on spatial_shape [4, 256, 256] (z, y, x) but stage "
        "lidar.voxelize's voxel_size and point_cloud_range give [4, 205, 205]"
    )
