"""Geometry on the real nuScenes frame: projection, rig validation, frustum and bevpool indices."""

from __future__ import annotations

import numpy as np
import pytest

from bevfusion_ros.core.errors import CalibrationError
from bevfusion_ros.core.pipeline.bevpool import BevPoolIndex, frustum_points
from bevfusion_ros.core.pipeline.preprocess import ImagePreprocessor
from bevfusion_ros.core.sensors.rig import CameraRig, box_corners, check_rigid, points_in_boxes


def test_lidar_points_of_annotated_boxes_land_inside_their_image_footprint(frame, rig) -> None:  # type: ignore[no-untyped-def]
    boxes = frame.boxes
    inside = points_in_boxes(frame.points, boxes.centers, boxes.sizes, boxes.yaw)
    corners = box_corners(boxes.centers, boxes.sizes, boxes.yaw)
    checked = 0
    for cam in range(len(rig)):
        for b in range(len(boxes)):
            pts = frame.points[inside[:, b], :3]
            if len(pts) < 5:
                continue
            cuv, cdepth, _ = rig.project(corners[b], cam)
            uv, _, visible = rig.project(pts, cam)
            if (cdepth <= 0.5).any() or visible.sum() < 5:
                continue
            lo, hi = cuv.min(axis=0), cuv.max(axis=0)
            inb = (uv[visible] >= lo - 1).all(axis=1) & (uv[visible] <= hi + 1).all(axis=1)
            assert inb.all(), f"{rig.names[cam]} box {b}: {int((~inb).sum())} points outside the footprint"
            checked += 1
    assert checked >= 10  # the frame has dozens of boxes seen by the cameras


def test_points_project_near_the_image_centre_of_the_camera_facing_them(frame, rig) -> None:  # type: ignore[no-untyped-def]
    # A point 20 m along each camera's optical axis (computed via cam2lidar) must land on its principal point.
    for cam in range(len(rig)):
        p = rig.cam2lidar[cam] @ np.array([0, 0, 20.0, 1])
        uv, depth, visible = rig.project(p[None, :3], cam)
        k = rig.intrinsics[cam]
        assert visible[0] and depth[0] == pytest.approx(20.0)
        assert uv[0] == pytest.approx([k.cx, k.cy], abs=1e-6)
    # and the front camera sees the LiDAR's forward (+y) direction, the back camera its -y
    front, back = rig.names.index("CAM_FRONT"), rig.names.index("CAM_BACK")
    assert rig.project(np.array([[0, 20.0, 0]]), front)[2][0]
    assert rig.project(np.array([[0, -20.0, 0]]), back)[2][0]


@pytest.mark.parametrize("bad", [np.diag([1.0, 1.0, 2.0, 1.0]), np.diag([1.0, 1.0, -1.0, 1.0]), np.zeros((3, 4))])
def test_non_rigid_extrinsics_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(CalibrationError, match=r"lidar2cam|4x4|rigid"):
        check_rigid(bad, "lidar2cam")


def test_rig_needs_one_calibration_per_camera(rig) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CalibrationError, match="one intrinsics and one lidar2cam per camera"):
        CameraRig.create(rig.names, rig.intrinsics[:5], list(rig.lidar2cam))


def test_frustum_reprojects_onto_feature_pixel_centres(rig, spec) -> None:  # type: ignore[no-untyped-def]
    pre = ImagePreprocessor(spec.image)
    ts = [pre.transform(k.width, k.height) for k in rig.intrinsics]
    pts = frustum_points(rig, ts, spec.image, spec.camera_bev)
    s = spec.image.feature_stride
    fh, fw = pts.shape[2:4]
    for cam in (0, 3):
        uv, _, _ = rig.project(pts[cam].reshape(-1, 3), cam)
        u_in, v_in = ts[cam].image_to_input(uv[:, 0], uv[:, 1])
        jj, ii = np.meshgrid(np.arange(fw), np.arange(fh))
        want_u = np.broadcast_to((jj + 0.5) * s - 0.5, pts.shape[1:4]).reshape(-1)
        want_v = np.broadcast_to((ii + 0.5) * s - 0.5, pts.shape[1:4]).reshape(-1)
        assert np.abs(u_in - want_u).max() < 1e-6 and np.abs(v_in - want_v).max() < 1e-6


@pytest.mark.parametrize("use_scipy", [False, True], ids=["numpy", "scipy"])
def test_bevpool_matches_a_brute_force_scatter(rig, spec, use_scipy: bool) -> None:  # type: ignore[no-untyped-def]
    """Both pooling paths (numpy; scipy's sparse product where scipy is installed)."""
    if use_scipy:
        pytest.importorskip("scipy.sparse")
    pre = ImagePreprocessor(spec.image)
    index = BevPoolIndex.create(rig, [pre.transform(1600, 900)] * 6, spec.image, spec.camera_bev)
    rng = np.random.default_rng(0)
    n, d, (fh, fw), c = 6, spec.camera_bev.depth_bins, index.feature_hw, 4
    feat = rng.normal(size=(1, n, c, fh, fw)).astype(np.float32)
    depth = rng.random((1, n, d, fh, fw)).astype(np.float32)
    got = index(feat, depth, use_scipy=use_scipy)
    # brute force straight from the frustum geometry, no sorting or intervals
    pts = frustum_points(rig, [pre.transform(1600, 900)] * 6, spec.image, spec.camera_bev)
    g = spec.camera_bev.grid
    ix = np.floor((pts[..., 0] - g.xmin) / g.resolution).astype(int)
    iy = np.floor((pts[..., 1] - g.ymin) / g.resolution).astype(int)
    ok = (
        (ix >= 0)
        & (ix < g.nx)
        & (iy >= 0)
        & (iy < g.ny)
        & (pts[..., 2] >= spec.camera_bev.zmin)
        & (pts[..., 2] < spec.camera_bev.zmax)
    )
    want = np.zeros((c, g.ny * g.nx))
    cam, dd, ii, jj = np.nonzero(ok)
    vals = feat[0, cam, :, ii, jj] * depth[0, cam, dd, ii, jj][:, None]
    for ch in range(c):
        np.add.at(want[ch], iy[ok] * g.nx + ix[ok], vals[:, ch])
    assert np.allclose(got.reshape(c, -1), want, atol=1e-4)
    assert index.points == int(ok.sum()) > 100_000


def test_calibration_that_sees_no_bev_cell_fails_clearly(rig, spec) -> None:  # type: ignore[no-untyped-def]
    # A rigid but absurd calibration (LiDAR 1 km from every camera): nothing would ever reach the BEV grid.
    far = np.eye(4)
    far[2, 3] = 1000.0
    bad = CameraRig.create(rig.names, rig.intrinsics, [far @ m for m in rig.lidar2cam])
    pre = ImagePreprocessor(spec.image)
    with pytest.raises(CalibrationError, match="no camera frustum point"):
        BevPoolIndex.create(bad, [pre.transform(1600, 900)] * 6, spec.image, spec.camera_bev)
