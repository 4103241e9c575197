"""The real frame as a rosbag2 (mcap and sqlite3), read back two ways, and played across processes."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, PointCloud2

from bevfusion_ros.core.errors import BagError
from bevfusion_ros.ros import convert
from bevfusion_ros.tools import cli
from bevfusion_ros.tools.bags.io import iter_raw, open_reader, typestore
from bevfusion_ros.tools.bags.layout import GT_TOPIC, LIDAR_TOPIC, image_topic
from bevfusion_ros.tools.bags.writer import write_bag
from bevfusion_ros.tools.commands.demo_transport import run_transport


@pytest.fixture(scope="module")
def bag(frame, tmp_path_factory):
    return write_bag(frame, tmp_path_factory.mktemp("bags") / "frame3", n_frames=3, show_progress=False)


def test_bag_holds_every_topic_at_10_hz(bag, frame) -> None:
    reader = open_reader(bag)
    try:
        counts = {c.topic: c.msgcount for c in reader.connections}
        stamps = [ns for t, _, ns, _ in iter_raw(reader, {LIDAR_TOPIC})]
        cams = [ns for t, _, ns, _ in iter_raw(reader, {image_topic("CAM_FRONT")})]
    finally:
        reader.close()
    assert counts["/tf_static"] == 1 and counts[LIDAR_TOPIC] == 3 and counts[GT_TOPIC] == 3
    assert sum(1 for t in counts if t.endswith("/image_raw")) == 6
    assert sum(1 for t in counts if t.endswith("/camera_info")) == 6
    assert np.diff(stamps).tolist() == [100_000_000, 100_000_000]
    offset = round((frame.cameras[0].timestamp - frame.timestamp) * 1e9)
    assert cams[0] - stamps[0] == pytest.approx(offset, abs=1)
    calib = yaml.safe_load((bag / "calibration.yaml").read_text())
    assert calib["cameras"][0]["name"] == "cam_front"
    np.testing.assert_allclose(calib["cameras"][0]["lidar2cam"], frame.cameras[0].lidar2cam)


def test_bag_messages_decode_with_rosbags_and_rclpy_alike(bag, frame) -> None:
    reader = open_reader(bag)
    store = typestore()
    try:
        raw = {t: (ty, data) for t, ty, _, data in iter_raw(reader)}
    finally:
        reader.close()
    ty, data = raw[LIDAR_TOPIC]
    via_rosbags = convert.pointcloud2_to_points(store.deserialize_cdr(data, ty))
    via_rclpy = convert.pointcloud2_to_points(deserialize_message(data, PointCloud2))
    np.testing.assert_array_equal(via_rosbags.data, frame.points)
    np.testing.assert_array_equal(via_rclpy.data, frame.points)
    ty, data = raw[image_topic("CAM_BACK")]
    img = convert.image_to_array(store.deserialize_cdr(data, ty), "bgr")
    np.testing.assert_array_equal(img, frame.cameras[3].image_bgr)
    np.testing.assert_array_equal(convert.image_to_array(deserialize_message(data, Image), "bgr"), img)
    gt = convert.detection3d_array_to_detections(store.deserialize_cdr(*reversed(raw[GT_TOPIC])), frame.class_names)
    assert gt.label_names() == frame.boxes.label_names()
    tf = store.deserialize_cdr(raw["/tf_static"][1], "tf2_msgs/msg/TFMessage")
    assert {t.child_frame_id for t in tf.transforms} == {"lidar_top"} | {c.name.lower() for c in frame.cameras}


def test_compressed_sqlite3_bag(frame, tmp_path) -> None:
    out = write_bag(frame, tmp_path / "jpeg", 1, compressed=True, storage="sqlite3", show_progress=False)
    reader = open_reader(out)
    try:
        raw = {t: (ty, d) for t, ty, _, d in iter_raw(reader)}
    finally:
        reader.close()
    topic = image_topic("CAM_FRONT", compressed=True)
    assert raw[topic][0] == "sensor_msgs/msg/CompressedImage"
    from sensor_msgs.msg import CompressedImage

    img = convert.compressed_to_array(deserialize_message(raw[topic][1], CompressedImage), "bgr")
    assert np.abs(img.astype(int) - frame.cameras[0].image_bgr.astype(int)).mean() < 3.0


def test_existing_bag_is_not_overwritten_without_asking(bag, frame) -> None:
    with pytest.raises(BagError, match="exists; pass --overwrite"):
        write_bag(frame, bag, 1, show_progress=False)


def test_missing_and_corrupt_bags_give_one_clear_error(tmp_path, capsys) -> None:
    assert cli.main(["play", str(tmp_path / "nope")]) == 2
    assert "bag " in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9")
    with pytest.raises(BagError, match="cannot open bag"):
        open_reader(broken)


def test_play_into_probe_in_another_process(bag) -> None:
    """The demo's path: player and probe are separate processes on the shared-memory profile."""
    code, report, output = run_transport(bag, rate=1.0)
    assert code == 0, output
    assert report[LIDAR_TOPIC]["count"] == 3 and report[LIDAR_TOPIC]["shape"].startswith("(34688, 5)")
    assert report[image_topic("CAM_FRONT")]["shape"] == "(900, 1600, 3) uint8 (bgr8)"
    assert report[GT_TOPIC]["shape"] == "65 boxes"
    assert all(s["errors"] == 0 for s in report.values())
    # tf2_msgs is built from ../shared/ros_src: the static transforms are played (latched) and received
    assert report["/tf_static"]["count"] == 1 and report["/tf_static"]["errors"] == 0


