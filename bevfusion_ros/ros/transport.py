"""Middleware settings that make camera-sized messages cheap on one host.

These must be in a process's environment before rclpy initialises (GLIBC_TUNABLES even before
the process starts), so they are applied to child processes and launch files, not at import.
See config/fastdds_shm.xml for the measurements behind them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from bevfusion_ros.core.resources import config_file

PROFILE_NAME = "fastdds_shm.xml"
# Distributions whose Fast DDS is 2.x; 3.x (Kilted on) warns that the old variable is deprecated.
_FASTDDS2_DISTROS = {"humble", "iron", "jazzy"}
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def profile_path() -> Path:
    """The shipped Fast DDS profile."""
    return config_file(PROFILE_NAME)


def _fastdds2(distro: str) -> bool:
    """Whether the Fast DDS in use is 2.x: by the sourced distribution's name, else (the pip wheels,
    no ROS_DISTRO) by the installed package: Fast DDS 2 installs share/fastrtps, 3 share/fastdds."""
    if distro:
        return distro in _FASTDDS2_DISTROS
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    for prefix in filter(None, prefixes):
        if (Path(prefix) / "share" / "fastdds").is_dir():
            return False
        if (Path(prefix) / "share" / "fastrtps").is_dir():
            return True
    return False


def middleware_settings(profile: str | None, rmw: str | None, distro: str = "") -> dict[str, str]:
    """The variables that select the middleware and its profile: ``rmw`` (e.g. rmw_fastrtps_cpp) and
    a Fast DDS XML ``profile``; an empty or None value leaves that choice to the environment (a
    CycloneDDS or Zenoh vehicle keeps its own). Fast DDS 3 (Kilted on) reads only the new variable
    name; setting both makes it parse the profile twice and log errors."""
    out: dict[str, str] = {}
    if rmw:
        out["RMW_IMPLEMENTATION"] = rmw
    if profile:
        out["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
        if _fastdds2(distro):
            out["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 2.x reads only the old name
    return out


def transport_env(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the shared-memory transport settings."""
    env = dict(os.environ if base is None else base)
    env.update(middleware_settings(str(profile_path()), "rmw_fastrtps_cpp", env.get("ROS_DISTRO", "")))
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="SYSTEM_DEFAULT", GLIBC_TUNABLES=GLIBC_TUNABLES)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def launch_middleware(context: Any) -> list[Any]:
    """For a launch file's OpaqueFunction: SetEnvironmentVariable actions from its ``middleware`` and
    ``fastdds_profile`` arguments ('' = inherit the environment) and the malloc tunables."""
    from launch.actions import SetEnvironmentVariable

    rmw = context.launch_configurations.get("middleware", "")
    profile = context.launch_configurations.get("fastdds_profile", "")
    settings = middleware_settings(profile, rmw, os.environ.get("ROS_DISTRO", ""))
    settings["GLIBC_TUNABLES"] = GLIBC_TUNABLES
    return [SetEnvironmentVariable(k, v) for k, v in settings.items()]


def shm_opened_by(pid: int | str, root: Path = Path("/dev/shm")) -> set[str]:
    """Paths under ``root`` that process ``pid`` maps or holds open (how a segment in use looks);
    empty when the process is gone or not ours to read."""
    prefix = str(root).rstrip("/") + "/"
    used: set[str] = set()
    try:
        with open(f"/proc/{pid}/maps") as maps:
            used.update(line.split()[-1] for line in maps if prefix in line)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(prefix):
                    used.add(target)
    except OSError:
        return set()
    return used


def _shm_in_use(root: Path) -> set[str]:
    """Paths under ``root`` that some live process has mapped or open."""
    return {path for pid in os.listdir("/proc") if pid.isdigit() for path in shm_opened_by(pid, root)}


# Fast DDS 3 names its files fastdds_*, 2.x (Humble, Jazzy) fastrtps_*
SHM_PREFIXES = ("fastdds_", "fastrtps_")


def fastdds_shm_files(shm: Path = Path("/dev/shm")) -> set[Path]:
    """Fast DDS's segments, locks and port semaphores under ``shm``."""
    if not shm.is_dir():
        return set()
    return {p for pre in SHM_PREFIXES for p in (*shm.glob(f"{pre}*"), *shm.glob(f"sem.{pre}*"))}


def clean_orphaned_shm(
    shm: Path = Path("/dev/shm"), min_age_s: float = 60.0, only: Collection[Path] | None = None
) -> tuple[int, int]:
    """Remove Fast DDS shared-memory segments, locks and port semaphores that no process uses;
    with ``only``, just those of them (the files a test session created: never other users' files).

    A participant that is killed (SIGKILL, OOM, a crash) leaves its 256 MB segment behind, and tmpfs
    keeps the touched pages in RAM: a day of tests had leaked 22 GB. Files younger than
    ``min_age_s`` are left alone (a participant starting now may not have mapped its segment yet).
    Returns (files removed, bytes freed). The ROS 2 CLI equivalent is ``fastdds shm clean``.
    """
    if not shm.is_dir():
        return 0, 0
    used = _shm_in_use(shm)
    now = time.time()
    removed = freed = 0
    candidates = fastdds_shm_files(shm)
    for path in sorted(candidates if only is None else candidates & set(only)):
        try:
            st = path.stat()
            if str(path) in used or now - st.st_mtime < min_age_s:
                continue
            path.unlink()
        except OSError:
            continue
        removed += 1
        freed += st.st_blocks * 512
    return removed, freed
