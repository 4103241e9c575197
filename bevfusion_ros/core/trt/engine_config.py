"""How to build TensorRT engines for a model: one YAML (config/engines/*.yaml) -> frozen dataclasses.

Per stage: precision (fp32, fp16, int8, best = int8 + fp16); where INT8 scales come from
(``qdq``: Q/DQ nodes in the stage's ONNX file, e.g. model.int8.yaml from training/qat.py; ``calibrator``:
TensorRT's entropy calibrator fed with bag frames); DLA core (-1 = GPU only) with or without GPU
fallback; workspace; optimisation profiles for dynamic inputs. ``defaults`` apply to every stage,
``stages`` override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.trt.engine_cache import PRECISIONS
from bevfusion_ros.core.yamlfile import load_yaml

INT8_SOURCES = ("qdq", "calibrator")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class StageBuild:
    precision: str = "fp16"
    int8_source: str = "qdq"
    dla_core: int = -1
    gpu_fallback: bool = True
    workspace_mb: int = 1024
    profiles: Mapping[str, tuple[Shape, Shape, Shape]] = field(default_factory=dict)  # input -> min, opt, max

    @property
    def uses_int8(self) -> bool:
        return self.precision in ("int8", "best")

    @property
    def calibrated(self) -> bool:
        return self.uses_int8 and self.int8_source == "calibrator"

    def on(self, dla_capable: bool) -> StageBuild:
        """These settings for a stage whose model YAML may forbid DLA (``dla: false``): GPU then."""
        return self if dla_capable or self.dla_core < 0 else replace(self, dla_core=-1)

    def variant(self) -> str:
        return self.precision + (f"-dla{self.dla_core}" if self.dla_core >= 0 else "")


@dataclass(frozen=True)
class CalibrationSettings:
    frames: int = 32
    cache_dir: str = "calibration"  # relative to the engine directory


@dataclass(frozen=True)
class EngineConfig:
    variant: str
    model: Path  # the model YAML whose ONNX files the engines are built from (and run with)
    defaults: StageBuild
    stages: Mapping[str, StageBuild]
    timing_cache: str = "timing.cache"  # relative to the engine directory; "" disables it
    calibration: CalibrationSettings = CalibrationSettings()
    plugins: tuple[Path, ...] = ()
    source: Path | None = None

    def for_stage(self, name: str) -> StageBuild:
        return self.stages.get(name, self.defaults)

    def calibration_cache(self, engine_dir: Path, stage: str) -> Path:
        return engine_dir / self.calibration.cache_dir / f"{stage}.cache"

    def timing_cache_path(self, engine_dir: Path) -> Path | None:
        return engine_dir / self.timing_cache if self.timing_cache else None


_STAGE_KEYS = {"precision", "int8_source", "dla_core", "gpu_fallback", "workspace_mb", "profiles"}


def _stage_build(raw: Any, base: StageBuild, where: str) -> StageBuild:
    if not isinstance(raw, Mapping):
        msg = f"{where} must be a mapping with keys {sorted(_STAGE_KEYS)}"
        raise ConfigError(msg)
    unknown = set(raw) - _STAGE_KEYS
    if unknown:
        msg = f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_STAGE_KEYS)}"
        raise ConfigError(msg)
    values: dict[str, Any] = {}
    if "precision" in raw:
        if raw["precision"] not in PRECISIONS:
            msg = f"{where}.precision is {raw['precision']!r}; allowed: {', '.join(PRECISIONS)}"
            raise ConfigError(msg)
        values["precision"] = raw["precision"]
    if "int8_source" in raw:
        if raw["int8_source"] not in INT8_SOURCES:
            msg = f"{where}.int8_source is {raw['int8_source']!r}; allowed: {', '.join(INT8_SOURCES)}"
            raise ConfigError(msg)
        values["int8_source"] = raw["int8_source"]
    for key, typ, ok, allowed in (
        ("dla_core", int, lambda v: v >= -1, "an integer >= -1 (-1 = GPU only)"),
        ("workspace_mb", int, lambda v: v > 0, "a positive integer (MiB)"),
        ("gpu_fallback", bool, lambda v: True, "true or false"),
    ):
        if key in raw:
            v = raw[key]
            if not isinstance(v, typ) or (typ is int and isinstance(v, bool)) or not ok(v):
                msg = f"{where}.{key} is {v!r}; allowed: {allowed}"
                raise ConfigError(msg)
            values[key] = v
    if "profiles" in raw:
        values["profiles"] = _profiles(raw["profiles"], f"{where}.profiles")
    out = replace(base, **values)
    if out.dla_core >= 0 and out.precision == "fp32":
        msg = f"{where}: DLA runs only fp16 or int8; set precision fp16/int8/best or dla_core -1"
        raise ConfigError(msg)
    if out.dla_core >= 0 and out.calibrated is False and out.uses_int8:
        msg = (
            f"{where}: INT8 on DLA needs int8_source: calibrator (NVIDIA documents IInt8EntropyCalibrator2 as the "
            "calibrator required for DLA); Q/DQ models are built for the GPU"
        )
        raise ConfigError(msg)
    return out


def _profiles(raw: Any, where: str) -> dict[str, tuple[Shape, Shape, Shape]]:
    if not isinstance(raw, Mapping):
        msg = f"{where} must map input names to {{min: [...], opt: [...], max: [...]}}"
        raise ConfigError(msg)
    out = {}
    for name, p in raw.items():
        if not isinstance(p, Mapping) or set(p) != {"min", "opt", "max"}:
            msg = f"{where}.{name} must have exactly min, opt and max shapes"
            raise ConfigError(msg)
        shapes = tuple(tuple(int(d) for d in p[k]) for k in ("min", "opt", "max"))
        if len({len(s) for s in shapes}) != 1 or not all(1 <= a <= b <= c for a, b, c in zip(*shapes, strict=True)):
            msg = f"{where}.{name}: min, opt, max need the same rank and 1 <= min <= opt <= max, got {shapes}"
            raise ConfigError(msg)
        out[str(name)] = (shapes[0], shapes[1], shapes[2])
    return out


def load_engine_config(path: Path | str) -> EngineConfig:
    path = Path(path)
    raw = load_yaml(path, "engine build config", ConfigError)
    where = str(path)
    allowed = {"variant", "model", "defaults", "stages", "timing_cache", "calibration", "plugins"}
    unknown = set(raw) - allowed
    if unknown:
        msg = f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
        raise ConfigError(msg)
    if "model" not in raw:
        msg = f"{where}: 'model' (path of the model YAML, relative to this file) is required"
        raise ConfigError(msg)
    base = path.parent
    defaults = _stage_build(raw.get("defaults", {}), StageBuild(), f"{where}: defaults")
    stages_raw = raw.get("stages", {}) or {}
    if not isinstance(stages_raw, Mapping):
        msg = f"{where}: stages must map stage names to settings"
        raise ConfigError(msg)
    stages = {str(k): _stage_build(v, defaults, f"{where}: stages.{k}") for k, v in stages_raw.items()}
    cal_raw = raw.get("calibration", {}) or {}
    if not isinstance(cal_raw, Mapping) or set(cal_raw) - {"frames", "cache_dir"}:
        msg = f"{where}: calibration takes frames and cache_dir"
        raise ConfigError(msg)
    frames = cal_raw.get("frames", 32)
    if not isinstance(frames, int) or frames < 1:
        msg = f"{where}: calibration.frames is {frames!r}; allowed: a positive integer"
        raise ConfigError(msg)
    plugins = tuple(Path(p) if Path(p).is_absolute() else (base / p).resolve() for p in raw.get("plugins", []) or [])
    return EngineConfig(
        variant=str(raw.get("variant", defaults.variant())),
        model=(base / str(raw["model"])).resolve(),
        defaults=defaults,
        stages=stages,
        timing_cache=str(raw.get("timing_cache", "timing.cache") or ""),
        calibration=CalibrationSettings(frames, str(cal_raw.get("cache_dir", "calibration"))),
        plugins=plugins,
        source=path,
    )
