"""core/trt/build.py + engine_config.py against the FAKE TensorRT API (test/fakes): builder
configuration per YAML, INT8 from Q/DQ and from the calibrator (with its cache), DLA settings and
report, profiles for dynamic inputs, timing cache, TensorRT 8.6 network creation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.errors import BackendError, ConfigError
from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.trt.build import build_stage
from bevfusion_ros.core.trt.calibrator import make_entropy_calibrator
from bevfusion_ros.core.trt.common import load_plugins
from bevfusion_ros.core.trt.engine_cache import read_info
from bevfusion_ros.core.trt.engine_config import StageBuild, load_engine_config

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "config" / "engines"
DEVICE = ("FAKE CUDA device (test/fakes)", "8.7")


@pytest.fixture
def ctx(trt_fakes):  # type: ignore[no-untyped-def]
    c = cuda.CudaContext(0)
    with c.active():
        yield c
    c.release()


def _build(trt, spec, name: str, sb: StageBuild, out: Path, **kw):  # type: ignore[no-untyped-def]
    stage = spec.stage(name)
    return build_stage(trt, stage, spec.path(stage), sb, out, DEVICE, **kw)


def test_shipped_configs_load_with_the_documented_choices() -> None:
    fp16, int8, dla = (load_engine_config(CONFIGS / f) for f in ("fp16.yaml", "int8.yaml", "int8_dla.yaml"))
    assert fp16.for_stage("fuser") == StageBuild(precision="fp16")
    assert int8.model.name == "model.int8.yaml" and int8.for_stage("fuser").precision == "best"
    assert int8.for_stage("lidar.backbone").precision == "best"  # the QAT model quantises it too
    assert dla.for_stage("head.map").dla_core == 0 and dla.for_stage("head.map").calibrated
    assert dla.for_stage("lidar.backbone").dla_core == -1


@pytest.mark.parametrize(
    ("defaults", "match"),
    [
        ("{precision: fp8}", "precision is 'fp8'; allowed: fp32, fp16, int8, best"),
        ("{precision: fp32, dla_core: 0}", "DLA runs only fp16 or int8"),
        ("{precision: int8, dla_core: 0}", "needs int8_source: calibrator"),
        ("{dla_core: -2}", "dla_core is -2"),
        ("{workspace: 3}", "unknown keys"),
        ("{profiles: {x: {min: [1], opt: [4], max: [2]}}}", "1 <= min <= opt <= max"),
    ],
)
def test_bad_build_config_names_key_and_allowed_values(tmp_path: Path, defaults: str, match: str) -> None:
    p = tmp_path / "e.yaml"
    p.write_text(f"model: {REPO}/engines/reference/model.yaml\ndefaults: {defaults}\n")
    with pytest.raises(ConfigError, match=match):
        load_engine_config(p)


def test_fp16_build_sets_flags_and_writes_sidecar(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = _build(
        trt_fakes.trt,
        spec,
        "fuser",
        StageBuild(precision="fp16", workspace_mb=256),
        tmp_path,
        timing_cache=tmp_path / "timing.cache",
    )
    info = read_info(r.engine)
    assert info.flags == ("FP16",) and info.precision == "fp16" and info.dla_core == -1
    assert info.tensorrt_version == "10.3.0" and info.extra["workspace_mb"] == 256
    header = json.loads(r.engine.read_bytes()[16 : 16 + int.from_bytes(r.engine.read_bytes()[8:16], "little")])
    assert header["workspace"] == 256 << 20 and header["verbosity"] == 2  # DETAILED, for the inspector
    assert r.dla is None and (tmp_path / "timing.cache").stat().st_size > 0


def test_timing_cache_is_reused_by_the_next_build(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "timing.cache"
    _build(trt_fakes.trt, spec, "head.bbox", StageBuild(), tmp_path / "a", timing_cache=cache)
    r = _build(trt_fakes.trt, spec, "head.bbox", StageBuild(), tmp_path / "b", timing_cache=cache)
    assert r.engine.is_file()
    entries = json.loads(cache.read_bytes().split(b"\n", 1)[1])
    # 11 Conv + 6 Relu, one entry each, not duplicated by the second build; and the device it was made on
    assert len(entries) == 17 + 1


def test_a_timing_cache_from_another_device_is_replaced(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """set_timing_cache returns False on a device or version mismatch (TensorRT then uses no cache)."""
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"FAKETIMINGCACHE\n" + json.dumps({"__device__": "Orin / 8.6.2", "Conv:x:GPU": "t"}).encode())
    _build(trt_fakes.trt, spec, "head.bbox", StageBuild(), tmp_path / "a", timing_cache=cache)  # and a warning
    entries = json.loads(cache.read_bytes().split(b"\n", 1)[1])
    assert "Conv:x:GPU" not in entries and len(entries) == 17 + 1  # a new cache for this device


def test_qdq_int8_builds_from_the_qat_onnx_and_refuses_float_files(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec8 = load_model(REPO / "engines" / "reference" / "model.int8.yaml")
    r = _build(trt_fakes.trt, spec8, "fuser", StageBuild(precision="best"), tmp_path)
    # 8 convolutions: 8 input Q/DQ pairs and 8 weight DequantizeLinear
    assert set(read_info(r.engine).flags) == {"FP16", "INT8"} and r.info.extra["qdq_layers"] == 24
    with pytest.raises(ConfigError, match=r"lidar\.backbone\.onnx has no Q/DQ layers"):
        _build(trt_fakes.trt, spec, "lidar.backbone", StageBuild(precision="int8"), tmp_path)


def test_calibrator_feeds_batches_then_cache_skips_them(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    batches = [{"camera_bev": rng.standard_normal((1, 32, 128, 128), np.float32) * (i + 1)} for i in range(4)]
    cache = tmp_path / "cal" / "camera.vtransform.cache"
    sb = StageBuild(precision="int8", int8_source="calibrator")
    cal = make_entropy_calibrator(trt_fakes.trt, iter(batches), cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TensorRT 10.1+'s DeprecationWarning for int8_calibrator is logged
        _build(trt_fakes.trt, spec, "camera.vtransform", sb, tmp_path, calibrator=cal, calibration_cache=cache)
    assert cal.batches_used == 4 and trt_fakes.build_stats["calibration_batches"] == 4 and cal.cache_written
    lines = cache.read_text().splitlines()
    assert lines[0].endswith("EntropyCalibration2") and lines[1].startswith("camera_bev: ")
    amax = max(float(np.abs(b["camera_bev"]).max()) for b in batches)
    assert np.isclose(np.frombuffer(bytes.fromhex(lines[1].split(": ")[1]), ">f4")[0], amax / 127, rtol=1e-6)
    again = make_entropy_calibrator(trt_fakes.trt, iter(batches), cache)
    _build(trt_fakes.trt, spec, "camera.vtransform", sb, tmp_path, calibrator=again, calibration_cache=cache)
    assert again.cache_read and again.batches_used == 0 and trt_fakes.build_stats["calibration_batches"] == 4


def test_a_failing_calibration_batch_is_one_error_not_a_partial_cache(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TensorRT swallows an exception raised in get_batch and calibrates on the batches before it."""
    rng = np.random.default_rng(0)

    def batches():  # type: ignore[no-untyped-def]
        yield {"camera_bev": rng.standard_normal((1, 32, 128, 128), np.float32)}
        yield {"camera_bev": rng.standard_normal((1, 32, 128, 128), np.float32)}
        raise BackendError("cuMemcpyHtoDAsync failed: an illegal memory access")

    cache = tmp_path / "cal" / "camera.vtransform.cache"
    sb = StageBuild(precision="int8", int8_source="calibrator")
    cal = make_entropy_calibrator(trt_fakes.trt, batches(), cache)
    with pytest.raises(BackendError, match=r"calibration failed after 2 batch\(es\): cuMemcpyHtoDAsync failed"):
        _build(trt_fakes.trt, spec, "camera.vtransform", sb, tmp_path, calibrator=cal, calibration_cache=cache)
    assert not cache.exists() and not list(tmp_path.glob("*.engine"))


