"""The model contract: a YAML that describes BEVFusion's deployment split, read into frozen dataclasses.

One file names every stage (ONNX or runtime-provided), its tensors with shapes and dtypes, and the
pre/post-processing constants the runtime needs. It is validated once at load: every problem is a
``ConfigError`` naming the key path and the allowed values. See engines/README.md for the layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.yamlfile import load_yaml


class StageKind(str, Enum):
    """What runs a stage: a backend (``onnx``) or the runtime itself (numpy, with CUDA twins).

    A ``str`` mixin rather than ``enum.StrEnum`` (Python 3.11+): JetPack 6 runs Python 3.10. Its
    ``str()`` and ``format()`` are the value, as StrEnum's are, on every Python version.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    ONNX = "onnx"
    IMAGE_PREPROCESS = "image_preprocess"
    BEVPOOL = "bevpool"
    PILLARIZE = "pillarize"
    VOXELIZE = "voxelize"
    PILLAR_FEATURES = "pillar_features"
    SCATTER = "scatter"

    @property
    def runtime(self) -> bool:
        """Implemented by the runtime (host or CUDA pre-processing), not by a model file."""
        return self is not StageKind.ONNX

    @property
    def voxel_based(self) -> bool:
        """A real export's LiDAR front end (core/pipeline/voxels.py), configured by its stage keys."""
        return self in (StageKind.VOXELIZE, StageKind.PILLAR_FEATURES, StageKind.SCATTER)

    @property
    def sensor_fed(self) -> bool:
        """Fed by sensor data (images, points), not by other stages' tensors."""
        return self in (StageKind.IMAGE_PREPROCESS, StageKind.PILLARIZE, StageKind.VOXELIZE)

    @property
    def modality(self) -> str | None:
        """The sensor a sensor-fed stage reads (CAMERA or LIDAR); None for the others."""
        if self is StageKind.IMAGE_PREPROCESS:
            return CAMERA
        return LIDAR if self.sensor_fed else None


CAMERA, LIDAR = "camera", "lidar"
# Which sensors a frame runs on. camera_only: no LiDAR sweep (the LiDAR branch is masked);
# lidar_only: no usable camera (the camera branch is masked).
FULL, CAMERA_ONLY, LIDAR_ONLY = "full", "camera_only", "lidar_only"
SENSOR_MODES = (FULL, CAMERA_ONLY, LIDAR_ONLY)


ONNX = StageKind.ONNX
DTYPES = ("float32", "float16", "int32", "int64", "uint8", "bool")
DECODERS = ("centerpoint", "transfusion")
NMS_TYPES = ("circle", "none")
CHANNEL_ORDERS = ("rgb", "bgr")


def _get(d: Mapping[str, Any], key: str, where: str, typ: type | tuple[type, ...] | None = None) -> Any:
    if key not in d:
        msg = f"{where}.{key} is missing"
        raise ConfigError(msg)
    value = d[key]
    if typ is not None and not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        msg = f"{where}.{key} must be {names}, got {value!r}"
        raise ConfigError(msg)
    return value


