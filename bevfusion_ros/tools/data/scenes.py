"""Generated driving scenes with ground truth, seen by a real camera rig and a 32-beam LiDAR model.

A scene is a road layout (straight roads, optionally crossing, with walkways, pedestrian crossings,
stop lines, a lane divider and car parks) and boxes of the 10 nuScenes classes with typical sizes,
placed where such objects are (vehicles in lanes or parked, pedestrians on walkways and crossings,
cones and barriers at the kerb). Cameras and LiDAR ray-cast the same world: the ground at the LiDAR
mounting height coloured by its map layer, and the boxes as shaded cuboids. Everything is in the
LiDAR frame (x right, y forward, z up, as nuScenes' LIDAR_TOP), deterministic for a seed.
Numpy only: the training code and the evaluation bags both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.model import Grid
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.sensors.rig import CameraRig, box_corners, scale_intrinsics
from bevfusion_ros.core.sensors.sweeps import SweepBuffer

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

CLASS_NAMES = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
MAP_CLASSES = ("drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider")
# Mean nuScenes sizes (l, w, h), relative spread, RGB base colour, LiDAR intensity.
_CLASS = {
    "car": ((4.63, 1.96, 1.74), 0.12, None, 40.0),
    "truck": ((6.93, 2.51, 2.84), 0.2, (0.85, 0.85, 0.82), 35.0),
    "construction_vehicle": ((6.37, 2.85, 3.19), 0.2, (0.95, 0.75, 0.1), 45.0),
    "bus": ((10.5, 2.94, 3.47), 0.12, (0.75, 0.15, 0.12), 38.0),
    "trailer": ((12.29, 2.9, 3.87), 0.15, (0.55, 0.55, 0.6), 30.0),
    "barrier": ((0.5, 2.53, 0.98), 0.1, (0.9, 0.2, 0.15), 70.0),
    "motorcycle": ((2.11, 0.77, 1.47), 0.1, (0.12, 0.12, 0.14), 25.0),
    "bicycle": ((1.7, 0.6, 1.28), 0.1, (0.2, 0.45, 0.75), 20.0),
    "pedestrian": ((0.73, 0.67, 1.77), 0.12, (0.5, 0.35, 0.6), 15.0),
    "traffic_cone": ((0.41, 0.41, 1.07), 0.1, (1.0, 0.45, 0.05), 90.0),
}
_LAYER_RGB = {  # ground colour by topmost layer
    "grass": (0.28, 0.42, 0.2),
    "drivable_area": (0.3, 0.3, 0.32),
    "walkway": (0.62, 0.6, 0.56),
    "carpark_area": (0.45, 0.4, 0.34),
    "marking": (0.92, 0.92, 0.9),
    "divider": (0.9, 0.78, 0.2),
}
_LAYER_INTENSITY = {
    "grass": 8.0,
    "drivable_area": 4.0,
    "walkway": 18.0,
    "carpark_area": 10.0,
    "marking": 95.0,
    "divider": 90.0,
}
LIDAR_HEIGHT = 1.84
# Cameras render at a quarter of nuScenes' 1600x900: the pre-processing maps both to the same input.
RENDER_SIZE = (400, 225)
# Held-out scenes start at this seed; training seeds stay below it.
EVAL_SEED_BASE = 10_000_000
# INT8 calibration scenes (training/quantize.py, training/qat.py): neither training nor evaluation
CALIBRATION_SEED_BASE = 30_000_000
BEAMS = np.deg2rad(np.linspace(-30.67, 10.67, 32))
AZIMUTHS = 1084
MAX_RANGE = 70.0


@dataclass(frozen=True)
class Road:
    x: float
    y: float
    heading: float
    half_width: float
    half_length: float
    crossings: tuple[float, ...]  # positions s along the road of pedestrian crossings
    walk_width: float = 3.0

    def local(self, x: F64, y: F64) -> tuple[F64, F64]:
        c, s = np.cos(self.heading), np.sin(self.heading)
        dx, dy = x - self.x, y - self.y
        return dx * c + dy * s, -dx * s + dy * c


@dataclass(frozen=True)
class Scene:
    seed: int
    roads: tuple[Road, ...]
    carparks: tuple[tuple[float, float, float, float, float], ...]  # x, y, heading, half length, half width
    boxes: Detections  # geometric centres, LiDAR frame
    colors: F32  # (N, 3) RGB in 0..1
    ground_z: float = -LIDAR_HEIGHT


def map_layers(scene: Scene, x: F64, y: F64) -> dict[str, npt.NDArray[np.bool_]]:
    """Boolean membership of points (any shape) in each map class, plus 'marking' (white paint)."""
    shape = np.shape(x)
    z = np.zeros(shape, bool)
    drivable, walk, cross, stop, divider, marking = z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy()
    on_roads = []
    for r in scene.roads:
        s, t = r.local(x, y)
        on = (np.abs(t) <= r.half_width) & (np.abs(s) <= r.half_length)
        on_roads.append((r, s, t, on))
        drivable |= on
    for r, s, t, on in on_roads:
        walk |= (np.abs(t) > r.half_width) & (np.abs(t) <= r.half_width + r.walk_width) & (np.abs(s) <= r.half_length)
        others = np.zeros(shape, bool)
        for r2, _, _, on2 in on_roads:
            if r2 is not r:
                others |= on2
        divider |= on & (np.abs(t) <= 0.15) & ~others
        for sc in r.crossings:
            band = on & (np.abs(s - sc) <= 1.5) & ~others
            cross |= band
            marking |= band & (np.floor(t / 0.6) % 2 == 0)
            for side in (-1.0, 1.0):  # a stop line before the crossing in each direction of travel
                line = on & ~others & (np.abs(s - (sc + side * 2.6)) <= 0.25) & (t * side > 0)
                stop |= line
                marking |= line
    walk &= ~drivable
    park = z.copy()
    for cx, cy, h, hl, hw in scene.carparks:
        c, s_ = np.cos(h), np.sin(h)
        dx, dy = x - cx, y - cy
        park |= (np.abs(dx * c + dy * s_) <= hl) & (np.abs(-dx * s_ + dy * c) <= hw)
    park &= ~drivable & ~walk
    return {
        "drivable_area": drivable,
        "ped_crossing": cross,
        "walkway": walk,
        "stop_line": stop,
        "carpark_area": park,
        "divider": divider,
        "marking": marking,
    }


def rasterize_map(scene: Scene, grid: Grid) -> npt.NDArray[np.bool_]:
    """(6, ny, nx) ground-truth map in MAP_CLASSES order, sampled at cell centres."""
    xs = grid.xmin + (np.arange(grid.nx) + 0.5) * grid.resolution
    ys = grid.ymin + (np.arange(grid.ny) + 0.5) * grid.resolution
    xx, yy = np.meshgrid(xs, ys)
    layers = map_layers(scene, xx, yy)
    return np.stack([layers[c] for c in MAP_CLASSES])


def _ground_appearance(scene: Scene, x: F64, y: F64) -> tuple[F64, F64]:
    layers = map_layers(scene, x, y)
    rgb = np.empty((*np.shape(x), 3))
    rgb[:] = _LAYER_RGB["grass"]
    inten = np.full(np.shape(x), _LAYER_INTENSITY["grass"])
    for name in ("carpark_area", "walkway", "drivable_area", "divider", "marking"):
        m = layers[name]
        rgb[m] = _LAYER_RGB[name]
        inten[m] = _LAYER_INTENSITY[name]
    texture = 0.06 * np.sin(x * 3.1 + np.cos(y * 2.3)) * np.cos(y * 2.7 + x * 0.7)
    return rgb * (1.0 + texture[..., None]), inten


def _place(rng: np.random.Generator, roads: tuple[Road, ...], name: str) -> tuple[float, float, float, float] | None:
    """A plausible (x, y, yaw, speed) for an object of class ``name``."""
    r = roads[int(rng.integers(len(roads)))]
    s = rng.uniform(-r.half_length, r.half_length)
    speed = 0.0
    if name in ("car", "truck", "bus", "construction_vehicle", "trailer", "motorcycle"):
        lane = rng.choice([-1.0, 1.0])
        parked = rng.random() < 0.35 and name != "bus"
        t = lane * (r.half_width - 1.3) if parked else lane * r.half_width / 2
        yaw = r.heading + (0.0 if lane < 0 else np.pi) + rng.normal(0, 0.05)
        speed = 0.0 if parked else rng.uniform(0, 12)
    elif name == "bicycle":
        t = rng.choice([-1.0, 1.0]) * (r.half_width - 0.6)
        yaw, speed = r.heading + rng.choice([0.0, np.pi]), rng.uniform(0, 5)
    elif name == "pedestrian":
        if r.crossings and rng.random() < 0.3:
            s = float(rng.choice(r.crossings)) + rng.uniform(-1, 1)
            t = rng.uniform(-r.half_width, r.half_width)
        else:
            t = rng.choice([-1.0, 1.0]) * (r.half_width + rng.uniform(0.5, r.walk_width - 0.5))
        yaw, speed = rng.uniform(-np.pi, np.pi), rng.uniform(0, 1.5)
    else:  # barrier, traffic_cone: at the kerb
        t = rng.choice([-1.0, 1.0]) * (r.half_width - rng.uniform(0.2, 0.8))
        yaw = r.heading + (np.pi / 2 if name == "barrier" else rng.uniform(-np.pi, np.pi))
    c, sn = np.cos(r.heading), np.sin(r.heading)
    return r.x + s * c - t * sn, r.y + s * sn + t * c, float(yaw), float(speed)


_COUNTS = {
    "car": (6, 18),
    "truck": (0, 3),
    "construction_vehicle": (0, 2),
    "bus": (0, 2),
    "trailer": (0, 2),
    "barrier": (0, 6),
    "motorcycle": (0, 3),
    "bicycle": (0, 3),
    "pedestrian": (2, 12),
    "traffic_cone": (0, 6),
}


def generate_scene(seed: int, extent: float = 54.0) -> Scene:
    rng = np.random.default_rng(seed)
    heading = rng.uniform(-np.pi, np.pi)
    hw = rng.uniform(3.5, 7.5)
    main = Road(rng.normal(0, 1.0), rng.normal(0, 1.0), heading, hw, 90.0, ())
    roads = [main]
    if rng.random() < 0.6:  # a crossing road and crossings on both sides of the junction
        s0 = rng.uniform(-25, 25)
        hw2 = rng.uniform(3.5, 6.5)
        cx, cy = main.x + s0 * np.cos(heading), main.y + s0 * np.sin(heading)
        d = hw2 + 2.0
        main = Road(main.x, main.y, heading, hw, 90.0, (s0 - d, s0 + d))
        roads = [main, Road(cx, cy, heading + np.pi / 2 + rng.normal(0, 0.05), hw2, 90.0, (-hw - 2.0, hw + 2.0))]
    elif rng.random() < 0.5:
        roads = [Road(main.x, main.y, heading, hw, 90.0, (rng.uniform(-20, 20),))]
    carparks = []
    for _ in range(int(rng.integers(0, 3))):
        r = roads[0]
        side = rng.choice([-1.0, 1.0])
        s, t = rng.uniform(-40, 40), side * (r.half_width + r.walk_width + rng.uniform(6, 12))
        carparks.append(
            (
                r.x + s * np.cos(r.heading) - t * np.sin(r.heading),
                r.y + s * np.sin(r.heading) + t * np.cos(r.heading),
                r.heading,
                rng.uniform(8, 20),
                rng.uniform(5, 9),
            )
        )
    rows: list[tuple[float, ...]] = []
    placed: list[tuple[float, float, float]] = []
    for label, name in enumerate(CLASS_NAMES):
        lo, hi = _COUNTS[name]
        (length, w, h), spread, base, _ = _CLASS[name]
        for _ in range(int(rng.integers(lo, hi + 1))):
            for _attempt in range(8):
                pose = _place(rng, tuple(roads), name)
                if pose is None:
                    break
                x, y, yaw, speed = pose
                size = np.array([length, w, h]) * np.clip(1 + rng.normal(0, spread, 3), 0.7, 1.3)
                radius = 0.5 * float(np.hypot(size[0], size[1]))
                if abs(x) > extent or abs(y) > extent or np.hypot(x, y) < 4.0 + radius:
                    continue
                if any(np.hypot(x - px, y - py) < radius + pr + 0.3 for px, py, pr in placed):
                    continue
                placed.append((x, y, radius))
                color = (
                    rng.uniform(0.1, 0.9, 3) if base is None else np.clip(np.array(base) + rng.normal(0, 0.05, 3), 0, 1)
                )
                rows.append(
                    (
                        x,
                        y,
                        -LIDAR_HEIGHT + size[2] / 2,
                        *size,
                        yaw,
                        label,
                        speed * np.cos(yaw),
                        speed * np.sin(yaw),
                        *color,
                    )
                )
                break
    arr = np.asarray(rows, np.float64).reshape(-1, 13)
    boxes = Detections.create(
        arr[:, 0:3], arr[:, 3:6], arr[:, 6], np.ones(len(arr)), arr[:, 7].astype(int), CLASS_NAMES, arr[:, 8:10]
    )
    return Scene(seed, tuple(roads), tuple(carparks), boxes, arr[:, 10:13].astype(np.float32))


def moved(scene: Scene, shift_xy: tuple[float, float], dt: float) -> Scene:
    """The scene ``dt`` s later, seen from a LiDAR that moved by ``shift_xy`` (m, in its own frame,
    no turn): the world slides back by the shift, every object also moves by its velocity."""
    sx, sy = shift_xy
    roads = tuple(replace(r, x=r.x - sx, y=r.y - sy) for r in scene.roads)
    carparks = tuple((x - sx, y - sy, *rest) for x, y, *rest in scene.carparks)
    b = scene.boxes
    centers = b.centers.astype(np.float64).copy()
    centers[:, :2] += b.velocities.astype(np.float64) * dt - (sx, sy)
    boxes = Detections.create(centers, b.sizes, b.yaw, b.scores, b.labels, b.class_names, b.velocities)
    return replace(scene, roads=roads, carparks=carparks, boxes=boxes)  # type: ignore[arg-type]


DRIVE_MAX_SPEED = 14.0  # m/s, the ego's top speed in drive()


def drive(
    seed: int, sweeps: int, frames: int, rate: float = 10.0, ego_speed: float | None = None
) -> list[tuple[Scene, F32]]:
    """``frames`` consecutive frames of a drive through scene ``seed``: the ego moves straight at
    ``ego_speed`` (default: random up to DRIVE_MAX_SPEED) on a random heading, objects move at their
    own velocities, the LiDAR sweeps at ``rate`` Hz. Each frame is its scene in the current LiDAR
    frame and the (N, 5) cloud of the current and ``sweeps - 1`` past sweeps (x, y, z, intensity,
    time lag), densified by the runtime's own SweepBuffer with the ego poses, as the node does."""
    rng = np.random.default_rng(seed + 7_777_777)
    start = generate_scene(seed)
    speed = float(rng.uniform(0.0, DRIVE_MAX_SPEED)) if ego_speed is None else ego_speed
    heading = rng.uniform(-np.pi, np.pi)
    velocity = speed * np.array([np.cos(heading), np.sin(heading)])
    buffer = SweepBuffer(sweeps)
    out = []
    for k in range(sweeps - 1 + frames):
        t = k / rate
        shift = velocity * t  # the LiDAR's position in the first frame's axes
        scene = moved(start, (float(shift[0]), float(shift[1])), t)
        pose = np.eye(4)
        pose[:2, 3] = shift
        cloud = buffer.add(lidar_sweep(scene, rng), t, pose).points
        if k >= sweeps - 1:
            out.append((scene, cloud))
    return out


