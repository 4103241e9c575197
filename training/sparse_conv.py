"""Sparse 3D convolution in plain PyTorch (no spconv wheel), exported in Autoware's plugin-op contract.

Layers compute what spconv's ``SubMConv3d`` / ``SparseConv3d`` compute, by gather-GEMM-scatter over
a rule book built here with a dense lookup table (a different algorithm from the runtime's sorted
search in core/pipeline/sparse_conv.py, so the golden test compares two implementations). Under
``torch.onnx.export`` each layer becomes ``autoware::GetIndicePairsImplicitGemm`` +
``autoware::ImplicitGemm`` (engines/README.md), bias and ReLU ordinary nodes, and ``dense()``
``ScatterND``. Training runs the same gather-GEMM-scatter through autograd (the rule book itself
needs no gradient); batch norm, used in training, is folded into the weights before export.

    python -m training.sparse_conv --frame PATH/nuscenes_frame --out test/data/sparse_encoder_golden

writes the reference-grid VoxelNet encoder (test/model_variants.py's widths, random weights) as ONNX
plus a golden npz (the real sweep's voxels in, PyTorch's BEV map out) that CI compares ONNX Runtime with.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

Vec3 = tuple[int, int, int]
DOMAIN = "autoware"


def _triple(v: int | Sequence[int]) -> Vec3:
    a, b, c = (v, v, v) if isinstance(v, int) else v
    return int(a), int(b), int(c)


@dataclass
class SparseTensor:
    features: torch.Tensor  # [N, C]
    indices: torch.Tensor  # [N, 4] int32 (batch, z, y, x)
    spatial_shape: Vec3
    batch_size: int = 1
    # rule books of the submanifold layers, by indice key: layers on the same sites share one
    books: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)


def out_shape(shape: Vec3, k: Vec3, s: Vec3, p: Vec3, d: Vec3) -> Vec3:
    a, b, c = ((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, ss, pp, dd in zip(shape, k, s, p, d, strict=True))
    return a, b, c


def rule_book(
    indices: torch.Tensor, batch_size: int, shape: Vec3, k: Vec3, s: Vec3, p: Vec3, d: Vec3, subm: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out_indices [M, 4] int32, pair_fwd [K, M] int32) through dense lookup tables."""
    idx = indices.long()
    dev = idx.device if idx.is_cuda else None  # (a CPU device argument breaks the ONNX tracer)

    def vec(v: Sequence[int]) -> torch.Tensor:
        return torch.tensor(list(v), device=dev)

    offsets = torch.stack(torch.meshgrid(*(torch.arange(n, device=dev) for n in k), indexing="ij"), -1).reshape(-1, 3)
    pad = vec([kk // 2 * dd for kk, dd in zip(k, d, strict=True)] if subm else p)
    shift = offsets * vec(d) - pad  # [K, 3]
    oshape = shape if subm else out_shape(shape, k, s, p, d)
    n_in = len(idx)
    if subm:
        table = torch.full((batch_size, *shape), -1, dtype=torch.long, device=dev)
        table[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]] = torch.arange(n_in, device=dev)
        pairs = torch.full((len(shift), n_in), -1, dtype=torch.long, device=dev)
        for kk, sh in enumerate(shift):
            q = idx[:, 1:] + sh
            ok = ((q >= 0) & (q < vec(shape))).all(1)
            pairs[kk, ok] = table[idx[ok, 0], q[ok, 0], q[ok, 1], q[ok, 2]]
        return indices.int().clone(), pairs.int()  # a fresh tensor: the tracer must not alias the input
    # every (offset, input) that lands on an output site: o * s = i - shift
    cand = []
    for kk, sh in enumerate(shift):
        num = idx[:, 1:] - sh
        o = torch.div(num, vec(s), rounding_mode="floor")
        ok = ((num % vec(s)) == 0).all(1) & ((o >= 0) & (o < vec(oshape))).all(1)
        rows = torch.nonzero(ok).squeeze(1)
        cand.append((kk, rows, torch.cat([idx[rows, :1], o[rows]], 1)))
    table = torch.full((batch_size, *oshape), -1, dtype=torch.long, device=dev)
    for _, _, oc in cand:
        table[oc[:, 0], oc[:, 1], oc[:, 2], oc[:, 3]] = 0
    out_idx = torch.nonzero(table >= 0)  # row-major: ascending (batch, z, y, x)
    table[out_idx[:, 0], out_idx[:, 1], out_idx[:, 2], out_idx[:, 3]] = torch.arange(len(out_idx), device=dev)
    pairs = torch.full((len(shift), len(out_idx)), -1, dtype=torch.long, device=dev)
    for kk, rows, oc in cand:
        pairs[kk, table[oc[:, 0], oc[:, 1], oc[:, 2], oc[:, 3]]] = rows
    return out_idx.int(), pairs.int()


def gather_gemm_scatter(features: torch.Tensor, weight: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """[M, Cout] = sum over offsets of the paired input rows times that offset's [Cout, Cin] weights."""
    c_out, c_in = weight.shape[0], weight.shape[-1]
    w = weight.reshape(c_out, -1, c_in)
    out = features.new_zeros((pairs.shape[1], c_out))
    for kk in range(w.shape[1]):
        rows = torch.nonzero(pairs[kk] >= 0).squeeze(1)
        out.index_add_(0, rows, features[pairs[kk, rows].long()] @ w[:, kk, :].T)
    return out


class _Pairs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, indices: torch.Tensor, batch_size: int, shape: Vec3, k: Vec3, s: Vec3, p: Vec3, d: Vec3,
                subm: bool) -> tuple[torch.Tensor, ...]:  # fmt: skip
        out_idx, pairs = rule_book(indices, batch_size, shape, k, s, p, d, subm)
        bits = torch.tensor(
            [1 << i for i in range(pairs.shape[0])], dtype=torch.long, device=pairs.device if pairs.is_cuda else None
        )
        mask = ((pairs >= 0).long() * bits[:, None]).sum(0)
        mask32 = torch.where(mask >= 2**31, mask - 2**32, mask).int()
        argsort = torch.argsort(-mask, stable=True).int()
        return out_idx, pairs, mask32[:, None], argsort, torch.tensor(len(out_idx), dtype=torch.int32)

    @staticmethod
    def symbolic(g: Any, indices: Any, batch_size: int, shape: Vec3, k: Vec3, s: Vec3, p: Vec3, d: Vec3,
                 subm: bool) -> Any:  # fmt: skip
        return g.op(
            f"{DOMAIN}::GetIndicePairsImplicitGemm", indices, batch_size_i=batch_size, spatial_shape_i=list(shape),
            algo_i=1, ksize_i=list(k), stride_i=list(s), padding_i=list(p), dilation_i=list(d),
            out_padding_i=[0, 0, 0], subm_i=int(subm), transpose_i=0, is_train_i=0, outputs=5,
        )  # fmt: skip


class _Gemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, weight: torch.Tensor, pairs: torch.Tensor, mask: torch.Tensor,
                argsort: torch.Tensor, subm: bool) -> torch.Tensor:  # fmt: skip
        return gather_gemm_scatter(features, weight, pairs)

    @staticmethod
    def symbolic(g: Any, features: Any, weight: Any, pairs: Any, mask: Any, argsort: Any, subm: bool) -> Any:
        return g.op(
            f"{DOMAIN}::ImplicitGemm", features, weight, pairs, mask, argsort, is_subm_i=int(subm), is_train_i=0,
            act_alpha_f=0.0, act_beta_f=0.0, output_scale_f=1.0, output_add_scale_f=0.0, outputs=1,
        )  # fmt: skip


