"""Middleware settings that make camera-sized messages cheap on one host.

These must be in a process's environment before rclpy initialises (GLIBC_TUNABLES even before
the process starts), so they are applied to child processes and launch files, not at import.
See config/fastdds_shm.xml for the measurements behind them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROFILE_NAME = "fastdds_shm.xml"
# Distributions whose Fast DDS is 2.x; 3.x (Kilted on) warns that the old variable is deprecated.
_FASTDDS2_DISTROS = {"humble", "iron", "jazzy"}
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def profile_path() -> Path:
    """The shipped Fast DDS profile: the installed share folder, else the source tree's config/."""
    from bevfusion_ros.ros.paths import package_share

    share = package_share("bevfusion_ros")
    if share is not None and (share / "config" / PROFILE_NAME).is_file():
        return share / "config" / PROFILE_NAME
    return Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME


def transport_env(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the shared-memory transport settings."""
    env = dict(os.environ if base is None else base)
    profile = str(profile_path())
    env.update(
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        FASTDDS_DEFAULT_PROFILES_FILE=profile,
        ROS_AUTOMATIC_DISCOVERY_RANGE="SYSTEM_DEFAULT",
        GLIBC_TUNABLES=GLIBC_TUNABLES,
    )
    if env.get("ROS_DISTRO", "") in _FASTDDS2_DISTROS:
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 2.x reads only the old name
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env
