"""The replay evaluation behind ``bevfusion-ros evaluate``: options in, typed results out.

Replays the bag's sensors through the node's own code (``tools.bags.replay``: sync policy on the
bag's clock, frame decoding, the node's configure step and runner), scores every run against the
bag's ground truth with nuscenes-devkit (mAP, NDS, per-class AP, TP errors) and BEV map IoU, times
every stage, and runs the ``compare`` runs in lockstep on the same decoded frames to measure how
far they agree with the first run. A recorded run scores what the node published (a bag recorded
from it) the same way.

Runs: ``onnxruntime``, ``onnxruntime:int8`` (the model's ``<name>.int8.yaml`` next to it),
``tensorrt[:fp16|int8|int8_dla|ENGINE_CONFIG.yaml]``, ``model:PATH`` (the primary backend),
``recorded`` (the node's outputs in the bag itself) or ``recorded:PATH``; a bare ``fp32``/``int8``/
``fp16``/``int8_dla`` means the primary backend in that precision.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BagError, BevFusionError, ConfigError
from bevfusion_ros.core.eval.agreement import (
    AgreementSummary,
    Extremes,
    Gate,
    check_gates,
    frame_agreement,
    frame_quality,
)
from bevfusion_ros.core.eval.metrics import DetectionEvaluator, MapIoU
from bevfusion_ros.core.model import LIDAR_ONLY, ModelSpec, load_model
from bevfusion_ros.core.perception.config import PerceptionConfig, load_config
from bevfusion_ros.core.perception.lidar_input import Problem
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation
from bevfusion_ros.tools.bags.layout import GT_MAP_PREFIX, GT_TOPIC

if TYPE_CHECKING:
    from bevfusion_ros.ros.sweeps import SweepPoses
from bevfusion_ros.tools.bags.replay import (
    BagTopics,
    GroundTruth,
    RecordedFrame,
    SensorReplay,
    StampCursor,
    check_sensor_topics,
    ground_truth,
    node_values,
    recorded_outputs,
    recorded_topics,
)

PRECISIONS = ("fp32", "fp16", "int8", "int8_dla")
RENDER_POINTS = 30_000  # points kept per best/worst frame for its BEV render


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


class ReplayRun:
    """One backend/model on the replayed frames: the node's configure step, then its runner."""

    def __init__(self, run: RunSpec, values: dict[str, Any]) -> None:
        from bevfusion_ros.core.perception.configure import configure

        cfg = load_config(
            {
                **values,
                "backend": run.backend,
                "model": str(run.model or values.get("model", "")),
                "engine_config": run.engine_config or values.get("engine_config", ""),
            }
        )
        done = configure(cfg)
        self.cfg, self.spec, self.rig, self.runner = done.cfg, done.spec, done.rig, done.runner
        self.sweeps = done.sweeps

    def close(self) -> None:
        self.runner.close()


# the ground truth is stamped at the LiDAR sweeps; under half a 10 Hz frame from a frame's stamp
GT_STAMP_TOLERANCE_NS = 45_000_000


@dataclass
class RunScore:
    name: str
    spec: ModelSpec
    det: DetectionEvaluator
    map: MapIoU | None
    stages: dict[str, list[float]] = field(default_factory=dict)
    frames: int = 0
    scored: int = 0
    missing: int = 0  # frames the run produced no output for
    compute_s: float = 0.0

    def add(self, out: RecordedFrame, gt: GroundTruth | None, stamp: int) -> None:
        self.frames += 1
        for k, v in out.timings_ms.items():
            self.stages.setdefault(k, []).append(v)
        if gt is None or gt.detections is None:
            return
        self.scored += 1
        self.det.add(str(stamp), gt.detections, out.detections)
        seg = out.segmentation
        if self.map is not None and gt.map is not None and seg is not None and seg.grid == gt.map_grid:
            self.map.add(seg.probabilities, gt.map)


@dataclass(frozen=True)
class FrameView:
    """What the report draws for one best or worst frame."""

    stamp_ns: int
    points: npt.NDArray[np.float32] | None
    ground_truth: GroundTruth
    detections: Detections
    segmentation: Segmentation | None
    f1: float


