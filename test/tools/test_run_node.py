"""``bevfusion-ros run-node``: node, recorder and player as processes; every LiDAR sweep accounted for."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bevfusion_ros.tools.make_bag import scene_frame, write_bag
from bevfusion_ros.tools.nuscenes_frame import load_frame


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "jpeg"])
def test_run_node_accounts_for_every_sweep(tmp_path, frame_dir, compressed) -> None:  # type: ignore[no-untyped-def]
    first = scene_frame(load_frame(frame_dir), 10_000_030)
    bag = write_bag(first, tmp_path / "bag", 3, show_progress=False, compressed=compressed,
                    frames=lambda k: first if k == 0 else scene_frame(first, 10_000_030 + k))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "bevfusion_ros.tools.cli", "run-node", "--bag", str(bag), "--out", str(out),
         "--rate", "1.0"],  # run-node sees the CompressedImage topics and sets image_transport itself
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads((out / "summary.json").read_text())
    # at 10 Hz the model is busy for most sweeps: those are counted as dropped_busy, none unexplained
    assert s["lidar_sweeps_in_bag"] == 3 and s["frames_out"] >= 1
    assert s["frames_out"] + sum(s["drops"].values()) + s["lost_in_transport"] == 3
    assert s["unexplained_drops"] == 0 and s["node_exit_code"] == 0
    assert s["latency_ms"]["p50"] > 0 and (out / "bev_last_frame.png").stat().st_size > 10_000
    assert "unexplained 0" in (out / "summary.md").read_text()
    # the monitor ran beside the node and said which hardware source it had (none on this machine)
    checks = s["monitor"]["checks"]
    assert checks["hardware source"]["OK"] + checks["hardware source"]["WARN"] > 0
    assert "perception latency" in checks and s["monitor"]["log_rows"] > 0
    assert "Monitor node" in (out / "summary.md").read_text()
