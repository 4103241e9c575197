"""The package's shape: what colcon and the vehicle rely on."""

from __future__ import annotations

import py_compile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_declares_the_runtime_and_test_dependencies() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "bevfusion_ros"
    execs = {e.text for e in root.findall("exec_depend")}
    for dep in (
        "rclpy",
        "sensor_msgs",
        "sensor_msgs_py",
        "nav_msgs",
        "vision_msgs",
        "visualization_msgs",
        "diagnostic_msgs",
        "message_filters",
        "cv_bridge",
        "launch",
        "launch_ros",
    ):
        assert dep in execs, dep
    tests = {e.text for e in root.findall("test_depend")}
    assert {"launch_testing", "launch_testing_ros"} <= tests
    assert root.find("export/build_type").text == "ament_python"


def test_ament_resource_marker_and_data_folders_exist() -> None:
    assert (REPO / "resource" / "bevfusion_ros").is_file()
    for folder in ("launch", "config", "engines", "test"):
        assert (REPO / folder).is_dir(), folder
    setup = (REPO / "setup.py").read_text()
    for needle in ("share/ament_index/resource_index/packages", "launch/*.launch.py", "config/*.xml", "engines/"):
        assert needle in setup, needle


def test_launch_files_compile() -> None:
    files = list((REPO / "launch").glob("*.launch.py"))
    assert files
    for f in files:
        py_compile.compile(str(f), doraise=True)
        assert "generate_launch_description" in f.read_text()


def test_fastdds_profile_is_shared_memory_only() -> None:
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(REPO / "config" / "fastdds_shm.xml").getroot()
    desc = root.find("d:profiles/d:transport_descriptors/d:transport_descriptor", ns)
    assert desc.findtext("d:type", namespaces=ns) == "SHM"
    assert int(desc.findtext("d:segment_size", namespaces=ns)) == 256 * 2**20
    assert int(desc.findtext("d:maxMessageSize", namespaces=ns)) == 16 * 2**20
    rtps = root.find("d:profiles/d:participant/d:rtps", ns)
    assert rtps.findtext("d:useBuiltinTransports", namespaces=ns) == "false"


def test_a_non_editable_install_carries_every_file_the_package_reads(tmp_path: Path) -> None:
    """colcon's default (no --symlink-install) and pip install copy only the declared package data:
    every non-Python file under bevfusion_ros/ (the CUDA sources pycuda compiles on the car) must be
    among them, not only in the source tree an editable install points at."""
    import subprocess
    import sys

    out = tmp_path / "lib"
    res = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    shipped = {p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.suffix != ".py"}
    tracked = subprocess.run(["git", "ls-files", "bevfusion_ros"], cwd=REPO, capture_output=True, text=True, check=True)
    wanted = {Path(f) for f in tracked.stdout.split() if not f.endswith(".py")}
    assert wanted and wanted <= shipped, sorted(map(str, wanted - shipped))


def test_no_package_index_host_is_named_in_the_repository() -> None:
    """Packages come through their registries' own clients (pip, apt) by name; a script that names an
    index's host (curl from it) breaks where that host is mirrored or unreachable."""
    import subprocess

    hosts = ["pypi" + ".org", "pythonhosted" + ".org", "registry.npmjs" + ".org", "deb.debian" + ".org"]
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    named = []
    for rel in filter(None, listed.decode().split("\0")):
        path = REPO / rel
        if path.suffix in {".onnx", ".npz", ".png"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        named += [f"{rel}: {h}" for h in hosts if h in text]
    assert named == []
