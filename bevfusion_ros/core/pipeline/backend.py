"""The backend contract, after Polygraphy's runner: activate / infer / deactivate, timing recorded.

A backend runs one ONNX stage. ``activate`` loads it (heavy imports happen here, never at module
import), ``infer`` maps input names to arrays and returns output names to arrays, ``deactivate``
releases everything. Every ``infer`` records its wall time in ``last_inference_ms``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from types import TracebackType

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BackendError, ConfigError
from bevfusion_ros.core.model import ModelSpec, Stage

Arrays = dict[str, npt.NDArray[np.generic]]
BackendFactory = Callable[[ModelSpec, Stage], "Backend"]

# name -> "module:Class"; modules are imported only when a backend of that name is created.
_REGISTRY: dict[str, str] = {
    "onnxruntime": "bevfusion_ros.core.backends.onnxruntime:OnnxRuntimeBackend",
    "null": "bevfusion_ros.core.backends.null:NullBackend",
    "tensorrt": "bevfusion_ros.core.backends.tensorrt:TensorRTBackend",
}

_NP_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def registered_backends() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def create_backend(name: str, model: ModelSpec, stage: Stage, **options: object) -> Backend:
    if name not in _REGISTRY:
        msg = f"backend is {name!r}; allowed: {', '.join(_REGISTRY)}"
        raise ConfigError(msg)
    module, cls = _REGISTRY[name].split(":")
    backend_cls = getattr(importlib.import_module(module), cls)
    backend: Backend = backend_cls(model, stage, **options)
    return backend


class Backend:
    """Base class: subclasses implement ``activate_impl``, ``infer_impl`` and ``deactivate_impl``."""

    name = "base"

    def __init__(self, model: ModelSpec, stage: Stage) -> None:
        self.model = model
        self.stage = stage
        self.is_active = False
        self.last_inference_ms = float("nan")

    def activate(self) -> None:
        if self.is_active:
            return
        self.activate_impl()
        self.is_active = True

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    def infer(self, feeds: Mapping[str, npt.NDArray[np.generic]]) -> Arrays:
        if not self.is_active:
            msg = f"{self.name} backend for stage {self.stage.name} is not active; call activate() first"
            raise BackendError(msg)
        checked = self._check_feeds(feeds)
        start = time.perf_counter()
        out = self.infer_impl(checked)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def _check_feeds(self, feeds: Mapping[str, npt.NDArray[np.generic]]) -> Arrays:
        out: Arrays = {}
        for spec in self.stage.inputs:
            if spec.name not in feeds:
                msg = f"stage {self.stage.name}: input {spec.name} was not given (got {', '.join(feeds)})"
                raise BackendError(msg)
            arr = np.asarray(feeds[spec.name])
            if not spec.matches(arr.shape):
                msg = (
                    f"stage {self.stage.name}: input {spec.name} has shape {arr.shape}, "
                    f"the model YAML says {list(spec.shape)}"
                )
                raise BackendError(msg)
            out[spec.name] = np.ascontiguousarray(arr, dtype=_NP_DTYPES[spec.dtype])
        return out

    def __enter__(self) -> Backend:
        self.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()

    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feeds: Arrays) -> Arrays:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError
