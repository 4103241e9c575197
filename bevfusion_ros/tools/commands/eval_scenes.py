"""``bevfusion-ros eval-scenes``: score a model on held-out generated scenes with nuScenes metrics.

Scenes (seeds from 10,000,000 up, never used in training) are rendered with the real nuScenes rig at
400x225 and a 32-beam LiDAR, run through the pipeline, and scored with nuscenes-devkit (mAP, NDS,
per-class AP, TP errors) and BEVFusion's map IoU. Writes <out>/metrics.json and <out>/metrics.md.
A multi-sweep model (``time_lag`` point feature) sees each scene at the end of a short drive
(scenes.drive: its ``lidar.sweeps`` sweeps at 10 Hz, ego motion, moving objects), so its velocity
is scored (AVE) too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.eval.metrics import DetectionEvaluator, MapIoU
from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.resources import default_model
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig
from bevfusion_ros.tools.viz.progress import progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--frame", type=Path, default=Path("../shared/data/nuscenes_frame"), help="source of the camera rig")
    p.add_argument("--scenes", type=int, default=50)
    p.add_argument("--first-seed", type=int, default=scenes.EVAL_SEED_BASE)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--out", type=Path, default=Path("build/eval_scenes"))


def markdown(m: dict[str, Any], title: str) -> str:
    det, mp = m["detection"], m["map"]
    lines = [
        f"# {title}",
        "",
        f"{m['frames']} held-out generated scenes, backend {m['backend']}, {m['frames_per_s']:.2f} frames/s (CPU).",
        "",
        f"**mAP {det['mean_ap']:.3f}  NDS {det['nd_score']:.3f}  mIoU {mp['miou']:.3f}**",
        "",
        "| class | AP (mean of 0.5/1/2/4 m) | ATE m | ASE | AOE rad | AVE m/s |",
        "|---|---|---|---|---|---|",
    ]
    for c, aps in det["label_aps"].items():
        tp = det["label_tp_errors"][c]
        # as evaluate's report: the devkit scores a model without a velocity head against velocity 0
        ave = f"{tp['vel_err']:.3f}" if m["predicts_velocity"] else "n/a (no velocity head)"
        lines.append(
            f"| {c} | {np.mean(list(aps.values())):.3f} | {tp['trans_err']:.3f} | {tp['scale_err']:.3f} | "
            f"{tp['orient_err']:.3f} | {ave} |"
        )
    lines += ["", "| map class | IoU (best threshold) |", "|---|---|"]
    lines += [f"| {c} | {v:.3f} ({mp['best_threshold'][c]}) |" for c, v in mp["iou"].items()]
    lines += ["", "Mean stage times (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in m["timings_ms"].items())]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.scenes < 1:
        msg = f"--scenes must be >= 1 (how many held-out scenes to score), got {args.scenes}"
        raise ConfigError(msg)
    spec = load_model(args.model or default_model())
    rig = frame_rig(args.frame, spec.cameras, *scenes.RENDER_SIZE)
    det_eval = DetectionEvaluator(spec.class_names)
    assert spec.map is not None
    map_eval = MapIoU(spec.map.classes)
    timings: dict[str, list[float]] = {}
    start = time.perf_counter()
    with Pipeline(spec, args.backend) as pipe:
        pipe.set_calibration(rig)
        for seed in progress(range(args.first_seed, args.first_seed + args.scenes), "scenes", "scene"):
            if "time_lag" in spec.lidar.point_features:
                sc, cloud = scenes.drive(seed, spec.lidar.sweeps, frames=1)[-1]
            else:
                sc = scenes.generate_scene(seed)
                cloud = scenes.lidar_sweep(sc)
            r = pipe(scenes.render_cameras(sc, rig, *scenes.RENDER_SIZE), cloud)
            det_eval.add(str(seed), sc.boxes, r.detections)
            if r.segmentation is not None:
                map_eval.add(r.segmentation.probabilities, scenes.rasterize_map(sc, spec.map.grid))
            for k, v in r.timings_ms.items():
                timings.setdefault(k, []).append(v)
    wall = time.perf_counter() - start
    det = det_eval.compute()
    det.pop("pr_curves")
    m = {
        "model": spec.name,
        "backend": args.backend,
        "frames": args.scenes,
        "first_seed": args.first_seed,
        "frames_per_s": args.scenes / wall,
        "predicts_velocity": spec.predicts_velocity,
        "detection": det,
        "map": map_eval.compute(),
        "timings_ms": {k: float(np.mean(v)) for k, v in timings.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(m, indent=1, default=float))
    (args.out / "metrics.md").write_text(markdown(m, f"{spec.name} on generated scenes"))
    print(
        f"mAP {det['mean_ap']:.3f}  NDS {det['nd_score']:.3f}  mIoU {m['map']['miou']:.3f} "
        f"over {args.scenes} scenes; wrote {args.out}/metrics.json, metrics.md"
    )
    return 0
