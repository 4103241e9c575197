"""rosbag2 (mcap / sqlite3) access through rosbags, with types for every installed interface.

The typestore starts from rosbags' built-in Kilted definitions and adds vision_msgs from the
installed share folder, so ground truth and detections can be written and read like any type.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from bevfusion_ros.core.errors import BagError, DependencyError

T = TypeVar("T")
# a span of log time in ns, [start, stop): the part of a bag one slice of a fleet evaluation reads
LogWindow = tuple[int, int]


def _rosbags() -> Any:
    try:
        import rosbags.rosbag2 as rb
    except ImportError as exc:
        msg = f"the 'rosbags' package is needed for bag files: pip install rosbags ({exc})"
        raise DependencyError(msg) from exc
    return rb


def typestore() -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    from bevfusion_ros.core.resources import package_share

    share = package_share("vision_msgs")
    if share is None or not (share / "msg").is_dir():  # the bags' ground truth is vision_msgs
        msg = "vision_msgs is not installed: run 'make setup' (pip) or source a ROS workspace that has it"
        raise DependencyError(msg)
    types: dict[str, Any] = {}
    # autoware_perception_msgs where installed (the node's ~/objects); after vision_msgs, whose
    # share folder must exist
    for package in ("vision_msgs", "autoware_perception_msgs"):
        folder = package_share(package)
        for path in sorted((folder / "msg").glob("*.msg")) if folder is not None else []:
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    store.register(types)
    return store


class BagWriter:
    """Writes pre-serialized CDR messages; connections are created on first use of a topic."""

    def __init__(self, path: Path, storage: str = "mcap", overwrite: bool = False) -> None:
        rb = _rosbags()
        if path.exists():
            if not overwrite:
                msg = f"bag {path} exists; pass --overwrite to replace it"
                raise BagError(msg)
            import shutil

            shutil.rmtree(path)
        plugin = {"mcap": rb.StoragePlugin.MCAP, "sqlite3": rb.StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            msg = f"storage must be 'mcap' or 'sqlite3', got '{storage}'"
            raise BagError(msg)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.store = typestore()
        self._writer = rb.Writer(path, version=9, storage_plugin=plugin)
        self._conns: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def write(self, topic: str, msgtype: str, ns: int, cdr: bytes) -> None:
        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        self._writer.write(self._conns[topic], ns, cdr)


def open_reader(path: Path) -> Any:
    rb = _rosbags()
    if not path.exists():
        msg = f"bag {path} does not exist"
        raise BagError(msg)
    try:
        reader = rb.Reader(path)
        reader.open()
    except Exception as exc:
        msg = f"cannot open bag {path}: {exc}"
        raise BagError(msg) from exc
    return reader


def iter_raw(
    reader: Any, topics: set[str] | None = None, window: LogWindow | None = None
) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time ns, CDR bytes) in log-time order, within ``window`` when given."""
    conns = [c for c in reader.connections if topics is None or c.topic in topics]
    start, stop = window if window is not None else (None, None)
    for conn, ns, raw in reader.messages(connections=conns, start=start, stop=stop):
        yield conn.topic, conn.msgtype, ns, bytes(raw)


def read_ahead(items: Iterator[T], depth: int = 32) -> Iterator[T]:
    """Iterate ``items`` from a background thread through a bounded queue, so slow storage reads
    (a cold mcap chunk) overlap with the consumer's waiting instead of delaying it."""
    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((False, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((True, exc))

    worker = threading.Thread(target=fill, name="bag-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            done, value = q.get()
            if done:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        worker.join(timeout=5)
