"""One bag, or one time slice of one, through the node's code: the half of ``bevfusion-ros evaluate``
that a fleet worker runs.

The bag's sensors go through the node's sync policy on the bag's clock, its frame decoding, its
configure step and runner, for every replayed run; recorded runs are read from the node's recordings.
What comes back is compact and in frame order: per frame the ground-truth boxes, each run's boxes,
map IoU counts, stage timings and sensor mode, each compared run's agreement with the first, and the
few best and worst frames for their renders. No images travel, so many workers send the driver
little, and the driver scores the records exactly as one process would (``tools.eval.evaluation``).

A task (``tools.eval.records``: a bag or a time slice of one) owns the frames stamped inside it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BagError, BevFusionError, ConfigError
from bevfusion_ros.core.eval.agreement import Extremes, FrameAgreement, frame_agreement, frame_quality
from bevfusion_ros.core.eval.metrics import MapIoU
from bevfusion_ros.core.model import LIDAR_ONLY, ModelSpec
from bevfusion_ros.core.perception.lidar_input import Problem
from bevfusion_ros.tools.bags.layout import GT_MAP_PREFIX, GT_TOPIC
from bevfusion_ros.tools.bags.replay import (
    BagTopics,
    RecordedFrame,
    SensorReplay,
    StampCursor,
    check_sensor_topics,
    ground_truth,
    node_values,
    recorded_outputs,
    recorded_topics,
)
from bevfusion_ros.tools.eval.records import EXTREMES, BagOutcome, BagTask, FrameRecord, FrameView, RunFrame
from bevfusion_ros.tools.eval.scoring import RunScore

if TYPE_CHECKING:
    from bevfusion_ros.core.perception.config import PerceptionConfig
    from bevfusion_ros.ros.sweeps import SweepPoses
    from bevfusion_ros.tools.eval.runs import EvaluationOptions, RunSpec

RENDER_POINTS = 30_000  # points kept per best/worst frame for its BEV render
# the ground truth is stamped at the LiDAR sweeps; under half a 10 Hz frame from a frame's stamp
GT_STAMP_TOLERANCE_NS = 45_000_000


class ReplayRun:
    """One backend/model on the replayed frames: the node's configure step, then its runner."""

    def __init__(self, run: RunSpec, values: dict[str, Any]) -> None:
        from bevfusion_ros.core.perception.config import load_config
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


Tick = Callable[[int], None]  # told of each frame a task finishes (the fleet's progress bar)


