"""The monitor node in a real rclpy graph: a fake perception timing stream drives its diagnostics
across the budgets (OK -> WARN -> ERROR -> silent), bad timing messages are counted, metrics and the
JSON log are written."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray

from bevfusion_ros.core.perception.timing import FrameTiming
from bevfusion_ros.ros import build, diagnostics
from bevfusion_ros.ros.monitor_node import MonitorNode


@pytest.fixture
def graph(tmp_path: Path):  # type: ignore[no-untyped-def]
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    monitor = MonitorNode(
        context=ctx,
        parameter_overrides=[
            Parameter("source", value="none"),
            Parameter("period_s", value=0.1),
            Parameter("window_s", value=1.0),
            Parameter("stale_s", value=0.6),
            Parameter("timing_topic", value="/test/timing"),
            Parameter("log_path", value=str(tmp_path / "monitor.jsonl")),
        ],
    )
    probe = rclpy.create_node("monitor_probe", context=ctx)
    seen: dict[str, dict[str, tuple[int, str]]] = {"levels": {}}
    metrics: list[Float64MultiArray] = []
    hardware_ids: set[str] = set()

    def on_diag(msg: DiagnosticArray) -> None:
        for s in msg.status:
            if s.name.startswith("bevfusion_monitor: "):  # diagnostic_updater puts the node's name in front
                seen["levels"][s.name[len("bevfusion_monitor: ") :]] = (int.from_bytes(s.level, "little"), s.message)
                if s.message != "Node starting up":  # Updater announces a new task without its hardware_id
                    hardware_ids.add(s.hardware_id)

    probe.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    probe.create_subscription(Float64MultiArray, "/bevfusion_monitor/metrics", metrics.append, 10)
    pub = probe.create_publisher(DiagnosticArray, "/test/timing", 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(monitor)
    ex.add_node(probe)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    try:
        yield monitor, pub, seen["levels"], metrics
        assert hardware_ids == {"none"}  # the power/load source, named once for every check
    finally:
        ex.shutdown()
        monitor.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown(context=ctx)
        spinner.join(timeout=5)


def _until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


class Stream:
    """The fake perception node: timing messages at 20 Hz with a settable latency."""

    def __init__(self, pub) -> None:  # type: ignore[no-untyped-def]
        self.pub, self.latency, self.running, self.valid = pub, 50.0, True, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            timing = FrameTiming(
                {"fuser": 3.0, "total": self.latency - 10},
                host_ms=2.0,
                latency_ms=self.latency,
                stamp_age_ms=self.latency + 5,
                camera_skew_ms=1.0,
                masked_cameras=0,
                points=100,
                detections=3,
            )
            vals: dict[str, float | int] = timing.encode() if self.valid else {"total_ms": 1.0}
            s = diagnostics.status("bevfusion: timing", "test", diagnostics.OK, "frame", vals)
            self.pub.publish(diagnostics.array(build.header("", time.time_ns()), [s]))
            time.sleep(0.05)

    def stop(self) -> None:
        self.running = False
        self.thread.join()


OK, WARN, ERROR = 0, 1, 2


def test_levels_flip_at_the_budgets(graph, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, pub, levels, metrics = graph
    _until(lambda: levels.get("perception rate", (None,))[0] == ERROR, "silent perception reported")
    assert "never" in levels["perception rate"][1]
    assert levels["hardware source"][0] == WARN and "source is 'none'" in levels["hardware source"][1]
    stream = Stream(pub)
    try:
        _until(
            lambda: levels.get("perception rate", (None,))[0] == OK
            and levels.get("perception latency", (None,))[0] == OK,
            "rate and latency OK",
        )
        stream.latency = 150.0
        _until(lambda: levels["perception latency"][0] == WARN, "latency WARN above 100 ms")
        stream.latency = 250.0
        _until(lambda: levels["perception latency"][0] == ERROR, "latency ERROR above 200 ms")
        stream.valid = False
        _until(lambda: levels.get("timing input", (None,))[0] == WARN, "ignored timing messages counted")
    finally:
        stream.stop()
    _until(lambda: levels["perception rate"][0] == ERROR, "silence after the stream stopped")
    last = metrics[-1]
    labels = [d.label for d in last.layout.dim]
    assert labels[:4] == ["fps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"] and len(last.data) == len(labels)
    rows = [json.loads(x) for x in (tmp_path / "monitor.jsonl").read_text().splitlines()]
    assert any(r["latency_p95_ms"] and r["latency_p95_ms"] > 200 for r in rows)
    assert rows[-1]["levels"]["perception rate"] == ERROR, rows[-3:]


@pytest.mark.parametrize(
    ("param", "fragment"),
    [("max_power_w:=0.5", "out of range Min: 1.0, Max: 2000.0"), ("source:=jtop", "'source' = 'jtop' is not one of")],
)
def test_refused_parameters_exit_2_with_the_reason(param: str, fragment: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "bevfusion_ros.ros.monitor_node", "--ros-args", "-p", param],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
