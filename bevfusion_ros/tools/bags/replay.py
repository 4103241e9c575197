"""A rosbag2 replayed through the perception node's own code, deterministically, plus readers for
the rest of what a bag can hold: ground truth and the node's recorded outputs.

Replay: messages in log-time order feed the node's sync policy (``core.sync``) with the bag's log
time as the clock, so a sweep waits ``camera_wait`` of *recorded* time for its images and every
sweep becomes a frame: no DDS, no wall clock, no frame dropped because the model was busy. The
frames then go through ``ros.frame_decode`` like the node's inference thread.

Ground truth and recorded outputs are grouped by header stamp (several topics share one stamp:
boxes and one grid per map class) and walked in stamp order with ``StampCursor``.

A read error part-way (a corrupt chunk) surfaces as one ``BagError`` naming the bag and how far it
got; the caller keeps what was read before it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BagError, BevFusionError, ConfigError, MessageError
from bevfusion_ros.core.model import FULL, Grid, ModelSpec
from bevfusion_ros.core.perception.config import PerceptionConfig
from bevfusion_ros.core.perception.sync import SyncedFrame, make_sync
from bevfusion_ros.core.perception.timing import PERCEPTION_NODE, PERCEPTION_NODE_PATH, FrameTiming
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation
from bevfusion_ros.core.resources import config_file
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.core.yamlfile import load_yaml
from bevfusion_ros.ros.build import stamp_ns
from bevfusion_ros.tools.bags.io import LogWindow
from bevfusion_ros.tools.bags.layout import GT_MAP_PREFIX, GT_OBJECTS_TOPIC, GT_TOPIC

T = TypeVar("T")
NODE = PERCEPTION_NODE_PATH
GROUP_WINDOW_NS = 500_000_000  # messages of one stamp arrive within this much log time of each other
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
POINTCLOUD = "sensor_msgs/msg/PointCloud2"
DETECTIONS = "vision_msgs/msg/Detection3DArray"
GRID = "nav_msgs/msg/OccupancyGrid"
TIMING = "diagnostic_msgs/msg/DiagnosticArray"


def node_parameters(path: Path) -> dict[str, Any]:
    """The perception node's ``ros__parameters`` from a params file (the one ``ros2 launch`` uses)."""
    raw = load_yaml(path, "parameters file", ConfigError)
    for key in (PERCEPTION_NODE, NODE, "/**"):
        section = raw.get(key) if isinstance(raw, dict) else None
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            return dict(section["ros__parameters"])
    msg = f"parameters file {path} has no '{PERCEPTION_NODE}: ros__parameters:' section"
    raise ConfigError(msg)


@dataclass(frozen=True)
class BagTopics:
    path: Path
    topics: dict[str, tuple[str, int]]  # topic -> (type, message count in the bag's index)
    start_ns: int = 0  # log time of the first message
    end_ns: int = 0  # log time just past the last message

    @classmethod
    def read(cls, path: Path) -> BagTopics:
        from bevfusion_ros.tools.bags.io import open_reader

        reader = open_reader(path)
        try:
            topics: dict[str, tuple[str, int]] = {}
            for c in reader.connections:
                _, n = topics.get(c.topic, (c.msgtype, 0))
                topics[c.topic] = (c.msgtype, n + int(c.msgcount))
            start, end = int(reader.start_time), int(reader.end_time)
        finally:
            reader.close()
        return cls(path, topics, start, end)

    def has(self, topic: str, msgtype: str | None = None) -> bool:
        return topic in self.topics and (msgtype is None or self.topics[topic][0] == msgtype)

    def count(self, topic: str) -> int:
        return self.topics.get(topic, ("", 0))[1]

    def of_type(self, *types: str) -> list[str]:
        return sorted(t for t, (ty, _) in self.topics.items() if ty in types)


