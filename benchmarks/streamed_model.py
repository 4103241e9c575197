"""GPU benchmark: the streamed pipeline with the trained reference model's real compute in its slots.

TensorRT does not exist on the lent datacenter GPU, so each ONNX stage runs as its PyTorch module
(the trained weights, batch norm folded) on CUDA in fp16 and fp32, behind the same device-engine
interface a TensorRT engine has (``device_ptr``, ``enqueue`` on the pipeline's stream, inputs bound
by device pointer without a copy). Measures sequential vs pipelined frames/s and end-to-end latency
on the real nuScenes frame, and checks what the slots compute against the same model run directly
in PyTorch on the numpy pre-processing.

    PYTHONPATH=. python3 benchmarks/streamed_model.py --frame .carry/frame_decoded.npz \
        --frame-json .carry/frame.json --weights .carry/ckpt/reference_fp32_folded.pt --out DIR

``--weights``: ``python -m training.qat init`` writes them from engines/reference/*.onnx (the GPU
machine has no onnx). Needs torch and pycuda; benchmark only, never imported by the product.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timing import decoded_frame  # benchmarks/, the script's own folder

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.streamed import StreamedPipeline
from bevfusion_ros.core.model import ONNX, load_model
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize
from training.export import stage_modules
from training.model import BevFusionTiny
from training.qat import fold_batch_norms
from training.train import build_index

REPO = Path(__file__).resolve().parents[1]


class _DevicePointer:
    """A float32 device buffer of the pipeline's, seen by torch without a copy."""

    def __init__(self, ptr: int, shape: tuple[int, ...]) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": "<f4",
            "data": (ptr, False),
            "version": 3,
            "strides": None,
            "stream": None,  # ordering is the pipeline's: enqueue runs on its stream
        }


class TorchEngine:
    """One model stage as its PyTorch module on CUDA, with a TensorRT engine's device interface:
    float32 bindings, work enqueued on the caller's stream (fp16 inside when ``dtype`` says so)."""

    def __init__(self, stage: Any, module: torch.nn.Module, dtype: torch.dtype) -> None:
        self.stage = stage
        self.module = module.cuda().to(dtype).eval()
        self.dtype = dtype
        self.buffers = {
            t.name: torch.zeros(tuple(t.shape), dtype=torch.float32, device="cuda")
            for t in (*stage.inputs, *stage.outputs)
        }

    def device_ptr(self, name: str) -> int:
        return int(self.buffers[name].data_ptr())

    def enqueue(self, stream: cuda.Stream | None = None, bind: dict[str, int] | None = None) -> None:
        assert stream is not None
        bind = bind or {}
        with torch.cuda.stream(torch.cuda.ExternalStream(stream.handle)), torch.inference_mode():
            xs = [
                torch.as_tensor(_DevicePointer(bind[t.name], tuple(t.shape)), device="cuda")
                if t.name in bind
                else self.buffers[t.name]
                for t in self.stage.inputs
            ]
            out = self.module(*(x.to(self.dtype) for x in xs))
            for t, o in zip(self.stage.outputs, out if isinstance(out, tuple) else (out,), strict=True):
                self.buffers[t.name].copy_(o)


@torch.no_grad()
def direct_heads(
    model: BevFusionTiny, spec: Any, images: list[np.ndarray], points: np.ndarray
) -> dict[str, np.ndarray]:
    """The model in fp32 PyTorch on the numpy pre-processing: what the slots should reproduce."""
    x = torch.from_numpy(ImagePreprocessor(spec.image)(images, len(images))).cuda()
    pil = torch.from_numpy(pillarize(crop_points(points, spec.lidar), spec.lidar)).cuda()
    out = model.cuda().float().eval()(x, (pil,))
    out["map_probs"] = out.pop("map_logits").sigmoid()
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def run(sp: StreamedPipeline, images: list[np.ndarray], points: np.ndarray, frames: int) -> dict[str, Any]:
    for _ in range(5):
        sp.submit(images, points)
    sp.flush()
    results = []
    t0 = time.perf_counter()
    for _ in range(frames):
        r = sp.submit(images, points)
        if r is not None:
            results.append(r)
    last = sp.flush()
    dt = time.perf_counter() - t0
    if last is not None:
        results.append(last)
    lat = [r.timings_ms["total"] for r in results]
    return {
        "fps": frames / dt,
        "ms_per_frame": dt * 1e3 / frames,
        "latency_p50_ms": statistics.median(lat),
        "latency_p99_ms": float(np.percentile(lat, 99)),
        "gpu_preprocess_ms": statistics.median(r.timings_ms["gpu_preprocess"] for r in results),
        "gpu_infer_ms": statistics.median(r.timings_ms["gpu_infer"] for r in results),
        "heads": results[-1].tensors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", required=True, help="decoded real frame .npz (scripts/export_gpu_frame.py)")
    ap.add_argument("--frame-json", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    images, points, rig = decoded_frame(args.frame)
    spec = load_model(REPO / "engines" / "reference" / "model.yaml")
    model = BevFusionTiny(spec, build_index(spec, args.frame_json))
    fold_batch_norms(model)
    model.load_state_dict(torch.load(args.weights, map_location="cpu"))
    torch.backends.cudnn.benchmark = True
    ctx = cuda.CudaContext(0)  # the primary context, the one torch uses
    res: dict[str, Any] = {"device": ctx.name, "torch": torch.__version__, "frames": args.frames, "runs": []}
    with ctx.active():
        reference = direct_heads(model, spec, images, points)
        for dtype in (torch.float16, torch.float32):
            modules = stage_modules(model)
            engines = {st.name: TorchEngine(st, modules[st.name], dtype) for st in spec.stages if st.kind == ONNX}
            heads = {}
            for pipelined in (False, True):
                sp = StreamedPipeline(spec, engines, rig, pipelined=pipelined)
                row = run(sp, images, points, args.frames)
                sp.free()
                heads[pipelined] = row.pop("heads")
                row |= {"dtype": str(dtype).removeprefix("torch."), "mode": "pipelined" if pipelined else "sequential"}
                row["vs_direct_fp32"] = {k: rel_l2(heads[pipelined][k], reference[k]) for k in ("heatmap", "map_probs")}
                res["runs"].append(row)
                print(json.dumps(row), flush=True)
            res[f"{dtype}_pipelined_equals_sequential"] = all(
                np.array_equal(heads[True][k], heads[False][k]) for k in heads[True]
            )
            model.float()
            torch.cuda.synchronize()
    ctx.release()
    for dt in ("float16", "float32"):
        seq, pip = (
            next(r for r in res["runs"] if r["dtype"] == dt and r["mode"] == m) for m in ("sequential", "pipelined")
        )
        res[f"{dt}_speedup"] = pip["fps"] / seq["fps"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "streamed_model.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
