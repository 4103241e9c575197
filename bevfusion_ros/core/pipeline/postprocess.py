"""Head outputs -> typed results: 3D boxes (CenterPoint heatmap or TransFusion query decode, circle NMS)
and BEV segmentation probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import InputError
from bevfusion_ros.core.model import Grid, MapConfig, ModelSpec, PostprocessConfig
from bevfusion_ros.core.pipeline.detections import Detections

F32 = npt.NDArray[np.float32]
BOX_TENSORS = ("heatmap", "reg", "height", "dim", "rot")  # "vel" is optional


def sigmoid(x: npt.NDArray[np.floating]) -> F32:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x.astype(np.float32))), np.float32)


def local_maxima(heat: F32) -> npt.NDArray[np.bool_]:
    """(K, H, W) -> True where a cell equals the max of its 3x3 neighbourhood (CenterPoint's max-pool NMS)."""
    k, h, w = heat.shape
    padded = np.full((k, h + 2, w + 2), -np.inf, np.float32)
    padded[:, 1:-1, 1:-1] = heat
    m = heat.copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(m, padded[:, dy : dy + h, dx : dx + w], out=m)
    return np.asarray(heat >= m)


def circle_nms(
    centers: F32, scores: F32, labels: npt.NDArray[np.int32], radius: tuple[float, ...]
) -> npt.NDArray[np.int64]:
    """Greedy per-class suppression of boxes whose BEV centres lie within the class radius of a better one."""
    order = np.argsort(-scores, kind="stable")
    r = np.asarray(radius, np.float32)[labels]
    keep: list[int] = []
    suppressed = np.zeros(scores.size, bool)
    xy = centers[:, :2]
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        d2 = ((xy - xy[i]) ** 2).sum(axis=1)
        suppressed |= (labels == labels[i]) & (d2 < r[i] ** 2)
    return np.asarray(keep, np.int64)


def _check(outputs: Mapping[str, npt.NDArray[np.generic]], names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in outputs]
    if missing:
        msg = f"head.bbox outputs lack {', '.join(missing)} (have {', '.join(outputs)})"
        raise InputError(msg)


def decode_centerpoint(
    outputs: Mapping[str, npt.NDArray[np.generic]], cfg: PostprocessConfig, class_names: tuple[str, ...]
) -> Detections:
    _check(outputs, BOX_TENSORS)
    heat = np.asarray(outputs["heatmap"], np.float32)[0]
    if heat.shape[0] != len(class_names):
        msg = f"heatmap has {heat.shape[0]} channels but the model names {len(class_names)} classes"
        raise InputError(msg)
    if cfg.heatmap_sigmoid:
        heat = sigmoid(heat)
    _, h, w = heat.shape
    peaks = np.where(local_maxima(heat), heat, 0.0).reshape(-1)
    n = min(cfg.max_detections, peaks.size)
    top = np.argpartition(-peaks, n - 1)[:n]
    top = top[peaks[top] >= cfg.candidate_threshold]
    labels = (top // (h * w)).astype(np.int32)
    iy, ix = (top % (h * w)) // w, top % w
    reg = np.asarray(outputs["reg"], np.float32)[0][:, iy, ix]
    g = cfg.out_grid
    x = (ix + reg[0]) * g.resolution + g.xmin
    y = (iy + reg[1]) * g.resolution + g.ymin
    z = np.asarray(outputs["height"], np.float32)[0][0, iy, ix]
    dims = np.exp(np.asarray(outputs["dim"], np.float32)[0][:, iy, ix]).T
    rot = np.asarray(outputs["rot"], np.float32)[0][:, iy, ix]
    yaw = np.arctan2(rot[0], rot[1])
    vel = np.asarray(outputs["vel"], np.float32)[0][:, iy, ix].T if "vel" in outputs else None
    det = Detections.create(np.stack([x, y, z], axis=1), dims, yaw, peaks[top], labels, class_names, vel)
    return _finish(det, cfg)


def decode_transfusion(
    outputs: Mapping[str, npt.NDArray[np.generic]], cfg: PostprocessConfig, class_names: tuple[str, ...]
) -> Detections:
    """TransFusion-style per-query outputs (score (1, K, Q); reg in output-grid cells, already offset by the
    query position; height, dim (log), rot (sin, cos), vel), as BEVFusion's head.bbox export emits them."""
    _check(outputs, ("score", "reg", "height", "dim", "rot"))
    score = np.asarray(outputs["score"], np.float32)[0]
    if cfg.heatmap_sigmoid:
        score = sigmoid(score)
    labels = score.argmax(axis=0).astype(np.int32)
    best = score.max(axis=0)
    g = cfg.out_grid
    reg = np.asarray(outputs["reg"], np.float32)[0]
    x = reg[0] * g.resolution + g.xmin
    y = reg[1] * g.resolution + g.ymin
    z = np.asarray(outputs["height"], np.float32)[0][0]
    dims = np.exp(np.asarray(outputs["dim"], np.float32)[0]).T
    rot = np.asarray(outputs["rot"], np.float32)[0]
    vel = np.asarray(outputs["vel"], np.float32)[0].T if "vel" in outputs else None
    det = Detections.create(
        np.stack([x, y, z], axis=1), dims, np.arctan2(rot[0], rot[1]), best, labels, class_names, vel
    )
    det = det.select(det.scores >= cfg.candidate_threshold)
    return _finish(det, cfg)


def _finish(det: Detections, cfg: PostprocessConfig) -> Detections:
    table = cfg.score_thresholds
    if table is not None and len(det):
        ranges = np.hypot(det.centers[:, 0], det.centers[:, 1])
        bins = np.searchsorted(np.asarray(table.distances), ranges, side="right")
        det = det.select(det.scores >= np.asarray(table.table, np.float32)[det.labels, bins])
    if cfg.nms == "circle" and len(det):
        det = det.select(circle_nms(det.centers, det.scores, det.labels, cfg.nms_radius))
    order = np.argsort(-det.scores, kind="stable")[: cfg.max_detections]
    return det.select(order)


def decode_boxes(
    outputs: Mapping[str, npt.NDArray[np.generic]], cfg: PostprocessConfig, class_names: tuple[str, ...]
) -> Detections:
    if cfg.decoder == "transfusion":
        return decode_transfusion(outputs, cfg, class_names)
    return decode_centerpoint(outputs, cfg, class_names)


@dataclass(frozen=True)
class Segmentation:
    """Per-class BEV probabilities (K, ny, nx), row iy / column ix of ``grid`` (LiDAR frame)."""

    probabilities: F32
    classes: tuple[str, ...]
    grid: Grid

    def mask(self, threshold: float) -> npt.NDArray[np.bool_]:
        return np.asarray(self.probabilities >= threshold)


def decode_map(output: npt.NDArray[np.generic], cfg: MapConfig) -> Segmentation:
    probs = np.asarray(output, np.float32)[0]
    if probs.shape != (len(cfg.classes), cfg.grid.ny, cfg.grid.nx):
        msg = f"head.map output is {probs.shape}, expected ({len(cfg.classes)}, {cfg.grid.ny}, {cfg.grid.nx})"
        raise InputError(msg)
    if cfg.output_sigmoid:
        probs = sigmoid(probs)
    return Segmentation(probs, cfg.classes, cfg.grid)


def decode_heads(
    spec: ModelSpec, outputs: Mapping[str, npt.NDArray[np.generic]]
) -> tuple[Detections, Segmentation | None]:
    """The model's head outputs (by tensor name) as boxes and, where the model has a map head, the
    BEV map: the one decoding step of the host pipeline and the streamed GPU pipeline."""
    dets = decode_boxes({t.name: outputs[t.name] for t in spec.stage("head.bbox").outputs}, spec.post, spec.class_names)
    seg = None
    if spec.map is not None:
        seg = decode_map(outputs[spec.stage("head.map").outputs[0].name], spec.map)
    return dets, seg
