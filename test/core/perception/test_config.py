from __future__ import annotations

import pytest

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.perception.config import PARAMETERS, load_config

CAMS = ("CAM_FRONT", "CAM_BACK")


def test_defaults_load_and_fill_per_camera_topics():
    cfg = load_config({}).with_cameras(CAMS)
    assert cfg.camera_frames == ("cam_front", "cam_back")
    assert cfg.image_topics == ("/cameras/cam_front/image_raw", "/cameras/cam_back/image_raw")
    assert cfg.camera_info_topics[1] == "/cameras/cam_back/camera_info"
    assert cfg.sync_policy == "lidar_anchored" and cfg.qos_reliability == "best_effort"
    compressed = load_config({"image_transport": "compressed"}).with_cameras(CAMS)
    assert compressed.image_topics[0].endswith("/image_raw/compressed")


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"sync_policy": "exact"}, r"'sync_policy' = 'exact' is not one of: lidar_anchored, approximate"),
        ({"max_camera_lidar_delay": 5.0}, r"'max_camera_lidar_delay' = 5.0 is outside the allowed range \[0.001, 2"),
        ({"qos_depth": 0}, r"'qos_depth' = 0 is outside the allowed range \[1, 100\]"),
        ({"qos_depth": 2.5}, r"'qos_depth' must be an integer"),
        ({"publish_map": "yes"}, r"'publish_map' must be true or false"),
        ({"image_topics": "/a"}, r"'image_topics' must be a list of strings"),
        ({"no_such_key": 1}, r"unknown parameter\(s\) no_such_key"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(values, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(values)


def test_per_camera_lists_must_match_the_model():
    with pytest.raises(ConfigError, match=r"image_topics has 1 entries; it needs one per camera \(2"):
        load_config({"image_topics": ["/x"]}).with_cameras(CAMS)
    with pytest.raises(ConfigError, match="must equal the model's cameras"):
        load_config({"camera_names": ["CAM_BACK", "CAM_FRONT"]}).with_cameras(CAMS)


def test_every_parameter_has_a_description_and_numeric_ones_a_range():
    for p in PARAMETERS:
        assert p.description, p.name
        if isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
            assert p.range is not None and p.range[0] <= p.default <= p.range[1], p.name


def test_shipped_params_file_holds_every_parameter_and_validates():
    from pathlib import Path

    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / "perception.yaml").read_text())
    values = raw["bevfusion_perception"]["ros__parameters"]
    cfg = load_config(values)
    lists = {p.name for p in PARAMETERS if isinstance(p.default, list)}
    assert set(values) | lists == {p.name for p in PARAMETERS}
    assert cfg == load_config({})  # the file documents the defaults; it does not change them


def test_shipped_monitor_params_file_holds_every_parameter_and_validates():
    from pathlib import Path

    import yaml

    from bevfusion_ros.core.monitor.config import MONITOR_PARAMETERS, load_monitor_config

    raw = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / "monitor.yaml").read_text())
    values = raw["bevfusion_monitor"]["ros__parameters"]
    assert set(values) == {p.name for p in MONITOR_PARAMETERS}
    assert load_monitor_config(values) == load_monitor_config({})


def test_monitor_config_names_bad_keys_and_values():
    import pytest

    from bevfusion_ros.core.errors import ConfigError
    from bevfusion_ros.core.monitor.config import load_monitor_config

    with pytest.raises(ConfigError, match="'source' = 'jtop' is not one of: auto, tegrastats"):
        load_monitor_config({"source": "jtop"})
    with pytest.raises(ConfigError, match=r"'max_power_w' = 0.0 is outside the allowed range \[1.0, 2000.0\]"):
        load_monitor_config({"max_power_w": 0.0})
    with pytest.raises(ConfigError, match="unknown monitor parameter"):
        load_monitor_config({"tegrastat": "x"})
