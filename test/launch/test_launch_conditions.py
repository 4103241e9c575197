"""launch/bevfusion.launch.py's bag player condition, evaluated by the installed launch (Kilted here;
the condition is a plain ``launch.Condition`` predicate, which Humble's launch has as well: see
test/ros/test_humble_api.py): the player runs only when ``bag`` is not ''."""

from __future__ import annotations

import launch
import pytest
from launch.launch_description_sources import get_launch_description_from_python_launch_file

from bevfusion_ros.core.resources import resource


def player_condition() -> launch.Condition:
    description = get_launch_description_from_python_launch_file(str(resource("launch", "bevfusion.launch.py")))
    plain = [e.condition for e in description.entities if type(getattr(e, "condition", None)) is launch.Condition]
    assert len(plain) == 1, plain  # the bag player's
    return plain[0]


@pytest.mark.parametrize(("bag", "runs"), [("", False), ("/data/drive_0001", True), ("''", True)])
def test_the_player_runs_only_with_a_bag(bag: str, runs: bool) -> None:
    context = launch.LaunchContext()
    context.launch_configurations["bag"] = bag
    assert player_condition().evaluate(context) is runs
