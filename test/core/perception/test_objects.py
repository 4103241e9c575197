"""core/perception/objects.py: the shipped class-remap table covers the reference model's classes;
a table that misses a class or names a label Autoware lacks is one error naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.perception.objects import load_class_remap, parse_class_remap
from bevfusion_ros.core.resources import config_file

CLASSES = ("car", "barrier", "traffic_cone")


def test_the_shipped_table_maps_every_reference_class(spec) -> None:  # type: ignore[no-untyped-def]
    remap = load_class_remap(config_file("autoware_class_remap.yaml"), spec.class_names)
    by_name = dict(zip(spec.class_names, zip(remap.labels, remap.orientations, strict=True), strict=True))
    assert by_name["car"] == ("CAR", "AVAILABLE") and by_name["construction_vehicle"][0] == "TRUCK"
    assert by_name["barrier"] == by_name["traffic_cone"] == ("UNKNOWN", "SIGN_UNKNOWN")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"classes": {"car": {"label": "CAR"}}}, "classes lacks the model's barrier, traffic_cone"),
        ({"classes": {c: {"label": "VAN"} for c in CLASSES}}, "classes.car.label is 'VAN'; allowed: UNKNOWN, CAR"),
        (
            {"classes": {c: {"label": "CAR", "orientation": "MAYBE"} for c in CLASSES}},
            "classes.car.orientation is 'MAYBE'; allowed: UNAVAILABLE, SIGN_UNKNOWN, AVAILABLE",
        ),
        ({"labels": {}}, "needs a 'classes' mapping"),
    ],
)
def test_a_bad_table_names_the_key(raw: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_class_remap(raw, CLASSES, "remap.yaml")
    assert fragment in str(err.value)
