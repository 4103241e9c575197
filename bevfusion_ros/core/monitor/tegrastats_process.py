"""``tegrastats --interval N`` as a managed subprocess: a supervisor thread reads its lines, keeps the
newest parsed sample, restarts it with exponential backoff when it exits, kills and restarts it when
it goes silent (a hang), and stops it cleanly. Nothing here raises to the caller: problems are
counted and described in ``status()`` for the monitor node's diagnostics.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bevfusion_ros.core.monitor.tegrastats import TegraSample, parse_line

ABSENT, STARTING, RUNNING, BACKOFF, STOPPED = "absent", "starting", "running", "backoff", "stopped"


@dataclass
class SourceStatus:
    state: str = STOPPED
    command: tuple[str, ...] = ()
    lines: int = 0
    restarts: int = 0
    hangs: int = 0
    unknown_tokens: int = 0
    invalid_values: int = 0
    unparsed_lines: int = 0
    last_error: str = ""
    last_sample_age_s: float | None = None
    problems: list[str] = field(default_factory=list)  # the newest invalid values, for the diagnostic


class TegrastatsProcess:
    def __init__(
        self,
        interval_ms: int = 500,
        command: Sequence[str] | None = None,
        binary: str = "tegrastats",
        backoff_s: tuple[float, float] = (0.5, 30.0),
        hang_timeout_s: float | None = None,
        on_sample: Callable[[TegraSample], None] | None = None,
    ) -> None:
        if command is None:
            found = shutil.which(binary)
            command = (found, "--interval", str(interval_ms)) if found else ()
        self.command = tuple(command)
        self.backoff_s = backoff_s
        self.hang_timeout_s = hang_timeout_s if hang_timeout_s is not None else max(5.0, 5 * interval_ms / 1000)
        self.on_sample = on_sample
        self._status = SourceStatus(command=self.command)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.latest: TegraSample | None = None
        self._latest_at = 0.0

    def start(self) -> None:
        if not self.command:
            self._set(state=ABSENT, last_error="tegrastats is not on PATH (a Jetson with JetPack has it)")
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="tegrastats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._status.state != ABSENT:
            self._set(state=STOPPED)

    def status(self) -> SourceStatus:
        with self._lock:
            s = SourceStatus(**{k: getattr(self._status, k) for k in SourceStatus.__dataclass_fields__})
            s.problems = list(self._status.problems)
            s.last_sample_age_s = time.monotonic() - self._latest_at if self.latest is not None else None
            return s

    def _set(self, **values: object) -> None:
        with self._lock:
            for k, v in values.items():
                setattr(self._status, k, v)

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def _supervise(self) -> None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            self._set(state=STARTING)
            got_lines = self._run_once()
            if self._stop.is_set():
                break
            delay = self.backoff_s[0] if got_lines else min(delay * 2, self.backoff_s[1])
            with self._lock:
                self._status.restarts += 1
                self._status.state = BACKOFF
            self._stop.wait(delay)

    def _run_once(self) -> bool:
        """One run of the program; True when it printed at least one sample."""
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self._set(last_error=f"cannot start {' '.join(self.command)}: {exc}")
            return False
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        got = False
        try:
            self._set(state=RUNNING)
            while not self._stop.is_set():
                if not sel.select(timeout=self.hang_timeout_s):
                    with self._lock:
                        self._status.hangs += 1
                        self._status.last_error = f"tegrastats printed nothing for {self.hang_timeout_s:g} s: restarted"
                    return got
                chunk = os.read(fd, 65536)
                if not chunk:
                    rc = self._proc.wait(timeout=5)
                    self._set(last_error=f"tegrastats exited with code {rc}: restarted")
                    return got
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    got |= self._line(raw.decode(errors="replace"))
                if len(buf) > 1 << 16:  # a "line" without end: drop it rather than grow forever
                    buf = b""
        finally:
            sel.close()
            self._kill()
            self._proc.stdout.close()
        return got

    def _line(self, line: str) -> bool:
        if not line.strip():
            return False
        sample = parse_line(line)
        with self._lock:
            st = self._status
            st.lines += 1
            st.unknown_tokens += len(sample.unknown)
            st.invalid_values += len(sample.invalid)
            if sample.invalid:
                st.problems = sample.invalid[-5:]
            if not sample.valid:
                st.unparsed_lines += 1
                return False
            self.latest, self._latest_at = sample, time.monotonic()
        if self.on_sample is not None:
            self.on_sample(sample)
        return True
