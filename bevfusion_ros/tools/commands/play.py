"""``bevfusion-ros play BAG``: publish a rosbag2's topics over rclpy with the recorded timing.

A stand-in for ``ros2 bag play`` where rosbag2 is not installable (pip-only ROS 2); on a ROS
distribution use ``ros2 bag play`` instead. Messages are published as the recorded CDR bytes,
so nothing is deserialized on the way.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bevfusion_ros.core.errors import BevFusionError, ConfigError, DependencyError
from bevfusion_ros.ros.msgtypes import message_class
from bevfusion_ros.ros.node_main import shielded_teardown
from bevfusion_ros.tools.bags.io import iter_raw, open_reader, read_ahead

if TYPE_CHECKING:  # rclpy is imported where it is used
    from rclpy.node import Node

DEFAULT_LATCHED = ("/tf_static",)


@dataclass
class PlayStats:
    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    max_lag_ms: float = 0.0
    wall_s: float = 0.0


def _qos(reliability: str, depth: int, latched: bool) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1 if latched else depth,
        reliability=(
            ReliabilityPolicy.RELIABLE if latched or reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        ),
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


# A perception node subscribes to every camera and LiDAR topic of a bag (--wait-sensors)
SENSOR_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2"})
SENSOR_WAIT_S = 10.0


def wait_for_subscribers(node: Node, wanted: dict[str, tuple[Any, int]], timeout_s: float) -> list[str]:
    """Spin until every publisher of ``wanted`` (topic -> (publisher, minimum)) has that many matched
    subscriptions, or the deadline; returns the topics still short of theirs."""
    import rclpy

    def short() -> list[str]:
        return [t for t, (p, n) in wanted.items() if p.get_subscription_count() < n]

    deadline = time.monotonic() + timeout_s
    while short() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    return short()


def play(
    node: Node,
    bag: Path,
    rate: float = 1.0,
    topics: set[str] | None = None,
    loops: int = 1,
    reliability: str = "reliable",
    depth: int = 10,
    latched: tuple[str, ...] = DEFAULT_LATCHED,
    wait_subscribers: int = 0,
    wait_timeout_s: float = 10.0,
    clock: bool = False,
    delay_s: float = 0.0,
    wait_topics: set[str] | None = None,
    wait_sensors: bool = False,
) -> PlayStats:
    stats = PlayStats()
    reader = open_reader(bag)
    try:
        publishers: dict[str, Any] = {}
        for conn in reader.connections:
            if (topics is not None and conn.topic not in topics) or conn.topic in publishers:
                continue
            try:
                cls = message_class(conn.msgtype)
            except DependencyError as exc:
                stats.skipped_topics[conn.topic] = str(exc)
                node.get_logger().warning(f"not playing {conn.topic}: {exc}")
                continue
            publishers[conn.topic] = node.create_publisher(
                cls, conn.topic, _qos(reliability, depth, conn.topic in latched)
            )
        clock_pub = clock_msg = None
        if clock:
            from rosgraph_msgs.msg import Clock

            from bevfusion_ros.ros.build import stamp

            clock_pub, clock_msg = node.create_publisher(Clock, "/clock", 10), Clock()
        missing: list[str] = []
        if wait_subscribers:
            chosen = [t for t in publishers if wait_topics is None or t in wait_topics]
            awaited = {t: (publishers[t], wait_subscribers) for t in chosen}
            missing += wait_for_subscribers(node, awaited, wait_timeout_s)
        if wait_sensors:  # then each camera and LiDAR topic matched: discovery is per topic, one matched says
            # nothing of the others, and a best-effort frame sent before its topic matched is lost. Bounded
            # apart: a bag may carry sensor topics nobody subscribes to (another camera, raw beside compressed).
            sensors = {c.topic for c in reader.connections if c.msgtype in SENSOR_TYPES}
            wanted = {t: (p, 1) for t, p in publishers.items() if t in sensors and t not in missing}
            missing += wait_for_subscribers(node, wanted, min(wait_timeout_s, SENSOR_WAIT_S))
        if missing:
            node.get_logger().warning(f"playing although subscribers are still missing on: {', '.join(missing)}")
        if delay_s > 0:
            # A writer sees a reader before that reader has matched the writer; samples sent in between
            # are lost to a best-effort reader. ros2 bag play has the same --delay for this.
            import rclpy

            end = time.monotonic() + delay_s
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
        start = time.monotonic()
        for _ in range(loops):
            t_wall0 = 0.0
            t_bag0: int | None = None
            for topic, _msgtype, ns, raw in read_ahead(iter_raw(reader, set(publishers))):
                if t_bag0 is None:  # the clock starts with the first message, not with opening the bag
                    t_bag0, t_wall0 = ns, time.monotonic()
                target = t_wall0 + (ns - t_bag0) / 1e9 / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    stats.max_lag_ms = max(stats.max_lag_ms, -delay * 1e3)
                if clock_pub is not None and clock_msg is not None:
                    clock_msg.clock = stamp(ns)
                    clock_pub.publish(clock_msg)
                publishers[topic].publish(raw)
                stats.published[topic] = stats.published.get(topic, 0) + 1
        stats.wall_s = time.monotonic() - start
        # Reliable samples still in flight are lost if the process exits now.
        from rclpy.duration import Duration

        for pub in publishers.values():
            pub.wait_for_all_acked(Duration(seconds=5))
    finally:
        reader.close()
    return stats


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("bag", type=Path, help="rosbag2 folder (mcap or sqlite3)")
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    ap.add_argument("--loop", type=int, default=1, help="play the bag this many times (default 1)")
    ap.add_argument("--topics", nargs="*", help="only these topics (default: all)")
    ap.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    ap.add_argument("--depth", type=int, default=10, help="publisher history depth (default 10)")
    ap.add_argument(
        "--latched",
        nargs="*",
        default=list(DEFAULT_LATCHED),
        help="topics published transient-local (default: /tf_static)",
    )
    ap.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="before playing, wait until every topic has N matched subscribers",
    )
    ap.add_argument("--wait-timeout", type=float, default=10.0, help="seconds to wait for subscribers")
    ap.add_argument("--wait-topics", nargs="*", help="the topics --wait-subscribers waits on (default: all played)")
    ap.add_argument(
        "--wait-sensors",
        action="store_true",
        help=f"before playing, also wait (up to {SENSOR_WAIT_S:.0f} s more) until every camera and LiDAR topic has a "
        "matched subscriber",
    )
    ap.add_argument("--clock", action="store_true", help="publish /clock with the bag time")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait after subscribers matched (default 0)")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    if args.rate <= 0 or args.loop < 1:
        raise ConfigError("--rate must be > 0 and --loop >= 1")
    rclpy.init(args=getattr(args, "rclpy_args", None))
    node = rclpy.create_node("bag_player")
    stats: PlayStats | None = None
    try:
        stats = play(
            node,
            args.bag,
            args.rate,
            set(args.topics) if args.topics else None,
            args.loop,
            args.reliability,
            args.depth,
            tuple(args.latched),
            args.wait_subscribers,
            args.wait_timeout,
            args.clock,
            args.delay,
            set(args.wait_topics) if args.wait_topics else None,
            args.wait_sensors,
        )
    except BevFusionError as exc:
        print(f"play: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        print("play: stopped", file=sys.stderr)
        return 0
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM shut the context down under a publish or wait: a stop, not a failure
        print("play: stopped", file=sys.stderr)
        return 0
    finally:
        with shielded_teardown():  # the report too: a stop signal now must not turn it into a traceback
            node.destroy_node()
            rclpy.try_shutdown()
            if stats is not None:
                _report(stats, args.rate)
    return 0


def _report(stats: PlayStats, rate: float) -> None:
    total = sum(stats.published.values())
    print(
        f"played {total} messages on {len(stats.published)} topics in {stats.wall_s:.2f} s "
        f"(rate x{rate}, max lag behind schedule {stats.max_lag_ms:.1f} ms)"
    )
    for topic, why in stats.skipped_topics.items():
        print(f"  skipped {topic}: {why}")


def main() -> int:
    from bevfusion_ros.ros.node_main import tool_main

    return tool_main("bag_player", __doc__, add_arguments, run)


if __name__ == "__main__":
    raise SystemExit(main())
