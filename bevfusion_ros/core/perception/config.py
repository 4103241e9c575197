"""The perception node's settings: one table of parameters (name, default, description, allowed
values or range) that the ROS layer declares as ROS parameters, and the frozen dataclass the core
uses. Values are validated here once, each error naming the key and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.model import CAMERA_ONLY, ModelSpec
from bevfusion_ros.core.paramspec import ParamSpec, check_values
from bevfusion_ros.core.perception.runner import GPU_PIPELINE_MODES
from bevfusion_ros.core.perception.sync import SYNC_POLICIES
from bevfusion_ros.core.pipeline.backend import registered_backends

IMAGE_TRANSPORTS = ("raw", "compressed")
BACKENDS = registered_backends()
EXTRINSICS_SOURCES = ("file", "tf")
INTRINSICS_SOURCES = ("camera_info", "file")
QOS_RELIABILITIES = ("best_effort", "reliable")


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "", "model YAML (engines/README.md); empty = the bundled reference model"),
    ParamSpec("backend", "onnxruntime", "inference backend: onnxruntime or tensorrt", choices=BACKENDS),
    ParamSpec("backend_threads", 0, "CPU threads per ONNX Runtime session (0 = its default)", (0, 64)),
    ParamSpec("engine_config", "", "tensorrt: engine build config (config/engines/*.yaml); empty = fp16.yaml"),
    ParamSpec("engine_dir", "", "tensorrt: engine directory; empty = engines/build/<variant> of the engine config"),
    ParamSpec("allow_engine_build", False, "tensorrt: build missing or stale engines at configure (takes minutes)"),
    ParamSpec("force_engine_rebuild", False, "tensorrt: rebuild every engine at configure"),
    ParamSpec("build_only", False, "tensorrt: configure (building engines as allowed), then exit"),
    ParamSpec(
        "gpu_pipeline",
        "off",
        "tensorrt: CUDA pre-processing with streams: off, sequential or pipelined",
        choices=GPU_PIPELINE_MODES,
    ),
    ParamSpec("mapped_host_memory", False, "tensorrt: zero-copy mapped host buffers (Jetson: CPU and GPU share DRAM)"),
    ParamSpec("cuda_device", 0, "tensorrt: CUDA device index", (0, 15)),
    ParamSpec("calibration_file", "", "calibration YAML: lidar->camera 4x4 and K per camera (make-bag writes one)"),
    ParamSpec(
        "extrinsics_source",
        "file",
        "where lidar->camera extrinsics come from: file or tf (needs tf2_ros)",
        choices=EXTRINSICS_SOURCES,
    ),
    ParamSpec(
        "intrinsics_source",
        "camera_info",
        "camera matrices from the CameraInfo topics or the calibration file",
        choices=INTRINSICS_SOURCES,
    ),
    ParamSpec("camera_names", [], "camera order; empty = the model's cameras (must match them)"),
    ParamSpec("camera_frames", [], "TF frame per camera; empty = lower-case camera names"),
    ParamSpec("image_topics", [], "image topic per camera; empty = /cameras/<frame>/image_raw[/compressed]"),
    ParamSpec("camera_info_topics", [], "CameraInfo topic per camera; empty = /cameras/<frame>/camera_info"),
    ParamSpec(
        "image_transport",
        "raw",
        "sensor_msgs/Image (raw) or sensor_msgs/CompressedImage (compressed)",
        choices=IMAGE_TRANSPORTS,
    ),
    ParamSpec("lidar_topic", "/lidar/points", "sensor_msgs/PointCloud2 topic"),
    ParamSpec("lidar_frame", "lidar_top", "frame the calibration's lidar->camera transforms start from"),
    ParamSpec("lidar_sweeps", 0, "sweeps densified per frame (current + past); 0 = the model's lidar.sweeps", (0, 20)),
    ParamSpec("odom_frame", "odom", "fixed frame whose TF to the LiDAR at each sweep's stamp moves past sweeps"),
    ParamSpec(
        "sync_policy",
        "lidar_anchored",
        "lidar_anchored (mask stale cameras) or approximate (message_filters)",
        choices=SYNC_POLICIES,
    ),
    ParamSpec("max_camera_lidar_delay", 0.1, "lidar_anchored: newest usable image age vs the sweep (s)", (0.001, 2.0)),
    ParamSpec("camera_wait", 0.05, "lidar_anchored: max wait of a sweep for images stamped after it (s)", (0.0, 1.0)),
    ParamSpec(
        "max_masked_cameras",
        6,
        "frames with more masked cameras than this run LiDAR-only if the model was trained so, else are dropped",
        (0, 6),
    ),
    ParamSpec(
        "lidar_timeout",
        0.3,
        "lidar_anchored: after this long without a sweep the cameras trigger camera-only frames, if the model "
        "was trained without LiDAR (modality_dropout.lidar); 0 = never (s)",
        (0.0, 10.0),
    ),
    ParamSpec("sync_queue_size", 10, "approximate: queue length per input", (1, 200)),
    ParamSpec("sync_slop", 0.06, "approximate: largest stamp spread inside one set (s)", (0.001, 2.0)),
    ParamSpec(
        "qos_reliability",
        "best_effort",
        "input QoS reliability (sensor data QoS is best_effort)",
        choices=QOS_RELIABILITIES,
    ),
    ParamSpec("qos_depth", 5, "input QoS history depth", (1, 100)),
    ParamSpec("publish_markers", True, "publish a visualization_msgs/MarkerArray of the boxes for RViz"),
    ParamSpec("publish_map", True, "publish one nav_msgs/OccupancyGrid per map class"),
    ParamSpec(
        "publish_objects",
        True,
        "publish ~/objects (autoware_perception_msgs/DetectedObjects) where the message package is installed",
    ),
    ParamSpec("class_remap_file", "", "model class -> Autoware label table; empty = config/autoware_class_remap.yaml"),
    ParamSpec("processing_budget_ms", 100.0, "per-frame processing time above which diagnostics warn", (1.0, 10000.0)),
    ParamSpec("diagnostics_period", 1.0, "seconds between diagnostics messages", (0.1, 60.0)),
    ParamSpec("stale_input_timeout", 1.0, "an input silent this long is reported as stale (s)", (0.05, 60.0)),
    ParamSpec(
        "problem_log_interval",
        10.0,
        "seconds between log lines of one kind of input fault (each is counted in diagnostics); 0 logs every one",
        (0.0, 3600.0),
    ),
    ParamSpec("autostart", True, "main(): configure and activate at start (false: wait for lifecycle commands)"),
)


@dataclass(frozen=True)
class PerceptionConfig:
    model: str
    backend: str
    backend_threads: int
    engine_config: str
    engine_dir: str
    allow_engine_build: bool
    force_engine_rebuild: bool
    build_only: bool
    gpu_pipeline: str
    mapped_host_memory: bool
    cuda_device: int
    calibration_file: str
    extrinsics_source: str
    intrinsics_source: str
    camera_names: tuple[str, ...]
    camera_frames: tuple[str, ...]
    image_topics: tuple[str, ...]
    camera_info_topics: tuple[str, ...]
    image_transport: str
    lidar_topic: str
    lidar_frame: str
    lidar_sweeps: int
    odom_frame: str
    sync_policy: str
    max_camera_lidar_delay: float
    camera_wait: float
    max_masked_cameras: int
    lidar_timeout: float
    sync_queue_size: int
    sync_slop: float
    qos_reliability: str
    qos_depth: int
    publish_markers: bool
    publish_map: bool
    publish_objects: bool
    class_remap_file: str
    processing_budget_ms: float
    diagnostics_period: float
    stale_input_timeout: float
    problem_log_interval: float
    autostart: bool

    def with_cameras(self, model_cameras: Sequence[str]) -> PerceptionConfig:
        """Fill the per-camera lists from the model's camera order and check their lengths."""
        names = self.camera_names or tuple(model_cameras)
        if list(names) != list(model_cameras):
            msg = f"camera_names {list(names)} must equal the model's cameras {list(model_cameras)} in order"
            raise ConfigError(msg)
        frames = self.camera_frames or tuple(n.lower() for n in names)
        suffix = "/compressed" if self.image_transport == "compressed" else ""
        images = self.image_topics or tuple(f"/cameras/{f}/image_raw{suffix}" for f in frames)
        infos = self.camera_info_topics or tuple(f"/cameras/{f}/camera_info" for f in frames)
        for key, value in (("camera_frames", frames), ("image_topics", images), ("camera_info_topics", infos)):
            if len(value) != len(names):
                msg = f"{key} has {len(value)} entries; it needs one per camera ({len(names)}: {', '.join(names)})"
                raise ConfigError(msg)
        return _replace(self, camera_names=names, camera_frames=frames, image_topics=images, camera_info_topics=infos)

    def for_model(self, spec: ModelSpec) -> PerceptionConfig:
        """A model that never learned to run without LiDAR gets no camera-only frames (lidar_timeout 0)."""
        return self if spec.modality_dropout.allows(CAMERA_ONLY) else _replace(self, lidar_timeout=0.0)


def _replace(cfg: PerceptionConfig, **changes: Any) -> PerceptionConfig:
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    values.update(changes)
    return PerceptionConfig(**values)


def load_config(values: Mapping[str, Any]) -> PerceptionConfig:
    """Validated config from parameter values; missing keys take their defaults, unknown keys fail."""
    return PerceptionConfig(**check_values(PARAMETERS, values))
