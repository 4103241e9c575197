"""The shared main(): a stop signal that lands while a process is already tearing down (launch shuts
everything down just as a bag player finishes) must not turn a clean exit into death by signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from bevfusion_ros.ros.transport import transport_env

# A node whose release() is hit by SIGINT and SIGTERM, as launch's shutdown hits a process that has
# just left spin: the rest of the teardown must still run and the process exit 0.
NODE_STOPPED_DURING_TEARDOWN = textwrap.dedent(
    """
    import os, signal, sys, time
    import rclpy.node
    from bevfusion_ros.ros.node_main import run

    class Node(rclpy.node.Node):
        def release(self):
            for sig in (signal.SIGINT, signal.SIGTERM):
                os.kill(os.getpid(), sig)
                time.sleep(0.1)  # the handler of a pending signal runs here
            print("released", flush=True)

    code = run("teardown_probe", lambda: Node("teardown_probe"), start=lambda node: 0)
    print("exit", code, flush=True)
    sys.exit(code)
    """
)


def test_signals_during_teardown_are_ignored() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NODE_STOPPED_DURING_TEARDOWN],
        env=transport_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["released", "exit", "0"]


def test_a_command_run_in_process_gives_the_signal_handlers_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ignored signals are inherited by every process started later: a test (or tool) that calls a
    command in process must keep its Ctrl-C, and so must the ros2 launch it starts next."""
    from bevfusion_ros.tools import cli

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert cli.main(["play", str(tmp_path / "no_such_bag")]) == 2  # through rclpy.init and the teardown
    assert {sig: signal.getsignal(sig) for sig in before} == before
