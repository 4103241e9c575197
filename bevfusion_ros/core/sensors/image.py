"""Camera image decoding into HxWx3 uint8 arrays, from raw buffers or compressed bytes.

The raw path never copies: it returns a strided view of the message buffer (row padding and
channel order are handled by strides), so callers that keep the array must copy it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import MessageError
from bevfusion_ros.core.optional import import_cv2

ChannelOrder = Literal["rgb", "bgr"]
Image = npt.NDArray[np.uint8]

# encoding -> (channels, index of R, G, B within a pixel)
_RAW_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
    "8UC3": (3, (2, 1, 0)),  # OpenCV's default channel order is BGR
    "8UC1": (1, (0, 0, 0)),
}
SUPPORTED_RAW_ENCODINGS = tuple(_RAW_ENCODINGS)


def raw_conversion(encoding: str, width: int, step: int) -> str | None:
    """What reading a supported raw image as bgr8 changes, in words (None: it is bgr8, rows unpadded)."""
    channels = _RAW_ENCODINGS[encoding][0] if encoding in _RAW_ENCODINGS else 3
    changes = [] if encoding == "bgr8" else [f"'{encoding}' converted to bgr8"]
    if step > width * channels:
        changes.append(f"rows padded to {step} bytes skipped")
    return ", ".join(changes) or None


SUPPORTED_COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


def decode_raw(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    height: int,
    width: int,
    step: int,
    encoding: str,
    order: ChannelOrder = "rgb",
) -> Image:
    """View a raw image buffer as HxWx3 uint8 in ``order``; mono is repeated into 3 channels."""
    if encoding not in _RAW_ENCODINGS:
        msg = f"unsupported image encoding '{encoding}'; supported: {', '.join(SUPPORTED_RAW_ENCODINGS)}"
        raise MessageError(msg)
    if order not in ("rgb", "bgr"):
        msg = f"channel order must be 'rgb' or 'bgr', got '{order}'"
        raise ValueError(msg)
    channels, rgb_index = _RAW_ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        msg = f"image has no pixels (height={height}, width={width})"
        raise MessageError(msg)
    if step < width * channels:
        msg = f"image step {step} is smaller than width*channels = {width}*{channels} for '{encoding}'"
        raise MessageError(msg)
    buf = np.frombuffer(data, dtype=np.uint8)
    # The last row needs only its pixels, not its padding.
    needed = (height - 1) * step + width * channels
    if buf.size < needed:
        msg = (
            f"image data has {buf.size} bytes, expected at least {needed} "
            f"(height={height}, step={step}, width={width}, '{encoding}')"
        )
        raise MessageError(msg)
    pixels = np.lib.stride_tricks.as_strided(
        buf, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    idx = rgb_index if order == "rgb" else rgb_index[::-1]
    if channels == 1:
        return np.broadcast_to(pixels, (height, width, 3))
    if idx == (0, 1, 2):
        return pixels[:, :, :3]
    if idx == (2, 1, 0):
        return pixels[:, :, 2::-1]
    return pixels[:, :, list(idx)]  # pragma: no cover - no encoding maps here today


def compressed_kind(fmt: str) -> str:
    """The codec named by a CompressedImage ``format`` (e.g. 'jpeg', 'bgr8; jpeg compressed bgr8')."""
    text = fmt.lower()
    for kind in ("jpeg", "jpg", "png"):
        if kind in text:
            return "jpeg" if kind == "jpg" else kind
    msg = f"unsupported compressed image format '{fmt}'; supported: jpeg, png"
    raise MessageError(msg)


# 8K (33 MP) is the largest automotive camera frame we expect; a few hundred kB of PNG can declare
# 144 MP and cost gigabytes once decoded
MAX_DECODED_PIXELS = 40_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def compressed_size(buf: npt.NDArray[np.uint8]) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame header, without decoding; None
    where the header cannot be read (the decoder then says what is wrong)."""
    data = buf.tobytes()[:65536] if buf.size > 65536 else buf.tobytes()
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def decode_compressed(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8], fmt: str, order: ChannelOrder = "rgb"
) -> Image:
    """Decode JPEG/PNG bytes into a contiguous HxWx3 uint8 array."""
    compressed_kind(fmt)
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        msg = f"compressed image ('{fmt}') has no data"
        raise MessageError(msg)
    size = compressed_size(buf)
    if size is not None and size[0] * size[1] > MAX_DECODED_PIXELS:
        msg = (
            f"compressed image ('{fmt}', {buf.size} bytes) declares {size[0]}x{size[1]} pixels, over the "
            f"{MAX_DECODED_PIXELS / 1e6:.0f} MP this node decodes: refused before decoding"
        )
        raise MessageError(msg)
    cv2 = import_cv2()
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        msg = f"compressed image ('{fmt}', {buf.size} bytes) could not be decoded: corrupt or truncated"
        raise MessageError(msg)
    out: Image = np.ascontiguousarray(bgr[:, :, ::-1]) if order == "rgb" else bgr
    return out


def encode_compressed(image_bgr: Image, kind: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an HxWx3 BGR image as JPEG or PNG bytes."""
    cv2 = import_cv2()
    ext = {"jpeg": ".jpg", "png": ".png"}[compressed_kind(kind)]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, enc = cv2.imencode(ext, image_bgr, params)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        msg = f"could not encode a {image_bgr.shape} image as {kind}"
        raise MessageError(msg)
    return bytes(enc.tobytes())
