"""A corpus of malformed and hostile inputs for a live perception node (issue 19): each case publishes
one bad input at a stamp through a frame publisher (test_perception_node's FramePublisher: .images,
.lidar, .info publishers, .image_msgs(ns), .cloud(ns, points), .frame), and names the diagnostics
counter it must raise and the words the node's log line must say. After every case a good frame
must come out: the node recovers.

CORPUS runs against a node on raw images, COMPRESSED_CORPUS against one on CompressedImage. make test
runs the cases marked ``fast`` (one per kind of fault); make soak runs them all (BEVFUSION_CORPUS=full).
Stamp cases come last: some start a new timeline. TF_CORPUS runs against a multi-sweep node.
Process signals, bursts and rates are in benchmarks/soak.py."""

from __future__ import annotations

import array
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import PointField

from bevfusion_ros.ros import build


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    send: Callable[[Any, int], None]  # (publisher, stamp ns)
    counter: str  # the diagnostics value that must grow
    says: str  # in the node's log
    fast: bool = False  # in make test's subset


def fast(case: Case) -> Case:
    return Case(case.category, case.name, case.send, case.counter, case.says, True)


def _points(n: int, value: float) -> np.ndarray:
    """``n`` points whose x, y, z, intensity are ``value`` (the ring column a valid 0)."""
    pts = np.full((n, 5), value, np.float32)
    pts[:, 4] = 0
    return pts


def _cloud(pub: Any, ns: int, points: np.ndarray | None = None, **changes: Any) -> Any:
    msg = pub.cloud(ns, points)
    for k, v in changes.items():
        setattr(msg, k, v)
    return msg


def _with_images(pub: Any, ns: int, cloud: Any) -> None:
    for p, m in zip(pub.images, pub.image_msgs(ns), strict=True):
        p.publish(m)
    pub.lidar.publish(cloud)


def cloud_case(name: str, make: Callable[[Any, int], Any], counter: str, says: str) -> Case:
    return Case("PointCloud2", name, lambda pub, ns: _with_images(pub, ns, make(pub, ns)), counter, says)


def bad_layout(name: str, make: Callable[[Any, int], Any], says: str) -> Case:
    return cloud_case(name, make, "frame_dropped_MessageError", says)


def no_points(name: str, points: np.ndarray, says: str) -> Case:
    return cloud_case(name, lambda p, ns: _cloud(p, ns, points), "frame_dropped_InputError", says)


def _truncated(pub: Any, ns: int) -> Any:
    msg = _cloud(pub, ns)
    msg.data = msg.data[:100]
    return msg


def _fields(pub: Any, ns: int, edit: Callable[[list[Any]], list[Any]]) -> Any:
    msg = _cloud(pub, ns)
    msg.fields = edit(list(msg.fields))
    return msg


def _big_endian_flag(pub: Any, ns: int) -> Any:
    return _cloud(pub, ns, is_bigendian=True)


def _one_image(pub: Any, ns: int, edit: Callable[[Any], None]) -> None:
    msgs = pub.image_msgs(ns)
    edit(msgs[0])
    for p, m in zip(pub.images, msgs, strict=True):
        p.publish(m)
    pub.lidar.publish(pub.cloud(ns))


def image_case(name: str, edit: Callable[[Any], None], says: str) -> Case:
    return Case("Image", name, lambda pub, ns: _one_image(pub, ns, edit), "bad_image", says)


def compressed_case(name: str, edit: Callable[[Any], None], says: str) -> Case:
    return Case("CompressedImage", name, lambda pub, ns: _one_image(pub, ns, edit), "bad_image", says)