class SparseConv3d(nn.Module):
    """spconv's SparseConv3d (``subm=False``) / SubMConv3d, weights [Cout, kz, ky, kx, Cin] + bias."""

    def __init__(self, c_in: int, c_out: int, ksize: int | Sequence[int], stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, subm: bool = False,
                 indice_key: str = "") -> None:  # fmt: skip
        super().__init__()
        self.k, self.s, self.p, self.d = _triple(ksize), _triple(stride), _triple(padding), _triple(dilation)
        self.subm, self.indice_key = subm, indice_key
        fan_in = c_in * int(np.prod(self.k))
        self.weight = nn.Parameter(torch.randn(c_out, *self.k, c_in) / fan_in**0.5)
        self.bias = nn.Parameter(torch.randn(c_out) * 0.1)

    def forward(self, x: SparseTensor) -> SparseTensor:
        key = f"{self.indice_key}:{self.k}:{self.d}"
        book = x.books.get(key) if self.subm and self.indice_key else None
        if book is None:
            book = _Pairs.apply(x.indices, x.batch_size, x.spatial_shape, self.k, self.s, self.p, self.d, self.subm)
        if torch.onnx.is_in_onnx_export():
            gemm = _Gemm.apply(x.features, self.weight, book[1], book[2], book[3], self.subm)
        else:  # the same arithmetic, differentiable (the autograd.Function above only names the op)
            gemm = gather_gemm_scatter(x.features, self.weight, book[1])
        features = gemm + self.bias
        if self.subm:
            books = dict(x.books)
            if self.indice_key:
                books[key] = book
            return SparseTensor(features, x.indices, x.spatial_shape, x.batch_size, books)
        shape = out_shape(x.spatial_shape, self.k, self.s, self.p, self.d)
        return SparseTensor(features, book[0], shape, x.batch_size)


def relu(x: SparseTensor, norm: nn.Module | None = None) -> SparseTensor:
    f = x.features if norm is None else norm(x.features)
    return SparseTensor(torch.relu(f), x.indices, x.spatial_shape, x.batch_size, x.books)


def dense_bev(x: SparseTensor) -> torch.Tensor:
    """spconv's dense() then mmdet3d's (N, C, D, H, W) -> (N, C * D, H, W)."""
    d, h, w = x.spatial_shape
    c = x.features.shape[1]
    grid = x.features.new_zeros((x.batch_size, d, h, w, c))
    idx = x.indices.long()
    grid = grid.index_put((idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]), x.features)
    return grid.permute(0, 4, 1, 2, 3).reshape(x.batch_size, c * d, h, w)


