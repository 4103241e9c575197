# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each step leaves a stamp in .venv so re-runs only redo what changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip install --disable-pip-version-check -q -c requirements/constraints.txt
SHARED ?= $(abspath ../shared)
VISION_MSGS_DIR ?= $(SHARED)/ros_interfaces/vision_msgs/msg
AUTOWARE_MSGS_DIR ?= $(SHARED)/ros_interfaces/autoware_perception_msgs/msg
FRAME_DIR ?= $(SHARED)/data/nuscenes_frame
ROS_SRC ?= $(SHARED)/ros_src
# what share/bevfusion_ros links to: a file added or removed there re-links it
SHARE_FILES := package.xml $(wildcard launch/*.py config/*.* config/engines/*.yaml engines/*.* engines/reference/*.* engines/reference/int8/*.* engines/voxelnet/*.* engines/examples/*/*.*)
DEMO_DIR ?= build/demo
DEMO_FRAMES ?= 20
DEMO_SCENES ?= 50
DEMO_RATE ?= 0.2

.PHONY: setup stacks stack-floor stack-jazzy test test-floor test-jazzy lint typecheck pytest demo evaluate fleet soak quantize qat-export sparse-golden examples clean distclean

setup: $(VENV)/.stamp-package $(VENV)/.stamp-trt-bindings

