"""core/backends/tensorrt.py against the FAKE TensorRT API and fake CUDA device (test/fakes): the
whole pipeline through engines matches ONNX Runtime (the fake executes the embedded ONNX in fp32,
so any difference is a plumbing bug: names, buffers, copies, stream order), and the engine cache
refuses or rebuilds stale and corrupt engines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.errors import BackendError, ConfigError
from bevfusion_ros.core.pipeline.backend import create_backend
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.trt import engine_cache
from bevfusion_ros.core.trt.engine_config import StageBuild, load_engine_config
from bevfusion_ros.tools.commands import build_engines

REPO = Path(__file__).resolve().parents[3]


def _build_all(config: str, out: Path, **extra: object) -> None:
    args = argparse.Namespace(
        config=str(REPO / "config" / "engines" / config),
        out=str(out),
        calibration_bag="",
        frames=0,
        recalibrate=False,
        stages="",
        device=0,
        no_progress=True,
    )
    vars(args).update(extra)
    assert build_engines.run(args) == 0


def test_pipeline_on_engines_matches_onnxruntime(trt_fakes, spec, rig, frame, pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _build_all("fp16.yaml", tmp_path)
    assert trt_fakes.build_stats["builds"] == 6
    report = (tmp_path / "build_report.md").read_text()
    assert "| fuser | fp16 | -1 | FP16 |" in report
    images = [c.image_bgr for c in frame.cameras]
    pipeline.set_calibration(rig)
    ref = pipeline(images, frame.points, keep_tensors=True)
    cfg = load_engine_config(REPO / "config" / "engines" / "fp16.yaml")
    with Pipeline(spec, "tensorrt", engine_dir=tmp_path, engine_config=cfg) as trt_pipe:
        trt_pipe.set_calibration(rig)
        got = trt_pipe(images, frame.points, keep_tensors=True)
        got2 = trt_pipe(images, frame.points, keep_tensors=True)
    assert trt_fakes.run_stats["executions"] == 12 and trt_fakes.build_stats["builds"] == 6  # loaded, not rebuilt
    for name in ("camera_feature", "camera_bev_feature", "fused", "heatmap", "map_probs"):
        np.testing.assert_allclose(got.tensors[name], ref.tensors[name], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(got2.tensors[name], got.tensors[name])
    assert len(got.detections) == len(ref.detections) > 0


@pytest.fixture
def one_engine(trt_fakes, spec, tmp_path: Path):  # type: ignore[no-untyped-def]
    _build_all("fp16.yaml", tmp_path, stages="head.bbox")
    return tmp_path / "head.bbox.engine"


def _backend(spec, engine_dir: Path, **kw):  # type: ignore[no-untyped-def]
    return create_backend("tensorrt", spec, spec.stage("head.bbox"), engine_dir=engine_dir, **kw)


def _feeds():  # type: ignore[no-untyped-def]
    return {"fused": np.random.default_rng(0).standard_normal((1, 128, 128, 128), np.float32)}


def test_stale_engine_is_refused_with_every_reason_or_rebuilt(trt_fakes, spec, one_engine: Path) -> None:  # type: ignore[no-untyped-def]
    side = engine_cache.sidecar_path(one_engine)
    d = json.loads(side.read_text())
    d.update(tensorrt_version="10.0.1", device_name="Orin (nvgpu)", onnx_sha256="0" * 64)
    side.write_text(json.dumps(d))
    with pytest.raises(BackendError) as err:
        _backend(spec, one_engine.parent).activate()
    text = str(err.value)
    assert "TensorRT version: engine built for '10.0.1', now '10.3.0'" in text
    assert "device: engine built for 'Orin (nvgpu)'" in text and "ONNX file (sha256)" in text
    assert "build-engines" in text and trt_fakes.build_stats["builds"] == 1
    b = _backend(spec, one_engine.parent, allow_build=True)
    with b:
        out = b.infer(_feeds())
    assert b.rebuilt and trt_fakes.build_stats["builds"] == 2 and out["heatmap"].shape == (1, 10, 128, 128)
    assert engine_cache.read_info(one_engine).tensorrt_version == "10.3.0"


def test_precision_mismatch_and_force_rebuild(trt_fakes, spec, one_engine: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BackendError, match="precision: engine built for 'fp16', now 'fp32'"):
        _backend(spec, one_engine.parent, build=StageBuild(precision="fp32")).activate()
    b = _backend(spec, one_engine.parent, force_rebuild=True)
    b.activate()
    b.deactivate()
    assert b.rebuilt and trt_fakes.build_stats["builds"] == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "no_sidecar"])
def test_corrupt_engine_never_reaches_tensorrt(trt_fakes, spec, one_engine: Path, damage: str) -> None:  # type: ignore[no-untyped-def]
    data = one_engine.read_bytes()
    if damage == "truncate":
        one_engine.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        one_engine.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "empty":
        one_engine.write_bytes(b"")
    else:
        engine_cache.sidecar_path(one_engine).unlink()
    match = {"truncate": "truncated or replaced", "flip": "sha256", "empty": "is empty", "no_sidecar": "has no sidecar"}
    with pytest.raises(BackendError, match=match[damage]):
        _backend(spec, one_engine.parent).activate()


def test_engine_that_tensorrt_rejects_gives_its_reason(trt_fakes, spec, one_engine: Path) -> None:  # type: ignore[no-untyped-def]
    # A plan from another TensorRT whose sidecar claims this one: the runtime itself refuses it.
    info = engine_cache.read_info(one_engine)
    trt_fakes.trt.__version__ = "10.4.0"
    engine_cache.write(
        one_engine,
        one_engine.read_bytes(),
        engine_cache.EngineInfo(
            **{**json.loads(info.to_json()), "tensorrt_version": "10.4.0", "flags": tuple(info.flags)}
        ),
    )
    trt_fakes.trt.__version__ = "10.4.0"
    with pytest.raises(BackendError, match="not compatible with this version of TensorRT"):
        _backend(spec, one_engine.parent).activate()


def test_mapped_host_memory_gives_the_same_result_without_copies(trt_fakes, spec, one_engine: Path) -> None:  # type: ignore[no-untyped-def]
    with _backend(spec, one_engine.parent) as copy_b:
        a = copy_b.infer(_feeds())
    with _backend(spec, one_engine.parent, mapped_host=True) as zero:
        b = zero.infer(_feeds())
        log = zero.stream.raw.log  # type: ignore[union-attr]
    assert "htod" not in log and "dtoh" not in log and "engine" in log
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    trt_fakes.cuda.DEVICE_PROPERTIES["CAN_MAP_HOST_MEMORY"] = 0
    with pytest.raises(BackendError, match="cannot map host memory"):
        _backend(spec, one_engine.parent, mapped_host=True).activate()


def test_enqueue_runs_on_the_callers_stream_only_when_it_is_waited_for(trt_fakes, spec, one_engine: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = cuda.CudaContext(0)
    with _backend(spec, one_engine.parent, context=ctx) as b, ctx.active():
        s = cuda.Stream()
        host = b.host_array("fused")
        host[...] = _feeds()["fused"]
        cuda.copy_to_device(b._device["fused"], b._host["fused"].array, s)
        b.enqueue(s)
        cuda.copy_to_host(b._host["heatmap"].array, b._device["heatmap"], s)
        assert trt_fakes.run_stats["executions"] == 0  # queued, not run: nothing waited yet
        s.synchronize()
        assert trt_fakes.run_stats["executions"] == 1
        assert np.isfinite(b.host_array("heatmap")).all()


def test_tensorrt_backend_needs_an_engine_dir(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="needs engine_dir"):
        create_backend("tensorrt", spec, spec.stage("fuser"))


def test_a_stage_that_names_a_plugin_loads_it_at_activate(trt_fakes, spec, one_engine: Path) -> None:  # type: ignore[no-untyped-def]
    """The node's backend, not only build-engines, loads the engine config's plugin libraries and
    refuses a stage whose plugin none of them registers (before TensorRT fails to deserialise)."""
    from dataclasses import replace

    from bevfusion_ros.core.model import ModelSpec
    from bevfusion_ros.core.trt.engine_config import EngineConfig

    stages = tuple(replace(s, plugins=("SparseConvolution",)) if s.name == "head.bbox" else s for s in spec.stages)
    sparse: ModelSpec = replace(spec, stages=stages)
    lib = one_engine.parent / "libsparse_plugin.so"
    lib.write_text("SparseConvolution\n")
    without = EngineConfig("", Path(), StageBuild(precision="fp16"), {})
    with pytest.raises(BackendError, match="SparseConvolution are not registered after loading no plugin library"):
        create_backend(
            "tensorrt", sparse, sparse.stage("head.bbox"), engine_dir=one_engine.parent, engine_config=without
        ).activate()
    cfg = replace(without, plugins=(lib,))
    b = create_backend("tensorrt", sparse, sparse.stage("head.bbox"), engine_dir=one_engine.parent, engine_config=cfg)
    with b:
        assert b.infer(_feeds())["heatmap"].shape == (1, 10, 128, 128)
    assert "SparseConvolution" in {c.name for c in trt_fakes.trt.get_plugin_registry().plugin_creator_list}
