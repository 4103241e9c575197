"""Frames out of a rosbag2 (make-bag's, or a vehicle's with the same topics), assembled exactly as
the perception node assembles them: its parameters (config/perception.yaml), its sync policy on the
bag's clock (``tools.bags.replay``), its frame decoding (``ros.frame_decode``), the calibration from
the bag's calibration.yaml through the one calibration loader; plus each frame's ground truth.

For the tools that need frames rather than a whole evaluation: ``infer --bag``, ``selftest --bag``,
INT8 calibration in ``build-engines --calibration-bag`` and the run summary's picture.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.model import ModelSpec
from bevfusion_ros.core.perception.config import load_config
from bevfusion_ros.core.perception.configure import calibration_rig
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.ros.frame_decode import decode_frame, image_decoder
from bevfusion_ros.tools.bags.layout import GT_TOPIC
from bevfusion_ros.tools.bags.replay import (
    BagTopics,
    GroundTruth,
    SensorReplay,
    StampCursor,
    check_sensor_topics,
    ground_truth,
    node_values,
)


@dataclass(frozen=True)
class BagFrame:
    stamp_ns: int
    images: list[npt.NDArray[np.uint8] | None]  # None: the camera is masked (stale, missing, undecodable)
    points: npt.NDArray[np.float32]
    rig: CameraRig
    ground_truth: Detections | None


def read_frames(bag: Path, spec: ModelSpec) -> Iterator[BagFrame]:
    """Every frame the node would run on, in order; frames it would drop (too many masked cameras)
    and frames without a sweep (the LiDAR lost) are skipped. Problems with the bag or its
    calibration are one BevFusionError before the first frame."""
    topics = BagTopics.read(bag)
    cfg = load_config(node_values(topics, spec.cameras)).with_cameras(spec.cameras)
    check_sensor_topics(cfg, topics)
    replay = SensorReplay(bag, cfg, calibration_rig(cfg))
    decode = image_decoder(cfg.image_transport == "compressed", use_distro=False)
    truth: StampCursor[GroundTruth] | None = None
    if topics.has(GT_TOPIC):
        truth = StampCursor(ground_truth(bag, spec, with_map=False))
    for item in replay.frames():
        decoded = decode_frame(item.frame, decode, cfg.max_masked_cameras, use_distro=False)
        if decoded.dropped is not None or decoded.points is None:  # full frames only: no camera-anchored ones
            continue
        gt = truth.get(item.frame.stamp_ns) if truth is not None else None
        yield BagFrame(
            item.frame.stamp_ns, decoded.images, decoded.points, replay.rig, gt.detections if gt is not None else None
        )
