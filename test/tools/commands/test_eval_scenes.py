"""``bevfusion-ros eval-scenes`` on a few held-out scenes: the metrics files, and the AVE column only
for a model that predicts velocity (the devkit would score a model without a velocity head against
velocities of 0, which is not the model's error)."""

from __future__ import annotations

import json
from pathlib import Path

from bevfusion_ros.tools import cli


def test_a_model_without_a_velocity_head_has_no_ave(tmp_path: Path, frame_dir: Path) -> None:
    out = tmp_path / "eval"
    assert cli.main(["eval-scenes", "--frame", str(frame_dir), "--scenes", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 2 and metrics["predicts_velocity"] is False
    assert 0.0 <= metrics["detection"]["mean_ap"] <= 1.0 and metrics["map"]["miou"] > 0
    md = (out / "metrics.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| car |")]
    assert rows and rows[0].endswith("| n/a (no velocity head) |"), md