# (c_out, ksize, stride, padding, subm): mmdet3d's SparseEncoder at reduced width (conv_input,
# one block per stage with its strided down-sampling layer, conv_out along z)
ENCODER_LAYERS: tuple[tuple[int, Vec3, Vec3, Vec3, bool], ...] = (
    (8, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (8, (3, 1, 1), (2, 1, 1), (1, 0, 0), False),
    (5, (3, 1, 1), (2, 1, 1), (1, 0, 0), False),
)


class SparseEncoder(nn.Module):
    """Submanifold and strided layers, each followed by (batch norm and) ReLU, then the dense BEV map.

    ``input_scale`` divides each voxel feature by a constant (x, y, z by the range, raw 0..255
    intensity, time lag), a Mul node in the export. With ``norm``, each layer has batch norm for
    training; ``fold_norms`` moves it into the weights and bias, as deployment exports do."""

    def __init__(
        self,
        c_in: int,
        sparse_shape: Vec3,
        layers: Sequence[tuple[int, Vec3, Vec3, Vec3, bool]],
        input_scale: Sequence[float] | None = None,
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.sparse_shape = _triple(sparse_shape)  # plain ints: the exporter rejects numpy attributes
        self.input_scale: torch.Tensor | None
        if input_scale is None:
            self.input_scale = None
        else:
            self.register_buffer("input_scale", torch.tensor(list(input_scale), dtype=torch.float32))
        convs, norms = [], []
        level = 0  # submanifold layers between two strided ones share their sites, so one rule book
        for c_out, k, s, p, subm in layers:
            level += 0 if subm else 1
            convs.append(SparseConv3d(c_in, c_out, k, s, p, subm=subm, indice_key=f"subm{level}" if subm else ""))
            norms.append(nn.BatchNorm1d(c_out, momentum=0.01) if norm else nn.Identity())
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)

    @torch.no_grad()
    def fold_norms(self) -> None:
        for i, (conv, bn) in enumerate(zip(self.convs, self.norms, strict=True)):
            if not isinstance(bn, nn.BatchNorm1d):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1, 1))
            conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
            self.norms[i] = nn.Identity()

    def forward(self, voxels: torch.Tensor, coors: torch.Tensor, batch_size: int = 1) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return self._encode(voxels, coors, 1)  # deployment runs one frame; (the tracer mangles the int argument)
        with torch.autocast(voxels.device.type, enabled=False):  # sums over many sites: fp32
            return self._encode(voxels.float(), coors, batch_size)

    def _encode(self, voxels: torch.Tensor, coors: torch.Tensor, batch_size: int) -> torch.Tensor:
        f = voxels if self.input_scale is None else voxels / self.input_scale
        x = SparseTensor(f, coors, self.sparse_shape, batch_size)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = relu(conv(x), None if isinstance(norm, nn.Identity) else norm)
        return dense_bev(x)


def export_encoder(encoder: SparseEncoder, voxels: torch.Tensor, coors: torch.Tensor, path: Path,
                   output: str = "lidar_pillars") -> None:  # fmt: skip
    encoder.eval()
    torch.onnx.export(
        encoder, (voxels, coors), str(path), input_names=["voxels", "coors"], output_names=[output],
        dynamic_axes={"voxels": {0: "voxels_num"}, "coors": {0: "voxels_num"}}, opset_version=17, dynamo=False,
        custom_opsets={DOMAIN: 1},
    )  # fmt: skip


def main() -> None:
    from bevfusion_ros.core.model import VoxelGrid
    from bevfusion_ros.core.pipeline.voxels import voxelize
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, required=True, help="the nuScenes frame directory (../shared/data/...)")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.onnx and OUT.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    # the reference model's LiDAR range on 0.4 x 0.4 x 2 m voxels: 4 x 256 x 256 (test/model_variants.py)
    grid = VoxelGrid((-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), (0.4, 0.4, 2.0))
    points = np.asarray(load_frame(args.frame, decode_images=False).points, np.float32)[:, :4]
    vox = voxelize(points, grid, max_points=10, max_voxels=60000, reduce="mean")
    encoder = SparseEncoder(4, grid.shape, ENCODER_LAYERS).eval()
    voxels, coors = torch.from_numpy(vox.features), torch.from_numpy(vox.coords)
    with torch.no_grad():
        bev = encoder(voxels, coors)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_encoder(encoder, voxels, coors, args.out.with_suffix(".onnx"))
    np.savez_compressed(args.out.with_suffix(".npz"), voxels=vox.features, coors=vox.coords, lidar_pillars=bev.numpy())
    print(f"{len(vox.coords)} voxels -> {tuple(bev.shape)}, {(bev != 0).sum().item()} non-zero; wrote {args.out}.*")


if __name__ == "__main__":
    main()
