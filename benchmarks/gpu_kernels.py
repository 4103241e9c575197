"""GPU benchmark: CUDA pre-processing kernels vs the numpy reference on the real frame, and the
streamed pipeline pipelined vs sequential, with the GPU's power read through NVML meanwhile.

TensorRT does not exist on the lent datacenter GPU, so the ONNX stages are stood in for by
``StandInEngine`` (a fixed amount of GPU arithmetic per output element): the overlap numbers
measure the mechanism (streams, events, double buffering), not BEVFusion inference speed.

    python3 benchmarks/gpu_kernels.py --frame FRAME.npz --out DIR     (scripts/gpu_tests.sh runs it)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from timing import decoded_frame, gpu_times, median_ms  # benchmarks/, the script's own folder

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.kernels import CudaBevPool, CudaImagePreprocessor, CudaPillarizer, StandInEngine
from bevfusion_ros.core.cuda.streamed import StreamedPipeline
from bevfusion_ros.core.model import ONNX, load_model
from bevfusion_ros.core.monitor.power import PowerSampler
from bevfusion_ros.core.monitor.sources import NvmlSource
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize

REPO = Path(__file__).resolve().parents[1]


def _gpu_ms(launch: Any, s: cuda.Stream, n: int) -> float:
    return gpu_times(launch, s, n, warmups=1)["median_ms"]


def _standin_ms_per_iter(spec: Any, s: cuda.Stream) -> float:
    """GPU ms per stand-in iteration over all ONNX stages (to size the stand-ins in milliseconds)."""
    times = {}
    for iters in (16, 4016):
        engines = [StandInEngine(st, iters) for st in spec.stages if st.kind == ONNX]
        times[iters] = _gpu_ms(lambda es=engines: [e.enqueue(s) for e in es], s, 5)
        for e in engines:
            e.free()
    return max((times[4016] - times[16]) / 4000, 1e-6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frame", required=True, help="decoded real frame .npz")
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--standin-ms", default="0,3,6,12", help="GPU time of all stand-in engines per frame")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, points, rig = decoded_frame(args.frame)
    spec = load_model(REPO / "engines" / "reference" / "model.yaml")
    ctx = cuda.CudaContext(0)
    res: dict[str, Any] = {"device": ctx.name, "compute_capability": ctx.compute_capability}
    with ctx.active():
        s = cuda.Stream()
        pre = ImagePreprocessor(spec.image)
        res["numpy_image_ms"] = median_ms(lambda: pre(images, 6), 20)
        k_img = CudaImagePreprocessor(spec.image)
        pinned = [cuda.HostBuffer(im.shape, np.uint8) for im in images]
        for p, im in zip(pinned, images, strict=True):
            np.copyto(p.array, im)
        devs = [cuda.DeviceBuffer(im.nbytes) for im in images]
        img_out = cuda.DeviceBuffer(6 * k_img.plane_bytes)

        def up() -> None:
            for d, p in zip(devs, pinned, strict=True):
                cuda.copy_to_device(d, p.array, s)

        def launch_img() -> None:
            for i, im in enumerate(images):
                k_img.launch(devs[i], im.shape[1], im.shape[0], img_out.ptr + i * k_img.plane_bytes, s)

        up()
        res["cuda_image_ms"] = _gpu_ms(launch_img, s, 50)
        res["h2d_images_ms"] = _gpu_ms(up, s, 20)
        res["image_mb"] = sum(im.nbytes for im in images) / 1e6
        res["numpy_pillar_ms"] = median_ms(lambda: pillarize(crop_points(points, spec.lidar), spec.lidar), 20)
        k_pil = CudaPillarizer(spec.lidar)
        p_pin = cuda.HostBuffer(points.shape, np.float32)
        np.copyto(p_pin.array, points)
        p_dev = cuda.DeviceBuffer(points.nbytes)
        cuda.copy_to_device(p_dev, p_pin.array, s)
        pil_out = cuda.DeviceBuffer(k_pil.out_bytes)
        res["cuda_pillar_ms"] = _gpu_ms(lambda: k_pil.launch(p_dev, points.shape[0], pil_out.ptr, s), s, 50)
        res["points"] = int(points.shape[0])
        index = BevPoolIndex.create(
            rig, [pre.transform(ww, hh) for ww, hh in rig.image_sizes()], spec.image, spec.camera_bev
        )
        rng = np.random.default_rng(0)
        feat = rng.random((1, 6, 32, 16, 44), np.float32)
        depth = rng.random((1, 6, 48, 16, 44), np.float32)
        res["numpy_bevpool_ms"] = median_ms(lambda: index(feat, depth), 20)
        k_bev = CudaBevPool(index, 32, s)
        f_pin, d_pin = cuda.HostBuffer(feat.shape, np.float32), cuda.HostBuffer(depth.shape, np.float32)
        np.copyto(f_pin.array, feat)
        np.copyto(d_pin.array, depth)
        f_dev, d_dev = cuda.DeviceBuffer(feat.nbytes), cuda.DeviceBuffer(depth.nbytes)
        cuda.copy_to_device(f_dev, f_pin.array, s)
        cuda.copy_to_device(d_dev, d_pin.array, s)
        bev_out = cuda.DeviceBuffer(k_bev.out_bytes)
        res["cuda_bevpool_ms"] = _gpu_ms(lambda: k_bev.launch(f_dev.ptr, d_dev.ptr, bev_out.ptr, s), s, 50)
        res["bevpool_points"] = index.points
        power = PowerSampler(NvmlSource())
        res["idle_power_w"] = power.source.snapshot().total_w
        res["overlap"] = []
        per_iter = _standin_ms_per_iter(spec, s)
        for target in (float(x) for x in args.standin_ms.split(",")):
            iters = max(1, round(target / per_iter)) if target > 0 else 1
            engines = {st.name: StandInEngine(st, iters) for st in spec.stages if st.kind == ONNX}
            row: dict[str, Any] = {"standin_target_ms": target, "standin_iters": iters}
            for pipelined in (False, True):
                sp = StreamedPipeline(spec, engines, rig, pipelined=pipelined)
                for _ in range(5):
                    sp.submit(images, points)
                sp.flush()
                gpu = []
                with power:
                    t0 = time.perf_counter()
                    for _ in range(args.frames):
                        r = sp.submit(images, points)
                        if r is not None:
                            gpu.append(r.timings_ms)
                    last = sp.flush()
                    dt = time.perf_counter() - t0
                if last is not None:
                    gpu.append(last.timings_ms)
                key = "pipelined" if pipelined else "sequential"
                row[key] = {
                    "fps": args.frames / dt,
                    "ms_per_frame": dt * 1e3 / args.frames,
                    "gpu_preprocess_ms": statistics.median(t["gpu_preprocess"] for t in gpu),
                    "gpu_infer_ms": statistics.median(t["gpu_infer"] for t in gpu),
                    "latency_ms": statistics.median(t["total"] for t in gpu),
                    "power": power.summary(),
                }
                sp.free()
            row["speedup"] = row["pipelined"]["fps"] / row["sequential"]["fps"]
            res["overlap"].append(row)
            for e in engines.values():
                e.free()
        for b in (*devs, img_out, p_dev, pil_out, f_dev, d_dev, bev_out):
            b.free()
        k_pil.free()
        k_bev.free()
    ctx.release()
    (out / "gpu_kernels.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
