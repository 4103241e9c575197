"""FAKE TensorRT value types shared by the fake's builder and runtime (see fake_tensorrt.py)."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


_NP = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
    DataType.BOOL: np.bool_,
    DataType.UINT8: np.uint8,
    DataType.INT64: np.int64,
}


def nptype(trt_type: DataType) -> type:
    return _NP[DataType(trt_type)]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class LayerInformationFormat(enum.IntEnum):
    ONELINE = 0
    JSON = 1


class Dims(tuple):  # type: ignore[type-arg]
    """TensorRT's Dims behaves as a sequence of ints in Python."""

    def __new__(cls, dims: Any = ()) -> Dims:
        return super().__new__(cls, tuple(int(d) for d in dims))


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE

    def __init__(self) -> None:
        pass

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    def __init__(self, min_severity: ILogger.Severity = ILogger.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity
        self.messages: list[tuple[ILogger.Severity, str]] = []

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        self.messages.append((severity, msg))


def emit(logger: Any, severity: ILogger.Severity, msg: str) -> None:
    """How TensorRT reports: through the user's logger (an ILogger subclass) or the built-in one."""
    logger.log(severity, msg)