def test_calibrator_stage_without_batches_or_cache_fails_with_tensorrt_reason(
    trt_fakes, ctx, spec, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sb = StageBuild(precision="int8", int8_source="calibrator")
    with pytest.raises(ConfigError, match="needs calibration frames"):
        _build(trt_fakes.trt, spec, "camera.vtransform", sb, tmp_path)
    cal = make_entropy_calibrator(trt_fakes.trt, None, tmp_path / "none.cache")
    with pytest.raises(BackendError, match="calibrator returned no batches"):
        _build(trt_fakes.trt, spec, "camera.vtransform", sb, tmp_path, calibrator=cal)


def test_dla_build_reports_gpu_fallback_layers(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    sb = StageBuild(precision="best", int8_source="calibrator", dla_core=1)
    cal = make_entropy_calibrator(
        trt_fakes.trt, iter([{"fused": rng.random((1, 128, 128, 128), np.float32)}]), tmp_path / "c.cache"
    )
    r = _build(trt_fakes.trt, spec, "head.map", sb, tmp_path, calibrator=cal)
    assert r.dla is not None and r.info.dla_core == 1 and set(r.info.flags) == {"FP16", "INT8", "GPU_FALLBACK"}
    fallback_types = {t for _, t in r.dla.fallback}
    assert {"GRID_SAMPLE", "SELECT"} <= fallback_types and "CONVOLUTION" not in fallback_types
    assert r.dla.dla_layers and all(x.startswith("{ForeignNode[") for x in r.dla.dla_layers)
    assert any("GridSample" in g or "GRID" in g for g in r.dla.gpu_layers)
    assert any(layer.get("LayerType") == "DLA" for layer in r.dla.engine_layers)
    saved = json.loads((tmp_path / "head.map.engine.dla.json").read_text())
    assert saved["summary"] == r.dla.summary() and "GPU fallback" in r.dla.summary()


def test_dla_without_gpu_fallback_and_bad_core_are_refused(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cal = make_entropy_calibrator(trt_fakes.trt, iter([{"fused": np.ones((1, 128, 128, 128), np.float32)}]), None)
    sb = StageBuild(precision="fp16", dla_core=0, gpu_fallback=False)
    with pytest.raises(BackendError, match="cannot run on DLA and GPU fallback is not enabled"):
        _build(trt_fakes.trt, spec, "head.map", sb, tmp_path, calibrator=cal)
    with pytest.raises(ConfigError, match="this device has 2 DLA core"):
        _build(trt_fakes.trt, spec, "head.bbox", StageBuild(precision="fp16", dla_core=2), tmp_path)
    # A stage whose layers all run on DLA needs no fallback.
    r = _build(trt_fakes.trt, spec, "head.bbox", StageBuild(precision="fp16", dla_core=0, gpu_fallback=False), tmp_path)
    assert r.dla is not None and not r.dla.fallback and r.dla.dla_fraction == 1.0


def test_stage_marked_dla_false_builds_for_the_gpu(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    stage = replace(spec.stage("head.bbox"), dla_capable=False)
    r = build_stage(trt_fakes.trt, stage, spec.path(stage), StageBuild(precision="fp16", dla_core=0), tmp_path, DEVICE)
    assert r.info.dla_core == -1 and r.dla is None and "GPU_FALLBACK" not in r.info.flags


def _dynamic_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("points", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["n", 4])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    g = helper.make_graph([helper.make_node("Mul", ["points", "two"], ["scaled"], name="mul")], "g", [x], [y], [two])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_dynamic_input_needs_a_profile_and_dla_refuses_it(trt_fakes, ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.model import Stage, TensorSpec

    _dynamic_onnx(tmp_path / "dyn.onnx")
    stage = Stage("dyn", "onnx", (TensorSpec("points", (-1, 4)),), (TensorSpec("scaled", (-1, 4)),), "dyn.onnx")
    trt = trt_fakes.trt
    with pytest.raises(ConfigError, match=r"give profiles.points \{min, opt, max\}"):
        build_stage(trt, stage, tmp_path / "dyn.onnx", StageBuild(), tmp_path, DEVICE)
    with pytest.raises(ConfigError, match="DLA needs static shapes"):
        build_stage(trt, stage, tmp_path / "dyn.onnx", StageBuild(dla_core=0), tmp_path, DEVICE)
    sb = StageBuild(profiles={"points": ((1, 4), (1000, 4), (5000, 4))})
    r = build_stage(trt, stage, tmp_path / "dyn.onnx", sb, tmp_path, DEVICE)
    assert r.info.extra["profiles"] == {"points": [[1, 4], [1000, 4], [5000, 4]]}


def test_tensorrt_8_6_networks_get_the_explicit_batch_flag(spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fakes.install import fakes

    with fakes(trt_version="8.6.2") as f:
        c = cuda.CudaContext(0)
        with c.active():
            r = _build(f.trt, spec, "camera.vtransform", StageBuild(), tmp_path)
        c.release()
    assert read_info(r.engine).tensorrt_version == "8.6.2"


def test_unparseable_onnx_and_plugin_paths_fail_clearly(trt_fakes, ctx, spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    stage = spec.stage("fuser")
    with pytest.raises(BackendError, match=r"TensorRT cannot parse .*bad.onnx"):
        build_stage(trt_fakes.trt, stage, bad, StageBuild(), tmp_path, DEVICE)
    with pytest.raises(ConfigError, match="must be an absolute path"):
        load_plugins(trt_fakes.trt, ["libbevpool.so"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_plugins(trt_fakes.trt, [tmp_path / "libmissing.so"])
    lib = tmp_path / "libfake_plugin.so"
    lib.write_text("SparseConv3d\n")
    assert load_plugins(trt_fakes.trt, [lib], required=["SparseConv3d"]) == [str(lib)]
    # loaded once per process: TensorRT's load_library would return None for a second load
    assert load_plugins(trt_fakes.trt, [lib], required=["SparseConv3d"]) == [str(lib)]
    # load_library returns None (never raises) for a library it cannot load: one clear error
    broken = tmp_path / "libbroken.so"
    broken.write_bytes(b"\x7fELF\xff\xfe")
    with pytest.raises(BackendError, match=r"could not load the plugin library .*libbroken.so"):
        load_plugins(trt_fakes.trt, [broken])
    # a plugin the model names that no configured library provides
    with pytest.raises(BackendError, match="SubmConv3d are not registered after loading"):
        load_plugins(trt_fakes.trt, [lib], required=["SparseConv3d", "SubmConv3d"])


def test_int64_tensors_are_refused_on_tensorrt_8_6(tmp_path: Path) -> None:
    """8.6 has no DataType.INT64 (test_real_bindings shows it): its parser casts to int32."""
    from fakes.install import fakes

    from bevfusion_ros.core.model import Stage, TensorSpec

    _dynamic_onnx(tmp_path / "dyn.onnx")
    stage = Stage("ids", "onnx", (TensorSpec("points", (8, 4)),), (TensorSpec("ids", (8,), "int64"),), "dyn.onnx")
    with fakes(trt_version="8.6.2") as f:
        c = cuda.CudaContext(0)
        with c.active(), pytest.raises(ConfigError, match=r"ids are int64, which TensorRT 8\.6\.2 has no type for"):
            build_stage(f.trt, stage, tmp_path / "dyn.onnx", StageBuild(), tmp_path, DEVICE)
        c.release()


def test_one_logger_for_the_plugin_library_per_process(trt_fakes, ctx, spec, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """init_libnvinfer_plugins keeps a raw pointer to its logger: one logger, kept for the process,
    however many builds and backends follow (a per-build logger would be freed under it)."""
    from bevfusion_ros.core.trt import common

    given: list[object] = []
    monkeypatch.setattr(common, "_PROCESS", {})
    monkeypatch.setattr(
        trt_fakes.trt, "init_libnvinfer_plugins", lambda logger, namespace: given.append(logger) or True
    )
    _build(trt_fakes.trt, spec, "head.bbox", StageBuild(), tmp_path / "a")
    _build(trt_fakes.trt, spec, "head.bbox", StageBuild(), tmp_path / "b")
    assert len(given) == 1 and common._PROCESS["logger"] is given[0]


def test_a_sparse_encoder_builds_with_its_plugin_library(trt_fakes, ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The VoxelNet variant's encoder (Autoware's plugin ops): TensorRT's parser takes the ops once
    the configured library registers them, and names the first op it cannot import before that."""
    from model_variants import SPARSE_PLUGINS, voxelnet_yaml

    spec = load_model(voxelnet_yaml(tmp_path))
    stage = spec.stage("lidar.encoder")
    assert stage.plugins == SPARSE_PLUGINS and not stage.dla_capable
    sb = StageBuild(precision="fp16", profiles={"voxels": ((1, 4), (20000, 4), (60000, 4)),
                                                "coors": ((1, 4), (20000, 4), (60000, 4))})  # fmt: skip
    with pytest.raises(BackendError, match="No importer registered for op: GetIndicePairsImplicitGemm"):
        build_stage(trt_fakes.trt, stage, spec.path(stage), sb, tmp_path / "without", DEVICE)
    lib = tmp_path / "libautoware_tensorrt_plugins.so"  # Autoware's sparse convolutions are V3 creators
    lib.write_text("".join(f"{name} v3\n" for name in SPARSE_PLUGINS))
    load_plugins(trt_fakes.trt, [lib], required=stage.plugins)
    r = build_stage(trt_fakes.trt, stage, spec.path(stage), sb, tmp_path / "with", DEVICE)
    assert r.engine.is_file() and read_info(r.engine).extra["profiles"]["coors"] == [[1, 4], [20000, 4], [60000, 4]]


def test_tensorrt_10_v3_creators_are_found_in_all_creators(trt_fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TensorRT 10's plugin_creator_list has only the deprecated V1 creators: a library registering
    IPluginCreatorV3One creators (Autoware's) is registered, but only all_creators lists them."""
    from bevfusion_ros.core.trt.common import plugin_creators

    lib = tmp_path / "libmixed_plugins.so"
    lib.write_text("ImplicitGemm v3\nGetIndicePairsImplicitGemm v3\nBEVPool\n")
    assert load_plugins(trt_fakes.trt, [lib], required=["ImplicitGemm", "GetIndicePairsImplicitGemm", "BEVPool"])
    registry = trt_fakes.trt.get_plugin_registry()
    assert [c.name for c in registry.plugin_creator_list] == ["BEVPool"]
    assert plugin_creators(registry) == {
        "BEVPool": "plugin_creator_list",
        "GetIndicePairsImplicitGemm": "all_creators",
        "ImplicitGemm": "all_creators",
    }
    with pytest.raises(BackendError, match=r"Missing are not registered .*searched TensorRT 10\.3\.0's plugin_creator"):
        load_plugins(trt_fakes.trt, [lib], required=["Missing"])


def test_tensorrt_8_6_reads_plugin_creator_list_and_cannot_load_a_v3_library(tmp_path: Path) -> None:
    from fakes.install import fakes

    from bevfusion_ros.core.trt.common import plugin_creators

    v1, v3 = tmp_path / "libv1.so", tmp_path / "libv3.so"
    v1.write_text("SparseConv3d\n")
    v3.write_text("ImplicitGemm v3\n")
    with fakes(trt_version="8.6.2") as f:
        registry = f.trt.get_plugin_registry()
        assert not hasattr(registry, "all_creators")
        assert load_plugins(f.trt, [v1], required=["SparseConv3d"]) == [str(v1)]
        assert plugin_creators(registry) == {"SparseConv3d": "plugin_creator_list"}
        with pytest.raises(BackendError, match="could not load the plugin library"):
            load_plugins(f.trt, [v3], required=["ImplicitGemm"])
