"""sensor_msgs -> numpy. Works on rclpy messages and on rosbags' deserialized messages alike
(duck-typed on the field names), so live topics and recorded bags go through the same code.

Where cv_bridge / sensor_msgs_py are installed (a ROS distribution) they do the decoding after
this module's own layout checks; elsewhere the package's own decoders run. Either way a
malformed message raises :class:`MessageError` naming the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.pipeline.detections import Detections, quaternion_to_yaw
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.image import ChannelOrder, Image, decode_compressed, decode_raw
from bevfusion_ros.core.sensors.pointcloud import (
    DEFAULT_OPTIONAL,
    DEFAULT_REQUIRED,
    FieldSpec,
    PointCloud,
    decode_points,
    finite_rows,
    resolve_fields,
)
from bevfusion_ros.ros import optional

_IMAGE_FIELDS = ("height", "width", "step", "encoding", "data")


def _require(msg: Any, names: Iterable[str], kind: str) -> None:
    missing = [n for n in names if not hasattr(msg, n)]
    if missing:
        text = f"{kind} message lacks field(s) {', '.join(missing)} (got {type(msg).__name__})"
        raise MessageError(text)


def image_to_array(msg: Any, order: ChannelOrder = "rgb", use_distro: bool = True) -> Image:
    """sensor_msgs/Image -> HxWx3 uint8 (a read-only view of the message buffer on our path)."""
    _require(msg, _IMAGE_FIELDS, "Image")
    view = decode_raw(msg.data, int(msg.height), int(msg.width), int(msg.step), str(msg.encoding), order)
    bridge = optional.cv_bridge() if use_distro else None
    if bridge is None:
        return view
    try:
        out: Image = bridge.imgmsg_to_cv2(msg, desired_encoding=f"{order}8")
    except Exception as exc:  # cv_bridge raises its own CvBridgeError / cv2.error types
        text = f"cv_bridge could not convert a '{msg.encoding}' image: {exc}"
        raise MessageError(text) from exc
    return out


def compressed_to_array(msg: Any, order: ChannelOrder = "rgb") -> Image:
    """sensor_msgs/CompressedImage (jpeg/png) -> contiguous HxWx3 uint8."""
    _require(msg, ("format", "data"), "CompressedImage")
    return decode_compressed(msg.data, str(msg.format), order)


def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> intrinsics; rejects an all-zero (uncalibrated) K."""
    _require(msg, ("k", "d", "p", "width", "height", "distortion_model"), "CameraInfo")
    return CameraIntrinsics.from_arrays(
        np.asarray(msg.k, dtype=np.float64),
        int(msg.width),
        int(msg.height),
        str(msg.distortion_model),
        np.asarray(msg.d, dtype=np.float64),
        np.asarray(msg.p, dtype=np.float64),
    )


def field_specs(msg: Any) -> list[FieldSpec]:
    _require(msg, ("fields",), "PointCloud2")
    specs = []
    for f in msg.fields:
        _require(f, ("name", "offset", "datatype", "count"), "PointField")
        specs.append(FieldSpec(str(f.name), int(f.offset), int(f.datatype), int(f.count)))
    return specs


def pointcloud2_to_points(
    msg: Any,
    required: Iterable[str] = DEFAULT_REQUIRED,
    optional_fields: Iterable[str] = DEFAULT_OPTIONAL,
    drop_nonfinite: bool = True,
    use_distro: bool = True,
) -> PointCloud:
    """sensor_msgs/PointCloud2 with any field layout -> (N, C) float32 columns."""
    _require(msg, ("height", "width", "point_step", "row_step", "is_bigendian", "data"), "PointCloud2")
    specs = field_specs(msg)
    args = (int(msg.width), int(msg.height), int(msg.point_step), int(msg.row_step))
    pc2 = optional.sensor_msgs_py_point_cloud2() if use_distro else None
    if pc2 is not None:
        from sensor_msgs.msg import PointCloud2

        if not isinstance(msg, PointCloud2):  # sensor_msgs_py asserts the rclpy type; a bag's message is not
            pc2 = None
    if msg.is_bigendian:  # before sensor_msgs_py, which byte-swaps msg.data in place
        raw = decode_points(msg.data, specs, *args, True, required, optional_fields, drop_nonfinite=False)
        big = PointCloud(finite_rows(raw.data), raw.fields)
        _check_byte_order(big, lambda: decode_points(msg.data, specs, *args, False, required, optional_fields))
        if pc2 is None:  # already decoded: the checked cloud is the answer
            return big if drop_nonfinite else raw
    if pc2 is None:
        return decode_points(msg.data, specs, *args, bool(msg.is_bigendian), required, optional_fields, drop_nonfinite)
    nbytes = np.frombuffer(msg.data, dtype=np.uint8).size
    wanted = resolve_fields(specs, *args, nbytes, required, optional_fields)
    try:
        structured = pc2.read_points(msg, field_names=wanted, skip_nans=False)
        from numpy.lib import recfunctions

        out = recfunctions.structured_to_unstructured(structured).astype(np.float32, copy=False)
    except Exception as exc:
        text = f"sensor_msgs_py could not read the point cloud: {exc}"
        raise MessageError(text) from exc
    out = out.reshape(-1, len(wanted))
    return PointCloud(finite_rows(out) if drop_nonfinite else out, tuple(wanted))


