"""The perception node driven the way a user drives it: the real ``ros2 lifecycle`` and ``ros2 param``
CLI against the node as its own process, and extrinsics from TF (a real StaticTransformBroadcaster
and the node's tf2_ros.Buffer) instead of the calibration file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import TransformStamped

from bevfusion_ros.core.sensors.geometry import rotation_to_quaternion

NODE = "/bevfusion_perception"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory, frame_dir) -> Path:  # type: ignore[no-untyped-def]
    from bevfusion_ros.tools.bags.writer import calibration_dict
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    path = tmp_path_factory.mktemp("calib") / "calibration.yaml"
    path.write_text(yaml.safe_dump(calibration_dict(load_frame(frame_dir, decode_images=False))))
    return path


def ros2(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """The ros2 CLI of the venv (through the module's daemon, on this test run's domain and profile)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ros2"), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module", autouse=True)
def daemon():  # type: ignore[no-untyped-def]
    """The ros2 daemon keeps the graph, so each CLI call answers at once instead of discovering anew;
    started with the shared-memory profile (a daemon without it would not see the node), stopped after."""
    ros2("daemon", "stop")
    assert ros2("daemon", "start").returncode == 0
    deadline = time.monotonic() + 60
    while "is running" not in ros2("daemon", "status").stdout:
        assert time.monotonic() < deadline, "the ros2 daemon did not come up"
    yield
    ros2("daemon", "stop")


def start_node(*params: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "bevfusion_ros.ros.perception_node", "--ros-args",
           "--params-file", str(REPO / "config" / "perception.yaml")]  # fmt: skip
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode, proc.stdout.read() if proc.stdout else ""


def until(check, timeout: float, what: str, proc: subprocess.Popen[str]) -> str:  # type: ignore[no-untyped-def]
    """Poll ``check()`` (a CLI call returning its output or None) until it succeeds or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"node exited while waiting for {what}:\n{stop(proc)[1]}"
        out = check()
        if out is not None:
            return str(out)
    raise AssertionError(f"timed out waiting for {what}:\n{stop(proc)[1]}")


def lifecycle_state() -> str | None:
    try:
        r = ros2("lifecycle", "get", NODE)
    except subprocess.TimeoutExpired:  # the daemon still discovering, on a loaded machine: ask again
        return None
    return r.stdout.split()[0] if r.returncode == 0 and r.stdout.strip() else None


def test_lifecycle_and_parameters_through_the_ros2_cli(calibration: Path) -> None:
    proc = start_node(f"calibration_file:={calibration}", "autostart:=false")
    try:
        assert until(lifecycle_state, 60, "the node's lifecycle services", proc) == "unconfigured"
        dump = ros2("param", "dump", NODE)
        assert dump.returncode == 0, dump.stderr
        dumped = yaml.safe_load(dump.stdout)[NODE]["ros__parameters"]
        assert dumped["camera_names"] == [] and dumped["sync_policy"] == "lidar_anchored"
        got = ros2("param", "get", NODE, "camera_names")
        assert got.returncode == 0 and "String values are: []" in got.stdout, got.stdout + got.stderr
        for transition, state in (("configure", "inactive"), ("activate", "active"), ("deactivate", "inactive")):
            r = ros2("lifecycle", "set", NODE, transition, timeout=120)
            assert r.returncode == 0 and "Transitioning successful" in r.stdout, r.stdout + r.stderr
            assert lifecycle_state() == state
    finally:
        code, log = stop(proc)
    assert code == 0, log


def _static_transforms(calibration: Path) -> list[TransformStamped]:
    """base_link = the LiDAR frame; each camera's pose in it is the inverse of its lidar2cam."""
    cal = yaml.safe_load(calibration.read_text())
    out = []
    poses = [("lidar_top", np.eye(4))] + [
        (c["frame_id"], np.linalg.inv(np.asarray(c["lidar2cam"]))) for c in cal["cameras"]
    ]
    for child, pose in poses:
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = "base_link", child
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(v) for v in pose[:3, 3]
        )
        q = rotation_to_quaternion(pose[:3, :3])
        t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = (
            float(v) for v in q
        )
        out.append(t)
    return out


def test_extrinsics_from_tf_and_the_node_still_answers(ros_node, calibration: Path) -> None:  # type: ignore[no-untyped-def]
    """extrinsics_source:=tf: the node configures from /tf_static and keeps answering services (it
    used to be moved into tf2's listener executor and answer nothing after configure)."""
    import tf2_ros

    broadcaster = tf2_ros.StaticTransformBroadcaster(ros_node)
    broadcaster.sendTransform(_static_transforms(calibration))
    proc = start_node(f"calibration_file:={calibration}", "extrinsics_source:=tf")
    try:
        assert until(lifecycle_state, 90, "the node to come up", proc) is not None
        state = until(lambda: lifecycle_state() if lifecycle_state() == "active" else None, 60, "active", proc)
        assert state == "active"
        got = ros2("param", "get", NODE, "extrinsics_source")
        assert got.returncode == 0 and "tf" in got.stdout, got.stdout + got.stderr
    finally:
        code, log = stop(proc)
    assert code == 0, log
    assert "configured" in log, log
