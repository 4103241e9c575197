"""Box decoding from constructed head outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bevfusion_ros.core.pipeline.postprocess import circle_nms, decode_boxes, decode_map

REFERENCE_MODEL = Path(__file__).resolve().parents[3] / "engines" / "reference" / "model.yaml"


def heads(spec, peaks):  # type: ignore[no-untyped-def]
    g = spec.post.out_grid
    out = {
        "heatmap": np.full((1, 10, g.ny, g.nx), -10.0, np.float32),
        "reg": np.zeros((1, 2, g.ny, g.nx), np.float32),
        "height": np.zeros((1, 1, g.ny, g.nx), np.float32),
        "dim": np.zeros((1, 3, g.ny, g.nx), np.float32),
        "rot": np.zeros((1, 2, g.ny, g.nx), np.float32),
    }
    for label, iy, ix, logit in peaks:
        out["heatmap"][0, label, iy, ix] = logit
        out["reg"][0, :, iy, ix] = (0.25, 0.75)
        out["height"][0, 0, iy, ix] = -1.0
        out["dim"][0, :, iy, ix] = np.log([4.5, 1.9, 1.6])
        out["rot"][0, :, iy, ix] = (1.0, 0.0)  # sin, cos -> yaw = pi/2
    return out


def test_centerpoint_decode_places_the_box(spec) -> None:  # type: ignore[no-untyped-def]
    det = decode_boxes(heads(spec, [(0, 70, 40, 3.0)]), spec.post, spec.class_names)
    g = spec.post.out_grid
    assert len(det) == 1 and det.label_names() == ["car"]
    assert det.centers[0] == pytest.approx(
        [(40 + 0.25) * g.resolution + g.xmin, (70 + 0.75) * g.resolution + g.ymin, -1]
    )
    assert det.sizes[0] == pytest.approx([4.5, 1.9, 1.6], rel=1e-5)
    assert det.yaw[0] == pytest.approx(np.pi / 2)
    assert det.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)


def test_threshold_and_nms(spec) -> None:  # type: ignore[no-untyped-def]
    # two cars 2 cells (1.6 m) apart: circle NMS (car radius 4 m) keeps the better one;
    # a pedestrian at the same place is another class and stays; a weak peak is under the threshold.
    det = decode_boxes(
        heads(spec, [(0, 60, 60, 2.0), (0, 60, 62, 1.0), (8, 60, 61, 1.5), (1, 10, 10, -4.0)]),
        spec.post,
        spec.class_names,
    )
    assert sorted(det.label_names()) == ["car", "pedestrian"]
    assert det.scores[det.labels == 0][0] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-5)


def test_circle_nms_is_per_class() -> None:
    c = np.array([[0, 0, 0], [1, 0, 0], [0.5, 0, 0], [10, 0, 0]], np.float32)
    keep = circle_nms(c, np.array([0.9, 0.8, 0.7, 0.6], np.float32), np.array([0, 0, 1, 0], np.int32), (2.0, 2.0))
    assert sorted(keep.tolist()) == [0, 2, 3]


def test_map_probabilities_keep_their_grid(spec) -> None:  # type: ignore[no-untyped-def]
    probs = np.random.default_rng(0).random((1, 6, 200, 200)).astype(np.float32)
    seg = decode_map(probs, spec.map)
    assert seg.probabilities.shape == (6, 200, 200) and seg.grid.resolution == 0.5
    assert seg.mask(0.5).sum() == (probs >= 0.5).sum()


def test_per_class_distance_binned_thresholds(spec) -> None:  # type: ignore[no-untyped-def]
    """Cars need 0.5 beyond 30 m, pedestrians 0.9 near and 0.2 far; other classes keep the global
    threshold. Each peak sits at its own place so NMS keeps them all."""
    import copy
    from dataclasses import replace

    import yaml

    from bevfusion_ros.core.model import parse_model

    raw = yaml.safe_load(REFERENCE_MODEL.read_text())
    raw["postprocess"]["score_thresholds"] = {
        "distances": [30.0],
        "classes": {"car": [0.1, 0.5], "pedestrian": [0.9, 0.2]},
    }
    tuned = parse_model(copy.deepcopy(raw), REFERENCE_MODEL.parent, check_files=False).post
    g = spec.post.out_grid
    near, far = int((0 - g.ymin) / g.resolution), int((40 - g.xmin) / g.resolution)  # ~0 m and ~40 m
    centre = int((0 - g.xmin) / g.resolution)
    logit = float(np.log(0.3 / 0.7))  # every peak scores 0.3
    peaks = [(0, near, centre + 10, logit), (0, near, far, logit), (8, near + 12, centre - 12, logit),
             (8, near + 12, far - 2, logit), (1, near - 14, centre + 5, logit)]  # fmt: skip
    got = decode_boxes(heads(spec, peaks), tuned, spec.class_names)
    ranges = np.hypot(got.centers[:, 0], got.centers[:, 1])
    kept = sorted(zip(got.label_names(), (ranges > 30).tolist(), strict=True))
    # car near (0.3 >= 0.1) kept, car far (0.3 < 0.5) dropped; pedestrian near dropped, far kept; truck kept
    assert kept == [("car", False), ("pedestrian", True), ("truck", False)]
    assert len(decode_boxes(heads(spec, peaks), replace(tuned, score_thresholds=None), spec.class_names)) == 5


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"distances": [30, 20]}, "distances must be ascending positive metres, got [30.0, 20.0]"),
        ({"classes": {"lorry": [0.1]}}, "classes names lorry; allowed: car, truck"),
        ({"distances": [30], "classes": {"car": [0.1]}}, "classes.car must be 2 thresholds in [0, 1]"),
        ({"classes": {"car": [1.5]}}, "classes.car must be 1 thresholds in [0, 1]"),
        ({"bins": [1]}, "must be a mapping with keys distances and classes"),
    ],
)
def test_bad_threshold_tables_name_the_key(table, fragment: str) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from bevfusion_ros.core.errors import ConfigError
    from bevfusion_ros.core.model import parse_model

    raw = yaml.safe_load(REFERENCE_MODEL.read_text())
    raw["postprocess"]["score_thresholds"] = table
    with pytest.raises(ConfigError) as err:
        parse_model(raw, REFERENCE_MODEL.parent, check_files=False)
    assert fragment in str(err.value)
