"""``bevfusion-ros make-bag``: the real nuScenes frame (or generated scenes) as a rosbag2, recorded as
a vehicle would; the topics are those of ``tools.bags.layout``, the writing is ``tools.bags.writer``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import ConfigError
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
    ap.add_argument(
        "--ego-speed",
        type=float,
        default=None,
        metavar="M_S",
        help="with --scene: drive through scene SEED at this speed instead (one scene, the ego moving "
        "straight ahead, objects moving; /tf odom -> base_link per sweep, for multi-sweep models)",
    )
    ap.add_argument(
        "--lose",
        action="append",
        default=[],
        metavar="SENSOR:FIRST:LAST",
        help="leave SENSOR (lidar or cameras) out of frames FIRST..LAST (0-based, inclusive), ground truth kept: "
        "a sensor failure for the node's degraded modes; repeatable",
    )
    ap.add_argument("--compressed", action="store_true", help="write JPEG CompressedImage instead of raw bgr8")
    ap.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    ap.add_argument("--overwrite", action="store_true")


LOSABLE = ("lidar", "cameras")


def parse_losses(values: list[str], n_frames: int) -> Callable[[int], frozenset[str]] | None:
    """--lose SENSOR:FIRST:LAST values -> the sensors silent in frame k."""
    spans: list[tuple[str, int, int]] = []
    for v in values:
        parts = v.split(":")
        ok = len(parts) == 3 and parts[0] in LOSABLE and all(p.isdigit() for p in parts[1:])
        if not ok or not int(parts[1]) <= int(parts[2]) < n_frames:
            raise ConfigError(
                f"--lose {v!r} must be SENSOR:FIRST:LAST with SENSOR one of {', '.join(LOSABLE)} and "
                f"0 <= FIRST <= LAST < --frames ({n_frames})"
            )
        spans.append((parts[0], int(parts[1]), int(parts[2])))
    if not spans:
        return None
    return lambda k: frozenset(s for s, a, b in spans if a <= k <= b)


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.rate <= 0:
        raise ConfigError("--frames must be >= 1 and --rate > 0")
    lost = parse_losses(args.lose, args.frames)
    frame = load_frame(args.frame)
    maker = map_maker = poses = None
    if args.ego_speed is not None and args.scene is None:
        raise ConfigError("--ego-speed drives through a generated scene: give --scene SEED")
    if args.scene is not None:
        from bevfusion_ros.core.model import load_model
        from bevfusion_ros.core.resources import default_model
        from bevfusion_ros.tools.data import scenes

        seed = args.scene
        map_spec = load_model(default_model()).map
        assert map_spec is not None
        if args.ego_speed is None:

            def scene_at(k: int) -> scenes.Scene:
                return scenes.generate_scene(seed + k)
        else:
            start = scenes.generate_scene(seed)
            # the generated world is level in the LiDAR frame: the ego drives along the LiDAR's
            # horizontal heading closest to base_link's x, so the TF and the moved scene agree exactly
            heading = np.linalg.inv(frame.lidar2ego)[:3, :3] @ np.array([1.0, 0.0, 0.0])
            heading[2] = 0.0
            ahead: npt.NDArray[np.float64] = heading * (args.ego_speed / np.linalg.norm(heading))  # m/s, LiDAR axes
            lidar_to_base = frame.lidar2ego[:3, :3]

            def travel(k: int) -> npt.NDArray[np.float64]:
                return ahead * float(k / args.rate)  # the LiDAR's displacement in its own (unrotated) axes

            def ego_pose(k: int) -> npt.NDArray[np.float64]:
                pose = np.eye(4)
                pose[:3, 3] = lidar_to_base @ travel(k)  # odom -> base_link: a pure translation
                return pose

            def scene_at(k: int) -> scenes.Scene:
                shift = travel(k)
                return scenes.moved(start, (float(shift[0]), float(shift[1])), k / args.rate)

            poses = ego_pose
        base = frame
        frame = scene_frame(base, seed, scene_at(0))

        def maker(k: int) -> NuScenesFrame:
            return frame if k == 0 else scene_frame(base, seed + k, scene_at(k))

        def map_maker(k: int) -> MapTruth:
            return scenes.rasterize_map(scene_at(k), map_spec.grid), map_spec.grid, scenes.MAP_CLASSES

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
        ego_poses=poses,
        lost=lost,
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"wrote {out} ({args.frames} frames, {size / 2**20:.1f} MiB): 6 cameras, lidar "
        f"({len(frame.points)} points), {len(frame.boxes)} ground-truth boxes, calibration.yaml"
    )
    return 0
