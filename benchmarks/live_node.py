"""A perception node in its own process on the real graph, fed the real nuScenes frame (6 x 1600x900
bgr8 + the real sweep) from this process, its ``~/timing`` and ``/diagnostics`` collected here:
what benchmarks/node.py and benchmarks/soak.py measure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from bevfusion_ros.ros.transport import transport_env

# before rclpy loads: the middleware reads its profile then (a domain of its own for each run)
os.environ.update(transport_env(domain_id=150 + os.getpid() % 50))

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from bevfusion_ros.core.perception.timing import TIMING_TOPIC, FrameTiming
from bevfusion_ros.ros import build
from bevfusion_ros.tools.bags.layout import LIDAR_TOPIC, camera_frame, image_topic
from bevfusion_ros.tools.bags.writer import calibration_dict
from bevfusion_ros.tools.data.nuscenes_frame import load_frame

REPO = Path(__file__).resolve().parents[1]
FRAME_DIR = REPO.parent / "shared" / "data" / "nuscenes_frame"


def proc_stats(pid: int) -> tuple[float, float]:
    """(user+system CPU seconds, RSS MiB) of a process from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
    return cpu, rss


@dataclass
class Output:
    received_ns: int  # wall clock here when the timing message arrived
    stamp_ns: int  # the frame's stamp
    timing: FrameTiming


@dataclass
class LiveNode:
    """Start with ``LiveNode.start(backend)``; ``send()`` one frame stamped now; ``stop(sig)``."""

    proc: subprocess.Popen[bytes]
    node: object
    images: list[Image]
    cloud: PointCloud2
    pubs: list[object]
    lidar: object
    outputs: list[Output] = field(default_factory=list)
    diag: dict[str, str] = field(default_factory=dict)
    frame_bytes: int = 0

    @classmethod
    def start(cls, backend: str, params: Sequence[str] = (), frame_dir: Path = FRAME_DIR) -> LiveNode:
        frame = load_frame(frame_dir)
        calib = Path(tempfile.mkdtemp()) / "calibration.yaml"
        calib.write_text(yaml.safe_dump(calibration_dict(frame)))
        cmd = [sys.executable, "-m", "bevfusion_ros.ros.perception_node", "--ros-args",
               "--params-file", str(REPO / "config" / "perception.yaml"), "-p", f"calibration_file:={calib}",
               "-p", f"backend:={backend}", "-p", "intrinsics_source:=file", "-p", "max_masked_cameras:=0"]  # fmt: skip
        for p in params:
            cmd += ["-p", p]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=dict(os.environ))
        if not rclpy.ok():
            rclpy.init()
        node = rclpy.create_node(f"live_node_feeder_{os.getpid()}")
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        pubs = [node.create_publisher(Image, image_topic(c.name), qos) for c in frame.cameras]
        lidar = node.create_publisher(PointCloud2, LIDAR_TOPIC, qos)
        images = [build.image_msg(c.image_bgr, build.header(camera_frame(c.name), 0)) for c in frame.cameras]
        fields = ("x", "y", "z", "intensity", "ring")
        cloud = build.pointcloud2_msg(
            frame.points, fields, build.header("lidar_top", 0), [np.float32] * 4 + [np.uint16]
        )
        live = cls(proc, node, images, cloud, pubs, lidar)
        live.frame_bytes = sum(c.image_bgr.nbytes for c in frame.cameras) + frame.points.nbytes

        def on_timing(m: DiagnosticArray) -> None:
            values = {kv.key: kv.value for kv in m.status[0].values}
            live.outputs.append(Output(time.time_ns(), build.stamp_ns(m.header.stamp), FrameTiming.decode(values)))

        def on_diag(m: DiagnosticArray) -> None:
            for st in m.status:
                live.diag.update({kv.key: kv.value for kv in st.values})

        node.create_subscription(DiagnosticArray, TIMING_TOPIC, on_timing, QoSProfile(depth=100))
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, QoSProfile(depth=10))
        live.wait(lambda: all(p.get_subscription_count() for p in (*pubs, lidar)), 120, "the node's subscriptions")
        return live

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            rclpy.spin_once(self.node, timeout_sec=left)

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the perception node exited ({self.proc.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def send(self) -> int:
        """Publish the frame stamped now; returns the stamp (ns)."""
        ns = time.time_ns()
        for p, m in zip(self.pubs, self.images, strict=True):
            m.header.stamp = build.stamp(ns)
            p.publish(m)
        self.cloud.header.stamp = build.stamp(ns)
        self.lidar.publish(self.cloud)
        return ns

    def first_output(self, timeout: float = 120.0) -> None:
        """Send frames, one a second, until one comes out: the subscriptions seen at start may be a
        previous node's (discovery forgets a dead reader late), and a frame sent to it is lost."""
        deadline = time.monotonic() + timeout
        while not self.outputs:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no output from the node within {timeout:.0f} s")
            self.send()
            self.spin(1.0)

    def stats(self) -> tuple[float, float]:
        return proc_stats(self.proc.pid)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """The node's exit code after ``sig`` (-9: it had to be killed after ``timeout``)."""
        self.node.destroy_node()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)
