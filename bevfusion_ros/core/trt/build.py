"""Build one TensorRT engine for one ONNX stage, as an engine-cache entry (engine + JSON sidecar),
with its DLA placement report. Written against the TensorRT 10 builder API (8.6 where cheap).

Precision: fp32 (no flag), fp16 (FP16), int8 (INT8), best (INT8 + FP16). INT8 scales come from
the Q/DQ nodes in the ONNX file (explicit quantisation) or from an entropy calibrator (implicit; the
DLA path). Call inside an active CUDA context (the calibrator and the inspector need one).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
from tqdm import tqdm

from bevfusion_ros.core.errors import BackendError, ConfigError
from bevfusion_ros.core.model import ONNX, ModelSpec, Stage, load_model
from bevfusion_ros.core.optional import import_tensorrt
from bevfusion_ros.core.trt import engine_cache
from bevfusion_ros.core.trt.calibrator import collect_stage_inputs, make_entropy_calibrator, stage_batches
from bevfusion_ros.core.trt.common import (
    LOG,
    enum_name,
    init_plugins,
    load_plugins,
    major_version,
    make_logger,
    parse_onnx,
)
from bevfusion_ros.core.trt.dla_report import DlaReport, parse_inspector, parse_placement_log
from bevfusion_ros.core.trt.engine_config import EngineConfig, StageBuild


@dataclass(frozen=True)
class BuildResult:
    stage: str
    engine: Path
    info: engine_cache.EngineInfo
    dla: DlaReport | None
    seconds: float
    warnings: tuple[str, ...]


def engine_file(directory: Path, stage: str) -> Path:
    return directory / f"{stage}.engine"


def _flags(trt: Any, sb: StageBuild) -> list[Any]:
    flags = []
    if sb.precision in ("fp16", "best"):
        flags.append(trt.BuilderFlag.FP16)
    if sb.uses_int8:
        flags.append(trt.BuilderFlag.INT8)
    if sb.dla_core >= 0 and sb.gpu_fallback:
        flags.append(trt.BuilderFlag.GPU_FALLBACK)
    return flags


def _qdq_layers(trt: Any, network: Any) -> int:
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return sum(1 for i in range(network.num_layers) if network.get_layer(i).type in kinds)


def _profile(trt: Any, builder: Any, network: Any, stage: Stage, sb: StageBuild) -> Any | None:
    """One optimisation profile covering every dynamic input, or None when all inputs are static."""
    dynamic = [network.get_input(i) for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)]
    if not dynamic:
        return None
    if sb.dla_core >= 0:
        names = ", ".join(t.name for t in dynamic)
        msg = f"stage {stage.name}: DLA needs static shapes but inputs {names} are dynamic; build it for the GPU"
        raise ConfigError(msg)
    profile = builder.create_optimization_profile()
    for t in dynamic:
        if t.name not in sb.profiles:
            msg = (
                f"stage {stage.name}: input {t.name} has dynamic shape {tuple(t.shape)}; give "
                f"profiles.{t.name} {{min, opt, max}} for this stage in the engine build config"
            )
            raise ConfigError(msg)
        lo, opt, hi = sb.profiles[t.name]
        profile.set_shape(t.name, lo, opt, hi)
    return profile


def build_stage(
    trt: Any,
    stage: Stage,
    onnx_path: Path,
    sb: StageBuild,
    out_dir: Path,
    device: tuple[str, str],
    timing_cache: Path | None = None,
    calibrator: Any = None,
    calibration_cache: Path | None = None,
) -> BuildResult:
    """Build ``onnx_path`` into ``out_dir/<stage>.engine`` (+ sidecar, + ``.dla.json`` on DLA)."""
    sb = sb.on(stage.dla_capable)
    wide = [t.name for t in (*stage.inputs, *stage.outputs) if t.dtype == "int64"]
    if wide and major_version(trt) < 10:
        msg = (
            f"stage {stage.name}: {', '.join(wide)} are int64, which TensorRT {trt.__version__} has no type for "
            "(its ONNX parser casts them to int32, so the engine would not match the model YAML): export the "
            "stage with int32 tensors or build with TensorRT 10"
        )
        raise ConfigError(msg)
    logger, records = make_logger(trt, echo="warning")
    start = time.perf_counter()
    init_plugins(trt)
    builder = trt.Builder(logger)
    if sb.dla_core >= 0 and sb.dla_core >= builder.num_DLA_cores:
        msg = (
            f"stage {stage.name}: dla_core is {sb.dla_core} but this device has {builder.num_DLA_cores} DLA core(s); "
            "use dla_core -1 for GPU only"
        )
        raise ConfigError(msg)
    network = parse_onnx(trt, builder, logger, onnx_path, f"stage {stage.name}")
    qdq = _qdq_layers(trt, network)
    if sb.uses_int8 and not sb.calibrated and not qdq:
        msg = (
            f"stage {stage.name}: precision {sb.precision} with int8_source qdq, but {onnx_path.name} has no Q/DQ "
            "layers; quantise it (make quantize), use int8_source calibrator, or build this stage in fp16"
        )
        raise ConfigError(msg)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, sb.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector needs it for the report
    for flag in _flags(trt, sb):
        config.set_flag(flag)
    profile = _profile(trt, builder, network, stage, sb)
    if profile is not None:
        config.add_optimization_profile(profile)
    if sb.calibrated:
        if calibrator is None:
            msg = f"stage {stage.name}: int8_source calibrator needs calibration frames or a calibration cache"
            raise ConfigError(msg)
        _set_calibrator(trt, config, calibrator)
        if profile is not None:
            config.set_calibration_profile(profile)
    network_layers: tuple[tuple[str, str, bool], ...] = ()
    if sb.dla_core >= 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = sb.dla_core
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        network_layers = tuple((ly.name, enum_name(ly.type), bool(config.can_run_on_DLA(ly))) for ly in layers)
    cache = None
    if timing_cache is not None:
        data = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, False):  # made on another device or TensorRT version
            LOG.warning(
                "timing cache %s does not fit this device or TensorRT version: starting a new one", timing_cache
            )
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if calibrator is not None:
        calibrator.raise_if_failed(stage.name)  # TensorRT swallowed it: an engine on partial scales
    if serialized is None:
        msg = f"stage {stage.name}: TensorRT could not build the engine ({sb.variant()}): {records.text()}"
        raise BackendError(msg)
    if cache is not None and timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    seconds = time.perf_counter() - start
    flag_names = tuple(enum_name(f) for f in _flags(trt, sb))
    info = engine_cache.EngineInfo(
        stage=stage.name,
        onnx_sha256=engine_cache.sha256_file(onnx_path),
        tensorrt_version=str(trt.__version__),
        device_name=device[0],
        compute_capability=device[1],
        precision=sb.precision,
        dla_core=sb.dla_core,
        flags=flag_names,
        build_seconds=round(seconds, 3),
        extra={
            "onnx": onnx_path.name,
            "workspace_mb": sb.workspace_mb,
            "int8_source": sb.int8_source if sb.uses_int8 else "",
            "qdq_layers": qdq,
            "gpu_fallback": sb.gpu_fallback if sb.dla_core >= 0 else None,
            "profiles": {k: [list(s) for s in v] for k, v in sb.profiles.items()},
            "calibration_cache": str(calibration_cache) if sb.calibrated and calibration_cache else "",
            "timing_cache": str(timing_cache) if timing_cache else "",
        },
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = engine_file(out_dir, stage.name)
    info = engine_cache.write(path, bytes(serialized), info)
    report = None
    if sb.dla_core >= 0:
        dla, gpu = parse_placement_log([m for _, m in records])
        engine_layers = _inspect(trt, logger, bytes(serialized), sb)
        report = DlaReport(stage.name, sb.dla_core, network_layers, dla, gpu, engine_layers)
        path.with_name(path.name + ".dla.json").write_text(report.to_json())
    warnings = tuple(m for s, m in records if s == "warning")
    return BuildResult(stage.name, path, info, report, seconds, warnings)


def _set_calibrator(trt: Any, config: Any, calibrator: Any) -> None:
    """Implicit INT8 (a calibrator) is deprecated since TensorRT 10.1, which says so with a
    DeprecationWarning; under ``-W error`` that would stop the build. The package's path forward is
    explicit Q/DQ (int8_source qdq: the QAT or ModelOpt ONNX files) wherever TensorRT supports it; the
    calibrator stays only for DLA stages, which need it. The warning is logged, not raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        config.int8_calibrator = calibrator
    for w in caught:
        LOG.warning(
            "TensorRT %s: int8_calibrator is deprecated (%s); kept for DLA stages only", trt.__version__, w.message
        )


