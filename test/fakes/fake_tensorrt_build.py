"""FAKE TensorRT engine build: the preconditions real ``build_serialized_network`` enforces (see
fake_tensorrt.py for the list) and a serialized "engine" that embeds the ONNX model."""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import numpy as np

from fakes import fake_pycuda_driver as fcuda
from fakes import fake_tensorrt as trt
from fakes.fake_tensorrt_runtime import MAGIC
from fakes.fake_trt_types import ILogger, emit, nptype

ERROR, WARNING, INFO, VERBOSE = ILogger.ERROR, ILogger.WARNING, ILogger.INFO, ILogger.VERBOSE

# Counters tests read: how many builds ran, how many calibration batches were consumed.
STATS: dict[str, int] = {"builds": 0, "calibration_batches": 0}


def _profile_problem(network: Any, config: Any) -> str:
    dynamic = [t for t in network.inputs if -1 in t.shape]
    if not dynamic:
        return ""
    if not config.profiles:
        return (
            f"Network has dynamic or shape inputs ({', '.join(t.name for t in dynamic)}), "
            "but no optimization profile has been defined."
        )
    for p in config.profiles:
        for t in dynamic:
            if t.name not in p.shapes:
                return f"Optimization profile is missing values for input {t.name}"
            lo, opt, hi = p.shapes[t.name]
            if not len(lo) == len(opt) == len(hi) == len(t.shape):
                return f"profile for {t.name}: rank differs from the network input's {len(t.shape)}"
            for i, d in enumerate(t.shape):
                if not lo[i] <= opt[i] <= hi[i] or lo[i] < 1:
                    got = f"{lo[i]}, {opt[i]}, {hi[i]}"
                    return f"profile for {t.name}: dimension {i} needs 1 <= min <= opt <= max, got {got}"
                if d != -1 and not lo[i] == opt[i] == hi[i] == d:
                    return f"profile for {t.name}: dimension {i} is static ({d}) in the network"
    return ""


def _trampoline(calib: Any, method: str, *args: Any) -> Any:
    """As TensorRT's pybind11 trampolines for IInt8Calibrator: an exception raised in the Python
    method is caught in C++, printed, and turned into "nothing" (no batch, no cache)."""
    try:
        return getattr(calib, method)(*args)
    except Exception as exc:
        name = {"get_batch": "get_batch()", "read_calibration_cache": "read_calibration_cache()"}.get(method, method)
        print(f"[ERROR] Exception caught in {name}: {exc}", file=sys.stderr)
        return None


def _calibrate(network: Any, config: Any, log: Any) -> dict[str, float] | None:
    calib = config.int8_calibrator
    if not getattr(calib, "_trt_initialised", False):
        log(ERROR, "calibrator subclass did not call the base class __init__")
        return None
    if any(-1 in t.shape for t in network.inputs) and config.calibration_profile is None:
        log(ERROR, "Calibration with dynamic input shapes needs set_calibration_profile()")
        return None
    cache = _trampoline(calib, "read_calibration_cache")
    if cache:
        lines = bytes(cache).decode().splitlines()
        if not lines or not lines[0].endswith("EntropyCalibration2"):
            log(ERROR, "calibration cache has a wrong header; it is ignored only by a lenient build")
            return None
        scales = {}
        for line in lines[1:]:
            name, _, hexval = line.rpartition(": ")
            scales[name] = struct.unpack(">f", bytes.fromhex(hexval))[0]
        log(INFO, f"Using calibration cache ({len(scales)} tensors)")
        return scales
    batch = int(calib.get_batch_size())
    names = [t.name for t in network.inputs]
    amax = dict.fromkeys(names, 0.0)
    batches = 0
    while True:
        ptrs = _trampoline(calib, "get_batch", names)
        if not ptrs:
            break
        if len(ptrs) != len(names):
            log(ERROR, f"get_batch returned {len(ptrs)} pointers for {len(names)} inputs")
            return None
        for t, ptr in zip(network.inputs, ptrs, strict=True):
            shape = tuple(batch if d == -1 else d for d in t.shape)
            nbytes = int(np.prod(shape)) * np.dtype(nptype(t.dtype)).itemsize
            try:
                data = fcuda.device_view(int(ptr), nbytes).view(nptype(t.dtype))
            except fcuda.LogicError as exc:
                log(ERROR, f"calibration batch for {t.name}: {exc}")
                return None
            amax[t.name] = max(amax[t.name], float(np.abs(data.astype(np.float64)).max()))
        batches += 1
        STATS["calibration_batches"] += 1
    if not batches:
        log(ERROR, "Calibration failure: the calibrator returned no batches")
        return None
    scales = {k: (v / 127.0 if v else 1.0) for k, v in amax.items()}
    header = f"TRT-{trt.__version__.replace('.', '')}00-EntropyCalibration2"
    text = "\n".join([header] + [f"{k}: {struct.pack('>f', v).hex()}" for k, v in scales.items()]) + "\n"
    _trampoline(calib, "write_calibration_cache", memoryview(text.encode()))
    return scales


