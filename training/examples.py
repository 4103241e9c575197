"""The example models of engines/examples/: real export layouts at reduced widths, random weights.

    make examples          (or: PYTHONPATH=. .venv-train/bin/python -m training.examples)

* ``cuda_bevfusion_tiny``: CUDA-BEVFusion's split and shapes (6 x 3 x 256 x 704 images; 80-channel
  32 x 88 camera features with 118 depth bins; a 360 x 360 bevpool; 10-sweep VoxelNet voxels on the
  0.075 m grid into a sparse encoder in Autoware's plugin-op contract that ends at 180 x 180; a
  TransFusion head with 200 queries and velocity), every learned layer narrower so a CPU runs it.
* ``pointpillars_tiny``: the reference model with BEVFusion's PointPillars LiDAR branch (pillars of
  32 points, a PillarFeatureNet with batch norm, the scatter, a strided backbone); its camera branch,
  fuser and heads are the reference model's files.

The weights are not trained: the detections are noise. What the models prove is that such exports
load, run (infer, evaluate, the node) and build (TensorRT with the plugin library). Each model.yaml is
written by hand beside this script; the script writes the ONNX files and checks them against it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from training.sparse_conv import SparseEncoder, Vec3, export_encoder

EXAMPLES = Path(__file__).resolve().parents[1] / "engines" / "examples"
OPSET = 17


def conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class CameraBackbone(nn.Module):
    """6 images -> stride-8 features: 80 context channels and a 118-bin depth distribution each."""

    def __init__(self, width: int = 16, channels: int = 80, bins: int = 118) -> None:
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(conv(3, width, s=2), conv(width, 2 * width, s=2), conv(2 * width, 2 * width, s=2))
        self.head = nn.Conv2d(2 * width, channels + bins, 1)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, c, h, w = img.shape
        y = self.head(self.body(img.reshape(b * n, c, h, w)))
        feature, depth = y[:, : self.channels], y[:, self.channels :].softmax(dim=1)
        return feature.reshape(b, n, *feature.shape[1:]), depth.reshape(b, n, *depth.shape[1:])


class Downsample(nn.Module):
    """CUDA-BEVFusion's vtransform: the 360 x 360 camera BEV to the 180 x 180 fusion grid."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.AvgPool2d(2), conv(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Fuser(nn.Module):
    def __init__(self, c_camera: int, c_lidar: int, c_out: int) -> None:
        super().__init__()
        self.body = conv(c_camera + c_lidar, c_out)

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([camera, lidar], dim=1))


class Attention(nn.Module):
    """Multi-head scaled dot-product attention written out (torch's fused kernel has no ONNX export)."""

    def __init__(self, c: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(c, c) for _ in range(4))

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

        q, k, v = split(self.q(query)), split(self.k(key)), split(self.v(key))
        w = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(dim=-1)
        return self.o((w @ v).transpose(1, 2).reshape(query.shape))


HEADS = {"score": 10, "reg": 2, "height": 1, "dim": 3, "rot": 2, "vel": 2}


