"""Engine cache sidecars: hit, every kind of mismatch, truncated / altered / missing files."""

from __future__ import annotations

import json

import pytest

from bevfusion_ros.core.errors import BackendError
from bevfusion_ros.core.trt import engine_cache as ec

ORIN = {"tensorrt_version": "10.3.0", "device_name": "Orin", "compute_capability": "8.7"}


def info(**kw) -> ec.EngineInfo:  # type: ignore[no-untyped-def]
    base = {"stage": "fuser", "onnx_sha256": "a" * 64, "precision": "int8", "dla_core": 0, **ORIN}
    return ec.EngineInfo(**{**base, **kw})


def test_write_then_read_is_a_hit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = tmp_path / "fuser.engine"
    done = ec.write(engine, b"\x01\x02plan", info(flags=("FP16", "INT8", "GPU_FALLBACK")))
    got = ec.read_info(engine)
    assert got == done and got.engine_bytes == 6 and got.flags == ("FP16", "INT8", "GPU_FALLBACK")
    assert ec.read_engine(engine, got) == b"\x01\x02plan"
    assert ec.check(got, ec.Expected(onnx_sha256="a" * 64, precision="int8", dla_core=0, **ORIN)) == []


@pytest.mark.parametrize(
    ("expected", "fragment"),
    [
        ({"onnx_sha256": "b" * 64}, "ONNX file (sha256): engine built for 'aaaaaaaaaaaa', now 'bbbbbbbbbbbb'"),
        ({"tensorrt_version": "10.7.0"}, "TensorRT version: engine built for '10.3.0', now '10.7.0'"),
        ({"device_name": "Orin Nano"}, "device: engine built for 'Orin', now 'Orin Nano'"),
        ({"compute_capability": "9.0"}, "compute capability"),
        ({"precision": "fp16"}, "precision: engine built for 'int8', now 'fp16'"),
        ({"dla_core": -1}, "DLA core: engine built for 0, now -1"),
    ],
)
def test_each_mismatch_is_named(expected, fragment) -> None:  # type: ignore[no-untyped-def]
    problems = ec.check(info(), ec.Expected(**expected))
    assert len(problems) == 1 and fragment in problems[0], problems


def test_truncated_altered_missing_and_empty_engines_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = tmp_path / "e.engine"
    meta = ec.write(engine, b"x" * 100, info())
    engine.write_bytes(b"x" * 60)
    with pytest.raises(BackendError, match="60 bytes, its sidecar says 100: truncated"):
        ec.read_engine(engine, meta)
    engine.write_bytes(b"y" * 100)
    with pytest.raises(BackendError, match="does not match its sidecar's sha256"):
        ec.read_engine(engine, meta)
    engine.unlink()
    with pytest.raises(BackendError, match="does not exist; build it"):
        ec.read_engine(engine, meta)
    with pytest.raises(BackendError, match="refusing to write an empty engine"):
        ec.write(engine, b"", info())


def test_missing_or_broken_sidecar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = tmp_path / "e.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(BackendError, match=r"has no sidecar e\.engine\.json"):
        ec.read_info(engine)
    ec.sidecar_path(engine).write_text("{not json")
    with pytest.raises(BackendError, match="not valid JSON"):
        ec.read_info(engine)
    ec.sidecar_path(engine).write_text(json.dumps({"stage": "x"}))
    with pytest.raises(BackendError, match="lacks onnx_sha256, tensorrt_version"):
        ec.read_info(engine)


def test_sha256_file_matches_hashlib(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    p = tmp_path / "f"
    p.write_bytes(b"abc" * 1_000_000)
    assert ec.sha256_file(p) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