$(VENV)/.stamp-venv:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (the ROS 2 Kilted wheels are cp311)"; exit 2; }
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' || { echo "error: $(PYTHON) is not Python 3.11"; exit 2; }
	@command -v cmake >/dev/null || { echo "error: cmake not found (Debian: apt-get install cmake)"; exit 2; }
	@command -v cc >/dev/null || { echo "error: no C compiler (Debian: apt-get install build-essential)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.stamp-ros: $(VENV)/.stamp-venv requirements/ros.txt requirements/constraints.txt
	$(PIP) -r requirements/ros.txt
	@touch $@

$(VENV)/.stamp-vision-msgs: $(VENV)/.stamp-ros interfaces/cmake/stage_upstream_msgs.cmake interfaces/vision_msgs/CMakeLists.txt interfaces/vision_msgs/package.xml scripts/build_interfaces.py
	$(VPY) scripts/build_interfaces.py --msg-dir $(VISION_MSGS_DIR) --source interfaces/vision_msgs --build-dir build/vision_msgs --check vision_msgs.msg.LabelInfo
	@touch $@

# Autoware's DetectedObjects, the node's second detection output (~50 s)
$(VENV)/.stamp-autoware-msgs: $(VENV)/.stamp-vision-msgs interfaces/cmake/stage_upstream_msgs.cmake interfaces/autoware_perception_msgs/CMakeLists.txt interfaces/autoware_perception_msgs/package.xml scripts/build_interfaces.py
	$(VPY) scripts/build_interfaces.py --msg-dir $(AUTOWARE_MSGS_DIR) --source interfaces/autoware_perception_msgs --build-dir build/autoware_perception_msgs --check autoware_perception_msgs.msg.DetectedObjects
	@touch $@

# launch, launch_testing, the ros2 CLI, message_filters, sensor_msgs_py, diagnostic_updater, tf2:
# no wheels exist, so they are built from the upstream sources in ../shared/ros_src (~1 min).
$(VENV)/.stamp-ros-tools: $(VENV)/.stamp-autoware-msgs requirements/ros_tools.txt scripts/install_ros_src.py $(ROS_SRC)/UPSTREAM.txt
	$(PIP) -r requirements/ros_tools.txt
	$(VPY) scripts/install_ros_src.py --src $(ROS_SRC) --build-dir build/ros_src
	@touch $@

$(ROS_SRC)/UPSTREAM.txt:
	@echo "error: $(ROS_SRC) is missing: the upstream ROS 2 sources (launch, ros2cli, message_filters, tf2, ...) are expected in ../shared/ros_src beside the checkout (or set ROS_SRC=...)"; exit 2

# The real TensorRT 10.3 and 8.6 Python bindings with stub libraries, importable but not runnable,
# for the API-contract test of the TensorRT code and its fake (build/trt_bindings, never on the
# runtime's path; ~2 MB, a few seconds).
$(VENV)/.stamp-trt-bindings: $(VENV)/.stamp-venv requirements/trt_bindings.txt scripts/install_trt_bindings.py $(wildcard scripts/trt_stubs/*)
	$(VPY) scripts/install_trt_bindings.py
	@touch $@

# The build backend comes from the pins too (no isolated build env fetching whatever is newest).
# Then the package goes into the venv's ament index as a colcon symlink install would put it.
$(VENV)/.stamp-package: $(VENV)/.stamp-ros-tools setup.py setup.cfg pyproject.toml requirements/constraints.txt requirements/devkit.txt scripts/ament_index_install.py $(SHARE_FILES)
	$(PIP) setuptools
	$(PIP) --no-build-isolation -e '.[dev,bags,onnx,viz,nvml,fleet]'
	$(PIP) --no-deps -r requirements/devkit.txt
	$(VPY) scripts/ament_index_install.py
	@touch $@

# ruff (bugs, style, import order; then the formatting, unchanged), then the layer rules of
# pyproject.toml's [tool.importlinter]
PY_TREES := bevfusion_ros test scripts launch training benchmarks
lint: setup
	$(VENV)/bin/ruff check $(PY_TREES)
	$(VENV)/bin/ruff format --check $(PY_TREES)
	$(VENV)/bin/lint-imports --no-cache

typecheck: setup
	$(VENV)/bin/mypy bevfusion_ros

pytest: setup
	$(VENV)/bin/python -m pytest -q --junitxml=build/dev/junit.xml -o junit_suite_name=dev

# Every stack is set up first (in parallel), then checked; the three pytest runs go side by side (each
# on its own ROS domains), their output shown whole as each ends, then one table and closing line.
STACK_JUNIT := build/dev/junit.xml build/jazzy/junit.xml build/floor/junit.xml
test:
	@$(MAKE) --no-print-directory -j3 -Otarget setup stacks
	@$(MAKE) --no-print-directory lint typecheck
	@rm -f $(STACK_JUNIT)
	@$(MAKE) --no-print-directory -j3 -Otarget -k pytest test-jazzy test-floor; rc=$$?; \
	  $(VPY) scripts/test_summary.py $(STACK_JUNIT) && exit $$rc

# -- The vehicle stacks ------------------------------------------------------------------------------
# Besides the dev stack above, make test builds and tests the package on what the cars run (README,
# "Vehicle support"), each in its own venv from pinned files (requirements/stacks/), stamped so a warm
# re-run only rebuilds the colcon workspace (2 s):
#   jazzy        JetPack 7.2: Python 3.12, the ROS 2 Jazzy wheels, the tools from ../shared/ros_src_jazzy,
#                Ubuntu 24.04's numpy/OpenCV/SciPy; colcon's default install; the node, launch_testing
#                and ros2 CLI tests.
#   floor        JetPack 6 (Humble, no wheels exist): Python 3.10 with the oldest libraries a vehicle
#                has (numpy 1.21.5, OpenCV 4.5.4, ...) and the Kilted cp310 wheels; colcon
#                --symlink-install; the package's own code on them.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null)
FLOOR_PYTHON ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.10.*/bin/python3.10) $(shell command -v python3.10))
JAZZY_PYTHON ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.12.*/bin/python3.12) $(shell command -v python3.12))
ROS_SRC_JAZZY ?= $(SHARED)/ros_src_jazzy
SPIP = -m pip install --disable-pip-version-check -q

