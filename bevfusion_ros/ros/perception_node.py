"""The perception node: six cameras + one LiDAR in; 3D boxes, BEV map grids, markers, timings and
diagnostics out. A lifecycle node:

* configure: parameters -> PerceptionConfig, model YAML -> pipeline with its backend activated,
  calibration -> camera rig and the bevpool precompute. Any failure returns FAILURE with one log line.
* activate: publishers, subscriptions and the sync policy; deactivate / cleanup undo them in turn.
* diagnostics: diagnostic_updater's Updater from configure to cleanup (perception_health's tasks),
  so an inactive node reports that it is inactive instead of going stale.

Threads: the executor (single-threaded) runs the sensor callbacks, which only read stamps and feed
the sync policy, and the diagnostic updater. A complete frame goes into a one-slot mailbox and wakes
the inference thread, which converts, runs the pipeline and publishes. A frame that arrives while
the model is busy replaces the waiting one and is counted as dropped, so latency stays flat when
sensors outpace the model. Inference is a plain thread, not a callback group of a multi-threaded
executor: measured with 25 MiB frames at 10 Hz (benchmarks/node.py), rclpy's MultiThreadedExecutor
took only 6-12 of 50 LiDAR sweeps off the middleware, the single-threaded one 47.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter

from bevfusion_ros.core.errors import BevFusionError
from bevfusion_ros.core.model import FULL, LIDAR_ONLY
from bevfusion_ros.core.perception.config import PARAMETERS, PerceptionConfig
from bevfusion_ros.core.perception.configure import configure
from bevfusion_ros.core.perception.health import (
    LatencyStats,
    LatestSlot,
    ModeChange,
    ProblemLog,
    RateMeter,
    SensorModes,
)
from bevfusion_ros.core.perception.lidar_input import Problem
from bevfusion_ros.core.perception.runner import DirectRunner, StreamedRunner
from bevfusion_ros.core.perception.sync import SyncedFrame
from bevfusion_ros.core.perception.timing import PERCEPTION_NODE
from bevfusion_ros.core.pipeline.pipeline import FrameResult, Pipeline, runtime_ms
from bevfusion_ros.core.sensors.image import raw_conversion
from bevfusion_ros.core.sensors.rig import CameraRig
from bevfusion_ros.ros import diagnostics, optional, params, perception_health
from bevfusion_ros.ros.frame_decode import cloud_conversion, decode_frame, rig_with_camera_info
from bevfusion_ros.ros.perception_io import Inputs, Outputs
from bevfusion_ros.ros.sweeps import LidarSweeps, SweepPoses

Tag = tuple[SyncedFrame, float, int, float]  # frame, when offered (monotonic s), masked cameras, host ms

NODE_NAME = PERCEPTION_NODE
# a sensor clock this far ahead of the node's is wrong (clock not synced), not early: its frames are refused
MAX_STAMP_AHEAD_NS = 1_000_000_000
PARAMETER_NAMES = frozenset(p.name for p in PARAMETERS)


MAX_NOTED = 64  # distinct conversions said once each; a sensor changing its layout every frame stops there


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self)
        params.refuse_unknown_overrides(self)
        self.add_on_set_parameters_callback(self._refuse_while_configured)
        self.cfg: PerceptionConfig | None = None
        self.pipeline: Pipeline | None = None
        self.runner: DirectRunner[Tag] | StreamedRunner[Tag] | None = None
        self.lidar_sweeps: LidarSweeps | None = None
        self.current_rig: CameraRig | None = None  # the newest rig requested (file, then CameraInfo)
        self.inputs: Inputs | None = None
        self.outputs: Outputs | None = None
        self.slot: LatestSlot[tuple[SyncedFrame, float]] = LatestSlot()
        self.pending_rig: LatestSlot[CameraRig] = LatestSlot()
        self.problems = ProblemLog()
        self._noted: set[str] = set()  # the legal input conversions already logged
        self.latency_ms = LatencyStats()
        self.total_ms = LatencyStats()
        self.host_ms = LatencyStats()
        self.stage_ms: dict[str, LatencyStats] = {}
        self.processed = 0
        self.published = RateMeter()
        self.modes = SensorModes()
        self.lidar_only_ok = False  # the model learned to run without cameras (modality_dropout.camera)
        self.lidar_frame_id = ""  # the newest sweep's frame, for frames without one when lidar_frame is empty
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.updater: Any = None  # diagnostic_updater.Updater
        self._output_rate: Any = None  # its FrequencyStatus task while active

    # -- lifecycle ---------------------------------------------------------------------------------
    # As ros2/demos' lifecycle talker: publishers (lifecycle publishers) are made at configure and
    # enabled by activate, so the topics stay while inactive; subscriptions and the inference thread
    # exist only while active.
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            done = configure(params.read(self), self._lookup_extrinsics)
        except BevFusionError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.cfg, self.pipeline, self.runner, self.current_rig = done.cfg, done.pipeline, done.runner, done.rig
        self._noted.clear()
        self.problems.interval_s = self.cfg.problem_log_interval
        self.lidar_only_ok = done.spec.modality_dropout.allows(LIDAR_ONLY)
        if done.sweeps is not None:
            try:
                poses = SweepPoses.listening(self, self.cfg.odom_frame) if done.sweeps.sweeps > 1 else None
            except BevFusionError as exc:
                self.get_logger().error(f"configure failed: {exc}")
                self.release()
                return TransitionCallbackReturn.FAILURE
            self.lidar_sweeps = LidarSweeps(done.sweeps, poses, self.cfg.lidar_frame)
        try:
            self.outputs = Outputs(self, self.cfg, done.spec)
        except BevFusionError as exc:  # the class-remap table of ~/objects
            self.get_logger().error(
                f"configure failed: {exc} (give class_remap_file for this model, or publish_objects:=false)"
            )
            self.release()
            return TransitionCallbackReturn.FAILURE
        self.updater = diagnostics.make_updater(
            self, self.cfg.diagnostics_period, f"{done.spec.name} on {self.cfg.backend}", perception_health.tasks(self)
        )
        self.get_logger().info(
            f"configured: model '{done.spec.name}' on {self.cfg.backend}, {len(done.spec.cameras)} cameras, "
            f"sync {self.cfg.sync_policy}, geometry precompute {done.geometry_ms:.0f} ms; {fallbacks(self)}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _refuse_while_configured(self, changes: list[Parameter[Any]]) -> SetParametersResult:
        """Every parameter takes effect at configure: changing one later would silently do nothing."""
        ours = [c.name for c in changes if c.name in PARAMETER_NAMES]
        if self.cfg is not None and ours:
            reason = (
                f"{', '.join(ours)} take(s) effect at configure and the node is configured: "
                f"`ros2 lifecycle set /{NODE_NAME} deactivate` (if active) and `cleanup`, set it, configure again"
            )
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _lookup_extrinsics(self, lidar_frame: str, camera_frames: Sequence[str]) -> list[Any]:
        return optional.lookup_extrinsics(self, lidar_frame, camera_frames)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self.cfg is not None and self.pipeline is not None and self.outputs is not None
        result = super().on_activate(state)  # enables the lifecycle publishers
        self.outputs.publish_labels()
        self.slot.clear()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="bevfusion_inference", daemon=True)
        self._worker.start()
        try:
            self.inputs = Inputs(self, self.cfg, self.pipeline.spec, self._offer, self._on_camera_info, self.problem)
        except BevFusionError as exc:
            self.get_logger().error(f"activate failed: {exc}")
            self._stop_inputs()
            return TransitionCallbackReturn.FAILURE
        self._output_rate = perception_health.output_rate()
        if self.updater is not None:
            self.updater.add(self._output_rate)
        self.get_logger().info(f"active: waiting for {self.cfg.lidar_topic} and {len(self.cfg.image_topics)} cameras")
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Stop inference and free the model: the lifecycle's cleanup, and what ``main()`` runs on every
        exit (signal, exception) before the node and its context are destroyed. A live inference thread
        at interpreter exit aborted the process (SIGABRT) under ONNX Runtime and kept the DDS
        participant, and its shared-memory segment, from being finalised."""
        self._stop_inputs()
        if self.outputs is not None:
            self.outputs.destroy()
        if self.updater is not None:
            diagnostics.destroy_updater(self, self.updater)
        self.outputs, self.updater = None, None
        if self.runner is not None:
            self.runner.close()  # deactivates the pipeline too
        elif self.pipeline is not None:
            self.pipeline.deactivate()
        self.runner = None
        self.pipeline = None
        if self.lidar_sweeps is not None:
            self.lidar_sweeps.close()
        self.lidar_sweeps = None
        self.cfg = None  # unconfigured again: parameters may change

    def _stop_inputs(self) -> None:
        """The inference thread first (it publishes), then the subscriptions that feed it."""
        if self.updater is not None and self._output_rate is not None:
            self.updater.removeByName(perception_health.OUTPUT_RATE)
        self._output_rate = None
        if self._worker is not None:
            self._stop.set()
            self._wake.set()
            self._worker.join(timeout=30)
        if self.inputs is not None:
            self.inputs.destroy()
        self.inputs, self._worker = None, None
        self.slot.clear()

    # -- sensor side (the executor's thread) --------------------------------------------------------
    def problem(self, cause: str, message: str) -> None:
        if self.problems.report(cause, message):
            self.get_logger().warning(
                f"{cause}: {message} (logged at most every {self.problems.interval_s:.0f} s; counts in diagnostics)"
            )

    def _offer(self, frame: SyncedFrame) -> None:
        assert self.cfg is not None
        now = self.get_clock().now().nanoseconds
        if now > 0 and frame.stamp_ns - now > MAX_STAMP_AHEAD_NS:  # 0: sim time before the first /clock
            ahead = (frame.stamp_ns - now) / 1e9
            self.problem("stamp_in_future", f"frame at {frame.stamp_ns} ns dropped: stamped {ahead:.1f} s ahead of now")
            return
        if frame.lidar is not None:
            self.lidar_frame_id = frame.lidar.header.frame_id
            if self.lidar_sweeps is not None:  # every sweep is a past sweep for the next ones, processed or not
                self.lidar_sweeps.offer(frame.stamp_ns, frame.lidar)
        masked = frame.masked
        if len(masked) > self.cfg.max_masked_cameras and not (self.lidar_only_ok and frame.lidar is not None):
            names = ", ".join(self.cfg.camera_names[i] for i in masked)
            self.problem("frame_too_many_masked", f"frame at {frame.stamp_ns} ns dropped: cameras {names} masked")
            return
        self.slot.put((frame, time.monotonic()))
        self._wake.set()

    def _on_camera_info(self, index: int, msg: Any) -> None:
        """Rebuild the rig when a camera reports intrinsics other than those in use."""
        assert self.cfg is not None
        current = self.current_rig
        assert current is not None
        try:
            rig = rig_with_camera_info(current, index, msg)
        except BevFusionError as exc:
            self.problem("bad_camera_info", f"{self.cfg.camera_info_topics[index]}: {exc}")
            return
        if rig is None:
            return
        old, intr = current.intrinsics[index], rig.intrinsics[index]
        # a K that changes every frame must not flood the log: once per camera per interval, all counted
        if self.problems.report(f"camera_info_changed {current.names[index]}", "geometry recomputed"):
            self.get_logger().info(
                f"camera {current.names[index]}: CameraInfo differs from the calibration in use "
                f"({old.width}x{old.height} fx {old.fx:g} -> {intr.width}x{intr.height} fx {intr.fx:g}); geometry "
                f"recomputed before the next frame (said at most every {self.problems.interval_s:.0f} s; counted)"
            )
        self.current_rig = rig
        self.pending_rig.put(rig)

    # -- inference (its own thread) -----------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            pending = self.runner is not None and self.runner.pending
            # A pipelined frame waits for the next one; when none comes soon, hand it out alone.
            woke = self._wake.wait(timeout=0.05 if pending else 0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                # Always look in the slot: a wake-up can coincide with the clear() above and be lost.
                took = self._infer()
                if not took and not woke and pending and self.runner is not None:
                    self._publish_all(self.runner.flush())
            except Exception as exc:  # never let the inference thread die silently
                if not self.context.ok():  # a stop signal shut the context down under a publish
                    return
                self.problem(f"frame_dropped_{type(exc).__name__}", f"unexpected error: {exc}")

    def _infer(self) -> bool:
        """Process the waiting frame, if any; True when one was taken."""
        item = self.slot.take()
        if item is None or self.runner is None or self.outputs is None or self.cfg is None:
            return False
        frame, offered = item
        t0 = time.perf_counter()
        rig = self.pending_rig.take()
        if rig is not None:
            try:
                self._publish_all(self.runner.set_calibration(rig))
            except BevFusionError as exc:
                self.problem("calibration_update_failed", str(exc))
        if self.inputs is None:
            return True
        try:
            sizes = self.current_rig.image_sizes() if self.current_rig is not None else ()
            decoded = decode_frame(
                frame,
                self.inputs.image,
                self.cfg.max_masked_cameras,
                lidar_only=self.lidar_only_ok,
                image_sizes=sizes,
                lidar_frame=self.cfg.lidar_frame,
            )
        except BevFusionError as exc:
            self.problem(f"frame_dropped_{type(exc).__name__}", str(exc))
            return True
        for i, why in decoded.bad_images:
            self.problem("bad_image", f"{self.cfg.image_topics[i]}: {why}; camera masked")
        self._note_conversions(frame)
        if decoded.dropped is not None:
            self.problem("frame_too_many_masked", decoded.dropped)
            return True
        try:
            points, problems = decoded.points, list[Problem]()
            if self.lidar_sweeps is not None and decoded.points is not None:
                points, problems = self.lidar_sweeps.densify(frame.stamp_ns, frame.lidar, decoded.points)
            for cause, message in problems:
                self.problem(cause, message)
            host_in = (time.perf_counter() - t0) * 1e3
            done = self.runner.run(decoded.images, points, (frame, offered, decoded.masked, host_in))
        except BevFusionError as exc:
            self.problem(f"frame_dropped_{type(exc).__name__}", str(exc))
            return True
        self._publish_all(done)
        return True

    def _note_conversions(self, frame: SyncedFrame) -> None:
        """A legal but unusual input (mono8 or rgba8 images, padded rows, a float64 or organised
        cloud) is read correctly and said once at INFO, so a sensor's real format is on record."""
        assert self.cfg is not None
        notes: list[tuple[str, str]] = []
        if not self.inputs or not self.inputs.compressed:
            for topic, msg in zip(self.cfg.image_topics, frame.images, strict=True):
                if msg is not None and (change := raw_conversion(str(msg.encoding), int(msg.width), int(msg.step))):
                    notes.append((f"{topic} {change}", f"{topic}: {change}"))
        if frame.lidar is not None:
            if (change := cloud_conversion(frame.lidar)) is not None:
                notes.append((change, f"{self.cfg.lidar_topic}: {change}"))
        for key, text in notes:
            if key not in self._noted and len(self._noted) < MAX_NOTED:
                self._noted.add(key)
                self.get_logger().info(f"accepted: {text} (said once)")

    def _publish_all(self, done: list[tuple[Tag, FrameResult]]) -> None:
        assert self.outputs is not None and self.cfg is not None and self.pipeline is not None
        for (frame, offered, masked, host_in), result in done:
            if result.lidar_dropped:  # the model's voxel caps cut the sweep (as in training, but worth knowing)
                cut = ", ".join(f"{k} {n}" for k, n in result.lidar_dropped.items())
                self.problem("lidar_capped", f"the voxelize caps dropped part of the sweep: {cut}")
            self._note_mode(result.mode, frame)
            t1 = time.perf_counter()
            self.outputs.publish(frame, result, self.cfg.lidar_frame or self.lidar_frame_id)
            host_ms = host_in + (time.perf_counter() - t1) * 1e3 + runtime_ms(self.pipeline.spec, result.timings_ms)
            self._record(result, host_ms, (time.monotonic() - offered) * 1e3, frame, masked)

    def _note_mode(self, mode: str, frame: SyncedFrame) -> None:
        """Log each change of sensor mode once (rate-limited per mode; every change is counted)."""
        change: ModeChange | None = self.modes.update(mode)
        if change is None or (change.before is None and mode == FULL):
            return
        was = f"after {change.frames_before} {change.before} frames" if change.before else "from the first frame"
        if mode == FULL:
            if self.problems.report("mode_full", "both sensors back"):
                self.get_logger().info(f"sensor mode full again at {frame.stamp_ns} ns ({was})")
            return
        lost = "no LiDAR sweep for lidar_timeout" if frame.lidar is None else "no usable camera image"
        self.problem(f"mode_{mode}", f"degraded to {mode} at {frame.stamp_ns} ns ({lost}; {was}); outputs are flagged")

    def _record(self, result: FrameResult, host_ms: float, latency_ms: float, frame: SyncedFrame, masked: int) -> None:
        assert self.outputs is not None
        self.processed += 1
        self.published.tick()
        output_rate = self._output_rate  # None once deactivate has begun
        if output_rate is not None:
            output_rate.tick()
        self.total_ms.add(result.timings_ms["total"])
        self.host_ms.add(host_ms)
        self.latency_ms.add(latency_ms)
        for k, v in result.timings_ms.items():
            self.stage_ms.setdefault(k, LatencyStats()).add(v)
        self.outputs.publish_timing(frame, result, host_ms, latency_ms, self.get_clock().now().nanoseconds, masked)


def fallbacks(node: PerceptionNode) -> str:
    """What the node does when a sensor is lost, for the configure log line."""
    assert node.cfg is not None
    camera_only = (
        f"camera-only frames after {node.cfg.lidar_timeout:g} s without LiDAR"
        if node.cfg.lidar_timeout > 0
        else "no camera-only frames (lidar_timeout 0 or the model was not trained without LiDAR)"
    )
    lidar_only = "LiDAR-only" if node.lidar_only_ok else "dropped"
    return f"{camera_only}; frames with over {node.cfg.max_masked_cameras} masked cameras {lidar_only}"


def _autostart(node: PerceptionNode) -> int | None:
    if not node.get_parameter("autostart").value:
        return None
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return 1
    if node.cfg is not None and node.cfg.build_only:
        node.get_logger().info("build_only: the engines are built and load; exiting")
        return 0
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        return 1
    return None


def main(args: list[str] | None = None) -> int:
    from bevfusion_ros.ros.node_main import run

    return run(NODE_NAME, PerceptionNode, args, _autostart)


if __name__ == "__main__":
    raise SystemExit(main())
