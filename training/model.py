"""BEVFusion-tiny in PyTorch, one nn.Module per deployment stage so each exports to its own ONNX file.

Shapes come from the model YAML (engines/reference/model.yaml); bevpool is not a module: training
uses the runtime's own precomputed indices (core/pipeline/bevpool.py) through ``index_add_``. The
LiDAR branch follows the YAML too: pillar statistics into 2D convolutions (the reference model), or
voxels into a sparse encoder (engines/voxelnet/model.yaml); the box head predicts velocity when the
YAML's head.bbox has a ``vel`` output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bevfusion_ros.core.model import ModelSpec
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex
from training.sparse_conv import SparseEncoder, Vec3

# (c_out, ksize, stride, padding, subm): mmdet3d's SparseEncoder at reduced width on the 16 x 512 x
# 512 grid of engines/voxelnet: conv_input, a submanifold block per stage with its strided
# down-sampling, conv_out along z (2 levels x 32 channels = the 64-channel 128 x 128 BEV map)
VOXELNET_LAYERS: tuple[tuple[int, Vec3, Vec3, Vec3, bool], ...] = (
    (16, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (16, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (32, (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
    (32, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (64, (3, 3, 3), (2, 2, 2), (1, 1, 1), False),
    (64, (3, 3, 3), (1, 1, 1), (1, 1, 1), True),
    (32, (3, 1, 1), (2, 1, 1), (1, 0, 0), False),
)


def conv(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class CameraBackbone(nn.Module):
    """(1, N, 3, H, W) -> features (1, N, C, H/8, W/8) and depth probabilities (1, N, D, H/8, W/8)."""

    def __init__(self, channels: int, depth_bins: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(3, 24, 2),
            conv(24, 32),
            conv(32, 48, 2),
            conv(48, 48),
            conv(48, 64, 2),
            conv(64, 64),
            conv(64, 96),
            conv(96, 96),
        )
        self.feat = nn.Conv2d(96, channels, 1)
        self.depth = nn.Conv2d(96, depth_bins, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, c, h, w = images.shape
        x = self.body(images.reshape(b * n, c, h, w))
        feat = self.feat(x)
        depth = self.depth(x).softmax(dim=1)
        fh, fw = feat.shape[-2:]
        return feat.reshape(b, n, -1, fh, fw), depth.reshape(b, n, -1, fh, fw)


class BevPool(nn.Module):
    """Differentiable lift-splat with the runtime's index arrays (same sums, same order)."""

    def __init__(self, index: BevPoolIndex) -> None:
        super().__init__()
        self.register_buffer("depth_index", torch.from_numpy(index.depth_index))
        self.register_buffer("feature_index", torch.from_numpy(index.feature_index))
        self.register_buffer("cell_index", torch.from_numpy(index.cell_index))
        self.grid_hw = index.grid_hw

    def forward(self, feat: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        b, n, c, fh, fw = feat.shape
        # fp32 accumulation, as the runtime does, whatever autocast chose for the convolutions
        pixels = feat.float().permute(0, 1, 3, 4, 2).reshape(b, n * fh * fw, c)
        w = depth.float().reshape(b, -1)[:, self.depth_index]
        vals = pixels[:, self.feature_index] * w[..., None]
        ny, nx = self.grid_hw
        out = pixels.new_zeros(b, ny * nx, c).index_add_(1, self.cell_index, vals)
        return out.permute(0, 2, 1).reshape(b, c, ny, nx)


class VTransform(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(cin, cout), conv(cout, cout))

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        return self.body(bev)


class LidarBackbone(nn.Module):
    """Dense pillar statistics (1, 5, 256, 256) -> (1, 64, 128, 128)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(cin, 32), conv(32, 32), conv(32, cout, 2), conv(cout, cout), conv(cout, cout))

    def forward(self, pillars: torch.Tensor) -> torch.Tensor:
        return self.body(pillars)


def voxel_based(spec: ModelSpec) -> bool:
    """Whether the YAML's LiDAR branch starts with voxels (a sparse encoder), not pillar statistics."""
    return any(st.name == "lidar.voxelize" for st in spec.stages)


def voxel_encoder(spec: ModelSpec) -> SparseEncoder:
    """The sparse encoder for the YAML's voxelize stage; features are divided by the point-cloud
    range (x, y, z), 255 (raw intensity) and the sweeps' span (time lag) before the first layer."""
    stage = spec.stage("lidar.voxelize")
    assert stage.voxels is not None
    r = spec.lidar.point_cloud_range
    scale = {"x": r[3], "y": r[4], "z": max(abs(r[2]), abs(r[5])), "intensity": 255.0, "time_lag": 0.5}
    features = spec.lidar.point_features
    return SparseEncoder(len(features), stage.voxels.grid.shape, VOXELNET_LAYERS, [scale[f] for f in features], True)


class Fuser(nn.Module):
    """ConvFuser + a two-scale SECOND-style decoder with an FPN neck, as BEVFusion's fuser/decoder."""

    def __init__(self, cam: int, lidar: int, cout: int) -> None:
        super().__init__()
        self.fuse = conv(cam + lidar, 96)
        self.block1 = nn.Sequential(conv(96, 96), conv(96, 96))
        self.block2 = nn.Sequential(conv(96, 128, 2), conv(128, 128), conv(128, 128))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 2, 2, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        self.out = conv(96 + 64, cout)

    def forward(self, camera_bev_feature: torch.Tensor, lidar_bev_feature: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([camera_bev_feature, lidar_bev_feature], dim=1))
        x1 = self.block1(x)
        x2 = self.up(self.block2(x1))
        return self.out(torch.cat([x1, x2], dim=1))


class BoxHead(nn.Module):
    """CenterPoint head: heatmap logits per class, sub-cell offset, z, log size, (sin, cos) yaw."""

    def __init__(self, cin: int, classes: int, velocity: bool = False) -> None:
        super().__init__()
        self.shared = conv(cin, 64)

        def branch(n: int) -> nn.Sequential:
            return nn.Sequential(conv(64, 64), nn.Conv2d(64, n, 3, 1, 1))

        self.heatmap, self.reg, self.height, self.dim, self.rot = (branch(n) for n in (classes, 2, 1, 3, 2))
        self.vel = branch(2) if velocity else None  # (vx, vy) m/s in the LiDAR frame's axes
        nn.init.constant_(self.heatmap[-1].bias, -2.19)  # prior 0.1, as CenterPoint

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.shared(fused)
        out = (self.heatmap(x), self.reg(x), self.height(x), self.dim(x), self.rot(x))
        return out if self.vel is None else (*out, self.vel(x))


class MapHead(nn.Module):
    """BEV segmentation: resample the detection grid onto the map grid (fixed sampling grid), classify."""

    def __init__(self, cin: int, classes: int, spec: ModelSpec) -> None:
        super().__init__()
        src, dst = spec.post.out_grid, spec.map.grid if spec.map else None
        assert dst is not None
        xs = dst.xmin + (np.arange(dst.nx) + 0.5) * dst.resolution
        ys = dst.ymin + (np.arange(dst.ny) + 0.5) * dst.resolution
        gx = (xs - src.xmin) / (src.xmax - src.xmin) * 2 - 1
        gy = (ys - src.ymin) / (src.ymax - src.ymin) * 2 - 1
        grid = np.stack(np.meshgrid(gx, gy), axis=-1)[None].astype(np.float32)
        self.register_buffer("grid", torch.from_numpy(grid))
        self.body = nn.Sequential(conv(cin, 64), conv(64, 64), nn.Conv2d(64, classes, 1))

    def logits(self, fused: torch.Tensor) -> torch.Tensor:
        g = self.grid.expand(fused.shape[0], -1, -1, -1)
        x = F.grid_sample(fused, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        return self.body(x)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.logits(fused).sigmoid()


class BevFusionTiny(nn.Module):
    def __init__(self, spec: ModelSpec, index: BevPoolIndex) -> None:
        super().__init__()
        feat = spec.tensor("camera_feature").shape[2]
        self.camera_backbone = CameraBackbone(feat, spec.camera_bev.depth_bins)
        self.bevpool = BevPool(index)
        self.vtransform = VTransform(feat, spec.tensor("camera_bev_feature").shape[1])
        self.voxel_based = voxel_based(spec)
        self.lidar_backbone: nn.Module = (
            voxel_encoder(spec)
            if self.voxel_based
            else LidarBackbone(spec.tensor("lidar_pillars").shape[1], spec.tensor("lidar_bev_feature").shape[1])
        )
        self.fuser = Fuser(
            spec.tensor("camera_bev_feature").shape[1],
            spec.tensor("lidar_bev_feature").shape[1],
            spec.tensor("fused").shape[1],
        )
        self.box_tensors = tuple(t.name for t in spec.stage("head.bbox").outputs)
        self.box_head = BoxHead(spec.tensor("fused").shape[1], len(spec.class_names), "vel" in self.box_tensors)
        assert spec.map is not None
        self.map_head = MapHead(spec.tensor("fused").shape[1], len(spec.map.classes), spec)

    def forward(
        self,
        images: torch.Tensor,
        lidar: tuple[torch.Tensor, ...],
        drop_camera: torch.Tensor | None = None,
        drop_lidar: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``lidar``: (pillars,) or (voxels, coors) with coors' first column the sample's index."""
        feat, depth = self.camera_backbone(images)
        cam = self.vtransform(self.bevpool(feat, depth))
        lid = self.lidar_backbone(*lidar, images.shape[0]) if self.voxel_based else self.lidar_backbone(*lidar)
        if drop_camera is not None:
            cam = cam * (1 - drop_camera)[:, None, None, None]
        if drop_lidar is not None:
            lid = lid * (1 - drop_lidar)[:, None, None, None]
        fused = self.fuser(cam, lid)
        out = dict(zip(self.box_tensors, self.box_head(fused), strict=True))
        return {"camera_depth": depth, **out, "map_logits": self.map_head.logits(fused)}
