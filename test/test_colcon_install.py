"""The package as a vehicle installs it: ``colcon build`` into a workspace, then everything from
``install/`` with ``local_setup.bash`` sourced, never from the source tree.

make test's jazzy and humble-floor stacks build this checkout with colcon (jazzy: the default copy
install; humble-floor: ``--symlink-install``), source the workspace and run their tests, this file
among them (scripts/stack_test.sh). Where no workspace is sourced (the dev stack, which installs the
package in editable mode) it skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = os.environ.get("BEVFUSION_INSTALL_BASE", "")
MODE = os.environ.get("BEVFUSION_INSTALL_MODE", "")
pytestmark = pytest.mark.skipif(not INSTALL, reason="no colcon workspace is sourced (the stacks run it)")
# Package data the install must carry: tracked files under these folders (engines/build holds engines
# built on a machine, never tracked).
SHARED = ("launch", "config", "engines")


def prefix() -> Path:
    return Path(INSTALL) / "bevfusion_ros"


def share() -> Path:
    return prefix() / "share" / "bevfusion_ros"


def ros2(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "ros2"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)


def test_the_package_is_the_installed_one() -> None:
    from ament_index_python.packages import get_package_prefix

    import bevfusion_ros
    from bevfusion_ros.core import resources

    assert Path(get_package_prefix("bevfusion_ros")) == prefix()
    here = Path(bevfusion_ros.__file__).resolve()
    if MODE == "copy":
        assert here.is_relative_to(prefix().resolve()), here
    else:  # --symlink-install: the Python package and the share files point into the source tree
        assert (share() / "launch" / "bevfusion.launch.py").is_symlink()
    assert resources.default_model().is_relative_to(share()), resources.default_model()
    assert resources.config_file("perception.yaml").is_relative_to(share())


def test_every_file_the_package_reads_is_installed() -> None:
    """Launch files, configs, profiles, model YAMLs and ONNX files, remap tables, and the CUDA sources
    pycuda compiles on the car: each tracked one is in the install."""
    from bevfusion_ros.core.cuda import kernels, voxels

    tracked = subprocess.run(["git", "ls-files", *SHARED], cwd=REPO, capture_output=True, text=True, check=True)
    wanted = {Path(f) for f in tracked.stdout.split()}
    wanted = {f for f in wanted if f.parts[0] != "launch" or f.name.endswith(".launch.py")}
    shipped = {p.relative_to(share()) for p in share().rglob("*") if p.is_file()}
    assert wanted and sorted(map(str, wanted - shipped)) == []
    for source in (kernels.SOURCE, voxels.SOURCE):
        assert source.is_file(), source
        if MODE == "copy":
            assert source.resolve().is_relative_to(prefix().resolve())
    assert (prefix() / "lib" / "bevfusion_ros" / "perception_node").is_file()


def test_replay_launch_and_the_node_with_the_voxel_model_from_the_install(tmp_path: Path, frame_dir: Path) -> None:
    """What a vehicle user types: a generated bag replayed through ``ros2 launch``, then the node with the
    multi-sweep VoxelNet model through bevfusion.launch.py (run-node drives it), all from install/."""
    bag = tmp_path / "bag"
    made = ros2("run", "bevfusion_ros", "bevfusion-ros", "make-bag", "--frame", str(frame_dir), "--scene", "10000100",
                "--frames", "2", "--out", str(bag))  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    replay = ros2("launch", "bevfusion_ros", "replay.launch.py", f"bag:={bag}", timeout=120)
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    log = replay.stdout + replay.stderr
    assert "played " in log and "/lidar/points" in log
    model = share() / "engines" / "voxelnet" / "model.yaml"
    out = tmp_path / "node_run"
    run = ros2("run", "bevfusion_ros", "bevfusion-ros", "run-node", "--bag", str(bag), "--model", str(model),
               "--out", str(out), "--no-monitor", "--rate", "0.5")  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "model bevfusion-voxelnet-ref; node exit code 0" in summary and "**2 frames out**" in summary
    # the launch file and the node's executable that ros2 found are the workspace's
    assert ros2("pkg", "prefix", "bevfusion_ros").stdout.strip() == str(prefix())


def test_selftest_from_the_install(tmp_path: Path) -> None:
    run = ros2("run", "bevfusion_ros", "bevfusion-ros", "selftest", "--frames", "1", "--variants", "fp16",
               "--out", str(tmp_path))  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "| tensorrt | SKIP |" in (tmp_path / "selftest.md").read_text()
