"""launch_testing test of launch/bevfusion.launch.py, run by pytest through launch_testing's plugin
(or ``launch_test test/launch/test_bevfusion_launch.py``): the perception node, the monitor and the
package's bag player, started by the launch file exactly as ``ros2 launch`` starts them, on a
generated-scene bag and on the real nuScenes frame.

The player starts once two subscribers match the LiDAR topic (the node and this test, whose
WaitForTopics subscribes to the LiDAR beside the outputs) and the node matches every camera, and it
loops the bag until the test is done: a subscription of this test to an output may match later than
its LiDAR subscription did, and a short bag would be over by then.
The test waits (with a deadline, no sleeps) for detections, a map grid, markers, diagnostics and the
monitor's metrics, then checks that every process exited 0 when launch shut them down with SIGINT.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import unittest
from pathlib import Path

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_testing_ros import WaitForTopics
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Float64MultiArray
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from bevfusion_ros.core.resources import resource

FRAME_DIR = Path(
    os.environ.get("BEVFUSION_FRAME_DIR", Path(__file__).resolve().parents[2].parent / "shared/data/nuscenes_frame")
)
NODE = "/bevfusion_perception"


# launch_testing's descriptions take no tmp_path: the bags live here and go when the test process
# ends (each run left 59 MB in /tmp before)
BAG_DIR = Path(tempfile.gettempdir()) / f"bevfusion_launch_test_{os.getpid()}"
atexit.register(shutil.rmtree, BAG_DIR, True)


def make_bag(which: str) -> Path:
    """A small bag of the generated scenes or of the real frame, written once per test process."""
    from bevfusion_ros.tools.bags.writer import scene_frame, write_bag
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    out = BAG_DIR / which
    if not (out / "calibration.yaml").is_file():
        frame = load_frame(FRAME_DIR)
        if which == "scene":
            write_bag(scene_frame(frame, 10000000), out, 4, overwrite=True, show_progress=False,
                      frames=lambda k: scene_frame(frame, 10000000 + k))  # fmt: skip
        else:
            write_bag(frame, out, 2, overwrite=True, show_progress=False)
    return out


@pytest.mark.launch_test
@launch_testing.parametrize("which", ["scene", "real"])
def generate_test_description(which: str) -> launch.LaunchDescription:
    if not (FRAME_DIR / "frame.json").is_file():
        pytest.skip(f"the real nuScenes frame is not at {FRAME_DIR} (set BEVFUSION_FRAME_DIR)")
    bag = make_bag(which)
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(resource("launch", "bevfusion.launch.py"))),
        launch_arguments={
            "calibration_file": str(bag / "calibration.yaml"),
            "bag": str(bag),
            "rate": "0.25",  # slower than the model on two cores: no frame is replaced while busy
            # again and again until the test has what it waits for (then launch stops the player): each of
            # this test's subscriptions matches the node's publishers on its own time, so the first
            # frames' outputs may come before some of them matched (seen on the Jazzy wheels)
            "loop": "100",
            "monitor": "true",
            "wait_subscribers": "2",  # the node and this test's WaitForTopics
        }.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestOutputs(unittest.TestCase):
    def test_every_output_arrives(self, which: str) -> None:
        topics = [
            (f"{NODE}/detections", Detection3DArray),
            (f"{NODE}/map/drivable_area", OccupancyGrid),
            (f"{NODE}/markers", MarkerArray),
            ("/diagnostics", DiagnosticArray),
            ("/bevfusion_monitor/metrics", Float64MultiArray),
            ("/lidar/points", PointCloud2),  # the player's second awaited subscriber
        ]
        with WaitForTopics(topics, timeout=180.0, messages_received_buffer_length=10) as wait:
            self.assertEqual(wait.topics_received(), {t for t, _ in topics}, which)
            det = wait.received_messages(f"{NODE}/detections")[0]
            self.assertEqual(det.header.frame_id, "lidar_top")
            self.assertGreater(len(det.detections), 0)
            grid = wait.received_messages(f"{NODE}/map/drivable_area")[0]
            self.assertEqual((grid.info.width, grid.info.height), (200, 200))
            # a frame's grid carries its detections' stamp. The first message of each need not be the
            # same frame's (one subscription may match a frame later), so wait for a frame both saw.
            self.assertTrue(self.common_stamps(wait), "no frame whose detections and grid both arrived")

    @staticmethod
    def common_stamps(wait: WaitForTopics, timeout_s: float = 60.0) -> set[tuple[int, int]]:
        def stamps(topic: str) -> set[tuple[int, int]]:
            return {(m.header.stamp.sec, m.header.stamp.nanosec) for m in wait.received_messages(topic)}

        deadline = time.monotonic() + timeout_s
        while not (common := stamps(f"{NODE}/detections") & stamps(f"{NODE}/map/drivable_area")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)  # WaitForTopics' own thread keeps receiving meanwhile
        return common


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exits_0(self, proc_info) -> None:  # type: ignore[no-untyped-def]
        launch_testing.asserts.assertExitCodes(proc_info)
