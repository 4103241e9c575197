"""Frame-level comparisons for ``bevfusion-ros evaluate``: boxes of one run matched to another run's
(or to ground truth), agreement between two runs, latency percentiles and release gates.

Accuracy over a whole bag is the devkit's job (``core.metrics``); this module answers the per-frame
questions the devkit does not: which frames are worst, and how far two backends or precisions
disagree on the same input. Boxes match the way nuScenes counts a true positive at its TP
threshold: same class, centre distance in the ground plane within ``max_dist`` (2 m), greedily in
descending score order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation

MATCH_DIST_M = 2.0
MIN_SCORE = 0.3  # boxes below this are not "detections" for per-frame counts (the devkit ranks all)
SEG_THRESHOLD = 0.5
SCATTER_CAP = 20_000

F64 = npt.NDArray[np.float64]
T = TypeVar("T")


@dataclass(frozen=True)
class BoxMatches:
    a: npt.NDArray[np.int64]  # indices into the first set
    b: npt.NDArray[np.int64]  # indices into the second set, pairwise with ``a``
    distance: F64
    n_a: int
    n_b: int

    @property
    def matched(self) -> int:
        return int(self.a.size)


def match_boxes(a: Detections, b: Detections, max_dist: float = MATCH_DIST_M) -> BoxMatches:
    """Each box of ``a`` (highest score first) takes the nearest unmatched box of ``b`` with the same
    class name within ``max_dist`` metres (x-y centre distance)."""
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        empty = np.zeros(0, np.int64)
        return BoxMatches(empty, empty, np.zeros(0), na, nb)
    dist = np.hypot(
        a.centers[:, None, 0].astype(np.float64) - b.centers[None, :, 0],
        a.centers[:, None, 1].astype(np.float64) - b.centers[None, :, 1],
    )
    names_a, names_b = np.array(a.label_names()), np.array(b.label_names())
    dist[names_a[:, None] != names_b[None, :]] = np.inf
    dist[dist > max_dist] = np.inf
    ia, ib, dd = [], [], []
    for i in np.argsort(-a.scores, kind="stable"):
        j = int(np.argmin(dist[i]))
        if np.isfinite(dist[i, j]):
            ia.append(int(i))
            ib.append(j)
            dd.append(float(dist[i, j]))
            dist[:, j] = np.inf
    return BoxMatches(np.array(ia, np.int64), np.array(ib, np.int64), np.array(dd), na, nb)


def yaw_difference(y1: npt.ArrayLike, y2: npt.ArrayLike) -> F64:
    """|y1 - y2| wrapped into [0, pi]."""
    d = np.abs(np.asarray(y1, np.float64) - np.asarray(y2, np.float64)) % (2 * np.pi)
    return np.asarray(np.minimum(d, 2 * np.pi - d))


def confident(det: Detections, min_score: float) -> Detections:
    return det.select(det.scores >= min_score)


@dataclass(frozen=True)
class FrameQuality:
    """One frame against its ground truth: true/false positives and misses at ``MIN_SCORE``."""

    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom


def frame_quality(ground_truth: Detections, prediction: Detections, min_score: float = MIN_SCORE) -> FrameQuality:
    m = match_boxes(confident(prediction, min_score), ground_truth)
    return FrameQuality(m.matched, m.n_a - m.matched, m.n_b - m.matched)


def seg_iou(a: Segmentation, b: Segmentation, threshold: float = SEG_THRESHOLD) -> dict[str, float]:
    """IoU per class between two runs' masks (NaN where both are empty)."""
    ma, mb = a.mask(threshold), b.mask(threshold)
    if ma.shape != mb.shape:
        msg = f"segmentation grids differ: {ma.shape} vs {mb.shape}"
        raise ValueError(msg)
    inter = (ma & mb).sum(axis=(1, 2))
    union = (ma | mb).sum(axis=(1, 2))
    return {c: (float(i / u) if u else math.nan) for c, i, u in zip(a.classes, inter, union, strict=True)}


