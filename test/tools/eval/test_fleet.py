"""``bevfusion-ros evaluate`` over a fleet of bags: a manifest of three generated bags scored by Ray
tasks on a local instance equals one process to the last digit; time slices equal the whole bag;
a broken bag, a lost worker and a bad manifest each end as they should."""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import orphans

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.resources import default_model
from bevfusion_ros.tools import cli
from bevfusion_ros.tools.bags.writer import scene_frame, write_bag
from bevfusion_ros.tools.commands import evaluate as command
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import load_frame
from bevfusion_ros.tools.eval.evaluation import evaluate as run_evaluation
from bevfusion_ros.tools.eval.report import evaluation_json, without_timings

pytest.importorskip("ray")

SEED = 10_000_400
FRAMES = 2


def drive(frame_dir: Path, out: Path, seed: int, frames: int) -> Path:
    first = scene_frame(load_frame(frame_dir), seed)
    grid = load_model(default_model()).map.grid  # type: ignore[union-attr]
    return write_bag(
        first,
        out,
        frames,
        show_progress=False,
        frames=lambda k: first if k == 0 else scene_frame(first, seed + k),
        maps=lambda k: (scenes.rasterize_map(scenes.generate_scene(seed + k), grid), grid, scenes.MAP_CLASSES),
    )


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Any:
    """One local Ray instance for the module's in-process evaluations (evaluate uses a running one),
    instead of a start and a stop of 4 s each."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    words = {"ray::", "/site-packages/ray/"}
    orphans.KEPT.update(words)
    try:
        yield ray
    finally:
        ray.shutdown()
        orphans.KEPT.difference_update(words)


@pytest.fixture(scope="module")
def fleet(frame_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of three drives with tags, bags beside it."""
    root = tmp_path_factory.mktemp("fleet")
    tags = [{"weather": "rain", "route": "ring"}, {"weather": "clear", "route": "ring"}, {"weather": "rain"}]
    lines = ["bags:"]
    for k, t in enumerate(tags):
        drive(frame_dir, root / "drives" / f"drive{k}", SEED + 100 * k, FRAMES)
        lines += [f"  - path: drives/drive{k}", f"    tags: {json.dumps(t)}"]
    (root / "manifest.yaml").write_text("\n".join(lines) + "\n")
    return root / "manifest.yaml"


def evaluate(out: Path, *args: str) -> tuple[int, dict[str, Any] | None]:
    """The command: exit code and evaluation.json (the report drawn too)."""
    code = cli.main(["evaluate", *args, "--out", str(out), "--no-progress"])
    path = out / "evaluation.json"
    return code, json.loads(path.read_text()) if path.is_file() else None


def scored(*args: str) -> dict[str, Any]:
    """What the command writes to evaluation.json for these arguments, without drawing the report
    (matplotlib takes seconds a call; the tests that need the report call the command)."""
    ap = argparse.ArgumentParser()
    command.add_arguments(ap)
    result = run_evaluation(command.options(ap.parse_args([*args, "--no-progress"])))
    return dict(json.loads(evaluation_json(result)))


def scores(res: dict[str, Any]) -> Any:
    """Everything but timings."""
    return without_timings(res)


def test_ray_tasks_score_a_fleet_exactly_as_one_process(fleet: Path, tmp_path: Path) -> None:
    one = scored(str(fleet), "--workers", "1", "--compare", "onnxruntime:int8")
    assert one["fleet"]["workers"] == 1
    code, ray = evaluate(tmp_path / "ray", str(fleet), "--workers", "2", "--compare", "onnxruntime:int8")
    assert code == 0 and ray is not None and ray["fleet"] == dict(ray["fleet"], workers=2, tasks=3, bags=3)
    assert scores(ray) == scores(one)
    assert ray["frames"] == 3 * FRAMES and ray["runs"][0]["frames_scored"] == 3 * FRAMES
    assert ray["incomplete"] is None and 0.3 < ray["runs"][0]["mean_ap"] <= 1
    # the breakdowns: a bag's entry is that bag evaluated alone; a tag's covers its bags
    bags = {b["bag"]: b for b in ray["bags"]}
    assert list(bags) == ["drive0", "drive1", "drive2"] and bags["drive2"]["tags"] == {"weather": "rain"}
    alone = scored(str(fleet.parent / "drives" / "drive1"))
    fp32 = "onnxruntime:fp32"
    assert bags["drive1"]["runs"][fp32]["mean_ap"] == alone["runs"][0]["mean_ap"]
    assert bags["drive1"]["runs"][fp32]["miou"] == alone["runs"][0]["map"]["miou"]
    assert (
        ray["tags"]["weather=rain"]["bags"] == 2 and ray["tags"]["weather=rain"]["runs"][fp32]["frames"] == 2 * FRAMES
    )
    assert ray["tags"]["weather=clear"]["runs"][fp32]["mean_ap"] == bags["drive1"]["runs"][fp32]["mean_ap"]
    md = (tmp_path / "ray" / "report.md").read_text()
    assert "## Per bag" in md and "## Per tag" in md and "| weather=rain | 2 | 4 |" in md
    assert (tmp_path / "ray" / "plots" / "per_bag.png").stat().st_size > 5_000


