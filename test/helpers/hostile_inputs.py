"""A corpus of malformed and hostile inputs for a live perception node (issue 19): each case publishes
one bad input at a stamp through a frame publisher (test_perception_node's FramePublisher: .images,
.lidar, .info publishers, .image_msgs(ns), .cloud(ns, points), .frame), and names the diagnostics
counter it must raise and the words the node's log line must say. After every case a good frame
must come out: the node recovers."""

from __future__ import annotations

import array
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


CORPUS: tuple[Case, ...] = (
    cloud_case("truncated data", _truncated, "frame_dropped_MessageError", "point cloud data has 100 bytes"),
    cloud_case(
        "no points",
        lambda p, ns: _cloud(p, ns, np.zeros((0, 5), np.float32)),
        "frame_dropped_InputError",
        "no finite points",
    ),
    cloud_case(
        "all NaN",
        lambda p, ns: _cloud(p, ns, np.full((500, 5), np.nan, np.float32)),
        "frame_dropped_InputError",
        "all 500 received are NaN",
    ),
    cloud_case(
        "1e30 coordinates",
        lambda p, ns: _cloud(p, ns, np.full((500, 5), 1e30, np.float32)),
        "frame_dropped_InputError",
        "lies inside lidar.point_cloud_range",
    ),
    cloud_case(
        "big-endian flag on little-endian data",
        _big_endian_flag,
        "frame_dropped_MessageError",
        "plausible only read little-endian",
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
    cloud_case(
        "other frame_id",
        lambda p, ns: _cloud(p, ns, header=build.header("velodyne", ns)),
        "frame_dropped_MessageError",
        "sweep is in frame 'velodyne'",
    ),
    image_case("encoding 16UC1", _set(encoding="16UC1"), "16UC1"),
    image_case("unknown encoding", _set(encoding="yuv422_weird"), "yuv422_weird"),
    image_case("short data", lambda m: setattr(m, "data", m.data[: len(m.data) // 2]), "bytes"),
    image_case("step smaller than a row", _set(step=10), "step"),
    image_case("zero width", _set(width=0), "width"),
    image_case("twice the calibrated size", _resized, "but its calibration is for"),
    image_case("big-endian 8-bit image", _set(is_bigendian=1, data=array.array("B", bytes(10))), "bytes"),
    info_case("uncalibrated K", _set(k=[0.0] * 9), "not a valid pinhole matrix"),
    info_case("fx 1e-12", _k(fx=1e-12), "fx=1e-12"),
    info_case("principal point far off", _k(cx=1e7), "K is degenerate"),  # logged as one kind with fx 1e-12
    info_case("NaN in K", _k(fx=float("nan")), "not a valid pinhole matrix"),
    info_case("K[2,2] not 1", _k(k22=0.5), "not a valid pinhole matrix"),
    info_case("zero image size", _set(width=0, height=0), "no image size"),
)
