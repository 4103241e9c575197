"""FAKE of the TensorRT 10.3 Python API (the subset bevfusion_ros calls), for CI without TensorRT.

Pinned to TensorRT 10.3 (JetPack 6.1/6.2): every public name here is checked against the real 10.3
bindings by test/core/trt/test_real_bindings.py (names, enum members, keyword names, settable
properties); names starting with ``_`` and those in that test's FAKE_ONLY are the fake's own.
``__version__`` can be set to "8.6.2" for the 8.6 paths; 8.6 differs in what the package meets as:
networks need NetworkDefinitionCreationFlag.EXPLICIT_BATCH, there is no DataType.INT64, no implicit
INT8 DeprecationWarning. Installed as ``tensorrt`` by test/fakes/install.py.

Behaviour taken from the real bindings (not from documentation): ``IPluginRegistry.load_library``
returns None instead of raising; ``set_timing_cache`` returns False for another device's cache;
exceptions raised in a Python calibrator's methods are caught and printed by TensorRT's trampoline
and read as "no more batches" / "no cache"; setting ``int8_calibrator`` warns (DeprecationWarning) on
10.1+. What the fake enforces, because real TensorRT does and our code must get it right:

* ``OnnxParser.parse_from_file`` really reads the ONNX file (onnx package); a bad file gives parser
  errors and False. Ops outside ``SUPPORTED_OPS`` fail parsing unless a plugin library was loaded.
* ``build_serialized_network`` returns None (and logs an ERROR) when:
  INT8 is set with neither a calibrator nor Q/DQ layers; a dynamic input has no optimisation
  profile (or a profile with min > opt > max / wrong rank); DLA is the default device and
  ``DLA_core`` is not a valid core, or neither FP16 nor INT8 is set, or an input is dynamic, or a
  layer cannot run on DLA and GPU_FALLBACK is not set; the calibrator hands batches whose device
  pointers are not live allocations of the right size.
* The calibrator protocol: ``read_calibration_cache`` first; batches only if it returned nothing;
  ``write_calibration_cache`` after calibration.
* Builder log lines in TensorRT's verbose format ("---------- Layers Running on DLA ----------",
  "[DlaLayer] ...", "[GpuLayer] ...") and ``create_engine_inspector`` JSON with "Layers"/"Bindings".

Which ops can run on DLA is a fake rule (``DLA_OPS``) after NVIDIA's DLA supported-layers list,
conservative on purpose. The serialized engine embeds the ONNX model; executing it runs ONNX
Runtime on the fake device memory of test/fakes/fake_pycuda_driver.py (numerics are fp32: the fake
proves plumbing, not INT8 accuracy).
"""

from __future__ import annotations

import enum
import json
import os
import warnings
from typing import Any

from fakes.fake_tensorrt_runtime import (  # noqa: F401 - re-exported as the tensorrt namespace
    MAGIC,
    EngineInspector,
    ICudaEngine,
    IExecutionContext,
    Runtime,
)
from fakes.fake_trt_types import (  # noqa: F401 - re-exported
    DataType,
    Dims,
    ILogger,
    LayerInformationFormat,
    Logger,
    TensorIOMode,
    nptype,
)

__version__ = "10.3.0"

SUPPORTED_OPS = {
    "Conv",
    "ConvTranspose",
    "Relu",
    "Sigmoid",
    "Softmax",
    "BatchNormalization",
    "Concat",
    "Reshape",
    "Constant",
    "ConstantOfShape",
    "Mul",
    "Add",
    "Sub",
    "Equal",
    "Where",
    "Expand",
    "GridSample",
    "QuantizeLinear",
    "DequantizeLinear",
    "MaxPool",
    "AveragePool",
    "Transpose",
    "Clip",
    "Cast",
    # the example models' exports: a sparse encoder's dense(), a PillarFeatureNet, a TransFusion head
    # (onnx-tensorrt's operators.md lists every one for TensorRT 10)
    "ScatterND",
    "MatMul",
    "ReduceMax",
    "And",
    "ArgMax",
    "Div",
    "Gather",
    "GatherElements",
    "Identity",
    "Less",
    "Mod",
    "Not",
    "OneHot",
    "Pow",
    "Shape",
    "Slice",
    "TopK",
    "Unsqueeze",
    "Xor",
}
DLA_OPS = {
    "Conv",
    "ConvTranspose",
    "Relu",
    "Sigmoid",
    "Softmax",
    "BatchNormalization",
    "Concat",
    "Mul",
    "Add",
    "Sub",
    "MaxPool",
    "AveragePool",
    "Clip",
    "QuantizeLinear",
    "DequantizeLinear",
}
NUM_DLA_CORES = 2  # an AGX Orin; tests set 0 for a GPU-only device


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 5


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 5
    DISABLE_TIMING_CACHE = 6
    TF32 = 7
    PREFER_PRECISION_CONSTRAINTS = 10
    OBEY_PRECISION_CONSTRAINTS = 11
    DIRECT_IO = 12


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class CalibrationAlgoType(enum.IntEnum):
    LEGACY_CALIBRATION = 0
    ENTROPY_CALIBRATION = 1
    ENTROPY_CALIBRATION_2 = 2
    MINMAX_CALIBRATION = 3