@dataclass(frozen=True)
class FrameAgreement:
    stamp_ns: int
    n_a: int
    n_b: int
    matched: int
    centre_m: F64
    yaw_rad: F64
    score_delta: F64  # b - a, per matched pair
    seg_iou: dict[str, float]
    score_pairs: F64  # (k, 2): matched (a, b) plus unmatched boxes as (a, 0) / (0, b)

    @property
    def agreement(self) -> float:
        """Matched boxes over all boxes (1.0 when both runs saw nothing)."""
        denom = self.n_a + self.n_b
        return 1.0 if denom == 0 else 2 * self.matched / denom


def frame_agreement(
    stamp_ns: int,
    a: Detections,
    b: Detections,
    seg_a: Segmentation | None = None,
    seg_b: Segmentation | None = None,
    min_score: float = MIN_SCORE,
    max_dist: float = MATCH_DIST_M,
) -> FrameAgreement:
    ca, cb = confident(a, min_score), confident(b, min_score)
    m = match_boxes(ca, cb, max_dist)
    un_a = np.setdiff1d(np.arange(len(ca)), m.a)
    un_b = np.setdiff1d(np.arange(len(cb)), m.b)
    pairs = np.concatenate(
        [
            np.stack([ca.scores[m.a], cb.scores[m.b]], axis=1),
            np.stack([ca.scores[un_a], np.zeros(un_a.size)], axis=1),
            np.stack([np.zeros(un_b.size), cb.scores[un_b]], axis=1),
        ]
    ).astype(np.float64)
    seg = seg_iou(seg_a, seg_b) if seg_a is not None and seg_b is not None else {}
    return FrameAgreement(
        stamp_ns,
        len(ca),
        len(cb),
        m.matched,
        m.distance,
        yaw_difference(ca.yaw[m.a], cb.yaw[m.b]),
        (cb.scores[m.b] - ca.scores[m.a]).astype(np.float64),
        seg,
        pairs,
    )


def percentiles(values: Sequence[float] | npt.ArrayLike) -> dict[str, float]:
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(v.max()),
    }


@dataclass
class AgreementSummary:
    """Accumulates FrameAgreements; keeps a bounded, evenly thinned sample of score pairs for plots."""

    frames: int = 0
    boxes_a: int = 0
    boxes_b: int = 0
    matched: int = 0
    centre: list[float] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    score_delta: list[float] = field(default_factory=list)
    seg: dict[str, list[float]] = field(default_factory=dict)
    pairs: list[tuple[float, float]] = field(default_factory=list)
    per_frame: list[dict[str, Any]] = field(default_factory=list)
    _stride: int = 1
    _seen: int = 0

    def add(self, f: FrameAgreement) -> None:
        self.frames += 1
        self.boxes_a += f.n_a
        self.boxes_b += f.n_b
        self.matched += f.matched
        self.centre += f.centre_m.tolist()
        self.yaw += f.yaw_rad.tolist()
        self.score_delta += f.score_delta.tolist()
        for c, v in f.seg_iou.items():
            self.seg.setdefault(c, []).append(v)
        seg = [v for v in f.seg_iou.values() if math.isfinite(v)]
        self.per_frame.append(
            {
                "stamp_ns": f.stamp_ns,
                "agreement": f.agreement,
                "n_a": f.n_a,
                "n_b": f.n_b,
                "matched": f.matched,
                "centre_m_max": float(f.centre_m.max()) if f.centre_m.size else None,
                "seg_miou": float(np.mean(seg)) if seg else None,
            }
        )
        for p in f.score_pairs.tolist():
            if self._seen % self._stride == 0:
                self.pairs.append((p[0], p[1]))
            self._seen += 1
        if len(self.pairs) > SCATTER_CAP:  # keep every other point and sample half as often from now on
            self.pairs = self.pairs[::2]
            self._stride *= 2

    def summary(self) -> dict[str, Any]:
        seg = {c: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for c, v in self.seg.items()}
        finite = [v for v in seg.values() if math.isfinite(v)]
        worst = sorted(self.per_frame, key=lambda e: e["agreement"])[:5]
        return {
            "frames": self.frames,
            "boxes_a": self.boxes_a,
            "boxes_b": self.boxes_b,
            "matched": self.matched,
            "a_found_in_b": self.matched / self.boxes_a if self.boxes_a else math.nan,
            "b_found_in_a": self.matched / self.boxes_b if self.boxes_b else math.nan,
            "centre_m": percentiles(self.centre),
            "yaw_deg": percentiles(np.degrees(self.yaw)),
            "score_delta": percentiles(self.score_delta),
            "score_delta_abs": percentiles(np.abs(self.score_delta)),
            "seg_iou": seg,
            "seg_miou": float(np.mean(finite)) if finite else math.nan,
            "worst_frames": [{"stamp_ns": e["stamp_ns"], "agreement": e["agreement"]} for e in worst],
            "per_frame": self.per_frame,
        }


