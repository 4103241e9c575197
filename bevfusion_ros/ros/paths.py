"""Locating installed ROS package share folders, with or without a sourced workspace."""

from __future__ import annotations

import sys
from pathlib import Path


def package_share(package: str) -> Path | None:
    """The package's share folder from the ament index (a sourced ROS workspace), else from the
    Python prefix (a venv with the ROS 2 wheels, where AMENT_PREFIX_PATH is usually unset)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    except Exception:  # ament_index raises KeyError-like errors when unset or not found
        pass
    candidate = Path(sys.prefix) / "share" / package
    return candidate if candidate.is_dir() else None


def engine_config_dir() -> Path:
    """config/engines of a source checkout, else of the installed share folder."""
    src = Path(__file__).resolve().parents[2] / "config" / "engines"
    if src.is_dir():
        return src
    share = package_share("bevfusion_ros")
    if share is None:
        from bevfusion_ros.core.errors import ConfigError

        msg = "cannot find config/engines (neither a source checkout nor an installed share folder)"
        raise ConfigError(msg)
    return share / "config" / "engines"
