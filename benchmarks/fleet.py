"""Fleet evaluation throughput: ``bevfusion-ros evaluate`` over a manifest of generated bags

- in one process with ONNX Runtime on every core (the single-process path, ``--workers 1``);
- in one process on one thread: one worker's share of the machine, the unit the scaling is against;
- as Ray tasks on a local instance of 2 (or more) workers of one thread each;
- with ``--baseline-src DIR``, the code in DIR (a checkout of an earlier commit) in one process,
  one bag after another (before the fleet, evaluate took one bag).

Prints and writes (``--results``) frames/s, the scaling, the driver's merge-and-score time, the peak
memory of the driver and of each worker, and whether all give the same scores to the last digit.
Asserts nothing.

    .venv/bin/python benchmarks/fleet.py [--bags 8] [--frames 100] [--workers 2] [--baseline-src DIR]

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

from bevfusion_ros.tools.eval.report import without_timings

REPO = Path(__file__).resolve().parents[1]
FIRST_SEED = 10_200_000  # held-out generated scenes (tools/data/scenes.EVAL_SEED_BASE and on)


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


# the CLI of another checkout: its package ahead of this one's editable install
OTHER_SOURCE = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
    "sys.path.insert(0, sys.argv.pop(1)); from bevfusion_ros.tools.cli import main; sys.exit(main())"
)


def baseline(src: Path, manifest: Path, out: Path) -> dict[str, Any]:
    """The code in ``src``, one bag at a time (every bag's own process, as a user of it would run)."""
    bags = [
        manifest.parent / line.split("path:")[1].strip()
        for line in manifest.read_text().splitlines()
        if "path:" in line
    ]
    frames, wall = 0, 0.0
    for bag in bags:
        cmd = [sys.executable, "-c", OTHER_SOURCE, str(src), "evaluate", str(bag), "--out", str(out / bag.name)]
        start = time.perf_counter()
        subprocess.run([*cmd, "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        wall += time.perf_counter() - start
        frames += json.loads((out / bag.name / "evaluation.json").read_text())["frames"]
    return {"label": f"before ({src.name}), one process per bag", "workers": 1, "threads": "all", "exit": 0,
            "frames": frames, "wall_s": wall, "frames_per_s": frames / wall, "merge_s": None,
            "driver_peak_mib": None, "worker_peak_mib": None, "scores": None}  # fmt: skip


def evaluate(manifest: Path, workers: int, out: Path, threads: int = 0) -> dict[str, Any]:
    cmd = [str(Path(sys.executable).parent / "bevfusion-ros"), "evaluate", str(manifest), "--workers", str(workers)]
    cmd += ["--out", str(out), "--no-progress"]
    if threads:
        cmd += ["--param", f"backend_threads:={threads}"]
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
    where = "this process" if workers == 1 else f"Ray, {workers} workers"
    return {
        "label": where,
        "workers": workers,
        "threads": threads or ("all" if workers == 1 else 1),
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
        "scores": without_timings(res),
    }


def table(rows: list[dict[str, Any]], bags: int, frames: int) -> str:
    unit = next(r for r in rows if r["workers"] == 1 and r["threads"] == 1 and r["scores"] is not None)
    single = next(r for r in rows if r["workers"] == 1 and r["threads"] == "all" and r["scores"] is not None)
    cpu = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    lines = [
        f"# Fleet evaluation: {bags} generated bags x {frames} frames, reference model fp32 (ONNX Runtime), {cpu}",
        "",
        "| run | ORT threads per worker | frames | wall s | frames/s | vs one worker (1 thread) | vs this process "
        "(all cores) | merge + score s | driver peak MiB | worker peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        worker = f"{r['worker_peak_mib']:.0f}" if r["worker_peak_mib"] else "(in the driver)"
        if r["driver_peak_mib"] is None:
            worker = "n/a"
        lines.append(
            f"| {r['label']} | {r['threads']} | {r['frames']} | {r['wall_s']:.1f} | {r['frames_per_s']:.2f} | "
            f"{r['frames_per_s'] / unit['frames_per_s']:.2f}x | {r['frames_per_s'] / single['frames_per_s']:.2f}x | "
            f"{_f(r['merge_s'])} | {_f(r['driver_peak_mib'], '.0f')} | {worker} |"
        )
    scored = [r for r in rows if r["scores"] is not None]
    same = all(r["scores"] == scored[0]["scores"] for r in scored)
    lines += [
        "",
        f"Scores of every run of this code equal to the last digit: {'yes' if same else 'NO'} "
        f"(mAP {scored[0]['mean_ap']:.4f}, mIoU {scored[0]['miou']:.4f}).",
        "",
        "Wall time is the whole command (Python's start, Ray's start and the scoring included); frames/s = "
        "frames / wall. One worker on one thread is the unit a fleet adds per core; ONNX Runtime on both "
        "cores in one process already uses the second core for inference.",
    ]
    return "\n".join(lines) + "\n"


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=REPO.parent / "shared" / "data" / "nuscenes_frame")
    ap.add_argument("--bags", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--workers", type=int, nargs="+", default=[2], help="Ray worker counts to run")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "fleet_bench")
    ap.add_argument("--baseline-src", type=Path, default=None, help="a checkout of an earlier commit to compare")
    ap.add_argument("--results", type=Path, default=None, help="write the table (.md) and numbers (.json) here")
    args = ap.parse_args()
    manifest = make_bags(args.frame, args.out, args.bags, args.frames)
    runs: list[tuple[int, int]] = [(1, 0), (1, 1), *((w, 0) for w in args.workers)]
    rows = []
    if args.baseline_src:
        rows.append(baseline(args.baseline_src, manifest, args.out / "baseline"))
        print(f"{rows[-1]['label']}: {rows[-1]['frames_per_s']:.2f} frames/s", flush=True)
    for workers, threads in runs:
        row = evaluate(manifest, workers, args.out / f"workers{workers}_threads{threads}", threads)
        print(
            f"{row['label']} ({row['threads']} threads): {row['frames']} frames in {row['wall_s']:.1f} s = "
            f"{row['frames_per_s']:.2f} frames/s, merge {row['merge_s']:.1f} s, driver {row['driver_peak_mib']:.0f} "
            f"MiB, worker {row['worker_peak_mib']:.0f} MiB, exit {row['exit']}",
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
