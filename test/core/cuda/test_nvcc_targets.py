"""The CUDA sources compile for the vehicles' GPUs with the options pycuda uses on the car.

pycuda compiles each source at first use with ``nvcc --cubin -arch sm_XX`` plus the package's
options (core/cuda/kernels.NVCC_OPTIONS). No GPU is needed to compile, so this runs wherever nvcc is
(CI's machine has CUDA 13; scripts/gpu_tests.sh runs it on the lent GPU machine too). sm_87 is the
Jetson AGX Orin (JetPack 6 and 7.2), sm_110 the Jetson Thor, which needs CUDA 13. CUDA 13 dropped
sm_72 (Xavier), so Xavier is not a target.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bevfusion_ros.core.cuda import kernels, voxels

NEEDS_PYCUDA = False
TARGETS = {"sm_87": ((11, 4), "Jetson AGX Orin"), "sm_110": ((13, 0), "Jetson Thor")}
SOURCES = (kernels.SOURCE, voxels.SOURCE)


def nvcc() -> tuple[str, tuple[int, int]]:
    exe = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if Path(p).is_file()), None)
    if exe is None:
        pytest.skip("nvcc is not installed")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"release (\d+)\.(\d+)", out)
    assert found, out
    return exe, (int(found.group(1)), int(found.group(2)))


@pytest.mark.parametrize("arch", sorted(TARGETS))
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_the_cuda_sources_compile_for_the_vehicles_gpus(arch: str, source: Path, tmp_path: Path) -> None:
    exe, version = nvcc()
    needs, gpu = TARGETS[arch]
    if version < needs:
        pytest.skip(f"{arch} ({gpu}) needs CUDA {needs[0]}.{needs[1]}; nvcc is {version[0]}.{version[1]}")
    cmd = [exe, "--cubin", "-arch", arch, *kernels.NVCC_OPTIONS, "-o", str(tmp_path / "out.cubin"), str(source)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stderr[-3000:]}"
    assert (tmp_path / "out.cubin").stat().st_size > 0


def test_an_architecture_nvcc_dropped_fails(tmp_path: Path) -> None:
    """The check can fail: CUDA 13 refuses sm_72 (Xavier), as it would refuse a source that breaks."""
    exe, version = nvcc()
    if version < (13, 0):
        pytest.skip("sm_72 is still supported before CUDA 13")
    res = subprocess.run([exe, "--cubin", "-arch", "sm_72", "-o", str(tmp_path / "x.cubin"), str(kernels.SOURCE)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode != 0 and "sm_72" in res.stderr
