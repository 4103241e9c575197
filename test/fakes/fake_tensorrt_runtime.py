"""FAKE TensorRT runtime: deserialisation checks, name-based I/O tensors, ``execute_async_v3`` on a
(fake) CUDA stream with every precondition of the real call checked, and the engine inspector."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from fakes import fake_pycuda_driver as fcuda
from fakes.fake_trt_types import DataType, Dims, ILogger, LayerInformationFormat, TensorIOMode, emit, nptype

MAGIC = b"FAKETRT\x00"
STATS: dict[str, int] = {"executions": 0}


def _trt() -> Any:
    from fakes import fake_tensorrt

    return fake_tensorrt


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        self.DLA_core = -1

    @property
    def num_DLA_cores(self) -> int:
        return int(_trt().NUM_DLA_CORES)

    def deserialize_cuda_engine(self, serialized_engine: Any) -> ICudaEngine | None:
        def fail(msg: str) -> None:
            emit(self.logger, ILogger.ERROR, msg)

        fcuda._require_context("deserialize (TensorRT needs a current CUDA context)")
        data = bytes(serialized_engine)
        if len(data) < len(MAGIC) + 8 or not data.startswith(MAGIC):
            return fail("1: [runtime.cpp::parsePlan] Error Code 1: Serialization (magic tag does not match)")
        (n,) = struct.unpack("<Q", data[len(MAGIC) : len(MAGIC) + 8])
        start = len(MAGIC) + 8
        if len(data) < start + n:
            return fail("1: [runtime.cpp::parsePlan] Error Code 1: Serialization (plan is truncated)")
        try:
            header = json.loads(data[start : start + n])
        except ValueError:
            return fail("1: [runtime.cpp::parsePlan] Error Code 1: Serialization (corrupt plan header)")
        onnx_bytes = data[start + n :]
        if header["trt_version"] != _trt().__version__:
            return fail(
                "The engine plan file is not compatible with this version of TensorRT, expecting library version "
                f"{_trt().__version__} got {header['trt_version']}, please rebuild."
            )
        cc = list(fcuda.DEVICE_PROPERTIES["compute_capability"])
        if header["compute_capability"] != cc:
            return fail(
                "The engine plan file is generated on an incompatible device, expecting compute "
                f"{cc[0]}.{cc[1]} got compute {header['compute_capability'][0]}.{header['compute_capability'][1]}, "
                "please rebuild."
            )
        if header["dla_core"] >= 0 and not 0 <= self.DLA_core < self.num_DLA_cores:
            return fail(f"engine uses DLA but Runtime.DLA_core is {self.DLA_core}: set it before deserializing")
        try:
            import onnx

            onnx.load_from_string(onnx_bytes)
        except Exception:
            return fail("1: [runtime.cpp::parsePlan] Error Code 1: Serialization (engine weights are corrupt)")
        return ICudaEngine(header, onnx_bytes, self.logger)


class ICudaEngine:
    def __init__(self, header: dict[str, Any], onnx_bytes: bytes, logger: ILogger) -> None:
        self.header = header
        self.onnx_bytes = onnx_bytes
        self.logger = logger
        self._io = [(n, s, DataType(d), TensorIOMode.INPUT) for n, s, d in header["inputs"]]
        self._io += [(n, s, DataType(d), TensorIOMode.OUTPUT) for n, s, d in header["outputs"]]
        self._session: Any = None

    num_io_tensors = property(lambda self: len(self._io))
    num_layers = property(lambda self: len(self.header["layers"]))
    num_optimization_profiles = property(lambda self: max(1, len(self.header["profiles"])))

    def _find(self, name: str) -> tuple[str, list[int], DataType, TensorIOMode] | None:
        return next((t for t in self._io if t[0] == name), None)

    def get_tensor_name(self, index: int) -> str:
        return str(self._io[index][0])

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        t = self._find(name)
        return TensorIOMode.NONE if t is None else t[3]

    def get_tensor_shape(self, name: str) -> Dims:
        t = self._find(name)
        return Dims(()) if t is None else Dims(t[1])

    def get_tensor_dtype(self, name: str) -> DataType:
        t = self._find(name)
        if t is None:
            msg = f"no tensor named {name}"
            raise ValueError(msg)
        return t[2]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        profiles = self.header["profiles"]
        if not profiles or name not in profiles[profile_index]:
            return []
        return [Dims(d) for d in profiles[profile_index][name]]

    def create_execution_context(self) -> IExecutionContext:
        fcuda._require_context("create execution context")
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self)

    def serialize(self) -> Any:
        blob = json.dumps(self.header).encode()
        return _trt().IHostMemory(MAGIC + struct.pack("<Q", len(blob)) + blob + self.onnx_bytes)

    def _ort_session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            self._session = ort.InferenceSession(self.onnx_bytes, opts, providers=["CPUExecutionProvider"])
        return self._session


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, Dims] = {}
        self.addresses: dict[str, int] = {}
        self.active_optimization_profile = 0

    def _error(self, msg: str) -> bool:
        emit(self.engine.logger, ILogger.ERROR, msg)
        return False

    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        if not 0 <= profile_index < self.engine.num_optimization_profiles:
            return self._error(f"profile index {profile_index} out of range")
        self.active_optimization_profile = profile_index
        return True

    def set_input_shape(self, name: str, shape: Any) -> bool:
        t = self.engine._find(name)
        if t is None or t[3] != TensorIOMode.INPUT:
            return self._error(f"3: setInputShape: {name} is not an input tensor of this engine")
        dims = Dims(shape)
        if len(dims) != len(t[1]) or any(d != -1 and d != g for d, g in zip(t[1], dims, strict=True)):
            return self._error(f"3: setInputShape: {name} shape {tuple(dims)} does not fit {tuple(t[1])}")
        prof = self.engine.get_tensor_profile_shape(name, self.active_optimization_profile)
        if prof and not all(lo <= d <= hi for lo, d, hi in zip(prof[0], dims, prof[2], strict=True)):
            return self._error(f"3: setInputShape: {name} shape {tuple(dims)} is outside the optimization profile")
        self.shapes[name] = dims
        return True

    @property
    def _all_input_dimensions_specified(self) -> bool:
        return all(-1 not in s or n in self.shapes for n, s, _, m in self.engine._io if m == TensorIOMode.INPUT)

    def infer_shapes(self) -> list[str]:
        return [n for n, s, _, m in self.engine._io if m == TensorIOMode.INPUT and -1 in s and n not in self.shapes]

    def get_tensor_shape(self, name: str) -> Dims:
        t = self.engine._find(name)
        if t is None:
            return Dims(())
        if name in self.shapes:
            return self.shapes[name]
        if t[3] == TensorIOMode.OUTPUT and -1 in t[1]:
            return self._output_shape(name, t[1])
        return Dims(t[1])

    def _output_shape(self, name: str, declared: list[int]) -> Dims:
        if not self._all_input_dimensions_specified:
            return Dims(declared)
        feeds = {
            n: np.zeros(self.get_tensor_shape(n), nptype(d))
            for n, _, d, m in self.engine._io
            if m == TensorIOMode.INPUT
        }
        out = self.engine._ort_session().run([name], feeds)[0]
        return Dims(out.shape)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if self.engine._find(name) is None:
            return self._error(f"3: setTensorAddress: {name} is not an I/O tensor of this engine")
        self.addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self.addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        fcuda._require_context("execute_async_v3 (no current CUDA context)")
        try:
            stream = fcuda.stream_from_handle(int(stream_handle))
        except fcuda.LogicError as exc:
            return self._error(f"1: enqueueV3: {exc}")
        io = self.engine._io
        missing = [n for n, *_ in io if n not in self.addresses]
        if missing:
            return self._error(f"3: enqueueV3: tensor address not set for {', '.join(missing)}")
        if not self._all_input_dimensions_specified:
            return self._error(f"3: enqueueV3: input shapes not specified for {', '.join(self.infer_shapes())}")
        views: dict[str, tuple[int, tuple[int, ...], Any]] = {}
        for n, _, d, _m in io:
            shape = tuple(self.get_tensor_shape(n))
            nbytes = int(np.prod(shape)) * np.dtype(nptype(d)).itemsize
            try:
                fcuda.device_view(self.addresses[n], nbytes)
            except fcuda.LogicError as exc:
                return self._error(f"1: enqueueV3: {n}: {exc}")
            views[n] = (self.addresses[n], shape, nptype(d))

        def run() -> None:
            feeds = {}
            for n, _, _, m in io:
                if m == TensorIOMode.INPUT:
                    addr, shape, dt = views[n]
                    nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
                    feeds[n] = fcuda.device_view(addr, nbytes).view(dt).reshape(shape).copy()
            outs = [n for n, _, _, m in io if m == TensorIOMode.OUTPUT]
            for n, arr in zip(outs, self.engine._ort_session().run(outs, feeds), strict=True):
                addr, shape, dt = views[n]
                fcuda.device_view(addr, arr.nbytes)[:] = np.ascontiguousarray(arr, dt).reshape(-1).view(np.uint8)
            STATS["executions"] += 1

        stream.enqueue(run, "engine")
        return True


class EngineInspector:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.execution_context: IExecutionContext | None = None

    def _layer(self, layer: dict[str, Any]) -> Any:
        if self.engine.header["verbosity"] == 2:  # DETAILED
            return {"Name": layer["Name"], "LayerType": layer["LayerType"]}
        return layer["Name"]

    def get_engine_information(self, format: LayerInformationFormat) -> str:
        layers = [self._layer(x) for x in self.engine.header["layers"]]
        if format == LayerInformationFormat.JSON:
            bindings = [n for n, *_ in self.engine._io]
            return json.dumps({"Layers": layers, "Bindings": bindings})
        return "\n".join(x if isinstance(x, str) else x["Name"] for x in layers)

    def get_layer_information(self, layer_index: int, format: LayerInformationFormat) -> str:
        layer = self._layer(self.engine.header["layers"][layer_index])
        return json.dumps(layer) if format == LayerInformationFormat.JSON else str(layer)
