#!/usr/bin/env bash
# Fetch what scripts/gpu_tests.sh installs on the offline GPU machine (Python 3.12) into .carry/wheels.
set -euo pipefail
W=${WHEELS:-.carry/wheels}
mkdir -p "$W"
PIP=".venv/bin/pip download -q --no-deps --only-binary :all: --python-version 3.12 -d $W"
$PIP --platform any pytools==2026.1.1 platformdirs==4.14.7 mako==1.4.3 typing_extensions==4.16.0 \
  pytest==9.0.1 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.3 pygments==2.21.0
$PIP --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 markupsafe==3.0.4 siphash24==1.9 pyyaml==6.0.3
# the sdist itself, through pip like the wheels (no index host named here): pip prepares its metadata
# in an isolated build env (~30 s), which needs no CUDA; it is built on the GPU machine
.venv/bin/pip download -q --no-deps --no-binary pycuda -d "$W" pycuda==2026.1
ls "$W"
