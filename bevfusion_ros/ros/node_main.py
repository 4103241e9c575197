"""The ``main()`` both nodes share: init, create the node (refused parameters -> exit 2), an optional
start-up step, spin a single-threaded executor, and always destroy the node and shut down."""

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
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
