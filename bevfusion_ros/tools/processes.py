"""Child processes the commands start and stop by SIGINT (ros2 launch, the recorder, the player).

A shell runs background jobs with SIGINT ignored, and a child inherits an ignored signal through
exec: ``ros2 launch`` started from ``make test &`` or a CI runner's background step then never sees
the SIGINT that should shut it down, is killed after the grace period instead, and its nodes' exit
codes and the recorder's bag footer are lost. Every child here starts with SIGINT at its default.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(cmd: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``cmd`` in its own session (so a stop reaches everything it spawned), output to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            start_new_session=True,
            preexec_fn=_interruptible,  # safe: the commands start children from one thread
        )


def stop(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """SIGINT (ros2 launch passes it on to every node it started, and escalates itself); a process
    still there after ``timeout`` is killed with its whole session, so no node outlives the run."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
