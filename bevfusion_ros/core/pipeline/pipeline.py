"""The stage-graph runtime: walks the model YAML's stages in order, runs ONNX stages in a backend and
runtime stages (image pre-processing, bevpool, and the LiDAR front ends: pillarize, or voxelize /
pillar_features / scatter of real exports) in numpy, and times every stage.

Calibration-dependent precompute (image transforms, bevpool indices) happens in ``set_calibration``
once, not per frame. One ``Pipeline`` is not thread-safe; the node runs it from its one inference thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import CalibrationError, InputError
from bevfusion_ros.core.model import (
    CAMERA,
    CAMERA_ONLY,
    FULL,
    LIDAR,
    LIDAR_ONLY,
    ONNX,
    ModelSpec,
    Stage,
    StageKind,
    TensorSpec,
)
from bevfusion_ros.core.pipeline.backend import Backend, create_backend
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation, decode_heads
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize
from bevfusion_ros.core.pipeline.voxels import Voxels, pillar_features, scatter, voxelize
from bevfusion_ros.core.sensors.rig import CameraRig

Tensors = dict[str, npt.NDArray[np.generic]]
BackendMaker = Callable[[ModelSpec, Stage], Backend]


@dataclass(frozen=True)
class FrameResult:
    detections: Detections
    segmentation: Segmentation | None
    timings_ms: dict[str, float]  # per stage, plus "postprocess" and "total"
    points_used: int
    tensors: Tensors = field(default_factory=dict)  # every intermediate tensor when keep_tensors=True
    # what a voxelize stage's caps cut off this frame (mmcv drops them too): voxels beyond max_voxels,
    # points beyond max_points in a kept voxel; empty when nothing was lost
    lidar_dropped: dict[str, int] = field(default_factory=dict)
    mode: str = FULL  # the sensors the frame ran on (core.model.SENSOR_MODES)


def sensor_mode(images: Sequence[object | None], points: object | None) -> str:
    """camera_only without a sweep, lidar_only without any image, else full."""
    if points is None:
        return CAMERA_ONLY
    return LIDAR_ONLY if all(img is None for img in images) else FULL


def runtime_ms(spec: ModelSpec, timings_ms: Mapping[str, float]) -> float:
    """Time the runtime spent in its own stages (pre-processing, bevpool, pillarize, ...) and in
    decoding: the host work around the model, whatever the model YAML calls its stages."""
    own = [s.name for s in spec.stages if s.kind.runtime]
    return float(sum(timings_ms.get(k, 0.0) for k in (*own, "postprocess")))


class Pipeline:
    def __init__(
        self,
        spec: ModelSpec,
        backend: str | BackendMaker = "onnxruntime",
        image_order: str = "bgr",
        **backend_options: object,
    ) -> None:
        self.spec = spec
        self.preprocessor = ImagePreprocessor(spec.image, input_order=image_order)
        if isinstance(backend, str):
            name = backend

            def maker(m: ModelSpec, s: Stage) -> Backend:
                return create_backend(name, m, s, **backend_options)

            backend = maker
        self.backends: dict[str, Backend] = {s.name: backend(spec, s) for s in spec.stages if s.kind == ONNX}
        self.rig: CameraRig | None = None
        self.bevpool: BevPoolIndex | None = None
        self._image_sizes: list[tuple[int, int]] = []

    def activate(self) -> None:
        try:
            for b in self.backends.values():
                b.activate()
        except Exception:
            self.deactivate()
            raise

    def deactivate(self) -> None:
        for b in self.backends.values():
            b.deactivate()

    def __enter__(self) -> Pipeline:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def set_calibration(self, rig: CameraRig) -> None:
        """Precompute everything that depends on calibration and image sizes (once per rig)."""
        if rig.names != self.spec.cameras:
            msg = (
                f"calibration cameras {list(rig.names)} do not match the model's cameras {list(self.spec.cameras)} "
                "(same names, same order)"
            )
            raise CalibrationError(msg)
        sizes = rig.image_sizes()
        transforms = [self.preprocessor.transform(w, h) for w, h in sizes]
        self.bevpool = BevPoolIndex.create(rig, transforms, self.spec.image, self.spec.camera_bev)
        self.rig = rig
        self._image_sizes = sizes

    def _voxel_stage(
        self, stage: Stage, points: npt.ArrayLike, tensors: Tensors, dropped: dict[str, int]
    ) -> tuple[Tensors, int]:
        """voxelize (sweep -> features, num_points, coords), pillar_features and scatter, by position:
        outputs and inputs are named in the model YAML, in that order. What voxelize's caps cut off
        goes into ``dropped``."""
        cfg = stage.voxels
        assert cfg is not None  # the model loader sets it for every voxel-based stage
        names = [t.name for t in stage.outputs]
        if stage.kind is StageKind.VOXELIZE:
            cropped = crop_points(points, self.spec.lidar)
            vox = voxelize(cropped, cfg.grid, cfg.max_points, cfg.max_voxels, cfg.reduce)
            caps = {"voxels_over_max_voxels": vox.dropped_voxels, "points_over_max_points": vox.dropped_points}
            dropped.update({f"{stage.name}.{key}": n for key, n in caps.items() if n})
            # (features, coords) as CUDA-BEVFusion's voxelisation hands them on, or with num_points between
            values = (vox.features, vox.coords) if len(names) == 2 else (vox.features, vox.num_points, vox.coords)
            out = {t.name: v.astype(t.dtype, copy=False) for t, v in zip(stage.outputs, values, strict=True)}
            return out, int(cropped.shape[0])
        ins = [tensors[t.name] for t in stage.inputs]
        if stage.kind is StageKind.PILLAR_FEATURES:
            features, num_points, coords = ins
            vox = Voxels(np.asarray(features, np.float32), np.asarray(num_points, np.int32), np.asarray(coords), 0, 0)
            return {names[0]: pillar_features(vox, cfg.grid, cfg.with_distance)}, 0
        return {names[0]: scatter(ins[0], ins[1], cfg.grid)}, 0

    def _check_images(self, images: Sequence[npt.NDArray[np.uint8] | None]) -> None:
        if len(images) != len(self.spec.cameras):
            msg = f"expected {len(self.spec.cameras)} camera images ({', '.join(self.spec.cameras)}), got {len(images)}"
            raise InputError(msg)
        for name, img, (w, h) in zip(self.spec.cameras, images, self._image_sizes, strict=True):
            if img is None:
                continue
            shape = np.shape(img)
            if len(shape) != 3 or shape[:2] != (h, w):
                msg = f"camera {name}: image is {shape}, but its calibration is for {w}x{h} (HxWx3 expected)"
                raise InputError(msg)

    def __call__(
        self, images: Sequence[npt.NDArray[np.uint8] | None], points: npt.ArrayLike | None, keep_tensors: bool = False
    ) -> FrameResult:
        """Run one frame. A ``None`` image masks that camera: it adds nothing to the camera BEV.

        Without a sweep (``points`` None) the frame runs camera-only, and with every camera masked
        LiDAR-only, where the model was trained so (``modality_dropout``): the missing branch is
        skipped and its BEV features reach the fuser as zeros, as in training. A model trained
        without LiDAR dropout refuses a frame without a sweep (InputError); one without camera
        dropout runs an all-masked frame through the camera branch as before (zero image features).
        """
        if self.rig is None or self.bevpool is None:
            msg = "pipeline has no calibration: call set_calibration(rig) before running frames"
            raise CalibrationError(msg)
        self._check_images(images)
        mode = sensor_mode(images, points)
        trained = self.spec.modality_dropout.allows(mode)
        if mode == CAMERA_ONLY and not trained:
            msg = (
                f"model '{self.spec.name}' was not trained without LiDAR (no modality_dropout.lidar in its YAML): "
                "a frame needs a LiDAR sweep"
            )
            raise InputError(msg)
        missing = {CAMERA_ONLY: LIDAR, LIDAR_ONLY: CAMERA}.get(mode)
        skipped = self.spec.branch(missing) if missing and trained else frozenset()
        timings: dict[str, float] = {}
        tensors: Tensors = {}
        dropped: dict[str, int] = {}
        start = time.perf_counter()
        points_used = 0
        for stage in self.spec.stages:
            if stage.name in skipped:
                continue
            t0 = time.perf_counter()
            if stage.kind is StageKind.IMAGE_PREPROCESS:
                out: Tensors = {stage.outputs[0].name: self.preprocessor(images, len(self.spec.cameras))}
            elif stage.kind is StageKind.PILLARIZE:
                assert points is not None  # a LiDAR stage is skipped without a sweep
                cropped = crop_points(points, self.spec.lidar)
                points_used = int(cropped.shape[0])
                out = {stage.outputs[0].name: pillarize(cropped, self.spec.lidar)}
            elif stage.kind.voxel_based:
                assert points is not None
                out, used = self._voxel_stage(stage, points, tensors, dropped)
                points_used = used if stage.kind is StageKind.VOXELIZE else points_used
            elif stage.kind is StageKind.BEVPOOL:
                feat, depth = (np.asarray(tensors[t.name], np.float32) for t in stage.inputs)
                masked = [i for i, img in enumerate(images) if img is None]
                if masked:
                    feat = feat.copy()
                    feat[:, masked] = 0.0
                out = {stage.outputs[0].name: self.bevpool(feat, depth)}
            else:
                backend = self.backends[stage.name]
                out = backend.infer({t.name: tensors[t.name] if t.name in tensors else _zeros(t) for t in stage.inputs})
            tensors.update(out)
            timings[stage.name] = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        dets, seg = decode_heads(self.spec, tensors)
        timings["postprocess"] = (time.perf_counter() - t0) * 1e3
        timings["total"] = (time.perf_counter() - start) * 1e3
        return FrameResult(dets, seg, timings, points_used, tensors if keep_tensors else {}, dropped, mode)


def _zeros(tensor: TensorSpec) -> npt.NDArray[np.generic]:
    """A skipped branch's BEV features as the fuser sees them in modality-dropout training."""
    return np.zeros(tensor.shape, tensor.dtype)