def node_values(
    bag: BagTopics,
    cameras: tuple[str, ...],
    params_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """The node's parameters for replaying ``bag``: the params file (default: the shipped
    config/perception.yaml), ``overrides``, the calibration (given, else the file's, else the bag's
    calibration.yaml) and the image transport the bag was recorded with."""
    values = node_parameters(params_file or config_file("perception.yaml"))
    values.update(overrides or {})
    if calibration is not None or not values.get("calibration_file"):
        values["calibration_file"] = str(calibration or bag.path / "calibration.yaml")
    return choose_transport(values, cameras, bag)


def choose_transport(values: dict[str, Any], names: tuple[str, ...], bag: BagTopics) -> dict[str, Any]:
    """With the default topic names, read CompressedImage when the bag has only those (as run-node does)."""
    if values.get("image_topics") or values.get("image_transport", "raw") != "raw":
        return values
    frames = values.get("camera_frames") or [n.lower() for n in names]
    raw = all(bag.has(f"/cameras/{f}/image_raw") for f in frames)
    compressed = all(bag.has(f"/cameras/{f}/image_raw/compressed") for f in frames)
    return {**values, "image_transport": "compressed"} if compressed and not raw else values


def check_sensor_topics(cfg: PerceptionConfig, bag: BagTopics) -> None:
    """One BagError naming every sensor topic the node would need and the bag lacks or types wrongly."""
    image_type = IMAGE_TYPES[1] if cfg.image_transport == "compressed" else IMAGE_TYPES[0]
    problems = []
    if not bag.has(cfg.lidar_topic):
        problems.append(f"no LiDAR topic {cfg.lidar_topic} ({POINTCLOUD})")
    elif not bag.has(cfg.lidar_topic, POINTCLOUD):
        problems.append(f"{cfg.lidar_topic} is {bag.topics[cfg.lidar_topic][0]}, expected {POINTCLOUD}")
    missing = [(n, t) for n, t in zip(cfg.camera_names, cfg.image_topics, strict=True) if not bag.has(t)]
    if missing:
        have = bag.of_type(*IMAGE_TYPES)
        problems.append(
            f"the model needs {len(cfg.image_topics)} cameras, the bag has {len(cfg.image_topics) - len(missing)} of "
            f"them; missing: {', '.join(f'{n} ({t})' for n, t in missing)}; image topics in the bag: "
            f"{', '.join(have) or 'none'}"
        )
    wrong = [
        f"{t} is {bag.topics[t][0]}, expected {image_type}"
        for t in cfg.image_topics
        if bag.has(t) and not bag.has(t, image_type)
    ]
    problems += wrong
    if problems:
        msg = f"bag {bag.path} cannot be replayed: " + "; ".join(problems)
        raise BagError(msg)


def checked_messages(bag: Path, topics: set[str], window: LogWindow | None = None) -> Iterator[tuple[str, Any, int]]:
    """(topic, rosbags message, log time ns) in log-time order, within ``window`` when given; a read or
    decode failure part-way is one BagError saying how far the bag was read."""
    from bevfusion_ros.tools.bags.io import iter_raw, open_reader, read_ahead, typestore

    store = typestore()
    reader = open_reader(bag)
    n, last = 0, None
    try:
        it = read_ahead(iter_raw(reader, topics, window))
        while True:
            try:
                topic, msgtype, ns, raw = next(it)
                msg = store.deserialize_cdr(raw, msgtype)
            except StopIteration:
                return
            except Exception as exc:  # rosbags' ReaderError, a CDR decode error: the bag is damaged here
                where = f"after {n} messages (log time {last} ns)" if last is not None else "at its first message"
                text = f"reading bag {bag} failed {where}: {type(exc).__name__}: {exc}"
                raise BagError(text) from exc
            n, last = n + 1, ns
            yield topic, msg, ns
    finally:
        reader.close()


@dataclass(frozen=True)
class ReplayFrame:
    frame: SyncedFrame
    rig: CameraRig | None  # a rig to apply before this frame (a CameraInfo differed), else None


class SensorReplay:
    """The bag's sensor topics through the node's sync policy; ``counts`` says what happened."""

    def __init__(self, bag: Path, cfg: PerceptionConfig, rig: CameraRig, window: LogWindow | None = None) -> None:
        self.bag, self.cfg, self.rig, self.window = bag, cfg, rig, window
        self._counts: Counter[str] = Counter()
        self._sync: Any = None
        self.read: Counter[str] = Counter()  # messages read per topic

    @property
    def counts(self) -> Counter[str]:
        """What happened so far: the replay's own counts and the sync policy's (``sync_`` keys)."""
        sync = self._sync.counts if self._sync is not None else {}
        return self._counts + Counter({f"sync_{k}": v for k, v in sync.items()})

    def frames(self) -> Iterator[ReplayFrame]:
        from bevfusion_ros.ros.frame_decode import rig_with_camera_info

        cfg = self.cfg
        cams = {t: i for i, t in enumerate(cfg.image_topics)}
        infos = {t: i for i, t in enumerate(cfg.camera_info_topics)} if cfg.intrinsics_source == "camera_info" else {}
        sync = self._sync = make_sync(cfg)
        new_rig: CameraRig | None = None
        last_ns = 0
        for topic, msg, ns in checked_messages(self.bag, {*cams, *infos, cfg.lidar_topic}, self.window):
            self.read[topic] += 1
            last_ns = ns
            if topic in infos:
                try:
                    updated = rig_with_camera_info(self.rig, infos[topic], msg)
                except BevFusionError:
                    self._counts["bad_camera_info"] += 1
                    continue
                if updated is not None:
                    self.rig = new_rig = updated
                    self._counts["calibration_updates"] += 1
                continue
            try:
                stamp = stamp_ns(msg.header.stamp)
            except (AttributeError, TypeError):
                self._counts["bad_header"] += 1
                continue
            if stamp <= 0:
                self._counts["zero_stamp"] += 1
                continue
            index = sync.lidar_index if topic == cfg.lidar_topic else cams[topic]
            for f in sync.add(index, stamp, msg, ns):
                yield ReplayFrame(f, new_rig)
                new_rig = None
        for f in sync.finish(last_ns):
            yield ReplayFrame(f, new_rig)


def occupancy(msg: Any) -> tuple[npt.NDArray[np.int8], Grid]:
    """OccupancyGrid (rclpy or rosbags) -> (height, width) int8 cells and the grid they lie on."""
    from bevfusion_ros.ros.build import occupancy_grid_to_array

    info = msg.info
    try:
        cells = occupancy_grid_to_array(msg)
    except ValueError:
        text = f"OccupancyGrid has {len(msg.data)} cells for {info.width}x{info.height}"
        raise BagError(text) from None
    x0, y0, res = float(info.origin.position.x), float(info.origin.position.y), float(info.resolution)
    return cells, Grid(x0, y0, x0 + info.width * res, y0 + info.height * res, res)


def stamped_groups(
    bag: Path, decoders: dict[str, Callable[[Any], Any]], window: LogWindow | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Messages of ``decoders``' topics decoded and grouped by header stamp, roughly in stamp order
    (a group is handed out once the log is ``GROUP_WINDOW_NS`` past its stamp)."""
    groups: dict[int, dict[str, Any]] = {}
    newest = 0
    try:
        for topic, msg, _ in checked_messages(bag, set(decoders), window):
            stamp = stamp_ns(msg.header.stamp)
            groups.setdefault(stamp, {})[topic] = decoders[topic](msg)
            newest = max(newest, stamp)
            for s in sorted(s for s in groups if s < newest - GROUP_WINDOW_NS):
                yield s, groups.pop(s)
    except BagError:  # the bag breaks off: what was read before it still counts
        for s in sorted(groups):
            yield s, groups.pop(s)
        raise
    for s in sorted(groups):
        yield s, groups.pop(s)


@dataclass(frozen=True)
class GroundTruth:
    detections: Detections | None
    map: npt.NDArray[np.bool_] | None  # (K, ny, nx) in the model's map classes order
    map_grid: Grid | None


def with_velocities(det: Detections | None, velocities: npt.NDArray[np.float32] | None) -> Detections | None:
    """The boxes of a Detection3DArray with the velocities of the DetectedObjects of the same stamp
    (the same boxes in the same order; a count that differs leaves the velocities unknown)."""
    if det is None or velocities is None or len(velocities) != len(det):
        return det
    return replace(det, velocities=velocities)


def ground_truth(
    bag: Path, spec: ModelSpec, with_map: bool, window: LogWindow | None = None
) -> Iterator[tuple[int, GroundTruth]]:
    from bevfusion_ros.ros import convert

    classes = spec.map.classes if spec.map is not None and with_map else ()
    decoders: dict[str, Callable[[Any], Any]] = {
        GT_TOPIC: lambda m: convert.detection3d_array_to_detections(m, spec.class_names),
        GT_OBJECTS_TOPIC: convert.detected_objects_velocities,
    }
    decoders.update({GT_MAP_PREFIX + c: occupancy for c in classes})
    for stamp, g in stamped_groups(bag, decoders, window):
        layers = [v for c in classes if (v := g.get(GT_MAP_PREFIX + c)) is not None]
        have = bool(classes) and len(layers) == len(classes)
        yield (
            stamp,
            GroundTruth(
                with_velocities(g.get(GT_TOPIC), g.get(GT_OBJECTS_TOPIC)),
                np.stack([cells > 50 for cells, _ in layers]) if have else None,
                layers[0][1] if have else None,
            ),
        )


@dataclass(frozen=True)
class RecordedFrame:
    detections: Detections
    segmentation: Segmentation | None
    timings_ms: dict[str, float]
    mode: str = FULL  # the sensors the frame ran on (core.model.SENSOR_MODES)


def recorded_topics(spec: ModelSpec, node: str = NODE) -> dict[str, str]:
    topics = {f"{node}/detections": DETECTIONS, f"{node}/timing": TIMING}
    topics.update({f"{node}/map/{c}": GRID for c in (spec.map.classes if spec.map else ())})
    return topics


def recorded_outputs(
    bag: Path, spec: ModelSpec, node: str = NODE, window: LogWindow | None = None
) -> Iterator[tuple[int, RecordedFrame]]:
    """The node's published outputs, one RecordedFrame per LiDAR stamp that has detections."""
    from bevfusion_ros.ros import convert

    def timing(m: Any) -> FrameTiming | None:
        try:
            return FrameTiming.decode({v.key: v.value for s in m.status for v in s.values})
        except MessageError:
            return None

    classes = spec.map.classes if spec.map else ()
    decoders: dict[str, Callable[[Any], Any]] = {
        f"{node}/detections": lambda m: convert.detection3d_array_to_detections(m, spec.class_names),
        f"{node}/objects": convert.detected_objects_velocities,
        f"{node}/timing": timing,
    }
    decoders.update({f"{node}/map/{c}": occupancy for c in classes})
    for stamp, g in stamped_groups(bag, decoders, window):
        det = with_velocities(g.get(f"{node}/detections"), g.get(f"{node}/objects"))
        if det is None:
            continue
        layers = [v for c in classes if (v := g.get(f"{node}/map/{c}")) is not None]
        seg = None
        if classes and len(layers) == len(classes):
            probs = np.stack([np.where(cells < 0, 0, cells).astype(np.float32) / 100.0 for cells, _ in layers])
            seg = Segmentation(probs, classes, layers[0][1])
        t = g.get(f"{node}/timing")
        yield stamp, RecordedFrame(det, seg, t.stages_ms if t else {}, t.mode if t else FULL)


class StampCursor(Generic[T]):
    """Looks items up by stamp in a stream sorted by stamp, holding one item: asking for stamps in
    increasing order walks the stream once. A BagError from the stream ends it and is kept."""

    def __init__(self, items: Iterator[tuple[int, T]]) -> None:
        self._items = items
        self._head: tuple[int, T] | None = None
        self._done = False
        self.error: BagError | None = None

    def _peek(self) -> tuple[int, T] | None:
        if self._head is None and not self._done:
            try:
                self._head = next(self._items)
            except StopIteration:
                self._done = True
            except BagError as exc:
                self.error, self._done = exc, True
        return self._head

    def get(self, stamp: int, tolerance_ns: int = 0) -> T | None:
        """The item stamped ``stamp`` (or within ``tolerance_ns`` of it, the first such). The item stays
        held: a camera-anchored frame and the full frame of the sweep that ends it may share one."""
        while (head := self._peek()) is not None and head[0] < stamp - tolerance_ns:
            self._head = None
        if head is not None and abs(head[0] - stamp) <= tolerance_ns:
            return head[1]
        return None

    def __iter__(self) -> Iterator[tuple[int, T]]:
        while (head := self._peek()) is not None:
            self._head = None
            yield head