def test_read_ahead_keeps_order_and_passes_errors_on() -> None:
    from bevfusion_ros.tools.bags.io import read_ahead

    assert list(read_ahead(iter(range(1000)), depth=4)) == list(range(1000))

    def broken():
        yield 1
        raise BagError("corrupt chunk")

    got = []
    with pytest.raises(BagError, match="corrupt chunk"):
        for item in read_ahead(broken()):
            got.append(item)
    assert got == [1]


def test_ground_truth_velocities_come_back_from_the_bag(bag, frame, spec) -> None:  # type: ignore[no-untyped-def]
    """vision_msgs carries no velocity: /ground_truth/objects (DetectedObjects, the same boxes)
    does, and the replay's ground truth takes them from it, so replay's mAVE is real."""
    from bevfusion_ros.tools.bags.layout import GT_OBJECTS_TOPIC
    from bevfusion_ros.tools.bags.replay import ground_truth

    reader = open_reader(bag)
    try:
        assert {c.topic: c.msgcount for c in reader.connections}[GT_OBJECTS_TOPIC] == 3
    finally:
        reader.close()
    (_, gt), *_ = ground_truth(bag, spec, with_map=False)
    assert gt.detections is not None and len(gt.detections) == len(frame.boxes)
    want = frame.boxes.velocities
    np.testing.assert_allclose(gt.detections.velocities, want, atol=1e-4)  # NaN where the frame has none
    assert np.isfinite(want).all(axis=1).sum() > 10


def test_the_player_waits_for_each_sensor_topic_then_plays_anyway(bag, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--wait-sensors: a camera topic with a subscriber lets the player go as soon as every sensor topic
    has one; topics nobody subscribes to hold it only for SENSOR_WAIT_S, then it plays and names them."""
    import time

    import rclpy
    from rclpy.qos import qos_profile_sensor_data

    from bevfusion_ros.tools.commands import play as player

    monkeypatch.setattr(player, "SENSOR_WAIT_S", 1.5)
    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    try:
        node = rclpy.create_node("test_wait_sensors")
        warned: list[str] = []
        monkeypatch.setattr(node.get_logger(), "warning", lambda msg, **_: warned.append(msg))
        sub = node.create_subscription(Image, image_topic("CAM_FRONT"), lambda m: None, qos_profile_sensor_data)
        start = time.monotonic()
        stats = player.play(node, bag, rate=100.0, wait_sensors=True)
        waited = time.monotonic() - start
        assert sum(stats.published.values()) > 0 and 1.5 <= waited < 10, waited
        (line,) = warned
        assert LIDAR_TOPIC in line and image_topic("CAM_BACK") in line and image_topic("CAM_FRONT") not in line
        node.destroy_subscription(sub)
        node.destroy_node()
    finally:
        if owned:
            rclpy.shutdown()
