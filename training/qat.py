"""Quantisation-aware training of the reference model: every stage INT8, the LiDAR backbone included.

    python -m training.qat init --frame-json PATH/frame.json --out fp32.pt                 (CPU, needs onnx)
    python -m training.qat train --frame-json PATH/frame.json --init fp32.pt --out DIR     (CUDA GPU)
    python -m training.qat export --frame-json PATH/frame.json --checkpoint DIR/qat.pt     (CPU)
    python -m training.qat export --frame-json PATH/frame.json --ptq                       (calibration only)

Post-training quantisation could not keep the pillar backbone (MODEL_CARD.md: its output's relative
L2 error reached 1.15 and the model fell to mAP 0.586). Here every convolution gets fake quantisation
in the form TensorRT builds explicit-precision INT8 engines from: symmetric int8 weights per output
channel, symmetric int8 inputs per tensor with a calibrated amax. The model starts from the shipped
fp32 ONNX weights (batch norm folded, as TensorRT folds it), its activation ranges are calibrated on
scenes that neither training nor evaluation uses, then the whole model is fine-tuned with the
training loss at a small learning rate; the rounding passes gradients straight through.

The export writes one Q/DQ ONNX per stage into ``engines/reference/int8/`` with the weights stored
as int8 initialisers behind DequantizeLinear, writes ``model.int8.yaml`` beside ``model.yaml``, and the
golden outputs of the fake-quantised PyTorch model that CI compares with ONNX Runtime.

The fake quantisation is PyTorch's own (``torch.fake_quantize_per_*_affine``, exported as
QuantizeLinear/DequantizeLinear), the arithmetic ModelOpt's INT8 config inserts: ModelOpt 0.47's
``modelopt.torch`` cannot be imported on the offline GPU machine without huggingface_hub, requests,
scipy and PuLP, more wheels than the machine can be sent.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from bevfusion_ros.core.model import ModelSpec, load_model
from bevfusion_ros.tools.data import scenes
from training.export import export as export_stages
from training.export import golden, golden_inputs, stage_modules
from training.model import BevFusionTiny
from training.train import MODEL_YAML, Scenes, build_index, collate, lidar_inputs, losses

# fine-tuning scenes: after the fp32 runs' 0.. and 1,000,000.., before evaluation's 10,000,000..
QAT_FIRST_SEED = 2_000_000
GOLDEN = Path(__file__).resolve().parents[1] / "test" / "data" / "golden_reference_int8.npz"
CONVS = (nn.Conv2d, nn.ConvTranspose2d)


class ActivationQuantizer(nn.Module):
    """Symmetric per-tensor int8 fake quantisation of a layer's input, amax from calibration."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("amax", torch.zeros(()))
        self.calibrating = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.amax = torch.maximum(self.amax, x.detach().abs().max().float())
            return x
        if torch.onnx.is_in_onnx_export():  # a constant scale, not ops on the amax initialiser
            return torch.fake_quantize_per_tensor_affine(x, max(float(self.amax), 1e-8) / 127.0, 0, -128, 127)
        scale = (self.amax.clamp(min=1e-8) / 127.0).float()
        zero = torch.zeros((), dtype=torch.int32, device=x.device)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, -128, 127)


def weight_scale(w: torch.Tensor, axis: int) -> torch.Tensor:
    dims = [d for d in range(w.dim()) if d != axis]
    return (w.detach().abs().amax(dim=dims).clamp(min=1e-8) / 127.0).float()


def quantize_weight(w: torch.Tensor, axis: int) -> torch.Tensor:
    """Symmetric per-output-channel int8 fake quantisation, amax from the current weights (TensorRT's
    per-channel weight scales are the weights' own max, so nothing needs calibrating)."""
    if torch.onnx.is_in_onnx_export():  # the scales as a constant, not as ops on the weight
        scale = torch.from_numpy(weight_scale(w, axis).cpu().numpy().copy())
    else:
        scale = weight_scale(w, axis)
    zero = torch.zeros(scale.shape, dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, axis, -128, 127)


class QuantConv2d(nn.Conv2d):
    input_quantizer: ActivationQuantizer
    quantize = True  # False: the same weights in fp32 (the QAT model's own float twin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize:
            return self._conv_forward(x, self.weight, self.bias)
        return self._conv_forward(self.input_quantizer(x), quantize_weight(self.weight, 0), self.bias)


