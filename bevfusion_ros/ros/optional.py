"""ROS-distribution packages that pip cannot install, each imported lazily in this one place.

On a vehicle they come from the distribution; here they are absent and the package's own
equivalents run. Each accessor returns None when the package is missing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bevfusion_ros.core.errors import CalibrationError, DependencyError

if TYPE_CHECKING:  # rclpy is imported where it is used
    from rclpy.node import Node


@functools.cache
def cv_bridge() -> Any | None:
    """A ``cv_bridge.CvBridge`` instance, or None."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


@functools.cache
def sensor_msgs_py_point_cloud2() -> ModuleType | None:
    """``sensor_msgs_py.point_cloud2``, or None."""
    try:
        from sensor_msgs_py import point_cloud2
    except ImportError:
        return None
    module: ModuleType = point_cloud2
    return module


@functools.cache
def message_filters() -> ModuleType | None:
    """``message_filters``, or None."""
    try:
        import message_filters as mf
    except ImportError:
        return None
    module: ModuleType = mf
    return module


@functools.cache
def autoware_perception_msgs() -> ModuleType | None:
    """``autoware_perception_msgs.msg`` (Autoware's; built by make setup here), or None."""
    try:
        import autoware_perception_msgs.msg as msgs
    except ImportError:
        return None
    module: ModuleType = msgs
    return module


def import_tf2_ros(why: str) -> ModuleType:
    """``tf2_ros`` (a distribution package; built from ../shared/ros_src here), for ``why``."""
    try:
        import tf2_ros
    except ImportError as exc:
        msg = f"{why} needs tf2_ros from a ROS distribution: {exc}"
        raise DependencyError(msg) from exc
    module: ModuleType = tf2_ros
    return module


class TfListener:
    """A tf2 Buffer kept filled from /tf and /tf_static for ``node``.

    The listener lives on a helper node of its own: TransformListener(spin_thread=True) on the node
    itself moved it into the listener's executor, and the node answered no service after. The
    helper is spun by a thread of ours, which ends quietly when a signal shuts the context down;
    tf2_ros's own spin thread dies there with an ExternalShutdownException traceback in the log."""

    def __init__(self, node: Node, name: str, why: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        tf2_ros = import_tf2_ros(why)
        self._helper = rclpy.create_node(
            f"{node.get_name()}_{name}", context=node.context, start_parameter_services=False
        )
        self.buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self.buffer, self._helper, spin_thread=False)
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(self._helper)
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    def close(self) -> None:
        self._executor.shutdown()
        self._thread.join()
        self._listener.unregister()
        self._helper.destroy_node()


def lookup_extrinsics(node: Node, lidar_frame: str, camera_frames: Sequence[str], timeout_s: float = 5.0) -> list[Any]:
    """lidar->camera 4x4 per camera from TF (tf2_ros, a ROS distribution package).

    ``lookup_transform(camera, lidar)`` is the transform taking LiDAR-frame points into the camera
    frame, i.e. the calibration file's ``lidar2cam``. Waits up to ``timeout_s`` per camera for
    /tf_static to arrive.
    """
    from rclpy.duration import Duration
    from rclpy.time import Time

    from bevfusion_ros.core.sensors.geometry import rigid_transform

    tf = TfListener(node, "tf_lookup", "extrinsics_source 'tf' (or use extrinsics_source 'file')")
    out = []
    try:
        for frame in camera_frames:
            try:
                transform = tf.buffer.lookup_transform(frame, lidar_frame, Time(), timeout=Duration(seconds=timeout_s))
            except Exception as exc:  # tf2 raises LookupException / ExtrapolationException / ...
                msg = f"no TF from '{lidar_frame}' to '{frame}' within {timeout_s} s: {exc}"
                raise CalibrationError(msg) from exc
            t, q = transform.transform.translation, transform.transform.rotation
            out.append(rigid_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w)))
    finally:
        tf.close()
    return out