@dataclass(frozen=True)
class RunResult:
    """One run's scores; ``detection`` and ``map`` are the devkit's and MapIoU's summaries."""

    name: str
    model: str
    kind: str  # "replayed" or "recorded"
    source: str | None  # the backend, or the recording's path
    frames: int
    frames_scored: int
    frames_missing: int  # frames the run produced no output for
    latency_ms: dict[str, dict[str, float]]  # per stage: percentiles
    frames_per_s: float | None
    detection: dict[str, Any] | None  # None without ground truth
    map: dict[str, Any] | None  # None without map ground truth
    gt_per_class: dict[str, int]
    predicts_velocity: bool = False  # else the devkit's AVE scores velocities of 0, not the model's
    # per sensor mode (full, camera_only, lidar_only) seen: frames, frames scored, mAP, NDS, mIoU
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pr_curves: dict[str, Any] | None = None  # for the plots; not in evaluation.json
    latency_samples: dict[str, list[float]] = field(default_factory=dict)  # for the plots

    @property
    def mean_ap(self) -> float | None:
        return float(self.detection["mean_ap"]) if self.detection else None

    @property
    def nd_score(self) -> float | None:
        return float(self.detection["nd_score"]) if self.detection else None

    @property
    def p99_ms(self) -> float | None:
        return self.latency_ms.get("total", {}).get("p99")

    @property
    def mean_ave(self) -> float | None:
        """The devkit's mAVE (m/s), for a model that predicts velocity."""
        if not (self.detection and self.predicts_velocity):
            return None
        return float(self.detection["tp_errors"]["vel_err"])

    def summary(self) -> dict[str, Any]:
        """evaluation.json's entry for this run."""
        return {
            "name": self.name,
            "model": self.model,
            "kind": self.kind,
            "source": self.source,
            "frames": self.frames,
            "frames_scored": self.frames_scored,
            "frames_missing": self.frames_missing,
            "latency_ms": self.latency_ms,
            "frames_per_s": self.frames_per_s,
            "detection": self.detection,
            "map": self.map,
            "gt_per_class": self.gt_per_class,
            "mean_ap": self.mean_ap,
            "nd_score": self.nd_score,
            "predicts_velocity": self.predicts_velocity,
            "mean_ave": self.mean_ave,
            "p99_ms": self.p99_ms,
            "modes": self.modes,
        }


@dataclass(frozen=True)
class EvaluationResult:
    bag: Path
    runs: list[RunResult]
    comparisons: dict[str, dict[str, Any]]  # run name -> its agreement with the first run
    frames: int
    frames_without_ground_truth: int
    per_frame: list[dict[str, Any]]  # the first run against ground truth, frame by frame
    drops: dict[str, int]
    sync: dict[str, int]
    wall_s: float
    notes: list[str]
    incomplete: str | None  # why the bag was read only in part
    gates: list[Gate]
    agreement: dict[str, AgreementSummary]  # for the score scatter plots
    extremes: Extremes[FrameView]  # the best and worst frames, for their BEV renders

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def evaluation_frames_per_s(self) -> float | None:
        return self.frames / self.wall_s if self.wall_s > 0 else None

    def summary(self) -> dict[str, Any]:
        """evaluation.json: every number, plain JSON types."""
        return {
            "bag": str(self.bag),
            "runs": [r.summary() for r in self.runs],
            "comparisons": self.comparisons,
            "frames": self.frames,
            "frames_without_ground_truth": self.frames_without_ground_truth,
            "per_frame": self.per_frame,
            "drops": self.drops,
            "sync": self.sync,
            "wall_s": self.wall_s,
            "evaluation_frames_per_s": self.evaluation_frames_per_s,
            "notes": self.notes,
            "incomplete": self.incomplete,
            "gates": [g.__dict__ for g in self.gates],
            "passed": self.passed,
        }


@dataclass(frozen=True)
class EvaluationOptions:
    """What to evaluate and the gates to apply; ``bevfusion-ros evaluate`` builds it from its arguments."""

    bag: Path
    backend: str = "onnxruntime"
    model: Path | None = None  # default: the bundled reference model
    recorded: Path | None = None  # score the node's recording (this bag, or BAG itself) instead of replaying
    compare: tuple[str, ...] = ()  # more runs on the same frames (see parse_run)
    params_file: Path | None = None  # node parameters; default config/perception.yaml
    params: Mapping[str, Any] = field(default_factory=dict)  # overrides of single node parameters
    calibration: Path | None = None  # default: <bag>/calibration.yaml
    max_frames: int = 0  # 0: the whole bag
    min_map: float | None = None
    max_map_drop: float | None = None  # percent of the first run's mAP
    max_p99_ms: float | None = None
    progress: bool = True


