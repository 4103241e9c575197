"""``bevfusion-ros build-engines``: TensorRT engines for every ONNX stage of a model, on the target.

    bevfusion-ros build-engines --config config/engines/int8_dla.yaml --calibration-bag BAG

Per stage: engine + JSON sidecar (engine cache), a DLA placement report when the stage runs on a
DLA core, a shared timing cache; INT8 calibrator stages first collect their input tensors from
``--frames`` bag frames through the fp32 ONNX Runtime pipeline (the real pre-processing) and write a
calibration cache that later builds reuse. Writes build_report.md/json into the engine directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bevfusion_ros.core.calibrator import collect_stage_inputs, make_entropy_calibrator, stage_batches
from bevfusion_ros.core.engine_config import EngineConfig, load_engine_config
from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.model import ONNX, ModelSpec, Stage, load_model
from bevfusion_ros.core.trt_build import BuildResult, build_stage
from bevfusion_ros.tools.progress import progress


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", required=True, help="engine build config (config/engines/*.yaml)")
    ap.add_argument("--out", default="", help="engine directory (default: engines/build/<variant>)")
    ap.add_argument("--calibration-bag", default="", help="rosbag2 whose frames calibrate INT8 calibrator stages")
    ap.add_argument("--frames", type=int, default=0, help="calibration frames (default: the config's)")
    ap.add_argument("--recalibrate", action="store_true", help="ignore existing calibration caches")
    ap.add_argument("--stages", default="", help="comma-separated stage names (default: every ONNX stage)")
    ap.add_argument("--device", type=int, default=0, help="CUDA device")
    ap.add_argument("--no-progress", action="store_true")


def engine_dir(cfg: EngineConfig, out: str) -> Path:
    return Path(out) if out else Path("engines") / "build" / cfg.variant


def _stages(spec: ModelSpec, only: str) -> list[Stage]:
    stages = [s for s in spec.stages if s.kind == ONNX]
    if only:
        wanted = [x.strip() for x in only.split(",") if x.strip()]
        unknown = [w for w in wanted if w not in {s.name for s in stages}]
        if unknown:
            msg = f"--stages names {unknown}; ONNX stages are {[s.name for s in stages]}"
            raise ConfigError(msg)
        stages = [s for s in stages if s.name in wanted]
    return stages


def collect_calibration(spec: ModelSpec, frames: Iterable[Any], names: dict[str, tuple[str, ...]], out: Path,
                        limit: int, show: bool) -> int:  # fmt: skip
    """Stage input tensors of up to ``limit`` frames (with .images, .points, .rig) through the fp32
    ONNX Runtime pipeline: the real pre-processing, bevpool and upstream stages."""
    from tqdm import tqdm

    from bevfusion_ros.core.pipeline import Pipeline

    pipe = Pipeline(spec, "onnxruntime")
    rig_key: list[Any] = [None]

    def run(frame: Any) -> Any:
        if rig_key[0] is not frame.rig:
            pipe.set_calibration(frame.rig)
            rig_key[0] = frame.rig
        return pipe(frame.images, frame.points, keep_tensors=True).tensors

    with pipe, tqdm(total=limit, desc="calibration frames", unit="frame", disable=not show) as bar:
        n = collect_stage_inputs(run, frames, names, out, limit, bar.update)
    if n == 0:
        msg = "the calibration source gave no complete frames"
        raise ConfigError(msg)
    return n


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
    from bevfusion_ros.core import cuda
    from bevfusion_ros.core.optional import import_tensorrt
    from bevfusion_ros.core.trt_common import load_plugins

    trt = import_tensorrt()
    spec = load_model(cfg.model)
    cal_dir = out / cfg.calibration.cache_dir
    calibrated = [s for s in stages if cfg.for_stage(s.name).calibrated]
    need = [s for s in calibrated if recalibrate or not (cal_dir / f"{s.name}.cache").is_file()]
    if need and calibration_frames is None:
        msg = (
            f"stages {[s.name for s in need]} use the INT8 calibrator and have no calibration cache in "
            f"{cal_dir}: pass --calibration-bag BAG"
        )
        raise ConfigError(msg)
    ctx = cuda.CudaContext(device)
    results: list[BuildResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="bevfusion-calib-"))
    try:
        if need:
            assert calibration_frames is not None
            n = collect_calibration(spec, calibration_frames, {s.name: tuple(t.name for t in s.inputs) for s in need},
                                    tmp, frames or cfg.calibration.frames, show)  # fmt: skip
            print(f"calibration: {n} frames")
        with ctx.active():
            load_plugins(trt, cfg.plugins)
            dev = (ctx.name, ctx.compute_capability)
            for stage in progress(stages, f"building {cfg.variant} engines", unit="stage", enabled=show):
                sb = cfg.for_stage(stage.name)
                calibrator = None
                cache = cal_dir / f"{stage.name}.cache"
                if sb.calibrated:
                    if recalibrate:
                        cache.unlink(missing_ok=True)
                    batches = stage_batches(tmp / stage.name) if stage in need else None
                    calibrator = make_entropy_calibrator(trt, batches, cache)
                timing = out / cfg.timing_cache if cfg.timing_cache else None
                r = build_stage(trt, stage, spec.path(stage), sb, out, dev, timing, calibrator,
                                cache if calibrator is not None else None)  # fmt: skip
                if calibrator is not None:
                    calibrator.free()
                results.append(r)
                print(f"{stage.name}: {sb.variant()} {r.info.engine_bytes / 1e6:.1f} MB in {r.seconds:.1f} s")
                if r.dla is not None:
                    print("  " + r.dla.summary())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ctx.release()
    write_report(out, cfg, results)
    return results


def run(args: argparse.Namespace) -> int:
    cfg = load_engine_config(args.config)
    spec = load_model(cfg.model)
    out = engine_dir(cfg, args.out)
    frames = None
    if args.calibration_bag:
        from bevfusion_ros.tools.bag_frames import read_frames

        frames = read_frames(Path(args.calibration_bag), spec.cameras)
    build_all(cfg, out, _stages(spec, args.stages), frames, args.frames, args.recalibrate, args.device,
              not args.no_progress)  # fmt: skip
    print(f"engines and build_report.md in {out}")
    return 0


def write_report(out: Path, cfg: EngineConfig, results: list[BuildResult]) -> None:
    rows = [
        f"# TensorRT engines: {cfg.variant}", "",
        f"Model `{cfg.model}`, config `{cfg.source}`.", "",
        "| stage | precision | DLA core | flags | engine MB | build s | TensorRT | device |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
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
    data = [{"stage": r.stage, "engine": str(r.engine), "seconds": r.seconds, "info": json.loads(r.info.to_json()),
             "dla": json.loads(r.dla.to_json()) if r.dla else None} for r in results]  # fmt: skip
    (out / "build_report.json").write_text(json.dumps(data, indent=1))
