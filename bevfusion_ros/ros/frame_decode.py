"""What the perception node does to a synchronised frame before the pipeline sees it, as plain
functions, so the node and ``bevfusion-ros evaluate`` (offline replay) run the same code.

Works on rclpy messages and rosbags' deserialized messages alike (``convert`` is duck-typed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import InputError, MessageError
from bevfusion_ros.core.perception.sync import SyncedFrame
from bevfusion_ros.core.sensors.pointcloud import DATATYPES, finite_rows
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.ros import convert

XYZI = ("x", "y", "z", "intensity")
FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


@dataclass(frozen=True)
class DecodedFrame:
    images: list[npt.NDArray[np.uint8] | None]  # None: masked by the sync policy or undecodable
    points: npt.NDArray[np.float32] | None  # (N, 4) x, y, z, intensity; None in a frame without a sweep
    masked: int
    bad_images: tuple[tuple[int, str], ...]  # (camera index, why) for images that could not be decoded
    dropped: str | None = None  # why the frame must not run (then ``points`` is empty)


def image_decoder(compressed: bool, use_distro: bool = True) -> Callable[[Any], Any]:
    if compressed:
        return lambda msg: convert.compressed_to_array(msg, "bgr")
    return lambda msg: convert.image_to_array(msg, "bgr", use_distro=use_distro)


def decode_frame(
    frame: SyncedFrame,
    decode_image: Callable[[Any], Any],
    max_masked: int,
    use_distro: bool = True,
    lidar_only: bool = False,
    image_sizes: Sequence[tuple[int, int]] = (),
    lidar_frame: str = "",
) -> DecodedFrame:
    """Images (an undecodable one masks its camera) and the cloud's x, y, z, intensity (None in a
    camera-anchored frame without a sweep).

    An image whose size is not its calibration's (``image_sizes``, (width, height) per camera) masks
    its camera like an undecodable one. A sweep in another frame than ``lidar_frame`` (when given)
    is a MessageError: the calibration's transforms start from that frame.

    More than ``max_masked`` masked cameras make the frame LiDAR-only (every camera masked) where
    ``lidar_only`` (the model was trained without cameras) and it has a sweep; otherwise they set
    ``dropped``. A cloud that cannot be read raises MessageError. Either way the frame is dropped.
    """
    images: list[npt.NDArray[np.uint8] | None] = []
    bad: list[tuple[int, str]] = []
    for i, msg in enumerate(frame.images):
        if msg is None:
            images.append(None)
            continue
        try:
            image = decode_image(msg)
        except MessageError as exc:
            bad.append((i, str(exc)))
            images.append(None)
            continue
        if image_sizes and (image.shape[1], image.shape[0]) != tuple(image_sizes[i]):
            w, h = image_sizes[i]
            bad.append((i, f"image is {image.shape[1]}x{image.shape[0]} but its calibration is for {w}x{h}"))
            image = None
        images.append(image)
    masked = sum(img is None for img in images)
    if frame.lidar is not None and lidar_frame and str(frame.lidar.header.frame_id) != lidar_frame:
        msg = (
            f"the sweep is in frame '{frame.lidar.header.frame_id}' but the calibration starts from "
            f"lidar_frame '{lidar_frame}'"
        )
        raise MessageError(msg)
    if masked > max_masked:
        if lidar_only and frame.lidar is not None:
            return DecodedFrame([None] * len(images), xyzi(frame.lidar, use_distro), len(images), tuple(bad))
        why = f"frame at {frame.stamp_ns} ns dropped: {masked} cameras masked (max_masked_cameras {max_masked})"
        return DecodedFrame(images, np.zeros((0, 4), np.float32), masked, tuple(bad), why)
    points = None if frame.lidar is None else xyzi(frame.lidar, use_distro)
    return DecodedFrame(images, points, masked, tuple(bad))


def xyzi(cloud_msg: Any, use_distro: bool = True) -> npt.NDArray[np.float32]:
    """A PointCloud2's x, y, z, intensity columns (N, 4), rows with a non-finite value dropped (a NaN
    intensity would reach the model's features); a cloud with points but none finite is an
    InputError that says how many came."""
    cloud = convert.pointcloud2_to_points(cloud_msg, use_distro=use_distro, drop_nonfinite=False)
    points = cloud.data[:, [cloud.fields.index(f) for f in XYZI]]
    kept = finite_rows(points, columns=len(XYZI))
    if len(points) and not len(kept):
        msg = (
            f"point cloud has no finite points (all {len(points)} received have a NaN or infinite x, y, z or intensity)"
        )
        raise InputError(msg)
    return kept


def cloud_conversion(cloud_msg: Any) -> str | None:
    """What reading a PointCloud2 as float32 x, y, z, intensity points changes, in words (None: it is
    that already, one row, little-endian)."""
    types = {str(f.name): int(f.datatype) for f in cloud_msg.fields}
    changes = []
    other = [f"{n} {DATATYPES[types[n]].name}" for n in XYZI if types.get(n) in DATATYPES and types[n] != FLOAT32]
    if other:
        changes.append(f"{', '.join(other)} read as float32")
    height, width = int(cloud_msg.height), int(cloud_msg.width)
    if height > 1:
        changes.append(f"organised {height}x{width} cloud read as {height * width} points")
        if int(cloud_msg.row_step) > width * int(cloud_msg.point_step):
            changes.append(f"rows padded to {int(cloud_msg.row_step)} bytes skipped")
    if cloud_msg.is_bigendian:
        changes.append("big-endian values byte-swapped")
    return ", ".join(changes) or None


def rig_with_camera_info(rig: CameraRig, index: int, msg: Any) -> CameraRig | None:
    """``rig`` with camera ``index``'s intrinsics from a CameraInfo, or None when they already match.
    Raises BevFusionError for a CameraInfo that cannot be used."""
    intr = convert.camera_info_to_intrinsics(msg)
    old = rig.intrinsics[index]
    if (old.width, old.height) == (intr.width, intr.height) and np.allclose(old.K, intr.K, rtol=1e-6):
        return None
    ks = list(rig.intrinsics)
    ks[index] = intr
    return CameraRig.create(rig.names, ks, list(rig.lidar2cam))
