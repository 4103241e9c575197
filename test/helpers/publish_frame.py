"""Test helper process: publish the real frame's messages plus a Detection3DArray and an
OccupancyGrid, latched (transient local), then stay up until stdin closes or 120 s pass."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from bevfusion_ros.ros import build
from bevfusion_ros.tools.bags.layout import GT_TOPIC, LIDAR_TOPIC, camera_frame, image_topic, info_topic
from bevfusion_ros.tools.data.nuscenes_frame import load_frame

GRID_TOPIC = "/test/occupancy"
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def probability_grid() -> np.ndarray:
    """Deterministic probabilities with unknown cells; the receiver rebuilds the same grid."""
    grid = np.linspace(0.0, 1.0, 200 * 200).reshape(200, 200)
    grid[::17, ::13] = np.nan
    return grid


def main() -> int:
    frame = load_frame(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("publish_frame")
    hdr = build.header("lidar_top", 1_000_000_000)
    msgs = []
    for cam in frame.cameras:
        chdr = build.header(camera_frame(cam.name), 1_000_000_000)
        msgs.append((image_topic(cam.name), build.image_msg(cam.image_bgr, chdr, "bgr8")))
        msgs.append((info_topic(cam.name), build.camera_info_msg(cam.intrinsics, chdr)))
    msgs.append(
        (
            LIDAR_TOPIC,
            build.pointcloud2_msg(
                frame.points, ("x", "y", "z", "intensity", "ring"), hdr, [np.float32] * 4 + [np.uint16]
            ),
        )
    )
    msgs.append((GT_TOPIC, build.detections_msg(frame.boxes, hdr)))
    msgs.append((GRID_TOPIC, build.occupancy_grid_msg(probability_grid(), 0.5, (-50.0, -50.0), hdr)))
    pubs = [(node.create_publisher(type(m), t, LATCHED), m) for t, m in msgs]
    for pub, m in pubs:
        pub.publish(m)
    print("ready", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
