#!/usr/bin/env bash
# On a lent CUDA GPU machine (no internet, Python 3.12, CUDA at /usr/local/cuda): build pycuda from
# its sdist and run the GPU tests. Carry .carry/wheels (pycuda sdist + cp312 wheels of its deps and
# pytest, fetched with scripts/fetch_gpu_wheels.sh). pycuda 2026.1 builds in ~100 s.
set -euo pipefail
W=${WHEELS:-.carry/wheels}
# The lent machine is thrown away afterwards: install into its system Python, where numpy already is
# (a venv hid numpy from pycuda's build).
P=python3
$P -c "import numpy; print('numpy', numpy.__version__)"
$P -m pip install -q --break-system-packages --no-index --find-links "$W" pytools platformdirs mako markupsafe \
  typing_extensions siphash24 pytest pyyaml nvidia-ml-py
if $P -c "import pycuda.driver" 2>/dev/null; then echo "pycuda already built on this machine"; else
rm -rf /tmp/pycuda-build && mkdir -p /tmp/pycuda-build && tar xzf "$W"/pycuda-*.tar.gz -C /tmp/pycuda-build
( cd /tmp/pycuda-build/pycuda-* \
  && $P configure.py --cuda-root=/usr/local/cuda --cudadrv-lib-dir=/usr/local/cuda/lib64/stubs >/dev/null \
  && $P -m pip wheel -q --no-index --no-deps --no-build-isolation . -w /tmp/pycuda-build/dist )
$P -m pip install -q --break-system-packages --no-index /tmp/pycuda-build/dist/pycuda-*.whl
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
# The decoded real frame (no OpenCV on the lent machine): .carry/frame_decoded.npz, written from
# ../shared/data/nuscenes_frame by scripts/export_gpu_frame.py; carried, never committed.
export BEVFUSION_GPU_FRAME=${BEVFUSION_GPU_FRAME:-.carry/frame_decoded.npz}
# -W error: a context-cleanup warning from pycuda is a bug here. test_nvcc_targets.py compiles every .cu
# for sm_87 (Orin) and sm_110 (Thor; skipped, and said so, where this machine's nvcc is older than 13).
PYTHONPATH=. $P -m pytest -q -rs -s -p no:cacheprovider -W error test/core/cuda "$@"
if [ -n "${OUT:-}" ] && [ -z "${NO_BENCH:-}" ]; then
  PYTHONPATH=. $P benchmarks/gpu_kernels.py --frame "$BEVFUSION_GPU_FRAME" --out "$OUT"
fi
