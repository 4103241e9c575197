"""``bevfusion-ros``: one entry point, one subcommand per tool module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bevfusion_ros.core.errors import BevFusionError

# subcommand -> (module in tools.commands, one-line help); each has add_arguments(parser) and run(args).
COMMANDS = {
    "make-bag": ("make_bag", "write the real nuScenes frame into a rosbag2 (mcap)"),
    "play": ("play", "publish a bag over ROS 2 with its recorded timing"),
    "probe": ("probe", "subscribe, convert and report sizes and latency"),
    "demo-transport": ("demo_transport", "play a bag into a probe in another process"),
    "infer": ("infer", "run one frame through the pipeline and write BEV and camera PNGs"),
    "overlay": ("overlay", "draw the real frame's LiDAR points into its camera images"),
    "run-node": ("run_node", "run the perception node on a bag, record and summarise its outputs"),
    "record": ("record", "record ROS 2 topics into a bag (stand-in for ros2 bag record)"),
    "build-engines": ("build_engines", "build TensorRT engines (fp16/int8/DLA) on the target"),
    "selftest": ("selftest", "prove TensorRT, CUDA and DLA here; Markdown + JSON report"),
    "evaluate": ("evaluate", "replay a bag, score it against ground truth, compare runs"),
    "eval-scenes": ("eval_scenes", "score the model on held-out generated scenes (mAP, NDS, mIoU)"),
}


def main(argv: list[str] | None = None) -> int:
    """``argv`` None: the process's main (the console script), arguments from sys.argv; a caller in
    the same process passes ``argv``."""
    if argv is None:
        from bevfusion_ros.ros.node_main import owns_process

        owns_process()
    # Before any tool module imports rclpy: the middleware reads its profile when it loads, and a
    # participant without the shared-memory profile loses large samples from one that has it.
    from bevfusion_ros.ros.transport import transport_env

    os.environ.update(transport_env())
    ap = argparse.ArgumentParser(prog="bevfusion-ros", description="BEVFusion for ROS 2: tools")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=f"{__package__}.commands.{module}")
        importlib.import_module(p.get_default("_module")).add_arguments(p)
    args = ap.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args))
    except BevFusionError as exc:
        print(f"bevfusion-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
