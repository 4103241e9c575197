"""Bag surgery for tests: a copy of a bag with topics left out or retyped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bevfusion_ros.tools.bags.io import BagWriter, iter_raw, open_reader


def copy_bag(
    src: Path,
    dst: Path,
    keep: Callable[[str], bool] = lambda t: True,
    retype: dict[str, tuple[str, bytes]] | None = None,
) -> Path:
    """``src`` without the topics ``keep`` rejects; ``retype`` replaces a topic's type and payload."""
    reader = open_reader(src)
    try:
        with BagWriter(dst) as w:
            for topic, msgtype, ns, raw in iter_raw(reader):
                if not keep(topic):
                    continue
                if retype and topic in retype:
                    msgtype, raw = retype[topic]
                w.write(topic, msgtype, ns, raw)
    finally:
        reader.close()
    (dst / "calibration.yaml").write_text((src / "calibration.yaml").read_text())
    return dst
