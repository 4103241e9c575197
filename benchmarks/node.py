"""Perception node overhead on the real graph: nuScenes-size frames (6 x 1600x900 bgr8 + the real
LiDAR sweep) published at 10 Hz into the node running the ``null`` backend (zeros, no model compute),
so what is measured is the node's own work: message conversion, sync, pre/post-processing, bevpool,
publishing. Prints host ms per frame and its ratio to a memcpy of the frame's bytes, latency
p50/p99 (sensor stamp -> outputs received here), the node's CPU % and its RSS after N frames.

    .venv/bin/python benchmarks/node.py [--frames 1000] [--rate 10] [--backend null]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bevfusion_ros.ros.transport import transport_env

os.environ.update(transport_env(domain_id=150 + os.getpid() % 50))

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from bevfusion_ros.ros import build
from bevfusion_ros.tools.bags.layout import LIDAR_TOPIC, camera_frame, image_topic
from bevfusion_ros.tools.bags.writer import calibration_dict
from bevfusion_ros.tools.data.nuscenes_frame import load_frame

REPO = Path(__file__).resolve().parents[1]


def proc_stats(pid: int) -> tuple[float, float]:
    """(user+system CPU seconds, RSS MiB) of a process from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = (
        next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS")
        )
        / 1024
    )
    return cpu, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=REPO.parent / "shared" / "data" / "nuscenes_frame")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--backend", default="null")
    args = ap.parse_args()

    frame = load_frame(args.frame)
    calib = Path(tempfile.mkdtemp()) / "calibration.yaml"
    calib.write_text(yaml.safe_dump(calibration_dict(frame)))
    if os.environ.get("BENCH_CALIB"):
        calib = Path(os.environ["BENCH_CALIB"])
    node_proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bevfusion_ros.ros.perception_node",
            "--ros-args",
            "--params-file",
            str(REPO / "config" / "perception.yaml"),
            "-p",
            f"calibration_file:={calib}",
            "-p",
            f"backend:={args.backend}",
            "-p",
            "intrinsics_source:=file",
            "-p",
            "max_masked_cameras:=0",
            *os.environ.get("BENCH_PARAMS", "").split(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    rclpy.init()
    node = rclpy.create_node("bench_node_publisher")
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(Image, image_topic(c.name), qos) for c in frame.cameras]
    lidar = node.create_publisher(PointCloud2, LIDAR_TOPIC, qos)
    images = [build.image_msg(c.image_bgr, build.header(camera_frame(c.name), 0)) for c in frame.cameras]
    cloud = build.pointcloud2_msg(
        frame.points, ("x", "y", "z", "intensity", "ring"), build.header("lidar_top", 0), [np.float32] * 4 + [np.uint16]
    )
    got: list[tuple[int, dict[str, float]]] = []

    def on_timing(m: DiagnosticArray) -> None:
        got.append(
            (
                time.time_ns(),
                {kv.key: float(kv.value) for kv in m.status[0].values} | {"stamp": build.stamp_ns(m.header.stamp)},
            )
        )

    node.create_subscription(DiagnosticArray, "/bevfusion_perception/timing", on_timing, QoSProfile(depth=100))
    diag: dict[str, str] = {}

    def on_diag(m: DiagnosticArray) -> None:
        for st in m.status:
            diag.update({kv.key: kv.value for kv in st.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, QoSProfile(depth=10))
    deadline = time.monotonic() + 120
    while not all(p.get_subscription_count() for p in (*pubs, lidar)):
        assert time.monotonic() < deadline and node_proc.poll() is None, "perception node did not come up"
        rclpy.spin_once(node, timeout_sec=0.1)
    cpu0, _ = proc_stats(node_proc.pid)
    t0 = time.monotonic()
    period = 1.0 / args.rate
    for k in range(args.frames):
        target = t0 + k * period
        while time.monotonic() < target:
            rclpy.spin_once(node, timeout_sec=max(0.0, target - time.monotonic()))
        ns = time.time_ns()
        for p, m in zip(pubs, images, strict=True):
            m.header.stamp = build.stamp(ns)
            p.publish(m)
        cloud.header.stamp = build.stamp(ns)
        lidar.publish(cloud)
        if k % 100 == 0:
            print(f"  {k}/{args.frames} frames sent, {len(got)} out", flush=True)
    end = time.monotonic() + 10
    while time.monotonic() < end and (not got or got[-1][1]["stamp"] < ns):
        rclpy.spin_once(node, timeout_sec=0.1)
    end = time.monotonic() + 2  # one more diagnostics message
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    wall = time.monotonic() - t0
    cpu1, rss = proc_stats(node_proc.pid)
    node_proc.send_signal(2)
    node_proc.wait(timeout=30)
    node.destroy_node()
    rclpy.try_shutdown()

    frame_bytes = sum(c.image_bgr.nbytes for c in frame.cameras) + frame.points.nbytes
    src = np.frombuffer(np.random.default_rng(0).bytes(frame_bytes), np.uint8)
    dst = np.empty_like(src)
    copies = []
    for _ in range(20):
        s = time.perf_counter()
        np.copyto(dst, src)
        copies.append((time.perf_counter() - s) * 1e3)
    memcpy = float(np.median(copies))
    host = np.array([v["host_ms"] for _, v in got])
    total = np.array([v["total_ms"] for _, v in got])
    e2e = np.array([(t - v["stamp"]) / 1e6 for t, v in got])
    print(f"\nnode backend '{args.backend}': {args.frames} frames of {frame_bytes / 2**20:.1f} MiB at {args.rate} Hz")
    sync_keys = ("frames", "dropped_busy", "frames_masked", "camera_stale", "camera_missing", "/lidar/points received")
    print(
        f"frames out {len(got)} ({len(got) / args.frames:.0%}); node counts: "
        + ", ".join(f"{k} {diag.get(k, 0)}" for k in sync_keys)
    )
    print(
        f"host work per frame (conversion, pre/post, bevpool, publish): p50 {np.median(host):.1f} ms, "
        f"p99 {np.percentile(host, 99):.1f} ms; memcpy of the frame's bytes {memcpy:.2f} ms "
        f"-> {np.median(host) / memcpy:.0f}x"
    )
    print(f"pipeline total (null model) p50 {np.median(total):.1f} ms")
    print(f"end-to-end (sensor stamp -> outputs here) p50 {np.median(e2e):.0f} ms, p99 {np.percentile(e2e, 99):.0f} ms")
    print(f"node CPU {100 * (cpu1 - cpu0) / wall:.0f} % of one core over {wall:.0f} s; RSS after the run {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
