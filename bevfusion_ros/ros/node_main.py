"""The ``main()`` both nodes share: init, create the node (refused parameters -> exit 2), an optional
start-up step, spin a single-threaded executor until SIGINT/SIGTERM (rclpy's handlers), and on every
way out release the node's own resources, destroy it and shut the context down."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bevfusion_ros.core.errors import BevFusionError


def run(
    name: str, make: Callable[[], Any], args: list[str] | None = None, start: Callable[[Any], int | None] | None = None
) -> int:
    """``start(node)`` returns an exit code to stop before spinning, or None to spin."""
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    owns_process()
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
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM shut the context down between the executor's check and its wait set
        # (RCLError "context is not valid"): a stop like any other
    finally:
        with shielded_teardown():
            release = getattr(node, "release", None)
            if callable(release):  # worker threads and models go before the node and the context do
                release()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    return 0


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def shielded_teardown() -> Iterator[None]:
    """SIGINT and SIGTERM are ignored while the block (a process's teardown) runs; in a process whose
    main is ours (``owns_process``) they stay ignored until it has exited.

    A stop signal may come while the process is already finishing (a bag player that has just played
    its last message when launch shuts everything down). After rclpy.try_shutdown() Python's own
    handler raises KeyboardInterrupt in the middle of the teardown or the report after it, and while
    the interpreter finalises (DDS participants going away) CPython resets SIGINT to the default
    action: the process dies with -2, its shared-memory segments left behind. Ignored signals stay
    ignored through finalisation. A caller in the same process (a test calling a command's ``run``)
    gets its handlers back after the block: ignored signals are inherited by every process it starts
    later (a ``ros2 launch`` that then never stops on SIGINT). A teardown that hangs still ends:
    launch escalates to SIGKILL.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        if not _owns_process:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_owns_process = False


def owns_process() -> None:
    """Called by an entry point that is the process's main: after its teardown the process only
    exits, so shielded_teardown keeps the stop signals ignored through the exit."""
    global _owns_process
    _owns_process = True


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
    owns_process()
    try:
        return run(args)
    except BevFusionError as exc:  # as bevfusion-ros does: one line naming the tool, exit 2
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
