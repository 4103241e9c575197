"""The package's TensorRT code and the FAKE checked against the real TensorRT 10.3 and 8.6 bindings.

scripts/install_trt_bindings.py (make setup) puts the real ``tensorrt`` module of each version beside
stub libraries, so it imports but cannot build or run anything; trt_api_dump.py prints its API in a
subprocess (the real module never enters this process, where the fake is installed as ``tensorrt``).
Checked here:
* every ``trt.<Name>[.<Member>]`` the package spells exists in the real module (both versions, apart
  from the names the package reaches only through a version check);
* every TensorRT name the fake defines exists in the real module with the same shape: classes, enum
  members, methods with the real keyword names and no more parameters than the real overloads take,
  properties writable only where the real ones are.
The package calls TensorRT objects only through what its tests run against the fake, so names on
objects (``config.set_flag``) are held to the real API through the fake.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
BINDINGS = REPO / "build" / "trt_bindings"
VERSIONS = ("10.3", "8.6")
# Names of the fake that mirror nothing in TensorRT: the fake's own rules and helpers.
FAKE_ONLY = {"SUPPORTED_OPS", "DLA_OPS", "NUM_DLA_CORES", "MAGIC", "EngineInspector", "ParserError"}
# Spelled by the package only behind a version check (TensorRT 10 only).
TEN_ONLY: set[str] = set()


@cache
def real_api(version: str) -> dict[str, Any]:
    root = BINDINGS / version
    if not (root / "tensorrt").is_dir():
        pytest.skip(f"the real TensorRT {version} bindings are not in {root}: run make setup")
    env = dict(os.environ, PYTHONPATH=str(root), LD_LIBRARY_PATH=str(root / "stubs"))
    dump = Path(__file__).with_name("trt_api_dump.py")
    out = subprocess.run([sys.executable, str(dump)], env=env, capture_output=True, text=True, timeout=120)
    if "Python version mismatch" in out.stderr:  # make setup installs them for the dev venv's Python
        pytest.skip(f"the TensorRT {version} bindings in {root} were installed for another Python")
    assert out.returncode == 0, out.stderr
    api: dict[str, Any] = json.loads(out.stdout)
    assert api["version"].startswith(version)
    return api


def package_uses(sources: dict[str, str]) -> set[str]:
    """Dotted names the code spells on a name called ``trt``: 'Builder', 'BuilderFlag.INT8', ..."""
    used: set[str] = set()
    for text in sources.values():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Attribute):
                continue
            chain: list[str] = []
            cur: ast.expr = node
            while isinstance(cur, ast.Attribute):
                chain.insert(0, cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "trt":
                used.add(".".join(chain[:2]))
    # a chain also walks through its prefixes: keep only the longest of each
    return {u for u in used if not any(v != u and v.startswith(u + ".") for v in used)} | {
        u.split(".")[0] for u in used
    }


def missing_in(api: dict[str, Any], dotted: str) -> str | None:
    """Why ``dotted`` is not in the real API, or None."""
    head, _, member = dotted.partition(".")
    entry = api["names"].get(head)
    if entry is None:
        return f"tensorrt.{head} does not exist"
    if not member or member.startswith("__"):
        return None
    if entry["kind"] == "enum":
        return None if member in entry["members"] else f"tensorrt.{head}.{member} is not a member"
    members = entry.get("members", {})
    return None if member in members else f"tensorrt.{head}.{member} does not exist"


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "bevfusion_ros").rglob("*.py")}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_tensorrt_name_the_package_spells_exists(version: str) -> None:
    api = real_api(version)
    uses = package_uses(package_sources())
    assert {"Builder", "BuilderFlag.INT8", "IInt8EntropyCalibrator2"} <= uses  # the scan sees them
    skip = TEN_ONLY if version.startswith("8") else set()
    problems = sorted(filter(None, (missing_in(api, u) for u in uses - skip)))
    assert not problems, problems


def test_a_misspelt_name_is_caught() -> None:
    """The check above fails when the package misspells a name (a mutation of its own source)."""
    api = real_api("10.3")
    sources = package_sources()
    path = next(p for p, t in sources.items() if "trt.BuilderFlag.INT8" in t)
    mutated = dict(sources, **{path: sources[path].replace("trt.BuilderFlag.INT8", "trt.BuilderFlag.INT_8")})
    problems = [m for m in (missing_in(api, u) for u in package_uses(mutated)) if m]
    assert problems == ["tensorrt.BuilderFlag.INT_8 is not a member"]


# -- the fake against the real module ----------------------------------------------------------------


def fake_names() -> Iterator[tuple[str, Any]]:
    from fakes import fake_tensorrt

    for name, obj in vars(fake_tensorrt).items():
        if name.startswith("_") or name in FAKE_ONLY or inspect.ismodule(obj):
            continue
        if getattr(obj, "__module__", "").startswith("fakes."):
            yield name, obj
    yield "__version__", fake_tensorrt.__version__


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    for klass in cls.__mro__:
        if klass is object or not klass.__module__.startswith("fakes."):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            yield name, raw


def fake_mismatches(api: dict[str, Any], name: str, obj: Any) -> list[str]:
    real = api["names"].get(name)
    if real is None:
        return [f"{name}: not in tensorrt {api['version']}"]
    if name == "__version__":
        return []
    problems: list[str] = []
    if isinstance(obj, type) and hasattr(obj, "__members__"):  # an enum
        if real["kind"] != "enum":
            return [f"{name}: an enum in the fake, a {real['kind']} in TensorRT"]
        extra = sorted(set(obj.__members__) - set(real["members"]))
        return [f"{name}.{m}: not a member in TensorRT" for m in extra]
    if isinstance(obj, type):
        members = real.get("members", {})
        seen: set[str] = set()
        for member, raw in _own_members(obj):
            if member in seen:
                continue
            seen.add(member)
            spec = members.get(member)
            where = f"{name}.{member}"
            if spec is None:
                problems.append(f"{where}: not in TensorRT")
            elif isinstance(raw, property):
                if spec["kind"] != "property":
                    problems.append(f"{where}: a property in the fake, a {spec['kind']} in TensorRT")
                elif raw.fset is not None and not spec["writable"]:
                    problems.append(f"{where}: settable in the fake, read-only in TensorRT")
            elif isinstance(raw, type) and hasattr(raw, "__members__"):
                extra = sorted(set(raw.__members__) - set(spec.get("members", [])))
                problems += [f"{where}.{m}: not a member in TensorRT" for m in extra]
            elif callable(raw):
                problems += _signature_problems(where, raw, spec.get("overloads"), method=True)
        return problems
    if callable(obj):
        return _signature_problems(name, obj, real.get("overloads"), method=False)
    return problems


def _signature_problems(where: str, func: Any, overloads: list[list[str]] | None, method: bool) -> list[str]:
    if overloads is None:
        return []
    params = list(inspect.signature(func).parameters.values())
    if method:
        params = params[1:]  # self
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    required = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for real in overloads:
        # every keyword the fake accepts is one TensorRT accepts, and the fake needs no more arguments
        if names == real[: len(names)] and len(required) <= len(real):
            return []
    return [f"{where}{tuple(names)}: TensorRT takes {' or '.join(str(tuple(o)) for o in overloads)}"]


@pytest.mark.parametrize("version", ["10.3"])
def test_the_fake_mirrors_the_real_module(version: str) -> None:
    api = real_api(version)
    problems = [p for name, obj in fake_names() for p in fake_mismatches(api, name, obj)]
    assert not problems, "\n".join(problems)


# -- behaviour: the package's helpers on the real module ---------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_the_package_helpers_work_on_the_real_module(version: str, tmp_path: Path) -> None:
    real_api(version)  # skips without the bindings
    root = BINDINGS / version
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(REPO)]), LD_LIBRARY_PATH=str(root / "stubs"))
    probe = Path(__file__).with_name("trt_behaviour_probe.py")
    cmd = [sys.executable, str(probe), str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    # the logger trampoline: a Python ILogger subclass, each real severity mapped to its name
    assert got["is_ilogger"]
    assert got["logger"] == [[n.lower(), n] for n in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")]
    # dtypes as the real nptype maps them, and as the fake maps the same names
    from fakes.fake_trt_types import DataType, nptype

    assert got["np_dtype"] == {n: str(np.dtype(nptype(DataType[n]))) for n in got["np_dtype"]}
    assert ("INT64" in got["np_dtype"]) == version.startswith("10")  # 8.6 has no int64
    assert got["network_flags"] == (0 if version.startswith("10") else 1)  # EXPLICIT_BATCH on 8.6 only
    assert got["enum_name"] == "FP16"
    # the package's calibrator on the real pybind11 base: a failing batch ends the batches, is kept,
    # no cache is written afterwards, and the build gets one error naming it
    assert got["calibrator_is_real_subclass"] and got["algorithm"] == "ENTROPY_CALIBRATION_2"
    assert got["batch_size"] == 1 and got["first_batch_pointers"] == 1 and got["second_batch"] is None
    assert not got["cache_written_after_error"] and got["read_cache"] is None
    assert "INT8 calibration failed after 1 batch(es): copy failed" in got["raised"]


def test_a_misspelt_fake_name_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mirror check fails when the fake misspells a method, a keyword or an enum member."""
    from fakes import fake_tensorrt

    api = real_api("10.3")

    def load_library(self, path: str) -> None:  # type: ignore[no-untyped-def]  # TensorRT calls it plugin_path
        return None

    monkeypatch.setattr(fake_tensorrt.IPluginRegistry, "load_library", load_library)
    monkeypatch.setattr(fake_tensorrt.IBuilderConfig, "set_timing_cashe", lambda self, cache: True, raising=False)
    assert fake_mismatches(api, "IPluginRegistry", fake_tensorrt.IPluginRegistry) == [
        "IPluginRegistry.load_library('path',): TensorRT takes ('plugin_path',)"
    ]
    assert "IBuilderConfig.set_timing_cashe: not in TensorRT" in fake_mismatches(
        api, "IBuilderConfig", fake_tensorrt.IBuilderConfig
    )
