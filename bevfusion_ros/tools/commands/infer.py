"""``bevfusion-ros infer``: run one frame through the pipeline and write pictures and JSON.

Input is the real nuScenes frame (``--frame``), a generated scene (``--scene SEED``, needs ``--frame``
for the camera rig), or frame N of a bag made by make-bag (``--bag``, calibration from the bag's
calibration.yaml). Writes <out>/bev.png, <out>/cameras.png and <out>/detections.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BagError
from bevfusion_ros.core.model import ModelSpec, load_model
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.resources import default_model
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.core.sensors.sweeps import SweepBuffer
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig
from bevfusion_ros.tools.viz.plots import bev_figure, camera_mosaic


def load_input(
    args: argparse.Namespace, spec: ModelSpec
) -> tuple[Sequence[npt.NDArray[np.uint8] | None], npt.NDArray[np.float32], CameraRig, Detections | None, str]:
    names = spec.cameras
    if args.bag:
        from bevfusion_ros.tools.bags.frames import read_frames

        for i, fr in enumerate(read_frames(Path(args.bag), spec)):
            if i == args.index:
                return fr.images, fr.points, fr.rig, fr.ground_truth, f"bag {Path(args.bag).name} frame {i}"
        msg = f"bag {args.bag} has fewer than {args.index + 1} complete frames"
        raise BagError(msg)
    if args.scene is not None:
        from bevfusion_ros.tools.data import scenes

        rig = frame_rig(args.frame, names, *scenes.RENDER_SIZE)
        sc = scenes.generate_scene(args.scene)
        return (
            scenes.render_cameras(sc, rig, *scenes.RENDER_SIZE),
            scenes.lidar_sweep(sc),
            rig,
            sc.boxes,
            f"scene {args.scene}",
        )
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    f = load_frame(args.frame)
    by_name = {c.name: c for c in f.cameras}
    return [by_name[n].image_bgr for n in names], f.points, frame_rig(args.frame, names), f.boxes, "nuScenes frame"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="model YAML (default: engines/reference/model.yaml)")
    p.add_argument("--frame", type=Path, default=Path("../shared/data/nuscenes_frame"), help="nuScenes frame folder")
    p.add_argument("--scene", type=int, default=None, help="run a generated scene with this seed instead")
    p.add_argument("--bag", type=Path, default=None, help="run frame --index of this bag instead")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--score", type=float, default=0.3, help="score threshold for the pictures")
    p.add_argument("--out", type=Path, default=Path("build/infer"))


def run(args: argparse.Namespace) -> int:
    spec = load_model(args.model or default_model())
    images, points, rig, gt, what = load_input(args, spec)
    model_points = points
    if "time_lag" in spec.lidar.point_features:
        # one frame is one sweep: the time-lag column is 0 and no past sweeps are added
        model_points = SweepBuffer(1, spec.lidar.max_points).add(points, 0.0, None).points
        if spec.lidar.sweeps > 1:
            what += f" (1 of the model's {spec.lidar.sweeps} sweeps)"
    with Pipeline(spec, args.backend) as pipe:
        pipe.set_calibration(rig)
        result = pipe(images, model_points)
    det = result.detections.select(result.detections.scores >= args.score)
    args.out.mkdir(parents=True, exist_ok=True)
    bev_figure(
        args.out / "bev.png",
        points,
        det,
        gt,
        result.segmentation,
        title=f"{spec.name}: {what}, {len(det)} boxes >= {args.score}",
    )
    camera_mosaic(args.out / "cameras.png", images, rig, det)
    summary = {
        "input": what,
        "model": spec.name,
        "backend": args.backend,
        "points_used": result.points_used,
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        "detections": [
            {
                "label": n,
                "score": round(float(s), 3),
                "center": [round(float(v), 2) for v in c],
                "size": [round(float(v), 2) for v in z],
                "yaw": round(float(y), 3),
            }
            for n, s, c, z, y in zip(det.label_names(), det.scores, det.centers, det.sizes, det.yaw, strict=True)
        ],
    }
    (args.out / "detections.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{what}: {len(det)} detections >= {args.score}; total {result.timings_ms['total']:.0f} ms; "
        f"wrote {args.out}/bev.png, cameras.png, detections.json"
    )
    return 0
