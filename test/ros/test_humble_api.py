"""The package's use of the ROS 2 Python APIs checked against ROS 2 HUMBLE's sources (and Jazzy's tools).

The car runs Humble (Python 3.10), but no Humble wheels exist: the dev venv runs Kilted. Humble's
Python sources of rclpy (its pure-Python part), launch, launch_testing, launch_ros,
launch_testing_ros, message_filters, tf2_ros, sensor_msgs_py and diagnostic_updater are in
../shared/ros_api/humble; helpers/ros_api.py reads them with ``ast`` (nothing of Humble is imported
here) and checks every use the package makes in bevfusion_ros/, launch/*.py and test/ (the launch and
ROS tests also run on the car): imported names, attributes of modules, classes and of objects whose
type is evident, keywords and positional counts of calls, and the methods the package's subclasses
override. Jazzy's sources of the same tools (../shared/ros_src_jazzy, no rclpy) are checked too; the
dev venv's installed Kilted sources are the reference, which must pass with no report at all.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import pytest
from helpers.ros_api import (
    HUMBLE_LAYOUT,
    ROS_PACKAGES,
    ROS_SRC_LAYOUT,
    Distro,
    Problem,
    check,
    package_files,
    scan_sources,
)

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"

# What Humble's sources cannot show, vetted by hand: a use spelled like this is accepted when the
# checker reaches something it cannot see into. Each entry names where the name really lives.
ALLOWED = {
    # rclpy.lifecycle.TransitionCallbackReturn = _rclpy.TransitionCallbackReturnType, a pybind11 enum of
    # the C extension (rclpy/src/rclpy/lifecycle.cpp, humble: SUCCESS, FAILURE, ERROR)
    "rclpy.lifecycle.TransitionCallbackReturn.SUCCESS": "C extension enum member",
    "rclpy.lifecycle.TransitionCallbackReturn.FAILURE": "C extension enum member",
}


def _venv_roots() -> dict[str, Path]:
    """Where the dev venv's (Kilted) packages are, without importing them."""
    roots = {}
    for pkg in ROS_PACKAGES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{pkg} is not installed in this venv: run make setup")
        roots[pkg] = Path(next(iter(spec.submodule_search_locations)))
    return roots


@cache
def distro(name: str) -> Distro:
    kilted = Distro("kilted", _venv_roots())
    if name == "kilted":
        return kilted
    if name == "humble":
        base, layout = SHARED / "ros_api" / "humble", HUMBLE_LAYOUT
    else:
        base, layout = SHARED / "ros_src_jazzy", ROS_SRC_LAYOUT
    if not base.is_dir():
        pytest.skip(f"{base} is missing (the ROS sources beside the checkout)")
    return Distro.from_layout(name, base, layout, reference=kilted)


@cache
def package_uses() -> tuple[frozenset, frozenset]:  # type: ignore[type-arg]
    chains, overrides = scan_sources(*package_files(REPO))
    return frozenset(chains), frozenset(overrides)


