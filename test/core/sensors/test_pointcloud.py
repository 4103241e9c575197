from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.sensors.pointcloud import DATATYPE_OF, FieldSpec, PointCloud, decode_points, encode_points

RNG = np.random.default_rng(1)
TYPES = [np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32]


def _layout(names, dtypes, order, gap, bigendian, width, height, row_pad):
    """Pack random values into an arbitrary record layout; return (values, fields, data, steps)."""
    bo = ">" if bigendian else "<"
    offsets, off = {}, 0
    for i in order:
        offsets[names[i]] = off
        off += np.dtype(dtypes[i]).itemsize + gap
    point_step = off
    rec = np.dtype(
        {
            "names": list(names),
            "formats": [np.dtype(t).newbyteorder(bo) for t in dtypes],
            "offsets": [offsets[n] for n in names],
            "itemsize": point_step,
        }
    )
    n = width * height
    values = np.zeros((n, len(names)), np.float64)
    packed = np.zeros(n, rec)
    for i, (name, t) in enumerate(zip(names, dtypes, strict=True)):
        col = (
            RNG.uniform(-100, 100, n)
            if np.dtype(t).kind == "f"
            else RNG.integers(np.iinfo(t).min, np.iinfo(t).max, n, endpoint=True)
        )
        packed[name] = col
        values[:, i] = packed[name]
    row_step = width * point_step + row_pad
    rows = np.full((height, row_step), 0xCD, np.uint8)
    rows[:, : width * point_step] = packed.view(np.uint8).reshape(height, width * point_step)
    fields = [FieldSpec(nm, offsets[nm], DATATYPE_OF[np.dtype(t)], 1) for nm, t in zip(names, dtypes, strict=True)]
    return values, fields, rows.tobytes(), point_step, row_step


@given(
    dtypes=st.lists(st.sampled_from(TYPES), min_size=5, max_size=5),
    order=st.permutations(range(5)),
    gap=st.integers(0, 5),
    bigendian=st.booleans(),
    width=st.integers(1, 30),
    height=st.integers(1, 4),
    row_pad=st.integers(0, 17),
)
@settings(max_examples=80, deadline=None)
def test_any_layout_decodes_to_the_packed_values(dtypes, order, gap, bigendian, width, height, row_pad) -> None:
    dtypes[:3] = [np.float32, np.float64, np.float32]  # x, y, z finite floats so none are dropped
    names = ("x", "y", "z", "intensity", "ring")
    values, fields, data, point_step, row_step = _layout(names, dtypes, order, gap, bigendian, width, height, row_pad)
    pc = decode_points(data, fields, width, height, point_step, row_step, bigendian)
    assert pc.fields == names
    assert pc.data.dtype == np.float32 and len(pc) == width * height
    np.testing.assert_allclose(pc.data, values.astype(np.float32), rtol=1e-6)


def test_optional_fields_are_read_only_when_present_and_extra_fields_ignored() -> None:
    cols = RNG.normal(size=(10, 5)).astype(np.float32)
    specs, data, step = encode_points(cols, ["x", "y", "z", "intensity", "reflectivity"])
    pc = decode_points(data, specs, 10, 1, step, step * 10)
    assert pc.fields == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(pc.data, cols[:, :4])
    with_time = decode_points(data, specs, 10, 1, step, step * 10, required=("x", "y", "z"), optional=("reflectivity",))
    assert with_time.fields == ("x", "y", "z", "reflectivity")


def test_nonfinite_points_are_dropped_unless_asked_to_keep() -> None:
    cols = RNG.normal(size=(6, 4)).astype(np.float32)
    cols[1, 0] = np.nan
    cols[4, 2] = np.inf
    cols[5, 3] = np.nan  # intensity NaN is not a geometry problem: kept
    specs, data, step = encode_points(cols, ["x", "y", "z", "intensity"])
    kept = decode_points(data, specs, 6, 1, step, step * 6)
    assert len(kept) == 4
    np.testing.assert_array_equal(kept.xyz, cols[[0, 2, 3, 5], :3])
    assert len(decode_points(data, specs, 6, 1, step, step * 6, drop_nonfinite=False)) == 6


def test_empty_cloud_is_valid() -> None:
    specs = [FieldSpec(n, 4 * i, 7) for i, n in enumerate("xyz")] + [FieldSpec("intensity", 12, 7)]
    pc = decode_points(b"", specs, 0, 1, 16, 0)
    assert pc.data.shape == (0, 4)


def _xyz_i(point_step=16):
    return [FieldSpec("x", 0, 7), FieldSpec("y", 4, 7), FieldSpec("z", 8, 7), FieldSpec("intensity", 12, 7)]


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ({"fields": _xyz_i()[:2]}, "lacks required field(s) z, intensity; it has: x, y"),
        ({"point_step": 12}, "field 'intensity' spans bytes 12..16 but point_step is only 12"),
        ({"point_step": 0}, "point_step is 0"),
        ({"data": b"\x00" * 100}, "point cloud data has 100 bytes, expected at least 160"),
        ({"height": 2, "width": 5, "row_step": 40}, "row_step 40 is smaller than width*point_step = 5*16"),
        ({"fields": [*_xyz_i()[:3], FieldSpec("intensity", 12, 9)]}, "unknown datatype 9"),
        ({"fields": [FieldSpec("x", 0, 7, 3), *_xyz_i()[1:]]}, "field 'x' has count 3"),
        (
            {"fields": [*_xyz_i()[:3], FieldSpec("intensity", 6, 7)]},
            "fields 'y' (bytes 4..8) and 'intensity' (bytes 6..10) overlap",
        ),
        (
            {"fields": [*_xyz_i(), FieldSpec("ring", 10, 4)]},
            "fields 'z' (bytes 8..12) and 'ring' (bytes 10..12) overlap",
        ),
    ],
)
def test_malformed_clouds_raise_one_clear_error(case, needle) -> None:
    args = {"data": b"\x00" * 160, "fields": _xyz_i(), "width": 10, "height": 1, "point_step": 16, "row_step": 160}
    args.update(case)
    with pytest.raises(MessageError) as info:
        decode_points(args["data"], args["fields"], args["width"], args["height"], args["point_step"], args["row_step"])
    assert needle in str(info.value)


def test_pointcloud_type_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="does not match fields"):
        PointCloud(np.zeros((3, 2), np.float32), ("x", "y", "z"))
    pc = PointCloud(np.arange(12, dtype=np.float32).reshape(3, 4), ("x", "y", "z", "intensity"))
    np.testing.assert_array_equal(pc.column("intensity"), [3, 7, 11])
    with pytest.raises(KeyError, match="no field 'ring'"):
        pc.column("ring")


def test_real_nuscenes_sweep_round_trips(frame) -> None:
    specs, data, step = encode_points(
        frame.points, ["x", "y", "z", "intensity", "ring"], [np.float32] * 4 + [np.uint16]
    )
    assert step == 18
    pc = decode_points(data, specs, len(frame.points), 1, step, step * len(frame.points))
    assert len(pc) == 34688
    np.testing.assert_array_equal(pc.data, frame.points)