def _png_header(width: int, height: int) -> bytes:
    """A PNG's signature, IHDR and IEND with no pixel data: its header declares width x height."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _compressed_resized(msg: Any) -> None:
    big = build.compressed_image_msg(np.zeros((450, 800, 3), np.uint8), msg.header)
    msg.format, msg.data = big.format, big.data


def _set(**values: Any) -> Callable[[Any], None]:
    def edit(msg: Any) -> None:
        for k, v in values.items():
            setattr(msg, k, v)

    return edit


def _resized(msg: Any) -> None:
    big = np.zeros((msg.height * 2, msg.width * 2, 3), np.uint8)
    fresh = build.image_msg(big, msg.header)
    msg.height, msg.width, msg.step, msg.data = fresh.height, fresh.width, fresh.step, fresh.data


def _info(pub: Any, ns: int, edit: Callable[[Any], None]) -> None:
    msg = build.camera_info_msg(pub.frame.cameras[0].intrinsics, build.header("cam_front", ns))
    edit(msg)
    pub.info.publish(msg)


def info_case(name: str, edit: Callable[[Any], None], says: str) -> Case:
    return Case("CameraInfo", name, lambda pub, ns: _info(pub, ns, edit), "bad_camera_info", says)


def _k(fx: float = 1266.0, cx: float = 816.0, k22: float = 1.0) -> Callable[[Any], None]:
    return _set(k=[fx, 0.0, cx, 0.0, fx, 491.0, 0.0, 0.0, k22])


def _field(name: str, offset: int, datatype: int = 7, count: int = 1) -> PointField:
    return PointField(name=name, offset=offset, datatype=datatype, count=count)


def _stamped(pub: Any, images_ns: int, cloud_ns: int) -> None:
    for p, m in zip(pub.images, pub.image_msgs(images_ns), strict=True):
        p.publish(m)
    pub.lidar.publish(pub.cloud(cloud_ns))


def _zero_stamped_image(pub: Any, ns: int) -> None:
    msgs = pub.image_msgs(ns)
    msgs[0].header.stamp = build.stamp(0)
    for p, m in zip(pub.images, msgs, strict=True):
        p.publish(m)
    pub.lidar.publish(pub.cloud(ns))


def stamp_case(name: str, send: Callable[[Any, int], None], counter: str, says: str) -> Case:
    return Case("stamps", name, send, counter, says)


STEP_NS = 10**8  # the corpus sends a good frame one step after each case: the previous good stamp is ns - STEP_NS


CORPUS: tuple[Case, ...] = (
    fast(cloud_case("truncated data", _truncated, "frame_dropped_MessageError", "point cloud data has 100 bytes")),
    cloud_case(
        "no points",
        lambda p, ns: _cloud(p, ns, np.zeros((0, 5), np.float32)),
        "frame_dropped_InputError",
        "no finite points",
    ),
    cloud_case(
        "all NaN",
        lambda p, ns: _cloud(p, ns, _points(500, np.nan)),
        "frame_dropped_InputError",
        "all 500 received have a NaN",
    ),
    fast(
        cloud_case(
            "1e30 coordinates",
            lambda p, ns: _cloud(p, ns, _points(500, 1e30)),
            "frame_dropped_InputError",
            "lies inside lidar.point_cloud_range",
        )
    ),
    fast(
        cloud_case(
            "big-endian flag on little-endian data",
            _big_endian_flag,
            "frame_dropped_MessageError",
            "plausible only read little-endian",
        )
    ),
    cloud_case(
        "repeated field name",
        lambda p, ns: _fields(p, ns, lambda f: [*f, _field("x", 4)]),
        "frame_dropped_MessageError",
        "field name(s) repeated",
    ),
    cloud_case(
        "row_step shorter than a row",
        lambda p, ns: _cloud(p, ns, row_step=16),
        "frame_dropped_MessageError",
        "row_step 16 is smaller",
    ),
    cloud_case(
        "point_step 0", lambda p, ns: _cloud(p, ns, point_step=0), "frame_dropped_MessageError", "point_step is 0"
    ),
    cloud_case(
        "unknown datatype",
        lambda p, ns: _fields(p, ns, lambda f: [_field("x", 0, 11), *f[1:]]),
        "frame_dropped_MessageError",
        "unknown datatype 11",
    ),
    cloud_case(
        "no intensity field",
        lambda p, ns: _fields(p, ns, lambda f: [x for x in f if x.name != "intensity"]),
        "frame_dropped_MessageError",
        "lacks required field(s) intensity",
    ),
    cloud_case(
        "vector field",
        lambda p, ns: _fields(p, ns, lambda f: [_field("x", 0, 7, 3), *f[1:]]),
        "frame_dropped_MessageError",
        "field 'x' has count 3",
    ),
    cloud_case(
        "field past point_step",
        lambda p, ns: _fields(p, ns, lambda f: [*f[:3], _field("intensity", 60)]),
        "frame_dropped_MessageError",
        "field 'intensity' spans bytes 60..64",
    ),
    fast(
        cloud_case(
            "other frame_id",
            lambda p, ns: _cloud(p, ns, header=build.header("velodyne", ns)),
            "frame_dropped_MessageError",
            "sweep is in frame 'velodyne'",
        )
    ),
    bad_layout("empty frame_id", lambda p, ns: _cloud(p, ns, header=build.header("", ns)), "sweep is in frame ''"),
    bad_layout(
        "intensity overlapping y",
        lambda p, ns: _fields(p, ns, lambda f: [*f[:3], _field("intensity", 6), *f[4:]]),
        "fields 'y' (bytes 4..8) and 'intensity' (bytes 6..10) overlap",
    ),
    bad_layout("no fields at all", lambda p, ns: _fields(p, ns, lambda f: []), "lacks required field(s) x, y, z"),
    bad_layout("datatype 0", lambda p, ns: _fields(p, ns, lambda f: [_field("x", 0, 0), *f[1:]]), "unknown datatype 0"),
    bad_layout(
        "width 2**31 for the data of a sweep",
        lambda p, ns: _cloud(p, ns, width=2**31),
        "width*point_step = 2147483648*18",
    ),
    bad_layout(
        "two rows, data for one",
        lambda p, ns: _cloud(p, ns, height=2, row_step=_cloud(p, ns).row_step),
        "expected at least",
    ),
    bad_layout(
        "organised cloud with row_step 0",
        lambda p, ns: _cloud(p, ns, height=2, width=_cloud(p, ns).width // 2, row_step=0),
        "row_step 0 is smaller",
    ),
    no_points("infinite coordinates", _points(300, np.inf), "all 300 received have a NaN"),
    no_points(
        "every intensity NaN",
        np.column_stack([np.full((200, 3), 5.0), np.full(200, np.nan), np.zeros(200)]).astype(np.float32),
        "all 200 received have a NaN or infinite x, y, z or intensity",
    ),
    no_points(
        "more points than lidar.max_points",
        np.tile(np.float32([5.0, 1.0, 0.0, 10.0, 0.0]), (300_001, 1)),
        "more than lidar.max_points",
    ),
    fast(image_case("encoding 16UC1", _set(encoding="16UC1"), "16UC1")),
    image_case("unknown encoding", _set(encoding="yuv422_weird"), "yuv422_weird"),
    image_case("short data", lambda m: setattr(m, "data", m.data[: len(m.data) // 2]), "bytes"),
    image_case("step smaller than a row", _set(step=10), "step"),
    image_case("zero width", _set(width=0), "width"),
    fast(image_case("twice the calibrated size", _resized, "but its calibration is for")),
    image_case("empty encoding", _set(encoding=""), "unsupported image encoding ''"),
    image_case("zero height", _set(height=0), "image has no pixels"),
    image_case("encoding 32FC1", _set(encoding="32FC1"), "32FC1"),
    image_case("encoding bayer_rggb8", _set(encoding="bayer_rggb8"), "bayer_rggb8"),
    image_case("no data", _set(data=array.array("B")), "image data has 0 bytes"),
    image_case("height 100000 for the data of 225 rows", _set(height=100_000), "image data has"),
    image_case("big-endian 8-bit image", _set(is_bigendian=1, data=array.array("B", bytes(10))), "bytes"),
    fast(info_case("uncalibrated K", _set(k=[0.0] * 9), "not a valid pinhole matrix")),
    info_case("fx 1e-12", _k(fx=1e-12), "fx=1e-12"),
    info_case("principal point far off", _k(cx=1e7), "K is degenerate"),  # logged as one kind with fx 1e-12
    info_case("NaN in K", _k(fx=float("nan")), "not a valid pinhole matrix"),
    info_case("K[2,2] not 1", _k(k22=0.5), "not a valid pinhole matrix"),
    info_case("zero image size", _set(width=0, height=0), "no image size"),
    info_case("negative fy", _set(k=[1266.0, 0.0, 816.0, 0.0, -1266.0, 491.0, 0.0, 0.0, 1.0]), "not a valid pinhole"),
    info_case("infinite fx", _k(fx=float("inf")), "not a valid pinhole matrix"),
    info_case("principal point far negative", _k(cx=-1e7), "K is degenerate"),
    info_case("zero height only", _set(height=0), "no image size"),
    info_case("fx 0", _k(fx=0.0), "not a valid pinhole matrix"),
    # stamps last: the future and the backward jump start new timelines
    fast(stamp_case("an image without a stamp", _zero_stamped_image, "zero_stamp", "message has no stamp")),
    stamp_case(
        "a sweep without a stamp",
        lambda p, ns: _with_images(p, ns, _cloud(p, ns, header=build.header("lidar_top", 0))),
        "zero_stamp",
        "message has no stamp",
    ),
    stamp_case(
        "the last sweep's stamp again", lambda p, ns: _stamped(p, ns, ns - STEP_NS), "lidar_duplicate", "duplicate"
    ),
    stamp_case(
        "a camera's stamp going backwards",
        lambda p, ns: (_stamped(p, ns, ns), p.images[0].publish(p.image_msgs(ns - 20 * STEP_NS)[0])),
        "camera_stamp_backwards",
        "backwards",
    ),
    stamp_case(
        "LiDAR 0.5 s ahead of the cameras",
        lambda p, ns: _stamped(p, ns - 5 * STEP_NS - STEP_NS // 2, ns),  # run with max_camera_lidar_delay 0.05
        "camera_stale",
        "stale",
    ),
    fast(
        stamp_case(
            "stamped 11 days ahead",
            lambda p, ns: _stamped(p, time.time_ns() + 11 * 86400 * 10**9, time.time_ns() + 11 * 86400 * 10**9),
            "stamp_in_future",
            "ahead of now",
        )
    ),
    stamp_case(
        "stamps 500 s back",
        lambda p, ns: _stamped(p, ns - 500 * 10**9, ns - 500 * 10**9),
        "lidar_stamp_backwards",
        "backwards",
    ),
)

COMPRESSED_CORPUS: tuple[Case, ...] = (
    fast(compressed_case("random bytes", _set(data=array.array("B", bytes(range(256)) * 8)), "could not be decoded")),
    compressed_case("truncated JPEG", lambda m: setattr(m, "data", m.data[:100]), "could not be decoded"),
    compressed_case("no data", _set(data=array.array("B")), "has no data"),
    compressed_case("format webp", _set(format="webp"), "unsupported compressed image format 'webp'"),
    fast(
        compressed_case(
            "PNG declaring 16000x9000",
            _set(format="png", data=array.array("B", _png_header(16000, 9000))),
            "16000x9000",
        )
    ),
    compressed_case(
        "PNG header without pixels",
        _set(format="png", data=array.array("B", _png_header(400, 225))),
        "could not be decoded",
    ),
    compressed_case("JPEG twice the calibrated size", _compressed_resized, "but its calibration is for"),
)


@dataclass(frozen=True)
class Legal:
    """A legal but unusual input: it must come out as a frame with no camera masked and no fault
    counted, and the node must say once, at INFO, what it converted."""

    category: str
    name: str
    send: Callable[[Any, int], None]
    says: str
    fast: bool = False


def _camera0_as(make: Callable[[np.ndarray, Any], Any]) -> Callable[[Any, int], None]:
    def send(pub: Any, ns: int) -> None:
        msgs = pub.image_msgs(ns)
        msgs[0] = make(pub.frame.cameras[0].image_bgr, msgs[0].header)
        for p, m in zip(pub.images, msgs, strict=True):
            p.publish(m)
        pub.lidar.publish(pub.cloud(ns))

    return send


def _padded(bgr: np.ndarray, hdr: Any) -> Any:
    h, w, _ = bgr.shape
    rows = np.zeros((h, w * 3 + 64), np.uint8)
    rows[:, : w * 3] = bgr.reshape(h, -1)
    msg = build.image_msg(rows, hdr, "bgr8")
    msg.width, msg.step = w, w * 3 + 64
    return msg


def _rgba(bgr: np.ndarray, hdr: Any) -> Any:
    rgba = np.concatenate([bgr[..., ::-1], np.full((*bgr.shape[:2], 1), 255, np.uint8)], axis=2)
    return build.image_msg(rgba, hdr, "rgba8")


def _cloud_as(make: Callable[[Any, int], Any]) -> Callable[[Any, int], None]:
    return lambda pub, ns: _with_images(pub, ns, make(pub, ns))


def _float64_cloud(pub: Any, ns: int) -> Any:
    pts = pub.frame.points
    return build.pointcloud2_msg(
        pts, ("x", "y", "z", "intensity", "ring"), build.header("lidar_top", ns), [np.float64] * 4 + [np.uint16]
    )


def _organised_cloud(pub: Any, ns: int) -> Any:
    msg = pub.cloud(ns, pub.frame.points[: len(pub.frame.points) // 2 * 2])
    msg.height, msg.width = 2, msg.width // 2
    msg.row_step = msg.width * msg.point_step
    return msg


def _big_endian_cloud(pub: Any, ns: int) -> Any:
    msg = pub.cloud(ns)
    fields = [(f.name, f.offset, f.datatype) for f in msg.fields]
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(-1, msg.point_step).copy()
    for _, offset, datatype in fields:
        size = 2 if datatype == 4 else 4
        raw[:, offset : offset + size] = raw[:, offset : offset + size][:, ::-1]
    msg.data, msg.is_bigendian = array.array("B", raw.tobytes()), True
    return msg


def _mono(bgr: np.ndarray, hdr: Any) -> Any:
    return build.image_msg(bgr.mean(axis=2).astype(np.uint8), hdr, "mono8")


LEGAL: tuple[Legal, ...] = (
    Legal("Image", "mono8", _camera0_as(_mono), "'mono8' converted to bgr8", fast=True),
    Legal("Image", "rgba8", _camera0_as(_rgba), "'rgba8' converted to bgr8"),
    Legal("Image", "rows padded by 64 bytes", _camera0_as(_padded), "rows padded to"),
    Legal("PointCloud2", "float64 fields", _cloud_as(_float64_cloud), "intensity float64 read as float32", fast=True),
    Legal("PointCloud2", "organised, 2 rows", _cloud_as(_organised_cloud), "organised 2x"),
    Legal("PointCloud2", "big-endian data flagged so", _cloud_as(_big_endian_cloud), "big-endian values byte-swapped"),
)


# TF, against a multi-sweep node (engines/voxelnet, 5 sweeps): each sweep's pose is the /tf odom ->
# lidar_top at its stamp, the ego driving +x at EGO_SPEED. A bad pose must never place the past sweeps.
ODOM, EGO_SPEED = "odom", 10.0  # m/s


def publish_pose(
    pub: Any, ns: int, dx: float = 0.0, rotation: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0), x: float | None = None
) -> None:
    """odom -> lidar_top at ``ns`` on pub.tf: the ego's pose then, moved ``dx`` (or at ``x``)."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    t = TransformStamped()
    t.header = build.header(ODOM, ns)
    t.child_frame_id = "lidar_top"
    t.transform.translation.x = (EGO_SPEED * ns * 1e-9 if x is None else x) + dx
    t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = rotation
    pub.tf.publish(TFMessage(transforms=[t]))