# $(1) stack, $(2) its Python, $(3) the minor version it must be, $(4) the ROS tools' sources
define STACK_RULES
.venv-$(1)/.stamp-venv:
	@test -n "$(2)" && test -x "$(2)" || { echo "error: no Python 3.$(3) for the $(1) stack (pyenv install 3.$(3), or set $(shell echo $(1) | tr a-z A-Z)_PYTHON=...)"; exit 2; }
	@$(2) -c 'import sys; assert sys.version_info[:2] == (3, $(3)), sys.version' || { echo "error: $(2) is not Python 3.$(3)"; exit 2; }
	$(2) -m venv .venv-$(1)
	@touch $$@

.venv-$(1)/.stamp-msgs: .venv-$(1)/.stamp-deps interfaces/cmake/stage_upstream_msgs.cmake scripts/build_interfaces.py
	.venv-$(1)/bin/python scripts/build_interfaces.py --msg-dir $(VISION_MSGS_DIR) --source interfaces/vision_msgs --build-dir build/$(1)/vision_msgs --check vision_msgs.msg.LabelInfo
	.venv-$(1)/bin/python scripts/build_interfaces.py --msg-dir $(AUTOWARE_MSGS_DIR) --source interfaces/autoware_perception_msgs --build-dir build/$(1)/autoware_perception_msgs --check autoware_perception_msgs.msg.DetectedObjects
	@touch $$@

.venv-$(1)/.stamp-ros-tools: .venv-$(1)/.stamp-msgs scripts/install_ros_src.py $(4)/UPSTREAM.txt
	.venv-$(1)/bin/python scripts/install_ros_src.py --src $(4) --build-dir build/$(1)/ros_src
	@touch $$@

stack-$(1): .venv-$(1)/.stamp-ros-tools
endef
$(eval $(call STACK_RULES,floor,$(FLOOR_PYTHON),10,$(ROS_SRC)))
$(eval $(call STACK_RULES,jazzy,$(JAZZY_PYTHON),12,$(ROS_SRC_JAZZY)))

# PyYAML 5.4.1 (Ubuntu 22.04's) has no cp310 wheel and its sdist fails with Cython 3: built without
# isolation against the pinned Cython 0.29; ONNX Runtime and the devkit declare a newer numpy than
# the floor and are installed without their declared dependencies (floor.txt says why).
.venv-floor/.stamp-deps: .venv-floor/.stamp-venv $(wildcard requirements/stacks/floor*.txt)
	.venv-floor/bin/python $(SPIP) -r requirements/stacks/floor-build.txt
	.venv-floor/bin/python $(SPIP) --no-build-isolation -c requirements/stacks/floor.txt PyYAML
	.venv-floor/bin/python $(SPIP) -r requirements/stacks/floor.txt -c requirements/stacks/floor.txt
	.venv-floor/bin/python $(SPIP) --no-deps -r requirements/stacks/floor-nodeps.txt
	@touch $@

.venv-jazzy/.stamp-deps: .venv-jazzy/.stamp-venv $(wildcard requirements/stacks/jazzy*.txt)
	.venv-jazzy/bin/python $(SPIP) -r requirements/stacks/jazzy.txt -c requirements/stacks/jazzy.txt
	$(if $(wildcard requirements/stacks/jazzy-nodeps.txt),.venv-jazzy/bin/python $(SPIP) --no-deps -r requirements/stacks/jazzy-nodeps.txt)
	@touch $@

$(ROS_SRC_JAZZY)/UPSTREAM.txt:
	@echo "error: $(ROS_SRC_JAZZY) is missing: the ROS 2 tools' Jazzy sources are expected in ../shared/ros_src_jazzy (or set ROS_SRC_JAZZY=...)"; exit 2

stacks: stack-jazzy stack-floor

# What each stack runs (the dev stack runs everything). Every module the vehicle imports is imported
# and exercised in both: test_vehicle_modules, test/core, and the node's lifecycle.
FLOOR_TESTS := test/test_vehicle_modules.py test/test_colcon_install.py test/test_layout.py test/test_examples.py \
	test/core test/ros/test_convert.py test/ros/test_perception_lifecycle.py test/ros/test_node_main.py \
	test/ros/test_monitor_node.py test/ros/test_humble_api.py test/tools/bags test/tools/commands/test_selftest.py \
	test/tools/commands/test_argument_errors.py
