"""ROS domain ids for test processes: one from a range, picked by this process's pid, so two test runs
on one machine (make test runs the dev, jazzy and humble-floor stacks side by side, each with its own
ranges: scripts/stack_test.sh) never see each other's nodes."""

from __future__ import annotations

import os


def domain_id(env: str, default: tuple[int, int]) -> int:
    """A domain in the inclusive range that ``env`` holds as "LO-HI", else ``default``."""
    raw = os.environ.get(env, "")
    lo, hi = (int(x) for x in raw.split("-")) if raw else default
    if not 0 <= lo <= hi <= 232:  # Fast DDS maps a domain to ports: 232 is the highest that fits
        msg = f"{env}={raw!r}: a range LO-HI within 0-232"
        raise ValueError(msg)
    return lo + os.getpid() % (hi - lo + 1)
