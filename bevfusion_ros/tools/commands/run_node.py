"""``bevfusion-ros run-node --bag BAG``: the perception node on a bag, over a real ROS 2 graph.

A thin wrapper over what a user runs by hand: ``ros2 launch bevfusion_ros bevfusion.launch.py`` with
the bag's calibration and ``autostart:=false``, the package's recorder beside it (rosbag2 is C++ and
absent here), the node brought up with ``ros2 lifecycle set ... configure`` / ``activate``, then the
package's player (``ros2 bag play``), SIGINT to the launch once the bag is played and the node idle.
Writes <out>/outputs (mcap), summary.json, summary.md, a BEV PNG of the last processed frame, and
the logs of the launch, the recorder and the player.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bevfusion_ros.core.errors import BevFusionError, ConfigError
from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.paramspec import parse_override
from bevfusion_ros.core.perception.config import load_config
from bevfusion_ros.core.perception.timing import PERCEPTION_NODE, PERCEPTION_NODE_PATH
from bevfusion_ros.core.resources import config_file, default_model
from bevfusion_ros.ros.optional import autoware_perception_msgs
from bevfusion_ros.ros.transport import transport_env
from bevfusion_ros.tools.bags.layout import LIDAR_TOPIC, image_topic
from bevfusion_ros.tools.processes import start, stop

NODE = PERCEPTION_NODE_PATH


def output_topics(map_classes: tuple[str, ...]) -> dict[str, str]:
    topics = {
        f"{NODE}/detections": "vision_msgs/msg/Detection3DArray",
        f"{NODE}/timing": "diagnostic_msgs/msg/DiagnosticArray",
        f"{NODE}/markers": "visualization_msgs/msg/MarkerArray",
        f"{NODE}/labels": "vision_msgs/msg/LabelInfo",
        "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    }
    topics.update({f"{NODE}/map/{c}": "nav_msgs/msg/OccupancyGrid" for c in map_classes})
    if autoware_perception_msgs() is not None:  # the node publishes ~/objects where it can
        topics[f"{NODE}/objects"] = "autoware_perception_msgs/msg/DetectedObjects"
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


def _wait(done: Any, timeout: float, procs: dict[str, subprocess.Popen[str]], what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        for name, p in procs.items():
            if p.poll() is not None:
                msg = f"the {name} exited ({p.returncode}) while waiting for {what}; logs in {logs}"
                raise BevFusionError(msg)
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f} s waiting for {what}; logs in {logs}"
            raise BevFusionError(msg)
        time.sleep(0.1)  # polling other processes' files, not a fixed wait


def _status(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {"counts": {}, "idle_s": {}}


def _params_file(shipped: Path, node: str, values: dict[str, Any], out: Path) -> Path:
    """The shipped params file with ``values`` set: the launch file's params_file for this run."""
    raw = yaml.safe_load(shipped.read_text())
    raw[node]["ros__parameters"].update(values)
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def _ros2(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ros2 = str(Path(sys.executable).parent / "ros2")
    return subprocess.run([ros2, *args], capture_output=True, text=True, env=env, timeout=120)


def _exit_code(launch_log: str, executable: str) -> int | None:
    """A node's exit code as ros2 launch reports it."""
    if re.search(rf"\[{executable}-\d+\]: process has finished cleanly", launch_log):
        return 0
    died = re.search(rf"\[{executable}-\d+\]: process has died \[pid \d+, exit code (-?\d+)", launch_log)
    return int(died.group(1)) if died else None


def _check_node_alive(launch_log: Path) -> None:
    """The perception node's own reason, as one error, when it exited under the launch (the launch
    itself goes on running the other nodes)."""
    text = launch_log.read_text()
    code = _exit_code(text, "perception_node")
    if code is None:
        return
    reasons = [line.split("] ", 1)[-1] for line in text.splitlines() if "perception_node" in line
               and ("refused parameters" in line or "failed" in line or "Error" in line)]  # fmt: skip
    msg = f"the perception node exited ({code}): {reasons[-1] if reasons else 'see ' + str(launch_log)}"
    raise BevFusionError(msg)


def run(args: argparse.Namespace) -> int:
    """ros2 launch and the recorder as processes; this process joins no ROS graph: it drives the node
    through the ros2 CLI and reads the recorder's status file and the launch log."""
    from bevfusion_ros.tools.bags.io import open_reader

    if args.rate <= 0:
        msg = f"--rate must be > 0 (the playback speed), got {args.rate}"
        raise ConfigError(msg)
    overrides = dict(parse_override(p) for p in args.param)
    load_config(overrides)  # an unknown name or a value out of range: said here, before anything starts
    env = transport_env()
    spec = load_model(args.model or default_model())
    calibration = args.calibration or args.bag / "calibration.yaml"
    args.out.mkdir(parents=True, exist_ok=True)
    reader = open_reader(args.bag)
    sweeps = sum(c.msgcount for c in reader.connections if c.topic == LIDAR_TOPIC)
    if any(c.topic == image_topic(spec.cameras[0], True) for c in reader.connections):
        overrides.setdefault("image_transport", "compressed")  # the bag holds CompressedImage
    reader.close()
    params = _params_file(
        config_file("perception.yaml"), PERCEPTION_NODE, overrides, args.out / "perception.params.yaml"
    )
    (args.out / "monitor.jsonl").unlink(missing_ok=True)
    monitor_params = _params_file(
        config_file("monitor.yaml"), "bevfusion_monitor", {"log_path": str(args.out / "monitor.jsonl")},
        args.out / "monitor.params.yaml",
    )  # fmt: skip
    launch_args = [
        f"params_file:={params}", f"calibration_file:={calibration}", f"backend:={args.backend}",
        "autostart:=false", f"lidar_topic:={LIDAR_TOPIC}",
        f"monitor:={'true' if args.monitor else 'false'}", f"monitor_params_file:={monitor_params}",
    ]  # fmt: skip
    if args.model:
        launch_args.append(f"model:={args.model}")
    status = args.out / "recorder_status.json"
    status.unlink(missing_ok=True)
    rec_cmd = [sys.executable, "-m", "bevfusion_ros.tools.commands.record", "--out", str(args.out / "outputs"),
               "--overwrite", "--status", str(status), "--latched", f"{NODE}/labels"]  # fmt: skip
    for t, ty in output_topics(spec.map.classes if spec.map else ()).items():
        rec_cmd += ["--topic", t, ty]
    launch_log = args.out / "launch.log"
    procs: dict[str, subprocess.Popen[str]] = {}
    ros2 = str(Path(sys.executable).parent / "ros2")
    try:
        launch_cmd = [ros2, "launch", "bevfusion_ros", "bevfusion.launch.py", *launch_args]
        procs["ros2 launch"] = start(launch_cmd, launch_log, env)
        procs["recorder"] = start(rec_cmd, args.out / "recorder.log", env)
        _wait(status.is_file, 60, procs, "the recorder", args.out)
        for transition in ("configure", "activate"):

            def done(transition: str = transition) -> bool:  # the node may not be discovered yet: retry
                _check_node_alive(launch_log)
                r = _ros2("lifecycle", "set", "--no-daemon", "--spin-time", "3", NODE, transition, env=env)
                return r.returncode == 0 and "Transitioning successful" in r.stdout

            _wait(done, args.startup_timeout, procs, f"ros2 lifecycle set {NODE} {transition}", args.out)
        # the latched LabelInfo arriving shows the recorder is matched with the node's publishers
        _wait(lambda: _status(status)["counts"].get(f"{NODE}/labels", 0) > 0, 60, procs, "the recorder", args.out)
        print(f"perception node active (ros2 lifecycle set); playing {args.bag} ({sweeps} sweeps) at x{args.rate}")
        # The player starts now, from here, not from the launch file: waiting there for "a subscriber
        # on the LiDAR topic" was met by a DDS reader of an earlier process not yet timed out, and the
        # bag was played before the node was active.
        player_cmd = [
            *(sys.executable, "-m", "bevfusion_ros.tools.commands.play", str(args.bag), "--rate", str(args.rate)),
            *("--wait-subscribers", "1", "--wait-topics", LIDAR_TOPIC, "--delay", "1.0"),
        ]
        player = start(player_cmd, args.out / "player.log", env)
        try:
            _wait(lambda: player.poll() is not None, 3600, procs, "the bag to finish", args.out)
        finally:
            stop(player)
        if player.returncode != 0:
            msg = f"the bag player exited ({player.returncode}); see {args.out / 'player.log'}"
            raise BevFusionError(msg)

        def idle() -> bool:  # at least one frame out, then nothing for 3 s
            st = _status(status)
            return bool(st["counts"].get(f"{NODE}/timing", 0) > 0 and st["idle_s"].get(f"{NODE}/timing", 0.0) > 3.0)

        _wait(idle, 300, procs, "the node to finish its last frame", args.out)
    finally:
        for name in ("ros2 launch", "recorder"):
            if name in procs:
                stop(procs[name])
    node_exit = _exit_code(launch_log.read_text(), "perception_node")
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
    return 0 if summary["unexplained_drops"] == 0 and summary["frames_out"] > 0 and node_exit == 0 else 1
