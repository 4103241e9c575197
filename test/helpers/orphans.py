"""Processes a test left running in this test run's DDS domain (a node whose test was killed by
pytest-timeout, a launch whose SIGINT never came): they answer the next tests' subscriptions and
services, so a failure in one test spreads to the tests after it. Found by their ROS_DOMAIN_ID."""

from __future__ import annotations

import os
import signal

import psutil

DAEMON = "ros2-daemon"  # the ros2 CLI's graph cache: a module fixture keeps it across tests
# what module fixtures keep across their tests besides the daemon, by a word of the command line
# (test_fleet.py's local Ray instance: its raylet, GCS and workers)
KEPT: set[str] = set()


def in_domain(domain_id: int, include_daemon: bool = False) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get("ROS_DOMAIN_ID") != str(domain_id) or p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.cmdline())
            if not include_daemon and any(word in cmd for word in (DAEMON, *KEPT)):
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        found.append(p)
    return found


def kill(processes: list[psutil.Process]) -> list[str]:
    """SIGKILL each; returns 'pid: command' of those that were still there."""
    killed = []
    for p in processes:
        try:
            cmd = " ".join(p.cmdline())[:200]
            p.send_signal(signal.SIGKILL)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        killed.append(f"{p.pid}: {cmd}")
    psutil.wait_procs(processes, timeout=5)
    return killed
