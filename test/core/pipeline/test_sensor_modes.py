"""Frames without a sensor: the missing branch is skipped and reaches the fuser as zeros (as in the
reference model's modality-dropout training), and a model not trained so refuses a frame without
a sweep. Checked against the fuser run by hand on the full frame's tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bevfusion_ros.core.errors import ConfigError, InputError
from bevfusion_ros.core.model import CAMERA, CAMERA_ONLY, FULL, LIDAR, LIDAR_ONLY, ModalityDropout, parse_model
from bevfusion_ros.core.pipeline.backend import create_backend
from bevfusion_ros.core.pipeline.pipeline import sensor_mode
from bevfusion_ros.core.yamlfile import load_yaml
from bevfusion_ros.tools.data import scenes
from bevfusion_ros.tools.data.nuscenes_frame import frame_rig


@pytest.fixture(scope="module")
def scene_frame(frame_dir, spec, pipeline):  # type: ignore[no-untyped-def]
    rig = frame_rig(frame_dir, spec.cameras, *scenes.RENDER_SIZE)
    pipeline.set_calibration(rig)
    sc = scenes.generate_scene(7)
    images = scenes.render_cameras(sc, rig, *scenes.RENDER_SIZE)
    return images, scenes.lidar_sweep(sc), pipeline(images, scenes.lidar_sweep(sc), keep_tensors=True)


def test_the_reference_model_declares_its_modality_dropout(spec) -> None:  # type: ignore[no-untyped-def]
    assert spec.modality_dropout == ModalityDropout(camera=0.1, lidar=0.1)
    assert spec.branch(LIDAR) == {"lidar.pillarize", "lidar.backbone"}
    assert spec.branch(CAMERA) == {"image.preprocess", "camera.backbone", "camera.bevpool", "camera.vtransform"}


def test_sensor_mode_of_a_frame() -> None:
    img = np.zeros((2, 2, 3), np.uint8)
    assert sensor_mode([img, None], np.zeros((1, 4))) == FULL
    assert sensor_mode([None, None], np.zeros((1, 4))) == LIDAR_ONLY
    assert sensor_mode([img, None], None) == CAMERA_ONLY
    assert sensor_mode([None, None], None) == CAMERA_ONLY


@pytest.mark.parametrize("mode", [CAMERA_ONLY, LIDAR_ONLY])
def test_a_lost_sensor_enters_the_fuser_as_zeros(scene_frame, spec, pipeline, mode: str) -> None:  # type: ignore[no-untyped-def]
    images, points, full = scene_frame
    if mode == CAMERA_ONLY:
        r = pipeline(images, None, keep_tensors=True)
        kept, zeroed, branch = "camera_bev_feature", "lidar_bev_feature", LIDAR
    else:
        r = pipeline([None] * len(images), points, keep_tensors=True)
        kept, zeroed, branch = "lidar_bev_feature", "camera_bev_feature", CAMERA
    assert r.mode == mode and full.mode == FULL
    assert not set(r.timings_ms) & spec.branch(branch)  # the lost branch did not run
    np.testing.assert_array_equal(r.tensors[kept], full.tensors[kept])
    with create_backend("onnxruntime", spec, spec.stage("fuser")) as fuser:
        feeds = {kept: full.tensors[kept], zeroed: np.zeros_like(full.tensors[zeroed])}
        want = fuser.infer(feeds)["fused"]
    np.testing.assert_allclose(r.tensors["fused"], want, rtol=1e-5, atol=1e-5)
    assert r.points_used == (0 if mode == CAMERA_ONLY else full.points_used)


def test_a_model_not_trained_without_lidar_refuses_a_frame_without_a_sweep(scene_frame, spec, pipeline) -> None:  # type: ignore[no-untyped-def]
    images, points, _ = scene_frame
    pipeline.spec = dataclasses.replace(spec, modality_dropout=ModalityDropout())
    try:
        with pytest.raises(InputError, match="not trained without LiDAR"):
            pipeline(images, None)
        # all cameras masked still runs through the camera branch (zero image features), as before
        r = pipeline([None] * len(images), points, keep_tensors=True)
        assert r.mode == LIDAR_ONLY and "camera.backbone" in r.timings_ms
    finally:
        pipeline.spec = spec


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"radar": 0.1}, "mapping of camera and/or lidar"),
        ({"lidar": 1.0}, r"modality_dropout.lidar must be in \[0, 1\)"),
        ({"camera": "often"}, "camera"),
    ],
)
def test_bad_modality_dropout_is_refused_at_load(spec, value: object, words: str) -> None:  # type: ignore[no-untyped-def]
    raw = dict(load_yaml(spec.directory / "model.yaml", "model YAML", ConfigError))
    raw["modality_dropout"] = value
    with pytest.raises(ConfigError, match=words):
        parse_model(raw, spec.directory)
