"""What the TensorRT builder and backend share: a logger that keeps what TensorRT said (so an error
names TensorRT's own reason), version-dependent details, dtypes, plugin loading from configured paths.

Written against the TensorRT 10 Python API; 8.6 differs only where noted (network creation flag,
no int64). ``tensorrt`` is imported by the caller through core.optional, never at module import.
Checked against the real 10.3 and 8.6 bindings by test/core/trt/test_real_bindings.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.errors import BackendError, ConfigError

LOG = logging.getLogger("bevfusion_ros.tensorrt")

_SEVERITY_NAMES = ("internal_error", "error", "warning", "info", "verbose")


def severity_name(trt: Any, severity: Any) -> str:
    order = [trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING, trt.ILogger.INFO, trt.ILogger.VERBOSE]
    for name, value in zip(_SEVERITY_NAMES, order, strict=True):
        if severity == value:
            return name
    return "verbose"


class TrtLogRecords(list[tuple[str, str]]):
    """(severity, message) pairs that one TensorRT logger received."""

    def text(self, severities: Sequence[str] = ("internal_error", "error")) -> str:
        lines = [m for s, m in self if s in severities]
        return "; ".join(lines[-5:]) if lines else "TensorRT gave no reason (run with verbose logging)"


def make_logger(trt: Any, echo: str = "warning") -> tuple[Any, TrtLogRecords]:
    """A ``trt.ILogger`` that records every message and echoes those at ``echo`` or worse to logging."""
    records = TrtLogRecords()
    echo_rank = _SEVERITY_NAMES.index(echo)

    class RecordingLogger(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # pybind11 base: must be initialised explicitly

        def log(self, severity: Any, msg: str) -> None:
            name = severity_name(trt, severity)
            records.append((name, msg))
            rank = _SEVERITY_NAMES.index(name)
            if rank <= echo_rank:
                LOG.log(logging.ERROR if rank <= 1 else logging.WARNING if rank == 2 else logging.INFO, "%s", msg)

    return RecordingLogger(), records


def parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path, what: str) -> Any:
    """A network of ``builder`` parsed from ``onnx_path``; BackendError with the parser's errors."""
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        msg = f"{what}: TensorRT cannot parse {onnx_path}: {errors}"
        raise BackendError(msg)
    return network


def enum_name(value: Any) -> str:
    """``BuilderFlag.FP16`` -> "FP16" (pybind11 enums have ``.name``)."""
    return str(getattr(value, "name", str(value).split(".")[-1]))


def major_version(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def network_flags(trt: Any) -> int:
    """TensorRT 10 networks are always explicit-batch (the flag is deprecated); 8.x needs it for ONNX."""
    if major_version(trt) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def np_dtype(trt: Any, dtype: Any) -> np.dtype[Any]:
    dt: np.dtype[Any] = np.dtype(trt.nptype(dtype))
    return dt


# What TensorRT keeps for the life of the process: the logger its plugin library logs through (it
# holds a raw pointer: a logger freed after one build would be used after free) and the handles of
# the plugin libraries loaded (a library loads once per process).
_PROCESS: dict[str, Any] = {}
_LOADED_LIBRARIES: dict[str, Any] = {}


def init_plugins(trt: Any) -> TrtLogRecords:
    """TensorRT's bundled plugins, registered once per process through one logger that lives as long
    as the process; returns what that logger has recorded."""
    if "logger" not in _PROCESS:
        logger, records = make_logger(trt)
        trt.init_libnvinfer_plugins(logger, "")
        _PROCESS.update(logger=logger, records=records)
    kept: TrtLogRecords = _PROCESS["records"]
    return kept


def load_plugins(trt: Any, paths: Sequence[Path | str], required: Sequence[str] = ()) -> list[str]:
    """Load plugin libraries from the configured absolute paths only (never a search path), then check
    that every plugin in ``required`` (the model's stages name them) is registered.

    ``IPluginRegistry.load_library`` (8.6 and 10) never raises: it returns None when the library
    cannot be loaded, is not a plugin library, or registers a plugin that is registered already;
    a library this process loaded before is not loaded again.
    """
    records = init_plugins(trt)
    registry = trt.get_plugin_registry()
    loaded = []
    for raw in paths:
        path = Path(raw)
        if not path.is_absolute():
            msg = f"plugin library {raw!r} must be an absolute path (plugins are loaded only from configured paths)"
            raise ConfigError(msg)
        if not path.is_file():
            msg = f"plugin library {path} does not exist"
            raise ConfigError(msg)
        if str(path) not in _LOADED_LIBRARIES:
            handle = registry.load_library(str(path))
            if handle is None:
                msg = (
                    f"TensorRT could not load the plugin library {path} (not a TensorRT plugin library, a "
                    f"dependency of it missing, or a plugin in it registered already): {records.text()}"
                )
                raise BackendError(msg)
            _LOADED_LIBRARIES[str(path)] = handle
        loaded.append(str(path))
    registered = plugin_creators(registry)
    missing = sorted(set(required) - set(registered))
    if missing:
        searched = " and ".join(dict.fromkeys(registered.values())) or "plugin_creator_list"
        msg = (
            f"TensorRT plugin(s) {', '.join(missing)} are not registered after loading "
            f"{', '.join(loaded) or 'no plugin library'} (searched TensorRT {trt.__version__}'s {searched}): list "
            "the library that provides them under the engine config's plugins"
        )
        raise BackendError(msg)
    return loaded


def plugin_creators(registry: Any) -> dict[str, str]:
    """Every registered plugin creator's name -> the registry list it was found in.

    TensorRT 10's ``plugin_creator_list`` holds only the deprecated ``IPluginCreator`` (V1) creators;
    ``IPluginCreatorV3One`` creators, which Autoware's plugin library registers for its sparse
    convolutions, are only in ``all_creators`` (V1 and V3 alike). 8.6 has no ``all_creators``.
    """
    found = {str(c.name): "plugin_creator_list" for c in registry.plugin_creator_list}
    for creator in getattr(registry, "all_creators", ()):
        name = getattr(creator, "name", None)  # an interface pybind11 could not downcast has none
        if name is not None:
            found.setdefault(str(name), "all_creators")
    return found
