"""Diagnostics the ROS way: both nodes publish through diagnostic_updater's ``Updater`` (one task per
check, the node's name in front of each task's name, one hardware_id), so rqt_robot_monitor and a
vehicle's diagnostic_aggregator group them as they do every other driver's. Values go out as strings,
levels by the usual OK < WARN < ERROR. The per-frame timing record (a DiagnosticArray on the node's
``~/timing`` topic) is data for the monitor, not a diagnostic, and is built here by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

if TYPE_CHECKING:  # diagnostic_updater has no type information
    from rclpy.node import Node

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
# declared on the node by Updater; refused as overrides (the nodes' own period parameter is the one knob)
UPDATER_PARAMETERS = ("diagnostic_updater.period", "diagnostic_updater.use_fqn")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def status(name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, Any]) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()],
    )


def fill(stat: Any, level: bytes, message: str, values: Mapping[str, Any]) -> Any:
    """A task's result: ``stat`` (diagnostic_updater's DiagnosticStatusWrapper) with its summary and
    values set; the wrapper stores values as given, so they are turned into text here."""
    stat.summary(level, message)
    for key, value in values.items():
        stat.add(key, _text(value))
    return stat


def make_updater(node: Node, period_s: float, hardware_id: str, tasks: Mapping[str, Callable[[Any], Any]]) -> Any:
    """An Updater on ``node`` publishing every ``period_s`` with one task per entry of ``tasks``.

    Updater declares its parameters unconditionally; a lifecycle node that is configured again after
    cleanup already has them, so they are undeclared first.
    """
    from diagnostic_updater import Updater

    for name in UPDATER_PARAMETERS:
        if node.has_parameter(name):
            node.undeclare_parameter(name)
    updater = Updater(node, period=period_s)
    updater.setHardwareID(hardware_id)
    for name, task in tasks.items():
        updater.add(name, task)
    return updater


def destroy_updater(node: Node, updater: Any) -> None:
    """Updater has no destroy(): its timer and publisher go with the lifecycle's cleanup."""
    node.destroy_timer(updater.timer)
    node.destroy_publisher(updater.publisher)


def array(hdr: Header, statuses: Iterable[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=hdr, status=list(statuses))


def worst(levels: Iterable[bytes]) -> bytes:
    return max(levels, key=lambda b: int.from_bytes(b, "little"), default=OK)


def values(msg: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in msg.values}
