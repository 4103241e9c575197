"""Training samples from generated scenes, through the runtime's own pre-processing, with CenterPoint targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.model import ModelSpec
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize
from bevfusion_ros.core.sensors.camera import CameraIntrinsics
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.tools.data import scenes

MAX_OBJECTS = 96


def load_rig(frame_json: Path | str, names: tuple[str, ...]) -> CameraRig:
    """The nuScenes camera rig (K, lidar2cam, 1600x900) read from a frame.json export."""
    meta = json.loads(Path(frame_json).read_text())
    cams = meta["cameras"]
    return CameraRig.create(
        names,
        [CameraIntrinsics.from_arrays(cams[n]["cam2img"], 1600, 900) for n in names],
        [np.asarray(cams[n]["lidar2cam"]) for n in names],
    )


def box_targets(boxes: scenes.Detections, spec: ModelSpec) -> dict[str, npt.NDArray[np.generic]]:
    g = spec.post.out_grid
    k = len(spec.class_names)
    heat = np.zeros((k, g.ny, g.nx), np.float32)
    ind = np.zeros(MAX_OBJECTS, np.int64)
    mask = np.zeros(MAX_OBJECTS, np.float32)
    reg = np.zeros((MAX_OBJECTS, 8), np.float32)  # dx, dy, z, log l, log w, log h, sin, cos
    yy, xx = np.mgrid[0 : g.ny, 0 : g.nx]
    n = 0
    for i in range(len(boxes)):
        cx = (boxes.centers[i, 0] - g.xmin) / g.resolution
        cy = (boxes.centers[i, 1] - g.ymin) / g.resolution
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < g.nx and 0 <= iy < g.ny) or n >= MAX_OBJECTS:
            continue
        length, w, h = boxes.sizes[i]
        radius = max(1.0, 0.35 * min(length, w) / g.resolution + 0.5)
        sigma = (2 * radius + 1) / 6
        gauss = np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma**2))
        gauss[np.abs(xx - ix) > radius] = 0
        gauss[np.abs(yy - iy) > radius] = 0
        lab = int(boxes.labels[i])
        np.maximum(heat[lab], gauss, out=heat[lab])
        ind[n] = iy * g.nx + ix
        mask[n] = 1
        reg[n] = (
            cx - ix,
            cy - iy,
            boxes.centers[i, 2],
            np.log(length),
            np.log(w),
            np.log(h),
            np.sin(boxes.yaw[i]),
            np.cos(boxes.yaw[i]),
        )
        n += 1
    return {"heatmap": heat, "ind": ind, "mask": mask, "reg": reg}


class SampleMaker:
    def __init__(self, spec: ModelSpec, rig: CameraRig) -> None:
        self.spec = spec
        self.rig = rig
        self.pre = ImagePreprocessor(spec.image, input_order="bgr")

    def inputs(
        self, scene: scenes.Scene
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], list, npt.NDArray[np.float32]]:
        imgs = scenes.render_cameras(scene, self.rig, *scenes.RENDER_SIZE)
        images = self.pre(imgs, len(self.rig))
        pts = scenes.lidar_sweep(scene)
        pillars = pillarize(crop_points(pts, self.spec.lidar), self.spec.lidar)
        return images, pillars, imgs, pts

    def __call__(self, seed: int) -> dict[str, npt.NDArray[np.generic]]:
        scene = scenes.generate_scene(seed)
        images, pillars, _, _ = self.inputs(scene)
        out = {"images": images[0], "pillars": pillars[0]}
        out.update(box_targets(scene.boxes, self.spec))
        assert self.spec.map is not None
        out["map"] = scenes.rasterize_map(scene, self.spec.map.grid).astype(np.float32)
        return out