def _device_plan(network: Any, config: Any, dla: bool) -> list[tuple[str, str, str]]:
    return [(ly.name, ly.op, "DLA" if dla and config.can_run_on_DLA(ly) else "GPU") for ly in network.layers]


def _log_placement(plan: list[tuple[str, str, str]], log: Any) -> list[dict[str, Any]]:
    """TensorRT's verbose placement report, and the engine's layers (consecutive DLA layers fuse
    into one ``{ForeignNode[first...last]}`` DLA layer)."""
    engine_layers: list[dict[str, Any]] = []
    run: list[str] = []

    def close() -> None:
        if run:
            name = f"{{ForeignNode[{run[0]}...{run[-1]}]}}"
            engine_layers.append({"Name": name, "LayerType": "DLA", "Device": "DLA"})
            run.clear()

    for name, op, dev in plan:
        if dev == "DLA":
            run.append(name)
        else:
            close()
            engine_layers.append({"Name": name, "LayerType": op, "Device": "GPU"})
    close()
    log(VERBOSE, "---------- Layers Running on DLA ----------")
    for layer in engine_layers:
        if layer["Device"] == "DLA":
            log(VERBOSE, f"[DlaLayer] {layer['Name']}")
    log(VERBOSE, "---------- Layers Running on GPU ----------")
    for layer in engine_layers:
        if layer["Device"] == "GPU":
            log(VERBOSE, f"[GpuLayer] {layer['LayerType'].upper()}: {layer['Name']}")
    return engine_layers


def build(builder: Any, network: Any, config: Any) -> Any:
    def log(sev: ILogger.Severity, msg: str) -> None:
        emit(builder.logger, sev, msg)

    def fail(msg: str) -> None:
        log(ERROR, msg)

    flags = config.flags
    int8, fp16 = trt.BuilderFlag.INT8 in flags, trt.BuilderFlag.FP16 in flags
    dla = config.default_device_type == trt.DeviceType.DLA
    if not network.outputs:
        return fail("Network must have at least one output")
    problem = _profile_problem(network, config)
    if problem:
        return fail(problem)
    if dla:
        if not 0 <= config.DLA_core < builder.num_DLA_cores:
            return fail(f"DLA core {config.DLA_core} is invalid: this device has {builder.num_DLA_cores} DLA core(s)")
        if not (fp16 or int8):
            return fail("DLA supports only FP16 and INT8 precision: set BuilderFlag.FP16 or BuilderFlag.INT8")
        if any(-1 in t.shape for t in network.inputs):
            return fail("DLA does not support dynamic shapes: build DLA engines with static input dimensions")
        unsupported = [layer.name for layer in network.layers if not config.can_run_on_DLA(layer)]
        if unsupported and trt.BuilderFlag.GPU_FALLBACK not in flags:
            return fail(f"{unsupported[0]}: layer cannot run on DLA and GPU fallback is not enabled")
    scales: dict[str, float] = {}
    if int8 and not network._has_qdq:
        if config.int8_calibrator is None:
            return fail(
                "Int8 precision has been set for a layer or layer output, but int8 dynamic range has not been set "
                "(no calibrator and no Q/DQ layers)"
            )
        got = _calibrate(network, config, log)
        if got is None:
            return None
        scales = got
    if network._has_qdq and not int8:
        log(WARNING, "network has Q/DQ layers but INT8 is not enabled; they run in float")
    plan = _device_plan(network, config, dla)
    engine_layers = _log_placement(plan, log)
    if config.timing_cache is not None and trt.BuilderFlag.DISABLE_TIMING_CACHE not in flags:
        hits = sum(1 for name, op, dev in plan if f"{op}:{name}:{dev}" in config.timing_cache.entries)
        for name, op, dev in plan:
            config.timing_cache.entries.setdefault(f"{op}:{name}:{dev}", "tactic-0")
        log(INFO, f"[fake] timing cache: {hits} hits, {len(plan) - hits} misses")
    props = fcuda.DEVICE_PROPERTIES
    header = {
        "trt_version": trt.__version__,
        "device_name": props["name"],
        "compute_capability": list(props["compute_capability"]),
        "flags": sorted(f.name for f in flags),
        "dla_core": config.DLA_core if dla else -1,
        "verbosity": int(config.profiling_verbosity),
        "inputs": [[t.name, list(t.shape), int(t.dtype)] for t in network.inputs],
        "outputs": [[t.name, list(t.shape), int(t.dtype)] for t in network.outputs],
        "profiles": [{k: [list(d) for d in v] for k, v in p.shapes.items()} for p in config.profiles],
        "layers": engine_layers,
        "scales": scales,
        "workspace": config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE),
    }
    blob = json.dumps(header).encode()
    STATS["builds"] += 1
    return trt.IHostMemory(MAGIC + struct.pack("<Q", len(blob)) + blob + network.onnx_bytes)
