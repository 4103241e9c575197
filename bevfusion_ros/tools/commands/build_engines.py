"""``bevfusion-ros build-engines``: TensorRT engines for every ONNX stage of a model, on the target.

    bevfusion-ros build-engines --config config/engines/int8_dla.yaml --calibration-bag BAG

Per stage: engine + JSON sidecar (engine cache), a DLA placement report when the stage runs on a
DLA core, a shared timing cache; INT8 calibrator stages first collect their input tensors from
``--frames`` bag frames through the fp32 ONNX Runtime pipeline (the real pre-processing) and write a
calibration cache that later builds reuse. Writes build_report.md/json into the engine directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.trt.build import build_all, onnx_stages
from bevfusion_ros.core.trt.engine_config import EngineConfig, load_engine_config


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


def run(args: argparse.Namespace) -> int:
    cfg = load_engine_config(args.config)
    spec = load_model(cfg.model)
    out = engine_dir(cfg, args.out)
    frames = None
    if args.calibration_bag:
        from bevfusion_ros.tools.bags.frames import read_frames

        frames = read_frames(Path(args.calibration_bag), spec)
    build_all(
        cfg,
        out,
        onnx_stages(spec, args.stages),
        frames,
        args.frames,
        args.recalibrate,
        args.device,
        not args.no_progress,
    )
    print(f"engines and build_report.md in {out}")
    return 0
