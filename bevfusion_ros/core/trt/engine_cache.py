"""TensorRT engine cache: every ``<stage>.engine`` has a JSON sidecar saying what it was built from,
with what and for which device, so a stale engine is rebuilt (or refused with the reason) instead of
being deserialised into undefined behaviour.

Sidecar fields: ONNX sha256, engine sha256 and size, TensorRT version, device name and compute
capability, precision, DLA core (-1 = GPU), builder flags, build time. ``check`` compares a sidecar
with what the runtime expects and returns every mismatch as one sentence; ``read_engine`` refuses
an empty, truncated or altered engine file before TensorRT ever sees it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import BackendError

SIDECAR_SUFFIX = ".json"
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8", "best")


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(engine: Path | str) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class EngineInfo:
    stage: str
    onnx_sha256: str
    tensorrt_version: str
    device_name: str
    compute_capability: str  # "8.7" on AGX Orin
    precision: str
    dla_core: int = -1
    flags: tuple[str, ...] = ()
    engine_sha256: str = ""
    engine_bytes: int = 0
    build_seconds: float = 0.0
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # workspace, profiles, calibration cache, ...

    def to_json(self) -> str:
        d = asdict(self)
        d["flags"] = list(self.flags)
        return json.dumps(d, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> EngineInfo:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            msg = f"engine sidecar {where} is not valid JSON: {exc}"
            raise BackendError(msg) from None
        if not isinstance(raw, dict):
            msg = f"engine sidecar {where} is not a JSON object"
            raise BackendError(msg)
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in raw]
        if missing:
            msg = f"engine sidecar {where} lacks {', '.join(missing)}"
            raise BackendError(msg)
        values = {k: v for k, v in raw.items() if k in known}
        values["flags"] = tuple(values.get("flags", ()))
        try:
            return cls(**values)
        except TypeError as exc:
            msg = f"engine sidecar {where} is malformed: {exc}"
            raise BackendError(msg) from None


@dataclass(frozen=True)
class Expected:
    """What the runtime needs; empty strings / None mean 'do not check'."""

    onnx_sha256: str = ""
    tensorrt_version: str = ""
    device_name: str = ""
    compute_capability: str = ""
    precision: str = ""
    dla_core: int | None = None


def check(info: EngineInfo, expected: Expected) -> list[str]:
    """Every way ``info`` differs from ``expected``, as sentences; empty when the engine fits."""
    problems = []
    if info.format_version != FORMAT_VERSION:
        problems.append(f"sidecar format {info.format_version}, this runtime writes {FORMAT_VERSION}")
    pairs = [
        ("ONNX file (sha256)", info.onnx_sha256, expected.onnx_sha256),
        ("TensorRT version", info.tensorrt_version, expected.tensorrt_version),
        ("device", info.device_name, expected.device_name),
        ("compute capability", info.compute_capability, expected.compute_capability),
        ("precision", info.precision, expected.precision),
    ]
    for what, have, want in pairs:
        if want and have != want:
            n = 12 if "sha256" in what else None  # a hash prefix is enough to tell them apart
            problems.append(f"{what}: engine built for {have[:n]!r}, now {want[:n]!r}")
    if expected.dla_core is not None and info.dla_core != expected.dla_core:
        problems.append(f"DLA core: engine built for {info.dla_core}, now {expected.dla_core} (-1 = GPU)")
    return problems


def write(engine: Path | str, serialized: bytes, info: EngineInfo) -> EngineInfo:
    """Write the engine and its sidecar (sidecar last, so a crash mid-way leaves no valid pair)."""
    engine = Path(engine)
    if not serialized:
        msg = f"refusing to write an empty engine for stage {info.stage}"
        raise BackendError(msg)
    tmp = engine.with_name(engine.name + ".tmp")
    tmp.write_bytes(serialized)
    tmp.replace(engine)
    done = EngineInfo(
        **{
            **asdict(info),
            "flags": tuple(info.flags),
            "engine_sha256": hashlib.sha256(serialized).hexdigest(),
            "engine_bytes": len(serialized),
        }
    )
    sidecar_path(engine).write_text(done.to_json())
    return done


def read_info(engine: Path | str) -> EngineInfo:
    side = sidecar_path(engine)
    if not side.is_file():
        msg = f"engine {engine} has no sidecar {side.name}: it was not built by build-engines; rebuild it"
        raise BackendError(msg)
    return EngineInfo.from_json(side.read_text(), str(side))


def read_engine(engine: Path | str, info: EngineInfo) -> bytes:
    """The engine's bytes, after checking size and hash against the sidecar."""
    engine = Path(engine)
    if not engine.is_file():
        msg = f"engine {engine} does not exist; build it with `bevfusion-ros build-engines`"
        raise BackendError(msg)
    data = engine.read_bytes()
    if not data:
        msg = f"engine {engine} is empty"
        raise BackendError(msg)
    if info.engine_bytes and len(data) != info.engine_bytes:
        msg = f"engine {engine} has {len(data)} bytes, its sidecar says {info.engine_bytes}: truncated or replaced"
        raise BackendError(msg)
    if info.engine_sha256 and hashlib.sha256(data).hexdigest() != info.engine_sha256:
        msg = f"engine {engine} does not match its sidecar's sha256: corrupted or replaced; rebuild it"
        raise BackendError(msg)
    return data
