"""The dense 3D convolution the sparse-convolution tests hold the sparse ops to."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def dense_conv(x: Any, w: Any, stride: Any, padding: Any, dilation: Any) -> Any:
    """Cross-correlation of x [C, D, H, W] with w [Cout, kz, ky, kx, Cin], float64, offset by offset."""
    spatial = x.shape[1:]
    ksize = w.shape[1:4]
    padded = np.pad(x.astype(np.float64), [(0, 0)] + [(p, p) for p in padding])
    out_shape = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(spatial, ksize, stride, padding, dilation, strict=True)
    ]
    out = np.zeros((w.shape[0], *out_shape))
    for offset in itertools.product(*(range(k) for k in ksize)):
        window = tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s)
            for o, d, s, n in zip(offset, dilation, stride, out_shape, strict=True)
        )
        out += np.einsum("oc,c...->o...", w[(slice(None), *offset)], padded[(slice(None), *window)])
    return out