JAZZY_TESTS := test/test_vehicle_modules.py test/test_colcon_install.py test/test_examples.py test/core test/ros \
	test/launch test/tools/bags

test-floor: stack-floor
	scripts/stack_test.sh floor symlink 200-214 215-229 -q $(FLOOR_TESTS)

test-jazzy: stack-jazzy
	scripts/stack_test.sh jazzy copy 170-184 185-199 -q $(JAZZY_TESTS)

# The main job: the perception node on a bag over a real ROS 2 graph (node, recorder and player as
# processes; summary with every drop by cause, latency, BEV PNG), after the pipeline on the real
# nuScenes frame and a generated scene (PNGs) and the accuracy report on held-out generated scenes;
# last, the replay evaluation of the same bag: fp32 vs INT8 vs what the node published (report.html).
# DEMO_RATE 0.2 plays the 10 Hz bag at 2 Hz so a 2-core CPU shows most frames; at 1.0 the node
# drops (and counts) the frames that arrive while the model is busy.
demo: setup
	$(VENV)/bin/bevfusion-ros overlay --frame $(FRAME_DIR) --out $(DEMO_DIR)/projection.png
	$(VENV)/bin/bevfusion-ros infer --frame $(FRAME_DIR) --out $(DEMO_DIR)/nuscenes_frame
	$(VENV)/bin/bevfusion-ros infer --frame $(FRAME_DIR) --scene 10000005 --out $(DEMO_DIR)/generated_scene
	$(VENV)/bin/bevfusion-ros eval-scenes --frame $(FRAME_DIR) --scenes $(DEMO_SCENES) --out $(DEMO_DIR)/eval_scenes
	$(VENV)/bin/bevfusion-ros make-bag --frame $(FRAME_DIR) --scene 10000100 --out $(DEMO_DIR)/scene_bag --frames $(DEMO_FRAMES) --overwrite
	$(VENV)/bin/bevfusion-ros run-node --bag $(DEMO_DIR)/scene_bag --out $(DEMO_DIR)/node_run --rate $(DEMO_RATE)
	$(VENV)/bin/bevfusion-ros evaluate $(DEMO_DIR)/scene_bag --compare onnxruntime:int8 recorded:$(DEMO_DIR)/node_run/outputs --out $(DEMO_DIR)/evaluate
	@echo "demo outputs: $(DEMO_DIR)/{projection.png,nuscenes_frame/,generated_scene/,eval_scenes/metrics.md,node_run/summary.md,node_run/bev_last_frame.png,node_run/outputs,evaluate/report.html}"

# The replay evaluation on the two bags the closing numbers come from (not part of demo or test, ~10 min):
# EVAL_FRAMES held-out generated scenes with box and map ground truth, and the real nuScenes frame.
EVAL_FRAMES ?= 300
evaluate: setup
	$(VENV)/bin/bevfusion-ros make-bag --frame $(FRAME_DIR) --scene 10000000 --frames $(EVAL_FRAMES) --out build/eval/scenes_bag --overwrite
	$(VENV)/bin/bevfusion-ros evaluate build/eval/scenes_bag --compare onnxruntime:int8 --max-map-drop 3 --out build/eval/scenes
	$(VENV)/bin/bevfusion-ros make-bag --frame $(FRAME_DIR) --frames 5 --out build/eval/real_bag --overwrite
	$(VENV)/bin/bevfusion-ros evaluate build/eval/real_bag --compare onnxruntime:int8 --out build/eval/real

# The fleet evaluation benchmark (not part of make test, ~10 min on 2 cores): FLEET_BAGS generated bags x
# FLEET_FRAMES frames evaluated in one process and as Ray tasks on 2 local workers; frames/s, scaling,
# merge time and peak memory per worker (benchmarks/results/fleet.md).
FLEET_BAGS ?= 8
FLEET_FRAMES ?= 100
fleet: setup
	$(VPY) benchmarks/fleet.py --frame $(FRAME_DIR) --bags $(FLEET_BAGS) --frames $(FLEET_FRAMES) --results benchmarks/results/fleet

