"""The driver's half of ``bevfusion-ros evaluate``: options in, typed results out.

The bags become tasks (``tools.eval.fleet``), each replayed by ``tools.eval.bag_replay`` in this
process or as a Ray task: the bag's sensors through the node's own code, the ``compare`` runs in
lockstep on the same decoded frames, recorded runs read from the node's recordings. ``Scoring``
merges the compact records the tasks send back, in fleet order, and scores every run with
nuscenes-devkit (mAP, NDS, per-class AP, TP errors) and BEV map IoU, measures how far each compared
run agrees with the first, and breaks the scores down per bag and per manifest tag.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bevfusion_ros.core.errors import BagError, ConfigError
from bevfusion_ros.core.eval.agreement import AgreementSummary, Extremes, Gate, check_gates
from bevfusion_ros.core.model import ModelSpec, load_model
from bevfusion_ros.tools.eval.records import EXTREMES, BagOutcome, BagTask, FrameView
from bevfusion_ros.tools.eval.runs import EvaluationOptions, RunSpec, run_specs
from bevfusion_ros.tools.eval.scoring import Mapper, RunScore, compute_all


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
    bag: str  # the bag, or how many bags (``bags`` lists them)
    runs: list[RunResult]
    comparisons: dict[str, dict[str, Any]]  # run name -> its agreement with the first run
    frames: int
    frames_without_ground_truth: int
    per_frame: list[dict[str, Any]]  # the first run against ground truth, frame by frame
    drops: dict[str, int]
    sync: dict[str, int]
    wall_s: float
    notes: list[str]
    incomplete: str | None  # why the input was read only in part
    gates: list[Gate]
    agreement: dict[str, AgreementSummary]  # for the score scatter plots
    extremes: Extremes[FrameView]  # the best and worst frames, for their BEV renders
    bags: list[dict[str, Any]] = field(default_factory=list)  # per bag of a fleet: its scores per run
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)  # per manifest tag (key=value): the same
    fleet: dict[str, Any] = field(default_factory=dict)  # tasks, workers, merge time

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def evaluation_frames_per_s(self) -> float | None:
        return self.frames / self.wall_s if self.wall_s > 0 else None

    def summary(self) -> dict[str, Any]:
        """evaluation.json: every number, plain JSON types."""
        return {
            "bag": self.bag,
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
            "bags": self.bags,
            "tags": self.tags,
            "fleet": self.fleet,
        }


class Scoring:
    """The driver's half: the records of every task, in fleet order, scored as one evaluation, with
    per-bag and per-tag breakdowns. Scores depend only on the records and their order, so a fleet
    scores exactly as one process would."""

    def __init__(self, options: EvaluationOptions, runs: list[RunSpec], tasks: list[BagTask]) -> None:
        self.options, self.runs, self.tasks = options, runs, tasks
        self.fleet = len({t.bag for t in tasks}) > 1
        self.specs: dict[str, ModelSpec] = {}
        self.scores: dict[str, RunScore] = {}
        self.mode_scores: dict[str, dict[str, RunScore]] = {r.name: {} for r in runs}
        self.agreement = {r.name: AgreementSummary() for r in runs[1:]}
        # per compared run: the first run and it, scored on the frames both have (with ground truth),
        # so a delta compares like with like when a recording lacks frames the replay has
        self.common: dict[str, tuple[RunScore, RunScore]] = {}
        self.by_bag: dict[str, dict[str, RunScore]] = {}
        self.bag_scored: dict[str, dict[str, dict[str, Any]]] = {}  # scored by the bag's worker
        self.by_tag: dict[str, dict[str, RunScore]] = {}
        self.bag_entries: dict[str, dict[str, Any]] = {}
        self.extremes: Extremes[FrameView] = Extremes(EXTREMES)
        self.drops: Counter[str] = Counter()
        self.sync: Counter[str] = Counter()
        self.notes: list[str] = []
        self.problems: list[str] = []  # why part of the input is missing from the scores
        self.frames_without_gt = 0
        self.per_frame: list[dict[str, Any]] = []  # the first run against ground truth, frame by frame
        self.compute_s: Counter[str] = Counter()

    def _score(self, name: str) -> RunScore:
        return RunScore.of(name, self.specs[name])

    def _start(self, specs: dict[str, ModelSpec]) -> None:
        self.specs = dict(specs)
        self.scores = {r.name: self._score(r.name) for r in self.runs}
        self.common = {r.name: (self._score(self.runs[0].name), self._score(r.name)) for r in self.runs[1:]}

    def add(self, outcome: BagOutcome) -> None:
        task = outcome.task
        entry = self.bag_entries.setdefault(
            task.label,
            {"bag": task.label, "path": str(task.bag), "tags": dict(task.tags), "frames": 0, "error": None,
             "incomplete": None, "wall_s": 0.0},
        )  # fmt: skip
        entry["wall_s"] += outcome.wall_s
        prefix = f"{task.label}: " if self.fleet else ""
        if outcome.error is not None:
            entry["error"] = outcome.error
            self.problems.append(f"{task.label} could not be replayed: {outcome.error}")
            return
        if not self.specs:
            self._start(outcome.specs)
        if outcome.incomplete is not None:
            entry["incomplete"] = outcome.incomplete
            self.problems.append(prefix + outcome.incomplete)
        for note in outcome.notes:
            if prefix + note not in self.notes:
                self.notes.append(prefix + note)
        self.drops.update(outcome.drops)
        self.sync.update(outcome.sync)
        self.compute_s.update(outcome.compute_s)
        self.frames_without_gt += outcome.frames_without_gt
        entry["frames"] += len(outcome.frames)
        first = self.runs[0].name
        # a whole bag comes scored by its worker; the slices of one are scored here, together
        groups = [self.by_tag.setdefault(f"{k}={v}", {}) for k, v in sorted(task.tags.items())]
        if outcome.bag_scores is not None:
            self.bag_scored[task.label] = outcome.bag_scores
        else:
            groups.append(self.by_bag.setdefault(task.label, {}))
        for rec in outcome.frames:
            token = f"{task.index}:{rec.stamp_ns}"
            gt = rec.ground_truth
            for r in self.runs:
                out = rec.outputs.get(r.name)
                if out is None:
                    self.scores[r.name].missing += 1
                    continue
                self.scores[r.name].add(out, gt, token)
                by_mode = self.mode_scores[r.name]
                if out.mode not in by_mode:
                    by_mode[out.mode] = self._score(r.name)
                by_mode[out.mode].add(out, gt, token)
                if self.fleet:
                    for group in groups:
                        if r.name not in group:
                            group[r.name] = self._score(r.name)
                        group[r.name].add(out, gt, token)
            ref = rec.outputs.get(first)
            if ref is None:
                continue
            for r in self.runs[1:]:
                other = rec.outputs.get(r.name)
                agreement = rec.agreement.get(r.name)
                if other is not None and agreement is not None:
                    self.agreement[r.name].add(agreement)
                    ref_common, other_common = self.common[r.name]
                    ref_common.add(ref, gt, token)
                    other_common.add(other, gt, token)
            if rec.quality is not None:
                q = rec.quality
                row: dict[str, Any] = {"stamp_ns": rec.stamp_ns, "tp": q.tp, "fp": q.fp, "fn": q.fn, "f1": q.f1}
                if self.fleet:
                    row["bag"] = task.label
                self.per_frame.append(row)
        for f1, view in outcome.extremes:
            self.extremes.add(f1, view)

    def compute(self, mapper: Mapper) -> None:
        """Every detection score results() will ask for, computed at once through ``mapper`` (on a
        fleet's workers: the driver would compute them one after another)."""
        groups: list[RunScore] = [*self.scores.values()]
        for by_mode in self.mode_scores.values():
            groups += by_mode.values() if len(by_mode) > 1 else []
        groups += [s for pair in self.common.values() for s in pair]
        groups += [s for scores in (*self.by_tag.values(), *self.by_bag.values()) for s in scores.values()]
        compute_all([g.det for g in groups if g.scored], mapper)

    def results(self, wall_s: float, fleet: dict[str, Any]) -> EvaluationResult:
        from bevfusion_ros.core.eval.agreement import percentiles

        if not self.specs:
            msg = "no bag could be replayed: " + "; ".join(self.problems or ["nothing finished"])
            raise BagError(msg)
        merge_start = time.perf_counter()
        runs = []
        for r in self.runs:
            s = self.scores[r.name]
            detection = s.det.compute() if s.scored else None
            curves = detection.pop("pr_curves") if detection is not None else None
            seg = None
            if s.scored and s.map is not None and s.map.tp.sum() + s.map.fn.sum() > 0:
                seg = s.map.compute()
            compute_s = self.compute_s.get(r.name, 0.0)
            runs.append(
                RunResult(
                    name=r.name,
                    model=s.spec.name,
                    kind="recorded" if r.recorded else "replayed",
                    source=str(r.recorded)
                    if r.recorded and not self.fleet
                    else ("recorded" if r.recorded else r.backend),
                    frames=s.frames,
                    frames_scored=s.scored,
                    frames_missing=s.missing,
                    latency_ms={k: percentiles(v) for k, v in s.stages.items()},
                    frames_per_s=s.frames / compute_s if compute_s > 0 else None,
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
        bags = []
        for label, entry in self.bag_entries.items():
            scored = self.bag_scored.get(label)
            if scored is None:
                scored = {n: sc.scores() for n, sc in self.by_bag.get(label, {}).items()}
            bags.append(dict(entry, runs=scored))
        tags = {
            tag: {"bags": sum(1 for t in self.bag_entries.values() if tag in _tag_names(t["tags"])),
                  "runs": {n: sc.scores() for n, sc in scores.items()}}
            for tag, scores in sorted(self.by_tag.items())
        }  # fmt: skip
        fleet = dict(fleet, merge_s=fleet.get("merge_s", 0.0) + time.perf_counter() - merge_start)
        labels, tasks = list(self.bag_entries), self.tasks
        return EvaluationResult(
            bag=f"{tasks[0].bag}{tasks[0].span}" if not self.fleet else f"{len(labels)} bags",
            runs=runs,
            comparisons=comparisons,
            frames=max((s.frames for s in self.scores.values()), default=0),
            frames_without_ground_truth=self.frames_without_gt,
            per_frame=self.per_frame,
            drops=dict(self.drops),
            sync=dict(self.sync),
            wall_s=wall_s,
            notes=self.notes,
            incomplete="; ".join(self.problems) or None,
            gates=gates,
            agreement=self.agreement,
            extremes=self.extremes,
            bags=bags if self.fleet else [],
            tags=tags,
            fleet=fleet,
        )


def _tag_names(tags: Mapping[str, str]) -> set[str]:
    return {f"{k}={v}" for k, v in tags.items()}


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
    """Replay and/or read the recordings of every bag (in this process or as Ray tasks), score every
    run, compare them, apply the gates."""
    from bevfusion_ros.core.resources import default_model
    from bevfusion_ros.tools.eval.fleet import FleetRun, execute, plan

    tasks = plan(options)
    runs = run_specs(options, tasks[0].bag)
    if options.recorded is not None and len({t.bag for t in tasks}) > 1:
        msg = "--recorded PATH names one recording; with several bags, --recorded alone scores each bag's own"
        raise ConfigError(msg)
    base_spec = load_model(options.model or default_model())
    start = time.perf_counter()

    def score(done: FleetRun, mapper: Mapper) -> EvaluationResult:
        scoring = Scoring(options, runs, tasks)
        merge_start = time.perf_counter()
        for outcome in sorted(done.outcomes, key=lambda o: o.task.index):
            scoring.add(outcome)
        if done.interrupted:
            finished = len(done.outcomes)
            scoring.problems.append(f"interrupted: {finished} of {len(tasks)} tasks finished and are scored")
        scoring.compute(mapper)
        fleet = {
            "tasks": len(tasks),
            "bags": len({t.bag for t in tasks}),
            "workers": done.workers,
            "ray_address": done.address,
            "merge_s": time.perf_counter() - merge_start,
            "interrupted": done.interrupted,
        }
        return scoring.results(time.perf_counter() - start, fleet)

    return execute(options, tasks, base_spec, score)