def _ray_boxes(
    origin: F64, dirs: F64, scene: Scene, candidates: list[npt.NDArray[np.int64] | None] | None = None
) -> tuple[F64, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Nearest box hit per ray: distance (inf if none), box index, face normal axis (0..2) in box frame.
    ``candidates[i]`` limits box i to those ray indices (None: all rays)."""
    b = scene.boxes
    n = dirs.shape[0]
    best = np.full(n, np.inf, np.float64)
    which = np.full(n, -1, np.int64)
    axis = np.zeros(n, np.int64)
    for i in range(len(b)):
        idx = None if candidates is None else candidates[i]
        if idx is not None and idx.size == 0:
            continue
        c, s = np.cos(b.yaw[i]), np.sin(b.yaw[i])
        rot = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])  # world -> box
        o = rot @ (origin - b.centers[i])
        d = (dirs if idx is None else dirs[idx]) @ rot.T
        half = b.sizes[i] / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1, t2 = (-half - o) * inv, (half - o) * inv
        tmin3 = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
        tmax3 = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
        tmin, tmax = tmin3.max(axis=1), tmax3.min(axis=1)
        rays = np.arange(n) if idx is None else idx
        hit = (tmax >= tmin) & (tmin > 0) & (tmin < best[rays])
        best[rays[hit]] = tmin[hit]
        which[rays[hit]] = i
        axis[rays[hit]] = tmin3[hit].argmax(axis=1)
    return best, which, axis


def _screen_candidates(
    scene: Scene, kk: F64, lidar2cam: F64, width: int, height: int
) -> list[npt.NDArray[np.int64] | None]:
    """Per box, the pixel indices inside its projected bounding rectangle (boxes behind the camera: none)."""
    corners = box_corners(scene.boxes.centers, scene.boxes.sizes, scene.boxes.yaw)
    out: list[npt.NDArray[np.int64] | None] = []
    for cs in corners:
        cam = cs @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
        if (cam[:, 2] <= 0.05).all():
            out.append(np.zeros(0, np.int64))
            continue
        if (cam[:, 2] <= 0.05).any():
            out.append(None)
            continue
        uv = (cam @ kk.T)[:, :2] / cam[:, 2:3]
        u0, v0 = np.floor(uv.min(axis=0)).astype(int) - 1
        u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 1
        u0, u1, v0, v1 = max(u0, 0), min(u1, width), max(v0, 0), min(v1, height)
        if u0 >= u1 or v0 >= v1:
            out.append(np.zeros(0, np.int64))
            continue
        vv, uu = np.meshgrid(np.arange(v0, v1), np.arange(u0, u1), indexing="ij")
        out.append((vv * width + uu).reshape(-1))
    return out


def lidar_sweep(scene: Scene, rng: np.random.Generator | None = None) -> F32:
    """(N, 5) float32 x, y, z, intensity, ring: a 32-beam spinning LiDAR at the origin."""
    rng = rng or np.random.default_rng(scene.seed + 1)
    az = np.linspace(-np.pi, np.pi, AZIMUTHS, endpoint=False) + rng.uniform(0, 2 * np.pi / AZIMUTHS)
    el, a = np.meshgrid(BEAMS, az, indexing="ij")
    ring = np.broadcast_to(np.arange(32)[:, None], el.shape).reshape(-1)
    dirs = np.stack([np.cos(el) * np.cos(a), np.cos(el) * np.sin(a), np.sin(el)], axis=-1).reshape(-1, 3)
    origin = np.zeros(3)
    t_box, which, _ = _ray_boxes(origin, dirs, scene)
    with np.errstate(divide="ignore"):
        t_ground = np.where(dirs[:, 2] < -1e-6, scene.ground_z / dirs[:, 2], np.inf)
    t = np.minimum(t_box, t_ground)
    valid = (t < MAX_RANGE) & (rng.random(t.size) > 0.03)
    t = np.where(valid, t, 0.0) + rng.normal(0, 0.02, t.size)
    pts = dirs * t[:, None]
    gx, gy = pts[:, 0], pts[:, 1]
    _, inten = _ground_appearance(scene, gx, gy)
    box_hit = t_box <= t_ground
    obj_int = np.array([_CLASS[CLASS_NAMES[k]][3] for k in scene.boxes.labels.tolist()] or [0.0])
    inten = np.where(box_hit, obj_int[np.maximum(which, 0)], inten) * rng.uniform(0.8, 1.2, t.size)
    out = np.concatenate([pts, np.clip(inten, 0, 255)[:, None], ring[:, None]], axis=1)[valid]
    return np.asarray(out, np.float32)


def render_camera(scene: Scene, rig: CameraRig, camera: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """HxWx3 uint8 BGR image of the scene from camera ``camera`` of the rig, at any resolution."""
    k = rig.intrinsics[camera]
    kk = scale_intrinsics(k.K, width / k.width, height / k.height)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays_cam = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ np.linalg.inv(kk).T
    cam2lidar = rig.cam2lidar[camera]
    dirs = rays_cam @ cam2lidar[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origin = cam2lidar[:3, 3]
    sky = 0.55 + 0.35 * np.clip(dirs[:, 2], 0, 1)[:, None] * np.array([0.2, 0.4, 0.9])
    rgb = np.broadcast_to(sky * np.array([0.85, 0.92, 1.0]), (dirs.shape[0], 3)).copy()
    with np.errstate(divide="ignore"):
        t_ground = np.where(dirs[:, 2] < -1e-6, (scene.ground_z - origin[2]) / dirs[:, 2], np.inf)
    ground = t_ground < 400
    gp = origin + dirs[ground] * t_ground[ground][:, None]
    grgb, _ = _ground_appearance(scene, gp[:, 0], gp[:, 1])
    fog = np.clip(t_ground[ground] / 250.0, 0, 1)[:, None]
    rgb[ground] = grgb * (1 - fog) + rgb[ground] * fog
    cands = _screen_candidates(scene, kk, rig.lidar2cam[camera], width, height)
    t_box, which, axis = _ray_boxes(origin, dirs, scene, cands)
    hit = t_box < t_ground
    if hit.any():
        shade = np.array([0.75, 0.95, 1.15])[axis[hit]]
        rgb[hit] = scene.colors[which[hit]] * shade[:, None]
    img = np.clip(rgb * 255.0, 0, 255).astype(np.uint8).reshape(height, width, 3)
    return np.ascontiguousarray(img[..., ::-1])


def render_cameras(scene: Scene, rig: CameraRig, width: int, height: int) -> list[npt.NDArray[np.uint8]]:
    return [render_camera(scene, rig, i, width, height) for i in range(len(rig))]