class Evaluation:
    def __init__(self, options: EvaluationOptions) -> None:
        self.options = args = options
        self.notes: list[str] = []
        self.incomplete: str | None = None
        self.bag = BagTopics.read(args.bag)
        if args.recorded is not None:
            primary = "recorded" if args.recorded == args.bag else f"recorded:{args.recorded}"
        else:
            primary = args.backend if args.model is None else f"model:{args.model}"
        self.runs = [parse_run(t, args.backend, args.model, args.bag) for t in (primary, *args.compare)]
        names = [r.name for r in self.runs]
        if len(set(names)) != len(names):
            msg = f"runs must differ; got {names}"
            raise ConfigError(msg)
        from bevfusion_ros.core.resources import default_model

        base_spec = load_model(args.model or default_model())
        self.values = node_values(self.bag, base_spec.cameras, args.params_file, args.params, args.calibration)
        self.replayed: dict[str, ReplayRun] = {}
        try:
            for r in self.runs:
                if r.backend is not None:
                    self.replayed[r.name] = ReplayRun(r, self.values)
            if self.replayed:
                check_sensor_topics(next(iter(self.replayed.values())).cfg, self.bag)
        except BevFusionError:
            self.close()
            raise
        specs = {n: rr.spec for n, rr in self.replayed.items()}
        self.spec = next(iter(specs.values()), base_spec)
        for n, s in specs.items():
            if s.cameras != self.spec.cameras or s.class_names != self.spec.class_names:
                msg = f"run {n}: model {s.name} has other cameras or classes than {self.spec.name}; runs must agree"
                raise ConfigError(msg)
        self.scores = {r.name: self._score(r.name) for r in self.runs}
        self.mode_scores: dict[str, dict[str, RunScore]] = {r.name: {} for r in self.runs}
        self.agreement = {r.name: AgreementSummary() for r in self.runs[1:]}
        # per compared run: the first run and it, scored on the frames both have (with ground truth),
        # so a delta compares like with like when a recording lacks frames the replay has
        self.common = {r.name: (self._score(self.runs[0].name), self._score(r.name)) for r in self.runs[1:]}
        self.extremes: Extremes[FrameView] = Extremes(2)
        self.drops: Counter[str] = Counter()
        self.frames_without_gt = 0
        self.replay: SensorReplay | None = None  # set when sensors are replayed (its sync counts)
        self.per_frame: list[dict[str, Any]] = []  # the first run against ground truth, frame by frame

    def _score(self, name: str) -> RunScore:
        spec = self.replayed[name].spec if name in self.replayed else self.spec
        map_eval = MapIoU(spec.map.classes) if spec.map else None
        return RunScore(name, spec, DetectionEvaluator(spec.class_names), map_eval)

    def close(self) -> None:
        for rr in self.replayed.values():
            rr.close()

    # -- the frame loop --------------------------------------------------------------------------
    def run(self) -> None:
        spec = self.spec
        has_gt = self.bag.has(GT_TOPIC)
        map_classes = spec.map.classes if spec.map else ()
        has_map = bool(map_classes) and all(self.bag.has(GT_MAP_PREFIX + c) for c in map_classes)
        if not has_gt:
            self.notes.append(
                f"the bag has no ground truth ({GT_TOPIC}): accuracy is not scored; "
                "latency and run-to-run agreement are"
            )
        elif not has_map and map_classes:
            self.notes.append(f"the bag has no map ground truth ({GT_MAP_PREFIX}<class>): map IoU is not scored")
        self.gt = StampCursor(ground_truth(self.options.bag, spec, has_map)) if has_gt else None
        self.recorded = {
            r.name: StampCursor(recorded_outputs(r.recorded, spec)) for r in self.runs if r.recorded is not None
        }
        # frames in each recording (its detections messages), for the progress bar
        self.recorded_frames = {r.name: self._check_recorded(r) for r in self.runs if r.recorded is not None}
        start = time.perf_counter()
        try:
            if self.replayed:
                self._replay()
            else:
                self._recorded_only()
        except BagError as exc:
            self.incomplete = str(exc)
        self.wall_s = time.perf_counter() - start
        for name, cur in [("ground truth", self.gt), *self.recorded.items()]:
            if cur is not None and cur.error is not None and self.incomplete is None:
                self.incomplete = f"{name}: {cur.error}"

    def _check_recorded(self, r: RunSpec) -> int:
        """The recording's detections message count; a recording without them is a BagError."""
        assert r.recorded is not None
        rec = self.bag if r.recorded == self.options.bag else BagTopics.read(r.recorded)
        topics = recorded_topics(self.spec)
        det_topic = next(iter(topics))
        if not rec.has(det_topic, topics[det_topic]):
            have = ", ".join(sorted(rec.topics))
            msg = f"run {r.name}: bag {r.recorded} has no {det_topic} ({topics[det_topic]}); it has {have}"
            raise BagError(msg)
        absent = [t for t in topics if not rec.has(t)]
        if absent:
            self.notes.append(f"run {r.name}: the recording lacks {', '.join(absent)}")
        return rec.count(det_topic)

    def _sweep_poses(self, cfg: PerceptionConfig) -> SweepPoses | None:
        """The bag's /tf as a tf2 buffer, when a replayed model densifies past sweeps."""
        if not any(rr.sweeps is not None and rr.sweeps.sweeps > 1 for rr in self.replayed.values()):
            return None
        from bevfusion_ros.ros.sweeps import SweepPoses
        from bevfusion_ros.tools.bags.replay import checked_messages

        messages: dict[str, list[Any]] = {"/tf": [], "/tf_static": []}
        for topic, msg, _ in checked_messages(self.options.bag, set(messages)):
            messages[topic].append(msg)
        if not messages["/tf"]:
            self.notes.append(f"the bag has no /tf: past sweeps cannot be placed ({cfg.odom_frame} -> LiDAR)")
        return SweepPoses.from_messages(cfg.odom_frame, messages["/tf"], messages["/tf_static"])

    def _replay(self) -> None:
        from bevfusion_ros.ros.frame_decode import decode_frame, image_decoder
        from bevfusion_ros.ros.sweeps import LidarSweeps
        from bevfusion_ros.tools.viz.progress import progress

        first = next(iter(self.replayed.values()))
        cfg = first.cfg
        replay = SensorReplay(self.options.bag, cfg, first.rig)
        decode = image_decoder(cfg.image_transport == "compressed", use_distro=False)
        total = self.bag.count(cfg.lidar_topic)
        if self.options.max_frames:
            total = min(total, self.options.max_frames)
        pending: dict[int, dict[str, RecordedFrame]] = {}
        points: dict[int, npt.NDArray[np.float32]] = {}
        done = 0
        self.replay = replay
        poses = self._sweep_poses(cfg)
        # as the node: too many masked cameras run LiDAR-only where every replayed model learned it
        lidar_only = all(rr.spec.modality_dropout.allows(LIDAR_ONLY) for rr in self.replayed.values())
        rig = first.rig  # the calibration in use: images of another size mask their camera, as in the node
        sweeps = {
            name: LidarSweeps(rr.sweeps, poses, cfg.lidar_frame, use_distro=False)
            for name, rr in self.replayed.items()
            if rr.sweeps is not None
        }
        try:
            for item in progress(replay.frames(), "evaluate", "frame", self.options.progress, total=total):
                if self.options.max_frames and done >= self.options.max_frames:
                    break
                done += 1
                for lidar_sweeps in sweeps.values():  # a past sweep for the next frames, processed or not
                    if item.frame.lidar is not None:
                        lidar_sweeps.offer(item.frame.stamp_ns, item.frame.lidar)
                if item.rig is not None:
                    rig = item.rig
                    for name, rr in self.replayed.items():
                        self._collect(pending, points, name, rr.runner.set_calibration(item.rig))
                try:
                    decoded = decode_frame(
                        item.frame,
                        decode,
                        cfg.max_masked_cameras,
                        use_distro=False,
                        lidar_only=lidar_only,
                        image_sizes=rig.image_sizes(),
                        lidar_frame=cfg.lidar_frame,
                    )
                except BevFusionError as exc:
                    self.drops[f"frame_dropped_{type(exc).__name__}"] += 1
                    self._note_once("undecodable", f"frame at {item.frame.stamp_ns} ns dropped: {exc}")
                    continue
                if decoded.bad_images:
                    self.drops["bad_image"] += len(decoded.bad_images)
                if decoded.dropped is not None:
                    self.drops["frame_too_many_masked"] += 1
                    continue
                stamp = item.frame.stamp_ns
                points[stamp] = decoded.points if decoded.points is not None else np.zeros((0, 4), np.float32)
                for name, rr in self.replayed.items():
                    t0 = time.perf_counter()
                    try:
                        cloud, problems = decoded.points, list[Problem]()
                        if name in sweeps and decoded.points is not None:
                            cloud, problems = sweeps[name].densify(stamp, item.frame.lidar, decoded.points)
                        for cause, message in problems:
                            self.drops[f"{name}: {cause}"] += 1
                            self._note_once(f"{name}-{cause}", f"run {name}: {message}")
                        out = rr.runner.run(decoded.images, cloud, stamp)
                    except BevFusionError as exc:
                        self.drops[f"{name}: frame_dropped_{type(exc).__name__}"] += 1
                        self._note_once(f"run-{name}", f"run {name} dropped frame {stamp}: {exc}")
                        out = []
                    self.scores[name].compute_s += time.perf_counter() - t0
                    self._collect(pending, points, name, out)
        finally:
            for name, rr in self.replayed.items():
                self._collect(pending, points, name, rr.runner.flush())
            for stamp in sorted(pending):
                self._finish(stamp, pending.pop(stamp), points.pop(stamp, None))
            read = replay.read[cfg.lidar_topic]
            if read < self.bag.count(cfg.lidar_topic) and not self.options.max_frames and self.incomplete is None:
                listed = self.bag.count(cfg.lidar_topic)
                self.incomplete = (
                    f"the bag's index lists {listed} messages on {cfg.lidar_topic} but {read} "
                    "could be read: part of the bag is damaged"
                )

    def _collect(
        self,
        pending: dict[int, dict[str, RecordedFrame]],
        points: dict[int, npt.NDArray[np.float32]],
        name: str,
        results: list[tuple[Any, Any]],
    ) -> None:
        for stamp, r in results:
            pending.setdefault(stamp, {})[name] = RecordedFrame(
                r.detections, r.segmentation, dict(r.timings_ms), r.mode
            )
        for stamp in sorted(pending):
            if len(pending[stamp]) < len(self.replayed):
                break
            self._finish(stamp, pending.pop(stamp), points.pop(stamp, None))

    def _recorded_only(self) -> None:
        from bevfusion_ros.tools.viz.progress import progress

        name = self.runs[0].name
        driver = self.recorded.pop(name)
        total = self.recorded_frames[name]
        for i, (stamp, out) in enumerate(progress(driver, "evaluate", "frame", self.options.progress, total=total)):
            if self.options.max_frames and i >= self.options.max_frames:
                break
            self._finish(stamp, {name: out}, None)
        if driver.error is not None:
            raise driver.error

    def _note_once(self, key: str, text: str) -> None:
        if not any(n.startswith(f"[{key}]") for n in self.notes):
            self.notes.append(f"[{key}] {text} (first of its kind; all are counted)")

    def _finish(self, stamp: int, outputs: dict[str, RecordedFrame], points: npt.NDArray[np.float32] | None) -> None:
        for name, cur in self.recorded.items():
            rec = cur.get(stamp)
            if rec is not None:
                outputs[name] = rec
        # a camera-anchored frame (the LiDAR lost) carries its image's stamp, a few ms off the sweep's
        gt = self.gt.get(stamp, GT_STAMP_TOLERANCE_NS) if self.gt is not None else None
        if self.gt is not None and gt is None:
            self.frames_without_gt += 1
        for r in self.runs:
            out = outputs.get(r.name)
            if out is None:
                self.scores[r.name].missing += 1
                continue
            self.scores[r.name].add(out, gt, stamp)
            by_mode = self.mode_scores[r.name]
            if out.mode not in by_mode:
                by_mode[out.mode] = self._score(r.name)
            by_mode[out.mode].add(out, gt, stamp)
        ref = outputs.get(self.runs[0].name)
        if ref is None:
            return
        for r in self.runs[1:]:
            other = outputs.get(r.name)
            if other is not None:
                self.agreement[r.name].add(
                    frame_agreement(stamp, ref.detections, other.detections, ref.segmentation, other.segmentation)
                )
                ref_common, other_common = self.common[r.name]
                ref_common.add(ref, gt, stamp)
                other_common.add(other, gt, stamp)
        if gt is not None and gt.detections is not None:
            q = frame_quality(gt.detections, ref.detections)
            self.per_frame.append({"stamp_ns": stamp, "tp": q.tp, "fp": q.fp, "fn": q.fn, "f1": q.f1})
            keep = None if points is None else points[:: max(1, len(points) // RENDER_POINTS)]
            self.extremes.add(q.f1, FrameView(stamp, keep, gt, ref.detections, ref.segmentation, q.f1))

    # -- results ---------------------------------------------------------------------------------
    def results(self) -> EvaluationResult:
        from bevfusion_ros.core.eval.agreement import percentiles

        runs = []
        for r in self.runs:
            s = self.scores[r.name]
            detection = s.det.compute() if s.scored else None
            curves = detection.pop("pr_curves") if detection is not None else None
            seg = None
            if s.scored and s.map is not None and s.map.tp.sum() + s.map.fn.sum() > 0:
                seg = s.map.compute()
            runs.append(
                RunResult(
                    name=r.name,
                    model=s.spec.name,
                    kind="recorded" if r.recorded else "replayed",
                    source=str(r.recorded) if r.recorded else r.backend,
                    frames=s.frames,
                    frames_scored=s.scored,
                    frames_missing=s.missing,
                    latency_ms={k: percentiles(v) for k, v in s.stages.items()},
                    frames_per_s=s.frames / s.compute_s if s.compute_s > 0 else None,
                    detection=detection,
                    map=seg,
                    gt_per_class=dict(Counter(n for _, d in s.det.gt for n in d.label_names())),
                    predicts_velocity=s.spec.predicts_velocity,
                    modes=_mode_summaries(self.mode_scores[r.name], detection, seg),
                    pr_curves=curves,
                    latency_samples=s.stages,
                )
            )
        comparisons = {n: a.summary() for n, a in self.agreement.items()}
        for n, (ref_common, other_common) in self.common.items():
            comparisons[n]["same_frames"] = _same_frames(ref_common, other_common)
        summaries = [r.summary() for r in runs]
        for summary in summaries[1:]:  # the mAP drop gate compares the same frames too
            same = comparisons[summary["name"]]["same_frames"]
            summary["same_frames"] = same
        o = self.options
        gates = check_gates(summaries, o.min_map, o.max_map_drop, o.max_p99_ms)
        return EvaluationResult(
            bag=o.bag,
            runs=runs,
            comparisons=comparisons,
            frames=max((s.frames for s in self.scores.values()), default=0),
            frames_without_ground_truth=self.frames_without_gt,
            per_frame=self.per_frame,
            drops=dict(self.drops),
            sync=dict(self.replay.counts) if self.replay is not None else {},
            wall_s=self.wall_s,
            notes=self.notes,
            incomplete=self.incomplete,
            gates=gates,
            agreement=self.agreement,
            extremes=self.extremes,
        )


def _same_frames(ref: RunScore, other: RunScore) -> dict[str, Any]:
    """mAP of the first run and of another on the frames both produced (with ground truth)."""
    out: dict[str, Any] = {"frames": ref.scored, "reference_mean_ap": None, "mean_ap": None}
    if ref.scored:
        out["reference_mean_ap"] = float(ref.det.compute()["mean_ap"])
        out["mean_ap"] = float(other.det.compute()["mean_ap"])
    return out


def _mode_summaries(
    by_mode: dict[str, RunScore], detection: dict[str, Any] | None, seg: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Each sensor mode's frames of a run, scored on their own. A run in one mode only holds the same
    frames as the whole run: its ``detection`` and ``seg`` scores are reused, not computed again."""
    out: dict[str, dict[str, Any]] = {}
    for mode, score in sorted(by_mode.items()):
        entry: dict[str, Any] = {"frames": score.frames, "frames_scored": score.scored}
        if score.scored:
            det = detection if len(by_mode) == 1 else score.det.compute()
            assert det is not None  # scored frames: the run's own detection score exists
            entry.update(mean_ap=float(det["mean_ap"]), nd_score=float(det["nd_score"]))
            if score.map is not None and score.map.tp.sum() + score.map.fn.sum() > 0:
                entry["miou"] = float((seg if len(by_mode) == 1 and seg else score.map.compute())["miou"])
        out[mode] = entry
    return out


def evaluate(options: EvaluationOptions) -> EvaluationResult:
    """Replay and/or read the recordings, score every run, compare them, apply the gates."""
    ev = Evaluation(options)
    try:
        ev.run()
    finally:
        ev.close()
    return ev.results()