class BagReplay:
    """One task: configures every replayed run on the bag, replays or reads its frames, and keeps
    the compact records of the frames the task owns."""

    def __init__(self, options: EvaluationOptions, runs: list[RunSpec], task: BagTask, base_spec: ModelSpec) -> None:
        self.options, self.runs, self.task = options, runs, task
        self.outcome = BagOutcome(task)
        self.bag = BagTopics.read(task.bag)
        self.values = node_values(self.bag, base_spec.cameras, options.params_file, options.params, options.calibration)
        if options.backend_threads and "backend_threads" not in options.params:
            self.values["backend_threads"] = options.backend_threads
        self.replayed: dict[str, ReplayRun] = {}
        try:
            for r in runs:
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
                self.close()
                msg = f"run {n}: model {s.name} has other cameras or classes than {self.spec.name}; runs must agree"
                raise ConfigError(msg)
        self.outcome.specs = {r.name: specs.get(r.name, self.spec) for r in runs}
        self.outcome.compute_s = dict.fromkeys(self.replayed, 0.0)
        self.extremes: Extremes[FrameView] = Extremes(EXTREMES)

    def close(self) -> None:
        for rr in self.replayed.values():
            rr.close()

    @property
    def notes(self) -> list[str]:
        return self.outcome.notes

    # -- the frame loop --------------------------------------------------------------------------
    def run(self, tick: Tick | None = None) -> BagOutcome:
        start = time.perf_counter()
        self.tick = tick
        spec = self.spec
        window = self.task.window()
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
        self.gt = StampCursor(ground_truth(self.task.bag, spec, has_map, window)) if has_gt else None
        self.recorded = {
            r.name: StampCursor(recorded_outputs(r.recorded, spec, window=window))
            for r in self.runs
            if r.recorded is not None
        }
        self.recorded_frames = {r.name: self._check_recorded(r) for r in self.runs if r.recorded is not None}
        self.map_iou = MapIoU(map_classes) if map_classes else None
        try:
            if self.replayed:
                self._replay()
            else:
                self._recorded_only()
        except BagError as exc:
            self.outcome.incomplete = str(exc)
        for name, cur in [("ground truth", self.gt), *self.recorded.items()]:
            if cur is not None and cur.error is not None and self.outcome.incomplete is None:
                self.outcome.incomplete = f"{name}: {cur.error}"
        self.outcome.extremes = self.extremes.candidates()
        self.outcome.wall_s = time.perf_counter() - start
        return self.outcome

    def _check_recorded(self, r: RunSpec) -> int:
        """The recording's detections message count; a recording without them is a BagError."""
        assert r.recorded is not None
        rec = self.bag if r.recorded == self.task.bag else BagTopics.read(r.recorded)
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
        for topic, msg, _ in checked_messages(self.task.bag, set(messages)):
            messages[topic].append(msg)
        if not messages["/tf"]:
            self.notes.append(f"the bag has no /tf: past sweeps cannot be placed ({cfg.odom_frame} -> LiDAR)")
        return SweepPoses.from_messages(cfg.odom_frame, messages["/tf"], messages["/tf_static"])

    def _replay(self) -> None:
        from bevfusion_ros.ros.frame_decode import decode_frame, image_decoder
        from bevfusion_ros.ros.sweeps import LidarSweeps

        task, outcome, max_frames = self.task, self.outcome, self.options.max_frames
        first = next(iter(self.replayed.values()))
        cfg = first.cfg
        replay = SensorReplay(task.bag, cfg, first.rig, task.window())
        decode = image_decoder(cfg.image_transport == "compressed", use_distro=False)
        pending: dict[int, dict[str, RecordedFrame]] = {}
        points: dict[int, npt.NDArray[np.float32]] = {}
        done = 0
        poses = self._sweep_poses(cfg)
        # as the node: too many masked cameras run LiDAR-only where every replayed model learned it
        lidar_only = all(rr.spec.modality_dropout.allows(LIDAR_ONLY) for rr in self.replayed.values())
        rig = first.rig  # the calibration in use: images of another size mask their camera, as in the node
        sweeps = {
            name: LidarSweeps(rr.sweeps, poses, cfg.lidar_frame, use_distro=False)
            for name, rr in self.replayed.items()
            if rr.sweeps is not None
        }
        # a slice's sync counts are those between its first owned frame and the first frame past it
        sync_before: Counter[str] | None = None if task.start_ns is not None else Counter()
        sync_after: Counter[str] | None = None
        try:
            for item in replay.frames():
                stamp = item.frame.stamp_ns
                if task.end_ns is not None and stamp >= task.end_ns:
                    sync_after = replay.counts
                    break
                owned = task.owns(stamp)
                if owned and sync_before is None:
                    sync_before = replay.counts
                if owned and max_frames and done >= max_frames:
                    break
                for lidar_sweeps in sweeps.values():  # a past sweep for the next frames, processed or not
                    if item.frame.lidar is not None:
                        lidar_sweeps.offer(stamp, item.frame.lidar)
                if item.rig is not None:
                    rig = item.rig
                    for name, rr in self.replayed.items():
                        self._collect(pending, points, name, rr.runner.set_calibration(item.rig))
                if not owned:  # the warm-up before a slice: the state above, nothing run or counted
                    continue
                done += 1
                if self.tick is not None:
                    self.tick(1)
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
                    outcome.drops[f"frame_dropped_{type(exc).__name__}"] += 1
                    self._note_once("undecodable", f"frame at {stamp} ns dropped: {exc}")
                    continue
                if decoded.bad_images:
                    outcome.drops["bad_image"] += len(decoded.bad_images)
                if decoded.dropped is not None:
                    outcome.drops["frame_too_many_masked"] += 1
                    continue
                points[stamp] = decoded.points if decoded.points is not None else np.zeros((0, 4), np.float32)
                for name, rr in self.replayed.items():
                    t0 = time.perf_counter()
                    try:
                        cloud, problems = decoded.points, list[Problem]()
                        if name in sweeps and decoded.points is not None:
                            cloud, problems = sweeps[name].densify(stamp, item.frame.lidar, decoded.points)
                        for cause, message in problems:
                            outcome.drops[f"{name}: {cause}"] += 1
                            self._note_once(f"{name}-{cause}", f"run {name}: {message}")
                        out = rr.runner.run(decoded.images, cloud, stamp)
                    except BevFusionError as exc:
                        outcome.drops[f"{name}: frame_dropped_{type(exc).__name__}"] += 1
                        self._note_once(f"run-{name}", f"run {name} dropped frame {stamp}: {exc}")
                        out = []
                    outcome.compute_s[name] += time.perf_counter() - t0
                    self._collect(pending, points, name, out)
        finally:
            for name, rr in self.replayed.items():
                self._collect(pending, points, name, rr.runner.flush())
            for stamp in sorted(pending):
                self._finish(stamp, pending.pop(stamp), points.pop(stamp, None))
            after = sync_after if sync_after is not None else replay.counts
            outcome.sync = dict(after - (sync_before or Counter()))
            read = replay.read[cfg.lidar_topic]
            listed = self.bag.count(cfg.lidar_topic)
            if read < listed and not max_frames and not task.sliced and outcome.incomplete is None:
                outcome.incomplete = (
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
        name = self.runs[0].name
        driver = self.recorded.pop(name)
        done = 0
        for stamp, out in driver:
            if not self.task.owns(stamp):
                if self.task.end_ns is not None and stamp >= self.task.end_ns:
                    break
                continue
            if self.options.max_frames and done >= self.options.max_frames:
                break
            done += 1
            if self.tick is not None:
                self.tick(1)
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
            self.outcome.frames_without_gt += 1
        scored = gt is not None and gt.detections is not None
        runs: dict[str, RunFrame] = {}
        for name, out in outputs.items():
            counts = None
            seg = out.segmentation
            if scored and self.map_iou is not None and gt is not None and gt.map is not None:
                if seg is not None and seg.grid == gt.map_grid:
                    counts = self.map_iou.frame_counts(seg.probabilities, gt.map)
            runs[name] = RunFrame(out.detections, out.timings_ms, out.mode, counts)
        ref = outputs.get(self.runs[0].name)
        agreement: dict[str, FrameAgreement] = {}
        quality = None
        if ref is not None:
            for r in self.runs[1:]:
                other = outputs.get(r.name)
                if other is not None:
                    agreement[r.name] = frame_agreement(
                        stamp, ref.detections, other.detections, ref.segmentation, other.segmentation
                    )
            if scored:
                assert gt is not None and gt.detections is not None
                quality = frame_quality(gt.detections, ref.detections)
                keep = None if points is None else points[:: max(1, len(points) // RENDER_POINTS)]
                view = FrameView(stamp, keep, gt, ref.detections, ref.segmentation, quality.f1, self.task.label)
                self.extremes.add(quality.f1, view)
        self.outcome.frames.append(
            FrameRecord(stamp, gt.detections if scored and gt is not None else None, runs, agreement, quality)
        )


def replay_task(
    options: EvaluationOptions,
    task: BagTask,
    base_spec: ModelSpec,
    tick: Tick | None = None,
    raise_errors: bool = False,
) -> BagOutcome:
    """One task, start to end. A bag that cannot be replayed at all comes back with ``error`` set,
    or with ``raise_errors`` (an evaluation of one bag) raises its error."""
    from bevfusion_ros.tools.eval.runs import run_specs

    try:
        replay = BagReplay(options, run_specs(options, task.bag), task, base_spec)
    except BevFusionError as exc:
        if raise_errors:
            raise
        return BagOutcome(task, error=str(exc))
    try:
        outcome = replay.run(tick)
    except BevFusionError as exc:  # a recording without detections
        if raise_errors:
            raise
        return BagOutcome(task, error=str(exc))
    finally:
        replay.close()
    if task.score_alone:  # the bag's own scores, computed here where many run at once, not in the driver
        scores = {name: RunScore.of(name, spec) for name, spec in outcome.specs.items()}
        for record in outcome.frames:
            for name, out in record.outputs.items():
                scores[name].add(out, record.ground_truth, str(record.stamp_ns))
        outcome.bag_scores = {name: score.scores() for name, score in scores.items()}
    return outcome
