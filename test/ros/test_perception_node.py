"""The perception node as a real process on a real ROS 2 graph: bags played into it, outputs checked
against the offline pipeline, and every kind of bad input sent into it while it keeps publishing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import Detection3DArray, LabelInfo

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline import Pipeline
from bevfusion_ros.ros import build, convert
from bevfusion_ros.tools.bag_frames import read_frames
from bevfusion_ros.tools.make_bag import LIDAR_TOPIC, image_topic, info_topic, scene_frame, write_bag
from bevfusion_ros.tools.nuscenes_frame import load_frame

NODE = "/bevfusion_perception"
REPO = Path(__file__).resolve().parents[2]
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SCENE_SEED = 10_000_020


@pytest.fixture(scope="module")
def scene_bag(tmp_path_factory, frame_dir) -> Path:  # type: ignore[no-untyped-def]
    base = load_frame(frame_dir)
    first = scene_frame(base, SCENE_SEED)
    out = tmp_path_factory.mktemp("bags") / "scenes"
    return write_bag(first, out, 4, frames=lambda k: first if k == 0 else scene_frame(first, SCENE_SEED + k),
                     show_progress=False)


def start_node(*params: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "bevfusion_ros.ros.perception_node", "--ros-args"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: the way ros2 launch stops a node
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stdout.read() if proc.stdout else ""


class Outputs:
    """Subscriptions to everything the node publishes, collected in arrival order."""

    def __init__(self, node, map_classes) -> None:  # type: ignore[no-untyped-def]
        self.node = node
        self.got: dict[str, list] = {}
        topics = {f"{NODE}/detections": Detection3DArray, f"{NODE}/timing": DiagnosticArray,
                  "/diagnostics": DiagnosticArray}
        topics.update({f"{NODE}/map/{c}": OccupancyGrid for c in map_classes})
        self.subs = [node.create_subscription(cls, t, lambda m, t=t: self.got.setdefault(t, []).append(m), RELIABLE)
                     for t, cls in topics.items()]
        self.subs.append(node.create_subscription(
            LabelInfo, f"{NODE}/labels", lambda m: self.got.setdefault("labels", []).append(m), LATCHED))

    def n(self, topic: str) -> int:
        return len(self.got.get(topic, []))

    def wait(self, done: Callable[[], bool], timeout: float, proc: subprocess.Popen, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert proc.poll() is None, f"node exited while waiting for {what}:\n{stop(proc)}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; got {self.summary()}\n{stop(proc)}"
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {t: len(v) for t, v in self.got.items()}
        if self.got.get("/diagnostics"):
            out["last diagnostics"] = {s.name: {kv.key: kv.value for kv in s.values}
                                       for s in self.got["/diagnostics"][-1].status}
        return out


def play(bag: Path, rate: float) -> subprocess.CompletedProcess:
    topics = [t for t in (LIDAR_TOPIC, *(image_topic(c) for c in CAMS), *(info_topic(c) for c in CAMS))]
    return subprocess.run(
        [sys.executable, "-m", "bevfusion_ros.tools.play", str(bag), "--rate", str(rate), "--topics", *topics,
         "--wait-subscribers", "1", "--wait-timeout", "20"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=True,
    )


CAMS = load_model(REPO / "engines" / "reference" / "model.yaml", check_files=False).cameras


def test_node_on_a_generated_scene_bag_matches_the_offline_pipeline(ros_node, scene_bag, spec) -> None:
    proc = start_node(f"calibration_file:={scene_bag / 'calibration.yaml'}", "backend_threads:=2")
    try:
        out = Outputs(ros_node, spec.map.classes)
        out.wait(lambda: out.n("labels") > 0, 60, proc, "the latched LabelInfo (node active)")
        labels = out.got["labels"][0]
        assert [c.class_name for c in labels.class_map] == list(spec.class_names)
        # 0.05x speed: one frame per 2 s, slower than the model on two busy cores, so no frame is replaced
        play(scene_bag, 0.05)
        out.wait(lambda: out.n(f"{NODE}/timing") >= 4, 60, proc, "4 frames (timing is published last)")
        out.wait(lambda: out.n("/diagnostics") >= 1, 10, proc, "diagnostics")
    finally:
        log = stop(proc)
    frames = list(read_frames(scene_bag, spec.cameras))
    dets = out.got[f"{NODE}/detections"]
    assert [build.stamp_ns(d.header.stamp) for d in dets] == [f.stamp_ns for f in frames], log
    assert {d.header.frame_id for d in dets} == {"lidar_top"}
    with Pipeline(spec, "onnxruntime", threads=1) as pipe:
        pipe.set_calibration(frames[0].rig)
        for f, msg in zip(frames, dets, strict=True):
            want = pipe(f.images, f.points).detections
            got = convert.detection3d_array_to_detections(msg, spec.class_names)
            assert len(got) == len(want) > 0
            assert got.label_names() == want.label_names()
            np.testing.assert_allclose(got.centers, want.centers, atol=1e-3)
            np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
            # centres come from BEV cells plus a sub-cell offset: inside the grid, give or take a cell
            assert np.all(np.abs(got.centers[:, :2]) <= 51.2 + 0.8)
    for c in spec.map.classes:
        grids = out.got[f"{NODE}/map/{c}"]
        assert len(grids) == 4
        g = grids[0]
        assert (g.info.width, g.info.height, g.info.resolution) == (200, 200, pytest.approx(0.5))
        assert (g.info.origin.position.x, g.info.origin.position.y) == (-50.0, -50.0)
        assert g.header.frame_id == "lidar_top"
    timing = {kv.key: float(kv.value) for kv in out.got[f"{NODE}/timing"][0].status[0].values}
    assert timing["total_ms"] > 0 and timing["masked_cameras"] == 0 and timing["detections"] == len(dets[0].detections)
    diag = {s.name: s for s in out.got["/diagnostics"][-1].status}
    assert set(diag) == {"bevfusion: inputs", "bevfusion: sync", "bevfusion: processing"}
    sync = {kv.key: kv.value for kv in diag["bevfusion: sync"].values}
    assert sync["frames"] == "4" and sync["dropped_busy"] == "0", sync


def test_configure_fails_cleanly_on_a_missing_calibration(tmp_path) -> None:
    proc = start_node(f"calibration_file:={tmp_path / 'nope.yaml'}")
    try:
        proc.wait(timeout=60)
    finally:
        log = stop(proc)
    assert proc.returncode == 1
    assert "configure failed" in log and "nope.yaml does not exist" in log


def test_out_of_range_parameter_is_refused_with_its_range(tmp_path) -> None:
    proc = start_node("max_camera_lidar_delay:=7.0")
    try:
        proc.wait(timeout=60)
    finally:
        log = stop(proc)
    assert proc.returncode != 0
    assert "max_camera_lidar_delay" in log and "2.0" in log
