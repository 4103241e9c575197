"""numpy / core types -> ROS 2 messages (rclpy message classes)."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from nav_msgs.msg import MapMetaData, OccupancyGrid
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import (
    BoundingBox3D,
    Detection3D,
    Detection3DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)
from visualization_msgs.msg import Marker, MarkerArray

from bevfusion_ros.core.perception.objects import ClassRemap
from bevfusion_ros.core.pipeline.detections import Detections, yaw_to_quaternion
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.image import encode_compressed
from bevfusion_ros.core.sensors.pointcloud import encode_points


def stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def stamp_ns(t: Time) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def header(frame_id: str, ns: int) -> Header:
    return Header(frame_id=frame_id, stamp=stamp(ns))


def image_msg(pixels: npt.NDArray[np.uint8], hdr: Header, encoding: str = "bgr8") -> Image:
    """HxWxC (or HxW mono) uint8 -> Image with an unpadded step."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        msg = f"image_msg needs HxW or HxWxC uint8, got {pixels.dtype} {pixels.shape}"
        raise ValueError(msg)
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    out = Image(header=hdr, height=h, width=w, encoding=encoding, is_bigendian=0, step=w * c)
    out.data = array.array("B", np.ascontiguousarray(pixels).tobytes())
    return out


def compressed_image_msg(pixels_bgr: npt.NDArray[np.uint8], hdr: Header, kind: str = "jpeg") -> CompressedImage:
    out = CompressedImage(header=hdr, format=kind)
    out.data = array.array("B", encode_compressed(pixels_bgr, kind))
    return out


def camera_info_msg(intr: CameraIntrinsics, hdr: Header) -> CameraInfo:
    out = CameraInfo(header=hdr, width=intr.width, height=intr.height)
    out.distortion_model = intr.distortion_model or "plumb_bob"
    out.d = [float(v) for v in intr.D] if intr.D.size else [0.0] * 5
    out.k = intr.K.reshape(-1).tolist()
    out.r = np.eye(3).reshape(-1).tolist()
    out.p = intr.P.reshape(-1).tolist()
    return out


def pointcloud2_msg(
    columns: npt.NDArray[np.generic],
    names: Sequence[str],
    hdr: Header,
    dtypes: Sequence[npt.DTypeLike] | None = None,
) -> PointCloud2:
    """(N, C) columns -> an unorganised (height 1), dense, little-endian PointCloud2."""
    specs, data, point_step = encode_points(columns, names, dtypes)
    n = columns.shape[0]
    out = PointCloud2(header=hdr, height=1, width=n, is_bigendian=False, is_dense=True)
    out.fields = [PointField(name=s.name, offset=s.offset, datatype=s.datatype, count=s.count) for s in specs]
    out.point_step = point_step
    out.row_step = point_step * n
    out.data = array.array("B", data)
    return out


def _pose(center: Sequence[float], quat: Sequence[float]) -> Pose:
    return Pose(
        position=Point(x=float(center[0]), y=float(center[1]), z=float(center[2])),
        orientation=Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3])),
    )


def detections_msg(dets: Detections, hdr: Header) -> Detection3DArray:
    """One Detection3D per box: class name as class_id, score, centre pose, bbox (l, w, h)."""
    out = Detection3DArray(header=hdr)
    quats = yaw_to_quaternion(dets.yaw)
    names = dets.label_names()
    for i in range(len(dets)):
        pose = _pose(dets.centers[i].tolist(), quats[i].tolist())
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = names[i]
        hyp.hypothesis.score = float(dets.scores[i])
        hyp.pose.pose = pose
        size = dets.sizes[i].tolist()
        box = BoundingBox3D(center=pose, size=Vector3(x=size[0], y=size[1], z=size[2]))
        out.detections.append(Detection3D(header=hdr, results=[hyp], bbox=box))
    return out


def detected_objects_msg(dets: Detections, hdr: Header, remap: ClassRemap, types: ModuleType) -> Any:
    """Autoware's ``DetectedObjects`` (``types``: the autoware_perception_msgs.msg module): existence
    probability = score, one classification (the remapped label, probability 1 as Autoware's
    detectors give it), pose at the box centre, the twist in the object's frame (x along its
    heading) where the model predicts velocity, a BOUNDING_BOX shape (length, width, height)."""
    obj_cls, kin, shape = types.ObjectClassification, types.DetectedObjectKinematics, types.Shape
    out = types.DetectedObjects(header=hdr)
    quats = yaw_to_quaternion(dets.yaw)
    for i in range(len(dets)):
        k = int(dets.labels[i])
        obj = types.DetectedObject(existence_probability=float(dets.scores[i]))
        obj.classification = [obj_cls(label=getattr(obj_cls, remap.labels[k]), probability=1.0)]
        obj.kinematics.pose_with_covariance.pose = _pose(dets.centers[i].tolist(), quats[i].tolist())
        obj.kinematics.orientation_availability = getattr(kin, remap.orientations[k])
        vx, vy = (float(v) for v in dets.velocities[i])
        if np.isfinite(vx) and np.isfinite(vy):
            c, s = math.cos(float(dets.yaw[i])), math.sin(float(dets.yaw[i]))
            obj.kinematics.twist_with_covariance.twist.linear.x = c * vx + s * vy
            obj.kinematics.twist_with_covariance.twist.linear.y = -s * vx + c * vy
            obj.kinematics.has_twist = True
        obj.shape.type = shape.BOUNDING_BOX
        size = dets.sizes[i].tolist()
        obj.shape.dimensions = Vector3(x=size[0], y=size[1], z=size[2])
        out.objects.append(obj)
    return out


