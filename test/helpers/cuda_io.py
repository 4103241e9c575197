"""Reading device buffers back in the GPU tests (uploads use the product's core.cuda.kernels.upload)."""

from __future__ import annotations

import numpy as np

from bevfusion_ros.core.cuda import driver as cuda


def from_device(buf: cuda.DeviceBuffer | int, shape: tuple[int, ...], dtype: type, stream: cuda.Stream) -> np.ndarray:
    """``shape`` elements of ``dtype`` from a device buffer or address, waiting for the stream."""
    host = cuda.HostBuffer(shape, dtype)
    if host.array.size:
        ptr = buf.ptr if isinstance(buf, cuda.DeviceBuffer) else int(buf)
        cuda.copy_to_host(host.array, cuda.DeviceView(ptr, host.array.nbytes), stream)
        stream.synchronize()
    return np.array(host.array)