class Extremes(Generic[T]):
    """The ``k`` lowest- and ``k`` highest-keyed items seen (bounded memory over a long bag)."""

    def __init__(self, k: int = 2) -> None:
        self.k = k
        self._low: list[tuple[float, int, T]] = []  # max-heap on key via negation
        self._high: list[tuple[float, int, T]] = []  # min-heap
        self._n = 0

    def add(self, key: float, item: T) -> None:
        self._n += 1
        for heap, sign in ((self._low, -1.0), (self._high, 1.0)):
            entry = (sign * key, self._n, item)
            if len(heap) < self.k:
                heapq.heappush(heap, entry)
            elif entry[:2] > heap[0][:2]:
                heapq.heapreplace(heap, entry)

    def lowest(self) -> list[tuple[float, T]]:
        return sorted(((-k, it) for k, _, it in self._low), key=lambda e: e[0])

    def highest(self) -> list[tuple[float, T]]:
        return sorted(((k, it) for k, _, it in self._high), key=lambda e: -e[0])

    def candidates(self) -> list[tuple[float, T]]:
        """Every item held, as (key, item) in the order added. Fed part by part, in order, to another
        Extremes, the candidates of each part give what one Extremes over all the items would: ties
        go to the later item in both."""
        held = {n: (-k, it) for k, n, it in self._low} | {n: (k, it) for k, n, it in self._high}
        return [held[n] for n in sorted(held)]


@dataclass(frozen=True)
class Gate:
    name: str
    run: str
    value: float | None
    limit: float
    passed: bool
    text: str


def check_gates(
    runs: Iterable[Mapping[str, Any]],
    min_map: float | None = None,
    max_map_drop_pct: float | None = None,
    max_p99_ms: float | None = None,
) -> list[Gate]:
    """Release gates over run summaries (the first run is the reference for the mAP drop).

    Each run is a mapping with ``name``, ``mean_ap`` (None without ground truth) and ``p99_ms``
    (None when the run has no timings); a compared run's ``same_frames`` ({``mean_ap``,
    ``reference_mean_ap``} on the frames both runs have), where present, is what its drop compares.
    A gate whose number is missing fails: a release must not pass on a check that could not be made.
    """
    gates: list[Gate] = []
    runs = list(runs)
    ref = runs[0] if runs else None
    for r in runs:
        name, m, p99 = r["name"], r.get("mean_ap"), r.get("p99_ms")
        if min_map is not None:
            ok = m is not None and m >= min_map
            text = f"mAP {m:.4f} vs minimum {min_map}" if m is not None else "no mAP (no ground truth)"
            gates.append(Gate("min_map", name, m, min_map, ok, text))
        if max_p99_ms is not None:
            ok = p99 is not None and p99 <= max_p99_ms
            text = f"p99 {p99:.1f} ms vs maximum {max_p99_ms} ms" if p99 is not None else "no timings"
            gates.append(Gate("max_p99_ms", name, p99, max_p99_ms, ok, text))
        if max_map_drop_pct is not None and ref is not None and r is not ref:
            m0 = ref.get("mean_ap")
            same = r.get("same_frames")  # both scored on the frames both have, where given
            if same and same.get("mean_ap") is not None:
                m, m0 = same["mean_ap"], same["reference_mean_ap"]
            if m is None or m0 is None or m0 <= 0:
                gates.append(
                    Gate(
                        "max_map_drop",
                        name,
                        None,
                        max_map_drop_pct,
                        False,
                        f"no mAP drop vs {ref['name']}: mAP missing or zero",
                    )
                )
                continue
            drop = 100.0 * (m0 - m) / m0
            text = f"mAP {m:.4f} vs {ref['name']} {m0:.4f}: {drop:+.2f} % drop, maximum {max_map_drop_pct} %"
            gates.append(Gate("max_map_drop", name, drop, max_map_drop_pct, drop <= max_map_drop_pct, text))
    return gates
