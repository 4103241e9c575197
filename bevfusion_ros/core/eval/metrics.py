"""Accuracy metrics: nuScenes detection (mAP, NDS, TP errors) computed by nuscenes-devkit itself, and BEV
map IoU the way BEVFusion reports it.

Detection: our boxes become devkit ``DetectionBox``es and go through the devkit's own ``accumulate``,
``calc_ap``, ``calc_tp`` and ``DetectionMetrics`` with the standard nuScenes ``DetectionConfig``
(centre distance thresholds 0.5/1/2/4 m, class ranges). The class-range filter the devkit applies
with a NuScenes database is done here on the distance from the LiDAR origin. Attributes are not
predicted, so mAAE is NaN and, as in the devkit, contributes nothing to NDS.

Map: per class and threshold (0.35..0.65) true/false positives and false negatives are summed over
all frames; IoU per class is the best over thresholds, mIoU their mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import DependencyError
from bevfusion_ros.core.pipeline.detections import Detections

NUSCENES_CLASS_RANGE = {
    "car": 50,
    "truck": 50,
    "bus": 50,
    "trailer": 50,
    "construction_vehicle": 50,
    "pedestrian": 40,
    "motorcycle": 40,
    "bicycle": 40,
    "traffic_cone": 30,
    "barrier": 30,
}
MAP_THRESHOLDS = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")


def import_devkit() -> dict[str, Any]:
    try:
        from nuscenes.eval.common.data_classes import EvalBoxes
        from nuscenes.eval.detection.algo import accumulate, calc_ap, calc_tp
        from nuscenes.eval.detection.data_classes import DetectionBox, DetectionConfig, DetectionMetrics
    except ImportError as exc:
        msg = (
            "detection metrics need nuscenes-devkit (make setup installs it; pip install --no-deps "
            f"nuscenes-devkit pyquaternion shapely scikit-learn scipy descartes cachetools): {exc}"
        )
        raise DependencyError(msg) from exc
    return {
        "EvalBoxes": EvalBoxes,
        "accumulate": accumulate,
        "calc_ap": calc_ap,
        "calc_tp": calc_tp,
        "DetectionBox": DetectionBox,
        "DetectionConfig": DetectionConfig,
        "DetectionMetrics": DetectionMetrics,
    }


def detection_config(class_names: Sequence[str]) -> Any:
    dk = import_devkit()
    return dk["DetectionConfig"](
        class_range={c: NUSCENES_CLASS_RANGE.get(c, 50) for c in class_names},
        dist_fcn="center_distance",
        dist_ths=[0.5, 1.0, 2.0, 4.0],
        dist_th_tp=2.0,
        min_recall=0.1,
        min_precision=0.1,
        max_boxes_per_sample=500,
        mean_ap_weight=5,
    )


@dataclass
class DetectionEvaluator:
    """Collects (ground truth, prediction) pairs per frame; ``compute`` runs the devkit."""

    class_names: tuple[str, ...]
    gt: list[tuple[str, Detections]] = field(default_factory=list)
    pred: list[tuple[str, Detections]] = field(default_factory=list)
    # what compute() returns, once computed elsewhere (a fleet scores its evaluators on its workers)
    computed: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def add(self, token: str, ground_truth: Detections, prediction: Detections) -> None:
        self.gt.append((token, ground_truth))
        self.pred.append((token, prediction))

    def _boxes(self, frames: list[tuple[str, Detections]], cfg: Any, is_gt: bool) -> Any:
        dk = import_devkit()
        boxes = dk["EvalBoxes"]()
        for token, det in frames:
            rows = []
            dist = np.hypot(det.centers[:, 0], det.centers[:, 1])
            vel = np.nan_to_num(det.velocities, nan=0.0)
            for i in range(len(det)):
                name = det.class_names[int(det.labels[i])]
                if name not in cfg.class_range or dist[i] > cfg.class_range[name]:
                    continue
                half = float(det.yaw[i]) / 2
                rows.append(
                    dk["DetectionBox"](
                        sample_token=token,
                        translation=tuple(float(v) for v in det.centers[i]),
                        size=(
                            float(det.sizes[i, 1]),
                            float(det.sizes[i, 0]),
                            float(det.sizes[i, 2]),
                        ),  # devkit: w, l, h
                        rotation=(float(np.cos(half)), 0.0, 0.0, float(np.sin(half))),  # devkit: w, x, y, z
                        velocity=(float(vel[i, 0]), float(vel[i, 1])),
                        ego_translation=(float(det.centers[i, 0]), float(det.centers[i, 1]), float(det.centers[i, 2])),
                        num_pts=1 if is_gt else -1,
                        detection_name=name,
                        detection_score=-1.0 if is_gt else float(det.scores[i]),
                        attribute_name="",
                    )
                )
            boxes.add_boxes(token, rows)
        return boxes

    def compute(self) -> dict[str, Any]:
        if self.computed is not None:
            return dict(self.computed)
        dk = import_devkit()
        cfg = detection_config(self.class_names)
        gt = self._boxes(self.gt, cfg, True)
        pred = self._boxes(self.pred, cfg, False)
        metrics = dk["DetectionMetrics"](cfg)
        data = {}
        for name in cfg.class_names:
            for th in cfg.dist_ths:
                md = dk["accumulate"](gt, pred, name, cfg.dist_fcn_callable, th)
                data[(name, th)] = md
                metrics.add_label_ap(name, th, dk["calc_ap"](md, cfg.min_recall, cfg.min_precision))
            for metric in TP_METRICS:
                # The devkit leaves these undefined for classes where they mean nothing.
                if (name == "traffic_cone" and metric in ("attr_err", "vel_err", "orient_err")) or (
                    name == "barrier" and metric in ("attr_err", "vel_err")
                ):
                    tp = np.nan
                else:
                    tp = dk["calc_tp"](data[(name, cfg.dist_th_tp)], cfg.min_recall, metric)
                metrics.add_label_tp(name, metric, tp)
        out: dict[str, Any] = metrics.serialize()
        out["frames"] = len(self.gt)
        out["gt_boxes"] = int(sum(len(d) for _, d in self.gt))
        out["pred_boxes"] = int(sum(len(d) for _, d in self.pred))
        out["pr_curves"] = {
            name: {"precision": data[(name, 2.0)].precision.tolist(), "recall": data[(name, 2.0)].recall.tolist()}
            for name in cfg.class_names
        }
        return out


@dataclass(frozen=True)
class MapCounts:
    """Map cells per class (rows) and threshold (columns): integers, so sums are exact in any order."""

    tp: npt.NDArray[np.int64]
    fp: npt.NDArray[np.int64]
    fn: npt.NDArray[np.int64]


@dataclass
class MapIoU:
    """BEVFusion's map metric: IoU per class at several thresholds, summed over frames; best threshold per class."""

    classes: tuple[str, ...]
    thresholds: tuple[float, ...] = MAP_THRESHOLDS
    tp: npt.NDArray[np.int64] = field(init=False)
    fp: npt.NDArray[np.int64] = field(init=False)
    fn: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        shape = (len(self.classes), len(self.thresholds))
        self.tp, self.fp, self.fn = (np.zeros(shape, np.int64) for _ in range(3))

    def add(self, probabilities: npt.ArrayLike, ground_truth: npt.ArrayLike) -> None:
        self.add_counts(self.frame_counts(probabilities, ground_truth))

    def frame_counts(self, probabilities: npt.ArrayLike, ground_truth: npt.ArrayLike) -> MapCounts:
        """One frame's (tp, fp, fn) per class and threshold: what a fleet worker sends instead of the map."""
        p = np.asarray(probabilities, np.float32)
        g = np.asarray(ground_truth).astype(bool)
        if p.shape != g.shape or p.shape[0] != len(self.classes):
            msg = f"map probabilities {p.shape} and ground truth {g.shape} must both be ({len(self.classes)}, ny, nx)"
            raise ValueError(msg)
        shape = (len(self.classes), len(self.thresholds))
        tp, fp, fn = (np.zeros(shape, np.int64) for _ in range(3))
        for j, th in enumerate(self.thresholds):
            pred = p >= th
            tp[:, j] = (pred & g).sum(axis=(1, 2))
            fp[:, j] = (pred & ~g).sum(axis=(1, 2))
            fn[:, j] = (~pred & g).sum(axis=(1, 2))
        return MapCounts(tp, fp, fn)

    def add_counts(self, counts: MapCounts) -> None:
        self.tp += counts.tp
        self.fp += counts.fp
        self.fn += counts.fn

    def compute(self) -> dict[str, Any]:
        denom = self.tp + self.fp + self.fn
        iou = np.where(denom > 0, self.tp / np.maximum(denom, 1), np.nan)
        best = np.nanmax(np.where(np.isnan(iou), -1, iou), axis=1)
        best = np.where(best < 0, np.nan, best)
        per_class = {c: float(v) for c, v in zip(self.classes, best, strict=True)}
        return {
            "miou": float(np.nanmean(best)) if np.isfinite(best).any() else float("nan"),
            "iou": per_class,
            "best_threshold": {
                c: float(self.thresholds[int(np.nanargmax(np.nan_to_num(iou[i], nan=-1)))])
                for i, c in enumerate(self.classes)
            },
        }
