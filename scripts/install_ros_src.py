#!/usr/bin/env python3
"""Install the ROS 2 tools that have no PyPI wheel (launch, launch_testing, the ros2 CLI,
message_filters, sensor_msgs_py, diagnostic_updater, tf2 and friends) from the upstream sources in
``../shared/ros_src`` into the virtual environment that holds the Kilted wheels.

Run with the venv's interpreter. Python packages are copied into the build folder first (their
setup.py writes build/ and egg-info next to itself; the shared sources stay untouched) and installed
with pip into the venv, so their ``ros2`` entry points and ament index markers land in it; interface
and C++ packages build out of source with their own CMakeLists.txt and the wheels' ament/rosidl.
On a ROS distribution these come from apt: the step says so and does nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_interfaces import patch_cmake_exports  # the same wheel-export fix

# Built with CMake, in this order (tf2_py links tf2; launch_ros imports composition_interfaces).
CMAKE_PACKAGES = (
    "rcl_interfaces/composition_interfaces",
    "geometry2/tf2_msgs",
    "geometry2/tf2",
    "geometry2/tf2_py",
)
# Installed with pip from their setup.py.
PYTHON_PACKAGES = (
    "launch/launch",
    "launch/launch_xml",
    "launch/launch_yaml",
    "launch/launch_testing",
    "launch_ros/launch_ros",
    "launch_ros/launch_testing_ros",
    "launch_ros/ros2launch",
    "ros2cli/ros2cli",
    "ros2cli/ros2action",
    "ros2cli/ros2interface",
    "ros2cli/ros2lifecycle",
    "ros2cli/ros2node",
    "ros2cli/ros2param",
    "ros2cli/ros2pkg",
    "ros2cli/ros2run",
    "ros2cli/ros2service",
    "ros2cli/ros2topic",
    "rosidl_runtime_py",
    "message_filters",
    "common_interfaces/sensor_msgs_py",
    "geometry2/tf2_ros_py",
)
# Upstream installs its Python half with CMake (the C++ half needs rclcpp, which has no wheel).
DIAGNOSTIC_UPDATER = "diagnostics/diagnostic_updater"


def fail(msg: str) -> None:
    print(f"install_ros_src: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    res = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        print(res.stdout[-6000:], file=sys.stderr)
        fail(f"{what}: `{' '.join(cmd)}` failed ({res.returncode})")


def check_sources(src: Path) -> None:
    wanted = [*CMAKE_PACKAGES, *PYTHON_PACKAGES, DIAGNOSTIC_UPDATER]
    missing = [p for p in wanted if not (src / p / "package.xml").is_file()]
    if missing:
        fail(
            f"{src} lacks {', '.join(missing)}: check out the project beside ../shared (its README), "
            "or pass --src to the folder of upstream ROS 2 sources"
        )


def build_cmake(src: Path, build: Path, prefix: Path, jobs: int, env: dict[str, str]) -> None:
    for rel in CMAKE_PACKAGES:
        name = Path(rel).name
        where = build / "cmake" / name
        where.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake",
            str(src / rel),
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
        for cmd in (configure, ["make", f"-j{jobs}"], ["make", "install"]):
            run(cmd, where, env, name)
        print(f"install_ros_src: built {name}")


def diagnostic_updater_tree(src: Path, dest: Path) -> Path:
    """diagnostic_updater's Python package with a setup.py of our own beside it."""
    pkg = src / DIAGNOSTIC_UPDATER
    version = re.search(r"<version>([^<]+)</version>", (pkg / "package.xml").read_text())
    if version is None:
        fail(f"{pkg / 'package.xml'} has no <version>")
    shutil.copytree(pkg / "diagnostic_updater", dest / "diagnostic_updater", dirs_exist_ok=True)
    shutil.copy2(pkg / "package.xml", dest / "package.xml")
    (dest / "resource").mkdir(exist_ok=True)
    (dest / "resource" / "diagnostic_updater").write_text("")
    (dest / "setup.py").write_text(
        "from setuptools import setup\n\n"
        "setup(\n"
        "    name='diagnostic_updater',\n"
        f"    version='{version.group(1)}',\n"
        "    packages=['diagnostic_updater'],\n"
        "    data_files=[\n"
        "        ('share/ament_index/resource_index/packages', ['resource/diagnostic_updater']),\n"
        "        ('share/diagnostic_updater', ['package.xml']),\n"
        "    ],\n"
        ")\n"
    )
    return dest


def install_python(src: Path, build: Path, env: dict[str, str]) -> None:
    trees = []
    for rel in PYTHON_PACKAGES:
        dest = build / "python" / Path(rel).name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src / rel, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "test", "__pycache__"))
        trees.append(dest)
    trees.append(diagnostic_updater_tree(src, build / "python" / "diagnostic_updater"))
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run([*pip, "--no-deps", "--no-build-isolation", *map(str, trees)], build, env, "pip install")
    print(f"install_ros_src: installed {len(trees)} Python packages")


def ament_prefix_hook(prefix: Path) -> Path:
    """A .pth line that puts the venv first on AMENT_PREFIX_PATH in every process it starts (ros2,
    launch, the nodes), the job ``source install/setup.bash`` does in a workspace."""
    import sysconfig

    hook = Path(sysconfig.get_paths()["purelib"]) / "bevfusion_ament_prefix.pth"
    hook.write_text(
        "import os, sys; os.environ['AMENT_PREFIX_PATH'] = os.pathsep.join([sys.prefix] + [p for p in "
        "os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p and p != sys.prefix])\n"
    )
    return hook


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", required=True, type=Path, help="the upstream sources (../shared/ros_src)")
    ap.add_argument("--build-dir", required=True, type=Path)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    if os.environ.get("ROS_DISTRO") and shutil.which("ros2") and "VIRTUAL_ENV" not in os.environ:
        print(f"install_ros_src: ROS 2 {os.environ['ROS_DISTRO']} is sourced; its packages provide these tools")
        return 0
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        fail("run this with the virtual environment's python (sys.prefix is not a venv)")
    if not args.src.is_dir():
        fail(f"{args.src} does not exist: the upstream ROS 2 sources are expected in ../shared/ros_src")
    for tool in ("cmake", "make"):
        if shutil.which(tool) is None:
            fail(f"'{tool}' not found: install it (Debian: apt-get install cmake build-essential)")
    src = args.src.resolve()
    check_sources(src)
    patch_cmake_exports(prefix)
    build = args.build_dir.resolve()
    build.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    build_cmake(src, build, prefix, args.jobs, env)
    install_python(src, build, env)
    print(f"install_ros_src: {ament_prefix_hook(prefix)} puts the venv on AMENT_PREFIX_PATH")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