class OnnxParserFlag(enum.IntEnum):
    NATIVE_INSTANCENORM = 0


class IInt8Calibrator:
    def __init__(self) -> None:
        self._trt_initialised = True  # pybind11 raises if a subclass forgets to call __init__


class IInt8EntropyCalibrator2(IInt8Calibrator):
    def get_algorithm(self) -> CalibrationAlgoType:
        return CalibrationAlgoType.ENTROPY_CALIBRATION_2


class IHostMemory:
    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)

    @property
    def nbytes(self) -> int:
        return len(self._data)

    def __buffer__(self, flags: int) -> memoryview:
        return memoryview(self._data)

    def __bytes__(self) -> bytes:
        return self._data


class ITensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType, is_input: bool) -> None:
        self.name = name
        self.shape = Dims(shape)
        self.dtype = dtype
        self.is_network_input = is_input
        self.is_network_output = not is_input


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    ACTIVATION = 2
    POOLING = 3
    SCALE = 5
    SOFTMAX = 6
    DECONVOLUTION = 7
    CONCATENATION = 8
    ELEMENTWISE = 9
    SHUFFLE = 16
    CONSTANT = 19
    SLICE = 22
    CAST = 25
    SELECT = 35
    QUANTIZE = 33
    DEQUANTIZE = 34
    GRID_SAMPLE = 42


_LAYER_TYPES = {
    "Conv": LayerType.CONVOLUTION,
    "ConvTranspose": LayerType.DECONVOLUTION,
    "Relu": LayerType.ACTIVATION,
    "Sigmoid": LayerType.ACTIVATION,
    "Clip": LayerType.ACTIVATION,
    "Softmax": LayerType.SOFTMAX,
    "BatchNormalization": LayerType.SCALE,
    "Concat": LayerType.CONCATENATION,
    "Reshape": LayerType.SHUFFLE,
    "Transpose": LayerType.SHUFFLE,
    "Constant": LayerType.CONSTANT,
    "ConstantOfShape": LayerType.CONSTANT,
    "Mul": LayerType.ELEMENTWISE,
    "Add": LayerType.ELEMENTWISE,
    "Sub": LayerType.ELEMENTWISE,
    "Equal": LayerType.ELEMENTWISE,
    "Where": LayerType.SELECT,
    "Expand": LayerType.SLICE,
    "GridSample": LayerType.GRID_SAMPLE,
    "QuantizeLinear": LayerType.QUANTIZE,
    "DequantizeLinear": LayerType.DEQUANTIZE,
    "MaxPool": LayerType.POOLING,
    "AveragePool": LayerType.POOLING,
    "Cast": LayerType.CAST,
}


class ILayer:
    def __init__(self, name: str, op: str) -> None:
        self.name = name
        self.type = _LAYER_TYPES.get(op, LayerType.CONSTANT)  # a plugin op would be PLUGIN_V2 in TensorRT
        self.op = op  # the fake's own record of the ONNX op (not a TensorRT attribute)


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.layers: list[ILayer] = []
        self.inputs: list[ITensor] = []
        self.outputs: list[ITensor] = []
        self.onnx_bytes = b""

    num_layers = property(lambda self: len(self.layers))
    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))

    def get_layer(self, index: int) -> ILayer:
        return self.layers[index]

    def get_input(self, index: int) -> ITensor:
        return self.inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self.outputs[index]

    @property
    def _has_qdq(self) -> bool:
        return any(layer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE) for layer in self.layers)


class ParserError:
    def __init__(self, desc: str, node: int = -1) -> None:
        self._desc = desc
        self._node = node

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def __str__(self) -> str:
        return f"In node {self._node}: {self._desc}"


