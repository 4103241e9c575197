"""Metrics against nuscenes-devkit on constructed cases: perfect = 1.0, known misses, map IoU by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bevfusion_ros.core.eval.metrics import DetectionEvaluator, MapIoU
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.tools.data.scenes import CLASS_NAMES


def one_of_each(n_per_class: int = 4, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    centers = np.c_[rng.uniform(-25, 25, (labels.size, 2)), np.zeros(labels.size)]
    centers[:, 0] += np.arange(labels.size) * 0.01  # no two boxes share a centre
    sizes = np.tile([4.0, 2.0, 1.5], (labels.size, 1))
    return Detections.create(
        centers,
        sizes,
        rng.uniform(-3, 3, labels.size),
        np.ones(labels.size),
        labels,
        CLASS_NAMES,
        np.zeros((labels.size, 2)),
    )


def test_perfect_predictions_score_one() -> None:
    ev = DetectionEvaluator(CLASS_NAMES)
    for k in range(3):
        gt = one_of_each(seed=k)
        ev.add(str(k), gt, gt)
    m = ev.compute()
    assert m["mean_ap"] == pytest.approx(1.0)
    for err in ("trans_err", "scale_err", "orient_err", "vel_err"):
        assert m["tp_errors"][err] == pytest.approx(0.0, abs=1e-9)


def test_missing_half_the_cars_gives_the_devkit_ap() -> None:
    gt = one_of_each(n_per_class=10)
    keep = ~((gt.labels == 0) & (np.arange(len(gt)) % 10 >= 5))
    ev = DetectionEvaluator(CLASS_NAMES)
    ev.add("a", gt, gt.select(keep))
    m = ev.compute()
    # Recall reaches 0.5 at precision 1: of the 90 recall points above min_recall 0.1, the 40 up to 0.5
    # keep precision 1, the rest are 0 -> AP = 40 * (1 - 0.1) / 90 / (1 - 0.1).
    for th in (0.5, 1.0, 2.0, 4.0):
        assert m["label_aps"]["car"][th] == pytest.approx(40 / 90, abs=1e-6)
    assert m["label_aps"]["truck"][2.0] == pytest.approx(1.0)


def test_offsets_count_only_beyond_their_distance_threshold() -> None:
    gt = one_of_each()
    shifted = Detections.create(
        gt.centers + np.array([0.7, 0, 0]), gt.sizes, gt.yaw, gt.scores, gt.labels, CLASS_NAMES, gt.velocities
    )
    ev = DetectionEvaluator(CLASS_NAMES)
    ev.add("a", gt, shifted)
    m = ev.compute()
    aps = m["label_aps"]["pedestrian"]
    assert aps[0.5] == pytest.approx(0.0) and aps[1.0] == pytest.approx(1.0) and aps[4.0] == pytest.approx(1.0)
    assert m["tp_errors"]["trans_err"] == pytest.approx(0.7, abs=1e-4)


def test_boxes_beyond_the_class_range_are_ignored() -> None:
    gt = Detections.create([[0, 45, 0]], [[0.4, 0.4, 1.0]], [0], [1], [9], CLASS_NAMES)  # a cone 45 m away
    ev = DetectionEvaluator(CLASS_NAMES)
    ev.add("a", gt, Detections.empty(CLASS_NAMES))
    assert ev.compute()["gt_boxes"] == 1  # counted as given, but the devkit never sees it (range 30 m)


def test_map_iou_by_hand() -> None:
    m = MapIoU(("a", "b"), thresholds=(0.5,))
    gt = np.zeros((2, 4, 4), bool)
    gt[0, :2] = True  # 8 cells
    p = np.zeros((2, 4, 4), np.float32)
    p[0, :1] = 0.9  # 4 true positives
    p[0, 3, :2] = 0.8  # 2 false positives
    m.add(p, gt)
    r = m.compute()
    assert r["iou"]["a"] == pytest.approx(4 / (4 + 2 + 4))
    assert np.isnan(r["iou"]["b"])  # never present, never predicted
    assert r["miou"] == pytest.approx(0.4)


def test_nds_is_the_devkit_composition_of_map_and_tp_errors() -> None:
    gt = one_of_each(n_per_class=6)
    moved = Detections.create(
        gt.centers + np.array([0.3, 0.4, 0]), gt.sizes, gt.yaw + 0.2, gt.scores, gt.labels, CLASS_NAMES, gt.velocities
    )
    ev = DetectionEvaluator(CLASS_NAMES)
    ev.add("a", gt, moved)
    m = ev.compute()
    tp = m["tp_errors"]
    assert tp["trans_err"] == pytest.approx(0.5, abs=1e-4)  # |(0.3, 0.4)|
    assert tp["orient_err"] == pytest.approx(0.2, abs=1e-4)  # traffic cones excluded by the devkit
    # NDS = (5 mAP + sum over the TP metrics of (1 - min(1, err))) / 10; mAAE is NaN and counts as 0
    scores = [1 - min(1.0, tp[k]) for k in ("trans_err", "scale_err", "orient_err", "vel_err")]
    assert m["nd_score"] == pytest.approx((5 * m["mean_ap"] + sum(scores)) / 10, abs=1e-6)
