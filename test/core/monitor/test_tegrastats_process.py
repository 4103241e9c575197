"""core/monitor/tegrastats_process.py against a TEST DOUBLE of the tegrastats binary (test/helpers/
tegrastats_double.py) replaying recorded AGX Orin lines, then dying, then hanging."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.tegrastats_lines import ORIN_JP5, ORIN_JP6

from bevfusion_ros.core.monitor.tegrastats_process import ABSENT, RUNNING, STOPPED, TegrastatsProcess

HERE = Path(__file__).resolve().parent
DOUBLE = HERE.parents[1] / "helpers" / "tegrastats_double.py"


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)


def _process(tmp_path: Path, scenario: str, **kw: object) -> TegrastatsProcess:
    lines = tmp_path / "lines.txt"
    lines.write_text(ORIN_JP5 + "\n" + ORIN_JP6 + "\n")
    cmd = [sys.executable, str(DOUBLE), str(lines), str(tmp_path / "state"), scenario, "--interval", "20"]
    return TegrastatsProcess(command=cmd, **kw)  # type: ignore[arg-type]


def test_dies_then_hangs_then_runs_and_is_restarted_each_time(tmp_path: Path) -> None:
    seen = []
    p = _process(tmp_path, "die:2,hang:1,run", backoff_s=(0.05, 0.2), hang_timeout_s=0.5, on_sample=seen.append)
    p.start()
    try:
        _until(lambda: p.status().restarts >= 2 and p.status().state == RUNNING and p.status().lines >= 6)
        st = p.status()
        assert st.hangs == 1 and "printed nothing" in st.last_error
        assert st.unknown_tokens == 0 and st.unparsed_lines == 0
        assert p.latest is not None and p.latest.total_power_mw in (7132, 7057)
        assert st.last_sample_age_s is not None and st.last_sample_age_s < 1.0
        assert len(seen) == st.lines
        assert (tmp_path / "state").read_text() == "3"  # three invocations: died, hung, running
    finally:
        p.stop()
    assert p.status().state == STOPPED and p._proc is not None and p._proc.poll() is not None


def test_garbage_lines_are_counted_and_good_ones_still_used(tmp_path: Path) -> None:
    p = _process(tmp_path, "garbage:3")
    p.start()
    try:
        _until(lambda: p.status().lines >= 5)
        st = p.status()
        assert st.unparsed_lines == 3 and st.unknown_tokens >= 3 * 5 and p.latest is not None
    finally:
        p.stop()


def test_a_program_that_dies_at_once_backs_off(tmp_path: Path) -> None:
    p = _process(tmp_path, "die:0", backoff_s=(0.05, 0.4))
    p.start()
    try:
        _until(lambda: p.status().restarts >= 4, timeout=10)
        assert "exited with code 1" in p.status().last_error and p.latest is None
    finally:
        p.stop()


def test_absent_binary_is_a_state_not_an_error() -> None:
    p = TegrastatsProcess(binary="no-such-tegrastats-binary")
    p.start()
    assert p.status().state == ABSENT and "not on PATH" in p.status().last_error
    p.stop()
    assert p.status().state == ABSENT


@pytest.mark.parametrize("scenario", ["run"])
def test_stop_kills_a_running_program_promptly(tmp_path: Path, scenario: str) -> None:
    p = _process(tmp_path, scenario)
    p.start()
    _until(lambda: p.status().lines >= 1)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 2.0 and p._proc is not None and p._proc.poll() is not None