def _floats(value: Any, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        msg = f"{where} must be a list of {n} numbers, got {value!r}"
        raise ConfigError(msg)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        msg = f"{where} must be a list of {n} numbers, got {value!r}"
        raise ConfigError(msg) from None
    if not all(math.isfinite(v) for v in out):
        msg = f"{where} must be finite numbers, got {value!r}"
        raise ConfigError(msg)
    return out


def _choice(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        msg = f"{where} is {value!r}; allowed: {', '.join(allowed)}"
        raise ConfigError(msg)
    return str(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        msg = f"{where} must be a non-empty list of names, got {value!r}"
        raise ConfigError(msg)
    out = tuple(str(v) for v in value)
    if len(set(out)) != len(out):
        msg = f"{where} has duplicate names: {list(out)}"
        raise ConfigError(msg)
    return out


@dataclass(frozen=True)
class TensorSpec:
    """A stage input or output. A dimension of -1 is dynamic (checked at run time only)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def parse(cls, name: str, raw: Any, where: str) -> TensorSpec:
        if not isinstance(raw, Mapping):
            msg = f"{where} must be a mapping with 'shape' and 'dtype', got {raw!r}"
            raise ConfigError(msg)
        shape = _get(raw, "shape", where, list)
        if not all(isinstance(d, int) and (d > 0 or d == -1) for d in shape):
            msg = f"{where}.shape must be a list of positive integers (or -1 for dynamic), got {shape!r}"
            raise ConfigError(msg)
        dtype = _choice(raw.get("dtype", "float32"), DTYPES, f"{where}.dtype")
        return cls(name, tuple(shape), dtype)

    def matches(self, shape: Sequence[int | str | None]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(w == -1 or not isinstance(g, int) or g == w for w, g in zip(self.shape, shape, strict=True))


REDUCE = ("mean", "none")


@dataclass(frozen=True)
class VoxelGrid:
    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nz, ny, nx): cells per axis, rounded as mmcv does."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(round((r[i + 3] - r[i]) / v[i]) for i in (2, 1, 0))  # type: ignore[return-value]

    def validate(self, where: str) -> None:
        r, v = self.point_cloud_range, self.voxel_size
        if any(s <= 0 for s in v):
            msg = f"{where}.voxel_size must be positive, got {list(v)}"
            raise ConfigError(msg)
        if any(r[i + 3] <= r[i] for i in range(3)):
            msg = f"{where}.point_cloud_range must be [xmin, ymin, zmin, xmax, ymax, zmax], min < max; got {list(r)}"
            raise ConfigError(msg)


@dataclass(frozen=True)
class VoxelStageConfig:
    """The keys of a voxelize / pillar_features / scatter stage (a real export's LiDAR front end)."""

    grid: VoxelGrid
    max_points: int = 0  # voxelize: points kept per voxel
    max_voxels: int = 0  # voxelize: voxels kept per sweep
    reduce: str = "mean"  # voxelize: mean -> [M, C]; none -> [M, max_points, C]
    with_distance: bool = False  # pillar_features: the point's distance as an extra feature


@dataclass(frozen=True)
class Stage:
    name: str
    kind: StageKind
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    file: str = ""
    # The TensorRT plugin creators a stage's graph needs (a sparse-convolution LiDAR encoder's ops);
    # ONNX Runtime runs those ops from the package's CPU implementations (core/backends/onnxruntime).
    plugins: tuple[str, ...] = ()
    dla_capable: bool = True
    voxels: VoxelStageConfig | None = None  # the keys of a voxel-based stage


@dataclass(frozen=True)
class ImageConfig:
    """How a camera image becomes a network input (BEVFusion's resize + bottom crop + normalise)."""

    input_height: int
    input_width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str  # channel order the network expects
    feature_stride: int


@dataclass(frozen=True)
class Grid:
    """An axis-aligned BEV grid in the LiDAR frame; cell (iy, ix) has centre xmin + (ix + 0.5) * dx."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    resolution: float

    @property
    def nx(self) -> int:
        return round((self.xmax - self.xmin) / self.resolution)

    @property
    def ny(self) -> int:
        return round((self.ymax - self.ymin) / self.resolution)


POINT_FEATURES = ("x", "y", "z", "intensity", "time_lag")


@dataclass(frozen=True)
class LidarConfig:
    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]
    max_points: int
    intensity_scale: float  # divides the raw intensity (nuScenes: 0..255)
    # the point columns a voxel front end reads, in order; time_lag (s since the sweep, 0 for the
    # newest) comes with densified sweeps
    point_features: tuple[str, ...] = POINT_FEATURES[:4]
    sweeps: int = 1  # sweeps the model was trained on (the current one plus sweeps - 1 past ones)

    @property
    def grid(self) -> Grid:
        r = self.point_cloud_range
        return Grid(r[0], r[1], r[3], r[4], self.voxel_size[0])


@dataclass(frozen=True)
class CameraBevConfig:
    depth: tuple[float, float, float]  # start, stop, step in metres along the optical axis
    grid: Grid
    zmin: float
    zmax: float

    @property
    def depth_bins(self) -> int:
        start, stop, step = self.depth
        return round((stop - start) / step)


@dataclass(frozen=True)
class ScoreThresholds:
    """Per class and distance bin, as Autoware tunes detection filters: a box of class ``k`` at
    ground range r (m, from the LiDAR) is kept when its score reaches ``table[k][bin(r)]``, the bins
    split at ``distances`` (ascending)."""

    distances: tuple[float, ...]
    table: tuple[tuple[float, ...], ...]  # per class (class_names order), len(distances) + 1 each

    @property
    def lowest(self) -> float:
        return min(min(row) for row in self.table)


@dataclass(frozen=True)
class PostprocessConfig:
    decoder: str
    score_threshold: float
    max_detections: int
    nms: str
    nms_radius: tuple[float, ...]  # per class, metres (circle NMS), as CenterPoint tunes it
    out_grid: Grid  # grid of the head's output maps
    heatmap_sigmoid: bool  # True when the head emits logits
    score_thresholds: ScoreThresholds | None = None  # overrides score_threshold per class and range

    @property
    def candidate_threshold(self) -> float:
        """What the decoders keep before the per-class, per-range filter."""
        return self.score_threshold if self.score_thresholds is None else self.score_thresholds.lowest


@dataclass(frozen=True)
class MapConfig:
    classes: tuple[str, ...]
    grid: Grid
    threshold: float
    output_sigmoid: bool


@dataclass(frozen=True)
class ModalityDropout:
    """The share of training samples that had one branch's BEV features zeroed (BEVFusion's modality
    dropout). A model runs without a sensor only if it learned to: the runtime masks a branch the same
    way (its BEV features zeroed before the fuser) when this share is above 0."""

    camera: float = 0.0
    lidar: float = 0.0

    def allows(self, mode: str) -> bool:
        return mode == FULL or (mode == CAMERA_ONLY and self.lidar > 0) or (mode == LIDAR_ONLY and self.camera > 0)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    directory: Path
    cameras: tuple[str, ...]
    class_names: tuple[str, ...]
    image: ImageConfig
    camera_bev: CameraBevConfig
    lidar: LidarConfig
    post: PostprocessConfig
    map: MapConfig | None
    stages: tuple[Stage, ...]
    modality_dropout: ModalityDropout = ModalityDropout()

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        msg = f"model '{self.name}' has no stage '{name}'; stages: {', '.join(s.name for s in self.stages)}"
        raise ConfigError(msg)

    def path(self, stage: Stage) -> Path:
        return self.directory / stage.file

    def branch(self, modality: str) -> frozenset[str]:
        """The stages that depend on ``modality``'s sensor alone (its branch up to the fuser)."""
        return frozenset(n for n, m in stage_modalities(self.stages).items() if m == {modality})

    @property
    def predicts_velocity(self) -> bool:
        """Whether a stage emits the head's ``vel`` map (the decoders' optional velocity)."""
        return any(t.name == "vel" for s in self.stages for t in s.outputs)

    def tensor(self, name: str) -> TensorSpec:
        for s in self.stages:
            for t in (*s.inputs, *s.outputs):
                if t.name == name:
                    return t
        msg = f"model '{self.name}' has no tensor '{name}'"
        raise ConfigError(msg)


def stage_modalities(stages: Sequence[Stage]) -> dict[str, frozenset[str]]:
    """Per stage, the sensors its inputs come from (the fuser: both)."""
    source: dict[str, frozenset[str]] = {}
    out: dict[str, frozenset[str]] = {}
    for s in stages:
        own = s.kind.modality
        mods = frozenset({own}) if own else frozenset().union(*(source.get(t.name, frozenset()) for t in s.inputs))
        out[s.name] = mods
        for t in s.outputs:
            source[t.name] = mods
    return out


def _grid(raw: Any, where: str) -> Grid:
    if not isinstance(raw, Mapping):
        msg = f"{where} must be a mapping with xbound and ybound ([min, max, step])"
        raise ConfigError(msg)
    x = _floats(_get(raw, "xbound", where), 3, f"{where}.xbound")
    y = _floats(_get(raw, "ybound", where), 3, f"{where}.ybound")
    if x[2] != y[2] or x[2] <= 0:
        msg = f"{where}: xbound and ybound must share one positive step (square cells), got {x[2]} and {y[2]}"
        raise ConfigError(msg)
    if x[1] <= x[0] or y[1] <= y[0]:
        msg = f"{where}: bounds must have min < max, got xbound {x} and ybound {y}"
        raise ConfigError(msg)
    g = Grid(x[0], y[0], x[1], y[1], x[2])
    for n, lo, hi in (("x", x[0], x[1]), ("y", y[0], y[1])):
        cells = (hi - lo) / x[2]
        if abs(cells - round(cells)) > 1e-6:
            msg = f"{where}.{n}bound: ({hi} - {lo}) / {x[2]} is not a whole number of cells"
            raise ConfigError(msg)
    return g


_VOXEL_KEYS = {
    StageKind.VOXELIZE: ("point_cloud_range", "voxel_size", "max_points", "max_voxels", "reduce"),
    StageKind.PILLAR_FEATURES: ("point_cloud_range", "voxel_size", "with_distance"),
    StageKind.SCATTER: ("point_cloud_range", "voxel_size"),
}
_STAGE_KEYS = ("kind", "inputs", "outputs", "file", "plugin", "dla")


def _voxel_config(kind: StageKind, raw: Mapping[str, Any], where: str, lidar: LidarConfig) -> VoxelStageConfig:
    rng = raw.get("point_cloud_range", list(lidar.point_cloud_range))
    grid = VoxelGrid(
        _floats(rng, 6, f"{where}.point_cloud_range"),  # type: ignore[arg-type]
        _floats(_get(raw, "voxel_size", where), 3, f"{where}.voxel_size"),  # type: ignore[arg-type]
    )
    grid.validate(where)
    if kind is not StageKind.VOXELIZE:
        return VoxelStageConfig(grid, with_distance=bool(raw.get("with_distance", False)))
    limits = {}
    for key in ("max_points", "max_voxels"):
        value = _get(raw, key, where, int)
        if value < 1:
            msg = f"{where}.{key} must be >= 1, got {value}"
            raise ConfigError(msg)
        limits[key] = value
    reduce = _choice(raw.get("reduce", "mean"), REDUCE, f"{where}.reduce")
    return VoxelStageConfig(grid, limits["max_points"], limits["max_voxels"], reduce)


def _stage(name: str, raw: Any, directory: Path, check_files: bool, lidar: LidarConfig) -> Stage:
    where = f"stages.{name}"
    if not isinstance(raw, Mapping):
        msg = f"{where} must be a mapping"
        raise ConfigError(msg)
    kind = StageKind(_choice(raw.get("kind", ONNX.value), [k.value for k in StageKind], f"{where}.kind"))
    allowed = (*_STAGE_KEYS, *_VOXEL_KEYS.get(kind, ()))
    unknown = sorted(set(raw) - set(allowed))
    if unknown:  # a misspelt key would otherwise be ignored without a word
        msg = f"{where}: unknown key(s) {', '.join(unknown)} for a {kind.value} stage; allowed: {', '.join(allowed)}"
        raise ConfigError(msg)
    ins = _get(raw, "inputs", where, dict)
    outs = _get(raw, "outputs", where, dict)
    inputs = tuple(TensorSpec.parse(k, v, f"{where}.inputs.{k}") for k, v in ins.items())
    outputs = tuple(TensorSpec.parse(k, v, f"{where}.outputs.{k}") for k, v in outs.items())
    file = ""
    if kind == ONNX:
        file = str(_get(raw, "file", where, str))
        if check_files and not (directory / file).is_file():
            msg = f"{where}.file: {directory / file} does not exist"
            raise ConfigError(msg)
    voxels = _voxel_config(kind, raw, where, lidar) if kind.voxel_based else None
    return Stage(
        name, kind, inputs, outputs, file, _plugins(raw.get("plugin"), where), bool(raw.get("dla", True)), voxels
    )


def _score_thresholds(raw: Any, classes: Sequence[str], default: float) -> ScoreThresholds | None:
    """``postprocess.score_thresholds``: {distances: [m, ...], classes: {name: [one per bin]}};
    a class not listed keeps ``score_threshold`` in every bin."""
    if raw is None:
        return None
    where = "postprocess.score_thresholds"
    if not isinstance(raw, Mapping) or set(raw) - {"distances", "classes"}:
        msg = f"{where} must be a mapping with keys distances and classes, got {raw!r}"
        raise ConfigError(msg)
    distances = tuple(float(d) for d in raw.get("distances", []) or [])
    if any(d <= 0 for d in distances) or list(distances) != sorted(set(distances)):
        msg = f"{where}.distances must be ascending positive metres, got {list(distances)}"
        raise ConfigError(msg)
    per_class = raw.get("classes", {}) or {}
    unknown = sorted(set(per_class) - set(classes))
    if unknown:
        msg = f"{where}.classes names {', '.join(unknown)}; allowed: {', '.join(classes)}"
        raise ConfigError(msg)
    bins = len(distances) + 1
    table = []
    for name in classes:
        row = tuple(float(v) for v in per_class.get(name, [default] * bins))
        if len(row) != bins or not all(0.0 <= v <= 1.0 for v in row):
            msg = f"{where}.classes.{name} must be {bins} thresholds in [0, 1] (one per distance bin), got {list(row)}"
            raise ConfigError(msg)
        table.append(row)
    return ScoreThresholds(distances, tuple(table))


def _plugins(raw: Any, where: str) -> tuple[str, ...]:
    names = [raw] if isinstance(raw, str) else raw or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        msg = f"{where}.plugin must be a TensorRT plugin name or a list of them, got {raw!r}"
        raise ConfigError(msg)
    return tuple(names)


def _check_graph(stages: Sequence[Stage]) -> None:
    """Every input must be produced by an earlier stage (or be a pipeline input); shapes must agree."""
    produced: dict[str, tuple[str, TensorSpec]] = {}
    for s in stages:
        for t in s.inputs:
            if s.kind.sensor_fed:
                continue  # their inputs are the sensor data, not tensors
            if t.name not in produced:
                msg = f"stages.{s.name}.inputs.{t.name} is not an output of any earlier stage"
                raise ConfigError(msg)
            src, spec = produced[t.name]
            if not spec.matches(t.shape) or spec.dtype != t.dtype:
                msg = (
                    f"stages.{s.name}.inputs.{t.name} is {list(t.shape)} {t.dtype} but stage {src} "
                    f"produces {list(spec.shape)} {spec.dtype}"
                )
                raise ConfigError(msg)
        for t in s.outputs:
            if t.name in produced:
                msg = f"stages.{s.name}.outputs.{t.name} is already produced by stage {produced[t.name][0]}"
                raise ConfigError(msg)
            produced[t.name] = (s.name, t)


def parse_model(raw: Mapping[str, Any], directory: Path, check_files: bool = True) -> ModelSpec:
    if not isinstance(raw, Mapping):
        msg = "model YAML must be a mapping at the top level"
        raise ConfigError(msg)
    name = str(_get(raw, "name", "model"))
    cams = _names(_get(raw, "cameras", "model"), "cameras")
    classes = _names(_get(raw, "class_names", "model"), "class_names")

    im = _get(raw, "image", "model", dict)
    image = ImageConfig(
        int(_get(im, "input_height", "image", int)),
        int(_get(im, "input_width", "image", int)),
        _floats(_get(im, "mean", "image"), 3, "image.mean"),  # type: ignore[arg-type]
        _floats(_get(im, "std", "image"), 3, "image.std"),  # type: ignore[arg-type]
        _choice(im.get("channel_order", "rgb"), CHANNEL_ORDERS, "image.channel_order"),
        int(_get(im, "feature_stride", "image", int)),
    )
    if image.input_height <= 0 or image.input_width <= 0 or image.feature_stride <= 0:
        msg = "image.input_height, image.input_width and image.feature_stride must be positive"
        raise ConfigError(msg)
    if image.input_height % image.feature_stride or image.input_width % image.feature_stride:
        msg = (
            f"image input {image.input_width}x{image.input_height} is not divisible by "
            f"image.feature_stride {image.feature_stride}"
        )
        raise ConfigError(msg)
    if min(image.std) <= 0:
        msg = f"image.std must be positive, got {list(image.std)}"
        raise ConfigError(msg)

    cb = _get(raw, "camera_bev", "model", dict)
    depth = _floats(_get(cb, "depth", "camera_bev"), 3, "camera_bev.depth")
    if depth[2] <= 0 or depth[1] <= depth[0] or depth[0] <= 0:
        msg = f"camera_bev.depth must be [start > 0, stop > start, step > 0], got {list(depth)}"
        raise ConfigError(msg)
    zb = _floats(_get(cb, "zbound", "camera_bev"), 2, "camera_bev.zbound")
    camera_bev = CameraBevConfig(depth, _grid(cb, "camera_bev"), zb[0], zb[1])  # type: ignore[arg-type]

    li = _get(raw, "lidar", "model", dict)
    pcr = _floats(_get(li, "point_cloud_range", "lidar"), 6, "lidar.point_cloud_range")
    vs = _floats(_get(li, "voxel_size", "lidar"), 3, "lidar.voxel_size")
    if any(pcr[i + 3] <= pcr[i] for i in range(3)) or min(vs) <= 0 or vs[0] != vs[1]:
        msg = f"lidar.point_cloud_range {list(pcr)} / voxel_size {list(vs)}: need min < max and square positive voxels"
        raise ConfigError(msg)
    max_points = int(_get(li, "max_points", "lidar", int))
    if max_points <= 0:
        msg = f"lidar.max_points must be positive, got {max_points}"
        raise ConfigError(msg)
    features = tuple(li.get("point_features", POINT_FEATURES[:4]))
    if features not in (POINT_FEATURES[:4], POINT_FEATURES):
        msg = f"lidar.point_features is {list(features)}; allowed: {list(POINT_FEATURES[:4])} or {list(POINT_FEATURES)}"
        raise ConfigError(msg)
    sweeps = int(li.get("sweeps", 1))
    if sweeps < 1 or (sweeps > 1 and "time_lag" not in features):
        msg = f"lidar.sweeps must be >= 1, and above 1 only with the time_lag point feature; got {sweeps}"
        raise ConfigError(msg)
    lidar = LidarConfig(pcr, vs, max_points, float(li.get("intensity_scale", 255.0)), features, sweeps)  # type: ignore[arg-type]

    pp = _get(raw, "postprocess", "model", dict)
    nms = _choice(pp.get("nms", "circle"), NMS_TYPES, "postprocess.nms")
    radius = pp.get("nms_radius", [1.0] * len(classes))
    radius_t = _floats(radius, len(classes), "postprocess.nms_radius (one per class)")
    thr = float(_get(pp, "score_threshold", "postprocess", (int, float)))
    if not 0.0 <= thr <= 1.0:
        msg = f"postprocess.score_threshold must be in [0, 1], got {thr}"
        raise ConfigError(msg)
    post = PostprocessConfig(
        _choice(pp.get("decoder", "centerpoint"), DECODERS, "postprocess.decoder"),
        thr,
        int(_get(pp, "max_detections", "postprocess", int)),
        nms,
        radius_t,
        _grid(_get(pp, "grid", "postprocess"), "postprocess.grid"),
        bool(pp.get("heatmap_sigmoid", True)),
        _score_thresholds(pp.get("score_thresholds"), classes, thr),
    )

    mp = raw.get("map")
    map_cfg = None
    if mp is not None:
        map_cfg = MapConfig(
            _names(_get(mp, "classes", "map"), "map.classes"),
            _grid(_get(mp, "grid", "map"), "map.grid"),
            float(mp.get("threshold", 0.5)),
            bool(mp.get("output_sigmoid", False)),
        )

    raw_stages = _get(raw, "stages", "model", dict)
    stages = tuple(_stage(k, v, directory, check_files, lidar) for k, v in raw_stages.items())
    _check_graph(stages)
    dropout = _modality_dropout(raw.get("modality_dropout"), stages)
    spec = ModelSpec(name, directory, cams, classes, image, camera_bev, lidar, post, map_cfg, stages, dropout)
    _check_consistency(spec)
    return spec


def _modality_dropout(raw: Any, stages: Sequence[Stage]) -> ModalityDropout:
    if raw is None:
        return ModalityDropout()
    where = "modality_dropout"
    if not isinstance(raw, Mapping) or set(raw) - {CAMERA, LIDAR}:
        msg = f"{where} must be a mapping of {CAMERA} and/or {LIDAR} to the share of training samples without it"
        raise ConfigError(msg)
    shares = {k: float(_get(raw, k, where, (int, float))) for k in raw}
    for k, v in shares.items():
        if not 0.0 <= v < 1.0:
            msg = f"{where}.{k} must be in [0, 1), got {v}"
            raise ConfigError(msg)
    mods = stage_modalities(stages)
    if not any(m == {CAMERA, LIDAR} for m in mods.values()):
        msg = f"{where} needs a fuser: a stage whose inputs come from both the camera and the LiDAR branch"
        raise ConfigError(msg)
    return ModalityDropout(shares.get(CAMERA, 0.0), shares.get(LIDAR, 0.0))


def _check_consistency(spec: ModelSpec) -> None:
    """The YAML's constants must agree with its tensor shapes, or pre/post-processing would misread them."""
    im, n = spec.image, len(spec.cameras)
    for s in spec.stages:
        if s.kind is StageKind.IMAGE_PREPROCESS:
            want = (1, n, 3, im.input_height, im.input_width)
            if s.outputs[0].shape != want:
                msg = f"stages.{s.name}.outputs.{s.outputs[0].name} must be {list(want)} (cameras x image size)"
                raise ConfigError(msg)
        if s.kind is StageKind.BEVPOOL:
            g = spec.camera_bev.grid
            fh, fw = im.input_height // im.feature_stride, im.input_width // im.feature_stride
            feat, depth = s.inputs
            if depth.shape[-3:] != (spec.camera_bev.depth_bins, fh, fw):
                msg = (
                    f"stages.{s.name}.inputs.{depth.name} must end in [depth_bins={spec.camera_bev.depth_bins}, "
                    f"{fh}, {fw}] (camera_bev.depth, image size / feature_stride), got {list(depth.shape)}"
                )
                raise ConfigError(msg)
            if feat.shape[-2:] != (fh, fw) or feat.shape[1] != n:
                msg = f"stages.{s.name}.inputs.{feat.name} must be [1, {n}, C, {fh}, {fw}], got {list(feat.shape)}"
                raise ConfigError(msg)
            out = s.outputs[0]
            if out.shape != (1, feat.shape[2], g.ny, g.nx):
                msg = (
                    f"stages.{s.name}.outputs.{out.name} must be [1, {feat.shape[2]}, {g.ny}, {g.nx}], "
                    f"got {list(out.shape)}"
                )
                raise ConfigError(msg)
        if s.kind is StageKind.PILLARIZE:
            g = spec.lidar.grid
            out = s.outputs[0]
            if out.shape[-2:] != (g.ny, g.nx):
                msg = (
                    f"stages.{s.name}.outputs.{out.name} must end in [{g.ny}, {g.nx}] (lidar grid), "
                    f"got {list(out.shape)}"
                )
                raise ConfigError(msg)
        if s.kind.voxel_based:
            _check_voxel_stage(s, spec.lidar)
    if spec.map is not None and len(spec.map.classes) != _map_channels(spec):
        msg = f"map.classes names {len(spec.map.classes)} classes but the map head outputs {_map_channels(spec)}"
        raise ConfigError(msg)


def _check_voxel_stage(s: Stage, lidar: LidarConfig) -> None:
    """The tensors of a voxel-based stage, in order, as core/pipeline/voxels.py produces them."""
    cfg = s.voxels
    assert cfg is not None
    where = f"stages.{s.name}"
    coords_ok = s.outputs[-1].shape == (-1, 4) and s.outputs[-1].dtype == "int32" if s.outputs else False
    if s.kind is StageKind.VOXELIZE:
        feat_rank = 2 if cfg.reduce == "mean" else 3
        if len(s.outputs) not in (2, 3) or not coords_ok or len(s.outputs[0].shape) != feat_rank:
            shape = "[-1, C]" if cfg.reduce == "mean" else f"[-1, {cfg.max_points}, C]"
            msg = (
                f"{where}.outputs must be features {shape}, optionally num_points [-1] int32, then coords "
                f"[-1, 4] int32 (batch, z, y, x)"
            )
            raise ConfigError(msg)
        if cfg.reduce == "none" and s.outputs[0].shape[1] != cfg.max_points:
            msg = f"{where}.outputs.{s.outputs[0].name} must be [-1, max_points={cfg.max_points}, C]"
            raise ConfigError(msg)
        channels = s.outputs[0].shape[-1]
        if channels not in (-1, len(lidar.point_features)):
            msg = (
                f"{where}.outputs.{s.outputs[0].name} has {channels} features per point but lidar.point_features "
                f"names {len(lidar.point_features)} ({', '.join(lidar.point_features)})"
            )
            raise ConfigError(msg)
    elif s.kind is StageKind.PILLAR_FEATURES:
        if len(s.inputs) != 3 or len(s.outputs) != 1:
            msg = f"{where} takes the voxelize outputs (points [-1, P, C], num_points, coords) and gives one tensor"
            raise ConfigError(msg)
    else:
        _, ny, nx = cfg.grid.shape
        out = s.outputs[0] if len(s.outputs) == 1 else None
        if len(s.inputs) != 2 or out is None or out.shape[0] != 1 or out.shape[2:] != (ny, nx):
            msg = f"{where} takes features [-1, C] and coords [-1, 4] and gives [1, C, {ny}, {nx}] (its voxel grid)"
            raise ConfigError(msg)


def _map_channels(spec: ModelSpec) -> int:
    for s in spec.stages:
        if s.name == "head.map":
            return s.outputs[0].shape[1]
    return -1


def load_model(path: Path | str, check_files: bool = True) -> ModelSpec:
    p = Path(path)
    return parse_model(load_yaml(p, "model YAML", ConfigError), p.parent, check_files)
