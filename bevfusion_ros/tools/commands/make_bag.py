"""``bevfusion-ros make-bag``: the real nuScenes frame (or generated scenes) as a rosbag2, recorded as
a vehicle would; the topics are those of ``tools.bags.layout``, the writing is ``tools.bags.writer``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bevfusion_ros.tools.bags.writer import MapTruth, scene_frame, write_bag
from bevfusion_ros.tools.data.nuscenes_frame import NuScenesFrame, load_frame


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--frame",
        type=Path,
        default=Path("../shared/data/nuscenes_frame"),
        help="folder of the nuScenes frame export (frame.json)",
    )
    ap.add_argument("--out", type=Path, required=True, help="bag folder to create")
    ap.add_argument("--frames", type=int, default=10, help="number of 10 Hz frames (default 10)")
    ap.add_argument("--rate", type=float, default=10.0, help="frame rate in Hz (default 10)")
    ap.add_argument(
        "--scene",
        type=int,
        default=None,
        metavar="SEED",
        help="record generated scenes SEED, SEED+1, ... (400x225 cameras, ground truth) instead of "
        "the real frame; held-out seeds start at 10000000",
    )
    ap.add_argument("--compressed", action="store_true", help="write JPEG CompressedImage instead of raw bgr8")
    ap.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    ap.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.rate <= 0:
        raise SystemExit("--frames must be >= 1 and --rate > 0")
    frame = load_frame(args.frame)
    maker = map_maker = None
    if args.scene is not None:
        from bevfusion_ros.core.model import load_model
        from bevfusion_ros.core.resources import default_model
        from bevfusion_ros.tools.data import scenes

        seed = args.scene
        frame = scene_frame(frame, seed)
        map_spec = load_model(default_model()).map
        assert map_spec is not None

        def maker(k: int) -> NuScenesFrame:
            return frame if k == 0 else scene_frame(frame, seed + k)

        def map_maker(k: int) -> MapTruth:
            layers = scenes.rasterize_map(scenes.generate_scene(seed + k), map_spec.grid)
            return layers, map_spec.grid, scenes.MAP_CLASSES

    out = write_bag(
        frame,
        args.out,
        args.frames,
        args.rate,
        args.compressed,
        args.storage,
        args.overwrite,
        frames=maker,
        maps=map_maker,
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"wrote {out} ({args.frames} frames, {size / 2**20:.1f} MiB): 6 cameras, lidar "
        f"({len(frame.points)} points), {len(frame.boxes)} ground-truth boxes, calibration.yaml"
    )
    return 0
