"""The ``main()`` both nodes share: init, create the node (refused parameters -> exit 2), an optional
start-up step, spin a single-threaded executor until SIGINT/SIGTERM (rclpy's handlers), and on every
way out release the node's own resources, destroy it and shut the context down."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def run(
    name: str, make: Callable[[], Any], args: list[str] | None = None, start: Callable[[Any], int | None] | None = None
) -> int:
    """``start(node)`` returns an exit code to stop before spinning, or None to spin."""
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from bevfusion_ros.core.errors import BevFusionError

    rclpy.init(args=args)
    try:
        node = make()
    except (ParameterException, BevFusionError) as exc:  # an override outside its range or of the wrong type
        print(f"[{name}] refused parameters: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        code = start(node) if start is not None else None
        if code is not None:
            return code
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        release = getattr(node, "release", None)
        if callable(release):  # worker threads and models go before the node and the context do
            release()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def tool_main(prog: str, doc: str | None, add_arguments: Callable[[Any], None], run: Callable[[Any], int]) -> int:
    """``main()`` of a tool that is also a ROS node when ``ros2 run`` or a launch file starts it (player,
    probe): the ROS arguments launch_ros appends (``--ros-args -r __node:=...``) go to rclpy, the rest
    to the tool's own argparse."""
    import argparse

    from rclpy.utilities import remove_ros_args

    ap = argparse.ArgumentParser(prog=prog, description=doc)
    add_arguments(ap)
    args = ap.parse_args(remove_ros_args(sys.argv)[1:])
    args.rclpy_args = sys.argv
    return run(args)