class QuantConvTranspose2d(nn.ConvTranspose2d):
    input_quantizer: ActivationQuantizer
    quantize = True

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        # ConvTranspose weights are (c_in, c_out, kh, kw): output channels are axis 1
        w, x = (quantize_weight(self.weight, 1), self.input_quantizer(x)) if self.quantize else (self.weight, x)
        return nn.functional.conv_transpose2d(
            x, w, self.bias, self.stride, self.padding, self.output_padding, self.groups
        )


def fold_batch_norms(module: nn.Module) -> None:
    """Every Conv followed by BatchNorm in a Sequential becomes one biased Conv (the BN an Identity)."""
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq)
        for i in range(len(kids) - 1):
            conv, bn = kids[i], kids[i + 1]
            if not (isinstance(conv, CONVS) and isinstance(bn, nn.BatchNorm2d)):
                continue
            axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
            with torch.no_grad():
                gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                shape = [1] * conv.weight.dim()
                shape[axis] = -1
                conv.weight.mul_(gain.reshape(shape))
                bias = bn.bias - bn.running_mean * gain + (conv.bias * gain if conv.bias is not None else 0)
                conv.bias = nn.Parameter(bias.clone())
            seq[i + 1] = nn.Identity()


def execution_order(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[nn.Module]:
    """The module's convolutions in the order a forward pass calls them (the order of ONNX's nodes)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in module.modules() if isinstance(m, CONVS)]
    with torch.no_grad():
        module(*inputs)
    for h in hooks:
        h.remove()
    return order


def load_onnx_weights(model: BevFusionTiny, spec: ModelSpec) -> None:
    """Fill the BN-folded model with the weights of the model YAML's fp32 ONNX files.

    The reference model's training checkpoint was not kept; its ONNX files are the model. torch.onnx
    folded each Conv+BN into one Conv and left ConvTranspose+BN apart, so the graph's Conv and
    ConvTranspose nodes meet the module's convolutions in call order, and a BatchNormalization node
    is folded into the convolution before it."""
    import onnx  # here: the GPU machine trains from `init`'s state dict and has no onnx
    from onnx import numpy_helper

    fold_batch_norms(model)
    for name, module in stage_modules(model).items():
        stage = spec.stage(name)
        graph = onnx.load(str(spec.path(stage))).graph
        init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        convs = execution_order(module.eval(), tuple(torch.zeros(t.shape) for t in stage.inputs))
        it = iter(convs)
        last: nn.Module | None = None
        with torch.no_grad():
            for node in graph.node:
                if node.op_type in ("Conv", "ConvTranspose"):
                    last = next(it)
                    last.weight.copy_(torch.from_numpy(init[node.input[1]].copy()))
                    bias = init[node.input[2]] if len(node.input) > 2 else np.zeros(last.out_channels, np.float32)
                    last.bias = nn.Parameter(torch.from_numpy(bias.copy()))
                elif node.op_type == "BatchNormalization":
                    assert last is not None, f"{name}: BatchNormalization before any convolution"
                    gamma, beta, mean, var = (init[i] for i in node.input[1:5])
                    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
                    gain = gamma / np.sqrt(var + eps)
                    axis = 1 if isinstance(last, nn.ConvTranspose2d) else 0
                    shape = [1] * last.weight.dim()
                    shape[axis] = -1
                    last.weight.mul_(torch.from_numpy(gain.reshape(shape)))
                    last.bias.copy_(torch.from_numpy(beta - mean * gain) + last.bias * torch.from_numpy(gain))
        left = list(it)
        assert not left, f"{name}: {len(left)} convolutions have no ONNX node"


class ChannelScale(nn.Module):
    """Multiplies each input channel by a constant (exported as one Mul before the first Q/DQ)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def equalize_lidar_input(model: BevFusionTiny, channel_amax: torch.Tensor | None = None) -> None:
    """Brings every pillar statistic to [0, 1] before the first convolution and scales that
    convolution's weights back, so the fp32 model is unchanged.

    The pillar channels span different ranges (log point count up to ~5, normalised heights and
    intensity below 1): one per-tensor int8 scale sized for the count leaves heights 25 levels,
    which alone put the backbone's output at relative L2 0.39. TensorRT quantises activations per
    tensor only, so the per-channel range goes into an elementwise Mul it runs before the Q/DQ.
    ``channel_amax``: each channel's max |value| over calibration scenes (None: 1s, to be loaded)."""
    first = model.lidar_backbone.body[0]
    conv = first[0]
    assert isinstance(conv, nn.Conv2d) and not isinstance(conv, QuantConv2d)
    scale = ChannelScale(conv.in_channels)
    if channel_amax is not None:
        amax = channel_amax.clamp(min=1e-6).to(conv.weight.device)
        with torch.no_grad():
            scale.scale.copy_((1.0 / amax).reshape(1, -1, 1, 1))
            conv.weight.mul_(amax.reshape(1, -1, 1, 1))
    first[0] = nn.Sequential(scale.to(conv.weight.device), conv)


@torch.no_grad()
def pillar_channel_amax(data: Iterator[dict], n: int) -> torch.Tensor:  # type: ignore[type-arg]
    return torch.stack([next(data)["pillars"].abs().amax(dim=(0, 2, 3)) for _ in range(n)]).amax(dim=0)


def insert_quantizers(model: nn.Module) -> list[ActivationQuantizer]:
    """Every convolution becomes its fake-quantised twin (same parameters, same state-dict names)."""
    quantizers = []
    for m in list(model.modules()):
        if isinstance(m, nn.ConvTranspose2d):
            m.__class__ = QuantConvTranspose2d
        elif isinstance(m, nn.Conv2d):
            m.__class__ = QuantConv2d
        else:
            continue
        q = ActivationQuantizer().to(m.weight.device)
        m.add_module("input_quantizer", q)
        quantizers.append(q)
    return quantizers


def quantized_model(
    spec: ModelSpec, frame_json: str, channel_amax: torch.Tensor | None = None, init: str = ""
) -> tuple[BevFusionTiny, list[ActivationQuantizer]]:
    """The fp32 weights (the ONNX files', or ``init``: the state dict `init` wrote from them), the
    LiDAR input equalised, every convolution fake-quantised (amax not yet calibrated: call
    ``calibrate`` or load a state dict)."""
    model = BevFusionTiny(spec, build_index(spec, frame_json))
    if init:
        fold_batch_norms(model)
        model.load_state_dict(torch.load(init, map_location="cpu"))
    else:
        load_onnx_weights(model, spec)
    equalize_lidar_input(model, channel_amax)
    return model, insert_quantizers(model)


def batches(spec: ModelSpec, frame_json: str, first_seed: int, batch: int, workers: int) -> Iterator[dict]:  # type: ignore[type-arg]
    yield from DataLoader(
        Scenes(spec, frame_json, first_seed),
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )


@torch.no_grad()
def calibrate(
    model: BevFusionTiny,
    quantizers: list[ActivationQuantizer],
    data: Iterator[dict],  # type: ignore[type-arg]
    n: int,
) -> None:
    """amax of every layer input = its max |value| over ``n`` batches (ModelOpt's INT8 'max').
    Measured on the pillar backbone: an MSE-optimal amax, which clips the long tail of the ReLU
    outputs, doubled its output error (relative L2 0.29 -> 0.47): the tail is the objects."""
    dev = next(model.parameters()).device
    model.eval()
    for q in quantizers:
        q.calibrating = True
    for _ in range(n):
        b = {k: v.to(dev) for k, v in next(data).items()}
        model(b["images"], lidar_inputs(b))
    for q in quantizers:
        q.calibrating = False


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = load_model(args.model)
    workers = min(args.workers, args.calib_batches)
    calib = batches(spec, args.frame_json, scenes.CALIBRATION_SEED_BASE, args.batch, workers)
    start = time.time()
    model, quantizers = quantized_model(
        spec, args.frame_json, pillar_channel_amax(calib, args.calib_batches), args.init
    )
    model.to(dev)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibrate(model, quantizers, calib, args.calib_batches)
    calib.close()  # its workers would keep 16 cores busy prefetching scenes nobody reads
    torch.save(model.state_dict(), out / "ptq.pt")
    print(json.dumps({"calibrated": args.calib_batches * args.batch, "seconds": round(time.time() - start, 1)}))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    budget, step, log, waited = args.minutes * 60, 0, [], 0.0
    start = fetched = time.time()
    model.train()
    for batch in batches(spec, args.frame_json, QAT_FIRST_SEED, args.batch, args.workers):
        waited += time.time() - fetched
        elapsed = time.time() - start
        if elapsed > budget or (args.max_steps and step >= args.max_steps):
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        r = torch.rand(batch["images"].shape[0], generator=gen)
        drop_cam, drop_lidar = (r < 0.1).float().to(dev), ((r >= 0.1) & (r < 0.2)).float().to(dev)
        # fp32: the fake quantisation's rounding is what is being learnt, autocast would blur it
        parts = losses(model(batch["images"], lidar_inputs(batch), drop_cam, drop_lidar), batch)
        loss = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == 1:
            row = {"step": step, "t": round(elapsed, 1), "lr": opt.param_groups[0]["lr"]}
            row |= {"data_wait": round(waited / max(elapsed, 1e-9), 2)}
            row |= {k: round(float(v.detach()), 4) for k, v in parts.items()}
            log.append(row)
            print(json.dumps(row), flush=True)
        if step % 200 == 0:
            torch.save(model.state_dict(), out / "qat.pt")
        fetched = time.time()
    torch.save(model.state_dict(), out / "qat.pt")
    summary = {"steps": step, "samples": step * args.batch, "seconds": round(time.time() - start, 1)}
    summary |= {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "lr": args.lr, "log": log}
    (out / "qat_log.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}))


def store_int8_weights(path: Path) -> None:
    """Weight -> QuantizeLinear -> DequantizeLinear becomes an int8 initialiser -> DequantizeLinear:
    the form TensorRT and ModelOpt write, and a quarter of the bytes."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    init = {t.name: t for t in g.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}

    def value(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(init[name]) if name in init else consts.get(name)

    drop = []
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in init:
            continue
        w, s = numpy_helper.to_array(init[node.input[0]]), value(node.input[1])
        assert s is not None, f"{path.name}: scale of {node.input[0]} is not a constant"
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        if s.ndim:
            shape[axis] = -1
        q = np.clip(np.round(w / s.reshape(shape)), -128, 127).astype(np.int8)
        g.initializer.remove(init[node.input[0]])
        g.initializer.append(numpy_helper.from_array(q, node.output[0]))
        drop.append(node)
    for node in drop:
        g.node.remove(node)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def init(args: argparse.Namespace) -> None:
    spec = load_model(args.model)
    model = BevFusionTiny(spec, build_index(spec, args.frame_json))
    load_onnx_weights(model, spec)
    torch.save(model.state_dict(), args.out)
    print(f"fp32 weights, batch norm folded: {args.out}")


def export(args: argparse.Namespace) -> None:
    from training.quantize import int8_yaml, onnx_stages

    torch.manual_seed(0)
    spec = load_model(args.model)
    if args.ptq:
        calib = batches(spec, args.frame_json, scenes.CALIBRATION_SEED_BASE, 4, 0)
        model, quantizers = quantized_model(spec, args.frame_json, pillar_channel_amax(calib, args.calib_batches))
        calibrate(model, quantizers, calib, args.calib_batches)
    else:
        model, _ = quantized_model(spec, args.frame_json)
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    model.eval()
    if args.float:
        for m in model.modules():
            if isinstance(m, QuantConv2d | QuantConvTranspose2d):
                m.quantize = False
    out_dir = spec.directory / args.subdir
    out_dir.mkdir(exist_ok=True)
    inputs = golden_inputs(spec, args.frame_json)
    for path in export_stages(model, spec, inputs, directory=out_dir):
        if not args.float:
            store_int8_weights(path)
            print(f"{path}: weights stored as int8, {path.stat().st_size / 1e6:.2f} MB")
    stages = onnx_stages(spec)
    yaml = Path(args.model)
    method = "calibration only (no fine-tuning)" if args.ptq else "quantisation-aware training"
    if args.float:
        method = "nothing: the QAT weights in fp32, to measure what quantisation alone costs"
    files = [spec.stage(s).file for s in stages]
    int8_yaml(yaml, yaml.with_name(f"model.{args.subdir}.yaml"), args.subdir, stages, files, ("training.qat", method))
    golden(model, spec, inputs, Path(args.golden))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("init", "train", "export"):
        p = sub.add_parser(name)
        p.add_argument("--frame-json", required=True)
        p.add_argument("--model", default=str(MODEL_YAML), help="the fp32 model YAML")
        p.add_argument("--calib-batches", type=int, default=16)
    sub.choices["init"].add_argument("--out", required=True, help="where to write the folded fp32 state dict")
    t = sub.choices["train"]
    t.add_argument("--out", required=True)
    t.add_argument("--init", default="", help="`init`'s state dict (default: read the ONNX files)")
    t.add_argument("--minutes", type=float, default=7.0)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--workers", type=int, default=14)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    e = sub.choices["export"]
    e.add_argument("--checkpoint", help="the state dict `train` wrote (qat.pt, or ptq.pt before fine-tuning)")
    e.add_argument("--ptq", action="store_true", help="calibrate here and export without fine-tuning")
    e.add_argument("--subdir", default="int8")
    e.add_argument("--float", action="store_true", help="the same weights without fake quantisation (fp32)")
    e.add_argument("--golden", default=str(GOLDEN))
    args = ap.parse_args()
    if args.command == "export" and not (args.ptq or args.checkpoint):
        ap.error("export needs --checkpoint or --ptq")
    {"init": init, "train": train, "export": export}[args.command](args)


if __name__ == "__main__":
    main()
