"""``bevfusion-ros demo-transport --bag BAG``: play a bag in one process into a probe in another.

Both run with the shipped shared-memory Fast DDS profile (bevfusion_ros.ros.transport), the
setup the launch files use, and the probe's report says what arrived, how big and how late.
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

from bevfusion_ros.ros.transport import transport_env


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bevfusion_ros.tools.cli", *args]


def run_transport(
    bag: Path, rate: float = 1.0, domain_id: int | None = None, shm: bool = True, timeout_s: float = 120.0
) -> tuple[int, dict[str, dict[str, object]], str]:
    """Returns (exit code, probe report, combined output)."""
    env = transport_env(domain_id=domain_id) if shm else dict(os.environ)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "probe.json"
        probe = subprocess.Popen(
            _cmd("probe", "--bag", str(bag), "--json", str(report_path), "--timeout", str(timeout_s)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert probe.stdout is not None
        lines = []
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            line = probe.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "probe: ready" in line:
                break
        player = subprocess.run(
            _cmd("play", str(bag), "--rate", str(rate), "--wait-subscribers", "1", "--wait-timeout", "20"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
        )
        rest, _ = probe.communicate(timeout=timeout_s)
        output = "".join(lines) + rest + player.stdout
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
    code = probe.returncode or player.returncode
    return code, report, output


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bag", type=Path, required=True)
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--domain-id", type=int, default=None)
    ap.add_argument("--no-shm", action="store_true", help="use the default Fast DDS transports instead")


def run(args: argparse.Namespace) -> int:
    print(
        f"demo: playing {args.bag} (x{args.rate}) into a probe in another process "
        f"({'default UDP' if args.no_shm else 'shared-memory'} transport)",
        flush=True,
    )
    code, report, output = run_transport(args.bag, args.rate, args.domain_id, not args.no_shm)
    print(output)
    sensors = [s for t, s in report.items() if "image" in t or "points" in t]
    if sensors:
        p50 = max(float(str(s["latency_ms_p50"])) for s in sensors)
        p99 = max(float(str(s["latency_ms_p99"])) for s in sensors)
        print(f"demo: sensor topics worst p50 {p50:.2f} ms, worst p99 {p99:.2f} ms")
    print("demo: OK" if code == 0 else f"demo: FAILED (exit {code})")
    return code