def _inspect(trt: Any, logger: Any, serialized: bytes, sb: StageBuild) -> tuple[dict[str, Any], ...]:
    runtime = trt.Runtime(logger)
    if sb.dla_core >= 0:
        runtime.DLA_core = sb.dla_core
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        return ()
    inspector = engine.create_engine_inspector()
    return parse_inspector(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def onnx_stages(spec: ModelSpec, only: str = "") -> list[Stage]:
    stages = [s for s in spec.stages if s.kind == ONNX]
    if only:
        wanted = [x.strip() for x in only.split(",") if x.strip()]
        unknown = [w for w in wanted if w not in {s.name for s in stages}]
        if unknown:
            msg = f"--stages names {unknown}; ONNX stages are {[s.name for s in stages]}"
            raise ConfigError(msg)
        stages = [s for s in stages if s.name in wanted]
    return stages


def collect_calibration(
    spec: ModelSpec, frames: Iterable[Any], names: dict[str, tuple[str, ...]], out: Path, limit: int, show: bool
) -> int:
    """Stage input tensors of up to ``limit`` frames (with .images, .points, .rig) through the fp32
    ONNX Runtime pipeline: the real pre-processing, bevpool and upstream stages."""
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    pipe = Pipeline(spec, "onnxruntime")
    rig_key: list[Any] = [None]

    def run(frame: Any) -> Any:
        if rig_key[0] is not frame.rig:
            pipe.set_calibration(frame.rig)
            rig_key[0] = frame.rig
        return pipe(frame.images, frame.points, keep_tensors=True).tensors

    with pipe, tqdm(total=limit, desc="calibration frames", unit="frame", disable=not show) as bar:

        def advance(k: int) -> None:
            bar.update(k)

        n = collect_stage_inputs(run, frames, names, out, limit, advance)
    if n == 0:
        msg = "the calibration source gave no complete frames"
        raise ConfigError(msg)
    return n


def build_engine(
    trt: Any,
    spec: ModelSpec,
    stage: Stage,
    cfg: EngineConfig,
    out: Path,
    device: tuple[str, str],
    batches: Iterator[Mapping[str, npt.NDArray[Any]]] | None = None,
    recalibrate: bool = False,
) -> BuildResult:
    """One stage's engine into ``out`` with ``cfg``'s settings, caches and calibration: what
    build-engines does per stage and what the tensorrt backend does when it rebuilds one. An INT8
    calibrator stage calibrates on ``batches`` or, without them, replays its calibration cache."""
    sb = cfg.for_stage(stage.name).on(stage.dla_capable)
    cache = cfg.calibration_cache(out, stage.name)
    calibrator = None
    if sb.calibrated:
        if recalibrate:
            cache.unlink(missing_ok=True)
        if batches is None and not cache.is_file():
            msg = (
                f"stage {stage.name}: an int8 calibrator engine needs calibration data or the cache {cache}; run "
                "`bevfusion-ros build-engines` with --calibration-bag once"
            )
            raise BackendError(msg)
        calibrator = make_entropy_calibrator(trt, batches, cache)
    try:
        return build_stage(
            trt,
            stage,
            spec.path(stage),
            sb,
            out,
            device,
            cfg.timing_cache_path(out),
            calibrator,
            cache if calibrator is not None else None,
        )
    finally:
        if calibrator is not None:
            calibrator.free()


def build_all(
    cfg: EngineConfig,
    out: Path,
    stages: list[Stage],
    calibration_frames: Iterable[Any] | None,
    frames: int,
    recalibrate: bool = False,
    device: int = 0,
    show: bool = True,
) -> list[BuildResult]:
    """Build ``stages`` of ``cfg`` into ``out``; calibrator stages without a cache need ``calibration_frames``."""
    from bevfusion_ros.core.cuda import driver as cuda

    trt = import_tensorrt()
    spec = load_model(cfg.model)
    calibrated = [s for s in stages if cfg.for_stage(s.name).calibrated]
    need = [s for s in calibrated if recalibrate or not cfg.calibration_cache(out, s.name).is_file()]
    if need and calibration_frames is None:
        msg = (
            f"stages {[s.name for s in need]} use the INT8 calibrator and have no calibration cache in "
            f"{out / cfg.calibration.cache_dir}: pass --calibration-bag BAG"
        )
        raise ConfigError(msg)
    ctx = cuda.CudaContext(device)
    results: list[BuildResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="bevfusion-calib-"))
    try:
        if need:
            assert calibration_frames is not None
            n = collect_calibration(
                spec,
                calibration_frames,
                {s.name: tuple(t.name for t in s.inputs) for s in need},
                tmp,
                frames or cfg.calibration.frames,
                show,
            )
            print(f"calibration: {n} frames")
        with ctx.active():
            load_plugins(trt, cfg.plugins, sorted({name for s in stages for name in s.plugins}))
            dev = (ctx.name, ctx.compute_capability)
            for stage in tqdm(stages, f"building {cfg.variant} engines", unit="stage", disable=not show):
                batches = stage_batches(tmp / stage.name) if stage in need else None
                r = build_engine(trt, spec, stage, cfg, out, dev, batches, recalibrate)
                sb = cfg.for_stage(stage.name)
                results.append(r)
                print(f"{stage.name}: {sb.variant()} {r.info.engine_bytes / 1e6:.1f} MB in {r.seconds:.1f} s")
                if r.dla is not None:
                    print("  " + r.dla.summary())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ctx.release()
    write_report(out, cfg, results)
    return results


