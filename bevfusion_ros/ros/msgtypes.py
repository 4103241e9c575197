"""Resolve 'pkg/msg/Name' type strings to installed rclpy message classes."""

from __future__ import annotations

import importlib
from typing import Any

from bevfusion_ros.core.errors import DependencyError


def message_class(msgtype: str) -> Any:
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        msg = f"'{msgtype}' is not a message type name like 'sensor_msgs/msg/Image'"
        raise DependencyError(msg)
    pkg, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        msg = f"message type {msgtype} is not installed ({exc})"
        raise DependencyError(msg) from exc
