"""package.xml resolves on the vehicle's distributions and declares what the code imports.

``rosdep install --from-paths src`` on a Jetson reads package.xml: every key must be a rosdep key
with an Ubuntu rule for jammy (Humble, JetPack 6) and noble (Jazzy, JetPack 7.2), or a package that
the distribution releases. Both are read from rosdistro's own files in ../shared/ros_api/rosdistro.
Every ROS package the code imports must be declared (exec_depend for the package and its launch
files, test_depend or exec_depend for the tests), and every other third-party import either maps to a
declared rosdep key or is listed below as installed another way (the README's vehicle section).
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ROSDISTRO = REPO.parent / "shared" / "ros_api" / "rosdistro"
# distribution -> the Ubuntu release its binaries are built for
DISTROS = {"humble": "jammy", "jazzy": "noble"}
# Third-party modules (not ROS packages) and the rosdep key that installs each.
ROSDEP_KEY_OF_MODULE = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "scipy": "python3-scipy",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "rosbags": "python3-rosbags-pip",
    "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
    "psutil": "python3-psutil",
}
# Imported, deliberately not rosdep keys: each is optional and imported where it is needed.
NOT_FROM_ROSDEP = {
    "onnxruntime": "JetPack needs NVIDIA's onnxruntime-gpu wheel; the PyPI key would install the CPU build",
    "onnx": "cutting graphs with plugin ops, and the tests' fake TensorRT parser; pip",
    "tensorrt": "JetPack's python3-libnvinfer (apt from NVIDIA's repository)",
    "pycuda": "built on the car against JetPack's CUDA (pip)",
    "pynvml": "the monitor on desktop GPUs only (nvml extra)",
    "ray": "fleet evaluation, offline (fleet extra)",
    "nuscenes": "evaluate's metrics, offline (requirements/devkit.txt)",
}
# Our own top-level modules and the tests' helper packages.
OWN = {"bevfusion_ros", "fakes", "helpers", "model_variants", "publish_frame", "trt_api_dump"}


@cache
def rosdep_rules() -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for name in ("base.yaml", "python.yaml"):
        path = ROSDISTRO / "rosdep" / name
        if not path.is_file():
            pytest.skip(f"{path} is missing: check out the project beside ../shared")
        rules.update(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return rules


@cache
def released_packages(distro: str) -> frozenset[str]:
    path = ROSDISTRO / distro / "distribution.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is missing: check out the project beside ../shared")
    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out: set[str] = set()
    for repo_name, repo in data["repositories"].items():
        release = repo.get("release") or {}
        if release.get("version"):  # a repository listed without a released version gives nothing
            out.update(release.get("packages", [repo_name]))
    return frozenset(out)


def ubuntu_rule_exists(rule: Any, codename: str) -> bool:
    """Whether a rosdep rule installs something on this Ubuntu release: a package list for every
    release, an installer entry (``pip: {packages: ...}``), or a per-release entry that is not null."""
    ubuntu = rule.get("ubuntu") if isinstance(rule, Mapping) else None
    if ubuntu is None:
        return False
    if isinstance(ubuntu, list):
        return bool(ubuntu)
    if codename in ubuntu:
        return ubuntu[codename] is not None
    if "*" in ubuntu:
        return ubuntu["*"] is not None
    # installer keys at the top (pip, apt, source) apply to every release
    return any(k in ubuntu for k in ("pip", "apt", "source"))


def unresolved(keys: Iterable[str], distro: str) -> list[str]:
    """The keys that ``rosdep install`` cannot resolve on this distribution, each with why."""
    codename = DISTROS[distro]
    rules, released = rosdep_rules(), released_packages(distro)
    out = []
    for key in sorted(set(keys)):
        if key in released:
            continue
        if key not in rules:
            out.append(f"{key}: neither a rosdep key nor a package {distro} releases")
        elif not ubuntu_rule_exists(rules[key], codename):
            out.append(f"{key}: the rosdep key has no rule for Ubuntu {codename}")
    return out


def package_xml_deps(path: Path = REPO / "package.xml") -> dict[str, set[str]]:
    root = ET.parse(path).getroot()
    deps = {tag: {e.text or "" for e in root.findall(tag)} for tag in ("depend", "exec_depend", "test_depend")}
    deps["build_depend"] = {e.text or "" for e in root.findall("build_depend")}
    return deps


def imports(files: Iterable[Path], root: Path = REPO) -> dict[str, str]:
    """Top-level third-party module -> the first file:line importing it (standard library left out)."""
    found: dict[str, str] = {}
    for path in sorted(files):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN:
                    found.setdefault(top, f"{path.relative_to(root)}:{node.lineno}")
    return found


def undeclared(used: Mapping[str, str], declared: set[str], ros_packages: frozenset[str]) -> list[str]:
    """What the imports need that package.xml does not declare, or cannot be judged."""
    out = []
    for module, where in sorted(used.items()):
        if module in ros_packages:
            if module not in declared:
                out.append(f"{module} (ROS package, imported at {where}) is not declared")
        elif module in ROSDEP_KEY_OF_MODULE:
            if ROSDEP_KEY_OF_MODULE[module] not in declared:
                out.append(f"{module} (imported at {where}) needs {ROSDEP_KEY_OF_MODULE[module]}, not declared")
        elif module not in NOT_FROM_ROSDEP:
            out.append(f"{module} (imported at {where}): unknown; map it to a rosdep key or to NOT_FROM_ROSDEP")
    return out


def product_files() -> list[Path]:
    return [*(REPO / "bevfusion_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]


@pytest.mark.parametrize("distro", sorted(DISTROS))
def test_every_key_resolves_on_the_vehicles_distributions(distro: str) -> None:
    deps = package_xml_deps()
    assert unresolved(set().union(*deps.values()), distro) == []


def test_every_import_of_the_package_and_its_launch_files_is_declared() -> None:
    deps = package_xml_deps()
    assert undeclared(imports(product_files()), deps["exec_depend"] | deps["depend"], released_packages("humble")) == []


def test_every_import_of_the_tests_is_declared() -> None:
    deps = package_xml_deps()
    declared = deps["exec_depend"] | deps["depend"] | deps["test_depend"]
    assert undeclared(imports((REPO / "test").rglob("*.py")), declared, released_packages("humble")) == []


def test_the_checks_fail_on_an_unknown_key_and_an_undeclared_import(tmp_path: Path) -> None:
    """Each check can fail: a misspelt key, a key with no noble rule, an undeclared ROS import."""
    assert unresolved(["rclpy", "python3-numpy"], "jazzy") == []
    assert unresolved(["vison_msgs"], "humble") == ["vison_msgs: neither a rosdep key nor a package humble releases"]
    # python3-icecream's rule is null on focal, so an imaginary jazzy-on-focal would not resolve it
    assert not ubuntu_rule_exists({"ubuntu": {"*": ["x"], "noble": None}}, "noble")
    assert ubuntu_rule_exists({"ubuntu": {"pip": {"packages": ["rosbags"]}}}, "jammy")
    src = tmp_path / "mod.py"
    src.write_text("import numpy\nfrom tf2_msgs.msg import TFMessage\nimport somethingelse\n")
    found = imports([src], tmp_path)
    assert found == {"numpy": "mod.py:1", "tf2_msgs": "mod.py:2", "somethingelse": "mod.py:3"}
    problems = undeclared(found, {"python3-numpy"}, released_packages("humble"))
    assert problems == [
        "somethingelse (imported at mod.py:3): unknown; map it to a rosdep key or to NOT_FROM_ROSDEP",
        "tf2_msgs (ROS package, imported at mod.py:2) is not declared",
    ]