# The node under stress (issue 19; not part of make test, ~40 min on 2 cores): SOAK_FRAMES real frames
# at 10 Hz with the null backend (RSS slope, latency), a 50-frame burst into ONNX Runtime (stamp age
# after it), SIGINT/SIGTERM exit codes per backend, /dev/shm left behind (build/soak/soak.md); then
# the whole hostile-input corpus against a live node (make test runs a subset).
SOAK_FRAMES ?= 20000
soak: setup
	$(VPY) benchmarks/soak.py --frame $(FRAME_DIR) --frames $(SOAK_FRAMES) --out build/soak
	BEVFUSION_CORPUS=full $(VPY) -m pytest -q test/ros/test_perception_node.py -k "hostile_input_corpus or tf_faults"

# INT8 post-training quantisation with NVIDIA ModelOpt in its own venv (not part of make test; writes
# engines/reference/ptq/ + model.ptq.yaml, not committed: the shipped INT8 model, int8/, is the
# quantisation-aware one below), then its accuracy vs fp32.
QVENV := .venv-quant
$(QVENV)/.stamp: requirements/quant.txt
	$(PYTHON) -m venv $(QVENV)
	$(QVENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements/quant.txt
	@touch $@

quantize: setup $(QVENV)/.stamp
	$(VPY) -m training.quantize --quant-python $(QVENV)/bin/python --frame $(FRAME_DIR)
	$(VENV)/bin/bevfusion-ros eval-scenes --frame $(FRAME_DIR) --scenes 300 --out build/eval_fp32
	$(VENV)/bin/bevfusion-ros eval-scenes --frame $(FRAME_DIR) --scenes 300 --model engines/reference/model.ptq.yaml --out build/eval_ptq

# Quantisation-aware training (training/qat.py): `train` runs on a CUDA GPU (its docstring has the
# command); this exports the checkpoint it wrote, QAT_CKPT, as the shipped all-INT8 model
# (engines/reference/int8/ + model.int8.yaml) with its golden file, then scores it and reports the
# per-stage error against fp32.
qat-export: setup $(TVENV)/.stamp
	@test -n "$(QAT_CKPT)" || { echo "make qat-export: set QAT_CKPT=path/to/qat.pt (from training.qat train)"; exit 2; }
	PYTHONPATH=$(CURDIR) $(TVENV)/bin/python -m training.qat export --frame-json $(FRAME_DIR)/frame.json --checkpoint $(QAT_CKPT)
	$(VENV)/bin/bevfusion-ros eval-scenes --frame $(FRAME_DIR) --scenes 300 --model engines/reference/model.int8.yaml --out build/eval_int8
	$(VPY) -m training.int8_report --variant QAT=engines/reference/model.int8.yaml

# The PyTorch sparse-convolution layers (training/sparse_conv.py) in their own CPU torch venv (not part
# of make test): re-exports the encoder and its golden outputs, test/data/sparse_encoder_golden.*,
# which CI holds ONNX Runtime with the CPU plugin ops to.
TVENV := .venv-train
$(TVENV)/.stamp: requirements/train.txt
	$(PYTHON) -m venv $(TVENV)
	$(TVENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements/train.txt
	@touch $@

sparse-golden: $(TVENV)/.stamp
	PYTHONPATH=$(CURDIR) $(TVENV)/bin/python -m training.sparse_conv --frame $(FRAME_DIR) --out test/data/sparse_encoder_golden

# The example models of engines/examples/ (real export layouts, random weights; committed, ~2 MB)
examples: $(TVENV)/.stamp
	PYTHONPATH=$(CURDIR) $(TVENV)/bin/python -m training.examples

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) $(QVENV) $(TVENV) .venv-floor .venv-jazzy *.egg-info
