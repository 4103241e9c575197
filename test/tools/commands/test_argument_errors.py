"""Argument mistakes are one line naming the command and what to fix, exit 2, as every other input
error of bevfusion-ros is (make-bag once exited 1 with a bare message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bevfusion_ros.tools import cli


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["make-bag", "--frames", "0"], "make-bag: error: --frames must be >= 1 and --rate > 0"),
        (["make-bag", "--ego-speed", "5"], "make-bag: error: --ego-speed drives through a generated scene"),
        (["make-bag", "--lose", "lidar:3:2"], "make-bag: error: --lose 'lidar:3:2' must be SENSOR:FIRST:LAST"),
        (["make-bag", "--lose", "lidar:0:10"], "0 <= FIRST <= LAST < --frames (10)"),
        (["play", "--rate", "0"], "play: error: --rate must be > 0 and --loop >= 1"),
        (["eval-scenes", "--scenes", "0"], "eval-scenes: error: --scenes must be >= 1"),
        (["eval-scenes", "--scenes", "-3"], "got -3"),
        (["run-node", "--rate", "0"], "run-node: error: --rate must be > 0"),
        (["run-node", "--param", "no_such_param:=1"], "no_such_param"),
        (["run-node", "--param", "max_masked_cameras:=99"], "max_masked_cameras"),
        (["run-node", "--param", "lidar_timeout"], "--param 'lidar_timeout' must look like NAME:=VALUE"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path: Path, frame_dir: Path, capsys, argv, words) -> None:  # type: ignore[no-untyped-def]
    if argv[0] == "make-bag":
        argv = [*argv, "--frame", str(frame_dir), "--out", str(tmp_path / "bag")]
    elif argv[0] == "run-node":  # refused before the node, the player or the recorder start
        argv = [*argv, "--bag", str(tmp_path / "no_bag"), "--out", str(tmp_path / "out")]
    elif argv[0] == "eval-scenes":
        argv = [*argv, "--out", str(tmp_path / "out")]
    else:
        argv = [*argv, str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
