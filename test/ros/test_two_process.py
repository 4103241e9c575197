"""Two processes on a real ROS 2 graph (Fast DDS, shared-memory profile): the helper publishes the
real frame's sensor messages, a Detection3DArray and an OccupancyGrid; this process receives them
and checks every value after conversion."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import Detection3DArray

from bevfusion_ros.ros import build, convert
from bevfusion_ros.tools.bags.layout import GT_TOPIC, LIDAR_TOPIC, image_topic, info_topic

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
sys.path.insert(0, str(HELPERS))
from publish_frame import GRID_TOPIC, LATCHED, probability_grid  # noqa: E402


@pytest.fixture
def publisher_process(frame_dir):
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "publish_frame.py"), str(frame_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_messages_cross_processes_intact(ros_node, publisher_process, frame) -> None:
    import rclpy

    topics = {GT_TOPIC: Detection3DArray, LIDAR_TOPIC: PointCloud2, GRID_TOPIC: OccupancyGrid}
    for cam in frame.cameras:
        topics[image_topic(cam.name)] = Image
        topics[info_topic(cam.name)] = CameraInfo
    received: dict[str, object] = {}
    subs = [
        ros_node.create_subscription(cls, t, lambda m, t=t: received.setdefault(t, m), LATCHED)
        for t, cls in topics.items()
    ]
    deadline = time.monotonic() + 60
    while len(received) < len(topics) and time.monotonic() < deadline:
        rclpy.spin_once(ros_node, timeout_sec=0.1)
        assert publisher_process.poll() is None, publisher_process.stdout.read()
    assert set(received) == set(topics), f"missing: {set(topics) - set(received)}"
    assert len(subs) == len(topics)

    for cam in frame.cameras:
        np.testing.assert_array_equal(convert.image_to_array(received[image_topic(cam.name)], "bgr"), cam.image_bgr)
        intr = convert.camera_info_to_intrinsics(received[info_topic(cam.name)])
        np.testing.assert_allclose(intr.K, cam.intrinsics.K)
    np.testing.assert_array_equal(convert.pointcloud2_to_points(received[LIDAR_TOPIC]).data, frame.points)
    dets = convert.detection3d_array_to_detections(received[GT_TOPIC], frame.class_names)
    assert dets.label_names() == frame.boxes.label_names()
    np.testing.assert_allclose(dets.centers, frame.boxes.centers, atol=1e-5)
    grid_msg = received[GRID_TOPIC]
    assert grid_msg.header.frame_id == "lidar_top" and grid_msg.info.resolution == 0.5
    rebuilt = build.occupancy_grid_msg(probability_grid(), 0.5, (-50, -50), grid_msg.header)
    expected = build.occupancy_grid_to_array(rebuilt)
    np.testing.assert_array_equal(build.occupancy_grid_to_array(grid_msg), expected)
    assert (expected == -1).sum() == 12 * 16
