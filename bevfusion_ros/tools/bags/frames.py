"""Frames out of a rosbag2 written by make-bag (or recorded on the vehicle with the same topics):
each LiDAR sweep with the nearest-stamped image of every camera, its ground truth and calibration.

Decoding uses the same converters as the node (bevfusion_ros.ros.convert) on rosbags' messages.
Memory stays bounded: only the last two images per camera and the pending sweeps are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

from bevfusion_ros.core.errors import BagError
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.tools.bags.layout import GT_TOPIC, LIDAR_TOPIC, camera_frame, image_topic


@dataclass(frozen=True)
class BagFrame:
    stamp_ns: int
    images: list[npt.NDArray[np.uint8]]
    points: npt.NDArray[np.float32]
    rig: CameraRig
    ground_truth: Detections | None


def bag_rig(bag: Path, names: tuple[str, ...]) -> CameraRig:
    path = bag / "calibration.yaml"
    if not path.is_file():
        msg = f"{bag} has no calibration.yaml (make-bag writes one next to the bag files)"
        raise BagError(msg)
    cams = {c["name"]: c for c in yaml.safe_load(path.read_text())["cameras"]}
    missing = [n for n in names if camera_frame(n) not in cams]
    if missing:
        msg = f"{path} lacks cameras {missing}; it has {sorted(cams)}"
        raise BagError(msg)
    sel = [cams[camera_frame(n)] for n in names]
    return CameraRig.create(
        names,
        [CameraIntrinsics.from_arrays(c["K"], c["width"], c["height"]) for c in sel],
        [np.asarray(c["lidar2cam"]) for c in sel],
    )


def read_frames(bag: Path, names: tuple[str, ...]) -> Iterator[BagFrame]:
    from bevfusion_ros.ros import convert
    from bevfusion_ros.ros.build import stamp_ns
    from bevfusion_ros.ros.frame_decode import xyzi
    from bevfusion_ros.tools.bags.io import iter_raw, open_reader, typestore

    rig = bag_rig(bag, names)
    store = typestore()
    topics = {image_topic(n): i for i, n in enumerate(names)}
    ctopics = {image_topic(n, True): i for i, n in enumerate(names)}
    reader = open_reader(bag)
    present = {c.topic for c in reader.connections}
    if LIDAR_TOPIC not in present:
        msg = f"bag {bag} has no {LIDAR_TOPIC}; topics: {sorted(present)}"
        raise BagError(msg)
    recent: list[list[tuple[int, npt.NDArray[np.uint8]]]] = [[] for _ in names]
    pending: list[tuple[int, npt.NDArray[np.float32]]] = []
    gts: dict[int, Detections] = {}

    def ready(force: bool) -> Iterator[BagFrame]:
        while pending and (force or all(r and r[-1][0] >= pending[0][0] for r in recent)):
            ns, pts = pending.pop(0)
            if not all(recent):
                continue
            imgs = [min(r, key=lambda x: abs(x[0] - ns))[1] for r in recent]
            yield BagFrame(ns, imgs, pts, rig, gts.pop(ns, None))

    try:
        for topic, msgtype, _, raw in iter_raw(reader, {*topics, *ctopics, LIDAR_TOPIC, GT_TOPIC}):
            m = store.deserialize_cdr(raw, msgtype)
            if topic in topics or topic in ctopics:
                img = (
                    convert.image_to_array(m, "bgr", use_distro=False)
                    if topic in topics
                    else convert.compressed_to_array(m, "bgr")
                )
                r = recent[topics.get(topic, ctopics.get(topic, 0))]
                r.append((stamp_ns(m.header.stamp), np.array(img)))
                del r[:-2]
            elif topic == LIDAR_TOPIC:
                pending.append((stamp_ns(m.header.stamp), xyzi(m, use_distro=False)))
            elif topic == GT_TOPIC:
                gts[stamp_ns(m.header.stamp)] = convert.detection3d_array_to_detections(m)
            yield from ready(False)
        yield from ready(True)
    finally:
        reader.close()