def report(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def test_the_scan_sees_the_package_uses() -> None:
    chains, overrides = package_uses()
    spelled = {c.spelled() for c in chains}
    assert {
        "launch_testing.asserts.assertExitCodes",
        "launch_ros.actions.LifecycleNode()",
        "rclpy.qos.ReliabilityPolicy.BEST_EFFORT",
        "rclpy.lifecycle.Node().get_logger().warning",  # self in the lifecycle node, through a return type
        "rclpy.lifecycle.LifecycleNode().create_lifecycle_publisher()",  # an annotated parameter
        "rclpy.node.Node().declare_parameter()",
        "rclpy.lifecycle.Node().trigger_configure()",
        "message_filters.Subscriber()",  # through optional.message_filters()
        "tf2_ros.TransformListener().unregister()",  # self._listener of the package's TfListener
        "diagnostic_updater.Updater().setHardwareID()",
        "launch_testing_ros.WaitForTopics().received_messages()",  # a with-statement's target
    } <= spelled
    assert {("monitor_node.py", "destroy_node"), ("perception_node.py", "on_configure")} <= {
        (Path(o.file).name, o.name) for o in overrides
    }


@pytest.mark.parametrize("name", ["humble", "jazzy"])
def test_every_ros_name_the_package_uses_exists(name: str) -> None:
    """Humble: everything; Jazzy: the tools (no rclpy sources there)."""
    chains, overrides = package_uses()
    problems, _ = check(distro(name), chains, overrides, ALLOWED)
    assert not problems, f"{len(problems)} use(s) the {name} sources lack:\n{report(problems)}"


def test_the_reference_kilted_sources_pass_and_every_allowance_is_needed() -> None:
    """No report against the sources the dev venv runs (the checker sees no ghosts), and every
    allow-list entry is still needed on Humble."""
    chains, overrides = package_uses()
    problems, _ = check(distro("kilted"), chains, overrides, ALLOWED)
    assert not problems, report(problems)
    _, used = check(distro("humble"), chains, overrides, ALLOWED)
    assert used == set(ALLOWED), f"allow-list entries no use needs: {sorted(set(ALLOWED) - used)}"


# -- mutations: the check fails where Humble lacks what Kilted has --------------------------------


SYNTHETIC = """
from launch.substitutions import LaunchConfiguration, NotEqualsSubstitution
from launch_ros.actions import Node
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import QoSProfile


class Talker(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("talker", enable_rosout=True)

    def on_configure(self, state):
        self.pub = self.create_lifecycle_publisher(str, "out", QoSProfile(depth=1))
        self.create_timer(0.1, self.tick, autostart=False)
        self.get_logger().warning("configured")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state):
        return TransitionCallbackReturn.MAYBE

    def tick(self) -> None:
        self.pub.publish("x")


def generate_launch_description():
    bag = LaunchConfiguration("bag")
    return [Node(package="p", executable="e", bogus_keyword=1, condition=NotEqualsSubstitution(bag, ""))]
"""


def synthetic_problems(name: str, text: str = SYNTHETIC) -> list[str]:
    chains, overrides = scan_sources({"synthetic.py": text})
    problems, _ = check(distro(name), chains, overrides, ALLOWED)
    return [f"{p.line}: {p.spelled}: {'unverifiable' if p.unverifiable else 'missing'}" for p in problems]


def test_a_kilted_only_name_keyword_or_c_extension_guess_is_caught() -> None:
    # On Humble: a substitution and a keyword only Kilted has, a keyword no distribution has, and a
    # C-extension name the allow-list does not vouch for
    assert synthetic_problems("humble") == [
        "2: launch.substitutions.NotEqualsSubstitution: missing",
        "15: rclpy.lifecycle.Node().create_timer(autostart=): missing",
        "20: rclpy.lifecycle.TransitionCallbackReturn.MAYBE: unverifiable",
        "28: launch_ros.actions.Node(bogus_keyword=): missing",
    ]
    # the same source on the reference: only what no distribution has
    assert synthetic_problems("kilted") == [
        "20: rclpy.lifecycle.TransitionCallbackReturn.MAYBE: unverifiable",
        "28: launch_ros.actions.Node(bogus_keyword=): missing",
    ]


def test_an_override_humble_lacks_is_caught() -> None:
    """A subclass overriding a base method Humble's base class does not have (fed to the checker as
    though Humble's Node lacked on_shutdown: the package's own override is the mutation)."""
    text = "from rclpy.lifecycle import Node\n\nclass N(Node):\n    def on_shutdown(self, state):\n        pass\n"
    assert synthetic_problems("humble", text) == []
    chains, overrides = scan_sources({"synthetic.py": text.replace("on_shutdown", "on_configure")})
    humble = distro("humble")
    original = humble.own

    def without_on_configure(cls):  # type: ignore[no-untyped-def]
        own = dict(original(cls))
        own.pop("on_configure", None)
        return own

    humble.own = without_on_configure  # type: ignore[method-assign]
    try:
        problems, _ = check(humble, chains, overrides, ALLOWED)
    finally:
        humble.own = original  # type: ignore[method-assign]
    assert [p.spelled for p in problems] == ["rclpy.lifecycle.Node.on_configure (overridden)"]


def test_a_mutation_of_the_package_source_is_caught() -> None:
    """As test_real_bindings does for TensorRT: one misspelt ROS name in the package's own source."""
    files, modules = package_files(REPO)
    path = "bevfusion_ros/ros/perception_io.py"
    assert "ReliabilityPolicy.BEST_EFFORT" in files[path]
    mutated = dict(
        files, **{path: files[path].replace("ReliabilityPolicy.BEST_EFFORT", "ReliabilityPolicy.BEST_EFORT")}
    )
    chains, overrides = scan_sources(mutated, modules)
    problems, _ = check(distro("humble"), chains, overrides, ALLOWED)
    assert [(p.file, p.spelled) for p in problems] == [(path, "rclpy.qos.ReliabilityPolicy.BEST_EFORT")]
