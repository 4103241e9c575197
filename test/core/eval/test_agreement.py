"""Per-frame matching, run-to-run agreement, bounded best/worst keeping and release gates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bevfusion_ros.core.eval.agreement import (
    AgreementSummary,
    Extremes,
    check_gates,
    frame_agreement,
    frame_quality,
    match_boxes,
    seg_iou,
    yaw_difference,
)
from bevfusion_ros.core.model import Grid
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation

NAMES = ("car", "pedestrian")


def dets(rows: list[tuple[float, float, float, int]], yaw: float = 0.0) -> Detections:
    """(x, y, score, label) rows."""
    a = np.asarray(rows, np.float64).reshape(-1, 4)
    n = len(a)
    return Detections.create(
        np.c_[a[:, :2], np.zeros(n)],
        np.tile([4.0, 2.0, 1.5], (n, 1)),
        np.full(n, yaw),
        a[:, 2],
        a[:, 3].astype(int),
        NAMES,
    )


def test_greedy_matching_by_score_same_class_within_distance() -> None:
    a = dets([(0, 0, 0.9, 0), (0.5, 0, 0.8, 0), (10, 0, 0.7, 1), (20, 0, 0.6, 0)])
    b = dets([(0.4, 0, 1.0, 0), (10, 0, 1.0, 0), (21.5, 0, 1.0, 0)])
    m = match_boxes(a, b)
    # the 0.9 box takes the only nearby car; the 0.8 box finds none left; the pedestrian does not match a car
    assert dict(zip(m.a.tolist(), m.b.tolist(), strict=True)) == {0: 0, 3: 2}
    np.testing.assert_allclose(m.distance, [0.4, 1.5])
    assert match_boxes(a, b, max_dist=1.0).matched == 1


def test_matching_compares_class_names_not_label_indices() -> None:
    a = dets([(0, 0, 0.9, 1)])
    other = Detections.create([[0, 0, 0]], [[1, 1, 1]], [0], [1.0], [0], ("pedestrian", "car"))
    assert match_boxes(a, other).matched == 1


def test_yaw_difference_wraps() -> None:
    np.testing.assert_allclose(
        yaw_difference([3.1, -3.1, 0.0], [-3.1, 3.1, 2 * np.pi]), [2 * np.pi - 6.2] * 2 + [0], atol=1e-9
    )


def test_frame_quality_counts_at_the_score_threshold() -> None:
    gt = dets([(0, 0, 1, 0), (10, 0, 1, 0), (20, 0, 1, 1)])
    pred = dets([(0.2, 0, 0.9, 0), (10, 0, 0.1, 0), (30, 0, 0.8, 1)])  # one hit, one too unsure, one false
    q = frame_quality(gt, pred)
    assert (q.tp, q.fp, q.fn) == (1, 1, 2)
    assert q.f1 == pytest.approx(2 / 5)  # 2 tp / (2 tp + fp + fn)
    assert frame_quality(dets([]), dets([])).f1 == 1.0


def grid_seg(masks: np.ndarray) -> Segmentation:
    return Segmentation(masks.astype(np.float32), ("road", "walk"), Grid(0, 0, 4, 4, 1))


def test_agreement_between_two_runs() -> None:
    a = dets([(0, 0, 0.9, 0), (10, 0, 0.5, 1), (20, 0, 0.4, 0)])
    b = dets([(0.3, 0, 0.8, 0), (10, 0.1, 0.6, 1), (30, 0, 0.7, 0)], yaw=0.1)
    m1 = np.zeros((2, 4, 4))
    m1[0, :2] = 1
    m2 = m1.copy()
    m2[0, 2] = 1  # road: 8 vs 12 cells -> IoU 2/3; walk empty in both -> NaN
    f = frame_agreement(7, a, b, grid_seg(m1), grid_seg(m2))
    assert (f.n_a, f.n_b, f.matched) == (3, 3, 2)
    np.testing.assert_allclose(np.sort(f.score_delta), [-0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(f.yaw_rad, 0.1, atol=1e-6)
    assert f.seg_iou["road"] == pytest.approx(2 / 3) and math.isnan(f.seg_iou["walk"])
    assert f.agreement == pytest.approx(4 / 6)
    assert len(f.score_pairs) == 4 and {tuple(p) for p in f.score_pairs[2:].round(3)} == {(0.4, 0.0), (0.0, 0.7)}
    s = AgreementSummary()
    s.add(f)
    s.add(frame_agreement(8, dets([]), dets([])))
    out = s.summary()
    assert out["frames"] == 2 and out["a_found_in_b"] == pytest.approx(2 / 3)
    assert out["worst_frames"][0] == {"stamp_ns": 7, "agreement": pytest.approx(4 / 6)}
    assert out["seg_iou"]["road"] == pytest.approx(2 / 3)


def test_score_pairs_stay_bounded() -> None:
    s = AgreementSummary()
    a = dets([(float(i) * 3, 0, 0.5, 0) for i in range(100)])
    for k in range(300):
        s.add(frame_agreement(k, a, a))
    assert s.matched == 30_000 and len(s.pairs) <= 20_000


def test_seg_iou_rejects_other_grids() -> None:
    with pytest.raises(ValueError, match="grids differ"):
        seg_iou(
            grid_seg(np.zeros((2, 4, 4))),
            Segmentation(np.zeros((2, 3, 3), np.float32), ("r", "w"), Grid(0, 0, 3, 3, 1)),
        )


def test_extremes_keep_only_the_k_lowest_and_highest() -> None:
    e: Extremes[str] = Extremes(2)
    rng = np.random.default_rng(0)
    keys = rng.permutation(50).astype(float)
    for k in keys:
        e.add(k, f"f{int(k)}")
    assert [it for _, it in e.lowest()] == ["f0", "f1"]
    assert [it for _, it in e.highest()] == ["f49", "f48"]


def test_gates() -> None:
    runs = [
        {"name": "fp32", "mean_ap": 0.50, "p99_ms": 90.0},
        {"name": "int8", "mean_ap": 0.48, "p99_ms": 60.0},
        {"name": "bad", "mean_ap": 0.40, "p99_ms": 120.0},
    ]
    g = {(x.name, x.run): x for x in check_gates(runs, min_map=0.45, max_map_drop_pct=5, max_p99_ms=100)}
    assert g["min_map", "fp32"].passed and g["min_map", "int8"].passed and not g["min_map", "bad"].passed
    assert g["max_map_drop", "int8"].passed and g["max_map_drop", "int8"].value == pytest.approx(4.0)
    assert not g["max_map_drop", "bad"].passed and ("max_map_drop", "fp32") not in g
    assert not g["max_p99_ms", "bad"].passed and g["max_p99_ms", "fp32"].passed
    assert check_gates(runs) == []
    # a gate that cannot be checked fails
    blind = check_gates([{"name": "x", "mean_ap": None, "p99_ms": None}], min_map=0.1, max_p99_ms=10)
    assert [x.passed for x in blind] == [False, False] and "no ground truth" in blind[0].text
