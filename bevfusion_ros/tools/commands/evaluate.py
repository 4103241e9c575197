"""``bevfusion-ros evaluate BAG [BAG ...]``: is this model, backend or precision good enough to drive with?

Replays the bags' sensors through the node's own code, scores every run against the bags' ground
truth (nuScenes mAP/NDS from the devkit, BEV map IoU), times every stage, and with ``--compare``
runs other backends / precisions in lockstep on the same frames and measures how far they agree
with the first run; ``--recorded`` scores what the node published (``tools.eval.evaluation``).

BAG is a bag, a folder of bags or a manifest (bags with time ranges and tags; ``tools.eval.fleet``).
Several bags are scored as one evaluation, with a breakdown per bag and per tag; with Ray installed
(the ``[fleet]`` extra) each bag, or each ``--slice-s`` slice of one, is a Ray task on a local
instance (``--workers N``, default one per core) or on a cluster (``--ray-address``). The scores
equal those of one process (``--workers 1``).

Runs: ``onnxruntime``, ``onnxruntime:int8`` (the model's ``<name>.int8.yaml`` next to it),
``tensorrt[:fp16|int8|int8_dla|ENGINE_CONFIG.yaml]``, ``model:PATH`` (the primary backend),
``recorded`` (the node's outputs in BAG itself) or ``recorded:PATH``; a bare ``fp32``/``int8``/
``fp16``/``int8_dla`` means the primary backend in that precision.

Writes <out>/evaluation.json (every number), report.md and report.html (plots inlined) and plots/.
Exit 0 when every gate given passes, 1 when one fails, 2 when the input is unusable or was read
only in part (the report then covers what was read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bevfusion_ros.core.paramspec import parse_override
from bevfusion_ros.tools.eval.evaluation import evaluate
from bevfusion_ros.tools.eval.report import evaluation_json, write_report
from bevfusion_ros.tools.eval.runs import EvaluationOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "bags",
        nargs="+",
        type=Path,
        metavar="BAG",
        help="rosbag2 folder (mcap or sqlite3) with sensors and/or ground truth, a folder of bags, or a manifest YAML",
    )
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "tensorrt"))
    p.add_argument("--model", type=Path, default=None, help="model YAML (default: the bundled reference model)")
    p.add_argument(
        "--recorded",
        nargs="?",
        const="",
        default=None,
        metavar="OUTPUTS_BAG",
        help="score the node's recorded outputs (in OUTPUTS_BAG, default each BAG itself) instead of replaying",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        default=[],
        metavar="RUN",
        help="more runs on the same frames: onnxruntime:int8, tensorrt:int8, int8, recorded:PATH, ...",
    )
    p.add_argument("--params-file", type=Path, default=None, help="node parameters (default: config/perception.yaml)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE", help="override one node parameter")
    p.add_argument("--calibration", type=Path, default=None, help="default: <bag>/calibration.yaml")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames per bag (0: the whole bag)")
    p.add_argument("--out", type=Path, default=Path("build/evaluate"))
    p.add_argument("--min-map", type=float, default=None, help="fail (exit 1) when a run's mAP is below this")
    p.add_argument(
        "--max-map-drop",
        type=float,
        default=None,
        metavar="PCT",
        help="fail when a --compare run's mAP is more than PCT %% below the first run's",
    )
    p.add_argument("--max-p99-ms", type=float, default=None, help="fail when a run's p99 pipeline time exceeds this")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray workers on a local instance (default: one per core with Ray installed, else 1: this process)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join this Ray cluster (ray start --head; README) instead of starting a local instance",
    )
    p.add_argument(
        "--slice-s",
        type=float,
        default=0.0,
        metavar="S",
        help="replay bags longer than S seconds as slices of S seconds, each its own task (0: whole bags)",
    )


def options(args: argparse.Namespace) -> EvaluationOptions:
    return EvaluationOptions(
        bags=tuple(args.bags),
        backend=args.backend,
        model=args.model,
        recorded=Path(args.recorded) if args.recorded else None,
        recorded_in_bag=args.recorded == "",
        compare=tuple(args.compare),
        params_file=args.params_file,
        params=dict(parse_override(p) for p in args.param),
        calibration=args.calibration,
        max_frames=args.max_frames,
        min_map=args.min_map,
        max_map_drop=args.max_map_drop,
        max_p99_ms=args.max_p99_ms,
        progress=args.progress,
        workers=args.workers,
        ray_address=args.ray_address,
        slice_s=args.slice_s,
    )


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate(options(args))
    except KeyboardInterrupt:  # with a bag finished, evaluate returns what finished instead
        print("bevfusion-ros evaluate: interrupted before any bag finished; nothing to report", file=sys.stderr)
        return 130
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(result, args.out)
    (args.out / "evaluation.json").write_text(evaluation_json(result))
    print((args.out / "summary.txt").read_text())
    if result.incomplete:
        print(f"bevfusion-ros evaluate: incomplete: {result.incomplete}")
        return 2
    return 0 if result.passed else 1
