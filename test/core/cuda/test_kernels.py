"""core/cuda/kernels.py and core/cuda/streamed.py on a real CUDA GPU, against the numpy reference, on the
real nuScenes frame (skips where pycuda or a GPU is absent, as in CI). The frame comes from
BEVFUSION_GPU_FRAME (an npz of the decoded frame, see scripts/gpu_tests.sh) or the shared frame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.cuda_io import from_device

from bevfusion_ros.core.cuda import driver as cuda
from bevfusion_ros.core.cuda.kernels import upload
from bevfusion_ros.core.model import load_model
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    return load_model(REPO / "engines" / "reference" / "model.yaml")


@pytest.fixture(scope="module")
def real():  # type: ignore[no-untyped-def]
    path = os.environ.get("BEVFUSION_GPU_FRAME", "")
    if not path or not Path(path).is_file():
        pytest.skip("set BEVFUSION_GPU_FRAME to the decoded real frame (.npz)")
    z = np.load(path)
    names = tuple(str(n) for n in z["names"])
    rig = CameraRig.create(
        names,
        [CameraIntrinsics.from_arrays(k, int(w), int(h)) for k, (w, h) in zip(z["K"], z["wh"], strict=True)],
        list(z["lidar2cam"]),
    )
    return list(z["images"]), z["points"], rig


@pytest.mark.parametrize("out_dtype", ["float32", "float16"])
def test_image_kernel_matches_numpy_on_real_cameras(ctx, spec, real, out_dtype: str) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.cuda.kernels import CudaImagePreprocessor

    images, _, _ = real
    s = cuda.Stream()
    k = CudaImagePreprocessor(spec.image, "bgr", out_dtype)
    ref = ImagePreprocessor(spec.image, "bgr")
    h, w = spec.image.input_height, spec.image.input_width
    worst = 0.0
    for img in images:
        dev = upload(np.ascontiguousarray(img), s)
        out = cuda.DeviceBuffer(k.plane_bytes)
        k.launch(dev, img.shape[1], img.shape[0], out.ptr, s)
        got = from_device(out, (3, h, w), np.dtype(out_dtype).type, s).astype(np.float32)
        want = np.empty((3, h, w), np.float32)
        ref.one(img, want)
        worst = max(worst, float(np.abs(got - want).max()))
    print(f"\nimage kernel ({out_dtype}) vs numpy, 6 real cameras: max |diff| = {worst:.3g}")
    assert worst <= (1e-5 if out_dtype == "float32" else 2e-2)


def test_pillar_kernel_matches_numpy_with_bad_points(ctx, spec, real) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.cuda.kernels import CudaPillarizer

    _, points, _ = real
    pts = np.ascontiguousarray(points[:, :4], np.float32).copy()
    pts[::97, 0] = np.nan  # non-finite and out-of-range points must be dropped as numpy drops them
    pts[::89, 2] = 40.0
    s = cuda.Stream()
    k = CudaPillarizer(spec.lidar)
    dev = upload(pts, s)
    out = cuda.DeviceBuffer(k.out_bytes)
    k.launch(dev, pts.shape[0], out.ptr, s)
    g = spec.lidar.grid
    got = from_device(out, (1, 5, g.ny, g.nx), np.float32, s)
    want = pillarize(crop_points(pts, spec.lidar), spec.lidar)
    diff = np.abs(got - want)
    print(
        f"\npillar kernel vs numpy ({pts.shape[0]} points): max |diff| = {diff.max():.3g}, "
        f"occupied cells {int((want[0, 0] > 0).sum())} vs {int((got[0, 0] > 0).sum())}"
    )
    np.testing.assert_array_equal(got[0, 0] > 0, want[0, 0] > 0)
    np.testing.assert_array_equal(got[0, 1], want[0, 1])  # max and min are exact
    np.testing.assert_array_equal(got[0, 3], want[0, 3])
    assert diff.max() <= 1e-5  # means: float atomics add in another order than numpy
    k.free()


@pytest.mark.parametrize("masked", [(), (2, 4)])
def test_bevpool_kernel_matches_numpy(ctx, spec, real, masked: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.cuda.kernels import CudaBevPool

    _, _, rig = real
    pre = ImagePreprocessor(spec.image)
    index = BevPoolIndex.create(rig, [pre.transform(w, h) for w, h in rig.image_sizes()], spec.image, spec.camera_bev)
    rng = np.random.default_rng(0)
    feat = rng.standard_normal((1, 6, 32, 16, 44), np.float32)
    logits = rng.standard_normal((1, 6, 48, 16, 44)).astype(np.float32)
    depth = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).astype(np.float32)
    s = cuda.Stream()
    k = CudaBevPool(index, 32, s)
    f_dev, d_dev = upload(feat, s), upload(depth, s)
    out = cuda.DeviceBuffer(k.out_bytes)
    k.launch(f_dev.ptr, d_dev.ptr, out.ptr, s, masked)
    got = from_device(out, (1, 32, 128, 128), np.float32, s)
    ref_feat = feat.copy()
    ref_feat[:, list(masked)] = 0.0
    want = index(ref_feat, depth)
    diff = float(np.abs(got - want).max())
    print(f"\nbevpool kernel vs numpy ({index.points} frustum points, masked {masked}): max |diff| = {diff:.3g}")
    assert diff <= 1e-5
    k.free()


@pytest.mark.parametrize("masked", [(), (2, 4)])
def test_fp16_bevpool_kernel_matches_numpy_on_the_same_half_inputs(ctx, spec, real, masked) -> None:  # type: ignore[no-untyped-def]
    """The fp16 path reads half features and depth and writes half sums: against numpy in float32 on
    the same half-rounded inputs, each cell is off by at most its own half rounding (2^-11 relative)
    plus the float32 summation order."""
    from bevfusion_ros.core.cuda.kernels import CudaBevPool

    _, _, rig = real
    pre = ImagePreprocessor(spec.image)
    index = BevPoolIndex.create(rig, [pre.transform(w, h) for w, h in rig.image_sizes()], spec.image, spec.camera_bev)
    rng = np.random.default_rng(1)
    feat = rng.standard_normal((1, 6, 32, 16, 44)).astype(np.float16)
    logits = rng.standard_normal((1, 6, 48, 16, 44))
    depth = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).astype(np.float16)
    s = cuda.Stream()
    k = CudaBevPool(index, 32, s, dtype="float16")
    f_dev, d_dev = upload(feat, s), upload(depth, s)
    out = cuda.DeviceBuffer(k.out_bytes)
    k.launch(f_dev.ptr, d_dev.ptr, out.ptr, s, masked)
    got = from_device(out, (1, 32, 128, 128), np.float16, s).astype(np.float32)
    ref_feat = feat.astype(np.float32)
    ref_feat[:, list(masked)] = 0.0
    want = index(ref_feat, depth.astype(np.float32))
    err = np.abs(got - want) / np.maximum(np.abs(want), 1e-3)
    print(f"\nfp16 bevpool vs numpy (masked {masked}): max relative error {err.max():.3g}")
    assert err.max() <= 2e-3
    assert np.array_equal(got == 0, want == 0)  # the same cells empty (masked cameras add nothing)
    k.free()


def test_streamed_pipeline_pipelined_equals_sequential(ctx, spec, real) -> None:  # type: ignore[no-untyped-def]
    """Different frames in flight must never mix slots: the pipelined results of a sequence equal
    the sequential ones frame by frame (stand-in engines: deterministic GPU work, no TensorRT)."""
    from bevfusion_ros.core.cuda.kernels import StandInEngine
    from bevfusion_ros.core.cuda.streamed import StreamedPipeline
    from bevfusion_ros.core.model import ONNX

    images, points, rig = real
    engines = {st.name: StandInEngine(st, 4) for st in spec.stages if st.kind == ONNX}
    frames = []
    for i in range(6):  # each frame different: shifted points, a masked camera on frame 3
        p = points[:, :4].copy()
        p[:, 0] += i * 0.7
        imgs = [None if (i == 3 and c == 1) else np.roll(im, i * 5, axis=1) for c, im in enumerate(images)]
        frames.append((imgs, p))
    outs = {}
    for pipelined in (False, True):
        sp = StreamedPipeline(spec, engines, rig, pipelined=pipelined)
        res = [sp.submit(*f) for f in frames] + [sp.flush()]
        got = [r for r in res if r is not None]
        assert len(got) == len(frames)
        outs[pipelined] = [r.tensors for r in got]
        sp.free()
    # Float atomics in the pillar kernel add in a different order each run (~1e-7); a slot mix-up
    # would show the neighbouring frame, which differs by orders of magnitude more.
    for i, (a, b) in enumerate(zip(outs[False], outs[True], strict=True)):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-5, err_msg=f"frame {i} {name}")
    for i in range(len(frames) - 1):
        assert np.abs(outs[True][i]["heatmap"] - outs[True][i + 1]["heatmap"]).max() > 1e-3
