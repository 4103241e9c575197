"""Sync policies fed with plain stamps, the way message_filters' own tests feed mock messages."""

from __future__ import annotations

import pytest

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.perception.sync import ApproximateTimeSync, LidarAnchoredSync, frame_from_set

MS = 1_000_000
S = 1_000_000_000


def feed_frame(sync: LidarAnchoredSync, t: int, offsets_ms, now_ns: int, skip=()) -> list:
    out = []
    for i, off in enumerate(offsets_ms):
        if i not in skip:
            out += sync.add_camera(i, t + off * MS, f"img{i}@{t + off * MS}", now_ns)
    return out


def test_lidar_anchored_picks_nearest_image_per_camera():
    sync = LidarAnchoredSync(3, max_delay_s=0.1, wait_s=0.0)
    assert feed_frame(sync, 1 * S, [-40, -10, 30], now_ns=0) == []
    # a later image for camera 0, nearer the sweep
    sync.add_camera(0, 1 * S + 5 * MS, "img0@near", 0)
    frames = sync.add_lidar(1 * S, "sweep1", now_ns=0)
    assert len(frames) == 1
    f = frames[0]
    assert f.stamp_ns == 1 * S and f.lidar == "sweep1"
    assert f.images == ("img0@near", f"img1@{S - 10 * MS}", f"img2@{S + 30 * MS}")
    assert f.masked == () and f.max_skew_ns() == 30 * MS


def test_lidar_anchored_waits_for_images_stamped_after_the_sweep_then_masks():
    sync = LidarAnchoredSync(2, max_delay_s=0.05, wait_s=0.05)
    sync.add_camera(0, 1 * S - 10 * MS, "a", 0)
    assert sync.add_lidar(1 * S, "sweep", now_ns=0) == []  # camera 1 has nothing yet: wait
    assert sync.poll(now_ns=49 * MS) == []
    frames = sync.poll(now_ns=50 * MS)
    assert len(frames) == 1 and frames[0].images == ("a", None) and frames[0].masked == (1,)
    assert sync.counts["camera_missing"] == 1 and sync.masked_per_camera == [0, 1]
    assert sync.counts["frames_masked"] == 1


def test_lidar_anchored_masks_a_stale_camera_instead_of_stalling():
    sync = LidarAnchoredSync(2, max_delay_s=0.05, wait_s=0.0)
    sync.add_camera(1, 1 * S - 200 * MS, "old", 0)  # camera 1 stopped 200 ms before the sweep
    for k in range(3):
        t = 1 * S + k * 100 * MS
        sync.add_camera(0, t + 1 * MS, f"c0-{k}", 0)
        frames = sync.add_lidar(t, f"s{k}", now_ns=0)
        assert len(frames) == 1
        assert frames[0].images == (f"c0-{k}", None)
    assert sync.counts["camera_stale"] == 3 and sync.masked_per_camera == [0, 3]


def test_lidar_anchored_image_arriving_after_the_sweep_is_used():
    sync = LidarAnchoredSync(1, max_delay_s=0.05, wait_s=1.0)
    sync.add_camera(0, 1 * S - 90 * MS, "previous", 0)
    assert sync.add_lidar(1 * S, "s", now_ns=0) == []
    frames = sync.add_camera(0, 1 * S + 20 * MS, "this", now_ns=1)
    assert [f.images for f in frames] == [("this",)]


def test_lidar_anchored_newer_sweep_flushes_the_waiting_one():
    sync = LidarAnchoredSync(1, max_delay_s=0.05, wait_s=10.0)
    sync.add_camera(0, 1 * S - 10 * MS, "a", 0)
    assert sync.add_lidar(1 * S, "s1", now_ns=0) == []
    out = sync.add_lidar(1 * S + 100 * MS, "s2", now_ns=1)
    assert [f.lidar for f in out] == ["s1"]
    assert out[0].images == ("a",)


def test_lidar_anchored_duplicates_and_backwards_stamps():
    sync = LidarAnchoredSync(1, max_delay_s=0.05, wait_s=0.0)
    sync.add_camera(0, 5 * S, "late", 0)
    assert len(sync.add_lidar(5 * S, "s", 0)) == 1
    assert sync.add_lidar(5 * S, "dup", 0) == []
    assert sync.counts["lidar_duplicate"] == 1
    # bag loop: time restarts at 1 s; the 5 s image must not pair with it
    sync.add_camera(0, 1 * S, "loop", 0)
    assert sync.counts["camera_stamp_backwards"] == 1
    frames = sync.add_lidar(1 * S, "s-loop", 0)
    assert sync.counts["lidar_stamp_backwards"] == 1
    assert frames[0].images == ("loop",)
    sync.add_camera(0, 1 * S, "same", 0)
    assert sync.counts["camera_duplicate"] == 1


