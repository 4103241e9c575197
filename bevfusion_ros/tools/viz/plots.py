"""Pictures people look at: a BEV view (segmentation, LiDAR points, predicted and ground-truth boxes)
and a camera mosaic with the predicted boxes projected into every image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.optional import import_cv2
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation
from bevfusion_ros.core.sensors.rig import CameraRig, box_corners

MAP_COLORS = {
    "drivable_area": (0.55, 0.55, 0.6),
    "ped_crossing": (0.95, 0.6, 0.6),
    "walkway": (0.6, 0.8, 0.6),
    "stop_line": (0.9, 0.2, 0.2),
    "carpark_area": (0.8, 0.7, 0.5),
    "divider": (0.95, 0.85, 0.2),
}
_EDGES = [(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (4, 6), (5, 7), (6, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def class_color(label: int) -> tuple[float, float, float]:
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["tab10"](label % 10)
    return float(r), float(g), float(b)


def bev_figure(
    path: Path | str,
    points: npt.NDArray[np.float32] | None,
    pred: Detections,
    gt: Detections | None = None,
    seg: Segmentation | None = None,
    extent: float = 54.0,
    title: str = "",
    threshold: float = 0.5,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 9), dpi=100)
    draw_bev(ax, points, pred, gt, seg, extent, title, threshold)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_bev(
    ax: Any,
    points: npt.NDArray[np.float32] | None,
    pred: Detections | None,
    gt: Detections | None = None,
    seg: Segmentation | None = None,
    extent: float = 54.0,
    title: str = "",
    threshold: float = 0.5,
) -> None:
    """One BEV panel on a matplotlib axis: map layers, points, ground truth dashed, prediction solid."""
    from matplotlib.lines import Line2D

    ax.set_facecolor("white")
    if seg is not None:
        g = seg.grid
        rgb = np.ones((g.ny, g.nx, 3))
        for i, name in enumerate(seg.classes):
            m = seg.probabilities[i] >= threshold
            rgb[m] = 0.5 * rgb[m] + 0.5 * np.array(MAP_COLORS.get(name, (0.5, 0.5, 0.5)))
        ax.imshow(rgb, origin="lower", extent=(g.xmin, g.xmax, g.ymin, g.ymax), interpolation="nearest")
    if points is not None and len(points):
        ax.scatter(points[:, 0], points[:, 1], s=0.2, c="0.25", alpha=0.6, linewidths=0)

    def draw(det: Detections, style: str, width: float) -> None:
        if not len(det):
            return
        corners = box_corners(det.centers, det.sizes, det.yaw)[:, [0, 2, 6, 4, 0], :2]  # bottom face, closed
        for i, c in enumerate(corners):
            col = class_color(int(det.labels[i]))
            ax.plot(c[:, 0], c[:, 1], style, color=col, lw=width)
            head = det.centers[i, :2] + 0.5 * det.sizes[i, 0] * np.array([np.cos(det.yaw[i]), np.sin(det.yaw[i])])
            ax.plot([det.centers[i, 0], head[0]], [det.centers[i, 1], head[1]], style, color=col, lw=width)

    if gt is not None:
        draw(gt, "--", 1.0)
    if pred is not None:
        draw(pred, "-", 1.6)
    shown = pred if pred is not None else gt
    names = shown.class_names if shown is not None else ()
    handles = [Line2D([], [], color=class_color(i), label=n) for i, n in enumerate(names)]
    if pred is not None:
        handles += [Line2D([], [], color="k", ls="-", label="prediction")]
    if gt is not None:
        handles.append(Line2D([], [], color="k", ls="--", label="ground truth"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    ax.plot([0], [0], marker="^", color="k")
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (LiDAR frame)")
    ax.set_ylabel("y [m]")
    ax.set_title(title or f"{0 if pred is None else len(pred)} detections")


def camera_mosaic(
    path: Path | str,
    images: Sequence[npt.NDArray[np.uint8] | None],
    rig: CameraRig,
    det: Detections,
    tile_width: int = 533,
) -> None:
    """2x3 mosaic (front row: FRONT_LEFT, FRONT, FRONT_RIGHT) of BGR images with projected boxes; a
    masked camera (None) is a dark tile."""
    cv2 = import_cv2()
    corners = box_corners(det.centers, det.sizes, det.yaw) if len(det) else np.zeros((0, 8, 3))
    tiles = {}
    for i, (name, img) in enumerate(zip(rig.names, images, strict=True)):
        if img is None:
            w, h = rig.image_sizes()[i]
            img = np.full((h, w, 3), 40, np.uint8)
        canvas = np.ascontiguousarray(img).copy()
        for b, cs in enumerate(corners):
            uv, depth, _ = rig.project(cs, i)
            if (depth <= 0.5).any():
                continue
            h, w = canvas.shape[:2]
            if not ((uv[:, 0] > -w) & (uv[:, 0] < 2 * w) & (uv[:, 1] > -h) & (uv[:, 1] < 2 * h)).all():
                continue
            r, g, bl = class_color(int(det.labels[b]))
            col = (int(bl * 255), int(g * 255), int(r * 255))
            pts = uv.astype(np.int32)
            for a, c in _EDGES:
                cv2.line(canvas, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[c]), col, 2, cv2.LINE_AA)
        scale = tile_width / canvas.shape[1]
        tile = cv2.resize(canvas, (tile_width, round(canvas.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, name, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        tiles[name] = tile
    order = [["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"], ["CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"]]
    names = list(tiles)
    if not all(n in tiles for row in order for n in row):
        order = [names[: (len(names) + 1) // 2], names[(len(names) + 1) // 2 :]]
    h = max(t.shape[0] for t in tiles.values())
    blank = np.zeros((h, tile_width, 3), np.uint8)
    rows = [np.hstack([tiles.get(n, blank)[:h] for n in row] + [blank] * (len(order[0]) - len(row))) for row in order]
    cv2.imwrite(str(path), np.vstack(rows))


def projection_overlay(
    path: Path | str,
    images: Sequence[npt.NDArray[np.uint8]],
    rig: CameraRig,
    points: npt.NDArray[np.float32],
    tile_width: int = 533,
) -> None:
    """LiDAR points drawn into every camera, coloured by depth (geometry check)."""
    cv2 = import_cv2()
    import matplotlib

    cmap = matplotlib.colormaps["turbo"]
    out = []
    for i, img in enumerate(images):
        if img is None:
            w, h = rig.image_sizes()[i]
            img = np.full((h, w, 3), 40, np.uint8)
        canvas = np.ascontiguousarray(img).copy()
        uv, depth, inside = rig.project(points[:, :3], i)
        cols = (np.asarray(cmap(np.clip(depth[inside] / 50.0, 0, 1)))[:, :3] * 255).astype(np.uint8)
        for (u, v), c in zip(uv[inside].astype(int), cols, strict=True):
            cv2.circle(canvas, (int(u), int(v)), 2, (int(c[2]), int(c[1]), int(c[0])), -1)
        out.append(canvas)
    camera_mosaic(path, out, rig, Detections.empty(("none",)), tile_width)
