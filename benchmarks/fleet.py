"""Fleet evaluation throughput: ``bevfusion-ros evaluate`` over a manifest of generated bags, in one
process (``--workers 1``) and as Ray tasks on a local instance of 2 (or more) workers. Prints and
writes (``--results``) frames/s, the scaling against one worker, the driver's merge-and-score time,
the peak memory of the driver and of each worker, and whether the scores of every worker count are
equal to the last digit. Asserts nothing.

    .venv/bin/python benchmarks/fleet.py [--bags 8] [--frames 100] [--workers 1 2] [--out build/fleet_bench]

The bags (generated scenes with box and map ground truth, 400x225 cameras, about 3.4 MB a frame)
are written once under ``--out`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
FIRST_SEED = 10_200_000  # held-out generated scenes (tools/data/scenes.EVAL_SEED_BASE and on)
TIMING_KEYS = {"latency_ms", "frames_per_s", "wall_s", "evaluation_frames_per_s", "fleet", "p99_ms", "path"}


def make_bags(frame: Path, out: Path, bags: int, frames: int) -> Path:
    """``bags`` generated drives of ``frames`` frames and a manifest tagging them (weather by parity)."""
    from tqdm import tqdm

    lines = ["bags:"]
    for b in tqdm(range(bags), desc="bags", unit="bag"):
        bag = out / "bags" / f"drive{b:02d}"
        stamp = bag / f".frames{frames}"
        if not stamp.is_file():
            seed = FIRST_SEED + 1000 * b
            cmd = [sys.executable, "-m", "bevfusion_ros.tools.cli", "make-bag", "--frame", str(frame)]
            cmd += ["--scene", str(seed), "--frames", str(frames), "--out", str(bag), "--overwrite"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            stamp.touch()
        weather = "rain" if b % 2 else "clear"
        lines += [f"  - path: bags/drive{b:02d}", f"    tags: {{weather: {weather}, route: r{b % 3}}}"]
    manifest = out / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def peak_rss(proc: psutil.Process, stop: threading.Event, peaks: dict[str, float]) -> None:
    """Sample the evaluation's process tree: the driver, and each Ray worker while it replays."""
    while not stop.is_set():
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in tree:
            try:
                rss = p.memory_info().rss / 2**20
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            role = "driver" if p.pid == proc.pid else "worker" if "ray::" in cmd else "ray"
            key = role if role != "worker" else f"worker {p.pid}"
            peaks[key] = max(peaks.get(key, 0.0), rss)
        time.sleep(0.2)


def evaluate(manifest: Path, workers: int, out: Path) -> dict[str, Any]:
    cmd = [str(Path(sys.executable).parent / "bevfusion-ros"), "evaluate", str(manifest), "--workers", str(workers)]
    cmd += ["--out", str(out), "--no-progress"]
    peaks: dict[str, float] = {}
    stop = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    sampler = threading.Thread(target=peak_rss, args=(psutil.Process(proc.pid), stop, peaks), daemon=True)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    res = json.loads((out / "evaluation.json").read_text())
    worker_peaks = [v for k, v in peaks.items() if k.startswith("worker")]
    return {
        "workers": workers,
        "exit": code,
        "frames": res["frames"],
        "wall_s": wall,
        "evaluate_s": res["wall_s"],
        "frames_per_s": res["frames"] / wall,
        "merge_s": res["fleet"]["merge_s"],
        "driver_peak_mib": peaks.get("driver", 0.0),
        "worker_peak_mib": max(worker_peaks, default=0.0),
        "mean_ap": res["runs"][0]["mean_ap"],
        "miou": (res["runs"][0]["map"] or {}).get("miou"),
        "scores": strip(res),
    }


def strip(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k not in TIMING_KEYS}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o


def table(rows: list[dict[str, Any]], bags: int, frames: int) -> str:
    base = rows[0]["frames_per_s"]
    cpu = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    lines = [
        f"# Fleet evaluation: {bags} generated bags x {frames} frames, reference model fp32 (ONNX Runtime), {cpu}",
        "",
        "| workers | frames | wall s | frames/s | scaling vs 1 | merge + score s | driver peak MiB | worker peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        worker = f"{r['worker_peak_mib']:.0f}" if r["worker_peak_mib"] else "(in the driver)"
        lines.append(
            f"| {r['workers']} | {r['frames']} | {r['wall_s']:.1f} | {r['frames_per_s']:.2f} | "
            f"{r['frames_per_s'] / base:.2f}x | {r['merge_s']:.1f} | {r['driver_peak_mib']:.0f} | {worker} |"
        )
    same = all(r["scores"] == rows[0]["scores"] for r in rows)
    lines += [
        "",
        f"Scores of every worker count equal to the last digit: {'yes' if same else 'NO'} "
        f"(mAP {rows[0]['mean_ap']:.4f}, mIoU {rows[0]['miou']:.4f}).",
        "",
        "Wall time is the whole command (Ray's start included); frames/s = frames / wall.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=REPO.parent / "shared" / "data" / "nuscenes_frame")
    ap.add_argument("--bags", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "fleet_bench")
    ap.add_argument("--results", type=Path, default=None, help="write the table (.md) and numbers (.json) here")
    args = ap.parse_args()
    manifest = make_bags(args.frame, args.out, args.bags, args.frames)
    rows = []
    for w in args.workers:
        row = evaluate(manifest, w, args.out / f"workers{w}")
        print(
            f"workers {w}: {row['frames']} frames in {row['wall_s']:.1f} s = {row['frames_per_s']:.2f} frames/s, "
            f"merge {row['merge_s']:.1f} s, driver {row['driver_peak_mib']:.0f} MiB, "
            f"worker {row['worker_peak_mib']:.0f} MiB, exit {row['exit']}",
            flush=True,
        )
        rows.append(row)
    text = table(rows, args.bags, args.frames)
    print(text)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.with_suffix(".md").write_text(text)
        numbers = [{k: v for k, v in r.items() if k != "scores"} for r in rows]
        args.results.with_suffix(".json").write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
