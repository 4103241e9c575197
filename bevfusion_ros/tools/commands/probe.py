"""``bevfusion-ros probe``: subscribe to topics, convert what arrives, report sizes and latency.

Latency is the middleware's own: MessageInfo's received minus source timestamp (same host
clock), so it holds for bags with old header stamps. Each message is then converted with the
package's converters (Image -> HxWx3, PointCloud2 -> Nx5, ...) to prove it arrived intact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.errors import BevFusionError, ConfigError
from bevfusion_ros.ros import convert
from bevfusion_ros.ros.build import occupancy_grid_to_array
from bevfusion_ros.ros.msgtypes import message_class
from bevfusion_ros.ros.node_main import shielded_teardown


@dataclass
class TopicStats:
    msgtype: str
    count: int = 0
    bytes: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    shape: str = ""
    errors: int = 0
    last_error: str = ""

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        return {
            "type": self.msgtype,
            "count": self.count,
            "bytes": int(np.median(self.bytes)) if self.bytes else 0,
            "shape": self.shape,
            "latency_ms_p50": float(np.percentile(lat, 50)),
            "latency_ms_p99": float(np.percentile(lat, 99)),
            "latency_ms_max": float(lat.max()),
            "errors": self.errors,
            "last_error": self.last_error,
            "all_latency_ms": [round(v, 3) for v in self.latency_ms],
        }


def describe(msgtype: str, msg: Any) -> str:
    """Convert a message with the package's converters; return a shape description."""
    name = msgtype.rsplit("/", 1)[-1]
    if name == "Image":
        return f"{convert.image_to_array(msg).shape} uint8 ({msg.encoding})"
    if name == "CompressedImage":
        return f"{convert.compressed_to_array(msg).shape} uint8 ({msg.format})"
    if name == "PointCloud2":
        pc = convert.pointcloud2_to_points(msg)
        return f"({len(pc)}, {len(pc.fields)}) {','.join(pc.fields)}"
    if name == "CameraInfo":
        k = convert.camera_info_to_intrinsics(msg)
        return f"{k.width}x{k.height} fx={k.fx:.1f}"
    if name == "Detection3DArray":
        return f"{len(convert.detection3d_array_to_detections(msg))} boxes"
    if name == "OccupancyGrid":
        return f"{occupancy_grid_to_array(msg).shape} int8"
    return name


class Probe:
    """Subscriptions that take raw CDR (to measure size), then deserialize and convert."""

    def __init__(self, node: Any, topics: dict[str, str], reliability: str = "reliable", depth: int = 10) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message

        self._deserialize = deserialize_message
        self.stats = {t: TopicStats(ty) for t, ty in topics.items()}
        self.last_message = time.monotonic()
        qos = QoSProfile(
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        )
        self._subs = [
            node.create_subscription(message_class(ty), t, self._callback(t, message_class(ty)), qos, raw=True)
            for t, ty in topics.items()
        ]

    def _callback(self, topic: str, cls: Any) -> Any:
        st = self.stats[topic]

        def on_message(raw: bytes, info: Any) -> None:
            st.latency_ms.append((info["received_timestamp"] - info["source_timestamp"]) / 1e6)
            st.bytes.append(len(raw))
            st.count += 1
            self.last_message = time.monotonic()
            try:
                st.shape = describe(st.msgtype, self._deserialize(raw, cls))
            except BevFusionError as exc:
                st.errors += 1
                st.last_error = str(exc)

        return on_message

    def done(self, expected: dict[str, int]) -> bool:
        return all(self.stats[t].count >= n for t, n in expected.items())


def topics_from_bag(bag: Path) -> tuple[dict[str, str], dict[str, int]]:
    from bevfusion_ros.tools.bags.io import open_reader

    reader = open_reader(bag)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        counts: dict[str, int] = {}
        for c in reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
    finally:
        reader.close()
    return types, counts


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bag", type=Path, help="take topics, types and expected counts from this bag")
    ap.add_argument(
        "--topic",
        nargs=2,
        action="append",
        default=[],
        metavar=("TOPIC", "TYPE"),
        help="a topic to probe, e.g. /lidar/points sensor_msgs/msg/PointCloud2",
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    ap.add_argument("--idle", type=float, default=5.0, help="stop this long after the last message")
    ap.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    ap.add_argument("--json", type=Path, help="write the per-topic report here")


def print_report(report: dict[str, dict[str, Any]], out: Any = sys.stdout) -> None:
    print(f"{'topic':44s} {'count':>5s} {'MiB':>6s} {'p50 ms':>7s} {'p99 ms':>7s}  converted", file=out)
    for topic, s in sorted(report.items()):
        print(
            f"{topic:44s} {s['count']:5d} {s['bytes'] / 2**20:6.2f} {s['latency_ms_p50']:7.2f} "
            f"{s['latency_ms_p99']:7.2f}  {s['shape']}"
            + (f"  ERRORS {s['errors']}: {s['last_error']}" if s["errors"] else ""),
            file=out,
        )


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    topics = {t: ty for t, ty in args.topic}
    expected: dict[str, int] = {}
    if args.bag:
        bag_types, expected = topics_from_bag(args.bag)
        for t, ty in bag_types.items():
            try:
                message_class(ty)
            except BevFusionError:
                expected.pop(t, None)  # the player skips types not installed here
                continue
            topics.setdefault(t, ty)
    if not topics:
        raise ConfigError("nothing to probe: give --bag or --topic")
    rclpy.init(args=getattr(args, "rclpy_args", None))
    node = rclpy.create_node("topic_probe")
    probe = Probe(node, topics, args.reliability)
    try:
        print("probe: ready", flush=True)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not (expected and probe.done(expected)):
            rclpy.spin_once(node, timeout_sec=0.1)
            got_any = any(s.count for s in probe.stats.values())
            if got_any and time.monotonic() - probe.last_message > args.idle:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        print("probe: stopped; reporting what arrived", file=sys.stderr)
    finally:
        with shielded_teardown():  # the report too: a stop signal now must not turn it into a traceback
            node.destroy_node()
            rclpy.try_shutdown()
            code = _report({t: st.summary() for t, st in probe.stats.items()}, expected, args.json)
    return code


def _report(report: dict[str, dict[str, Any]], expected: dict[str, int], json_path: Path | None) -> int:
    for t, n in expected.items():
        report[t]["expected"] = n
    print_report(report)
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
    missing = {t: (report[t]["count"], n) for t, n in expected.items() if report[t]["count"] < n}
    bad = {t: s["errors"] for t, s in report.items() if s["errors"]}
    if missing:
        print("probe: messages missing (got, expected): " + ", ".join(f"{t} {v}" for t, v in missing.items()))
    if bad:
        print("probe: conversion errors on: " + ", ".join(bad))
    return 1 if missing or bad else 0


def main() -> int:
    from bevfusion_ros.ros.node_main import tool_main

    return tool_main("topic_probe", __doc__, add_arguments, run)


if __name__ == "__main__":
    raise SystemExit(main())
