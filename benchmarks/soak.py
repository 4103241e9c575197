"""The node under a long run, a burst and signals (issue 19): what ``make soak`` prints.

1. steady: ``--frames`` real frames (6 x 1600x900 bgr8 + the real sweep) at ``--rate`` into the
   node with the ``null`` backend; its RSS sampled every 250 frames; the slope (MiB per 1,000 frames)
   is fitted after the first 10 % (allocator and caches warming up); latency p50/p99 from the sensor
   stamp to the outputs received here.
2. burst: ``--burst`` frames published at once into the node with ``--burst-backend`` (the reference
   model on ONNX Runtime), after which the stamp age of what comes out must stay within about one
   frame's processing: the one-slot mailbox keeps only the newest frame.
3. signals: each backend stopped by SIGINT and by SIGTERM after one frame out: its exit code.
4. /dev/shm: Fast DDS files that appeared during the soak and are still there after every exit.

Writes build/soak/soak.json and soak.md.

    .venv/bin/python benchmarks/soak.py [--frames 20000] [--rate 10] [--burst 50]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_node import FRAME_DIR, LiveNode

from bevfusion_ros.ros.transport import fastdds_shm_files
from bevfusion_ros.tools.viz.progress import progress

RSS_EVERY = 250


def steady(frames: int, rate: float, frame_dir: Path) -> dict[str, Any]:
    live = LiveNode.start("null", frame_dir=frame_dir)
    live.first_output()
    live.outputs.clear()
    samples: list[tuple[int, float]] = []
    t0 = time.monotonic()
    for k in progress(range(frames), "steady", "frame"):
        live.spin(t0 + k / rate - time.monotonic())
        ns = live.send()
        if k % RSS_EVERY == 0:
            samples.append((k, live.stats()[1]))
    live.wait(lambda: bool(live.outputs) and live.outputs[-1].stamp_ns >= ns, 30, "the last frame")
    samples.append((frames, live.stats()[1]))
    live.spin(2.0)
    code = live.stop()
    k, rss = np.array(samples, float).T
    late = k >= frames * 0.1
    slope = float(np.polyfit(k[late], rss[late], 1)[0] * 1000) if late.sum() >= 2 else float("nan")
    e2e = np.array([(o.received_ns - o.stamp_ns) / 1e6 for o in live.outputs])
    return {
        "frames_sent": frames,
        "frames_out": len(live.outputs),
        "rate_hz": rate,
        "wall_s": time.monotonic() - t0,
        "rss_mib": {"first": float(rss[0]), "last": float(rss[-1]), "max": float(rss.max())},
        "rss_slope_mib_per_1000_frames": slope,
        "rss_samples": samples,
        "latency_ms": {"p50": float(np.percentile(e2e, 50)), "p99": float(np.percentile(e2e, 99))},
        "node_counts": {k: live.diag.get(k) for k in ("frames", "dropped_busy", "frames_masked")},
        "exit_code_sigint": code,
    }


def burst(n: int, backend: str, frame_dir: Path) -> dict[str, Any]:
    live = LiveNode.start(backend, frame_dir=frame_dir)
    live.first_output()
    for _ in range(3):  # warm: the first frames pay for lazy allocations
        first = live.send()
        live.wait(lambda s=first: bool(live.outputs) and live.outputs[-1].stamp_ns >= s, 120, "a warm-up frame")
    one_frame_ms = float(np.median([o.timing.latency_ms for o in live.outputs]))
    before = len(live.outputs)
    t0 = time.time_ns()
    stamps = [live.send() for _ in range(n)]
    sent_ms = (time.time_ns() - t0) / 1e6
    live.wait(lambda: bool(live.outputs) and live.outputs[-1].stamp_ns >= stamps[-1], 120, "the burst's last frame")
    live.spin(1.0)
    after = live.outputs[before:]
    ages = [(o.received_ns - o.stamp_ns) / 1e6 for o in after]
    # once the burst is sent, how old is what the node publishes: at most the frame in flight, then the newest
    done_ms = (after[-1].received_ns - t0) / 1e6 - sent_ms
    code = live.stop()
    return {
        "backend": backend,
        "burst": n,
        "publish_ms": sent_ms,
        "frames_out": len(after),
        "last_out_is_newest": after[-1].stamp_ns == stamps[-1],
        "one_frame_latency_ms": one_frame_ms,
        "stamp_age_ms": {"max": max(ages), "last": ages[-1]},
        "newest_out_after_burst_ms": done_ms,
        "node_counts": {k: live.diag.get(k) for k in ("frames", "dropped_busy")},
        "exit_code_sigint": code,
    }


def signals(backends: list[str], frame_dir: Path) -> dict[str, dict[str, int]]:
    codes: dict[str, dict[str, int]] = {}
    for backend in backends:
        for sig in (signal.SIGINT, signal.SIGTERM):
            live = LiveNode.start(backend, frame_dir=frame_dir)
            live.first_output()
            codes.setdefault(backend, {})[sig.name] = live.stop(sig)
    return codes


def markdown(r: dict[str, Any]) -> str:
    s, b = r["steady"], r["burst"]
    lines = [
        "# Soak",
        "",
        f"**{'PASS' if r['passed'] else 'FAIL'}**: " + "; ".join(r["verdicts"]),
        "",
        f"- steady: {s['frames_sent']} frames at {s['rate_hz']} Hz (null backend), {s['frames_out']} out in "
        f"{s['wall_s']:.0f} s; RSS {s['rss_mib']['first']:.0f} -> {s['rss_mib']['last']:.0f} MiB (max "
        f"{s['rss_mib']['max']:.0f}), slope {s['rss_slope_mib_per_1000_frames']:.3f} MiB per 1,000 frames; "
        f"latency p50 {s['latency_ms']['p50']:.0f} ms, p99 {s['latency_ms']['p99']:.0f} ms",
        f"- burst: {b['burst']} frames in {b['publish_ms']:.0f} ms into {b['backend']}: {b['frames_out']} out, the "
        f"newest {'last' if b['last_out_is_newest'] else 'NOT last'}; stamp age max {b['stamp_age_ms']['max']:.0f} ms, "
        f"last {b['stamp_age_ms']['last']:.0f} ms; one frame's latency {b['one_frame_latency_ms']:.0f} ms; newest out "
        f"{b['newest_out_after_burst_ms']:.0f} ms after the burst was sent",
        "- exit codes: " + ", ".join(f"{be} {sig} {c}" for be, cs in r["signals"].items() for sig, c in cs.items()),
        f"- /dev/shm: {r['shm_left']} Fast DDS file(s) of this soak left after every exit",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=FRAME_DIR)
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--burst-backend", default="onnxruntime")
    ap.add_argument("--out", type=Path, default=Path("build/soak"))
    args = ap.parse_args()
    shm_before = fastdds_shm_files()
    r: dict[str, Any] = {
        "steady": steady(args.frames, args.rate, args.frame),
        "burst": burst(args.burst, args.burst_backend, args.frame),
        "signals": signals(["null", "onnxruntime"], args.frame),
    }
    time.sleep(2.0)
    left = sorted(str(p) for p in fastdds_shm_files() - shm_before)
    r["shm_left"], r["shm_left_files"] = len(left), left
    s, b = r["steady"], r["burst"]
    checks = {
        f"RSS slope {s['rss_slope_mib_per_1000_frames']:.3f} < 1 MiB/1000 frames": s["rss_slope_mib_per_1000_frames"]
        < 1,
        f"stamp age after the burst {b['stamp_age_ms']['last']:.0f} ms <= 2 frames' latency": b["stamp_age_ms"]["last"]
        <= 2 * b["one_frame_latency_ms"] + 100,
        "every exit code 0": all(c == 0 for cs in r["signals"].values() for c in cs.values())
        and s["exit_code_sigint"] == 0
        and b["exit_code_sigint"] == 0,
        "no shared memory left": not left,
    }
    r["verdicts"] = [("ok: " if ok else "FAILED: ") + name for name, ok in checks.items()]
    r["passed"] = all(checks.values())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(r, indent=1))
    (args.out / "soak.md").write_text(markdown(r))
    print(markdown(r))
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
