"""``bevfusion-ros record``: write ROS 2 topics into a rosbag2 (mcap) as they arrive.

A stand-in for ``ros2 bag record`` where rosbag2 is not installable (pip-only ROS 2); on a ROS
distribution use ``ros2 bag record`` instead. Messages are stored as the CDR bytes received
(raw subscriptions: nothing is deserialised), stamped with the receive time.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bevfusion_ros.ros.msgtypes import message_class
from bevfusion_ros.ros.node_main import shielded_teardown
from bevfusion_ros.tools.bags.io import BagWriter

if TYPE_CHECKING:  # rclpy is imported where it is used
    from rclpy.node import Node
    from rclpy.qos import QoSProfile


class Recorder:
    """Raw subscriptions on ``node`` writing into a bag; thread-safe counts for waiting on them.
    ``qos`` is one profile, or one per topic with "*" for the rest (a latched topic needs its own)."""

    def __init__(
        self,
        node: Node,
        out: Path,
        topics: dict[str, str],
        qos: QoSProfile | dict[str, QoSProfile],
        overwrite: bool = False,
    ) -> None:
        self.writer = BagWriter(out, overwrite=overwrite)
        self.writer.__enter__()
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        self.last_ns: dict[str, int] = {}
        self._lock = threading.Lock()
        self.subs = [
            node.create_subscription(
                message_class(msgtype),
                topic,
                self._callback(topic, msgtype),
                qos.get(topic, qos["*"]) if isinstance(qos, dict) else qos,
                raw=True,
            )
            for topic, msgtype in topics.items()
        ]
        self.node = node

    def _callback(self, topic: str, msgtype: str) -> Any:
        def on_message(raw: bytes) -> None:
            ns = time.time_ns()
            with self._lock:
                self.writer.write(topic, msgtype, ns, bytes(raw))
                self.counts[topic] += 1
                self.last_ns[topic] = time.monotonic_ns()

        return on_message

    def count(self, topic: str) -> int:
        with self._lock:
            return self.counts[topic]

    def close(self) -> None:
        for s in self.subs:
            self.node.destroy_subscription(s)
        with self._lock:
            self.writer.__exit__(None, None, None)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--out", type=Path, required=True, help="bag folder to create")
    ap.add_argument(
        "--topic",
        nargs=2,
        action="append",
        required=True,
        metavar=("TOPIC", "TYPE"),
        help="a topic and its type, e.g. /bevfusion_perception/detections vision_msgs/msg/Detection3DArray",
    )
    ap.add_argument("--latched", nargs="*", default=[], help="topics to read with transient-local durability")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    ap.add_argument(
        "--status",
        type=Path,
        default=None,
        help="rewrite this JSON file (counts, seconds since the last message) twice a second",
    )
    ap.add_argument("--overwrite", action="store_true")


def _write_status(path: Path, rec: Recorder) -> None:
    now = time.monotonic_ns()
    with rec._lock:
        counts = dict(rec.counts)
        idle = {t: (now - ns) / 1e9 for t, ns in rec.last_ns.items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"counts": counts, "idle_s": idle}))  # idle: seconds since each topic's last message
    tmp.replace(path)  # readers never see a half-written file


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    rclpy.init(args=getattr(args, "rclpy_args", None))
    node = rclpy.create_node("bevfusion_recorder")
    qos: dict[str, QoSProfile] = {"*": QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)}
    for t in args.latched:
        qos[t] = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
    rec = Recorder(node, args.out, dict(args.topic), qos, args.overwrite)
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    next_status = 0.0
    try:
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            rclpy.spin_once(node, timeout_sec=0.1)
            if args.status is not None and time.monotonic() >= next_status:
                _write_status(args.status, rec)
                next_status = time.monotonic() + 0.5
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        with shielded_teardown():  # the report too: a stop signal now must not turn it into a traceback
            rec.close()
            node.destroy_node()
            rclpy.try_shutdown()
            print(f"wrote {args.out}: " + ", ".join(f"{t} {n}" for t, n in rec.counts.items()))
    return 0


def main() -> int:
    from bevfusion_ros.ros.node_main import tool_main

    return tool_main("bevfusion-ros record", __doc__, add_arguments, run)


if __name__ == "__main__":
    raise SystemExit(main())