def test_lidar_anchored_history_is_bounded():
    sync = LidarAnchoredSync(1, max_delay_s=0.05, wait_s=0.0, history=3)
    for k in range(1000):
        sync.add_camera(0, S + k * MS, k, 0)
    assert len(sync._images[0]) == 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"max_delay_s": 0}, "max_camera_lidar_delay"), ({"max_delay_s": 0.1, "wait_s": -1}, "camera_wait")],
)
def test_lidar_anchored_rejects_bad_settings(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        LidarAnchoredSync(6, **kwargs)


def test_approximate_emits_one_set_within_slop():
    sync = ApproximateTimeSync(3, queue_size=5, slop_s=0.03)
    assert sync.add(0, S, "a0") is None
    assert sync.add(1, S + 50 * MS, "b-far") is None
    assert sync.add(1, S + 10 * MS, "b0") is None
    out = sync.add(2, S + 20 * MS, "l0")
    assert out == ((S, "a0"), (S + 10 * MS, "b0"), (S + 20 * MS, "l0"))
    f = frame_from_set(out)
    assert f.stamp_ns == S + 20 * MS and f.lidar == "l0" and f.images == ("a0", "b0")
    # used messages are gone: the same camera messages cannot make a second set
    assert sync.add(2, S + 21 * MS, "l1") is None


def test_approximate_stalls_while_one_input_is_silent_and_queues_stay_bounded():
    sync = ApproximateTimeSync(2, queue_size=4, slop_s=0.02)
    for k in range(50):
        assert sync.add(1, S + k * 100 * MS, k) is None
    assert len(sync._queues[1]) == 4 and sync.counts["evicted"] == 46


def test_approximate_prefers_the_tightest_set():
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.05)
    sync.add(0, S, "early")
    sync.add(0, S + 30 * MS, "close")
    out = sync.add(1, S + 32 * MS, "l")
    assert out is not None and out[0] == (S + 30 * MS, "close")


def test_approximate_stamps_backwards_reset():
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.05)
    sync.add(0, 10 * S, "x")
    sync.add(0, 1 * S, "y")
    assert sync.counts["stamp_backwards"] == 1
    assert sync.add(1, 10 * S, "l") is None  # the old timeline was dropped


