"""What the package (and its FAKE TensorRT in test/fakes) assume of TensorRT that the real bindings
on a CPU machine cannot show, each as a named check to run where TensorRT runs (``bevfusion-ros
selftest`` on the vehicle). test/core/trt/test_real_bindings.py holds the names and signatures to
the real API; these hold the behaviour: how a parse fails, what a failed plugin load returns, that
TensorRT swallows a calibrator's exception, the inspector's JSON keys, the DLA placement log's
wording, the deprecation of implicit INT8.

Each check takes the ``tensorrt`` module and a scratch folder, needs an active CUDA context, and
returns (passed, detail); None for passed means it could not be tried here (the detail says why).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.trt.common import make_logger, network_flags, parse_onnx
from bevfusion_ros.core.trt.dla_report import parse_placement_log

Result = tuple[bool | None, str]
INPUT = "x"
SHAPE = (1, 3, 16, 16)


def tiny_onnx(path: Path) -> Path:
    """Conv + Relu, 1x3x16x16 -> 1x4x16x16: a network every TensorRT and DLA builds in seconds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", [INPUT, "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4, 16, 16))],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _network(trt: Any, logger: Any, onnx_path: Path) -> tuple[Any, Any, Any]:
    builder = trt.Builder(logger)
    network = parse_onnx(trt, builder, logger, onnx_path, "the check's own network")
    return builder, network, builder.create_builder_config()


def parse_failure_is_false_with_errors(trt: Any, work: Path) -> Result:
    bad = work / "not_a_model.onnx"
    bad.write_bytes(b"not an onnx model")
    logger, _ = make_logger(trt, echo="internal_error")
    builder = trt.Builder(logger)
    # the network the parser writes into, held as parse_onnx holds it (not a temporary)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(bad))
    return (not ok and parser.num_errors > 0), f"parse_from_file -> {ok}, {parser.num_errors} error(s)"


def plugin_load_failure_is_none(trt: Any, work: Path) -> Result:
    lib = work / "libnot_a_plugin.so"
    lib.write_bytes(b"\x7fELF not really")
    try:
        handle = trt.get_plugin_registry().load_library(str(lib))
    except Exception as exc:  # the package expects None, not this
        return False, f"load_library raised {type(exc).__name__}: {exc}"
    return handle is None, f"load_library -> {handle!r}"


def implicit_int8_is_deprecated(trt: Any, work: Path) -> Result:
    logger, _ = make_logger(trt, echo="internal_error")
    _, _, config = _network(trt, logger, tiny_onnx(work / "tiny.onnx"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        config.int8_calibrator = None
    warned = any(issubclass(w.category, DeprecationWarning) for w in caught)
    expected = tuple(int(x) for x in str(trt.__version__).split(".")[:2]) >= (10, 1)
    return warned == expected, f"DeprecationWarning {'seen' if warned else 'not seen'} on {trt.__version__}"


def calibrator_exception_is_swallowed(trt: Any, work: Path) -> Result:
    """A Python exception in get_batch never reaches build_serialized_network's caller."""
    logger, records = make_logger(trt, echo="internal_error")
    builder, network, config = _network(trt, logger, tiny_onnx(work / "tiny.onnx"))
    config.set_flag(trt.BuilderFlag.INT8)
    buf = cuda.DeviceBuffer(int(np.prod(SHAPE)) * 4)

    class Raising(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.calls = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str], *_: Any) -> list[int] | None:
            self.calls += 1
            if self.calls > 1:
                msg = "the selftest's deliberate failure"
                raise RuntimeError(msg)
            return [buf.ptr]

        def read_calibration_cache(self) -> None:
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    calibrator = Raising()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        config.int8_calibrator = calibrator
    try:
        serialized = builder.build_serialized_network(network, config)
    except Exception as exc:
        return False, f"the exception reached the caller: {type(exc).__name__}: {exc}"
    finally:
        buf.free()
    built = "an engine" if serialized is not None else "None"
    return True, f"get_batch called {calibrator.calls} times; the build returned {built}; {len(records)} log lines"


def _engine(trt: Any, work: Path, dla_core: int = -1) -> tuple[Any, list[tuple[str, str]]]:
    logger, records = make_logger(trt, echo="internal_error")
    builder, network, config = _network(trt, logger, tiny_onnx(work / "tiny.onnx"))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.set_flag(trt.BuilderFlag.FP16)
    if dla_core >= 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        return None, list(records)
    runtime = trt.Runtime(logger)
    if dla_core >= 0:
        runtime.DLA_core = dla_core
    return runtime.deserialize_cuda_engine(bytes(serialized)), list(records)


def inspector_json_has_layers_and_bindings(trt: Any, work: Path) -> Result:
    engine, records = _engine(trt, work)
    if engine is None:
        return False, f"the tiny fp16 engine did not build: {records[-3:]}"
    text = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    info = json.loads(text)
    keys = sorted(info) if isinstance(info, dict) else []
    return {"Layers", "Bindings"} <= set(keys), f"keys {keys}"


def dla_placement_log_is_parsed(trt: Any, work: Path) -> Result:
    logger, _ = make_logger(trt, echo="internal_error")
    if trt.Builder(logger).num_DLA_cores < 1:
        return None, "this device has no DLA core"
    engine, records = _engine(trt, work, dla_core=0)
    dla, gpu = parse_placement_log([m for _, m in records])
    ok = engine is not None and bool(dla or gpu)
    return ok, f"{len(dla)} layer(s) on DLA, {len(gpu)} on GPU read from the builder's log"


def timing_cache_answer_is_a_bool(trt: Any, work: Path) -> Result:
    logger, _ = make_logger(trt, echo="internal_error")
    _, _, config = _network(trt, logger, tiny_onnx(work / "tiny.onnx"))
    answer = config.set_timing_cache(config.create_timing_cache(b""), False)
    return isinstance(answer, bool) and answer, f"set_timing_cache(new cache) -> {answer!r}"


CHECKS: dict[str, Callable[[Any, Path], Result]] = {
    "ONNX parse failure is False with errors": parse_failure_is_false_with_errors,
    "plugin load failure returns None": plugin_load_failure_is_none,
    "implicit INT8 warns from 10.1": implicit_int8_is_deprecated,
    "calibrator exceptions are swallowed": calibrator_exception_is_swallowed,
    "set_timing_cache answers with a bool": timing_cache_answer_is_a_bool,
    "inspector JSON has Layers and Bindings": inspector_json_has_layers_and_bindings,
    "DLA placement log wording": dla_placement_log_is_parsed,
}


def run_checks(trt: Any, work: Path) -> dict[str, Result]:
    """Every check, each isolated: one that raises is a failure with the exception as its detail."""
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Result] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check(trt, work)
        except ImportError as exc:  # the tiny network is written with the onnx package (extra "onnx")
            results[name] = (None, f"needs {exc.name or exc}: pip install onnx")
        except Exception as exc:
            results[name] = (False, f"{type(exc).__name__}: {exc}")
    return results
