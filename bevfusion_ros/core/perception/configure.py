"""The perception node's configure step without ROS: parameters in, an activated and calibrated
pipeline and its runner out. The node calls it at configure, ``bevfusion-ros evaluate`` for each
replayed run, so both run the same model, rig and backend options."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BevFusionError, ConfigError
from bevfusion_ros.core.model import ModelSpec, load_model
from bevfusion_ros.core.perception.config import PerceptionConfig
from bevfusion_ros.core.perception.runner import DirectRunner, StreamedRunner
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.resources import default_model, engine_config_dir
from bevfusion_ros.core.sensors.calibration import load_calibration
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.core.sensors.sweeps import SweepBuffer
from bevfusion_ros.core.trt.engine_config import EngineConfig, load_engine_config

# (lidar frame, camera frames) -> one lidar->camera 4x4 per camera, e.g. from TF in the ROS layer
ExtrinsicsLookup = Callable[[str, Sequence[str]], Sequence[npt.NDArray[np.float64]]]


def load_setup(
    cfg: PerceptionConfig, lookup_extrinsics: ExtrinsicsLookup | None = None
) -> tuple[PerceptionConfig, ModelSpec, CameraRig]:
    """Model and camera rig for a config; every problem is one BevFusionError."""
    model = cfg.model or default_model()
    if cfg.backend == "tensorrt":
        engines = engine_config(cfg)
        if cfg.model and Path(cfg.model).resolve() != engines.model:
            msg = (
                f"parameter 'model' is {cfg.model} but engine_config {engines.source} builds {engines.model}; "
                "leave 'model' empty with the tensorrt backend or make them agree"
            )
            raise ConfigError(msg)
        model = engines.model
    spec = load_model(model)
    cfg = cfg.with_cameras(spec.cameras).for_model(spec)
    return cfg, spec, calibration_rig(cfg, lookup_extrinsics)


def calibration_rig(cfg: PerceptionConfig, lookup_extrinsics: ExtrinsicsLookup | None = None) -> CameraRig:
    """The camera rig of a config whose per-camera lists are filled in (``with_cameras``): the
    calibration file, with the extrinsics from ``lookup_extrinsics`` where ``extrinsics_source`` is tf."""
    if not cfg.calibration_file:
        msg = "parameter 'calibration_file' is empty: give the calibration YAML (make-bag writes one beside each bag)"
        raise ConfigError(msg)
    calibration = load_calibration(cfg.calibration_file)
    extrinsics = None
    if cfg.extrinsics_source == "tf":
        if lookup_extrinsics is None:
            msg = "parameter 'extrinsics_source' is 'tf' but no TF lookup is available here; use 'file'"
            raise ConfigError(msg)
        extrinsics = lookup_extrinsics(cfg.lidar_frame, cfg.camera_frames)
    return calibration.rig(cfg.camera_names, cfg.camera_frames, extrinsics=extrinsics)


def backend_options(cfg: PerceptionConfig) -> dict[str, Any]:
    """Keyword options for the configured backend."""
    if cfg.backend == "onnxruntime" and cfg.backend_threads:
        return {"threads": cfg.backend_threads}
    if cfg.backend == "tensorrt":
        return tensorrt_options(cfg)
    return {}


def engine_config(cfg: PerceptionConfig) -> EngineConfig:
    if cfg.engine_config:
        return load_engine_config(cfg.engine_config)
    return load_engine_config(engine_config_dir() / "fp16.yaml")


def tensorrt_options(cfg: PerceptionConfig) -> dict[str, Any]:
    """Backend options of the tensorrt backend from the node's parameters."""
    engines = engine_config(cfg)
    return {
        "engine_dir": cfg.engine_dir or str(Path("engines") / "build" / engines.variant),
        "engine_config": engines,
        "allow_build": cfg.allow_engine_build,
        "force_rebuild": cfg.force_engine_rebuild,
        "mapped_host": cfg.mapped_host_memory,
        "device": cfg.cuda_device,
    }


def make_sweeps(cfg: PerceptionConfig, spec: ModelSpec) -> SweepBuffer | None:
    """The sweep buffer a model's LiDAR input needs: None for a single-sweep model without time lag."""
    sweeps = cfg.lidar_sweeps or spec.lidar.sweeps
    if "time_lag" not in spec.lidar.point_features:
        if sweeps > 1:
            msg = (
                f"parameter 'lidar_sweeps' is {sweeps} but model '{spec.name}' reads no time_lag point feature: "
                "it was trained on single sweeps (set 0)"
            )
            raise ConfigError(msg)
        return None
    return SweepBuffer(sweeps, spec.lidar.max_points)


def make_runner(cfg: PerceptionConfig, pipeline: Pipeline, rig: CameraRig) -> DirectRunner[Any] | StreamedRunner[Any]:
    if cfg.gpu_pipeline == "off":
        return DirectRunner(pipeline)
    if cfg.backend != "tensorrt":
        msg = f"parameter 'gpu_pipeline' = '{cfg.gpu_pipeline}' needs backend 'tensorrt' (it is '{cfg.backend}')"
        raise ConfigError(msg)
    return StreamedRunner(pipeline, rig, cfg.gpu_pipeline == "pipelined")


@dataclass(frozen=True)
class Configured:
    cfg: PerceptionConfig  # with the per-camera lists filled in
    spec: ModelSpec
    rig: CameraRig
    pipeline: Pipeline  # activated, calibrated
    runner: DirectRunner[Any] | StreamedRunner[Any]
    geometry_ms: float  # the calibration-dependent precompute
    sweeps: SweepBuffer | None  # densifies the LiDAR input of a multi-sweep model


def configure(cfg: PerceptionConfig, lookup_extrinsics: ExtrinsicsLookup | None = None) -> Configured:
    """The configure step (the node's, and offline replay's): model, rig, activated pipeline, runner.
    Every problem is one BevFusionError, with nothing left activated."""
    cfg, spec, rig = load_setup(cfg, lookup_extrinsics)
    sweeps = make_sweeps(cfg, spec)
    pipeline = Pipeline(spec, cfg.backend, image_order="bgr", **backend_options(cfg))
    pipeline.activate()
    try:
        t0 = time.perf_counter()
        pipeline.set_calibration(rig)
        runner = make_runner(cfg, pipeline, rig)
    except BevFusionError:
        pipeline.deactivate()
        raise
    return Configured(cfg, spec, rig, pipeline, runner, (time.perf_counter() - t0) * 1e3, sweeps)