def test_slices_of_a_bag_equal_the_whole_bag(frame_dir: Path, tmp_path: Path) -> None:
    bag = drive(frame_dir, tmp_path / "long", SEED + 1000, 6)
    whole = scored(str(bag), "--workers", "1")
    sliced = scored(str(bag), "--workers", "2", "--slice-s", "0.2")
    assert sliced["fleet"]["tasks"] == 3 and sliced["incomplete"] is None
    assert scores(sliced) == scores(whole)
    stamps = [f["stamp_ns"] for f in whole["per_frame"]]
    assert [f["stamp_ns"] for f in sliced["per_frame"]] == stamps
    # a manifest's time range: the frames stamped 0.15 s to 0.45 s after the bag's first message
    manifest = tmp_path / "range.yaml"
    manifest.write_text(f"bags:\n  - path: {bag}\n    start_s: 0.15\n    end_s: 0.45\n")
    part = scored(str(manifest), "--workers", "1")
    assert [f["stamp_ns"] for f in part["per_frame"]] == stamps[2:5] and part["bag"] == f"{bag}[0.15-0.45s]"


def test_a_broken_bag_is_reported_and_the_rest_still_score(fleet: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    drives = fleet.parent / "drives"
    broken = tmp_path / "broken"
    shutil.copytree(drives / "drive1", broken)
    path = next(broken.glob("*.mcap"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, res = evaluate(
        tmp_path / "ev", str(drives / "drive0"), str(broken), str(tmp_path / "missing"), "--workers", "2"
    )
    assert code == 2 and res is not None
    bags = {b["bag"]: b for b in res["bags"]}
    assert bags["drive0"]["error"] is None and bags["drive0"]["runs"]["onnxruntime:fp32"]["frames_scored"] == FRAMES
    assert "cannot open bag" in bags["broken"]["error"] and "does not exist" in bags["missing"]["error"]
    assert res["runs"][0]["frames_scored"] == FRAMES and "broken could not be replayed" in res["incomplete"]
    assert "INCOMPLETE" in capsys.readouterr().out


def test_a_worker_lost_mid_task_is_retried(fleet: Path, tmp_path: Path) -> None:
    """SIGKILL the first Ray worker seen replaying a bag: Ray runs its task again, once."""
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for p in psutil.process_iter(["pid", "cmdline"]):
                if any("ray::replay_on_worker" in part for part in p.info["cmdline"] or ()):
                    p.kill()
                    killed.append(p.info["pid"])
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    res = scored(str(fleet), "--workers", "2")
    killer.join(timeout=1)
    assert killed, "no Ray worker was seen replaying a bag"
    assert res["incomplete"] is None
    assert res["runs"][0]["frames_scored"] == 3 * FRAMES and all(b["error"] is None for b in res["bags"])


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("bags: []\n", "expected a non-empty list under 'bags:'"),
        (
            "bags:\n  - path: a\n    weather: rain\n",
            "bags[0]: unknown key 'weather'; allowed: path, start_s, end_s, tags",
        ),
        ("bags:\n  - path: a\n    start_s: 5\n    end_s: 2\n", "end_s (2.0) must be after start_s (5.0)"),
        ("bags:\n  - {path: a, start_s: soon}\n", "start_s must be a number of seconds >= 0, got 'soon'"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_key(tmp_path: Path, capsys, manifest: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fleet.yaml"
    path.write_text(manifest)
    code, res = evaluate(tmp_path / "ev", str(path))
    err = capsys.readouterr().err
    assert code == 2 and res is None and message in err and "Traceback" not in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_writes_the_report_of_the_finished_bags(fleet: Path, tmp_path: Path, workers: str) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C, once a bag has finished: the
    finished bags are scored and written, the run says it was interrupted."""
    import os
    import re
    import signal
    import subprocess
    import sys

    drives = fleet.parent / "drives"
    many = [str(drives / f"drive{k % 3}") for k in range(12)]  # the same three drives, four times
    cmd = [str(Path(sys.executable).parent / "bevfusion-ros"), "evaluate", *many, "--workers", workers]
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "ev")], stderr=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stderr is not None
    # the bar counts frames as they start: this many means a bag has finished, one at a time or two
    enough = FRAMES + 1 if workers == "1" else 4 * FRAMES + 1
    seen, text = 0, ""
    while seen < enough and proc.poll() is None:
        chunk = os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        text += chunk
        counts = [int(m) for m in re.findall(r"\| *(\d+)/\d+ \[", text)]
        seen = max(counts, default=0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (seen, out.decode()[-2000:], err.decode()[-2000:])
    res = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert res["fleet"]["interrupted"] and "interrupted" in res["incomplete"]
    assert FRAMES <= res["frames"] < 12 * FRAMES and res["runs"][0]["frames_scored"] == res["frames"]
    assert "Traceback" not in err.decode()