def tf_case(name: str, pose: Callable[[Any, int], None], counter: str, says: str) -> Case:
    def send(pub: Any, ns: int) -> None:
        pose(pub, ns)
        _with_images(pub, ns, pub.cloud(ns))

    return Case("TF", name, send, counter, says)


NO_POSE = "no TF odom -> lidar_top for the current sweep"
TF_CORPUS: tuple[Case, ...] = (
    fast(tf_case("no transform at the sweep's stamp", lambda p, ns: None, "sweeps_without_pose", NO_POSE)),
    tf_case("the newest transform 2 s before the sweep", lambda p, ns: publish_pose(p, ns - 2 * 10**9),
            "sweeps_without_pose", NO_POSE),
    # (a quaternion of norm 2 is not a fault: tf2 normalises it on the way in, as core/sensors does)
    tf_case("an all-zero quaternion", lambda p, ns: publish_pose(p, ns, rotation=(0.0, 0.0, 0.0, 0.0)),
            "sweeps_without_pose", "TF_DENORMALIZED_QUATERNION"),
    tf_case("a NaN translation", lambda p, ns: publish_pose(p, ns, x=float("nan")),
            "sweeps_without_pose", "TF_NAN_INPUT"),
    fast(tf_case("the pose jumps 500 m in 0.1 s", lambda p, ns: publish_pose(p, ns, dx=500.0),
                 "implausible_ego_motion", "m/s, over 70 m/s")),
)  # fmt: skip
