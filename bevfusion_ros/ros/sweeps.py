"""Multi-sweep LiDAR input in the ROS layer, shared by the node and offline replay.

``SweepPoses``: where each sweep was, the TF of the fixed (odom) frame to the sweep's frame at its
stamp, as Autoware's densification looks it up. ``listening`` follows /tf and /tf_static of a running
graph (the node); ``from_messages`` is fed the TFMessages of a bag (replay). One tf2 buffer answers
either way. ``LidarSweeps``: every sweep that arrives is offered (also those the node drops while
busy), and the one being processed is densified with the ones before it, so the node and the replay
of the same bag densify alike whatever the node had time for."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node

from bevfusion_ros.core.errors import BevFusionError
from bevfusion_ros.core.perception.lidar_input import Problem, densify
from bevfusion_ros.core.sensors.geometry import rigid_transform
from bevfusion_ros.core.sensors.sweeps import SweepBuffer
from bevfusion_ros.ros.frame_decode import xyzi
from bevfusion_ros.ros.optional import TfListener, import_tf2_ros

# an offline buffer holds a whole bag's /tf: its cache must outlast the bag
_OFFLINE_CACHE_S = 24 * 3600.0
# live: how long a lookup waits for the sweep's own /tf, which may arrive just after the sweep
# (the inference thread waits, as Autoware's densification does)
LIVE_TF_WAIT_S = 0.1


def _tf2() -> Any:
    return import_tf2_ros("multi-sweep input (the sweeps' poses)")


def _transform_stamped(src: Any) -> TransformStamped:
    out = TransformStamped()
    out.header.stamp.sec, out.header.stamp.nanosec = int(src.header.stamp.sec), int(src.header.stamp.nanosec)
    out.header.frame_id, out.child_frame_id = str(src.header.frame_id), str(src.child_frame_id)
    t, q = src.transform.translation, src.transform.rotation
    out.transform.translation.x, out.transform.translation.y, out.transform.translation.z = t.x, t.y, t.z
    out.transform.rotation.x, out.transform.rotation.y, out.transform.rotation.z, out.transform.rotation.w = (
        q.x,
        q.y,
        q.z,
        q.w,
    )
    return out


class SweepPoses:
    def __init__(self, fixed_frame: str, buffer: Any, listener: TfListener | None = None, wait_s: float = 0.0) -> None:
        self.fixed_frame, self.wait_s = fixed_frame, wait_s
        self._buffer, self._listener = buffer, listener

    @classmethod
    def listening(cls, node: Node, fixed_frame: str) -> SweepPoses:
        listener = TfListener(node, "sweep_tf", "multi-sweep input (the sweeps' poses)")
        return cls(fixed_frame, listener.buffer, listener, LIVE_TF_WAIT_S)

    @classmethod
    def from_messages(cls, fixed_frame: str, tf: list[Any], tf_static: list[Any]) -> SweepPoses:
        """A buffer holding every transform of the given tf2_msgs/TFMessage lists (rclpy or rosbags
        messages: tf2 takes only rclpy's, so each transform is copied into one)."""
        from rclpy.duration import Duration

        buffer = _tf2().Buffer(cache_time=Duration(seconds=_OFFLINE_CACHE_S))
        for messages, static in ((tf_static, True), (tf, False)):
            for msg in messages:
                for transform in msg.transforms:
                    stamped = _transform_stamped(transform)
                    if static:
                        buffer.set_transform_static(stamped, "bag")
                    else:
                        buffer.set_transform(stamped, "bag")
        return cls(fixed_frame, buffer)

    def pose(self, lidar_frame: str, stamp_ns: int) -> npt.NDArray[np.float64] | None:
        """fixed_from_lidar at the stamp, or None when TF cannot say (no transform, out of its range)."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            tf = self._buffer.lookup_transform(
                self.fixed_frame, lidar_frame, Time(nanoseconds=stamp_ns), timeout=Duration(seconds=self.wait_s)
            )
        except Exception:  # tf2 raises LookupException / ExtrapolationException / ConnectivityException
            return None
        t, q = tf.transform.translation, tf.transform.rotation
        return rigid_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._listener = None


class LidarSweeps:
    def __init__(
        self, buffer: SweepBuffer, poses: SweepPoses | None, default_frame: str, use_distro: bool = True
    ) -> None:
        self.buffer, self.poses, self.default_frame, self.use_distro = buffer, poses, default_frame, use_distro
        # (stamp ns, PointCloud2) of every sweep offered, the newest buffer.sweeps of them
        self._offered: deque[tuple[int, Any]] = deque(maxlen=buffer.sweeps)
        self._lock = threading.Lock()

    def offer(self, stamp_ns: int, cloud_msg: Any) -> None:
        """Every sweep as it arrives (any thread): past sweeps come from these."""
        with self._lock:
            self._offered.append((stamp_ns, cloud_msg))

    def _frame(self, cloud_msg: Any) -> str:
        return str(cloud_msg.header.frame_id) or self.default_frame

    def _pose(self, frame: str, stamp_ns: int) -> npt.NDArray[np.float64] | None:
        return None if self.poses is None else self.poses.pose(frame, stamp_ns)

    def densify(
        self, stamp_ns: int, cloud_msg: Any, points: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], list[Problem]]:
        """The model's input for this sweep (``points``: its decoded cloud), after remembering the
        offered sweeps before it that were not processed."""
        problems: list[Problem] = []
        newest = self.buffer.newest_stamp_s
        with self._lock:
            earlier = [(s, m) for s, m in self._offered if s < stamp_ns and (newest is None or s * 1e-9 > newest)]
        for s, msg in earlier:
            try:
                self.buffer.remember(xyzi(msg, self.use_distro), s * 1e-9, self._pose(self._frame(msg), s))
            except BevFusionError as exc:  # an unreadable past cloud is left out; the current one goes on
                problems.append(("sweeps_without_pose", f"past sweep at {s} ns left out: {exc}"))
        frame = self._frame(cloud_msg)
        where = f"TF {self.poses.fixed_frame if self.poses else '?'} -> {frame}"
        cloud, more = densify(self.buffer, points, stamp_ns, self._pose(frame, stamp_ns), where)
        return cloud, problems + more

    def close(self) -> None:
        if self.poses is not None:
            self.poses.close()
