#!/usr/bin/env python3
"""Build an interface package (vision_msgs, autoware_perception_msgs) from its upstream .msg files
with the real rosidl toolchain, into a venv that holds the ROS 2 wheels.

Run with the venv's interpreter. Nothing is needed at run time afterwards: the generated
Python package and its typesupport libraries are installed into the venv itself. The recipe
(interfaces/<package>/CMakeLists.txt) reads the .msg files from -D<PACKAGE>_MSG_DIR.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# The wheels were built in manylinux containers and their exported CMake targets still name
# that container's interpreter (/opt/python/cp311-cp311/... for the cp311 wheels, cp310-cp310 for
# the cp310 ones); rosidl_generator_py refuses to configure against missing paths.
_WHEEL_PYTHON = r"/opt/python/cp3\d+-cp3\d+"
_WHEEL_PYTHON_INCLUDE = re.compile(_WHEEL_PYTHON + r"/include/python3\.\d+")
_WHEEL_NUMPY_INCLUDE = re.compile(_WHEEL_PYTHON + r"/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def fail(msg: str) -> None:
    print(f"build_interfaces: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def patch_cmake_exports(prefix: Path) -> int:
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    patched = 0
    for path in (prefix / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        new = _WHEEL_NUMPY_INCLUDE.sub(lambda _: np_inc, _WHEEL_PYTHON_INCLUDE.sub(lambda _: py_inc, text))
        if new == text:
            continue
        path.write_text(new)
        patched += 1
    return patched


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--msg-dir", required=True, type=Path, help="folder with the package's upstream *.msg")
    ap.add_argument("--source", required=True, type=Path, help="the interface package (CMakeLists.txt)")
    ap.add_argument("--check", required=True, help="a message to import afterwards, e.g. vision_msgs.msg.LabelInfo")
    ap.add_argument("--build-dir", required=True, type=Path)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        fail("run this with the virtual environment's python (sys.prefix is not a venv)")
    for tool in ("cmake", "make"):
        if shutil.which(tool) is None:
            fail(f"'{tool}' not found: install it (Debian: apt-get install cmake build-essential)")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        fail("no C compiler found: install one (Debian: apt-get install build-essential)")
    package = args.source.resolve().name
    msgs = sorted(args.msg_dir.glob("*.msg"))
    if not msgs:
        fail(f"no .msg files in {args.msg_dir}: point --msg-dir at the upstream {package}/msg folder")

    n = patch_cmake_exports(prefix)
    print(f"build_interfaces: pointed {n} exported CMake files at {sysconfig.get_paths()['include']}")

    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    args.build_dir.mkdir(parents=True, exist_ok=True)
    configure = [
        "cmake",
        str(args.source.resolve()),
        f"-D{package.upper()}_MSG_DIR={args.msg_dir.resolve()}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        "-DBUILD_TESTING=OFF",
    ]
    for cmd in (configure, ["make", f"-j{args.jobs}"], ["make", "install"]):
        res = subprocess.run(
            cmd, cwd=args.build_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if res.returncode != 0:
            print(res.stdout[-6000:], file=sys.stderr)
            fail(f"'{' '.join(cmd[:2])}' failed (exit {res.returncode}); full log above")
    module, _, name = args.check.rpartition(".")
    check = subprocess.run(
        [sys.executable, "-c", f"from {module} import {name}; print('ok')"], capture_output=True, text=True
    )
    if check.returncode != 0:
        fail(f"{package} was built but {args.check} does not import:\n{check.stderr}")
    print(f"build_interfaces: {package} ({len(msgs)} messages) installed into {prefix}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
