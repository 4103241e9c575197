"""CPU benchmark of the real-export LiDAR front ends (core/pipeline/voxels.py) and the sparse-
convolution CPU ops (core/pipeline/sparse_conv.py, a VoxelNet encoder's first submanifold layer
and first strided layer) on the real nuScenes sweep densified to ~300k points (10 copies, each
jittered, as 10 sweeps would be), each against a memcpy of the bytes it reads and writes. Goal:
voxelize and scatter within 10x of that memcpy.

    .venv/bin/python benchmarks/voxels.py [--frame ../shared/data/nuscenes_frame] [--repeats 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from timing import densified, median_ms  # benchmarks/, the script's own folder

from bevfusion_ros.core.model import VoxelGrid
from bevfusion_ros.core.pipeline.sparse_conv import SparseConvGeometry, implicit_gemm, rule_book
from bevfusion_ros.core.pipeline.voxels import pillar_features, scatter, voxelize
from bevfusion_ros.tools.data.nuscenes_frame import load_frame

REPO = Path(__file__).resolve().parents[1]
# CUDA-BEVFusion's VoxelNet grid and caps; PointPillars' 0.2 m pillars over the same range
VOXELNET = VoxelGrid((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), (0.075, 0.075, 0.2))
PILLARS = VoxelGrid((-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), (0.2, 0.2, 8.0))


def memcpy_ms(nbytes: int, repeats: int) -> float:
    src = np.ones(max(nbytes // 4, 1), np.float32)
    dst = np.empty_like(src)
    return median_ms(lambda: np.copyto(dst, src), repeats)


def sparse_rows(features: np.ndarray, coords: np.ndarray, repeats: int) -> list[tuple[str, float, int, str]]:
    """mmdet3d SparseEncoder's conv_input (submanifold 3x3x3, C -> 16) and first down-sampling layer
    (3x3x3 stride 2, 16 -> 32) on the VoxelNet voxels: the rule book, then the implicit GEMM."""
    rng = np.random.default_rng(1)
    rows = []
    subm = SparseConvGeometry(VOXELNET.shape, (3, 3, 3), padding=(1, 1, 1), subm=True)
    down = SparseConvGeometry(VOXELNET.shape, (3, 3, 3), (2, 2, 2), (1, 1, 1))
    x = features
    for name, geometry, c_out in (("submanifold 3x3x3", subm, 16), ("strided 3x3x3 /2", down, 32)):
        book = rule_book(coords, geometry)
        ms = median_ms(lambda g=geometry: rule_book(coords, g), repeats)
        moved = coords.nbytes + book.out_indices.nbytes + book.pair_fwd.nbytes
        rows.append((f"sparse rule book, {name}", ms, moved, f"{len(book.out_indices)} sites"))
        w = rng.standard_normal((c_out, *geometry.ksize, x.shape[1])).astype(np.float32)
        out = implicit_gemm(x, w, book.pair_fwd)
        ms = median_ms(lambda xx=x, ww=w, b=book: implicit_gemm(xx, ww, b.pair_fwd), repeats)
        moved = x.nbytes + w.nbytes + book.pair_fwd.nbytes + out.nbytes
        rows.append((f"implicit GEMM, {name} {x.shape[1]}->{c_out}", ms, moved, f"{out.shape}"))
        x = out
    return rows


def example_encoder_row(features: np.ndarray, coords: np.ndarray, repeats: int) -> tuple[str, float, int, str]:
    """engines/examples/cuda_bevfusion_tiny's whole sparse encoder (9 layers, ONNX Runtime + the CPU
    plugin ops) on the same voxels; its bytes: voxels in, the dense BEV map out."""
    from bevfusion_ros.core.model import load_model
    from bevfusion_ros.core.pipeline.backend import create_backend

    spec = load_model(REPO / "engines" / "examples" / "cuda_bevfusion_tiny" / "model.yaml")
    feeds = {"voxels": features, "coors": coords}
    with create_backend("onnxruntime", spec, spec.stage("lidar.backbone")) as encoder:
        out = encoder.infer(feeds)["lidar_feature"]
        ms = median_ms(lambda: encoder.infer(feeds), repeats)
    moved = features.nbytes + coords.nbytes + out.nbytes
    return ("example sparse encoder (9 layers, 5->64 ch)", ms, moved, f"{out.shape}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", type=Path, default=REPO.parent / "shared" / "data" / "nuscenes_frame")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sweep = np.asarray(load_frame(args.frame, decode_images=False).points, np.float32)[:, :4]
    pts5 = densified(sweep)  # x, y, z, intensity, time lag
    print(f"{len(pts5)} points ({len(sweep)} per sweep x 10), {pts5.nbytes / 1e6:.1f} MB")
    rows = []
    vox = voxelize(pts5, VOXELNET, 10, 160000, "mean")
    ms = median_ms(lambda: voxelize(pts5, VOXELNET, 10, 160000, "mean"), args.repeats)
    moved = pts5.nbytes + vox.features.nbytes + vox.coords.nbytes
    rows.append(("voxelize mean (VoxelNet 0.075 m)", ms, moved, f"{len(vox.coords)} voxels"))
    pil = voxelize(pts5, PILLARS, 32, 40000, "none")
    ms = median_ms(lambda: voxelize(pts5, PILLARS, 32, 40000, "none"), args.repeats)
    moved = pts5.nbytes + pil.features.nbytes + pil.coords.nbytes
    rows.append(("voxelize none (pillars 0.2 m, 32 points)", ms, moved, f"{len(pil.coords)} pillars"))
    feats = pillar_features(pil, PILLARS)
    ms = median_ms(lambda: pillar_features(pil, PILLARS), args.repeats)
    rows.append(("pillar features", ms, pil.features.nbytes + feats.nbytes, f"{feats.shape}"))
    learned = np.random.default_rng(0).standard_normal((len(pil.coords), 64)).astype(np.float32)
    bev = scatter(learned, pil.coords, PILLARS)
    ms = median_ms(lambda: scatter(learned, pil.coords, PILLARS), args.repeats)
    rows.append(("scatter 64 channels", ms, learned.nbytes + bev.nbytes, f"{bev.shape}"))
    rows += sparse_rows(vox.features, vox.coords, args.repeats)
    rows.append(example_encoder_row(vox.features, vox.coords, args.repeats))
    print(f"{'step':44s} {'ms':>8s} {'memcpy ms':>10s} {'ratio':>6s}  result")
    for name, took, nbytes, what in rows:
        copy = memcpy_ms(nbytes, args.repeats)
        print(f"{name:44s} {took:8.1f} {copy:10.2f} {took / copy:6.1f}  {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
