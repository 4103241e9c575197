"""Sensor synchronisation policies, free of any middleware so they can be tested with plain stamps.

Two policies feed the perception node one frame = (LiDAR sweep, one image per camera):

* ``LidarAnchoredSync`` (the default, what Autoware's BEVFusion node does): every LiDAR sweep makes
  a frame with, per camera, the buffered image nearest the sweep's stamp if it is within
  ``max_delay``; a camera without one is *masked* and counted, so one dead camera never stalls the
  car's perception. A sweep waits at most ``wait`` (wall clock) for images stamped after it.
  With ``lidar_timeout`` set, a LiDAR that falls that far behind the cameras (in sensor stamps, so
  a replay at any rate behaves as the car; or that never spoke) hands the trigger to the cameras:
  each image of the first live camera makes a frame without a sweep (``lidar`` None), built the
  same way around that image's stamp, until a sweep arrives again. Such a frame always waits the
  full ``wait``: a sweep within ``max_delay`` of its stamp arriving meanwhile replaces it (counted
  as camera_frame_superseded), so the LiDAR's return gives one full frame, not two.
* ``ApproximateTimeSync``: the package's own equivalent of message_filters'
  ApproximateTimeSynchronizer (same contract: one queue of ``queue_size`` per input, a set is
  emitted when one message per input has a stamp spread below ``slop``); the node uses message_filters itself
  where it is installed. A set is all-or-nothing: a silent camera stalls every frame.

Stamps are integer nanoseconds. A stamp more than ``TIMELINE_JUMP`` older than the newest one seen
on its input (a bag restarting, a clock reset) starts a new timeline and resets the buffers; smaller
reorderings are normal and kept (a LiDAR sweep older than the previous one is dropped). Duplicates
are dropped. Every such event is counted in ``counts`` for diagnostics.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bevfusion_ros.core.errors import ConfigError

if TYPE_CHECKING:  # the config's parameter table takes its choices from this module
    from bevfusion_ros.core.perception.config import PerceptionConfig

TIMELINE_JUMP_NS = 1_000_000_000
LIDAR_ANCHORED, APPROXIMATE = "lidar_anchored", "approximate"
SYNC_POLICIES = (LIDAR_ANCHORED, APPROXIMATE)


@dataclass(frozen=True)
class SyncedFrame:
    stamp_ns: int  # the LiDAR stamp (or the anchor image's, without a sweep): the outputs' header stamp
    lidar: Any  # None: a camera-anchored frame while the LiDAR is lost
    images: tuple[Any | None, ...]  # None where the camera is masked
    image_stamps_ns: tuple[int | None, ...]

    @property
    def masked(self) -> tuple[int, ...]:
        return tuple(i for i, m in enumerate(self.images) if m is None)

    def max_skew_ns(self) -> int:
        return max((abs(s - self.stamp_ns) for s in self.image_stamps_ns if s is not None), default=0)


def _positive(value: float, name: str) -> None:
    if not value > 0:
        msg = f"{name} must be > 0, got {value}"
        raise ConfigError(msg)


class LidarAnchoredSync:
    def __init__(
        self, n_cameras: int, max_delay_s: float, wait_s: float = 0.05, history: int = 4, lidar_timeout_s: float = 0.0
    ) -> None:
        _positive(n_cameras, "n_cameras")
        _positive(max_delay_s, "max_camera_lidar_delay")
        for value, name in ((wait_s, "camera_wait"), (lidar_timeout_s, "lidar_timeout")):
            if value < 0:
                msg = f"{name} must be >= 0, got {value}"
                raise ConfigError(msg)
        self.max_delay_ns = int(max_delay_s * 1e9)
        self.wait_ns = int(wait_s * 1e9)
        self.lidar_timeout_ns = int(lidar_timeout_s * 1e9)  # 0: frames only from sweeps
        self._first_stamp: int | None = None  # of any input: how long a LiDAR that never spoke is silent
        self._camera_newest: list[int | None] = [None] * n_cameras
        self._images: list[deque[tuple[int, Any]]] = [deque(maxlen=max(1, history)) for _ in range(n_cameras)]
        self._pending: tuple[int, Any, int] | None = None  # (stamp, sweep, arrival)
        self._last_lidar: int | None = None
        self.counts: Counter[str] = Counter()
        self.masked_per_camera = [0] * n_cameras

    def add_camera(self, index: int, stamp_ns: int, msg: Any, now_ns: int) -> list[SyncedFrame]:
        self._first_stamp = stamp_ns if self._first_stamp is None else self._first_stamp
        self._camera_newest[index] = stamp_ns
        buf = self._images[index]
        newest = max((s for s, _ in buf), default=None)
        if newest is not None and stamp_ns < newest - TIMELINE_JUMP_NS:
            self.counts["camera_stamp_backwards"] += 1
            buf.clear()
        elif any(s == stamp_ns for s, _ in buf):
            self.counts["camera_duplicate"] += 1
            return self.poll(now_ns)
        buf.append((stamp_ns, msg))
        if self.lidar_lost(stamp_ns) and index == self._anchor_camera(stamp_ns):
            out = [self._emit()] if self._pending is not None else []
            self._pending = (stamp_ns, None, now_ns)
            return out + self.poll(now_ns)
        return self.poll(now_ns)

    def _camera_frame_near(self, stamp_ns: int) -> bool:
        """A camera-anchored frame is waiting, stamped within max_delay before ``stamp_ns``."""
        pending = self._pending
        return pending is not None and pending[1] is None and stamp_ns - pending[0] <= self.max_delay_ns

    def lidar_lost(self, stamp_ns: int) -> bool:
        """The newest sweep (or, if none came, the first message) is lidar_timeout older than ``stamp_ns``."""
        last = self._last_lidar if self._last_lidar is not None else self._first_stamp
        return bool(self.lidar_timeout_ns) and last is not None and stamp_ns - last >= self.lidar_timeout_ns

    def _anchor_camera(self, stamp_ns: int) -> int | None:
        """The first camera (in model order) with an image within lidar_timeout: its images pace the frames."""
        live = (i for i, t in enumerate(self._camera_newest) if t is not None and stamp_ns - t < self.lidar_timeout_ns)
        return next(live, None)

    def add_lidar(self, stamp_ns: int, msg: Any, now_ns: int) -> list[SyncedFrame]:
        self._first_stamp = stamp_ns if self._first_stamp is None else self._first_stamp
        out: list[SyncedFrame] = []
        if self._last_lidar is not None and stamp_ns == self._last_lidar:
            self.counts["lidar_duplicate"] += 1
            return self.poll(now_ns)
        if self._last_lidar is not None and self._last_lidar - TIMELINE_JUMP_NS <= stamp_ns < self._last_lidar:
            self.counts["lidar_out_of_order"] += 1
            return self.poll(now_ns)
        if self._last_lidar is not None and stamp_ns < self._last_lidar:
            # a bag loop or a clock jump: older images are from another timeline
            self.counts["lidar_stamp_backwards"] += 1
            self._pending = None
            for buf in self._images:
                while buf and buf[-1][0] > stamp_ns + self.max_delay_ns:
                    buf.pop()
        elif self._camera_frame_near(stamp_ns):
            self.counts["camera_frame_superseded"] += 1  # the LiDAR is back for this very moment
            self._pending = None
        elif self._pending is not None:
            out.append(self._emit())  # a newer sweep ends the wait of the previous one
        self._last_lidar = stamp_ns
        self._pending = (stamp_ns, msg, now_ns)
        return out + self.poll(now_ns)

    def poll(self, now_ns: int) -> list[SyncedFrame]:
        """Emit the waiting sweep once each camera has an image stamped at or after it, or the wait is over."""
        if self._pending is None:
            return []
        stamp, sweep, arrived = self._pending
        # a camera-anchored frame waits it out: its sweep may still come
        settled = sweep is not None and all(any(s >= stamp for s, _ in buf) for buf in self._images)
        if settled or now_ns - arrived >= self.wait_ns:
            return [self._emit()]
        return []

    def _emit(self) -> SyncedFrame:
        assert self._pending is not None
        stamp, sweep, _ = self._pending
        self._pending = None
        images: list[Any | None] = []
        stamps: list[int | None] = []
        for i, buf in enumerate(self._images):
            best = min(buf, key=lambda e: abs(e[0] - stamp), default=None)
            if best is None or abs(best[0] - stamp) > self.max_delay_ns:
                self.counts["camera_missing" if best is None else "camera_stale"] += 1
                self.masked_per_camera[i] += 1
                images.append(None)
                stamps.append(None)
            else:
                images.append(best[1])
                stamps.append(best[0])
        self.counts["frames"] += 1
        if sweep is None:
            self.counts["frames_without_lidar"] += 1
        if any(m is None for m in images):
            self.counts["frames_masked"] += 1
        return SyncedFrame(stamp, sweep, tuple(images), tuple(stamps))


class ApproximateTimeSync:
    """One queue per input (cameras first, LiDAR last); emits when every input has a message whose
    stamps all lie within ``slop`` of each other, searching from the newest arrival outwards."""

    def __init__(self, n_inputs: int, queue_size: int, slop_s: float, max_candidates: int = 4) -> None:
        _positive(n_inputs, "n_inputs")
        _positive(queue_size, "queue_size")
        _positive(slop_s, "slop")
        self.queue_size = int(queue_size)
        self.slop_ns = int(slop_s * 1e9)
        self.max_candidates = max_candidates
        self._queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self.counts: Counter[str] = Counter()

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple[tuple[int, Any], ...] | None:
        queue = self._queues[index]
        if queue and stamp_ns < max(queue) - TIMELINE_JUMP_NS:
            self.counts["stamp_backwards"] += 1
            for q in self._queues:  # a new timeline: nothing older can pair with it
                q.clear()
        if stamp_ns in queue:
            self.counts["duplicate"] += 1
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.counts["evicted"] += 1
        choices: list[Sequence[int]] = []
        for j, q in enumerate(self._queues):
            if j == index:
                choices.append([stamp_ns])
                continue
            near = sorted((s for s in q if abs(s - stamp_ns) <= self.slop_ns), key=lambda s: abs(s - stamp_ns))
            if not near:
                return None
            choices.append(near[: self.max_candidates])
        best = min(
            # strictly inside slop, as message_filters requires
            (c for c in itertools.product(*choices) if max(c) - min(c) < self.slop_ns),
            key=lambda c: max(c) - min(c),
            default=None,
        )
        if best is None:
            return None
        out = tuple((s, q[s]) for s, q in zip(best, self._queues, strict=True))
        for s, q in zip(best, self._queues, strict=True):
            for old in [t for t in q if t <= s]:  # used, or too old to ever pair again
                del q[old]
        self.counts["frames"] += 1
        return out


def frame_from_set(matched: Sequence[tuple[int, Any]]) -> SyncedFrame:
    """An ApproximateTimeSync / message_filters set (cameras..., LiDAR) as a SyncedFrame."""
    *cams, (lidar_stamp, lidar) = matched
    return SyncedFrame(lidar_stamp, lidar, tuple(m for _, m in cams), tuple(s for s, _ in cams))


class SensorSync:
    """The configured policy behind one interface, for everything that assembles frames (the node,
    offline replay, the bag frame reader): inputs are indexed cameras first, the LiDAR last
    (``lidar_index``); ``now_ns`` is the clock a sweep's wait is measured on (wall or bag log time)."""

    def __init__(self, policy: LidarAnchoredSync | ApproximateTimeSync, n_cameras: int) -> None:
        self.policy = policy
        self.lidar_index = n_cameras

    @property
    def wait_ns(self) -> int | None:
        """How long a sweep may wait for images; None where nothing waits (approximate)."""
        return self.policy.wait_ns if isinstance(self.policy, LidarAnchoredSync) else None

    @property
    def counts(self) -> Counter[str]:
        return self.policy.counts

    @property
    def masked_per_camera(self) -> list[int]:
        return list(self.policy.masked_per_camera) if isinstance(self.policy, LidarAnchoredSync) else []

    def add(self, index: int, stamp_ns: int, msg: Any, now_ns: int) -> list[SyncedFrame]:
        if isinstance(self.policy, LidarAnchoredSync):
            if index == self.lidar_index:
                return self.policy.add_lidar(stamp_ns, msg, now_ns)
            return self.policy.add_camera(index, stamp_ns, msg, now_ns)
        matched = self.policy.add(index, stamp_ns, msg)
        return [frame_from_set(matched)] if matched is not None else []

    def poll(self, now_ns: int) -> list[SyncedFrame]:
        return self.policy.poll(now_ns) if isinstance(self.policy, LidarAnchoredSync) else []

    def finish(self, last_ns: int) -> list[SyncedFrame]:
        """At the end of a recording: the last sweep's wait ends with it."""
        return self.poll(last_ns + (self.wait_ns or 0))


def make_sync(cfg: PerceptionConfig) -> SensorSync:
    """The sync policy the parameters ask for (``sync_policy`` and its settings)."""
    n = len(cfg.image_topics)
    if cfg.sync_policy == APPROXIMATE:
        return SensorSync(ApproximateTimeSync(n + 1, cfg.sync_queue_size, cfg.sync_slop), n)
    policy = LidarAnchoredSync(n, cfg.max_camera_lidar_delay, cfg.camera_wait, lidar_timeout_s=cfg.lidar_timeout)
    return SensorSync(policy, n)
