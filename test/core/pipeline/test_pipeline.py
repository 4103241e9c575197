"""The ONNX Runtime pipeline: golden outputs from PyTorch, pre-processing invariants, every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import golden

from bevfusion_ros.core.errors import CalibrationError, InputError
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden_reference.npz"
# every tensor the reference model's golden file holds (tolerances: helpers/golden.py)
TENSORS = (
    "images", "lidar_pillars", "camera_feature", "camera_depth", "camera_bev", "camera_bev_feature",
    "lidar_bev_feature", "fused", "heatmap", "reg", "height", "dim", "rot", "map_probs",
)  # fmt: skip


@pytest.fixture(scope="module")
def golden_run(frame_dir, spec, pipeline):  # type: ignore[no-untyped-def]
    g = np.load(GOLDEN)
    rig = frame_rig(frame_dir, spec.cameras, *scenes.RENDER_SIZE)
    pipeline.set_calibration(rig)
    sc = scenes.generate_scene(int(g["seed"]))
    result = pipeline(scenes.render_cameras(sc, rig, *scenes.RENDER_SIZE), scenes.lidar_sweep(sc), keep_tensors=True)
    return g, result


@pytest.mark.parametrize("name", TENSORS)
def test_onnxruntime_matches_pytorch_per_stage(golden_run, name: str) -> None:  # type: ignore[no-untyped-def]
    g, result = golden_run
    got = golden.assert_stage_matches(g, name, result.tensors[name])
    tol = golden.REL_TOL[name] * golden.scale(g, name) * 10
    assert got.mean() == pytest.approx(g[f"{name}/stats"][0], abs=tol)


def test_decoded_boxes_match_pytorch(golden_run) -> None:  # type: ignore[no-untyped-def]
    g, result = golden_run
    golden.assert_boxes_match(g, result.detections)
    assert set(result.timings_ms) >= {"camera.backbone", "camera.bevpool", "fuser", "head.bbox", "postprocess", "total"}


def test_the_model_detects_the_objects_of_a_held_out_scene(golden_run) -> None:  # type: ignore[no-untyped-def]
    g, result = golden_run
    gt = scenes.generate_scene(int(g["seed"])).boxes
    det = result.detections.select(result.detections.scores >= 0.3)
    cars = gt.centers[gt.labels == 0][:, :2]
    found = det.centers[det.labels == 0][:, :2]
    near = np.hypot(*(cars[:, None] - found[None]).transpose(2, 0, 1)).min(axis=1) < 2.0
    assert near.mean() >= 0.6, f"only {near.sum()} of {len(cars)} cars found within 2 m"


def test_full_and_quarter_resolution_cameras_give_the_same_input(spec) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (225, 400, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    pre = ImagePreprocessor(spec.image)
    a, b = pre([small] * 6, 6), pre([big] * 6, 6)
    assert np.abs(a - b).max() < 1e-4
    assert pre.transform(1600, 900).pool == 4 and pre.transform(400, 225).pool == 1


def test_bgr_input_is_swapped_to_the_networks_rgb(spec) -> None:  # type: ignore[no-untyped-def]
    img = np.zeros((225, 400, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    out = ImagePreprocessor(spec.image, "bgr")([img] * 6, 6)
    assert out[0, 0, 2].mean() > 2 and out[0, 0, 0].mean() < -1  # channel 2 (B in RGB) is bright


def test_pillars_summarise_points_per_cell(spec) -> None:  # type: ignore[no-untyped-def]
    pts = np.array([[0.1, 0.1, -1.0, 100], [0.2, 0.3, 1.0, 200], [10.0, -5.0, 0.0, 0]], np.float32)
    p = pillarize(crop_points(pts, spec.lidar), spec.lidar)[0]
    g = spec.lidar.grid
    ix, iy = int((0.1 - g.xmin) / g.resolution), int((0.1 - g.ymin) / g.resolution)
    assert p[0, iy, ix] == pytest.approx(np.log1p(2))
    assert p[1, iy, ix] == pytest.approx((1.0 + 5) / 8) and p[3, iy, ix] == pytest.approx((-1.0 + 5) / 8)
    assert p[4, iy, ix] == pytest.approx(150 / 255)
    assert (p[0] > 0).sum() == 2


def test_pillars_equal_a_point_by_point_reference(spec) -> None:  # type: ignore[no-untyped-def]
    """The scatter reductions against a plain loop over the points, many sharing cells."""
    rng = np.random.default_rng(3)
    r, g = spec.lidar.point_cloud_range, spec.lidar.grid
    pts = np.column_stack(
        [rng.uniform(-3, 3, 500), rng.uniform(-3, 3, 500), rng.uniform(r[2], r[5], 500), rng.uniform(0, 255, 500)]
    ).astype(np.float32)
    got = pillarize(crop_points(pts, spec.lidar), spec.lidar)[0].reshape(5, -1)
    cells: dict[int, list[tuple[float, float]]] = {}
    for x, y, z, i in pts:
        cell = int((y - g.ymin) / g.resolution) * g.nx + int((x - g.xmin) / g.resolution)
        cells.setdefault(cell, []).append((float((z - r[2]) / (r[5] - r[2])), float(i / spec.lidar.intensity_scale)))
    want = np.zeros_like(got)
    for cell, v in cells.items():
        zs, its = np.array(v).T
        want[:, cell] = np.log1p(len(zs)), zs.max(), zs.mean(), zs.min(), its.mean()
    assert max(len(v) for v in cells.values()) > 3
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_image_pooling_with_and_without_opencv_and_against_float_arithmetic(spec) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("cv2")
    img = np.random.default_rng(4).integers(0, 256, (900, 1600, 3), dtype=np.uint8)
    pre = ImagePreprocessor(spec.image)
    with_cv2, without = (np.empty((3, spec.image.input_height, spec.image.input_width), np.float32) for _ in "ab")
    pre.one(img, with_cv2, use_cv2=True)
    pre.one(img, without, use_cv2=False)
    np.testing.assert_array_equal(with_cv2, without)  # both pool in exact integers
    # the definition: block means in float64, bilinear taps, normalisation
    t, (x0, x1, wx), (y0, y1, wy) = pre._plan(1600, 900)
    k = t.pool
    pooled = img.reshape(900 // k, k, 1600 // k, k, 3).mean(axis=(1, 3))
    rows = pooled[y0] * (1 - wy)[:, None, None] + pooled[y1] * wy[:, None, None]
    full = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    mean, std = np.asarray(spec.image.mean), np.asarray(spec.image.std)
    want = ((full[..., pre._channels] - mean) / std).transpose(2, 0, 1)
    assert np.abs(with_cv2 - want).max() < 1e-4


@pytest.fixture
def calibrated(frame_dir, spec, pipeline):  # type: ignore[no-untyped-def]
    rig = frame_rig(frame_dir, spec.cameras, *scenes.RENDER_SIZE)
    pipeline.set_calibration(rig)
    sc = scenes.generate_scene(5)
    return pipeline, scenes.render_cameras(sc, rig, *scenes.RENDER_SIZE), scenes.lidar_sweep(sc)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("five_cameras", "expected 6 camera images"),
        ("wrong_size", "calibration is for 400x225"),
        ("grey", "HxWx3"),
        ("empty_cloud", "no finite points"),
        ("nan_cloud", "no finite points"),
        ("too_many_points", "more than lidar.max_points"),
        ("three_columns", "x, y, z, intensity"),
    ],
)
def test_bad_input_is_one_clear_error(calibrated, case: str, words: str) -> None:  # type: ignore[no-untyped-def]
    pipe, images, points = calibrated
    if case == "five_cameras":
        images = images[:5]
    elif case == "wrong_size":
        images = [*images[:5], np.zeros((900, 1600, 3), np.uint8)]
    elif case == "grey":
        images = [*images[:5], np.zeros((225, 400), np.uint8)]
    elif case == "empty_cloud":
        points = np.zeros((0, 4), np.float32)
    elif case == "nan_cloud":
        points = np.full((100, 4), np.nan, np.float32)
    elif case == "too_many_points":
        points = np.zeros((300_001, 4), np.float32)
    elif case == "three_columns":
        points = points[:, :3]
    with pytest.raises(InputError, match=words):
        pipe(images, points)


def test_running_without_calibration_or_with_other_cameras_is_refused(spec, rig) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.pipeline.pipeline import Pipeline
    from bevfusion_ros.core.sensors.rig import CameraRig

    p = Pipeline(spec)
    with pytest.raises(CalibrationError, match="no calibration"):
        p([], np.zeros((1, 4)))
    swapped = CameraRig.create(rig.names[::-1], rig.intrinsics[::-1], list(rig.lidar2cam[::-1]))
    with pytest.raises(CalibrationError, match="do not match the model's cameras"):
        p.set_calibration(swapped)


def test_image_too_wide_for_the_model_is_refused(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="aspect ratio is too wide"):
        ImagePreprocessor(spec.image).transform(1600, 300)


def test_null_backend_runs_the_whole_runtime_without_a_model(spec, rig) -> None:  # type: ignore[no-untyped-def]
    from bevfusion_ros.core.pipeline.pipeline import Pipeline

    with Pipeline(spec, "null") as p:
        p.set_calibration(rig)
        images = [np.zeros((h, w, 3), np.uint8) for w, h in rig.image_sizes()]
        r = p(images, np.array([[5.0, 0.0, 0.0, 10.0]] * 10, np.float32))
    assert set(r.timings_ms) >= {"camera.backbone", "camera.bevpool", "head.map", "total"}
    assert r.segmentation is not None and float(r.segmentation.probabilities.max()) == 0.0


def test_runtime_host_time_follows_stage_kinds_not_names(spec, rig) -> None:  # type: ignore[no-untyped-def]
    """Another model YAML may name its runtime stages differently; the host time still counts them."""
    import yaml

    from bevfusion_ros.core.model import parse_model
    from bevfusion_ros.core.pipeline.pipeline import Pipeline, runtime_ms

    raw = yaml.safe_load((spec.directory / "model.yaml").read_text())
    renames = {"image.preprocess": "cams.normalise", "camera.bevpool": "lss.splat", "lidar.pillarize": "pts.grid"}
    raw["stages"] = {renames.get(k, k): v for k, v in raw["stages"].items()}
    other = parse_model(raw, spec.directory)
    with Pipeline(other, "null") as p:
        p.set_calibration(rig)
        images = [np.zeros((h, w, 3), np.uint8) for w, h in rig.image_sizes()]
        r = p(images, np.array([[5.0, 0.0, 0.0, 10.0]] * 10, np.float32))
    own = sum(r.timings_ms[n] for n in renames.values()) + r.timings_ms["postprocess"]
    assert all(r.timings_ms[n] > 0 for n in renames.values())
    assert runtime_ms(other, r.timings_ms) == pytest.approx(own)
    assert runtime_ms(other, r.timings_ms) < r.timings_ms["total"]
