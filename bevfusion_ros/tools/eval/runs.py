"""What an evaluation runs: its options, and the runs they name (the first run and ``--compare``'s).

Runs: ``onnxruntime``, ``onnxruntime:int8`` (the model's ``<name>.int8.yaml`` next to it),
``tensorrt[:fp16|int8|int8_dla|ENGINE_CONFIG.yaml]``, ``model:PATH`` (the primary backend),
``recorded`` (the node's outputs in the bag itself) or ``recorded:PATH``; a bare ``fp32``/``int8``/
``fp16``/``int8_dla`` means the primary backend in that precision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bevfusion_ros.core.errors import ConfigError


@dataclass(frozen=True)
class EvaluationOptions:
    """What to evaluate and the gates to apply; ``bevfusion-ros evaluate`` builds it from its arguments."""

    bags: tuple[Path, ...]  # bags, folders of bags, manifests (tools.eval.fleet)
    backend: str = "onnxruntime"
    model: Path | None = None  # default: the bundled reference model
    recorded: Path | None = None  # score the node's recording in this bag instead of replaying
    recorded_in_bag: bool = False  # score the node's recording in each bag itself instead of replaying
    compare: tuple[str, ...] = ()  # more runs on the same frames (see parse_run)
    params_file: Path | None = None  # node parameters; default config/perception.yaml
    params: Mapping[str, Any] = field(default_factory=dict)  # overrides of single node parameters
    calibration: Path | None = None  # default: <bag>/calibration.yaml
    max_frames: int = 0  # 0: the whole bag; else per bag
    min_map: float | None = None
    max_map_drop: float | None = None  # percent of the first run's mAP
    max_p99_ms: float | None = None
    progress: bool = True
    workers: int | None = None  # None: one per core when Ray is installed, else 1 (this process)
    ray_address: str | None = None  # join this Ray cluster instead of starting a local instance
    slice_s: float = 0.0  # > 0: bags longer than this become slices of this many seconds
    backend_threads: int = 0  # ONNX Runtime threads per session (set per worker by the fleet)


PRECISIONS = ("fp32", "fp16", "int8", "int8_dla")


@dataclass(frozen=True)
class RunSpec:
    name: str
    backend: str | None = None  # None: recorded outputs
    model: Path | None = None
    engine_config: str = ""
    recorded: Path | None = None


def parse_run(text: str, backend: str, model: Path | None, bag: Path) -> RunSpec:
    kind, _, arg = text.partition(":")
    if kind == "recorded":
        return RunSpec(text, recorded=Path(arg) if arg else bag)
    if kind == "model":
        if not arg:
            raise ConfigError("run 'model:' needs a path: model:PATH")
        return RunSpec(text, backend, Path(arg))
    if kind in PRECISIONS and not arg:
        kind, arg = backend, kind
    if kind == "onnxruntime":
        if arg in ("", "fp32"):
            return RunSpec(f"onnxruntime:fp32{'' if model is None else f'({model.name})'}", kind, model)
        if arg == "int8":
            from bevfusion_ros.core.resources import default_model

            base = model or default_model()
            int8 = base.with_name(base.name.removesuffix(".yaml") + ".int8.yaml")
            if not int8.is_file():
                msg = f"run '{text}': no INT8 model {int8} next to {base} (make quantize writes one)"
                raise ConfigError(msg)
            return RunSpec("onnxruntime:int8", kind, int8)
        msg = f"run '{text}': onnxruntime precisions are fp32 and int8"
        raise ConfigError(msg)
    if kind == "tensorrt":
        from bevfusion_ros.core.resources import engine_config_dir

        variant = arg or "fp16"
        path = Path(variant) if variant.endswith(".yaml") else engine_config_dir() / f"{variant}.yaml"
        if not path.is_file():
            choices = ", ".join(sorted(p.stem for p in engine_config_dir().glob("*.yaml")))
            msg = f"run '{text}': no engine config {path} (bundled: {choices}, or a path to a YAML)"
            raise ConfigError(msg)
        return RunSpec(f"tensorrt:{path.stem}", kind, None, str(path))
    msg = (
        f"run '{text}' is not one of: onnxruntime[:fp32|int8], tensorrt[:fp16|int8|int8_dla|CONFIG.yaml], "
        "model:PATH, recorded[:PATH], fp32, fp16, int8, int8_dla"
    )
    raise ConfigError(msg)


def run_specs(options: EvaluationOptions, bag: Path) -> list[RunSpec]:
    """The first run and the ``compare`` runs, ``recorded`` meaning ``bag``'s own recording."""
    if options.recorded_in_bag:
        primary = "recorded"
    elif options.recorded is not None:
        primary = f"recorded:{options.recorded}"
    else:
        primary = options.backend if options.model is None else f"model:{options.model}"
    runs = [parse_run(t, options.backend, options.model, bag) for t in (primary, *options.compare)]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        msg = f"runs must differ; got {names}"
        raise ConfigError(msg)
    return runs
