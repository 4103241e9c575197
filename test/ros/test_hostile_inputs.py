"""Inputs that were once converted in silence into wrong output (issue 19's adversarial run), each
now refused with one message that names the problem, and the legal variants next to them still
converted correctly. Every case goes through the code the node and the replay run (ros/convert.py,
ros/frame_decode.py, the pipeline's point crop)."""

from __future__ import annotations

import array
import struct
import zlib

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField

from bevfusion_ros.core.errors import InputError, MessageError
from bevfusion_ros.core.perception.sync import SyncedFrame
from bevfusion_ros.core.pipeline.preprocess import crop_points
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.image import encode_compressed
from bevfusion_ros.ros import build, convert
from bevfusion_ros.ros.frame_decode import decode_frame, image_decoder, xyzi

HDR = build.header("lidar_top", 1_000_000_000)
POINTS = np.array([[5.0, -3.0, 0.5, 10.0], [12.0, 4.0, -1.0, 40.0], [-20.0, 7.5, 1.0, 90.0]], np.float32)


def cloud(points: np.ndarray = POINTS, **changes: object) -> PointCloud2:
    msg = build.pointcloud2_msg(points, ("x", "y", "z", "intensity"), HDR)
    for k, v in changes.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize("use_distro", [False, True])
def test_big_endian_flag_on_little_endian_data_is_refused(use_distro: bool) -> None:
    with pytest.raises(MessageError, match="is_bigendian is set, but the coordinates are plausible only read little"):
        convert.pointcloud2_to_points(cloud(is_bigendian=True), use_distro=use_distro)


def test_a_true_big_endian_cloud_still_decodes() -> None:
    msg = cloud()
    msg.is_bigendian = True
    msg.data = array.array("B", POINTS.astype(">f4").tobytes())
    np.testing.assert_array_equal(convert.pointcloud2_to_points(msg, use_distro=False).data, POINTS)


def test_repeated_field_names_are_refused() -> None:
    msg = cloud()
    msg.fields = [*msg.fields, PointField(name="x", offset=12, datatype=7, count=1)]
    with pytest.raises(MessageError, match=r"field name\(s\) repeated.*'x': \[0, 12\]"):
        convert.pointcloud2_to_points(msg, use_distro=False)


def test_row_step_shorter_than_one_row_is_refused_and_a_longer_one_is_padding() -> None:
    with pytest.raises(MessageError, match="row_step 40 is smaller than width\\*point_step = 3\\*16"):
        convert.pointcloud2_to_points(cloud(row_step=40), use_distro=False)
    padded = cloud(row_step=64)
    padded.data = array.array("B", bytes(padded.data) + bytes(16))
    np.testing.assert_array_equal(convert.pointcloud2_to_points(padded, use_distro=False).data, POINTS)


def test_an_all_nan_cloud_says_how_many_points_came() -> None:
    with pytest.raises(InputError, match="all 3 received have a NaN or infinite"):
        xyzi(cloud(np.full((3, 4), np.nan, np.float32)), use_distro=False)


def test_a_point_with_a_nan_intensity_is_dropped_like_a_nan_coordinate() -> None:
    points = POINTS.copy()
    points[1, 3] = np.nan
    np.testing.assert_array_equal(xyzi(cloud(points), use_distro=False), POINTS[[0, 2]])
    points[:, 3] = np.inf
    with pytest.raises(InputError, match="all 3 received have a NaN or infinite x, y, z or intensity"):
        xyzi(cloud(points), use_distro=False)


def test_a_cloud_of_huge_coordinates_has_no_point_in_range(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"none of the cloud's 3 finite points lies inside lidar\.point_cloud_range"):
        crop_points(POINTS * np.float32([1e30, 1e30, 1e30, 1]), spec.lidar)


@pytest.mark.parametrize(
    ("k", "words"),
    [
        ([1e-12, 0, 800, 0, 1e-12, 450, 0, 0, 1], "fx=1e-12, fy=1e-12 \\(need >= 1 px\\)"),
        ([1000, 0, 1e6, 0, 1000, 450, 0, 0, 1], "cx=1e\\+06"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0], "not a valid pinhole matrix"),
    ],
)
def test_degenerate_camera_info_is_refused(k: list[float], words: str) -> None:
    msg = CameraInfo(width=1600, height=900, distortion_model="plumb_bob", k=[float(v) for v in k])
    msg.d, msg.p = [0.0] * 5, [0.0] * 12
    with pytest.raises(MessageError, match=words):
        convert.camera_info_to_intrinsics(msg)


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame header is rewritten to declare another size."""
    data = bytearray(encode_compressed(np.zeros((16, 16, 3), np.uint8), "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(("fmt", "data"), [("png", _png_header(16000, 9000)), ("jpeg", _jpeg_declaring(60000, 60000))])
def test_a_decompression_bomb_is_refused_before_decoding(fmt: str, data: bytes) -> None:
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format=fmt)
    msg.data = array.array("B", data)
    with pytest.raises(MessageError, match=r"declares \d+x\d+ pixels, over the 40 MP this node decodes"):
        convert.compressed_to_array(msg)


def frame_of(images: list, lidar_frame_id: str = "lidar_top") -> SyncedFrame:
    sweep = build.pointcloud2_msg(POINTS, ("x", "y", "z", "intensity"), build.header(lidar_frame_id, 1))
    return SyncedFrame(1, sweep, tuple(images), tuple(1 for _ in images))


def test_an_image_of_another_size_than_its_calibration_masks_only_its_camera() -> None:
    sizes = [(400, 225), (400, 225)]
    good = build.image_msg(np.zeros((225, 400, 3), np.uint8), HDR)
    big = build.image_msg(np.zeros((450, 800, 3), np.uint8), HDR)
    decoded = decode_frame(frame_of([good, big]), image_decoder(False, use_distro=False), 6, False, image_sizes=sizes)
    assert decoded.images[0] is not None and decoded.images[1] is None and decoded.dropped is None
    assert decoded.bad_images == ((1, "image is 800x450 but its calibration is for 400x225"),)


def test_a_sweep_in_another_frame_than_the_calibration_s_is_refused() -> None:
    good = build.image_msg(np.zeros((225, 400, 3), np.uint8), HDR)
    with pytest.raises(MessageError, match="sweep is in frame 'velodyne' but the calibration starts from lidar_frame"):
        decode_frame(
            frame_of([good], "velodyne"), image_decoder(False, use_distro=False), 6, False, lidar_frame="lidar_top"
        )


def test_camera_intrinsics_from_arrays_keep_a_real_lens(frame) -> None:  # type: ignore[no-untyped-def]
    cam = frame.cameras[0].intrinsics
    assert CameraIntrinsics.from_arrays(cam.K, cam.width, cam.height).fx == cam.fx