def label_info_msg(class_names: Sequence[str], threshold: float, hdr: Header) -> LabelInfo:
    out = LabelInfo(header=hdr, threshold=float(threshold))
    out.class_map = [VisionClass(class_id=i, class_name=n) for i, n in enumerate(class_names)]
    return out


def occupancy_grid_msg(
    probability: npt.NDArray[np.floating],
    resolution: float,
    origin_xy: tuple[float, float],
    hdr: Header,
) -> OccupancyGrid:
    """A BEV probability grid [row = y index, column = x index] in [0, 1] -> OccupancyGrid 0..100.

    Cell (0, 0) is the cell whose corner is ``origin_xy``; NaN cells become -1 (unknown).
    """
    if probability.ndim != 2:
        msg = f"occupancy_grid_msg needs a 2-D grid, got shape {probability.shape}"
        raise ValueError(msg)
    rows, cols = probability.shape
    occ = np.rint(np.clip(np.nan_to_num(probability, nan=0.0), 0.0, 1.0) * 100.0).astype(np.int8)
    occ[np.isnan(probability)] = -1
    info = MapMetaData(resolution=float(resolution), width=cols, height=rows, map_load_time=hdr.stamp)
    info.origin.position.x = float(origin_xy[0])
    info.origin.position.y = float(origin_xy[1])
    info.origin.orientation.w = 1.0
    out = OccupancyGrid(header=hdr, info=info)
    out.data = array.array("b", occ.tobytes())
    return out


def occupancy_grid_to_array(msg: OccupancyGrid) -> npt.NDArray[np.int8]:
    """OccupancyGrid -> (height, width) int8, -1 unknown, 0..100 occupancy."""
    grid = np.frombuffer(msg.data, dtype=np.int8)
    return grid.reshape(int(msg.info.height), int(msg.info.width))


_PALETTE = np.array(
    [
        [1.0, 0.62, 0.0],
        [0.0, 0.8, 1.0],
        [1.0, 0.3, 0.3],
        [0.6, 1.0, 0.2],
        [0.9, 0.2, 0.9],
        [1.0, 1.0, 0.2],
        [0.3, 0.5, 1.0],
        [0.2, 1.0, 0.7],
        [1.0, 0.6, 0.7],
        [0.7, 0.7, 0.7],
    ]
)


MIN_ARROW_SPEED = 0.2  # m/s: slower boxes get no velocity arrow


def detection_markers_msg(
    dets: Detections, hdr: Header, ns: str = "detections", lifetime_s: float = 0.2
) -> MarkerArray:
    """A DELETEALL followed by one CUBE and one TEXT marker per box, coloured by class, and an ARROW
    from the box centre to where its velocity takes it in one second (boxes moving faster than
    0.2 m/s; vision_msgs' Detection3D has no velocity field, so RViz shows it here and in
    ~/objects' twist)."""
    markers = [Marker(header=hdr, ns=ns, action=Marker.DELETEALL)]
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    quats = yaw_to_quaternion(dets.yaw)
    names = dets.label_names()
    for i in range(len(dets)):
        rgb = _PALETTE[int(dets.labels[i]) % len(_PALETTE)]
        color = ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=0.5)
        pose = _pose(dets.centers[i].tolist(), quats[i].tolist())
        size = dets.sizes[i].tolist()
        cube = Marker(header=hdr, ns=ns, id=2 * i, type=Marker.CUBE, action=Marker.ADD, pose=pose, color=color)
        cube.scale = Vector3(x=size[0], y=size[1], z=size[2])
        cube.lifetime = life
        text_pose = _pose([pose.position.x, pose.position.y, pose.position.z + size[2] / 2 + 0.5], [0, 0, 0, 1])
        text = Marker(header=hdr, ns=ns, id=2 * i + 1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, pose=text_pose)
        text.text = f"{names[i]} {float(dets.scores[i]):.2f}"
        text.scale.z = 0.8
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.9)
        text.lifetime = life
        markers.extend([cube, text])
        vx, vy = (float(v) for v in dets.velocities[i])
        if np.isfinite(vx) and np.isfinite(vy) and np.hypot(vx, vy) > MIN_ARROW_SPEED:
            arrow = Marker(header=hdr, ns=f"{ns}/velocity", id=i, type=Marker.ARROW, action=Marker.ADD, color=color)
            start = Point(x=pose.position.x, y=pose.position.y, z=pose.position.z)
            arrow.points = [start, Point(x=start.x + vx, y=start.y + vy, z=start.z)]
            arrow.scale = Vector3(x=0.15, y=0.3, z=0.3)  # shaft diameter, head diameter, head length
            arrow.color.a = 1.0
            arrow.lifetime = life
            markers.append(arrow)
    return MarkerArray(markers=markers)
