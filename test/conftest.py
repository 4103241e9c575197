"""Shared fixtures. ROS settings are applied before any test imports rclpy."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.domains import domain_id

from bevfusion_ros.ros.transport import transport_env

REPO = Path(__file__).resolve().parents[1]
FRAME_DIR = Path(os.environ.get("BEVFUSION_FRAME_DIR", REPO.parent / "shared" / "data" / "nuscenes_frame"))
# A domain of our own so parallel runs on one machine (two checkouts, the stacks of make test) never
# see each other's topics.
DOMAIN_ID = domain_id("BEVFUSION_TEST_DOMAINS", (100, 169))  # 170-229: the stacks (Makefile)
os.environ.update(transport_env(domain_id=DOMAIN_ID))


_shm_before: set[Path] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    from bevfusion_ros.ros.transport import clean_orphaned_shm, fastdds_shm_files

    # Segments and ports of participants that were killed (a run stopped by SIGKILL or a timeout) and
    # that no process maps or holds open any more: a new participant given such a stale port was seen
    # to reach no one (the launch test's node published nothing to it for 180 s, 3 runs in 4). Only
    # files older than 10 minutes: a run starting beside this one (make test's stacks) keeps its own.
    clean_orphaned_shm(min_age_s=600.0)
    _shm_before.update(fastdds_shm_files())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The nodes free their segments on every exit path (tested); a process a test had to kill
    # (SIGKILL) cannot. Only the files that appeared during this session are candidates: other
    # users' and other runs' segments are not ours to judge.
    from helpers import orphans

    from bevfusion_ros.ros.transport import clean_orphaned_shm, fastdds_shm_files

    orphans.kill(orphans.in_domain(DOMAIN_ID, include_daemon=True))
    clean_orphaned_shm(min_age_s=5.0, only=fastdds_shm_files() - _shm_before)


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """A process of this run's domain still there after its test is killed, and the test is told:
    the next tests would otherwise discover its node (issue 19: one killed launch test broke 8)."""
    from helpers import orphans

    yield
    if killed := orphans.kill(orphans.in_domain(DOMAIN_ID)):
        warnings.warn(f"killed {len(killed)} process(es) the test left running: {'; '.join(killed)}", stacklevel=1)


@pytest.fixture(scope="session")
def frame_dir() -> Path:
    if not (FRAME_DIR / "frame.json").is_file():
        pytest.skip(f"the real nuScenes frame is not at {FRAME_DIR} (set BEVFUSION_FRAME_DIR)")
    return FRAME_DIR


@pytest.fixture(scope="session")
def frame(frame_dir: Path):  # type: ignore[no-untyped-def]
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    return load_frame(frame_dir)


@pytest.fixture
def ros_node():  # type: ignore[no-untyped-def]
    """A node on the default context (so rclpy.spin_once works), shut down after the test."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node(f"test_node_{os.getpid()}")
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


REFERENCE_MODEL = Path(__file__).resolve().parents[1] / "engines" / "reference" / "model.yaml"


@pytest.fixture(scope="session")
def spec():  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.model import load_model

    return load_model(REFERENCE_MODEL)


@pytest.fixture(scope="session")
def rig(frame_dir: Path, spec):  # type: ignore[no-untyped-def]
    from bevfusion_ros.tools.data.nuscenes_frame import frame_rig

    return frame_rig(frame_dir, spec.cameras)


@pytest.fixture(scope="session")
def pipeline(spec):  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    p = Pipeline(spec, "onnxruntime", threads=2)
    p.activate()
    yield p
    p.deactivate()


@pytest.fixture
def trt_fakes():  # type: ignore[no-untyped-def]
    """The FAKE TensorRT 10.3 + fake CUDA device (test/fakes) as ``tensorrt`` / ``pycuda.driver``."""
    from fakes.install import fakes

    with fakes() as f:
        yield f