# op type -> the creator interface its library registers: "v1" (IPluginCreator) or "v3" (IPluginCreatorV3One)
_LOADED_PLUGIN_OPS: dict[str, str] = {}


class IPluginCreatorInterface:
    """TensorRT 10's common base of V1 and V3 creators (8.6 has only IPluginCreator)."""


class _NamedCreator:
    _name = ""

    @property
    def name(self) -> str:
        return self._name

    @property
    def plugin_version(self) -> str:
        return "1"

    @property
    def plugin_namespace(self) -> str:
        return ""


class IPluginCreator(IPluginCreatorInterface, _NamedCreator):
    pass


class IPluginCreatorV3One(IPluginCreatorInterface, _NamedCreator):
    pass


def _ten_or_later() -> bool:
    return int(__version__.split(".")[0]) >= 10


class IPluginRegistry:
    def load_library(self, plugin_path: str) -> Any:
        """As TensorRT 8.6 and 10: None, never an exception, when the library cannot be loaded or
        one of its plugins is registered already (a second load of the same library)."""
        if not os.path.isfile(plugin_path):
            return None
        # The fake's plugin library is a text file, a line per creator: the op type it provides, then
        # "v3" for an IPluginCreatorV3One (TensorRT 10's plugin interface, which Autoware's
        # autoware_tensorrt_plugins use). Anything else is "not a plugin library".
        data = open(plugin_path, "rb").read()
        if data.startswith(b"\x7fELF"):  # a real shared object is not a fake plugin library
            return None
        try:
            lines = [line.split() for line in data.decode().splitlines() if line.strip()]
        except UnicodeDecodeError:
            return None
        ops = {parts[0]: "v3" if parts[1:] == ["v3"] else "v1" for parts in lines}
        if not ops or ops.keys() & _LOADED_PLUGIN_OPS.keys():
            return None
        if "v3" in ops.values() and not _ten_or_later():  # built against TensorRT 10: 8.6 cannot load it
            return None
        _LOADED_PLUGIN_OPS.update(ops)
        return object()  # a capsule in TensorRT

    @property
    def plugin_creator_list(self) -> list[IPluginCreator | IPluginCreatorV3One]:
        """Only the V1 creators, on TensorRT 10 as on 8.6."""
        return [_creator(op, kind) for op, kind in sorted(_LOADED_PLUGIN_OPS.items()) if kind == "v1"]

    @property
    def all_creators(self) -> list[IPluginCreator | IPluginCreatorV3One]:
        """V1 and V3 creators; TensorRT 10 only (the attribute does not exist on 8.6)."""
        if not _ten_or_later():
            msg = "'tensorrt.tensorrt.IPluginRegistry' object has no attribute 'all_creators'"
            raise AttributeError(msg)
        return [_creator(op, kind) for op, kind in sorted(_LOADED_PLUGIN_OPS.items())]

    def get_plugin_creator(self, type: str, version: str, plugin_namespace: str = "") -> IPluginCreator | None:
        found = _LOADED_PLUGIN_OPS.get(type) == "v1" and version == "1"
        return _creator(type, "v1") if found else None  # type: ignore[return-value]


def _creator(name: str, kind: str) -> IPluginCreator | IPluginCreatorV3One:
    creator = IPluginCreatorV3One() if kind == "v3" else IPluginCreator()
    creator._name = name
    return creator


_REGISTRY = IPluginRegistry()


def get_plugin_registry() -> IPluginRegistry:
    return _REGISTRY


def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
    return True


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self.network = network
        self.logger = logger
        self.errors: list[ParserError] = []

    num_errors = property(lambda self: len(self.errors))

    def get_error(self, index: int) -> ParserError:
        return self.errors[index]

    def clear_errors(self) -> None:
        self.errors = []

    def parse_from_file(self, model: str) -> bool:
        if not os.path.isfile(model):
            self.errors.append(ParserError(f"Failed to open file: {model}"))
            return False
        with open(model, "rb") as f:
            return self.parse(f.read(), model)

    def parse(self, model: bytes, path: str | None = None) -> bool:
        import onnx

        try:
            m = onnx.load_from_string(bytes(model))
            onnx.checker.check_model(m)
        except Exception as exc:
            self.errors.append(ParserError(f"Failed to parse ONNX model: {exc}"))
            return False
        if path is not None and any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer):
            self.errors.append(ParserError("external weights are not supported by the fake"))
            return False
        init = {t.name for t in m.graph.initializer}
        net = self.network
        for i, node in enumerate(m.graph.node):
            if node.op_type not in SUPPORTED_OPS and node.op_type not in _LOADED_PLUGIN_OPS:
                self.errors.append(
                    ParserError(f"No importer registered for op: {node.op_type}. Attempting to import as plugin.", i)
                )
                return False
            net.layers.append(ILayer(node.name or f"{node.op_type}_{i}", node.op_type))
        ios = [(v, True) for v in m.graph.input if v.name not in init] + [(v, False) for v in m.graph.output]
        for vi, is_in in ios:
            t = vi.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            dtype = _ONNX_TO_TRT.get(t.elem_type, DataType.FLOAT)
            (net.inputs if is_in else net.outputs).append(ITensor(vi.name, shape, dtype, is_in))
        net.onnx_bytes = bytes(model)
        return True


