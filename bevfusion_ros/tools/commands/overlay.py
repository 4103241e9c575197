"""``bevfusion-ros overlay``: the real frame's LiDAR points projected into its six camera images."""

from __future__ import annotations

import argparse
from pathlib import Path

from bevfusion_ros.tools.data.nuscenes_frame import frame_rig, load_frame
from bevfusion_ros.tools.viz.plots import projection_overlay


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frame", type=Path, default=Path("../shared/data/nuscenes_frame"))
    p.add_argument("--out", type=Path, default=Path("build/infer/projection.png"))


def run(args: argparse.Namespace) -> int:
    """LiDAR points of the real frame drawn into its six images: the geometry check people look at."""
    f = load_frame(args.frame)
    names = tuple(c.name for c in f.cameras)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    projection_overlay(args.out, [c.image_bgr for c in f.cameras], frame_rig(args.frame, names), f.points)
    print(f"wrote {args.out}")
    return 0
