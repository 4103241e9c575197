"""``bevfusion-ros run-node --bag BAG``: the perception node on a bag, over a real ROS 2 graph.

What ``ros2 launch`` + ``ros2 bag play`` + ``ros2 bag record`` do on a vehicle, in one command for
machines without a ROS distribution: start the perception node as its own process (the shipped
params file, the bag's calibration.yaml), record everything it publishes into <out>/outputs (mcap),
play the bag's sensor topics at --rate, wait until the node is idle, stop it with SIGINT, and write
<out>/summary.json, <out>/summary.md and a BEV PNG of the last processed frame.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import BevFusionError
from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.perception.timing import PERCEPTION_NODE
from bevfusion_ros.core.resources import config_file, default_model
from bevfusion_ros.ros.transport import transport_env
from bevfusion_ros.tools.bags.layout import LIDAR_TOPIC, image_topic, info_topic

NODE = f"/{PERCEPTION_NODE}"


def output_topics(map_classes: tuple[str, ...]) -> dict[str, str]:
    topics = {
        f"{NODE}/detections": "vision_msgs/msg/Detection3DArray",
        f"{NODE}/timing": "diagnostic_msgs/msg/DiagnosticArray",
        f"{NODE}/markers": "visualization_msgs/msg/MarkerArray",
        f"{NODE}/labels": "vision_msgs/msg/LabelInfo",
        "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    }
    topics.update({f"{NODE}/map/{c}": "nav_msgs/msg/OccupancyGrid" for c in map_classes})
    return topics


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bag", type=Path, required=True, help="input bag (make-bag writes one, with calibration.yaml)")
    ap.add_argument("--out", type=Path, default=Path("build/run_node"))
    ap.add_argument("--model", type=Path, default=None, help="model YAML (default: the bundled reference model)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed (1.0 = the sensors' real rate)")
    ap.add_argument("--calibration", type=Path, default=None, help="default: <bag>/calibration.yaml")
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE", help="extra node parameter")
    ap.add_argument("--startup-timeout", type=float, default=120.0)
    ap.add_argument("--no-monitor", dest="monitor", action="store_false", help="do not start the monitor node")


def _wait(done: Any, timeout: float, procs: dict[str, subprocess.Popen[str]], what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        for name, p in procs.items():
            if p.poll() is not None:
                msg = f"the {name} exited ({p.returncode}) while waiting for {what}; see its log"
                raise BevFusionError(msg)
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f} s waiting for {what}"
            raise BevFusionError(msg)
        time.sleep(0.1)  # polling other processes' files, not a fixed wait


def _status(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {"counts": {}, "idle_s": {}}


def _stop(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # what ros2 launch sends
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> int:
    """Node, recorder and player as three processes, as a launch file would start them; this process
    only orchestrates (it joins no ROS graph) and reads the recorder's status file."""
    from bevfusion_ros.tools.bags.io import open_reader

    env = transport_env()
    spec = load_model(args.model or default_model())
    calibration = args.calibration or args.bag / "calibration.yaml"
    args.out.mkdir(parents=True, exist_ok=True)
    reader = open_reader(args.bag)
    sweeps = sum(c.msgcount for c in reader.connections if c.topic == LIDAR_TOPIC)
    compressed = any(c.topic == image_topic(spec.cameras[0], True) for c in reader.connections)
    reader.close()
    py = sys.executable
    node_cmd = [
        py,
        "-m",
        "bevfusion_ros.ros.perception_node",
        "--ros-args",
        "--params-file",
        str(config_file("perception.yaml")),
        "-p",
        f"calibration_file:={calibration}",
        "-p",
        f"backend:={args.backend}",
    ]
    if args.model:
        node_cmd += ["-p", f"model:={args.model}"]
    if compressed:  # the bag holds CompressedImage (make-bag --compressed)
        node_cmd += ["-p", "image_transport:=compressed"]
    for p in args.param:
        node_cmd += ["-p", p]
    topics = output_topics(spec.map.classes if spec.map else ())
    status = args.out / "recorder_status.json"
    status.unlink(missing_ok=True)
    rec_cmd = [
        py,
        "-m",
        "bevfusion_ros.tools.commands.record",
        "--out",
        str(args.out / "outputs"),
        "--overwrite",
        "--status",
        str(status),
        "--latched",
        f"{NODE}/labels",
    ]
    for t, ty in topics.items():
        rec_cmd += ["--topic", t, ty]
    inputs = [LIDAR_TOPIC, *(image_topic(c, compressed) for c in spec.cameras), *(info_topic(c) for c in spec.cameras)]
    play_cmd = [
        py,
        "-m",
        "bevfusion_ros.tools.commands.play",
        str(args.bag),
        "--rate",
        str(args.rate),
        "--topics",
        *inputs,
        "--wait-subscribers",
        "1",
        "--wait-timeout",
        "30",
        "--delay",
        "1.0",
    ]
    node_log = args.out / "perception_node.log"
    procs: dict[str, subprocess.Popen[str]] = {}
    monitor_cmd = [
        py,
        "-m",
        "bevfusion_ros.ros.monitor_node",
        "--ros-args",
        "--params-file",
        str(config_file("monitor.yaml")),
        "-p",
        f"log_path:={args.out / 'monitor.jsonl'}",
    ]
    (args.out / "monitor.jsonl").unlink(missing_ok=True)
    try:
        if args.monitor:
            with open(args.out / "monitor_node.log", "w") as log:
                # niced: on a small machine it must not take CPU from the node it watches
                procs["monitor node"] = subprocess.Popen(
                    monitor_cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    text=True,
                    preexec_fn=lambda: os.nice(10),
                )
        with open(node_log, "w") as log:
            procs["perception node"] = subprocess.Popen(
                node_cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True
            )
        _wait(lambda: "active:" in node_log.read_text(), args.startup_timeout, procs, "the node to become active")
        with open(args.out / "recorder.log", "w") as log:
            procs["recorder"] = subprocess.Popen(rec_cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
        # the latched LabelInfo arriving shows the recorder is matched with the node's publishers
        _wait(lambda: _status(status)["counts"].get(f"{NODE}/labels", 0) > 0, 60, procs, "the recorder")
        print(f"perception node active; playing {args.bag} ({sweeps} LiDAR sweeps) at x{args.rate}")
        player = subprocess.Popen(play_cmd, env=env, text=True)
        _wait(lambda: player.poll() is not None, 3600, procs, "the bag to finish")
        if player.returncode != 0:
            msg = f"the bag player failed ({player.returncode})"
            raise BevFusionError(msg)

        def idle() -> bool:  # at least one frame out, then nothing for 3 s
            st = _status(status)
            return bool(st["counts"].get(f"{NODE}/timing", 0) > 0 and st["idle_s"].get(f"{NODE}/timing", 0.0) > 3.0)

        _wait(idle, 300, procs, "the node to finish its last frame")
    finally:
        for name in ("perception node", "recorder", "monitor node"):
            if name in procs:
                _stop(procs[name])
        from bevfusion_ros.ros.transport import clean_orphaned_shm

        removed, freed = clean_orphaned_shm(min_age_s=5.0)  # a process that had to be killed leaks its segment
        if removed:
            print(f"removed {removed} orphaned Fast DDS shared-memory files ({freed / 1e6:.0f} MB)")
    node_exit = procs["perception node"].returncode
    from bevfusion_ros.tools.eval.run_summary import summarise

    summary = summarise(
        args.out / "outputs",
        args.bag,
        spec,
        sweeps,
        args.out,
        node_exit=node_exit,
        monitor_log=args.out / "monitor.jsonl" if args.monitor else None,
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    print((args.out / "summary.md").read_text())
    return 0 if summary["unexplained_drops"] == 0 and summary["frames_out"] > 0 else 1
