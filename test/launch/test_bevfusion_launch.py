"""launch_testing test of launch/bevfusion.launch.py, for a ROS 2 distribution (colcon test or
``launch_test test/launch/test_bevfusion_launch.py``). Here launch_testing is not installable, so the
module skips; test/ros/test_perception_node.py runs the same node as a process on the pip ROS 2.

It starts the launch file on a generated-scene bag's calibration, plays the bag with ``ros2 bag play``
once the node is up, waits (with a deadline, no sleeps) for detections, grids and diagnostics, then
checks that every process exited cleanly on shutdown.
"""

from __future__ import annotations

import os
import subprocess
import unittest

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing comes from a ROS 2 distribution; it is not installable with pip"
)
pytest.importorskip("launch_testing_ros", reason="launch_testing_ros comes from a distribution")

import launch
import launch_testing.actions
import launch_testing.asserts
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_testing_ros import WaitForTopics
from nav_msgs.msg import OccupancyGrid
from std_msgs.msg import Float64MultiArray
from vision_msgs.msg import Detection3DArray

BAG = os.environ.get("BEVFUSION_TEST_BAG", "/tmp/bevfusion_launch_test_bag")
LAUNCH = os.path.join(os.path.dirname(__file__), "..", "..", "launch", "bevfusion.launch.py")


@pytest.mark.launch_test
def generate_test_description():
    if not os.path.isdir(BAG):
        subprocess.run(["bevfusion-ros", "make-bag", "--scene", "10000000", "--frames", "10", "--out", BAG], check=True)
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH),
        launch_arguments={"calibration_file": os.path.join(BAG, "calibration.yaml"), "monitor": "true"}.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestOutputs(unittest.TestCase):
    def test_detections_and_grids_arrive(self):
        player = subprocess.Popen(["ros2", "bag", "play", BAG, "--rate", "0.2"])
        try:
            topics = [
                ("/bevfusion_perception/detections", Detection3DArray),
                ("/bevfusion_perception/map/drivable_area", OccupancyGrid),
                ("/bevfusion_monitor/metrics", Float64MultiArray),
            ]
            with WaitForTopics(topics, timeout=60.0, messages_received_buffer_length=10) as wait:
                self.assertEqual(wait.topics_received(), {t for t, _ in topics})
                det = wait.received_messages("/bevfusion_perception/detections")[0]
                self.assertEqual(det.header.frame_id, "lidar_top")
                grid = wait.received_messages("/bevfusion_perception/map/drivable_area")[0]
                self.assertEqual((grid.info.width, grid.info.height), (200, 200))
        finally:
            player.terminate()
            player.wait(timeout=10)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
