"""TensorRT backend (TensorRT 10 API; 8.6 has the same calls): one engine per ONNX stage, loaded from
the engine cache after its sidecar was checked, name-based I/O tensors, ``execute_async_v3`` on a
CUDA stream, RAII device and page-locked buffers (or mapped host memory on a Jetson: zero-copy).

Two ways to run it:
* ``infer(feeds)`` (the Backend contract): host arrays in, host arrays out, synchronous.
* ``enqueue(stream)`` (the streamed pipeline): tensors already in this backend's device buffers
  (``device_ptr(name)``), nothing copied, nothing waited for - the caller orders it with events.

Engines that are missing or stale (another ONNX file, TensorRT version, device, precision, DLA
core) are rebuilt when ``allow_build`` is set (``force_rebuild`` always rebuilds), else refused
with every mismatch named. A corrupt engine never reaches TensorRT (size + sha256 in the sidecar).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.errors import BackendError, ConfigError
from bevfusion_ros.core.model import ModelSpec, Stage
from bevfusion_ros.core.optional import import_tensorrt
from bevfusion_ros.core.pipeline.backend import Arrays, Backend
from bevfusion_ros.core.trt import engine_cache
from bevfusion_ros.core.trt.build import build_engine, engine_file
from bevfusion_ros.core.trt.common import load_plugins, make_logger, np_dtype
from bevfusion_ros.core.trt.engine_config import EngineConfig, StageBuild


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(
        self,
        model: ModelSpec,
        stage: Stage,
        engine_dir: str | Path = "",
        build: StageBuild | None = None,
        engine_config: EngineConfig | None = None,
        allow_build: bool = False,
        force_rebuild: bool = False,
        context: cuda.CudaContext | None = None,
        stream: cuda.Stream | None = None,
        mapped_host: bool = False,
        device: int = 0,
    ) -> None:
        super().__init__(model, stage)
        if not engine_dir:
            msg = f"stage {stage.name}: the tensorrt backend needs engine_dir (where build-engines wrote the engines)"
            raise ConfigError(msg)
        self.engine_dir = Path(engine_dir)
        # Per-stage settings from the engine build config win; ``build`` serves a single stage. Rebuilds
        # go through build-engines' own step, with the caches the engine config names.
        self._engine_config = engine_config or EngineConfig("", Path(), build or StageBuild(), {})
        self.build = self._engine_config.for_stage(stage.name).on(stage.dla_capable)
        self.allow_build = allow_build or force_rebuild
        self.force_rebuild = force_rebuild
        self.mapped_host = mapped_host
        self._device_index = device
        self._ctx = context
        self._owns_ctx = context is None
        self._given_stream = stream
        self.stream: cuda.Stream | None = None
        self.info: engine_cache.EngineInfo | None = None
        self.rebuilt = False
        self._engine: Any = None
        self._exec: Any = None
        self._runtime: Any = None
        self._device: dict[str, cuda.DeviceBuffer] = {}
        self._host: dict[str, cuda.HostBuffer] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dtypes: dict[str, np.dtype[Any]] = {}

    @property
    def engine_path(self) -> Path:
        return engine_file(self.engine_dir, self.stage.name)

    @property
    def context(self) -> cuda.CudaContext:
        if self._ctx is None:
            msg = f"stage {self.stage.name}: tensorrt backend is not active"
            raise BackendError(msg)
        return self._ctx

    # ------------------------------------------------------------------ activation
    def activate_impl(self) -> None:
        trt = import_tensorrt()
        if self._ctx is None:
            self._ctx = cuda.CudaContext(self._device_index)
        try:
            with self._ctx.active():
                self._load(trt)
        except BaseException:
            self.deactivate_impl()
            raise

    def _expected(self) -> engine_cache.Expected:
        trt = import_tensorrt()
        return engine_cache.Expected(
            onnx_sha256=engine_cache.sha256_file(self.model.path(self.stage)),
            tensorrt_version=str(trt.__version__),
            device_name=self.context.name,
            compute_capability=self.context.compute_capability,
            precision=self.build.precision,
            dla_core=self.build.dla_core,
        )

    def _stale_reasons(self) -> list[str]:
        if self.force_rebuild:
            return ["force_rebuild is set"]
        if not self.engine_path.is_file():
            return [f"{self.engine_path} does not exist"]
        try:
            info = engine_cache.read_info(self.engine_path)
        except BackendError as exc:
            return [str(exc)]
        return engine_cache.check(info, self._expected())

    def _rebuild(self, trt: Any, reasons: list[str]) -> None:
        if not self.allow_build:
            msg = (
                f"stage {self.stage.name}: engine {self.engine_path} cannot be used: {'; '.join(reasons)}. "
                "Rebuild it with `bevfusion-ros build-engines` or set allow_build"
            )
            raise BackendError(msg)
        build_engine(
            trt,
            self.model,
            self.stage,
            self._engine_config,
            self.engine_dir,
            (self.context.name, self.context.compute_capability),
        )
        self.rebuilt = True

    def _load(self, trt: Any) -> None:
        # the plugins a stage needs are registered before its engine is built or deserialised
        load_plugins(trt, self._engine_config.plugins, self.stage.plugins)
        reasons = self._stale_reasons()
        if reasons:
            self._rebuild(trt, reasons)
        info = engine_cache.read_info(self.engine_path)
        problems = engine_cache.check(info, self._expected())
        if problems:
            msg = f"stage {self.stage.name}: engine {self.engine_path} does not fit: {'; '.join(problems)}"
            raise BackendError(msg)
        data = engine_cache.read_engine(self.engine_path, info)
        logger, records = make_logger(trt)
        self._logger, self._records = logger, records
        self._runtime = trt.Runtime(logger)
        if info.dla_core >= 0:
            self._runtime.DLA_core = info.dla_core
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            msg = f"stage {self.stage.name}: TensorRT cannot load {self.engine_path}: {records.text()}"
            raise BackendError(msg)
        self._check_io(trt)
        self._exec = self._engine.create_execution_context()
        if self._exec is None:
            msg = f"stage {self.stage.name}: TensorRT could not create an execution context: {records.text()}"
            raise BackendError(msg)
        self.stream = self._given_stream or cuda.Stream()
        self._allocate()
        self.info = info

    def _check_io(self, trt: Any) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for kind, mode, specs in (
            ("input", trt.TensorIOMode.INPUT, self.stage.inputs),
            ("output", trt.TensorIOMode.OUTPUT, self.stage.outputs),
        ):
            have = [n for n in names if engine.get_tensor_mode(n) == mode]
            if sorted(have) != sorted(s.name for s in specs):
                msg = (
                    f"stage {self.stage.name}: engine {kind}s are {sorted(have)} but the model YAML says "
                    f"{sorted(s.name for s in specs)}; rebuild the engine from this model"
                )
                raise BackendError(msg)
            for spec in specs:
                shape = tuple(engine.get_tensor_shape(spec.name))
                dtype = np_dtype(trt, engine.get_tensor_dtype(spec.name))
                if not spec.matches(shape) or dtype != np.dtype(spec.dtype):
                    msg = (
                        f"stage {self.stage.name}: {kind} {spec.name} is {list(shape)} {dtype} in the engine but "
                        f"{list(spec.shape)} {spec.dtype} in the model YAML"
                    )
                    raise BackendError(msg)
                self._dtypes[spec.name] = dtype

    def _allocate(self) -> None:
        if self.mapped_host and not self.context.can_map_host_memory:
            msg = f"stage {self.stage.name}: mapped_host is set but {self.context.name} cannot map host memory"
            raise BackendError(msg)
        for spec in (*self.stage.inputs, *self.stage.outputs):
            if -1 not in spec.shape:
                self._ensure(spec.name, spec.shape)

    def _ensure(self, name: str, shape: tuple[int, ...]) -> None:
        """Buffers for ``name`` big enough for ``shape`` (dynamic tensors grow, never shrink)."""
        dtype = self._dtypes[name]
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if name in self._host and self._host[name].array.nbytes >= nbytes:
            self._shapes[name] = shape
            return
        old = self._device.pop(name, None)
        if old is not None:
            old.free()
        self._host[name] = cuda.HostBuffer((max(nbytes, 1),), np.uint8, mapped=self.mapped_host)
        if not self.mapped_host:
            self._device[name] = cuda.DeviceBuffer(max(nbytes, 1))
        self._shapes[name] = shape

    def device_ptr(self, name: str) -> int:
        """Where tensor ``name`` lives for the engine (a mapped host pointer in zero-copy mode)."""
        if self.mapped_host:
            return self._host[name].device_ptr
        return self._device[name].ptr

    def host_array(self, name: str) -> np.ndarray[Any, Any]:
        shape = self._shapes[name]
        n = int(np.prod(shape)) * self._dtypes[name].itemsize
        return self._host[name].array[:n].view(self._dtypes[name]).reshape(shape)

    # ------------------------------------------------------------------ running
    def set_input_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        for name, shape in shapes.items():
            if not self._exec.set_input_shape(name, shape):
                msg = f"stage {self.stage.name}: input {name} shape {shape} rejected: {self._records.text()}"
                raise BackendError(msg)
            self._ensure(name, shape)
        for spec in self.stage.outputs:
            if -1 in spec.shape:
                self._ensure(spec.name, tuple(self._exec.get_tensor_shape(spec.name)))

    def enqueue(self, stream: cuda.Stream | None = None, bind: dict[str, int] | None = None) -> None:
        """Queue the engine on ``stream`` (default: the backend's) on its own buffers, except the
        tensors in ``bind`` (name -> device address; how a double-buffered caller swaps inputs)."""
        stream = stream or self.stream
        assert stream is not None
        bind = bind or {}
        for name in self._shapes:
            if not self._exec.set_tensor_address(name, bind.get(name, self.device_ptr(name))):
                msg = f"stage {self.stage.name}: cannot bind {name}: {self._records.text()}"
                raise BackendError(msg)
        if not self._exec.execute_async_v3(stream.handle):
            msg = f"stage {self.stage.name}: execute_async_v3 failed: {self._records.text()}"
            raise BackendError(msg)

    def infer_impl(self, feeds: Arrays) -> Arrays:
        stream = self.stream
        assert stream is not None
        with self.context.active():
            dynamic = {s.name: tuple(feeds[s.name].shape) for s in self.stage.inputs if -1 in s.shape}
            if dynamic:
                self.set_input_shapes(dynamic)
            for spec in self.stage.inputs:
                np.copyto(self.host_array(spec.name), feeds[spec.name], casting="same_kind")
                if not self.mapped_host:
                    cuda.copy_to_device(self._device[spec.name], self._host[spec.name].array, stream)
            self.enqueue(stream)
            if not self.mapped_host:
                for spec in self.stage.outputs:
                    cuda.copy_to_host(self._host[spec.name].array, self._device[spec.name], stream)
            stream.synchronize()
            # The host buffers are reused by the next call: hand out copies.
            return {s.name: self.host_array(s.name).copy() for s in self.stage.outputs}

    def deactivate_impl(self) -> None:
        if self._ctx is None:
            return
        with self._ctx.active():
            self._exec = None
            self._engine = None
            self._runtime = None
            for b in self._device.values():
                b.free()
            for h in self._host.values():
                h.free()
            self._device.clear()
            self._host.clear()
            self._shapes.clear()
            self.stream = None
        if self._owns_ctx:
            self._ctx.release()
            self._ctx = None