# metres: beyond any automotive LiDAR's reach, as a byte-swapped float almost always is
PLAUSIBLE_RANGE_M = 1e4


def _plausible_share(cloud: PointCloud) -> float:
    """Points whose coordinates a LiDAR can report: finite, under PLAUSIBLE_RANGE_M, and 0 or above
    a micrometre (byte-swapped small floats come out as denormals like 5.7e-41)."""
    a = np.abs(cloud.xyz.astype(np.float64))
    if not len(a):
        return 0.0
    ok = np.isfinite(a) & (a < PLAUSIBLE_RANGE_M) & ((a == 0) | (a > 1e-6))
    return float(np.mean(ok.all(axis=1)))


def _check_byte_order(big_endian: PointCloud, little_endian: Callable[[], PointCloud]) -> None:
    """A cloud flagged is_bigendian whose coordinates make sense only read little-endian carries a
    wrong flag: refused, naming it, rather than published as garbage points."""
    if _plausible_share(big_endian) >= 0.5:
        return
    if _plausible_share(little_endian()) >= 0.9:
        msg = (
            "is_bigendian is set, but the coordinates are plausible only read little-endian: the driver's "
            "flag is wrong (refused rather than guessed)"
        )
        raise MessageError(msg)


def detection3d_array_to_detections(msg: Any, class_names: Iterable[str] = ()) -> Detections:
    """vision_msgs/Detection3DArray -> Detections, taking each detection's best hypothesis.

    Class ids not in ``class_names`` are appended, so the mapping is kept for unknown labels.
    """
    _require(msg, ("detections",), "Detection3DArray")
    names = list(class_names)
    centers, sizes, quats, scores, labels = [], [], [], [], []
    for det in msg.detections:
        if not det.results:
            text = "Detection3D without results (no class id / score)"
            raise MessageError(text)
        best = max(det.results, key=lambda r: r.hypothesis.score)
        cid = str(best.hypothesis.class_id)
        if cid not in names:
            names.append(cid)
        c, o, s = det.bbox.center.position, det.bbox.center.orientation, det.bbox.size
        centers.append((c.x, c.y, c.z))
        quats.append((o.x, o.y, o.z, o.w))
        sizes.append((s.x, s.y, s.z))
        scores.append(best.hypothesis.score)
        labels.append(names.index(cid))
    n = len(labels)
    return Detections.create(
        np.reshape(centers, (n, 3)),
        np.reshape(sizes, (n, 3)),
        quaternion_to_yaw(np.reshape(quats, (n, 4))),
        scores,
        labels,
        names,
    )


def detected_objects_velocities(msg: Any) -> npt.NDArray[np.float32]:
    """autoware_perception_msgs/DetectedObjects -> (N, 2) velocities in the message frame: each
    object's twist (x along its heading) turned by its yaw; NaN where ``has_twist`` is false. The
    objects are the boxes of the Detection3DArray of the same stamp, in the same order."""
    _require(msg, ("objects",), "DetectedObjects")
    out = np.full((len(msg.objects), 2), np.nan, np.float32)
    for i, obj in enumerate(msg.objects):
        kin = obj.kinematics
        if not kin.has_twist:
            continue
        o = kin.pose_with_covariance.pose.orientation
        yaw = float(quaternion_to_yaw(np.asarray([[o.x, o.y, o.z, o.w]]))[0])
        t = kin.twist_with_covariance.twist.linear
        c, s = np.cos(yaw), np.sin(yaw)
        out[i] = (c * t.x - s * t.y, s * t.x + c * t.y)
    return out
