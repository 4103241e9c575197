"""A frame (the real nuScenes frame or generated scenes) written into a rosbag2 as a vehicle records it.

Per frame k (10 Hz, stamps advancing by 0.1 s, each sensor keeping its real offset to the LiDAR):
  /cameras/<cam>/image_raw            sensor_msgs/Image bgr8 1600x900 (or .../image_raw/compressed)
  /cameras/<cam>/camera_info          sensor_msgs/CameraInfo
  /lidar/points                       sensor_msgs/PointCloud2 (x, y, z, intensity float32; ring uint16)
  /ground_truth/detections            vision_msgs/Detection3DArray (LiDAR frame, box centres)
  /ground_truth/objects               autoware_perception_msgs/DetectedObjects, the same boxes with
                                      their velocities (where the package is installed)
  /ground_truth/map/<class>           nav_msgs/OccupancyGrid 0/100 (generated scenes only: the map
                                      layers on the reference model's map grid)
and once, at the start: /tf_static (tf2_msgs/TFMessage: base_link -> lidar_top and each camera).
The extrinsics also go to <bag>/calibration.yaml (lidar->camera 4x4 and K per camera), the file the
perception node reads when TF is not used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from rclpy.serialization import serialize_message

from bevfusion_ros.core.model import Grid
from bevfusion_ros.core.perception.objects import ClassRemap, load_class_remap
from bevfusion_ros.core.resources import config_file
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.geometry import rotation_to_quaternion
from bevfusion_ros.ros import build, optional
from bevfusion_ros.tools.bags.io import BagWriter
from bevfusion_ros.tools.bags.layout import (
    BASE_FRAME,
    GT_MAP_PREFIX,
    GT_OBJECTS_TOPIC,
    GT_TOPIC,
    LIDAR_FRAME,
    LIDAR_TOPIC,
    ODOM_FRAME,
    camera_frame,
    image_topic,
    info_topic,
)
from bevfusion_ros.tools.data.nuscenes_frame import NuScenesFrame
from bevfusion_ros.tools.viz.progress import progress

MapTruth = tuple[npt.NDArray[np.bool_], Grid, tuple[str, ...]]  # (K, ny, nx) layers, their grid, class names


def _tf_message(store: Any, ns: int, parent: str, children: list[tuple[str, npt.NDArray[np.float64]]]) -> bytes:
    t = store.types
    stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
    transforms = []
    for child, mat in children:
        q = rotation_to_quaternion(mat[:3, :3])
        transforms.append(
            t["geometry_msgs/msg/TransformStamped"](
                header=t["std_msgs/msg/Header"](stamp=stamp, frame_id=parent),
                child_frame_id=child,
                transform=t["geometry_msgs/msg/Transform"](
                    translation=t["geometry_msgs/msg/Vector3"](x=mat[0, 3], y=mat[1, 3], z=mat[2, 3]),
                    rotation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
                ),
            )
        )
    msg = t["tf2_msgs/msg/TFMessage"](transforms=transforms)
    return bytes(store.serialize_cdr(msg, "tf2_msgs/msg/TFMessage"))


def tf_static(frame: NuScenesFrame, store: Any, ns: int) -> bytes:
    children = [(LIDAR_FRAME, frame.lidar2ego)] + [(camera_frame(c.name), c.cam2ego) for c in frame.cameras]
    return _tf_message(store, ns, BASE_FRAME, children)


def calibration_dict(frame: NuScenesFrame) -> dict[str, Any]:
    return {
        "lidar_frame": LIDAR_FRAME,
        "cameras": [
            {
                "name": camera_frame(c.name),
                "frame_id": camera_frame(c.name),
                "width": c.intrinsics.width,
                "height": c.intrinsics.height,
                "K": c.intrinsics.K.tolist(),
                "lidar2cam": c.lidar2cam.tolist(),
            }
            for c in frame.cameras
        ],
    }


def scene_frame(base: NuScenesFrame, seed: int, scene: Any = None) -> NuScenesFrame:
    """A generated scene (``scene``, or the one of ``seed``) seen by ``base``'s rig (cameras at
    scenes.RENDER_SIZE) as a frame to record."""
    from bevfusion_ros.core.sensors.rig import CameraRig, scale_intrinsics
    from bevfusion_ros.tools.data import scenes

    w, h = scenes.RENDER_SIZE
    cams = []
    for c in base.cameras:
        k = c.intrinsics
        cams.append(
            replace(c, intrinsics=CameraIntrinsics.from_arrays(scale_intrinsics(k.K, w / k.width, h / k.height), w, h))
        )
    rig = CameraRig.create(tuple(c.name for c in cams), [c.intrinsics for c in cams], [c.lidar2cam for c in cams])
    sc = scene if scene is not None else scenes.generate_scene(seed)
    images = scenes.render_cameras(sc, rig, w, h)
    cams = [replace(c, image_bgr=img) for c, img in zip(cams, images, strict=True)]
    return replace(
        base,
        token=f"scene-{seed}",
        cameras=tuple(cams),
        points=scenes.lidar_sweep(sc),
        boxes=sc.boxes,
        class_names=scenes.CLASS_NAMES,
    )


def write_bag(
    frame: NuScenesFrame,
    out: Path,
    n_frames: int,
    rate_hz: float = 10.0,
    compressed: bool = False,
    storage: str = "mcap",
    overwrite: bool = False,
    show_progress: bool = True,
    frames: Callable[[int], NuScenesFrame] | None = None,
    maps: Callable[[int], MapTruth] | None = None,
    ego_poses: Callable[[int], npt.NDArray[np.float64]] | None = None,
    lost: Callable[[int], frozenset[str]] | None = None,
) -> Path:
    """Record ``n_frames`` at ``rate_hz``: the same ``frame`` each time, or ``frames(k)`` when given
    (its rig must be ``frame``'s: calibration and /tf_static come from ``frame``); ``maps(k)`` adds
    frame k's map ground truth; ``ego_poses(k)`` (odom -> base_link, 4x4) adds /tf at each sweep;
    ``lost(k)`` names the sensors silent in frame k ("lidar", "cameras"): their messages are left out,
    the ground truth stays (a sensor failure to evaluate the node's degraded modes on)."""
    t0 = round(frame.timestamp * 1e9)
    period = round(1e9 / rate_hz)
    autoware = optional.autoware_perception_msgs()  # the ground truth's velocities, where installed

    @functools.cache
    def remap(class_names: tuple[str, ...]) -> ClassRemap:
        return load_class_remap(config_file("autoware_class_remap.yaml"), class_names)

    lidar_names = ("x", "y", "z", "intensity", "ring")
    lidar_types = (np.float32, np.float32, np.float32, np.float32, np.uint16)
    with BagWriter(out, storage=storage, overwrite=overwrite) as bag:
        bag.write("/tf_static", "tf2_msgs/msg/TFMessage", t0 - 1, tf_static(frame, bag.store, t0))
        first = frame
        for k in progress(range(n_frames), desc="writing bag", unit="frame", enabled=show_progress):
            frame = frames(k) if frames is not None else first
            events: list[tuple[int, str, str, Any]] = []
            silent = lost(k) if lost is not None else frozenset()
            for cam in frame.cameras if "cameras" not in silent else ():
                ns = t0 + k * period + round((cam.timestamp - frame.timestamp) * 1e9)
                hdr = build.header(camera_frame(cam.name), ns)
                if compressed:
                    events.append(
                        (
                            ns,
                            image_topic(cam.name, True),
                            "sensor_msgs/msg/CompressedImage",
                            build.compressed_image_msg(cam.image_bgr, hdr),
                        )
                    )
                else:
                    events.append(
                        (
                            ns,
                            image_topic(cam.name),
                            "sensor_msgs/msg/Image",
                            build.image_msg(cam.image_bgr, hdr, "bgr8"),
                        )
                    )
                events.append(
                    (ns, info_topic(cam.name), "sensor_msgs/msg/CameraInfo", build.camera_info_msg(cam.intrinsics, hdr))
                )
            ns = t0 + k * period
            hdr = build.header(LIDAR_FRAME, ns)
            if "lidar" not in silent:
                cloud = build.pointcloud2_msg(frame.points, lidar_names, hdr, lidar_types)
                events.append((ns, LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", cloud))
            events.append((ns, GT_TOPIC, "vision_msgs/msg/Detection3DArray", build.detections_msg(frame.boxes, hdr)))
            if autoware is not None:
                objects = build.detected_objects_msg(frame.boxes, hdr, remap(frame.class_names), autoware)
                events.append((ns, GT_OBJECTS_TOPIC, "autoware_perception_msgs/msg/DetectedObjects", objects))
            if ego_poses is not None:
                tf = _tf_message(bag.store, ns, ODOM_FRAME, [(BASE_FRAME, ego_poses(k))])
                events.append((ns, "/tf", "tf2_msgs/msg/TFMessage", tf))
            if maps is not None:
                layers, grid, classes = maps(k)
                for layer, name in zip(layers, classes, strict=True):
                    origin = (grid.xmin, grid.ymin)
                    grid_msg = build.occupancy_grid_msg(layer.astype(np.float32), grid.resolution, origin, hdr)
                    events.append((ns, GT_MAP_PREFIX + name, "nav_msgs/msg/OccupancyGrid", grid_msg))
            for ns_e, topic, msgtype, msg in sorted(events, key=lambda e: e[0]):
                bag.write(topic, msgtype, ns_e, msg if isinstance(msg, bytes) else serialize_message(msg))
    (out / "calibration.yaml").write_text(yaml.safe_dump(calibration_dict(first), sort_keys=False))
    return out
