"""This package's CUDA kernels side by side with NVIDIA CUDA-BEVFusion's, in one run on the same GPU,
stream and inputs: camera normalisation, bevpool, voxelisation (and the peer's camera geometry, which
has no GPU twin here). Per kernel: median and p99 GPU time, ours / theirs, and how far the outputs
agree. The peer's sources are compiled here into a harness library (benchmarks/peer/, never the
product); on the lent GPU machine copy ../shared/peers/cuda_bevfusion into a carried folder first.

    python3 benchmarks/peer_kernels.py --peer .carry/peers/cuda_bevfusion --frame .carry/frame_decoded.npz --out DIR
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from timing import decoded_frame, densified, gpu_times  # benchmarks/, the script's own folder

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.kernels import CudaBevPool, CudaImagePreprocessor, upload
from bevfusion_ros.core.cuda.voxels import CudaVoxelizer
from bevfusion_ros.core.model import VoxelGrid, load_model
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor
from bevfusion_ros.core.sensors.rig import CameraRig

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "peer" / "cuda_bevfusion_shim.cu"
PEER_UNITS = ("camera-normalization", "camera-geometry", "camera-bevpool", "lidar-voxelization")
VP = ctypes.c_void_p


def build_peer(peer: Path, build: Path) -> ctypes.CDLL:
    src = peer / "CUDA-BEVFusion" / "src"
    lib = build / "libpeer_cuda_bevfusion.so"
    build.mkdir(parents=True, exist_ok=True)
    units = [str(SHIM), *(str(src / "bevfusion" / f"{u}.cu") for u in PEER_UNITS), str(src / "common" / "tensor.cu")]
    cmd = ["nvcc", "-O3", "-std=c++17", "-arch=sm_90", "-shared", "-Xcompiler", "-fPIC", f"-I{src}", *units]
    subprocess.run([*cmd, "-o", str(lib)], check=True)
    dll = ctypes.CDLL(str(lib))
    for name in (
        "peer_normalization_create",
        "peer_normalization_forward",
        "peer_voxelization_create",
        "peer_voxelization_features",
        "peer_voxelization_indices",
        "peer_bevpool_create",
        "peer_bevpool_forward",
        "peer_geometry_create",
    ):
        getattr(dll, name).restype = VP
    for name in ("peer_voxelization_forward", "peer_geometry_num_intervals"):
        getattr(dll, name).restype = ctypes.c_uint
    return dll


def floats(*v: float) -> Any:
    return (ctypes.c_float * len(v))(*v)


def read(ptr: int, shape: tuple[int, ...], dtype: Any, s: cuda.Stream) -> np.ndarray:
    host = cuda.HostBuffer(shape, dtype)
    if host.array.size:
        cuda.copy_to_host(host.array, cuda.DeviceView(int(ptr), host.array.nbytes), s)
        s.synchronize()
    return np.array(host.array)


def row(name: str, ours: dict[str, float], theirs: dict[str, float], **extra: Any) -> dict[str, Any]:
    return {"kernel": name, "ours": ours, "theirs": theirs, "ratio": ours["median_ms"] / theirs["median_ms"], **extra}


def images_row(dll: ctypes.CDLL, spec: Any, images: list[np.ndarray], s: cuda.Stream, n: int) -> dict[str, Any]:
    """Upload of 6 page-locked uint8 BGR images + resize/crop/normalise to fp16 planar, both sides."""
    cfg = spec.image
    h, w = images[0].shape[:2]
    ours = CudaImagePreprocessor(cfg, input_order="bgr", out_dtype="float16")
    pinned = [cuda.HostBuffer(im.shape, np.uint8) for im in images]
    for p, im in zip(pinned, images, strict=True):
        np.copyto(p.array, im)
    devs = [cuda.DeviceBuffer(im.nbytes) for im in images]
    out = cuda.DeviceBuffer(len(images) * ours.plane_bytes)

    def ours_launch() -> None:
        for i, (d, p) in enumerate(zip(devs, pinned, strict=True)):
            cuda.copy_to_device(d, p.array, s)
            ours.launch(d, w, h, out.ptr + i * ours.plane_bytes, s)

    t = ImagePreprocessor(cfg).transform(w, h)
    swap = int(cfg.channel_order == "rgb")  # the frame's images are BGR
    peer = dll.peer_normalization_create(
        w,
        h,
        len(images),
        cfg.input_width,
        cfg.input_height,
        ctypes.c_float(t.scale),
        floats(*(m / 255 for m in cfg.mean)),  # the peer scales pixels by 1/255 before (x - mean) / std
        floats(*(d / 255 for d in cfg.std)),
        swap,
    )
    ptrs = (ctypes.c_void_p * len(images))(*(p.array.ctypes.data for p in pinned))
    peer_out = [0]

    def theirs_launch() -> None:
        peer_out[0] = dll.peer_normalization_forward(VP(peer), ptrs, VP(s.handle))

    r = row(
        "camera normalisation (6 x 1600x900 uint8 -> fp16 3x256x704, upload included)",
        gpu_times(ours_launch, s, n),
        gpu_times(theirs_launch, s, n),
    )
    shape = (len(images), 3, cfg.input_height, cfg.input_width)
    a = read(out.ptr, shape, np.float16, s).astype(np.float32)
    b = read(peer_out[0], shape, np.float16, s).astype(np.float32)
    r["max_abs_diff"], r["mean_abs_diff"] = float(np.abs(a - b).max()), float(np.abs(a - b).mean())
    r["note"] = "ours block-averages by 2 before the bilinear taps (anti-aliased); the peer samples bilinear directly"
    dll.peer_normalization_free(VP(peer))
    for buf in (*devs, out):
        buf.free()
    return r


def bevpool_row(dll: ctypes.CDLL, spec: Any, rig: CameraRig, s: cuda.Stream, n: int) -> list[dict[str, Any]]:
    """The same index (this package's, from the real rig) pooled by both kernels at CUDA-BEVFusion's
    size: 6 x 80 x 32 x 88 features, 118 depth bins, 360 x 360 cells."""
    import time

    pre = ImagePreprocessor(spec.image)
    transforms = [pre.transform(ww, hh) for ww, hh in rig.image_sizes()]
    t0 = time.perf_counter()
    index = BevPoolIndex.create(rig, transforms, spec.image, spec.camera_bev)
    index_ms = (time.perf_counter() - t0) * 1e3
    ncam, d, (fh, fw), (ny, nx), c = index.n_cameras, index.depth_bins, index.feature_hw, index.grid_hw, 80
    rng = np.random.default_rng(0)
    feat = rng.random((1, ncam, c, fh, fw), np.float32)
    logits = rng.normal(0, 2, (1, ncam, d, fh, fw)).astype(np.float32)
    depth = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    # both sides read the same fp16-rounded values; ours in float32
    feat, depth = feat.astype(np.float16).astype(np.float32), depth.astype(np.float16).astype(np.float32)
    ours = CudaBevPool(index, c, s)
    f_dev, d_dev = upload(feat, s), upload(depth, s)
    out = cuda.DeviceBuffer(ours.out_bytes)
    ours_t = gpu_times(lambda: ours.launch(f_dev.ptr, d_dev.ptr, out.ptr, s), s, n)
    ends = np.r_[index.interval_starts[1:], index.points]
    intervals = np.stack([index.interval_starts, ends, index.interval_cells], axis=1).astype(np.int32)
    pf = upload(np.ascontiguousarray(feat[0].transpose(0, 2, 3, 1)).astype(np.float16), s)  # N, fH, fW, C
    pd = upload(depth.astype(np.float16), s)
    pi, piv = upload(index.depth_index.astype(np.uint32), s), upload(intervals, s)
    peer = dll.peer_bevpool_create(ncam, c, d, fh, fw, nx, ny)
    peer_out = [0]

    def theirs_launch() -> None:
        peer_out[0] = dll.peer_bevpool_forward(
            VP(peer), VP(pf.ptr), VP(pd.ptr), VP(pi.ptr), VP(piv.ptr), ctypes.c_uint(len(intervals)), VP(s.handle)
        )

    r = row(
        f"bevpool ({index.points} frustum points, {len(intervals)} cells, 80 ch)",
        ours_t,
        gpu_times(theirs_launch, s, n),
    )
    a = read(out.ptr, (c, ny, nx), np.float32, s)
    b = read(peer_out[0], (c, ny, nx), np.float16, s).astype(np.float32)
    r["max_abs_diff"] = float(np.abs(a - b).max())
    r["max_rel_diff"] = float((np.abs(a - b) / np.maximum(np.abs(a), 1e-3)).max())
    r["note"] = "ours reads fp32 features and writes fp32; the peer reads and writes fp16 (half the bytes)"
    # the fp16 path: the same half inputs as the peer's, ours still channel-major (an engine's NCHW
    # output, transposed inside the launch), sums in float32, half out
    ours16 = CudaBevPool(index, c, s, dtype="float16")
    f16, d16 = upload(feat.astype(np.float16), s), upload(depth.astype(np.float16), s)
    out16 = cuda.DeviceBuffer(ours16.out_bytes)
    r16 = row(
        f"bevpool fp16 ({index.points} frustum points, {len(intervals)} cells, 80 ch)",
        gpu_times(lambda: ours16.launch(f16.ptr, d16.ptr, out16.ptr, s), s, n),
        gpu_times(theirs_launch, s, n),
    )
    a16 = read(out16.ptr, (c, ny, nx), np.float16, s).astype(np.float32)
    r16["max_abs_diff"] = float(np.abs(a16 - b).max())
    r16["max_rel_diff"] = float((np.abs(a16 - b) / np.maximum(np.abs(a), 1e-3)).max())
    r16["max_rel_diff_vs_ours_fp32"] = float((np.abs(a16 - a) / np.maximum(np.abs(a), 1e-3)).max())
    r16["note"] = "both read and write fp16; ours includes its NCHW -> pixel-major transpose"
    dll.peer_bevpool_free(VP(peer))
    for buf in (f_dev, d_dev, out, pf, pd, pi, piv, f16, d16, out16):
        buf.free()
    ours.free()
    ours16.free()
    geometry = geometry_row(dll, spec, rig, transforms, s, n)
    geometry["ours_cpu_ms"] = index_ms
    geometry["ours_cells"] = len(intervals)
    return [r, r16, geometry]


def geometry_row(
    dll: ctypes.CDLL, spec: Any, rig: CameraRig, transforms: list[Any], s: cuda.Stream, n: int
) -> dict[str, Any]:
    """The peer's camera geometry (frustum -> sorted BEV ranks) on the GPU. Ours is numpy, once per
    calibration at configure, not per frame: no GPU twin to compare."""
    cfg, bev = spec.image, spec.camera_bev
    g = bev.grid
    bounds = floats(
        g.xmin, g.xmax, g.resolution, g.ymin, g.ymax, g.resolution, bev.zmin, bev.zmax, bev.zmax - bev.zmin, *bev.depth
    )
    fh, fw = cfg.input_height // cfg.feature_stride, cfg.input_width // cfg.feature_stride
    peer = dll.peer_geometry_create(bounds, g.nx, g.ny, 1, fw, fh, cfg.input_width, cfg.input_height, len(rig))
    cam2lidar = np.stack([np.linalg.inv(m) for m in rig.lidar2cam]).astype(np.float32)
    intr = np.tile(np.eye(4, dtype=np.float32), (len(rig), 1, 1))
    aug = np.tile(np.eye(4, dtype=np.float32), (len(rig), 1, 1))
    for i, (cam, t) in enumerate(zip(rig.intrinsics, transforms, strict=True)):
        intr[i, :3, :3] = cam.K
        aug[i, 0, 0] = aug[i, 1, 1] = t.scale
        aug[i, 1, 3] = -t.crop_top
    mats = [np.ascontiguousarray(m) for m in (cam2lidar, intr, aug)]

    def theirs_launch() -> None:
        dll.peer_geometry_update(VP(peer), *(VP(m.ctypes.data) for m in mats), VP(s.handle))

    theirs = gpu_times(theirs_launch, s, n)
    cells = int(dll.peer_geometry_num_intervals(VP(peer)))
    dll.peer_geometry_free(VP(peer))
    return {"kernel": "camera geometry (frustum -> BEV intervals)", "theirs": theirs, "theirs_cells": cells}


def voxel_row(dll: ctypes.CDLL, points: np.ndarray, label: str, s: cuda.Stream, n: int) -> dict[str, Any]:
    """CUDA-BEVFusion's VoxelNet voxelisation (0.075 x 0.075 x 0.2 m, mean of <= 10 points, <= 160k
    voxels) of the same fp16-rounded points: the peer reads fp16, ours the same values in fp32."""
    grid = VoxelGrid((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), (0.075, 0.075, 0.2))
    half = np.ascontiguousarray(points, np.float16)
    pts = half.astype(np.float32)
    ours = CudaVoxelizer(grid, 10, 160000, "mean", pts.shape[1], capacity=len(pts))
    p_dev, h_dev = upload(pts, s), upload(half, s)
    count = [ours.launch(p_dev.ptr, len(pts), s)]
    ours_t = gpu_times(lambda: count.__setitem__(0, ours.launch(p_dev.ptr, len(pts), s)), s, n)
    r0, r1 = grid.point_cloud_range[:3], grid.point_cloud_range[3:]
    peer = dll.peer_voxelization_create(
        floats(*r0), floats(*r1), floats(*grid.voxel_size), pts.shape[1], 160000, 10, len(pts)
    )
    got = [0]

    def theirs_launch() -> None:
        got[0] = dll.peer_voxelization_forward(VP(peer), VP(h_dev.ptr), len(pts), VP(s.handle))

    r = row(f"voxelisation, {label} ({len(pts)} points)", ours_t, gpu_times(theirs_launch, s, n))
    m = count[0].voxels
    ours_xyz = read(ours.coords.ptr, (m, 4), np.int32, s)[:, [3, 2, 1]]  # (b, z, y, x) -> x, y, z
    ours_f = read(ours.features.ptr, (m, pts.shape[1]), np.float32, s)
    k = int(got[0])
    their_xyz = read(dll.peer_voxelization_indices(VP(peer)), (k, 4), np.uint32, s)[:, 1:].astype(np.int64)
    their_f = read(dll.peer_voxelization_features(VP(peer)), (k, pts.shape[1]), np.float16, s).astype(np.float32)
    _, ny, nx = grid.shape

    def keyed(xyz: np.ndarray) -> np.ndarray:
        return (xyz[:, 2].astype(np.int64) * ny + xyz[:, 1]) * nx + xyz[:, 0]

    ka, kb = keyed(ours_xyz), keyed(their_xyz)
    common, ia, ib = np.intersect1d(ka, kb, return_indices=True)
    # the peer keeps whichever 10 points arrive first (atomics): compare means where no point was cut
    counts = read(ours.num_points.ptr, (m,), np.int32, s)
    uncut = counts[ia] < 10
    diff = np.abs(ours_f[ia][uncut, :3] - their_f[ib][uncut, :3])
    r.update(
        ours_voxels=m,
        theirs_voxels=k,
        same_voxels=int(common.size),
        mean_xyz_max_abs_diff=float(diff.max()) if diff.size else 0.0,
    )
    r["note"] = "ours numbers voxels by first point (deterministic, as the numpy reference); the peer by atomics"
    dll.peer_voxelization_free(VP(peer))
    for buf in (p_dev, h_dev):
        buf.free()
    ours.free()
    return r


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"Device: {res['device']}. Median / p99 GPU time (CUDA events on one stream) over {res['repeats']} runs.",
        "",
        "| kernel | ours median / p99 ms | CUDA-BEVFusion median / p99 ms | ours / theirs | outputs |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        if "ours" not in r:
            t = r["theirs"]
            lines.append(
                f"| {r['kernel']} | numpy on the CPU once per calibration: {r['ours_cpu_ms']:.0f} ms "
                f"({r['ours_cells']} cells) | {t['median_ms']:.3f} / {t['p99_ms']:.3f} "
                f"({r['theirs_cells']} cells) | n/a | |"
            )
            continue
        agree = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in r.items()
            if k not in ("kernel", "ours", "theirs", "ratio", "note")
        )
        lines.append(
            f"| {r['kernel']} | {r['ours']['median_ms']:.3f} / {r['ours']['p99_ms']:.3f} | "
            f"{r['theirs']['median_ms']:.3f} / {r['theirs']['p99_ms']:.3f} | {r['ratio']:.2f} | {agree} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", type=Path, required=True, help="a copy of ../shared/peers/cuda_bevfusion")
    ap.add_argument("--frame", required=True, help="decoded real frame .npz (scripts/export_gpu_frame.py)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--build", type=Path, default=Path("/tmp/peer_build"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dll = build_peer(args.peer, args.build)
    images, sweep, rig = decoded_frame(args.frame)
    spec = load_model(REPO / "engines" / "cuda_bevfusion.example.yaml", check_files=False)
    ctx = cuda.CudaContext(0)
    res: dict[str, Any] = {"device": ctx.name, "repeats": args.repeats, "rows": []}
    with ctx.active():
        s = cuda.Stream()
        res["rows"].append(images_row(dll, spec, images, s, args.repeats))
        res["rows"] += bevpool_row(dll, spec, rig, s, args.repeats)
        one = np.concatenate([sweep, np.zeros((len(sweep), 1), np.float32)], axis=1)
        res["rows"].append(voxel_row(dll, one, "the real sweep", s, args.repeats))
        res["rows"].append(voxel_row(dll, densified(sweep), "the real sweep densified to 10 sweeps", s, args.repeats))
    ctx.release()
    (args.out / "peer_kernels.json").write_text(json.dumps(res, indent=1))
    (args.out / "peer_kernels.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
