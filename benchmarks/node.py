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
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_node import FRAME_DIR, LiveNode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=FRAME_DIR)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--backend", default="null")
    args = ap.parse_args()

    live = LiveNode.start(args.backend, os.environ.get("BENCH_PARAMS", "").split(), args.frame)
    cpu0, _ = live.stats()
    t0 = time.monotonic()
    for k in range(args.frames):
        live.spin(t0 + k / args.rate - time.monotonic())
        ns = live.send()
        if k % 100 == 0:
            print(f"  {k}/{args.frames} frames sent, {len(live.outputs)} out", flush=True)
    try:
        live.wait(lambda: bool(live.outputs) and live.outputs[-1].stamp_ns >= ns, 10, "the last frame")
    except RuntimeError as exc:
        print(f"  {exc}")
    live.spin(2.0)  # one more diagnostics message
    wall = time.monotonic() - t0
    cpu1, rss = live.stats()
    live.stop()

    src = np.frombuffer(np.random.default_rng(0).bytes(live.frame_bytes), np.uint8)
    dst = np.empty_like(src)
    copies = []
    for _ in range(20):
        s = time.perf_counter()
        np.copyto(dst, src)
        copies.append((time.perf_counter() - s) * 1e3)
    memcpy = float(np.median(copies))
    got = live.outputs
    host = np.array([o.timing.host_ms for o in got])
    total = np.array([o.timing.stages_ms["total"] for o in got])
    e2e = np.array([(o.received_ns - o.stamp_ns) / 1e6 for o in got])
    print(
        f"\nnode backend '{args.backend}': {args.frames} frames of {live.frame_bytes / 2**20:.1f} MiB at {args.rate} Hz"
    )
    sync_keys = ("frames", "dropped_busy", "frames_masked", "camera_stale", "camera_missing", "/lidar/points received")
    print(
        f"frames out {len(got)} ({len(got) / args.frames:.0%}); node counts: "
        + ", ".join(f"{k} {live.diag.get(k, 0)}" for k in sync_keys)
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
