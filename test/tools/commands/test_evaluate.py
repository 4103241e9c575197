"""``bevfusion-ros evaluate``: a generated-scenes bag with ground truth replayed through the node's
code and scored; gates and exit codes; recorded outputs; and every kind of bad bag."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.bags import copy_bag
from rclpy.serialization import serialize_message

from bevfusion_ros.core.eval.metrics import DetectionEvaluator
from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.perception.timing import FrameTiming
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.resources import default_model
from bevfusion_ros.ros import build, diagnostics
from bevfusion_ros.tools import cli
from bevfusion_ros.tools.bags.frames import read_frames
from bevfusion_ros.tools.bags.io import BagWriter
from bevfusion_ros.tools.bags.layout import GT_MAP_PREFIX, LIDAR_TOPIC
from bevfusion_ros.tools.bags.writer import scene_frame, write_bag
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import load_frame

SEED = 10_000_200
FRAMES = 3
NODE = "/bevfusion_perception"


@pytest.fixture(scope="module")
def scene_bag(frame_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    first = scene_frame(load_frame(frame_dir), SEED)
    grid = load_model(default_model()).map.grid  # type: ignore[union-attr]
    return write_bag(
        first,
        tmp_path_factory.mktemp("eval") / "scenes",
        FRAMES,
        show_progress=False,
        frames=lambda k: first if k == 0 else scene_frame(first, SEED + k),
        maps=lambda k: (scenes.rasterize_map(scenes.generate_scene(SEED + k), grid), grid, scenes.MAP_CLASSES),
    )


def evaluate(bag: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any] | None]:
    code = cli.main(["evaluate", str(bag), "--out", str(out), "--no-progress", *extra])
    path = out / "evaluation.json"
    return code, json.loads(path.read_text()) if path.is_file() else None


def test_replay_scores_and_compares(scene_bag: Path, tmp_path: Path, frame_dir: Path) -> None:
    code, res = evaluate(scene_bag, tmp_path / "ev", "--compare", "onnxruntime:int8")
    assert code == 0 and res is not None and res["incomplete"] is None and res["frames"] == FRAMES
    fp32, int8 = res["runs"]
    assert fp32["name"] == "onnxruntime:fp32" and int8["model"].endswith("int8")
    assert fp32["frames_scored"] == FRAMES and 0.3 < fp32["mean_ap"] <= 1 and 0 < fp32["map"]["miou"] <= 1
    # the bag's ground truth has velocities (/ground_truth/objects) and the reference model predicts
    # none: its velocity error is the objects' speed, no longer a free 0 against zero-velocity truth
    assert fp32["detection"]["tp_errors"]["vel_err"] > 0.3
    # ...so the report gives no mAVE for it (test_multi_sweep.py: one for a model that predicts)
    assert not fp32["predicts_velocity"] and fp32["mean_ave"] is None
    assert "n/a (no velocity head)" in (tmp_path / "ev" / "report.md").read_text()
    # every frame full: the one mode's scores are the run's
    assert fp32["modes"] == {
        "full": {"frames": FRAMES, "frames_scored": FRAMES, "mean_ap": fp32["mean_ap"],
                 "nd_score": fp32["nd_score"], "miou": fp32["map"]["miou"]}
    }  # fmt: skip
    for stage in ("camera.backbone", "fuser", "total"):
        assert fp32["latency_ms"][stage]["n"] == FRAMES and fp32["latency_ms"][stage]["p99"] > 0
    cmp = res["comparisons"]["onnxruntime:int8"]
    assert cmp["frames"] == FRAMES and cmp["a_found_in_b"] > 0.8 and cmp["seg_miou"] > 0.8
    assert [f["stamp_ns"] for f in cmp["per_frame"]] == [f["stamp_ns"] for f in res["per_frame"]]
    assert len(res["per_frame"]) == FRAMES and all(0 <= f["f1"] <= 1 for f in res["per_frame"])
    assert res["evaluation_frames_per_s"] > 0
    # the same frames through the Pipeline directly, scored the same way: replay adds and loses nothing
    spec = load_model(default_model())
    direct = DetectionEvaluator(spec.class_names)
    with Pipeline(spec) as pipe:
        for f in read_frames(scene_bag, spec):
            pipe.set_calibration(f.rig)
            assert f.ground_truth is not None
            direct.add(str(f.stamp_ns), f.ground_truth, pipe(f.images, f.points).detections)
    assert fp32["mean_ap"] == pytest.approx(direct.compute()["mean_ap"], abs=1e-9)
    # the report: plots on disk, inlined in the HTML, linked from the Markdown
    out = tmp_path / "ev"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6 and "src='plots/" not in html
    md = (out / "report.md").read_text()
    for name in ("ap_per_class", "pr_curves", "latency", "scores_0", "worst_1", "best_1"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5_000 and f"plots/{name}.png" in md
    # the HTML carries every table and note of the Markdown: both are one text
    for heading in ("onnxruntime:fp32: per class", "Agreement with the first run", "Gates", "Input"):
        assert f"## {heading}" in md and f"<h2>{heading}" in html
    assert html.count("<table>") == md.count("\n|---") and "map class" in html and "Stage latency" in html
    json.loads((out / "evaluation.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_gates_set_the_exit_code(scene_bag: Path, tmp_path: Path) -> None:
    # each gate decides alone (test_agreement.py checks their arithmetic): two fail, then both pass
    code, res = evaluate(scene_bag, tmp_path / "a", "--max-frames", "2", "--min-map", "0.99", "--max-p99-ms", "0.01")
    assert code == 1 and res is not None and res["frames"] == 2 and not res["passed"]
    failed = {g["name"] for g in res["gates"] if not g["passed"]}
    assert failed == {"min_map", "max_p99_ms"}
    assert "FAILED: min_map" in (tmp_path / "a" / "report.md").read_text()
    code, res = evaluate(scene_bag, tmp_path / "c", "--max-frames", "2", "--min-map", "0", "--max-p99-ms", "1e6")
    assert code == 0 and res is not None and res["passed"] and len(res["gates"]) == 2


def fake_recording(bag: Path, out: Path, shift_m: float = 0.0, skip: tuple[int, ...] = ()) -> Path:
    """What the node publishes for every sweep of ``bag`` (its message builders, the pipeline's
    results), written as a recorder would; ``shift_m`` moves every box along x; the frames in
    ``skip`` are left out (a node busy or a recorder late)."""
    spec = load_model(default_model())
    assert spec.map is not None
    with Pipeline(spec) as pipe, BagWriter(out) as w:
        for i, f in enumerate(read_frames(bag, spec)):
            if i in skip:
                continue
            pipe.set_calibration(f.rig)
            r = pipe(f.images, f.points)
            hdr = build.header("lidar_top", f.stamp_ns)
            det = r.detections
            moved = type(det)(
                det.centers + np.float32([shift_m, 0, 0]),
                det.sizes,
                det.yaw,
                det.scores,
                det.labels,
                det.class_names,
                det.velocities,
            )
            w.write(
                f"{NODE}/detections",
                "vision_msgs/msg/Detection3DArray",
                f.stamp_ns,
                serialize_message(build.detections_msg(moved, hdr)),
            )
            g = spec.map.grid
            assert r.segmentation is not None
            for k, c in enumerate(spec.map.classes):
                msg = build.occupancy_grid_msg(r.segmentation.probabilities[k], g.resolution, (g.xmin, g.ymin), hdr)
                w.write(f"{NODE}/map/{c}", "nav_msgs/msg/OccupancyGrid", f.stamp_ns, serialize_message(msg))
            timing = FrameTiming(
                dict(r.timings_ms),
                host_ms=1.0,
                latency_ms=r.timings_ms["total"] + 1.0,
                stamp_age_ms=r.timings_ms["total"] + 2.0,
                camera_skew_ms=0.0,
                masked_cameras=0,
                points=r.points_used,
                detections=len(r.detections),
            )
            st = diagnostics.status("bevfusion: timing", spec.name, diagnostics.OK, "frame", timing.encode())
            w.write(
                f"{NODE}/timing",
                "diagnostic_msgs/msg/DiagnosticArray",
                f.stamp_ns,
                serialize_message(diagnostics.array(build.header("", f.stamp_ns), [st])),
            )
    return out


def test_recorded_outputs_score_like_the_replay(scene_bag: Path, tmp_path: Path) -> None:
    rec = fake_recording(scene_bag, tmp_path / "rec")
    code, res = evaluate(scene_bag, tmp_path / "ev", "--recorded", str(rec), "--compare", "onnxruntime")
    assert code == 0 and res is not None
    recorded, replayed = res["runs"]
    assert recorded["kind"] == "recorded" and recorded["frames"] == FRAMES and replayed["frames"] == FRAMES
    assert recorded["mean_ap"] == pytest.approx(replayed["mean_ap"], abs=1e-6)
    assert recorded["map"]["miou"] == pytest.approx(replayed["map"]["miou"], abs=0.02)  # grids hold whole percent
    assert recorded["latency_ms"]["total"]["n"] == FRAMES
    cmp = res["comparisons"]["onnxruntime:fp32"]
    assert cmp["a_found_in_b"] == 1.0 and cmp["b_found_in_a"] == 1.0 and cmp["centre_m"]["max"] < 1e-3
    # a recording whose boxes are 1.5 m off agrees less and scores lower
    off = fake_recording(scene_bag, tmp_path / "off", shift_m=1.5)
    code, res2 = evaluate(scene_bag, tmp_path / "ev2", "--compare", f"recorded:{off}", "--max-map-drop", "3")
    assert code == 1 and res2 is not None
    c2 = res2["comparisons"][f"recorded:{off}"]
    assert c2["centre_m"]["p50"] == pytest.approx(1.5, abs=1e-3)
    assert res2["runs"][1]["mean_ap"] < res2["runs"][0]["mean_ap"]


def test_a_recording_missing_frames_is_compared_on_the_frames_it_has(scene_bag: Path, tmp_path: Path) -> None:
    """Every box of the recording agrees with the replay, but it lacks frame 1: the delta and the
    mAP-drop gate compare the 2 common frames (0 difference), not 2 frames with 3."""
    rec = fake_recording(scene_bag, tmp_path / "rec", skip=(1,))
    code, res = evaluate(scene_bag, tmp_path / "ev", "--compare", f"recorded:{rec}", "--max-map-drop", "0.01")
    assert code == 0 and res is not None
    replayed, recorded = res["runs"]
    assert (replayed["frames"], recorded["frames"]) == (FRAMES, FRAMES - 1)
    same = res["comparisons"][f"recorded:{rec}"]["same_frames"]
    assert same["frames"] == FRAMES - 1 and same["mean_ap"] == pytest.approx(same["reference_mean_ap"], abs=1e-9)
    assert all(g["passed"] for g in res["gates"])
    assert f"+0.0000 (+0.0 %) on {FRAMES - 1} frames" in (tmp_path / "ev" / "report.md").read_text()


def test_bag_without_ground_truth_is_replayed_and_says_so(scene_bag: Path, tmp_path: Path) -> None:
    bag = copy_bag(scene_bag, tmp_path / "nogt", keep=lambda t: not t.startswith("/ground_truth"))
    code, res = evaluate(bag, tmp_path / "ev", "--max-frames", "1")
    assert code == 0 and res is not None and res["frames"] == 1
    assert res["runs"][0]["detection"] is None and any("no ground truth" in n for n in res["notes"])
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "ground truth: none in the bag" in md and "frames without ground truth" not in md
    assert res["runs"][0]["latency_ms"]["total"]["n"] == 1
    code, res = evaluate(bag, tmp_path / "ev2", "--max-frames", "1", "--min-map", "0.1")
    assert code == 1 and res is not None and "no ground truth" in res["gates"][0]["text"]


def test_bag_without_map_ground_truth_scores_boxes_only(scene_bag: Path, tmp_path: Path) -> None:
    bag = copy_bag(scene_bag, tmp_path / "nomap", keep=lambda t: not t.startswith(GT_MAP_PREFIX))
    code, res = evaluate(bag, tmp_path / "ev", "--max-frames", "1")
    assert code == 0 and res is not None and res["runs"][0]["mean_ap"] is not None and res["runs"][0]["map"] is None
    assert any("no map ground truth" in n for n in res["notes"])


def test_missing_camera_and_wrong_types_name_what_is_wrong(scene_bag: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bag = copy_bag(scene_bag, tmp_path / "five", keep=lambda t: "cam_back/" not in t)
    code, res = evaluate(bag, tmp_path / "ev")
    err = capsys.readouterr().err
    assert code == 2 and res is None
    assert "needs 6 cameras, the bag has 5" in err and "CAM_BACK (/cameras/cam_back/image_raw)" in err
    assert "Traceback" not in err
    image = serialize_message(build.image_msg(np.zeros((2, 2, 3), np.uint8), build.header("x", 1)))
    bag = copy_bag(scene_bag, tmp_path / "typed", retype={LIDAR_TOPIC: ("sensor_msgs/msg/Image", image)})
    code, _ = evaluate(bag, tmp_path / "ev2")
    err = capsys.readouterr().err
    assert code == 2 and "/lidar/points is sensor_msgs/msg/Image, expected sensor_msgs/msg/PointCloud2" in err


def test_corrupt_chunk_keeps_the_frames_before_it(scene_bag: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A chunk whose data no longer matches its CRC (how rosbag2's mcap writer protects chunks)."""
    import shutil

    bag = tmp_path / "corrupt"
    shutil.copytree(scene_bag, bag)
    path = next(bag.glob("*.mcap"))
    data = bytearray(path.read_bytes())
    chunks, pos = [], 8
    while data[pos] != 0x0F:  # walk the records up to the data end
        length = struct.unpack_from("<Q", data, pos + 1)[0]
        if data[pos] == 0x06:
            chunks.append(pos)
        pos += 9 + length
    assert len(chunks) >= 3
    struct.pack_into("<I", data, chunks[len(chunks) // 2] + 9 + 24, 0xDEADBEEF)  # a middle chunk's CRC
    path.write_bytes(bytes(data))
    code, res = evaluate(bag, tmp_path / "ev")
    out = capsys.readouterr().out
    assert code == 2 and res is not None
    assert "checksum" in res["incomplete"] and "incomplete" in out
    assert 1 <= res["frames"] < FRAMES and res["runs"][0]["frames_scored"] == res["frames"]
    assert "INCOMPLETE" in (tmp_path / "ev" / "report.md").read_text()


def test_unopenable_bag_is_one_clear_error(scene_bag: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import shutil

    bag = tmp_path / "truncated"
    shutil.copytree(scene_bag, bag)
    path = next(bag.glob("*.mcap"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, res = evaluate(bag, tmp_path / "ev")
    err = capsys.readouterr().err
    assert code == 2 and res is None and "cannot open bag" in err and "Traceback" not in err
    code, _ = evaluate(tmp_path / "nope", tmp_path / "ev")
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_recorded_bag_without_detections_and_bad_run_names(scene_bag: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _ = evaluate(scene_bag, tmp_path / "ev", "--recorded")
    assert code == 2 and f"has no {NODE}/detections" in capsys.readouterr().err
    code, _ = evaluate(scene_bag, tmp_path / "ev", "--compare", "onnxruntime:fp16")
    assert code == 2 and "onnxruntime precisions are fp32 and int8" in capsys.readouterr().err
    code, _ = evaluate(scene_bag, tmp_path / "ev", "--compare", "tensorrt:nope")
    assert code == 2 and "no engine config" in capsys.readouterr().err


def test_tensorrt_run_against_the_fake(scene_bag: Path, tmp_path: Path, trt_fakes) -> None:  # type: ignore[no-untyped-def]
    """The TensorRT path of evaluate (FAKE TensorRT 10.3 + fake CUDA device: fp32 arithmetic), so
    engines built from the fp16 config must agree with ONNX Runtime almost box for box."""
    code, res = evaluate(
        scene_bag,
        tmp_path / "ev",
        "--max-frames",
        "2",
        "--compare",
        "tensorrt:fp16",
        "--param",
        f"engine_dir:={tmp_path / 'engines'}",
        "--param",
        "allow_engine_build:=true",
    )
    assert code == 0 and res is not None, res
    assert trt_fakes.build_stats["builds"] == 6
    trt = res["runs"][1]
    assert trt["name"] == "tensorrt:fp16" and trt["frames"] == 2 and trt["latency_ms"]["head.bbox"]["n"] == 2
    cmp = res["comparisons"]["tensorrt:fp16"]
    assert cmp["a_found_in_b"] > 0.95 and cmp["centre_m"]["p95"] < 0.05 and cmp["seg_miou"] > 0.95


def test_a_bag_with_lost_sensors_is_scored_per_sensor_mode(tmp_path: Path, frame_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """make-bag --lose leaves every camera out of frames 1-3 and the LiDAR out of frames 6-10; the
    replay runs frame 2 LiDAR-only (1 and 3 borrow their neighbours' images within
    max_camera_lidar_delay), the LiDAR's gap camera-only from lidar_timeout on, and the report
    splits the accuracy by mode."""
    bag = tmp_path / "lost"
    args = ["make-bag", "--frame", str(frame_dir), "--scene", str(SEED), "--frames", "12", "--out", str(bag)]
    assert cli.main([*args, "--lose", "cameras:1:3", "--lose", "lidar:6:10"]) == 0
    code, res = evaluate(bag, tmp_path / "eval")
    assert code == 0 and res is not None
    modes = res["runs"][0]["modes"]
    assert set(modes) == {"full", "camera_only", "lidar_only"}
    assert modes["full"]["frames"] >= 5 and 1 <= modes["lidar_only"]["frames"] <= 3
    # the last sweep at 0.5 s: camera frames from 0.8 s (the front camera's offset to the LiDAR decides 0.8)
    assert modes["camera_only"]["frames"] in (2, 3)
    assert res["sync"]["sync_frames_without_lidar"] == modes["camera_only"]["frames"]
    assert all(m["frames_scored"] == m["frames"] for m in modes.values())  # ground truth found for each
    assert 0 < modes["camera_only"]["mean_ap"] < modes["full"]["mean_ap"]
    for report in ("report.md", "report.html"):
        assert "Accuracy per sensor mode" in (tmp_path / "eval" / report).read_text()
    capsys.readouterr()
    assert cli.main([*args, "--overwrite", "--lose", "radar:1:2"]) == 2
    assert "bevfusion-ros make-bag: error: --lose 'radar:1:2' must be SENSOR:FIRST:LAST" in capsys.readouterr().err
