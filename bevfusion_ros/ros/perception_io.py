"""The perception node's plumbing: setup at configure, subscriptions + sync policy, publishers.

Topics (relative names, so a namespace or remap moves them together):
  in   image_topics[i] (Image or CompressedImage), camera_info_topics[i], lidar_topic
  out  ~/detections (vision_msgs/Detection3DArray), ~/labels (vision_msgs/LabelInfo, latched),
       ~/map/<class> (nav_msgs/OccupancyGrid), ~/markers (MarkerArray), ~/timing (DiagnosticArray,
       stamped with the LiDAR stamp, per-stage ms), /diagnostics (DiagnosticArray)

Outputs carry the LiDAR sweep's stamp and frame. Box centres, sizes (x = length along the heading,
y = width, z = height) and yaw are in the LiDAR frame; class_id is the class name, LabelInfo maps
ids to names. vision_msgs/Detection3D has no velocity field: a model's velocities go out on ~/objects
(autoware_perception_msgs/DetectedObjects, twist in the box frame) and as arrows in ~/markers.
Each OccupancyGrid is the map class's probability x 100, row = y, column = x, origin at the grid's
(xmin, ymin) corner in the LiDAR frame, 0.5 m cells (the model YAML's map grid).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from vision_msgs.msg import Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from bevfusion_ros.core.model import FULL, ModelSpec
from bevfusion_ros.core.perception.config import PerceptionConfig
from bevfusion_ros.core.perception.health import RateMeter
from bevfusion_ros.core.perception.objects import load_class_remap
from bevfusion_ros.core.perception.sync import APPROXIMATE, SensorSync, SyncedFrame, frame_from_set, make_sync
from bevfusion_ros.core.perception.timing import FrameTiming
from bevfusion_ros.core.pipeline.pipeline import FrameResult
from bevfusion_ros.core.resources import config_file
from bevfusion_ros.ros import build, diagnostics, optional
from bevfusion_ros.ros.frame_decode import image_decoder

LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
RESULTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


def sensor_qos(cfg: PerceptionConfig) -> QoSProfile:
    reliability = ReliabilityPolicy.RELIABLE if cfg.qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.qos_depth, reliability=reliability)


# The sync's counters that drop an input or mask a camera, and the line each gets in the log (once
# per kind per problem_log_interval, through the node's ProblemLog): a stamp fault otherwise only
# shows as a frame that never came or a camera masked without a word.
SYNC_FAULTS = {
    "lidar_duplicate": "a sweep stamped like the previous one; dropped",
    "lidar_out_of_order": "a sweep older than the previous one (out of order, under 1 s); dropped",
    "lidar_stamp_backwards": "the LiDAR stamps went back over 1 s (a bag loop or a clock reset): waiting images "
    "dropped, a new timeline starts",
    "camera_stamp_backwards": "{topic}: the image stamps went back over 1 s: its older images dropped",
    "camera_duplicate": "{topic}: an image stamped like an earlier one; ignored",
    "stamp_backwards": "{topic}: stamps went back over 1 s: every queue cleared, a new timeline starts",
    "duplicate": "{topic}: a message stamped like an earlier one replaced it",
    "camera_stale": "camera(s) {cameras} masked: no image within max_camera_lidar_delay of the sweep",
    "camera_missing": "camera(s) {cameras} masked: no image received yet",
}


class Inputs:
    """Subscriptions and the sync policy; calls ``offer(SyncedFrame)`` for each complete frame."""

    def __init__(
        self,
        node: Node,
        cfg: PerceptionConfig,
        spec: ModelSpec,
        offer: Callable[[SyncedFrame], None],
        on_camera_info: Callable[[int, Any], None],
        problem: Callable[[str, str], None],
    ) -> None:
        self.node, self.cfg, self.offer, self.problem = node, cfg, offer, problem
        self.rates = {t: RateMeter() for t in (*cfg.image_topics, cfg.lidar_topic)}
        self.compressed = cfg.image_transport == "compressed"
        self.image = image_decoder(self.compressed)  # message -> HxWx3 bgr, as the pipeline reads it
        image_cls = CompressedImage if self.compressed else Image
        qos = sensor_qos(cfg)
        n = len(cfg.image_topics)
        self.subs: list[Any] = []
        self.timer: Any = None
        self.sync: SensorSync | None = None
        self.mf_sync: Any = None
        mf = optional.message_filters() if cfg.sync_policy == APPROXIMATE else None
        if mf is not None:
            # message_filters' own synchroniser where the distribution provides it
            mf_subs = [mf.Subscriber(node, image_cls, t, qos_profile=qos) for t in cfg.image_topics]
            mf_subs.append(mf.Subscriber(node, PointCloud2, cfg.lidar_topic, qos_profile=qos))
            for i, (s, t) in enumerate(zip(mf_subs, (*cfg.image_topics, cfg.lidar_topic), strict=True)):
                s.registerCallback(lambda m, t=t, i=i: self._tick(t, m))
            self.mf_sync = mf.ApproximateTimeSynchronizer(mf_subs, cfg.sync_queue_size, cfg.sync_slop)
            self.mf_sync.registerCallback(self._on_mf_set)
            self.subs.extend(s.sub for s in mf_subs)
        else:
            self.sync = make_sync(cfg)
            if self.sync.wait_ns is not None:
                period = max(0.005, cfg.camera_wait / 2) if cfg.camera_wait > 0 else 0.05
                self.timer = node.create_timer(period, self._poll)
            for i, t in enumerate(cfg.image_topics):
                self.subs.append(node.create_subscription(image_cls, t, lambda m, i=i: self._on_input(i, m), qos))
            self.subs.append(
                node.create_subscription(PointCloud2, cfg.lidar_topic, lambda m: self._on_input(n, m), qos)
            )
        if cfg.intrinsics_source == "camera_info":
            for i, t in enumerate(cfg.camera_info_topics):
                self.subs.append(node.create_subscription(CameraInfo, t, lambda m, i=i: on_camera_info(i, m), qos))

    @property
    def sync_counts(self) -> dict[str, int]:
        return dict(self.sync.counts) if self.sync is not None else {}

    @property
    def masked_per_camera(self) -> list[int]:
        return self.sync.masked_per_camera if self.sync is not None else []

    def _tick(self, topic: str, msg: Any) -> None:
        self.rates[topic].tick()

    def _on_input(self, index: int, msg: Any) -> None:
        n = len(self.cfg.image_topics)
        topic = self.cfg.lidar_topic if index == n else self.cfg.image_topics[index]
        self.rates[topic].tick()
        try:
            stamp = build.stamp_ns(msg.header.stamp)
        except (AttributeError, TypeError) as exc:
            self.problem("bad_header", f"{topic}: {exc}")
            return
        if stamp <= 0:
            self.problem("zero_stamp", f"{topic}: message has no stamp; dropped")
            return
        if self.sync is not None:
            sync = self.sync
            self._offer_all(lambda: sync.add(index, stamp, msg, time.monotonic_ns()), topic)

    def _poll(self) -> None:
        if self.sync is not None:
            sync = self.sync
            self._offer_all(lambda: sync.poll(time.monotonic_ns()), "")

    def _offer_all(self, step: Callable[[], list[SyncedFrame]], topic: str) -> None:
        """Run one sync step, report the faults it counted, offer the frames it completed."""
        assert self.sync is not None
        counts, masked = dict(self.sync.counts), self.sync.masked_per_camera
        frames = step()
        newly_masked = [
            name
            for name, before, after in zip(self.cfg.camera_names, masked, self.sync.masked_per_camera, strict=False)
            if after > before
        ]
        for cause, text in SYNC_FAULTS.items():
            if self.sync.counts.get(cause, 0) > counts.get(cause, 0):
                self.problem(cause, text.format(topic=topic, cameras=", ".join(newly_masked) or "?"))
        for f in frames:
            self.offer(f)

    def _on_mf_set(self, *msgs: Any) -> None:
        self.offer(frame_from_set([(build.stamp_ns(m.header.stamp), m) for m in msgs]))

    def destroy(self) -> None:
        for s in self.subs:
            self.node.destroy_subscription(s)
        if self.timer is not None:
            self.node.destroy_timer(self.timer)
        self.subs, self.timer = [], None


class Outputs:
    """The node's publishers, lifecycle publishers: made at configure, enabled while active."""

    def __init__(self, node: LifecycleNode, cfg: PerceptionConfig, spec: ModelSpec) -> None:
        self.node, self.cfg, self.spec = node, cfg, spec
        pub = node.create_lifecycle_publisher
        self.detections = pub(Detection3DArray, "~/detections", RESULTS)
        self.labels = pub(LabelInfo, "~/labels", LATCHED)
        self.markers = pub(MarkerArray, "~/markers", RESULTS) if cfg.publish_markers else None
        self.timing = pub(DiagnosticArray, "~/timing", RESULTS)
        self.grids: dict[str, Any] = {}
        if cfg.publish_map and spec.map is not None:
            self.grids = {c: pub(OccupancyGrid, f"~/map/{c}", RESULTS) for c in spec.map.classes}
        self.objects, self.remap, self._autoware = None, None, optional.autoware_perception_msgs()
        if cfg.publish_objects:
            self.remap = load_class_remap(cfg.class_remap_file or config_file("autoware_class_remap.yaml"),
                                          spec.class_names)  # fmt: skip
            if self._autoware is None:
                node.get_logger().warning(
                    "publish_objects: autoware_perception_msgs is not installed, so ~/objects is off "
                    "(~/detections carries the boxes; their velocities only in ~/markers)"
                )
            else:
                self.objects = pub(self._autoware.DetectedObjects, "~/objects", RESULTS)

    def publish_labels(self) -> None:
        """The class names (latched); once enabled, i.e. on activate."""
        now = self.node.get_clock().now().nanoseconds
        spec = self.spec
        self.labels.publish(build.label_info_msg(spec.class_names, spec.post.score_threshold, build.header("", now)))

    def publish(self, frame: SyncedFrame, result: FrameResult, frame_id: str) -> None:
        hdr = build.header(frame_id, frame.stamp_ns)
        self.detections.publish(build.detections_msg(result.detections, hdr))
        if self.objects is not None and self.remap is not None and self._autoware is not None:
            self.objects.publish(build.detected_objects_msg(result.detections, hdr, self.remap, self._autoware))
        if self.markers is not None:
            self.markers.publish(build.detection_markers_msg(result.detections, hdr))
        seg = result.segmentation
        if seg is not None and self.grids:
            g = seg.grid
            for k, c in enumerate(seg.classes):
                grid = build.occupancy_grid_msg(seg.probabilities[k], g.resolution, (g.xmin, g.ymin), hdr)
                self.grids[c].publish(grid)

    def publish_timing(
        self, frame: SyncedFrame, result: FrameResult, host_ms: float, latency_ms: float, now_ns: int, masked: int
    ) -> None:
        timing = FrameTiming(
            stages_ms=dict(result.timings_ms),
            host_ms=host_ms,
            latency_ms=latency_ms,
            stamp_age_ms=(now_ns - frame.stamp_ns) / 1e6,
            camera_skew_ms=frame.max_skew_ns() / 1e6,
            masked_cameras=masked,
            points=result.points_used,
            detections=len(result.detections),
            mode=result.mode,
        )
        # a degraded frame (a sensor lost) is flagged here and by the node's "sensor modes" diagnostics
        level, what = (diagnostics.OK, "frame") if result.mode == FULL else (diagnostics.WARN, f"{result.mode} frame")
        status = diagnostics.status("bevfusion: timing", self.spec.name, level, what, timing.encode())
        self.timing.publish(diagnostics.array(build.header("", frame.stamp_ns), [status]))

    def destroy(self) -> None:
        pubs = [self.detections, self.labels, self.markers, self.timing, self.objects, *self.grids.values()]
        for p in pubs:
            if p is not None:
                self.node.destroy_publisher(p)
        self.grids = {}
