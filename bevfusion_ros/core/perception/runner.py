"""What the node's inference thread drives: frames in, (tag, result) pairs out.

* ``DirectRunner``: the stage-by-stage ``Pipeline`` (any backend; numpy pre-processing). Each call
  returns its own frame's result.
* ``StreamedRunner``: TensorRT engines inside ``StreamedPipeline`` (CUDA kernels, two streams).
  Pipelined, a call returns the *previous* frame's result with that frame's tag, so the caller
  publishes it with the right stamp; ``flush`` hands out a frame left waiting when the sensors stop.
  Sequential, it returns its own result like ``DirectRunner`` (the comparison switch). A frame
  without a sensor (camera-only, LiDAR-only) runs stage by stage on the same engines after the
  waiting frame is handed out: the streamed pipeline's slots hold full frames only.

Both are used from one thread; the streamed runner keeps the CUDA context pushed only while it works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.model import FULL, ONNX
from bevfusion_ros.core.pipeline.pipeline import FrameResult, Pipeline, sensor_mode
from bevfusion_ros.core.sensors.rig import CameraRig

Tag = TypeVar("Tag")
Images = Sequence[npt.NDArray[np.uint8] | None]
GPU_PIPELINE_MODES = ("off", "sequential", "pipelined")


class DirectRunner(Generic[Tag]):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @property
    def pending(self) -> bool:
        return False

    def set_calibration(self, rig: CameraRig) -> list[tuple[Tag, FrameResult]]:
        self.pipeline.set_calibration(rig)
        return []

    def run(self, images: Images, points: npt.ArrayLike | None, tag: Tag) -> list[tuple[Tag, FrameResult]]:
        return [(tag, self.pipeline(images, points))]

    def flush(self) -> list[tuple[Tag, FrameResult]]:
        return []

    def close(self) -> None:
        self.pipeline.deactivate()


class StreamedRunner(Generic[Tag]):
    def __init__(self, pipeline: Pipeline, rig: CameraRig, pipelined: bool, image_order: str = "bgr") -> None:
        from bevfusion_ros.core.backends.tensorrt import TensorRTBackend

        engines = {s.name: pipeline.backends[s.name] for s in pipeline.spec.stages if s.kind == ONNX}
        self.backends = {n: b for n, b in engines.items() if isinstance(b, TensorRTBackend)}
        if len(self.backends) != len(engines):
            msg = "gpu_pipeline needs backend 'tensorrt' (the streamed pipeline runs TensorRT engines)"
            raise ConfigError(msg)
        self.pipeline = pipeline
        self.context = next(iter(self.backends.values())).context
        self.pipelined = pipelined
        self.image_order = image_order
        self._tags: list[Tag] = []
        self._streamed: Any = None
        self._make(rig)

    def _make(self, rig: CameraRig) -> None:
        from bevfusion_ros.core.cuda.streamed import StreamedPipeline

        with self.context.active():
            if self._streamed is not None:
                self._streamed.free()
            self._streamed = StreamedPipeline(self.pipeline.spec, self.backends, rig, self.pipelined, self.image_order)

    @property
    def pending(self) -> bool:
        return bool(self._tags)

    def set_calibration(self, rig: CameraRig) -> list[tuple[Tag, FrameResult]]:
        done = self.flush()  # the waiting frame belongs to the old geometry
        self._make(rig)
        return done

    def run(self, images: Images, points: npt.ArrayLike | None, tag: Tag) -> list[tuple[Tag, FrameResult]]:
        if sensor_mode(images, points) != FULL:
            return [*self.flush(), (tag, self.pipeline(images, points))]
        with self.context.active():
            result = self._streamed.submit(images, points)
        self._tags.append(tag)
        if result is None:
            return []
        return [(self._tags.pop(0), result)]

    def flush(self) -> list[tuple[Tag, FrameResult]]:
        if not self._tags:
            return []
        with self.context.active():
            result = self._streamed.flush()
        tag = self._tags.pop(0)
        return [] if result is None else [(tag, result)]

    def close(self) -> None:
        if self._streamed is not None:
            with self.context.active():
                self._streamed.free()
            self._streamed = None
        self.pipeline.deactivate()
