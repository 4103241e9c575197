"""Bookkeeping the node reports in diagnostics: a newest-only frame slot, message rates, latency
percentiles and per-cause problem counters with rate-limited logging. Thread-safe where the node
shares it between its executor (sensor callbacks, diagnostics timer) and its inference thread."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")
_NUMBER = re.compile(r"[-+]?\d[\d.e+-]*")
MAX_LOG_KEYS = 256


class LatestSlot(Generic[T]):
    """A mailbox of one: ``put`` replaces what is waiting, so the consumer only ever sees the newest
    frame and work never queues up behind a slow model. Replaced items are counted as dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: T | None = None
        self.dropped = 0
        self.accepted = 0

    def put(self, item: T) -> bool:
        """Store ``item``; True when it replaced one that was never taken."""
        with self._lock:
            replaced = self._item is not None
            self._item = item
            self.accepted += 1
            self.dropped += int(replaced)
            return replaced

    def take(self) -> T | None:
        with self._lock:
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._lock:
            self._item = None


class RateMeter:
    """Messages per second over a sliding window of arrival times (monotonic seconds)."""

    def __init__(self, window_s: float = 5.0, max_events: int = 1024) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)
        self.total = 0
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if now is None else now)
            self.total += 1

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        span = max(recent[-1] - recent[0], 1e-9)
        return (len(recent) - 1) / span

    def last_age(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            return now - self._times[-1] if self._times else None


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float


class LatencyStats:
    """The last ``size`` samples of a duration, for p50/p99 without unbounded memory."""

    def __init__(self, size: int = 1000) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def summary(self) -> Percentiles | None:
        with self._lock:
            if not self._values:
                return None
            a = np.fromiter(self._values, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return Percentiles(a.size, float(p50), float(p90), float(p99), float(a.max()), float(a.mean()))


class ProblemLog:
    """Counts problems per cause and says when one should be logged: the first time, then at most
    once per ``interval_s``, so a broken sensor at 10 Hz gives one line, not a flood. The limit is
    per cause and kind of message (its text with the numbers blanked): two different faults that
    share a cause (two malformed clouds) each get their line; one fault repeating gets one."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self.last_message: dict[str, str] = {}
        self._last_log: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self, cause: str, message: str, now: float | None = None) -> bool:
        """Count ``cause``; True if the caller should log ``message`` now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.counts[cause] += 1
            self.last_message[cause] = message
            key = f"{cause}: {_NUMBER.sub('#', message)[:80]}"
            last = self._last_log.get(key)
            if last is None or now - last >= self.interval_s:
                if len(self._last_log) >= MAX_LOG_KEYS:  # bounded: the oldest kinds are forgotten first
                    del self._last_log[min(self._last_log, key=self._last_log.__getitem__)]
                self._last_log[key] = now
                return True
            return False


@dataclass(frozen=True)
class ModeChange:
    before: str | None  # None: the first frame
    after: str
    frames_before: int  # frames run in ``before`` since it began


class SensorModes:
    """Frames per sensor mode (full, camera_only, lidar_only) and the changes between modes: the
    node logs each change once and reports the counts and the current mode in diagnostics."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.since: float | None = None  # monotonic s the current mode began
        self.frames: Counter[str] = Counter()
        self.transitions: Counter[str] = Counter()  # "full -> camera_only": n
        self._run = 0
        self._lock = threading.Lock()

    def update(self, mode: str, now: float | None = None) -> ModeChange | None:
        """Count a frame run in ``mode``; a ModeChange when it differs from the previous frame's."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.frames[mode] += 1
            if mode == self.current:
                self._run += 1
                return None
            change = ModeChange(self.current, mode, self._run)
            if self.current is not None:
                self.transitions[f"{self.current} -> {mode}"] += 1
            self.current, self.since, self._run = mode, now, 1
            return change