def write_report(out: Path, cfg: EngineConfig, results: list[BuildResult]) -> None:
    rows = [
        f"# TensorRT engines: {cfg.variant}",
        "",
        f"Model `{cfg.model}`, config `{cfg.source}`.",
        "",
        "| stage | precision | DLA core | flags | engine MB | build s | TensorRT | device |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        i = r.info
        rows.append(
            f"| {r.stage} | {i.precision} | {i.dla_core} | {' '.join(i.flags)} | {i.engine_bytes / 1e6:.2f} | "
            f"{r.seconds:.1f} | {i.tensorrt_version} | {i.device_name} ({i.compute_capability}) |"
        )
    dla = [r.dla for r in results if r.dla is not None]
    if dla:
        rows += ["", "## DLA placement", ""] + [d.markdown() for d in dla]
    warns = [(r.stage, w) for r in results for w in r.warnings]
    if warns:
        rows += ["", "## TensorRT warnings", ""] + [f"- {s}: {w}" for s, w in warns]
    out.mkdir(parents=True, exist_ok=True)
    (out / "build_report.md").write_text("\n".join(rows) + "\n")
    data = [
        {
            "stage": r.stage,
            "engine": str(r.engine),
            "seconds": r.seconds,
            "info": json.loads(r.info.to_json()),
            "dla": json.loads(r.dla.to_json()) if r.dla else None,
        }
        for r in results
    ]
    (out / "build_report.json").write_text(json.dumps(data, indent=1))
