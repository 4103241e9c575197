"""``bevfusion-ros selftest``: here (no TensorRT) it must run and say what it skipped; with the FAKE
TensorRT and CUDA device (test/fakes) every variant is built, compared and reported, and a check
outside its tolerance fails the command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bevfusion_ros.tools.commands import selftest


def _args(out: Path, **kw: object) -> argparse.Namespace:
    a = argparse.Namespace(
        out=str(out), variants="fp16,int8,int8-dla0", frames=2, calibration_frames=2, bag="", device=0,
        no_progress=True, plugin_library=[], plugin_model="",
    )  # fmt: skip
    vars(a).update(kw)
    return a


def _checks(out: Path) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    return {(c["section"], c["name"]): c for c in json.loads((out / "selftest.json").read_text())}


def test_without_tensorrt_it_runs_and_reports_what_it_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the command's own defaults: its report goes under build/, not into a new folder where it runs
    monkeypatch.chdir(tmp_path)
    ap = argparse.ArgumentParser()
    selftest.add_arguments(ap)
    assert selftest.run(ap.parse_args(["--frames", "1", "--variants", "fp16"])) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]
    out = tmp_path / "build" / "selftest"
    checks = _checks(out)
    assert checks[("environment", "tensorrt")]["status"] == "SKIP"
    assert "No module named 'tensorrt'" in checks[("environment", "tensorrt")]["detail"]
    assert checks[("variant fp16", "build")]["status"] == "SKIP"
    assert checks[("tensorrt assumptions", "calibrator exceptions are swallowed")]["status"] == "SKIP"
    assert checks[("reference", "latency")]["data"]["onnxruntime_ms"]["total"] > 0
    md = (out / "selftest.md").read_text()
    assert "| tensorrt | SKIP |" in md and "| camera.backbone |" in md


def test_with_fake_tensorrt_every_variant_is_built_compared_and_reported(trt_fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert selftest.run(_args(tmp_path)) == 0
    c = _checks(tmp_path)
    assert c[("environment", "tensorrt")]["detail"] == "TensorRT 10.3.0"
    assert c[("environment", "dla")]["detail"] == "2 DLA core(s)"
    for v in ("fp16", "int8", "int8-dla0"):
        assert c[(f"variant {v}", "build")]["status"] == "PASS"
        acc = c[(f"variant {v}", "accuracy vs ONNX Runtime")]
        assert acc["status"] == "PASS" and max(acc["data"].values()) < 1e-5  # the fake computes in fp32
        assert c[(f"variant {v}", "detections vs ONNX Runtime")]["status"] == "PASS"
        assert c[(f"variant {v}", "overlap")]["status"] == "SKIP"  # the fake CUDA has no nvcc
    build = c[("variant int8", "build")]["data"]
    assert build["fuser"]["precision"] == "best" and build["lidar.backbone"]["precision"] == "best"  # QAT: all INT8
    assert "GPU fallback" in c[("variant int8-dla0", "DLA head.map")]["detail"]
    assert (tmp_path / "engines" / "int8-dla0" / "calibration" / "fuser.cache").is_file()
    # each assumption the fake makes about TensorRT is exercised by name (the fake holds them all; on a
    # vehicle the same checks say which held there)
    from bevfusion_ros.core.trt.assumptions import CHECKS

    for name in CHECKS:
        assert c[("tensorrt assumptions", name)]["status"] == "PASS", c[("tensorrt assumptions", name)]
    assert "| calibrator exceptions are swallowed | PASS |" in (tmp_path / "selftest.md").read_text()
    assert trt_fakes.build_stats["builds"] == 18 + 3  # the variants, then three tiny networks (assumptions)


def test_a_check_outside_tolerance_fails_the_command(  # type: ignore[no-untyped-def]
    trt_fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(selftest.TOLERANCE, "fp16", (-1.0, 0.9))
    assert selftest.run(_args(tmp_path, variants="fp16")) == 1
    assert _checks(tmp_path)[("variant fp16", "accuracy vs ONNX Runtime")]["status"] == "FAIL"
    assert "| accuracy vs ONNX Runtime | FAIL |" in (tmp_path / "selftest.md").read_text()


def test_it_names_the_registry_list_of_each_plugin_creator_the_model_needs(trt_fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from model_variants import SPARSE_PLUGINS, voxelnet_yaml

    lib = tmp_path / "libautoware_tensorrt_plugins.so"  # V3 creators, as Autoware registers them
    lib.write_text("".join(f"{name} v3\n" for name in SPARSE_PLUGINS))
    model = voxelnet_yaml(tmp_path)
    checks = selftest.plugin_checks(trt_fakes.trt, [str(lib)], str(model))
    assert [(c.name, c.status, c.detail) for c in checks] == [
        (name, "PASS", "registered, in all_creators") for name in sorted(SPARSE_PLUGINS)
    ]
    # registered for the rest of the process: the model's plugins are found without the library again
    assert [c.status for c in selftest.plugin_checks(trt_fakes.trt, [], str(model))] == ["PASS", "PASS"]
    other = tmp_path / "libother.so"
    other.write_text("BEVPool\n")
    assert [(c.name, c.status, c.detail) for c in selftest.plugin_checks(trt_fakes.trt, [str(other)], "")] == [
        ("BEVPool", "PASS", "registered, in plugin_creator_list"),
        *((name, "PASS", "registered, in all_creators") for name in sorted(SPARSE_PLUGINS)),
    ]
    assert selftest.plugin_checks(trt_fakes.trt, ["relative.so"], "")[0].status == "FAIL"
    assert selftest.plugin_checks(None, [str(lib)], "")[0].status == "SKIP"
