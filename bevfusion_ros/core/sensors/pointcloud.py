"""Point clouds as (N, C) float32 arrays, decoded from any PointCloud2-style byte layout.

Decoding builds one numpy structured dtype from the field table (offsets, types, endianness,
point_step) and views the buffer through it with row strides, so any layout a driver emits is
read column by column without a Python loop over points.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import MessageError

FloatArray = npt.NDArray[np.float32]

# sensor_msgs/PointField datatype constants -> numpy scalar type.
DATATYPES: dict[int, np.dtype[np.generic]] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}
DATATYPE_OF: dict[np.dtype[np.generic], int] = {v: k for k, v in DATATYPES.items()}

DEFAULT_REQUIRED = ("x", "y", "z", "intensity")
DEFAULT_OPTIONAL = ("ring", "time")


@dataclass(frozen=True)
class FieldSpec:
    """One entry of a PointCloud2 field table."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass(frozen=True)
class PointCloud:
    """N points with named float32 columns (x, y, z first)."""

    data: FloatArray
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[1] != len(self.fields):
            msg = f"point array shape {self.data.shape} does not match fields {self.fields}"
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def xyz(self) -> FloatArray:
        return self.data[:, :3]

    def column(self, name: str) -> FloatArray:
        if name not in self.fields:
            msg = f"point cloud has no field '{name}'; it has {', '.join(self.fields)}"
            raise KeyError(msg)
        return self.data[:, self.fields.index(name)]


def _check_layout(
    fields: Sequence[FieldSpec], width: int, height: int, point_step: int, row_step: int, nbytes: int
) -> None:
    if point_step <= 0:
        msg = f"point_step is {point_step}; it must be positive"
        raise MessageError(msg)
    if width < 0 or height < 0:
        msg = f"point cloud has negative size (width={width}, height={height})"
        raise MessageError(msg)
    if row_step < width * point_step:  # one row cannot be shorter than its points, whatever the height
        msg = f"row_step {row_step} is smaller than width*point_step = {width}*{point_step}"
        raise MessageError(msg)
    names = [f.name for f in fields]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        offsets = {n: [f.offset for f in fields if f.name == n] for n in twice}
        msg = f"point cloud field name(s) repeated, so which bytes are meant is ambiguous: {offsets} (name: offsets)"
        raise MessageError(msg)
    for f in fields:
        if f.datatype not in DATATYPES:
            msg = f"field '{f.name}' has unknown datatype {f.datatype}; known: 1..8 (sensor_msgs/PointField)"
            raise MessageError(msg)
        end = f.offset + DATATYPES[f.datatype].itemsize * max(f.count, 1)
        if f.offset < 0 or end > point_step:
            msg = f"field '{f.name}' spans bytes {f.offset}..{end} but point_step is only {point_step}"
            raise MessageError(msg)
    if width * height == 0:
        return
    stride = row_step if height > 1 else width * point_step
    needed = (height - 1) * stride + width * point_step
    if nbytes < needed:
        msg = (
            f"point cloud data has {nbytes} bytes, expected at least {needed} "
            f"(width={width}, height={height}, point_step={point_step}, row_step={row_step})"
        )
        raise MessageError(msg)


def resolve_fields(
    fields: Sequence[FieldSpec],
    width: int,
    height: int,
    point_step: int,
    row_step: int,
    nbytes: int,
    required: Iterable[str] = DEFAULT_REQUIRED,
    optional: Iterable[str] = DEFAULT_OPTIONAL,
) -> list[str]:
    """Check a PointCloud2 layout; return the columns to read (required, then optional present)."""
    _check_layout(fields, width, height, point_step, row_step, nbytes)
    by_name = {f.name: f for f in fields}
    required = tuple(required)
    missing = [n for n in required if n not in by_name]
    if missing:
        have = ", ".join(by_name) or "none"
        msg = f"point cloud lacks required field(s) {', '.join(missing)}; it has: {have}"
        raise MessageError(msg)
    wanted = list(required) + [n for n in optional if n in by_name and n not in required]
    for name in wanted:
        if by_name[name].count != 1:
            msg = f"field '{name}' has count {by_name[name].count}; a scalar (count 1) is expected"
            raise MessageError(msg)
    _check_no_overlap([by_name[n] for n in wanted], fields)
    return wanted


