"""The model on the GPU with two CUDA streams and two buffer slots, so that frame N+1's upload and
pre-processing run while frame N's engines run.

    pre stream:   [H2D + resize/normalise + pillars  N]  [ ... N+1 ]           ...
    infer stream:                  wait(prep N) [engines + bevpool N, D2H N]  wait(prep N+1) ...

Ordering is by events only: the infer stream waits for ``prep_done[slot]``; the pre stream waits for
``infer_done[slot]`` of the frame two back before overwriting that slot's tensors; the host waits
for ``h2d_done[slot]`` before refilling that slot's page-locked inputs. ``submit`` returns the
previous frame's result (one frame of latency for throughput); ``pipelined=False`` runs everything
on one stream and returns each frame's own result - the comparison mode.

Engines are anything with ``device_ptr(name)`` and ``enqueue(stream, bind)``: TensorRT backends on
the vehicle, ``kernels.StandInEngine`` in GPU benchmarks without TensorRT.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.kernels import CudaBevPool, CudaImagePreprocessor, CudaPillarizer
from bevfusion_ros.core.errors import ConfigError, InputError
from bevfusion_ros.core.model import ONNX, ModelSpec, StageKind
from bevfusion_ros.core.optional import import_pycuda_driver
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from bevfusion_ros.core.pipeline.pipeline import FrameResult
from bevfusion_ros.core.pipeline.postprocess import decode_heads
from bevfusion_ros.core.sensors.rig import CameraRig


class DeviceEngine(Protocol):
    def device_ptr(self, name: str) -> int: ...

    def enqueue(self, stream: cuda.Stream | None = None, bind: dict[str, int] | None = None) -> None: ...


@dataclass
class _Slot:
    images: list[cuda.HostBuffer]
    images_dev: list[cuda.DeviceBuffer]
    points: cuda.HostBuffer
    points_dev: cuda.DeviceBuffer
    prep: dict[str, cuda.DeviceBuffer]  # pre-processed network inputs (images, pillars)
    outputs: dict[str, cuda.HostBuffer]
    h2d_done: cuda.Event
    prep_done: cuda.Event
    infer_done: cuda.Event
    start: cuda.Event
    infer_start: cuda.Event
    masked: tuple[int, ...] = ()
    n_points: int = 0
    submitted: float = 0.0
    busy: bool = False


class StreamedPipeline:
    def __init__(
        self,
        spec: ModelSpec,
        engines: Mapping[str, DeviceEngine],
        rig: CameraRig,
        pipelined: bool = True,
        image_order: str = "bgr",
        max_points: int | None = None,
    ) -> None:
        """Build inside an active CUDA context; use only from the thread that holds it."""
        voxel_stages = [s.name for s in spec.stages if s.kind.voxel_based]
        if voxel_stages:
            msg = (
                f"gpu_pipeline does not run the voxel-based stages {', '.join(voxel_stages)} yet (their CUDA "
                "kernels, core/cuda/voxels.py, are not wired into the streamed slots): set gpu_pipeline off "
                "(the host runs them in numpy beside the TensorRT engines)"
            )
            raise ConfigError(msg)
        self.spec = spec
        self.engines = engines
        self.pipelined = pipelined
        self.pre = cuda.Stream()
        self.infer = cuda.Stream() if pipelined else self.pre
        self.images = CudaImagePreprocessor(spec.image, image_order)
        self.pillars = CudaPillarizer(spec.lidar)
        self.sizes = rig.image_sizes()
        transforms = [self.images.reference.transform(w, h) for w, h in self.sizes]
        index = BevPoolIndex.create(rig, transforms, spec.image, spec.camera_bev)
        bev = next(s for s in spec.stages if s.kind is StageKind.BEVPOOL)
        self.bevpool = CudaBevPool(index, bev.inputs[0].shape[2], self.pre)
        self.bev_out = cuda.DeviceBuffer(self.bevpool.out_bytes)
        self.max_points = max_points or spec.lidar.max_points
        self._heads = [
            t
            for name in ("head.bbox", "head.map")
            if name in {s.name for s in spec.stages}
            for t in spec.stage(name).outputs
        ]
        self.slots = [self._slot() for _ in range(2)]
        self.frame = 0

    def _slot(self) -> _Slot:
        pre = {
            s.outputs[0].name: cuda.DeviceBuffer(int(np.prod(s.outputs[0].shape)) * 4)
            for s in self.spec.stages
            if s.kind in (StageKind.IMAGE_PREPROCESS, StageKind.PILLARIZE)
        }
        return _Slot(
            images=[cuda.HostBuffer((h, w, 3), np.uint8) for w, h in self.sizes],
            images_dev=[cuda.DeviceBuffer(h * w * 3) for w, h in self.sizes],
            points=cuda.HostBuffer((self.max_points, 4), np.float32),
            points_dev=cuda.DeviceBuffer(self.max_points * 16),
            prep=pre,
            outputs={t.name: cuda.HostBuffer(t.shape, np.dtype(t.dtype)) for t in self._heads},
            h2d_done=cuda.Event(),
            prep_done=cuda.Event(),
            infer_done=cuda.Event(),
            start=cuda.Event(),
            infer_start=cuda.Event(),
        )

    # ---------------------------------------------------------------- per frame
    def _fill(self, slot: _Slot, images: Sequence[npt.NDArray[np.uint8] | None], points: npt.ArrayLike) -> None:
        if len(images) != len(self.sizes):
            msg = f"expected {len(self.sizes)} camera images, got {len(images)}"
            raise InputError(msg)
        p = np.asarray(points)
        if p.ndim != 2 or p.shape[1] < 4 or p.shape[0] > self.max_points:
            msg = f"point cloud must be (N <= {self.max_points}, >=4), got {p.shape}"
            raise InputError(msg)
        slot.h2d_done.synchronize()  # the previous upload from this slot has left the host buffers
        masked = []
        for i, (img, (w, h)) in enumerate(zip(images, self.sizes, strict=True)):
            if img is None:
                masked.append(i)
                continue
            if np.shape(img) != (h, w, 3):
                msg = f"camera {self.spec.cameras[i]}: image is {np.shape(img)}, calibration is for {w}x{h}"
                raise InputError(msg)
            np.copyto(slot.images[i].array, img)
        slot.points.array[: p.shape[0]] = p[:, :4]
        slot.masked, slot.n_points = tuple(masked), int(p.shape[0])

    def _enqueue_pre(self, slot: _Slot) -> None:
        s = self.pre
        slot.start.record(s)
        s.wait(slot.infer_done)  # the engines of the frame two back have read this slot's tensors
        for i in range(len(self.sizes)):
            if i not in slot.masked:
                cuda.copy_to_device(slot.images_dev[i], slot.images[i].array, s)
        if slot.n_points:
            cuda.copy_to_device(slot.points_dev, slot.points.array[: slot.n_points], s)
        slot.h2d_done.record(s)
        drv = import_pycuda_driver()
        for stage in self.spec.stages:
            if stage.kind is StageKind.IMAGE_PREPROCESS:
                out = slot.prep[stage.outputs[0].name]
                plane = self.images.plane_bytes
                for i, (w, h) in enumerate(self.sizes):
                    if i in slot.masked:
                        drv.memset_d32_async(out.ptr + i * plane, 0, plane // 4, s.raw)
                    else:
                        self.images.launch(slot.images_dev[i], w, h, out.ptr + i * plane, s)
            elif stage.kind is StageKind.PILLARIZE:
                self.pillars.launch(slot.points_dev, slot.n_points, slot.prep[stage.outputs[0].name].ptr, s)
        slot.prep_done.record(s)

    def _enqueue_infer(self, slot: _Slot, index: int) -> None:
        s = self.infer
        s.wait(slot.prep_done)
        slot.infer_start.record(s)
        where: dict[str, int] = {k: b.ptr for k, b in slot.prep.items()}
        for stage in self.spec.stages:
            if stage.kind == ONNX:
                eng = self.engines[stage.name]
                eng.enqueue(s, {t.name: where[t.name] for t in stage.inputs})
                where.update({t.name: eng.device_ptr(t.name) for t in stage.outputs})
            elif stage.kind is StageKind.BEVPOOL:
                feat, depth = (where[t.name] for t in stage.inputs)
                self.bevpool.launch(feat, depth, self.bev_out.ptr, s, slot.masked, index % 2)
                where[stage.outputs[0].name] = self.bev_out.ptr
        for t in self._heads:
            out = slot.outputs[t.name]
            cuda.copy_to_host(out.array, cuda.DeviceView(where[t.name], out.array.nbytes), s)
        slot.infer_done.record(s)

    def _result(self, slot: _Slot) -> FrameResult:
        slot.infer_done.synchronize()
        slot.busy = False
        t0 = time.perf_counter()
        heads = {t.name: slot.outputs[t.name].array.copy() for t in self._heads}
        dets, seg = decode_heads(self.spec, heads)
        timings = {
            "gpu_preprocess": slot.prep_done.elapsed_ms(slot.start),
            "gpu_infer": slot.infer_done.elapsed_ms(slot.infer_start),
            "gpu_frame": slot.infer_done.elapsed_ms(slot.start),
            "postprocess": (time.perf_counter() - t0) * 1e3,
            "total": (time.perf_counter() - slot.submitted) * 1e3,
        }
        return FrameResult(dets, seg, timings, slot.n_points, heads)

    def submit(self, images: Sequence[npt.NDArray[np.uint8] | None], points: npt.ArrayLike) -> FrameResult | None:
        """Queue one frame; returns the previous frame's result (pipelined) or this frame's (sequential)."""
        index = self.frame
        slot = self.slots[index % 2]
        if slot.busy:  # pipelined: the frame two back was never collected
            self._result(slot)
        self._fill(slot, images, points)
        slot.submitted = time.perf_counter()
        self._enqueue_pre(slot)
        self._enqueue_infer(slot, index)
        slot.busy = True
        self.frame += 1
        if not self.pipelined:
            return self._result(slot)
        prev = self.slots[(index - 1) % 2]
        return self._result(prev) if index > 0 and prev.busy else None

    def flush(self) -> FrameResult | None:
        """The last frame's result in pipelined mode (None if nothing is pending)."""
        last = self.slots[(self.frame - 1) % 2]
        return self._result(last) if self.frame and last.busy else None

    def free(self) -> None:
        self.pre.synchronize()
        self.infer.synchronize()
        self.pillars.free()
        self.bevpool.free()
        self.bev_out.free()
        for slot in self.slots:
            for b in (*slot.images_dev, slot.points_dev, *slot.prep.values()):
                b.free()
