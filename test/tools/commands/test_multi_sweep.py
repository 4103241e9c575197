"""Multi-sweep input end to end: ``make-bag --scene --ego-speed`` drives through one scene and writes
/tf; replay (``evaluate``) places past sweeps by that TF, and a bag without /tf has its past sweeps
left out and counted, never used untransformed. (The node against the replay on such a bag:
test_run_node.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.bags import copy_bag

from bevfusion_ros.tools import cli
from bevfusion_ros.tools.bags.layout import GT_TOPIC, LIDAR_FRAME
from bevfusion_ros.tools.bags.replay import checked_messages

SEED = 10_000_300
FRAMES = 3
SPEED = 8.0  # m/s: 0.8 m per sweep


@pytest.fixture(scope="module")
def drive_bag(frame_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drive") / "bag"
    args = ["make-bag", "--frame", str(frame_dir), "--scene", str(SEED), "--ego-speed", str(SPEED)]
    assert cli.main([*args, "--frames", str(FRAMES), "--out", str(out)]) == 0
    return out


# the trained multi-sweep model: 5 sweeps, VoxelNet, a velocity head (engines/voxelnet/MODEL_CARD.md)
VOXELNET = Path(__file__).resolve().parents[3] / "engines" / "voxelnet" / "model.yaml"


def read(bag: Path, topics: set[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {t: [] for t in topics}
    for topic, msg, _ in checked_messages(bag, topics):
        out[topic].append(msg)
    return out


def test_the_bag_s_tf_moves_the_world_as_the_scene_moves(drive_bag: Path) -> None:
    """Static objects' boxes of the first sweep, moved by the bag's TF into the last sweep's LiDAR
    frame, are where the last sweep's ground truth has them (what densification relies on)."""
    from bevfusion_ros.ros.sweeps import SweepPoses

    msgs = read(drive_bag, {"/tf", "/tf_static", GT_TOPIC})
    assert len(msgs["/tf"]) == FRAMES
    poses = SweepPoses.from_messages("odom", msgs["/tf"], msgs["/tf_static"])
    stamps = [d.header.stamp.sec * 10**9 + d.header.stamp.nanosec for d in msgs[GT_TOPIC]]
    first, last = (poses.pose(LIDAR_FRAME, s) for s in (stamps[0], stamps[-1]))
    assert first is not None and last is not None
    travelled = np.linalg.norm(last[:3, 3] - first[:3, 3])
    assert travelled == pytest.approx(SPEED * (FRAMES - 1) / 10.0, abs=1e-6)
    last_from_first = np.linalg.inv(last) @ first

    def centres(det: Any) -> np.ndarray:
        return np.asarray([[d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z]
                           for d in det.detections])  # fmt: skip

    a, b = centres(msgs[GT_TOPIC][0]), centres(msgs[GT_TOPIC][-1])
    moved = a @ last_from_first[:3, :3].T + last_from_first[:3, 3]
    # static objects (parked cars, barriers, cones) keep their place in the world
    still = np.linalg.norm(b - moved, axis=1) < 1e-3
    assert still.sum() >= 5 and (~still).sum() >= 1  # and the moving ones moved on their own


def evaluate(bag: Path, out: Path, model: Path) -> dict[str, Any]:
    code = cli.main(["evaluate", str(bag), "--model", str(model), "--out", str(out), "--no-progress"])
    assert code == 0
    result: dict[str, Any] = json.loads((out / "evaluation.json").read_text())
    return result


def test_replay_places_past_sweeps_by_the_bag_s_tf(drive_bag: Path, tmp_path: Path) -> None:
    res = evaluate(drive_bag, tmp_path / "with_tf", VOXELNET)
    assert res["frames"] == FRAMES and res["runs"][0]["frames"] == FRAMES
    assert not any("sweeps_without_pose" in k for k in res["drops"]), res["drops"]
    # the model predicts velocity from those sweeps: scored against the bag's DetectedObjects truth,
    # mAVE in the report and AVE per class
    (run,) = res["runs"]
    assert run["predicts_velocity"] and run["mean_ap"] > 0.1
    assert 0 < run["mean_ave"] < 10 and np.isfinite(run["mean_ave"])
    report = (tmp_path / "with_tf" / "report.md").read_text()
    assert f"| {run['mean_ave']:.3f} |" in report and "AVE m/s" in report and "no velocity head" not in report
    # the same bag without /tf: every frame after the first leaves its past sweeps out, counted
    bare = copy_bag(drive_bag, tmp_path / "no_tf", keep=lambda t: t != "/tf")
    res = evaluate(bare, tmp_path / "without_tf", VOXELNET)
    assert res["runs"][0]["frames"] == FRAMES  # frames still processed, with the current sweep only
    counted = {k: v for k, v in res["drops"].items() if k.endswith("sweeps_without_pose")}
    assert list(counted.values()) == [FRAMES - 1], res["drops"]
    assert any("the bag has no /tf" in n for n in res["notes"])
    assert any("past sweep(s) left out" in n for n in res["notes"])