class TransFusionHead(nn.Module):
    """TransFusion's detection head, one decoder layer: queries at the heatmap's top-K cells (class-
    aware), self-attention among them, cross-attention to the BEV map, an FFN, per-query predictions.
    ``reg`` is the query's BEV position plus the predicted offset, in cells, as BEVFusion exports it."""

    def __init__(self, c: int, classes: int = 10, queries: int = 200, pool: int = 4) -> None:
        super().__init__()
        self.queries, self.classes = queries, classes
        self.shared = conv(c, c)
        self.heatmap = nn.Conv2d(c, classes, 3, padding=1)
        self.class_embed = nn.Linear(classes, c)
        self.pos_embed = nn.Sequential(nn.Linear(2, c), nn.ReLU(), nn.Linear(c, c))
        self.self_attn = Attention(c)
        self.cross_attn = Attention(c)
        self.ffn = nn.Sequential(nn.Linear(c, 2 * c), nn.ReLU(), nn.Linear(2 * c, c))
        self.pool = nn.AvgPool2d(pool)
        self.pool_size = pool
        self.out = nn.ModuleDict({k: nn.Linear(c, n) for k, n in HEADS.items()})

    def forward(self, middle: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.shared(middle)
        _, c, h, w = x.shape
        heat = self.heatmap(x).sigmoid().reshape(1, self.classes, h * w)
        best, label = heat.max(dim=1)
        top = best.topk(self.queries, dim=1).indices  # [1, Q] cells
        pos = torch.stack([top % w, torch.div(top, w, rounding_mode="floor")], dim=-1).float() + 0.5  # [1, Q, 2]
        feats = x.reshape(1, c, h * w).gather(2, top[:, None, :].expand(1, c, self.queries)).transpose(1, 2)
        onehot = nn.functional.one_hot(label.gather(1, top), self.classes).float()
        q = feats + self.class_embed(onehot) + self.pos_embed(pos / w)
        q = q + self.self_attn(q, q)
        kv = self.pool(x)
        ph, pw = kv.shape[2:]
        grid = torch.stack(torch.meshgrid(torch.arange(ph), torch.arange(pw), indexing="ij")[::-1], -1)
        kpos = (grid.reshape(1, ph * pw, 2).float() + 0.5) * self.pool_size
        kv = kv.reshape(1, c, ph * pw).transpose(1, 2) + self.pos_embed(kpos / w)
        q = q + self.cross_attn(q, kv)
        q = q + self.ffn(q)
        outs = {k: head(q).transpose(1, 2) for k, head in self.out.items()}  # [1, n, Q]
        outs["reg"] = outs["reg"] + pos.transpose(1, 2)
        return tuple(outs[k] for k in HEADS)


class PillarFeatureNet(nn.Module):
    """PointPillars' PFN layer: per point Linear + BatchNorm + ReLU, then the max over the pillar."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=False)
        self.norm = nn.BatchNorm1d(c_out)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = self.linear(points)
        x = torch.relu(self.norm(x.transpose(1, 2)).transpose(1, 2))
        return x.max(dim=1).values


# mmdet3d's SparseEncoder at reduced width: conv_input, then per stage a submanifold block and a
# strided down-sampling layer (1440 -> 720 -> 360 -> 180 in x/y, 40 -> 20 -> 10 -> 5 in z), then
# conv_out along z (5 -> 2): dense [1, 32 x 2, 180, 180]
VOXELNET_LAYERS: tuple[tuple[int, Vec3, Vec3, Vec3, bool], ...] = (
    (16, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (16, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (32, (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
    (32, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (32, (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
    (32, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (64, (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
    (64, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (32, (3, 1, 1), (2, 1, 1), (0, 0, 0), False),
)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]] | None = None) -> None:  # fmt: skip
    module.eval()
    torch.onnx.export(
        module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
        opset_version=OPSET, dynamo=False, do_constant_folding=True,
    )  # fmt: skip
    print(f"  {path.name}: {path.stat().st_size / 1e6:.2f} MB")


def _randomise_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Batch-norm statistics as a trained model would have them (not 0 / 1), so export folds real numbers."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)


def cuda_bevfusion_tiny(out: Path, generator: torch.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    backbone, vtransform = CameraBackbone(), Downsample(80, 32)
    encoder = SparseEncoder(5, (40, 1440, 1440), VOXELNET_LAYERS)
    fuser, head = Fuser(32, 64, 64), TransFusionHead(64)
    for m in (backbone, vtransform, encoder, fuser, head):
        _randomise_norms(m, generator)
    with torch.no_grad():
        _export(backbone, (torch.zeros(1, 6, 3, 256, 704),), out / "camera.backbone.onnx", ["img"],
                ["camera_feature", "camera_depth_weights"])  # fmt: skip
        _export(vtransform, (torch.zeros(1, 80, 360, 360),), out / "camera.vtransform.onnx", ["feat_in"], ["feat_out"])
        coors = torch.tensor([[0, 20, 700, 700], [0, 20, 700, 701], [0, 21, 700, 700]], dtype=torch.int32)
        encoder.eval()
        export_encoder(encoder, torch.rand(3, 5), coors, out / "lidar.backbone.onnx", output="lidar_feature")
        print(f"  lidar.backbone.onnx: {(out / 'lidar.backbone.onnx').stat().st_size / 1e6:.2f} MB")
        _export(fuser, (torch.zeros(1, 32, 180, 180), torch.zeros(1, 64, 180, 180)), out / "fuser.onnx",
                ["feat_out", "lidar_feature"], ["middle"])  # fmt: skip
        _export(head, (torch.rand(1, 64, 180, 180),), out / "head.bbox.onnx", ["middle"], list(HEADS))


class PointPillarsBackbone(nn.Module):
    """The scattered 256 x 256 pillar canvas to the reference fuser's 128 x 128 LiDAR input."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(c_in, c_in), conv(c_in, c_out, s=2), conv(c_out, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def pointpillars_tiny(out: Path, generator: torch.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pfn, backbone = PillarFeatureNet(9, 32), PointPillarsBackbone(32, 64)
    for m in (pfn, backbone):
        _randomise_norms(m, generator)
    with torch.no_grad():
        dynamic = {"pillar_point_features": {0: "pillars"}, "pillar_features": {0: "pillars"}}
        _export(pfn, (torch.rand(100, 32, 9),), out / "lidar.pfn.onnx", ["pillar_point_features"],
                ["pillar_features"], dynamic)  # fmt: skip
        _export(backbone, (torch.zeros(1, 32, 256, 256),), out / "lidar.backbone.onnx", ["lidar_canvas"],
                ["lidar_bev_feature"])  # fmt: skip


def check(model_yaml: Path) -> None:
    """Every ONNX stage of the YAML loads in ONNX Runtime with exactly the declared tensors."""
    from bevfusion_ros.core.model import load_model
    from bevfusion_ros.core.pipeline.backend import create_backend

    spec = load_model(model_yaml)
    for stage in spec.stages:
        if stage.file:
            with create_backend("onnxruntime", spec, stage):
                pass
    print(f"  {model_yaml}: every ONNX stage matches")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=EXAMPLES)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    for name, make in (("cuda_bevfusion_tiny", cuda_bevfusion_tiny), ("pointpillars_tiny", pointpillars_tiny)):
        print(name)
        make(args.out / name, generator)
        if (args.out / name / "model.yaml").is_file():
            check(args.out / name / "model.yaml")


if __name__ == "__main__":
    main()
