from __future__ import annotations

import threading

from bevfusion_ros.core.perception.health import LatencyStats, LatestSlot, ProblemLog, RateMeter


def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take() is None
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.take() == 3 and slot.take() is None
    assert slot.dropped == 2 and slot.accepted == 3


def test_latest_slot_under_concurrent_producers_loses_nothing_uncounted():
    slot: LatestSlot[int] = LatestSlot()
    taken = []

    def produce():
        for i in range(2000):
            slot.put(i)

    threads = [threading.Thread(target=produce) for _ in range(3)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if (x := slot.take()) is not None:
            taken.append(x)
    if (x := slot.take()) is not None:
        taken.append(x)
    assert len(taken) + slot.dropped == 6000


def test_rate_meter_measures_a_10hz_stream():
    m = RateMeter(window_s=5.0)
    for k in range(30):
        m.tick(100.0 + k * 0.1)
    assert abs(m.rate(103.0) - 10.0) < 1e-6
    assert m.rate(200.0) == 0.0 and m.total == 30
    assert abs(m.last_age(103.0) - 0.1) < 1e-9


def test_latency_stats_percentiles_over_a_bounded_window():
    s = LatencyStats(size=100)
    assert s.summary() is None
    for v in range(1000):
        s.add(v)
    r = s.summary()
    assert r is not None and r.count == 100 and r.max == 999 and abs(r.p50 - 949.5) < 1e-9


def test_problem_log_rate_limits_per_cause():
    log = ProblemLog(interval_s=10.0)
    assert log.report("bad_image", "x", now=0.0) is True
    assert log.report("bad_image", "x", now=5.0) is False
    assert log.report("empty_cloud", "y", now=5.0) is True
    assert log.report("bad_image", "z", now=10.0) is True
    assert log.counts["bad_image"] == 3 and log.last_message["bad_image"] == "z"


def test_problem_log_limits_each_kind_of_message_not_the_whole_cause():
    log = ProblemLog(interval_s=10.0)
    assert log.report("frame_dropped_MessageError", "cloud data has 100 bytes, expected 160", now=0.0)
    assert not log.report("frame_dropped_MessageError", "cloud data has 96 bytes, expected 7680", now=1.0)
    assert log.report("frame_dropped_MessageError", "is_bigendian is set, but ...", now=2.0)  # another fault
    assert log.counts["frame_dropped_MessageError"] == 3


def test_sensor_modes_count_frames_and_report_each_change_once():
    from bevfusion_ros.core.perception.health import ModeChange, SensorModes

    modes = SensorModes()
    seen = [modes.update(m, now=float(i)) for i, m in enumerate(["full", "full", "camera_only", "camera_only", "full"])]
    assert seen == [ModeChange(None, "full", 0), None, ModeChange("full", "camera_only", 2), None,
                    ModeChange("camera_only", "full", 2)]  # fmt: skip
    assert modes.frames == {"full": 3, "camera_only": 2}
    assert modes.transitions == {"full -> camera_only": 1, "camera_only -> full": 1}
    assert modes.current == "full" and modes.since == 4.0
