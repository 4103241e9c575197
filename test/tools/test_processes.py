"""Children started while SIGINT is ignored (a shell's background job: ``make test &``, CI steps)
must still stop on SIGINT: ros2 launch never saw it, was killed after the grace period, and run-node
lost the node's exit code (the 'flaky' test_run_node under a background make)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from bevfusion_ros.tools.processes import start, stop

# exits 3 from its KeyboardInterrupt handler: proof the SIGINT arrived and Python handled it
CHILD = """
import sys, time
print("ready", flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(3)
"""


def test_a_child_of_a_parent_ignoring_sigint_still_stops_on_sigint(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the shell leaves a background job
    try:
        proc = start([sys.executable, "-c", CHILD], log, {})
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    stop(proc, timeout=20)
    assert proc.returncode == 3, log.read_text()  # not -9 (killed after the grace period)
    assert time.monotonic() - t0 < 10
