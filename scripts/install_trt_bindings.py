"""Install the real TensorRT Python bindings where they can be imported but not run.

The wheels in requirements/trt_bindings.txt carry only ``tensorrt.so`` (the pybind11 module); it
links libnvinfer, libnvonnxparser, libnvinfer_plugin (and on 8.6 libnvparsers) yet calls only nine C
entry points of them (and on 8.6 four parser functions), all factories. Stub libraries with those
sonames (scripts/trt_stubs/) return nothing from every factory, so ``import tensorrt`` works and the
whole API can be inspected, while anything that needs a Builder, Runtime or parser fails.

Layout: build/trt_bindings/<major.minor>/{tensorrt/ (the package, renamed from tensorrt_bindings),
stubs/lib*.so.<major>}. ``env_for(version)`` gives PYTHONPATH and LD_LIBRARY_PATH for a subprocess.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / "scripts" / "trt_stubs"
LIBS = ("nvinfer", "nvonnxparser", "nvinfer_plugin")


def pins(requirements: Path) -> dict[str, str]:
    """major.minor -> 'name==version' from the requirements file."""
    out = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            version = line.split("==", 1)[1]
            out[".".join(version.split(".")[:2])] = line
    return out


def install(requirement: str, dest: Path) -> None:
    major = requirement.split("==", 1)[1].split(".")[0]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
             "--target", tmp, requirement],
            check=True,
        )  # fmt: skip
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        shutil.move(str(Path(tmp) / "tensorrt_bindings"), str(dest / "tensorrt"))
    stubs = dest / "stubs"
    stubs.mkdir()
    for lib in LIBS:
        soname = f"lib{lib}.so.{major}"
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-o", str(stubs / soname), f"-Wl,-soname,{soname}",
             str(STUBS / "nvinfer_entry_points.c")],
            check=True,
        )  # fmt: skip
    if major == "8":  # 8.6 also links the Caffe and UFF parsers (removed in 10)
        soname = "libnvparsers.so.8"
        subprocess.run(
            ["c++", "-shared", "-fPIC", "-o", str(stubs / soname), f"-Wl,-soname,{soname}",
             str(STUBS / "nvparsers8.cpp")],
            check=True,
        )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requirements", type=Path, default=REPO / "requirements" / "trt_bindings.txt")
    ap.add_argument("--dest", type=Path, default=REPO / "build" / "trt_bindings")
    args = ap.parse_args()
    for version, requirement in pins(args.requirements).items():
        install(requirement, args.dest / version)
        print(f"install_trt_bindings: {requirement} in {args.dest / version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
