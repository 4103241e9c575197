#!/usr/bin/env python3
"""Transport benchmark: 6 x 1600x900 bgr8 + a 300k-point cloud at 10 Hz between two processes.

Compares the middleware default with the shipped shared-memory profile (config/fastdds_shm.xml).
The publisher sends pre-built messages from memory (no bag I/O in the loop); the subscriber is
the probe (deserialize + convert every message). Latency is DDS source -> reception timestamp.

    .venv/bin/python benchmarks/transport.py --frames 100 --frame ../shared/data/nuscenes_frame
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CAMS = ("cam_front", "cam_front_right", "cam_front_left", "cam_back", "cam_back_left", "cam_back_right")


def publish(frame_dir: str, frames: int, rate: float, points: int) -> None:
    import rclpy

    from bevfusion_ros.ros import build
    from bevfusion_ros.tools.commands.play import wait_for_subscribers
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    frame = load_frame(frame_dir)
    reps = int(np.ceil(points / len(frame.points)))
    cloud = np.tile(frame.points, (reps, 1))[:points]
    rclpy.init()
    node = rclpy.create_node("transport_bench_pub")
    hdr = build.header("x", 0)
    msgs = {f"/bench/{c}": build.image_msg(cam.image_bgr, hdr) for c, cam in zip(CAMS, frame.cameras, strict=True)}
    msgs["/bench/points"] = build.pointcloud2_msg(cloud, ("x", "y", "z", "intensity", "ring"), hdr)
    pubs = {t: node.create_publisher(type(m), t, 10) for t, m in msgs.items()}
    wait_for_subscribers(node, pubs, 1, 20.0)
    t0 = time.monotonic()
    for k in range(frames):
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for t, m in msgs.items():
            pubs[t].publish(m)
    from rclpy.duration import Duration

    for p in pubs.values():
        p.wait_for_all_acked(Duration(seconds=5))
    node.destroy_node()
    rclpy.try_shutdown()


def run_config(name: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    topics = [f"/bench/{c}" for c in CAMS]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.json"
        cmd = [
            sys.executable,
            "-m",
            "bevfusion_ros.tools.cli",
            "probe",
            "--json",
            str(out),
            "--timeout",
            str(args.frames / args.rate + 60),
            "--idle",
            "5",
        ]
        for t in topics:
            cmd += ["--topic", t, "sensor_msgs/msg/Image"]
        cmd += ["--topic", "/bench/points", "sensor_msgs/msg/PointCloud2"]
        probe = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pub = subprocess.run(
            [
                sys.executable,
                __file__,
                "--publish",
                "--frames",
                str(args.frames),
                "--rate",
                str(args.rate),
                "--points",
                str(args.points),
                "--frame",
                str(args.frame),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        text, _ = probe.communicate(timeout=args.frames / args.rate + 120)
        if pub.returncode != 0 or not out.exists():
            raise SystemExit(f"{name}: benchmark failed\n{pub.stdout}{pub.stderr}{text}")
        report = json.loads(out.read_text())
    lat = np.concatenate([np.asarray(report[t]["all_latency_ms"]) for t in report])
    received = sum(report[t]["count"] for t in report)
    expected = args.frames * len(report)
    return {
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "received": received,
        "expected": expected,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/nuscenes_frame")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--configs", nargs="*", default=["default", "shm"])
    args = ap.parse_args()
    if args.publish:
        publish(str(args.frame), args.frames, args.rate, args.points)
        return 0
    from bevfusion_ros.ros.transport import transport_env

    base = dict(os.environ, ROS_DOMAIN_ID=str(150 + os.getpid() % 50), PYTHONUNBUFFERED="1")
    envs = {"default": dict(base, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"), "shm": transport_env(base)}
    print(
        f"transport: {args.frames} frames at {args.rate} Hz, 6 x 1600x900 bgr8 + {args.points} points "
        f"(x,y,z,i,ring float32), two processes"
    )
    print(f"{'config':8s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'received':>12s}")
    for name in args.configs:
        r = run_config(name, envs[name], args)
        print(
            f"{name:8s} {r['p50']:8.2f} {r['p95']:8.2f} {r['p99']:8.2f} {r['max']:8.2f} "
            f"{r['received']:>5d}/{r['expected']:<6d}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
