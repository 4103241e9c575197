"""The timing record the node publishes and the monitor and replay read: one encode/decode pair."""

from __future__ import annotations

import pytest

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.perception.timing import FrameTiming


def timing() -> FrameTiming:
    return FrameTiming(
        {"image.preprocess": 3.0, "head.bbox": 9.5, "postprocess": 1.0, "total": 20.0},
        host_ms=6.0,
        latency_ms=25.0,
        stamp_age_ms=70.0,
        camera_skew_ms=12.0,
        masked_cameras=1,
        points=34000,
        detections=17,
    )


def test_round_trip_through_text_values_as_a_diagnostic_status_carries_them() -> None:
    wire = {k: str(v) for k, v in timing().encode().items()}
    assert FrameTiming.decode(wire) == timing()


def test_frame_level_times_are_not_stages() -> None:
    decoded = FrameTiming.decode({k: str(v) for k, v in timing().encode().items()})
    assert set(decoded.stages_ms) == {"image.preprocess", "head.bbox", "postprocess", "total"}


@pytest.mark.parametrize(
    ("key", "value", "words"), [("latency_ms", None, "no 'latency_ms'"), ("points", "many", "'points' is 'many'")]
)
def test_a_broken_record_names_its_key(key: str, value: str | None, words: str) -> None:
    wire: dict[str, str | float | int] = dict(timing().encode())
    if value is None:
        del wire[key]
    else:
        wire[key] = value
    with pytest.raises(MessageError, match=words):
        FrameTiming.decode(wire)


def test_the_sensor_mode_travels_and_older_records_are_full() -> None:
    t = FrameTiming({"total": 1.0}, 1.0, 2.0, 3.0, 4.0, 6, 0, 5, "camera_only")
    text = {k: str(v) for k, v in t.encode().items()}
    assert FrameTiming.decode(text).mode == "camera_only"
    del text["mode"]
    assert FrameTiming.decode(text).mode == "full"
    with pytest.raises(MessageError, match="'mode' is 'radar_only'; allowed: full, camera_only, lidar_only"):
        FrameTiming.decode({**text, "mode": "radar_only"})
