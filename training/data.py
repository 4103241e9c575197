"""Training samples from generated scenes, through the runtime's own pre-processing, with CenterPoint targets.

Two kinds: ``SampleMaker`` (one still scene, one sweep, pillar statistics: the reference model) and
``SweepSequenceMaker`` (a short drive through a scene whose objects move: each frame's voxels are
built from the current and past sweeps densified by the runtime's own SweepBuffer, and the targets
carry each object's velocity).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.model import ModelSpec
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor, crop_points, pillarize
from bevfusion_ros.core.pipeline.voxels import voxelize
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


def box_targets(
    boxes: scenes.Detections, spec: ModelSpec, velocity: bool = False
) -> dict[str, npt.NDArray[np.generic]]:
    g = spec.post.out_grid
    k = len(spec.class_names)
    heat = np.zeros((k, g.ny, g.nx), np.float32)
    ind = np.zeros(MAX_OBJECTS, np.int64)
    mask = np.zeros(MAX_OBJECTS, np.float32)
    # dx, dy, z, log l, log w, log h, sin, cos[, vx, vy]
    reg = np.zeros((MAX_OBJECTS, 10 if velocity else 8), np.float32)
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
        reg[n, :8] = (
            cx - ix,
            cy - iy,
            boxes.centers[i, 2],
            np.log(length),
            np.log(w),
            np.log(h),
            np.sin(boxes.yaw[i]),
            np.cos(boxes.yaw[i]),
        )
        if velocity:
            reg[n, 8:] = boxes.velocities[i]
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


class SweepSequenceMaker:
    """Samples of a short drive (scenes.drive: ego motion, moving objects, densified sweeps): each
    drive yields ``frames`` consecutive samples after ``sweeps - 1`` warm-up sweeps (the sweeps,
    not the images, bound the cost of a sample)."""

    def __init__(self, spec: ModelSpec, rig: CameraRig, rate: float = 10.0, frames: int = 4) -> None:
        voxel_stages = [s for s in spec.stages if s.voxels is not None]
        if not voxel_stages:
            msg = f"model {spec.name} has no voxelize stage"
            raise ValueError(msg)
        self.spec, self.rig, self.rate, self.frames = spec, rig, rate, frames
        self.voxels = voxel_stages[0].voxels
        self.pre = ImagePreprocessor(spec.image, input_order="bgr")

    def __call__(self, seed: int) -> list[dict[str, npt.NDArray[np.generic]]]:
        frames = scenes.drive(seed, self.spec.lidar.sweeps, self.frames, self.rate)
        return [self.sample(scene, cloud) for scene, cloud in frames]

    def sample(self, scene: scenes.Scene, cloud: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.generic]]:
        assert self.voxels is not None and self.spec.map is not None
        imgs = scenes.render_cameras(scene, self.rig, *scenes.RENDER_SIZE)
        vox = voxelize(
            crop_points(cloud, self.spec.lidar), self.voxels.grid, self.voxels.max_points, self.voxels.max_voxels
        )
        out: dict[str, npt.NDArray[np.generic]] = {
            "images": self.pre(imgs, len(self.rig))[0],
            "voxels": vox.features,
            "coors": vox.coords,
        }
        out.update(box_targets(scene.boxes, self.spec, velocity=True))
        out["map"] = scenes.rasterize_map(scene, self.spec.map.grid).astype(np.float32)
        return out


def collate_voxels(samples: list[dict[str, npt.NDArray[np.generic]]]) -> dict[str, npt.NDArray[np.generic]]:
    """Stack fixed-size arrays; concatenate voxels and put each sample's index in coors' batch column."""
    out = {k: np.stack([s[k] for s in samples]) for k in samples[0] if k not in ("voxels", "coors")}
    out["voxels"] = np.concatenate([s["voxels"] for s in samples])
    coors = []
    for i, s in enumerate(samples):
        c = np.array(s["coors"], np.int32, copy=True)
        c[:, 0] = i
        coors.append(c)
    out["coors"] = np.concatenate(coors)
    return out
