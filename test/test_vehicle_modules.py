"""Every module a vehicle runs imports on this stack.

The vehicle runs the nodes (core/, ros/), the launch files and these commands: selftest,
build-engines, infer, play, probe (tools/commands and the libraries they import). make test runs this
file on the dev stack and on the jazzy (Python 3.12) and humble-floor (Python 3.10, numpy 1.21) stacks,
so a 3.11-only or numpy-2-only name anywhere in them fails here, at import, on the stack that lacks it.
Which optional packages a module may not find (TensorRT, pycuda, ONNX Runtime on a LiDAR-only car)
is the module's own business: they are imported where used, never at module level.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import bevfusion_ros

VEHICLE_COMMANDS = ("selftest", "build_engines", "infer", "play", "probe")


def vehicle_modules() -> list[str]:
    root = Path(bevfusion_ros.__file__).parent
    names = []
    for sub in ("core", "ros"):
        pkg = importlib.import_module(f"bevfusion_ros.{sub}")
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, f"bevfusion_ros.{sub}.")]
    names += [f"bevfusion_ros.tools.commands.{c}" for c in VEHICLE_COMMANDS]
    names.append("bevfusion_ros.tools.cli")
    assert (root / "core" / "model.py").is_file()
    return sorted(names)


@pytest.mark.parametrize("name", vehicle_modules())
def test_every_vehicle_module_imports(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name


def test_the_list_covers_the_nodes_and_the_commands() -> None:
    names = vehicle_modules()
    for must in (
        "bevfusion_ros.ros.perception_node",
        "bevfusion_ros.ros.monitor_node",
        "bevfusion_ros.core.model",
        "bevfusion_ros.core.trt.build",
        "bevfusion_ros.core.cuda.kernels",
        "bevfusion_ros.tools.commands.selftest",
    ):
        assert must in names
