"""One run's scores over a set of frame records: the devkit's detection metrics, map IoU, timings.
The same class scores a whole fleet, a bag, a tag or a sensor mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bevfusion_ros.core.eval.metrics import DetectionEvaluator, MapIoU
from bevfusion_ros.core.model import ModelSpec
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.tools.eval.records import RunFrame

# ``map`` over a list, here or on a fleet's workers: (function, items) -> results in the items' order
Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def in_order(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """The Mapper of one process."""
    return [fn(item) for item in items]


def detection_metrics(evaluator: DetectionEvaluator) -> dict[str, Any]:
    return evaluator.compute()


def compute_all(evaluators: list[DetectionEvaluator], mapper: Mapper) -> None:
    """Computes every evaluator's metrics through ``mapper``; each keeps its result for compute()."""
    todo = [ev for ev in evaluators if ev.computed is None and ev.gt]
    for ev, result in zip(todo, mapper(detection_metrics, todo), strict=True):
        ev.computed = result


@dataclass
class RunScore:
    name: str
    spec: ModelSpec
    det: DetectionEvaluator
    map: MapIoU | None
    stages: dict[str, list[float]] = field(default_factory=dict)
    frames: int = 0
    scored: int = 0
    missing: int = 0  # frames the run produced no output for
    compute_s: float = 0.0

    @classmethod
    def of(cls, name: str, spec: ModelSpec) -> RunScore:
        return cls(name, spec, DetectionEvaluator(spec.class_names), MapIoU(spec.map.classes) if spec.map else None)

    def add(self, out: RunFrame, gt: Detections | None, token: str) -> None:
        self.frames += 1
        for k, v in out.timings_ms.items():
            self.stages.setdefault(k, []).append(v)
        if gt is None:
            return
        self.scored += 1
        self.det.add(token, gt, out.detections)
        if self.map is not None and out.map_counts is not None:
            self.map.add_counts(out.map_counts)

    def scores(self) -> dict[str, Any]:
        """mAP, NDS and mIoU over the frames added (None where nothing was scored)."""
        if not self.scored:
            return {"frames": self.frames, "frames_scored": 0, "mean_ap": None, "nd_score": None, "miou": None}
        det = self.det.compute()
        miou = None
        if self.map is not None and self.map.tp.sum() + self.map.fn.sum() > 0:
            miou = float(self.map.compute()["miou"])
        return {
            "frames": self.frames,
            "frames_scored": self.scored,
            "mean_ap": float(det["mean_ap"]),
            "nd_score": float(det["nd_score"]),
            "miou": miou,
        }
