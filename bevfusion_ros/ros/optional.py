"""ROS-distribution packages that pip cannot install, each imported lazily in this one place.

On a vehicle they come from the distribution; here they are absent and the package's own
equivalents run. Each accessor returns None when the package is missing.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any


@functools.cache
def cv_bridge() -> Any | None:
    """A ``cv_bridge.CvBridge`` instance, or None."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


@functools.cache
def sensor_msgs_py_point_cloud2() -> ModuleType | None:
    """``sensor_msgs_py.point_cloud2``, or None."""
    try:
        from sensor_msgs_py import point_cloud2
    except ImportError:
        return None
    return point_cloud2


@functools.cache
def message_filters() -> ModuleType | None:
    """``message_filters``, or None."""
    try:
        import message_filters as mf
    except ImportError:
        return None
    return mf
