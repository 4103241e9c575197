"""diagnostic_msgs builders: one DiagnosticStatus per concern, key/values as strings (what
rqt_robot_monitor and the monitor node show), levels by the usual OK < WARN < ERROR."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
LEVEL_NAMES = {
    int.from_bytes(OK, "little"): "OK",
    int.from_bytes(WARN, "little"): "WARN",
    int.from_bytes(ERROR, "little"): "ERROR",
}


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


def array(hdr: Header, statuses: Iterable[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=hdr, status=list(statuses))


def worst(levels: Iterable[bytes]) -> bytes:
    return max(levels, key=lambda b: int.from_bytes(b, "little"), default=OK)


def values(msg: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in msg.values}
