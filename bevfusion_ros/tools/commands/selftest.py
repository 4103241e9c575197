"""``bevfusion-ros selftest``: prove the TensorRT path on this machine and write a report to attach
to an issue (selftest.md + selftest.json).

1. Environment: platform (L4T release), TensorRT, pycuda/CUDA and the device, DLA cores, power
   mode and clocks where readable, ONNX Runtime.
2. For each engine variant (config/engines/fp16.yaml, int8.yaml, int8_dla.yaml): build the shipped
   reference model's engines, compare them with ONNX Runtime on the same frames (relative L2 error
   of every stage output, detection agreement), benchmark per-stage and end-to-end latency, and the
   streamed pipeline with and without overlap, sampling power (tegrastats / NVML) meanwhile.
3. TensorRT behaviour the package and its CI fake assume but the real bindings on a CPU machine
   cannot show (core/trt/assumptions.py: how a parse fails, what a failed plugin load returns, that
   TensorRT swallows a calibrator's exception, the inspector's JSON, the DLA placement log), each
   PASS/FAIL by name, so the report says which assumptions held on this machine.
4. With ``--plugin-library`` (and ``--plugin-model``): each plugin creator, and whether TensorRT lists
   it in ``plugin_creator_list`` (V1) or only in ``all_creators`` (TensorRT 10's V3 creators).
5. Everything that cannot run here is reported as SKIP with the reason; a FAIL makes the exit code 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BevFusionError, DependencyError
from bevfusion_ros.core.eval.agreement import MIN_SCORE, confident, match_boxes
from bevfusion_ros.core.model import ONNX, ModelSpec, load_model
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.resources import default_model, engine_config_dir
from bevfusion_ros.tools.data.selftest_frames import FIRST_SEED, synthetic_frames

VARIANTS = {"fp16": "fp16.yaml", "int8": "int8.yaml", "int8-dla0": "int8_dla.yaml"}
# Largest relative L2 error of any stage output vs ONNX Runtime on the same model YAML, and the least
# share of ONNX Runtime's confident boxes (score >= 0.3) that must be found again (same class, < 1 m).
TOLERANCE = {"fp16": (0.02, 0.9), "int8": (0.08, 0.8), "int8-dla0": (0.15, 0.7)}


@dataclass
class Check:
    section: str
    name: str
    status: str  # PASS, FAIL, SKIP, INFO
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--out", default="build/selftest", help="report and engine directory")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated of {', '.join(VARIANTS)}")
    ap.add_argument("--frames", type=int, default=4, help="comparison/benchmark frames")
    ap.add_argument("--calibration-frames", type=int, default=16, help="frames for the INT8 calibrator")
    ap.add_argument("--bag", default="", help="use this bag's frames instead of generated scenes")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument(
        "--plugin-library",
        action="append",
        default=[],
        metavar="PATH",
        help="a TensorRT plugin library to load (absolute path; repeatable), e.g. Autoware's "
        "libautoware_tensorrt_plugins.so: each plugin creator is reported with the registry list it was found in",
    )
    ap.add_argument(
        "--plugin-model",
        default="",
        metavar="MODEL_YAML",
        help="the model whose stages name the plugins that must be registered (default: every creator registered)",
    )
    ap.add_argument("--no-progress", action="store_true")


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _command(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(device: int) -> tuple[list[Check], Any, dict[str, Any]]:
    """Environment checks; returns (checks, tensorrt module or None, device facts)."""
    checks = [Check("environment", "python", "INFO", f"{platform.python_version()} on {platform.machine()}")]
    l4t = _read("/etc/nv_tegra_release")
    checks.append(
        Check(
            "environment",
            "platform",
            "INFO" if l4t else "SKIP",
            l4t.splitlines()[0] if l4t else "not a Jetson (/etc/nv_tegra_release absent)",
        )
    )
    trt: Any = None
    try:
        from bevfusion_ros.core.optional import import_tensorrt

        trt = import_tensorrt()
        checks.append(Check("environment", "tensorrt", "PASS", f"TensorRT {trt.__version__}"))
    except DependencyError as exc:
        checks.append(Check("environment", "tensorrt", "SKIP", str(exc)))
    facts: dict[str, Any] = {}
    try:
        from bevfusion_ros.core.cuda import driver as cuda
        from bevfusion_ros.core.optional import import_pycuda_driver

        drv = import_pycuda_driver()
        ctx = cuda.CudaContext(device)
        facts = {"device": ctx.name, "compute_capability": ctx.compute_capability, "integrated": ctx.integrated}
        ver = drv.get_driver_version() if hasattr(drv, "get_driver_version") else 0
        detail = f"{ctx.name}, compute {ctx.compute_capability}, {'integrated' if ctx.integrated else 'discrete'}"
        checks.append(Check("environment", "cuda", "PASS", detail + (f", driver API {ver}" if ver else ""), facts))
        ctx.release()
    except (DependencyError, BevFusionError) as exc:
        checks.append(Check("environment", "cuda", "SKIP", f"no CUDA through pycuda: {exc}"))
    if trt is not None and facts:
        from bevfusion_ros.core.trt.common import make_logger

        cores = int(trt.Builder(make_logger(trt)[0]).num_DLA_cores)
        facts["dla_cores"] = cores
        checks.append(
            Check(
                "environment",
                "dla",
                "PASS" if cores else "SKIP",
                f"{cores} DLA core(s)" if cores else "this device has no DLA",
            )
        )
    mode = _command(["nvpmodel", "-q"])
    checks.append(
        Check(
            "environment",
            "power mode",
            "INFO" if mode else "SKIP",
            mode.replace("\n", "; ") if mode else "nvpmodel not found",
        )
    )
    clocks = {p.parent.name: _read(str(p)) for p in sorted(Path("/sys/class/devfreq").glob("*/cur_freq"))}
    clock_text = ", ".join(f"{k} {v} Hz" for k, v in clocks.items()) or "no devfreq clocks readable"
    checks.append(Check("environment", "clocks", "INFO" if clocks else "SKIP", clock_text))
    try:
        import onnxruntime

        checks.append(Check("environment", "onnxruntime", "PASS", f"ONNX Runtime {onnxruntime.__version__}"))
    except ImportError as exc:
        checks.append(Check("environment", "onnxruntime", "FAIL", f"the reference backend is missing: {exc}"))
    return checks, trt, facts


def rel_l2(got: npt.ArrayLike, want: npt.ArrayLike) -> float:
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(g - w)) / max(float(np.linalg.norm(w)), 1e-12)


def box_agreement(ref: Detections, got: Detections, dist_m: float = 1.0) -> tuple[float, int]:
    """Share of ONNX Runtime's confident boxes that the engine run finds again (same class, within
    ``dist_m``), and how many there were."""
    m = match_boxes(confident(ref, MIN_SCORE), got, dist_m)
    return (m.matched / m.n_a if m.n_a else 1.0), m.n_a


def _frames(args: argparse.Namespace, spec: ModelSpec, count: int, first_seed: int) -> list[Any]:
    if args.bag:
        from bevfusion_ros.tools.bags.frames import read_frames

        out = []
        for f in read_frames(Path(args.bag), spec):
            out.append(f)
            if len(out) == count:
                break
        return out
    return list(synthetic_frames(spec.cameras, count, first_seed))


def run_pipeline(pipe: Any, frames: list[Any]) -> list[Any]:
    results = []
    rig = None
    for f in frames:
        if f.rig is not rig:
            pipe.set_calibration(f.rig)
            rig = f.rig
        results.append(pipe(f.images, f.points, keep_tensors=True))
    return results


def latency_table(results: list[Any]) -> dict[str, float]:
    keys = results[0].timings_ms.keys()
    return {k: round(statistics.median(r.timings_ms[k] for r in results), 3) for k in keys}


def _streamed(pipe: Any, spec: ModelSpec, frames: list[Any], repeats: int) -> dict[str, Any]:
    """Frames per second of the streamed pipeline on the TensorRT engines, sequential vs pipelined."""
    import time

    from bevfusion_ros.core.cuda.streamed import StreamedPipeline

    engines = {s.name: pipe.backends[s.name] for s in spec.stages if s.kind == ONNX}
    out: dict[str, Any] = {}
    with next(iter(engines.values())).context.active():
        for pipelined in (False, True):
            sp = StreamedPipeline(spec, engines, frames[0].rig, pipelined=pipelined)
            try:
                for f in frames[:2]:
                    sp.submit(f.images, f.points)
                sp.flush()
                t0 = time.perf_counter()
                n = 0
                for _ in range(repeats):
                    for f in frames:
                        sp.submit(f.images, f.points)
                        n += 1
                sp.flush()
                out["pipelined" if pipelined else "sequential"] = round(n / (time.perf_counter() - t0), 2)
            finally:
                sp.free()
    out["speedup"] = round(out["pipelined"] / out["sequential"], 3)
    return out


def variant_checks(name: str, trt: Any, facts: dict[str, Any], args: argparse.Namespace, out: Path) -> list[Check]:
    from bevfusion_ros.core.monitor.power import PowerSampler
    from bevfusion_ros.core.pipeline.pipeline import Pipeline
    from bevfusion_ros.core.trt.build import build_all
    from bevfusion_ros.core.trt.engine_config import load_engine_config

    sec = f"variant {name}"
    cfg = load_engine_config(engine_config_dir() / VARIANTS[name])
    spec = load_model(cfg.model)
    onnx_stages = [s for s in spec.stages if s.kind == ONNX]
    if trt is None:
        return [Check(sec, "build", "SKIP", "TensorRT is not installed (see environment)")]
    if not facts:
        return [Check(sec, "build", "SKIP", "no CUDA device (see environment)")]
    if any(cfg.for_stage(s.name).dla_core >= 0 for s in onnx_stages) and not facts.get("dla_cores"):
        return [Check(sec, "build", "SKIP", "needs a DLA core; this device has none")]
    engine_dir = out / "engines" / cfg.variant
    show = not args.no_progress
    checks: list[Check] = []
    try:
        cal = synthetic_frames(spec.cameras, args.calibration_frames, FIRST_SEED + 1000)
        built = build_all(cfg, engine_dir, onnx_stages, cal, args.calibration_frames, False, args.device, show)
    except BevFusionError as exc:
        return [Check(sec, "build", "FAIL", str(exc))]
    seconds = sum(r.seconds for r in built)
    checks.append(
        Check(
            sec,
            "build",
            "PASS",
            f"{len(built)} engines in {seconds:.1f} s ({engine_dir})",
            {r.stage: json.loads(r.info.to_json()) for r in built},
        )
    )
    checks += [Check(sec, f"DLA {r.stage}", "INFO", r.dla.summary()) for r in built if r.dla is not None]
    frames = _frames(args, spec, args.frames, FIRST_SEED)
    with Pipeline(spec, "onnxruntime") as ref_pipe:
        ref = run_pipeline(ref_pipe, frames)
    tol, agree_min = TOLERANCE[name]
    try:
        with Pipeline(spec, "tensorrt", engine_dir=engine_dir, engine_config=cfg, device=args.device) as pipe:
            run_pipeline(pipe, frames[:1])  # warm-up
            sampler = PowerSampler()
            with sampler:
                got = run_pipeline(pipe, frames)
            try:
                streamed: dict[str, Any] | str = _streamed(pipe, spec, frames, 3)
            except DependencyError as exc:
                streamed = f"streamed pipeline needs the CUDA kernels: {exc}"
    except BevFusionError as exc:
        return [*checks, Check(sec, "run", "FAIL", str(exc))]
    errors = {
        t.name: max(rel_l2(g.tensors[t.name], r.tensors[t.name]) for g, r in zip(got, ref, strict=True))
        for s in onnx_stages
        for t in s.outputs
    }
    worst = max(errors, key=lambda k: errors[k])
    checks.append(
        Check(
            sec,
            "accuracy vs ONNX Runtime",
            "PASS" if errors[worst] <= tol else "FAIL",
            f"largest relative L2 error {errors[worst]:.4f} ({worst}), tolerance {tol}",
            {k: round(v, 6) for k, v in errors.items()},
        )
    )
    agreements = [box_agreement(r.detections, g.detections) for g, r in zip(got, ref, strict=True)]
    share = sum(a * n for a, n in agreements) / max(sum(n for _, n in agreements), 1)
    checks.append(
        Check(
            sec,
            "detections vs ONNX Runtime",
            "PASS" if share >= agree_min else "FAIL",
            f"{share:.1%} of {sum(n for _, n in agreements)} confident boxes found again (at least {agree_min:.0%})",
        )
    )
    lat, lat_ref = latency_table(got), latency_table(ref)
    text = f"end to end {lat['total']:.1f} ms (ONNX Runtime {lat_ref['total']:.1f} ms)"
    checks.append(Check(sec, "latency", "INFO", text, {"tensorrt_ms": lat, "onnxruntime_ms": lat_ref}))
    if isinstance(streamed, str):
        checks.append(Check(sec, "overlap", "SKIP", streamed))
    else:
        checks.append(
            Check(
                sec,
                "overlap",
                "INFO",
                f"{streamed['sequential']} fps sequential, {streamed['pipelined']} "
                f"fps pipelined ({streamed['speedup']}x)",
                streamed,
            )
        )
    power = sampler.summary()
    checks.append(
        Check(
            sec,
            "power",
            "INFO" if power["samples"] else "SKIP",
            f"{power['samples']} samples from {power['source']}"
            if power["samples"]
            else "; ".join(sampler.source.snapshot().problems) or "no readings",
            power,
        )
    )
    return checks


def assumption_checks(trt: Any, facts: dict[str, Any], device: int, out: Path) -> list[Check]:
    from bevfusion_ros.core.cuda import driver as cuda
    from bevfusion_ros.core.trt.assumptions import CHECKS, run_checks

    sec = "tensorrt assumptions"
    if trt is None or not facts:
        why = "TensorRT is not installed" if trt is None else "no CUDA device"
        return [Check(sec, name, "SKIP", f"{why} (see environment)") for name in CHECKS]
    ctx = cuda.CudaContext(device)
    try:
        with ctx.active():
            results = run_checks(trt, out / "assumptions")
    finally:
        ctx.release()
    status = {True: "PASS", False: "FAIL", None: "SKIP"}
    return [Check(sec, name, status[ok], detail) for name, (ok, detail) in results.items()]


def plugin_checks(trt: Any, libraries: list[str], model: str) -> list[Check]:
    """Load the given plugin libraries and say, for each creator the model needs, which of TensorRT's
    registry lists holds it (TensorRT 10 lists V3 creators only in ``all_creators``)."""
    from bevfusion_ros.core.trt.common import load_plugins, plugin_creators

    sec = "tensorrt plugins"
    if not libraries and not model:
        return [Check(sec, "plugins", "SKIP", "no --plugin-library or --plugin-model given")]
    if trt is None:
        return [Check(sec, "plugins", "SKIP", "TensorRT is not installed (see environment)")]
    try:
        required = sorted({p for s in load_model(model).stages for p in s.plugins}) if model else []
        load_plugins(trt, libraries, ())
    except BevFusionError as exc:
        return [Check(sec, "plugins", "FAIL", str(exc))]
    found = plugin_creators(trt.get_plugin_registry())
    checks = []
    for name in required or sorted(found):
        where = found.get(name)
        detail = f"registered, in {where}" if where else "not registered by " + (", ".join(libraries) or "any library")
        checks.append(Check(sec, name, "PASS" if where else "FAIL", detail, {"list": where}))
    return checks


def write_report(out: Path, checks: list[Check]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "FAIL", "SKIP", "INFO")}
    rows = ["# bevfusion-ros selftest", "", ", ".join(f"{v} {k}" for k, v in counts.items()), ""]
    for section in dict.fromkeys(c.section for c in checks):
        rows += [f"## {section}", "", "| check | result | detail |", "|---|---|---|"]
        rows += [f"| {c.name} | {c.status} | {c.detail.replace('|', '/')} |" for c in checks if c.section == section]
        for c in checks:
            if c.section == section and c.name == "latency":
                t, r = c.data["tensorrt_ms"], c.data["onnxruntime_ms"]
                rows += ["", "| stage | TensorRT ms | ONNX Runtime ms |", "|---|---|---|"]
                rows += [f"| {k} | {t[k]:.2f} | {r.get(k, float('nan')):.2f} |" for k in t]
        rows.append("")
    (out / "selftest.md").write_text("\n".join(rows))
    (out / "selftest.json").write_text(json.dumps([asdict(c) for c in checks], indent=1, default=str))


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        print(f"selftest: unknown variants {unknown}; allowed: {', '.join(VARIANTS)}")
        return 2
    checks, trt, facts = environment(args.device)
    checks += assumption_checks(trt, facts, args.device, out)
    checks += plugin_checks(trt, args.plugin_library, args.plugin_model)
    for name in names:
        checks += variant_checks(name, trt, facts, args, out)
    if trt is None:  # still useful here: the reference backend's per-stage latency on this machine
        from bevfusion_ros.core.pipeline.pipeline import Pipeline

        spec = load_model(default_model())
        with Pipeline(spec, "onnxruntime") as pipe:
            lat = latency_table(run_pipeline(pipe, _frames(args, spec, args.frames, FIRST_SEED)))
        checks.append(
            Check(
                "reference",
                "latency",
                "INFO",
                f"ONNX Runtime end to end {lat['total']:.1f} ms",
                {"tensorrt_ms": lat, "onnxruntime_ms": lat},
            )
        )
    write_report(out, checks)
    for c in checks:
        print(f"{c.status:5} {c.section}: {c.name}: {c.detail}")
    print(f"report: {out / 'selftest.md'}")
    return 1 if any(c.status == "FAIL" for c in checks) else 0