def _span(f: FieldSpec) -> tuple[int, int]:
    return f.offset, f.offset + DATATYPES[f.datatype].itemsize * max(f.count, 1)


def _check_no_overlap(read: Sequence[FieldSpec], fields: Sequence[FieldSpec]) -> None:
    """A field the node reads must own its bytes: overlapping another field, one of the two layouts
    is wrong, and reading would turn the other's bytes into points (fields it ignores may overlap)."""
    for f in read:
        a0, a1 = _span(f)
        for g in fields:
            b0, b1 = _span(g)
            if g is not f and a0 < b1 and b0 < a1:
                msg = f"fields '{f.name}' (bytes {a0}..{a1}) and '{g.name}' (bytes {b0}..{b1}) overlap"
                raise MessageError(msg)


def finite_rows(points: FloatArray, columns: int = 3) -> FloatArray:
    """Drop points with a NaN or infinite value in their first ``columns`` columns (x, y, z)."""
    if points.shape[0] == 0:
        return points
    keep = np.isfinite(points[:, : min(columns, points.shape[1])]).all(axis=1)
    return points if keep.all() else points[keep]


def decode_points(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    fields: Sequence[FieldSpec],
    width: int,
    height: int,
    point_step: int,
    row_step: int,
    is_bigendian: bool = False,
    required: Iterable[str] = DEFAULT_REQUIRED,
    optional: Iterable[str] = DEFAULT_OPTIONAL,
    drop_nonfinite: bool = True,
) -> PointCloud:
    """Decode a PointCloud2 buffer into the ``required`` columns plus any ``optional`` present."""
    buf = np.frombuffer(data, dtype=np.uint8)
    wanted = resolve_fields(fields, width, height, point_step, row_step, buf.size, required, optional)
    by_name = {f.name: f for f in fields}
    byteorder: Literal["<", ">"] = ">" if is_bigendian else "<"
    spec: dict[str, Any] = {
        "names": wanted,
        "formats": [DATATYPES[by_name[n].datatype].newbyteorder(byteorder) for n in wanted],
        "offsets": [by_name[n].offset for n in wanted],
        "itemsize": point_step,
    }
    dtype = np.dtype(spec)  # type: ignore[call-overload]
    n_points = width * height
    out = np.empty((n_points, len(wanted)), dtype=np.float32)
    if n_points:
        stride = row_step if height > 1 else width * point_step
        view: npt.NDArray[np.void] = np.ndarray(
            shape=(height, width), dtype=dtype, buffer=buf, strides=(stride, point_step)
        )
        for i, name in enumerate(wanted):
            out[:, i] = view[name].reshape(-1)
    return PointCloud(finite_rows(out) if drop_nonfinite else out, tuple(wanted))


def encode_points(
    columns: npt.NDArray[np.generic], names: Sequence[str], dtypes: Sequence[npt.DTypeLike] | None = None
) -> tuple[list[FieldSpec], bytes, int]:
    """Pack (N, C) columns into an unpadded little-endian point record; returns (fields, data, point_step)."""
    if columns.ndim != 2 or columns.shape[1] != len(names):
        msg = f"columns shape {columns.shape} does not match {len(names)} names"
        raise ValueError(msg)
    types = [np.dtype(t) for t in (dtypes or [np.float32] * len(names))]
    specs: list[FieldSpec] = []
    offset = 0
    for name, t in zip(names, types, strict=True):
        if t not in DATATYPE_OF:
            msg = f"field '{name}' dtype {t} has no PointField datatype"
            raise ValueError(msg)
        specs.append(FieldSpec(name, offset, DATATYPE_OF[t], 1))
        offset += t.itemsize
    record = np.dtype({"names": list(names), "formats": [t.newbyteorder("<") for t in types]})
    packed = np.empty(columns.shape[0], dtype=record)
    for i, name in enumerate(names):
        packed[name] = columns[:, i]
    return specs, packed.tobytes(), record.itemsize
