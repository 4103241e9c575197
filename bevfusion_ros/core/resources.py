"""Where the package's own files are: the bundled model, config/ (parameters, engine build configs,
the Fast DDS profile) and other ROS packages' share folders.

One lookup for all of them: the installed share folder first (colcon or a ROS workspace, where
``ament_index_python`` knows the package; a venv's ``<prefix>/share`` where it does not), the
source checkout second (a development tree imported in place). Imports nothing of ROS at module
level, so every layer may use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bevfusion_ros.core.errors import ConfigError

PACKAGE = "bevfusion_ros"
SOURCE_TREE = Path(__file__).resolve().parents[2]  # the checkout's root when imported from one


def package_share(package: str) -> Path | None:
    """A ROS package's share folder from the ament index (a sourced ROS workspace), else from the
    Python prefix (a venv with the ROS 2 wheels, where AMENT_PREFIX_PATH is usually unset)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    except Exception:  # ament_index raises PackageNotFoundError / KeyError-likes when unset or unknown
        pass
    candidate = Path(sys.prefix) / "share" / package
    return candidate if candidate.is_dir() else None


def resource(*parts: str) -> Path:
    """``share/bevfusion_ros/<parts>`` if installed, else ``<checkout>/<parts>``; ConfigError naming
    both places when neither has it."""
    relative = Path(*parts)
    share = package_share(PACKAGE)
    places = ([share / relative] if share is not None else []) + [SOURCE_TREE / relative]
    for place in places:
        if place.exists():
            return place
    msg = f"cannot find {relative}: looked in {', '.join(str(p) for p in places)}; reinstall the package"
    raise ConfigError(msg)


def default_model() -> Path:
    """The bundled reference model's YAML."""
    return resource("engines", "reference", "model.yaml")


def config_file(name: str) -> Path:
    """A shipped file of config/ (perception.yaml, monitor.yaml, fastdds_shm.xml, ...)."""
    return resource("config", name)


def engine_config_dir() -> Path:
    """config/engines: the shipped TensorRT engine build configs."""
    return resource("config", "engines")