@pytest.mark.parametrize("spacing_ms", [7, 15])  # 15: every set's spread (30 ms) equals the slop
def test_approximate_matches_message_filters_where_installed(spacing_ms: int) -> None:
    """Where message_filters exists, both synchronisers agree on the same feed of real stamped
    messages, at the slop boundary too (a set needs a spread strictly below it)."""
    from bevfusion_ros.ros import optional

    mf = optional.message_filters()
    if mf is None:
        pytest.skip("message_filters is not installed (ROS distribution package); own policy tested above")
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    def msg(stamp: int) -> object:  # any message with a real std_msgs Header
        return type("Stamped", (), {"header": Header(stamp=Time(sec=stamp // S, nanosec=stamp % S))})()

    inputs = [mf.SimpleFilter() for _ in range(3)]
    theirs: list = []
    ats = mf.ApproximateTimeSynchronizer(inputs, 10, 0.03)
    ats.registerCallback(lambda *m: theirs.append(tuple(x.header.stamp.sec * S + x.header.stamp.nanosec for x in m)))
    ours_sync = ApproximateTimeSync(3, 10, 0.03)
    ours = []
    feed = [(k % 3, S + (k // 3) * 100 * MS + (k % 3) * spacing_ms * MS) for k in range(30)]
    for i, t in feed:
        inputs[i].signalMessage(msg(t))
        r = ours_sync.add(i, t, None)
        if r is not None:
            ours.append(tuple(s for s, _ in r))
    assert ours == theirs
    assert (len(ours) == 10) == (spacing_ms == 7)


def test_approximate_refuses_a_spread_equal_to_the_slop() -> None:
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.03)
    assert sync.add(0, S, "a") is None
    assert sync.add(1, S + 30 * MS, "b") is None
    assert sync.add(1, S + 29 * MS, "b2") == ((S, "a"), (S + 29 * MS, "b2"))


@pytest.mark.parametrize("policy", ["lidar_anchored", "approximate"])
def test_make_sync_gives_the_configured_policy_behind_one_interface(policy: str) -> None:
    """What the node, replay and the bag frame reader all call: cameras 0..n-1, the LiDAR last."""
    from bevfusion_ros.core.perception.config import load_config
    from bevfusion_ros.core.perception.sync import make_sync

    cfg = load_config({"sync_policy": policy, "camera_wait": 0.05}).with_cameras(("A", "B"))
    sync = make_sync(cfg)
    assert sync.lidar_index == 2
    frames = sync.add(0, 1_000, "a", 0) + sync.add(1, 1_010, "b", 0) + sync.add(2, 1_005, "lidar", 0)
    frames += sync.finish(0)
    assert [(f.stamp_ns, f.lidar, f.images) for f in frames] == [(1_005, "lidar", ("a", "b"))]
    assert sync.counts["frames"] == 1
    assert (sync.wait_ns is None) == (policy == "approximate")


def test_a_sweep_alone_waits_for_its_images_then_finish_masks_them() -> None:
    from bevfusion_ros.core.perception.config import load_config
    from bevfusion_ros.core.perception.sync import make_sync

    sync = make_sync(load_config({"camera_wait": 0.05}).with_cameras(("A", "B")))
    assert sync.add(2, 5_000, "lidar", 0) == []
    (frame,) = sync.finish(0)
    assert frame.images == (None, None) and sync.masked_per_camera == [1, 1]


def lost_lidar_sync() -> LidarAnchoredSync:
    return LidarAnchoredSync(3, max_delay_s=0.05, wait_s=0.05, lidar_timeout_s=0.3)


def test_a_silent_lidar_hands_the_trigger_to_the_first_live_camera() -> None:
    sync = lost_lidar_sync()
    step = 100 * MS
    frames = sync.add_lidar(1 * S, "sweep", 0) + feed_frame(sync, 1 * S, [0, 10, 20], 0)
    assert [f.lidar for f in frames] == ["sweep"]
    out = []
    for k in range(1, 7):  # the LiDAR falls silent after 1 s; the cameras go on at 10 Hz
        t = 1 * S + k * step
        out += feed_frame(sync, t, [0, 10, 20], now_ns=k * step)
        out += sync.poll(k * step + 60 * MS)  # each camera-anchored frame waits the whole camera_wait
    # frames from the first image stamped lidar_timeout after the last sweep, at camera 0's stamps
    assert [f.stamp_ns for f in out] == [1 * S + k * step for k in (3, 4, 5, 6)]
    assert all(f.lidar is None and f.masked == () for f in out)
    assert out[0].images == (f"img0@{S + 3 * step}", f"img1@{S + 3 * step + 10 * MS}", f"img2@{S + 3 * step + 20 * MS}")
    assert sync.counts["frames_without_lidar"] == 4


def test_the_lidar_s_return_replaces_the_camera_frame_of_its_moment() -> None:
    sync = lost_lidar_sync()
    sync.add_lidar(1 * S, "sweep", 0)
    feed_frame(sync, 1 * S + 500 * MS, [0, 10, 20], now_ns=0)  # camera-anchored, waiting
    frames = sync.add_lidar(1 * S + 520 * MS, "back", now_ns=10 * MS)
    frames += feed_frame(sync, 1 * S + 520 * MS, [0], now_ns=20 * MS) + sync.poll(100 * MS)
    assert [(f.lidar, f.stamp_ns) for f in frames] == [("back", 1 * S + 520 * MS)]
    assert sync.counts["camera_frame_superseded"] == 1 and sync.counts["frames_without_lidar"] == 0


def test_a_lidar_that_never_spoke_and_a_dead_front_camera() -> None:
    sync = lost_lidar_sync()
    out = []
    for k in range(5):  # camera 0 never sends: camera 1 paces the frames
        out += feed_frame(sync, 1 * S + k * 100 * MS, [0, 10, 20], now_ns=k * 100 * MS, skip=(0,))
        out += sync.poll(k * 100 * MS + 60 * MS)
    assert [f.stamp_ns for f in out] == [1 * S + k * 100 * MS + 10 * MS for k in (3, 4)]
    assert all(f.masked == (0,) for f in out)


def test_no_camera_frames_without_lidar_timeout() -> None:
    sync = LidarAnchoredSync(2, max_delay_s=0.05, wait_s=0.0)
    out = []
    for k in range(20):
        out += feed_frame(sync, k * 100 * MS, [0, 5], now_ns=k * 100 * MS) + sync.poll(k * 100 * MS + 1)
    assert out == []
