from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.sensors.image import decode_compressed, decode_raw, encode_compressed

RNG = np.random.default_rng(0)


def _pack(pixels: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row-major bytes with ``pad`` junk bytes after every row, as a driver with aligned rows emits."""
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    step = w * c + pad
    buf = np.full((h, step), 0xAB, np.uint8)
    buf[:, : w * c] = pixels.reshape(h, w * c)
    return buf.tobytes(), step


@pytest.mark.parametrize(
    ("encoding", "to_rgb"),
    [
        ("rgb8", lambda p: p),
        ("bgr8", lambda p: p[..., ::-1]),
        ("rgba8", lambda p: p[..., :3]),
        ("bgra8", lambda p: p[..., 2::-1]),
        ("8UC3", lambda p: p[..., ::-1]),
    ],
)
@pytest.mark.parametrize("pad", [0, 3, 64])
def test_color_encodings_give_rgb_and_bgr(encoding, to_rgb, pad) -> None:
    c = 4 if encoding.endswith("a8") else 3
    pixels = RNG.integers(0, 256, (7, 11, c), dtype=np.uint8)
    data, step = _pack(pixels, pad)
    rgb = decode_raw(data, 7, 11, step, encoding, "rgb")
    bgr = decode_raw(data, 7, 11, step, encoding, "bgr")
    assert rgb.shape == (7, 11, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, to_rgb(pixels))
    np.testing.assert_array_equal(bgr, to_rgb(pixels)[..., ::-1])


def test_mono_is_repeated_into_three_channels() -> None:
    pixels = RNG.integers(0, 256, (5, 9), dtype=np.uint8)
    data, step = _pack(pixels, 7)
    out = decode_raw(data, 5, 9, step, "mono8")
    assert out.shape == (5, 9, 3)
    for ch in range(3):
        np.testing.assert_array_equal(out[..., ch], pixels)


def test_raw_decode_is_a_view_not_a_copy() -> None:
    pixels = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    buf = bytearray(pixels.tobytes())
    out = decode_raw(buf, 4, 4, 12, "rgb8")
    buf[0] = (int(pixels[0, 0, 0]) + 1) % 256
    assert out[0, 0, 0] == buf[0]


def test_last_row_without_padding_is_accepted() -> None:
    pixels = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    data, step = _pack(pixels, 4)
    trimmed = data[: len(data) - 4]
    np.testing.assert_array_equal(decode_raw(trimmed, 3, 4, step, "rgb8"), pixels)


@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    pad=st.integers(0, 9),
    encoding=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]),
)
@settings(max_examples=60, deadline=None)
def test_any_size_and_padding_round_trips(h, w, pad, encoding) -> None:
    c = {"rgba8": 4, "bgra8": 4, "mono8": 1}.get(encoding, 3)
    pixels = RNG.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)
    data, step = _pack(pixels, pad)
    out = decode_raw(data, h, w, step, encoding, "rgb")
    first = pixels if c == 1 else pixels[..., 2] if encoding.startswith("bgr") else pixels[..., 0]
    np.testing.assert_array_equal(out[..., 0], first)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"encoding": "yuv422"}, "unsupported image encoding 'yuv422'"),
        ({"encoding": "16UC1"}, "supported: rgb8"),
        ({"step": 20}, "step 20 is smaller than width*channels = 8*3"),
        ({"data": b"\x00" * 50}, "image data has 50 bytes, expected at least 120"),
        ({"height": 0}, "no pixels"),
    ],
)
def test_malformed_raw_images_raise_one_clear_error(kwargs, needle) -> None:
    args = {"data": b"\x00" * 120, "height": 5, "width": 8, "step": 24, "encoding": "rgb8"}
    args.update(kwargs)
    with pytest.raises(MessageError, match=None) as info:
        decode_raw(args["data"], args["height"], args["width"], args["step"], args["encoding"])
    assert needle in str(info.value)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_compressed_round_trip(kind) -> None:
    yy, xx = np.mgrid[0:48, 0:64]
    bgr = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)  # smooth: JPEG-friendly
    data = encode_compressed(bgr, kind)
    rgb = decode_compressed(data, f"bgr8; {kind} compressed bgr8", "rgb")
    tol = 0 if kind == "png" else 8
    assert rgb.shape == (48, 64, 3)
    assert np.abs(rgb.astype(int) - bgr[..., ::-1].astype(int)).max() <= tol


@pytest.mark.parametrize(
    ("data", "fmt", "needle"),
    [
        (b"", "jpeg", "has no data"),
        (b"\xff\xd8\xff\xe0garbage", "jpeg", "could not be decoded"),
        (b"abc", "tiff", "unsupported compressed image format 'tiff'"),
    ],
)
def test_malformed_compressed_images(data, fmt, needle) -> None:
    with pytest.raises(MessageError) as info:
        decode_compressed(data, fmt)
    assert needle in str(info.value)


def test_truncated_jpeg_is_an_error_or_a_full_size_image() -> None:
    bgr = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = encode_compressed(bgr, "jpeg")
    with pytest.raises(MessageError):
        decode_compressed(data[:20], "jpeg")
