"""Per-stage CPU times of the reference model on the real nuScenes frame (ONNX Runtime), and the numpy
runtime stages against a plain memcpy of the same bytes. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/pipeline.py [--frame ../shared/data/nuscenes_frame] [--runs 20] [--threads 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline.pipeline import Pipeline
from bevfusion_ros.core.pipeline.preprocess import crop_points, pillarize
from bevfusion_ros.core.resources import default_model
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig, load_frame


def best_ms(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), float(np.min(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, default=Path("../shared/data/nuscenes_frame"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    args = ap.parse_args()
    spec = load_model(args.model or default_model())
    f = load_frame(args.frame)
    by = {c.name: c for c in f.cameras}
    images = [by[n].image_bgr for n in spec.cameras]
    rig = frame_rig(args.frame, spec.cameras)
    with Pipeline(spec, "onnxruntime", threads=args.threads) as pipe:
        t = time.perf_counter()
        pipe.set_calibration(rig)
        calib_ms = (time.perf_counter() - t) * 1e3
        pipe(images, f.points)  # warm-up
        rows: dict[str, list[float]] = {}
        for _ in range(args.runs):
            r = pipe(images, f.points, keep_tensors=True)
            for k, v in r.timings_ms.items():
                rows.setdefault(k, []).append(v)
    print(f"model {spec.name}, real nuScenes frame (6 x 1600x900, {len(f.points)} points), {args.runs} runs")
    print(
        f"calibration precompute (image maps + bevpool index, {pipe.bevpool.points if pipe.bevpool else 0} "
        f"frustum points): {calib_ms:.1f} ms, once per calibration"
    )
    print(f"{'stage':<20}{'p50 ms':>10}{'p95 ms':>10}")
    for k, v in rows.items():
        print(f"{k:<20}{np.percentile(v, 50):>10.1f}{np.percentile(v, 95):>10.1f}")

    # numpy runtime stages vs memcpy of the bytes each one reads
    feat, depth = r.tensors["camera_feature"], r.tensors["camera_depth"]
    assert pipe.bevpool is not None
    idx = pipe.bevpool
    gathered = idx.points * feat.shape[2] * 4
    buf = np.empty(gathered // 4, np.float32)
    src = np.random.default_rng(0).random(buf.size, dtype=np.float32)
    print("\nnumpy stage vs memcpy of the bytes it moves (median / best of runs)")
    bp = best_ms(lambda: idx(feat, depth), args.runs)
    mc = best_ms(lambda: np.copyto(buf, src), args.runs)
    print(
        f"bevpool   {bp[0]:7.2f} / {bp[1]:6.2f} ms   memcpy of its {gathered / 1e6:.1f} MB gathered features "
        f"{mc[0]:6.2f} / {mc[1]:5.2f} ms  ({bp[0] / mc[0]:.1f}x)"
    )
    pts = f.points
    px = best_ms(lambda: pillarize(crop_points(pts, spec.lidar), spec.lidar), args.runs)
    # what it moves: the points in and the pillar grid out
    out_bytes = 5 * spec.lidar.grid.nx * spec.lidar.grid.ny * 4 + pts[:, :4].astype(np.float32).nbytes
    a, b = np.empty(out_bytes // 4, np.float32), np.ones(out_bytes // 4, np.float32)
    mc2 = best_ms(lambda: np.copyto(a, b), args.runs)
    print(
        f"pillarize {px[0]:7.2f} / {px[1]:6.2f} ms   memcpy of its points and grid ({out_bytes / 1e6:.1f} MB) "
        f"{mc2[0]:6.2f} / {mc2[1]:5.2f} ms  ({px[0] / mc2[0]:.1f}x)"
    )
    img_bytes = sum(i.nbytes for i in images)
    ia, ib = np.empty(img_bytes, np.uint8), np.ones(img_bytes, np.uint8)
    pre = best_ms(lambda: pipe.preprocessor(images, 6), args.runs)
    mc3 = best_ms(lambda: np.copyto(ia, ib), args.runs)
    print(
        f"image pre {pre[0]:7.2f} / {pre[1]:6.2f} ms   memcpy of the {img_bytes / 1e6:.1f} MB camera images "
        f"{mc3[0]:6.2f} / {mc3[1]:5.2f} ms  ({pre[0] / mc3[0]:.1f}x)"
    )
    sizes = {s.name: spec.path(s).stat().st_size for s in spec.stages if s.file}
    print(
        f"\nONNX stages: {sum(sizes.values()) / 1e6:.2f} MB in total: "
        + ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sizes.items())
    )


if __name__ == "__main__":
    main()
