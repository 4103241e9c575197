"""Per-stage error of INT8 models against fp32: each quantised stage fed the fp32 model's own inputs.

    python -m training.int8_report --variant PTQ=engines/reference/model.ptq.yaml \
        --variant QAT=engines/reference/model.int8.yaml [--scenes 20]

For every held-out scene (the evaluation's seeds) the fp32 pipeline runs with its tensors kept; every
variant's stage file then runs on that stage's fp32 inputs, so a row shows what quantising that
stage alone costs, not the error it inherits. Relative L2 error ||int8 - fp32|| / ||fp32||, mean
over the scenes; a Markdown table on stdout. ONNX Runtime only (no torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.resources import default_model
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig
from bevfusion_ros.tools.viz.progress import progress


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="the fp32 model YAML")
    ap.add_argument("--variant", action="append", required=True, help="NAME=model YAML of an INT8 variant")
    ap.add_argument("--frame", type=Path, default=Path("../shared/data/nuscenes_frame"))
    ap.add_argument("--scenes", type=int, default=20)
    args = ap.parse_args()
    spec = load_model(args.model or default_model())
    variants = dict(v.split("=", 1) for v in args.variant)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sessions: dict[str, dict[str, ort.InferenceSession]] = {}
    for name, path in variants.items():
        v = load_model(path)
        sessions[name] = {
            s.name: ort.InferenceSession(str(v.path(s)), opts, providers=["CPUExecutionProvider"])
            for s in v.stages
            if s.file and v.path(s).resolve() != spec.path(spec.stage(s.name)).resolve()
        }
    errors: dict[tuple[str, str, str], list[float]] = {}
    rig = frame_rig(args.frame, spec.cameras, *scenes.RENDER_SIZE)
    with Pipeline(spec) as pipe:
        pipe.set_calibration(rig)
        seeds = range(scenes.EVAL_SEED_BASE, scenes.EVAL_SEED_BASE + args.scenes)  # eval-scenes' seeds
        for seed in progress(seeds, "int8 vs fp32", "scene"):
            sc = scenes.generate_scene(seed)
            r = pipe(scenes.render_cameras(sc, rig, *scenes.RENDER_SIZE), scenes.lidar_sweep(sc), keep_tensors=True)
            for name, stages in sessions.items():
                for stage_name, sess in stages.items():
                    stage = spec.stage(stage_name)
                    outs = sess.run(None, {t.name: np.asarray(r.tensors[t.name], np.float32) for t in stage.inputs})
                    for t, got in zip(stage.outputs, outs, strict=True):
                        ref = np.asarray(r.tensors[t.name], np.float32)
                        err = float(np.linalg.norm(got - ref) / max(float(np.linalg.norm(ref)), 1e-12))
                        errors.setdefault((stage_name, t.name, name), []).append(err)
    names = list(variants)
    print(f"| stage | output | {' | '.join(names)} |")
    print(f"|---|---|{'---|' * len(names)}")
    for stage in spec.stages:
        for t in stage.outputs:
            cells = [errors.get((stage.name, t.name, n)) for n in names]
            if any(cells):
                row = " | ".join(f"{np.mean(c):.3f}" if c else "fp32" for c in cells)
                print(f"| {stage.name} | {t.name} | {row} |")


if __name__ == "__main__":
    main()