_ONNX_TO_TRT = {
    1: DataType.FLOAT,
    10: DataType.HALF,
    6: DataType.INT32,
    7: DataType.INT64,
    3: DataType.INT8,
    2: DataType.UINT8,
    9: DataType.BOOL,
}


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[Dims, Dims, Dims]] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        self.shapes[input] = (Dims(min), Dims(opt), Dims(max))

    def get_shape(self, input: str) -> list[Dims]:
        return list(self.shapes.get(input, ()))


class ITimingCache:
    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = dict(entries)

    def serialize(self) -> IHostMemory:
        return IHostMemory(b"FAKETIMINGCACHE\n" + json.dumps(self.entries, sort_keys=True).encode())

    def combine(self, input_cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.entries.update(input_cache.entries)
        return True


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: set[BuilderFlag] = set()
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self._int8_calibrator: Any = None
        self.pools: dict[MemoryPoolType, int] = {}
        self.profiles: list[IOptimizationProfile] = []
        self.calibration_profile: IOptimizationProfile | None = None
        self.timing_cache: ITimingCache | None = None
        self.builder_optimization_level = 3
        self._device_types: dict[int, DeviceType] = {}

    @property
    def int8_calibrator(self) -> Any:
        return self._int8_calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, calibrator: Any) -> None:
        if tuple(int(x) for x in __version__.split(".")[:2]) >= (10, 1):  # as TensorRT 10.1+ does
            warnings.warn("Use explicit quantization instead.", DeprecationWarning, stacklevel=2)
        self._int8_calibrator = calibrator

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(BuilderFlag(flag))

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags.discard(BuilderFlag(flag))

    def get_flag(self, flag: BuilderFlag) -> bool:
        return BuilderFlag(flag) in self.flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        if pool_size < 0:
            msg = "pool size must be non-negative"
            raise ValueError(msg)
        self.pools[MemoryPoolType(pool)] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        return self.pools.get(MemoryPoolType(pool), 1 << 40)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self.calibration_profile = profile
        return True

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        data = bytes(serialized_timing_cache)
        if not data:
            return ITimingCache({})
        head = b"FAKETIMINGCACHE\n"
        if not data.startswith(head):
            msg = "Invalid timing cache"  # real TensorRT logs and returns an empty cache; the fake is stricter
            raise RuntimeError(msg)
        return ITimingCache(json.loads(data[len(head) :]))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        """As TensorRT: False, and the cache not used, when it was made on another device or version."""
        from fakes.fake_pycuda_driver import DEVICE_PROPERTIES

        here = f"{DEVICE_PROPERTIES['name']} / {__version__}"
        made = cache.entries.setdefault("__device__", here)
        if made != here and not ignore_mismatch:
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self.timing_cache

    def can_run_on_DLA(self, layer: ILayer) -> bool:
        return layer.op in DLA_OPS

    def set_device_type(self, layer: ILayer, device_type: DeviceType) -> None:
        self._device_types[id(layer)] = DeviceType(device_type)

    def get_device_type(self, layer: ILayer) -> DeviceType:
        return self._device_types.get(id(layer), self.default_device_type)


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger

    num_DLA_cores = property(lambda self: NUM_DLA_CORES)
    max_DLA_batch_size = property(lambda self: 4096)
    platform_has_fast_fp16 = property(lambda self: True)
    platform_has_fast_int8 = property(lambda self: True)

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        if __version__.startswith("8.") and not flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)):
            msg = "TensorRT 8.x: ONNX networks need the EXPLICIT_BATCH creation flag"
            raise RuntimeError(msg)
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def get_plugin_registry(self) -> IPluginRegistry:
        return _REGISTRY

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        from fakes.fake_tensorrt_build import build

        return build(self, network, config)
