"""CUDA through pycuda for the TensorRT backend and the CUDA pre-processing.

* An explicit context: the device's primary context is retained once and pushed/popped around every
  use (``with ctx.active():``), so any thread (an rclpy executor's, the inference thread) can use it.
  Library code never imports ``pycuda.autoinit``, which binds a context to the importing thread.
* Buffers that free themselves: ``DeviceBuffer`` (cuMemAlloc), ``HostBuffer`` (page-locked, and on
  request mapped into the device's address space: on a Jetson CPU and GPU share DRAM, so a mapped
  buffer needs no copy at all).
* Streams and events for ordering copies and engines; every driver error becomes a BackendError
  that names the call. Drop streams and buffers while their context is active (pycuda warns and
  leaks otherwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BackendError
from bevfusion_ros.core.optional import import_pycuda_driver

T = TypeVar("T")


def checked(what: str, call: Callable[[], T]) -> T:
    """Run a driver call; pycuda's errors (cuda.Error and subclasses) become one BackendError."""
    cuda = import_pycuda_driver()
    try:
        return call()
    except cuda.Error as exc:
        msg = f"CUDA {what} failed: {exc}"
        raise BackendError(msg) from exc


class CudaContext:
    """The primary context of one device, usable from any thread inside ``active()``."""

    def __init__(self, device: int = 0) -> None:
        cuda = import_pycuda_driver()
        checked("init", cuda.init)
        count = checked("device count", cuda.Device.count)
        if not 0 <= device < count:
            msg = f"CUDA device {device} does not exist ({count} device(s))"
            raise BackendError(msg)
        self.device = cuda.Device(device)
        self._ctx: Any = checked("retain primary context", self.device.retain_primary_context)

    @property
    def name(self) -> str:
        return str(self.device.name())

    @property
    def compute_capability(self) -> str:
        major, minor = self.device.compute_capability()
        return f"{major}.{minor}"

    @property
    def integrated(self) -> bool:
        """True on a Jetson: the GPU shares the CPU's memory."""
        cuda = import_pycuda_driver()
        return bool(self.device.get_attribute(cuda.device_attribute.INTEGRATED))

    @property
    def can_map_host_memory(self) -> bool:
        cuda = import_pycuda_driver()
        return bool(self.device.get_attribute(cuda.device_attribute.CAN_MAP_HOST_MEMORY))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        cuda = import_pycuda_driver()
        if self._ctx is None:
            msg = "CUDA context was released"
            raise BackendError(msg)
        checked("context push", self._ctx.push)
        try:
            yield
        finally:
            cuda.Context.pop()

    def release(self) -> None:
        if self._ctx is not None:
            self._ctx.detach()
            self._ctx = None


class DeviceBuffer:
    """``nbytes`` of device memory, freed by ``free()`` or when collected."""

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            msg = f"device buffer size must be > 0, got {nbytes}"
            raise BackendError(msg)
        cuda = import_pycuda_driver()
        self.nbytes = int(nbytes)
        self._alloc: Any = checked(f"alloc of {nbytes} bytes", lambda: cuda.mem_alloc(self.nbytes))

    @property
    def ptr(self) -> int:
        if self._alloc is None:
            msg = "device buffer used after free()"
            raise BackendError(msg)
        return int(self._alloc)

    def free(self) -> None:
        if self._alloc is not None:
            self._alloc.free()
            self._alloc = None


class DeviceView:
    """``nbytes`` at a device address owned by someone else (an engine's output, a slot's tensor):
    usable wherever a DeviceBuffer is read or written, never freed through it."""

    def __init__(self, ptr: int, nbytes: int) -> None:
        self.ptr = int(ptr)
        self.nbytes = int(nbytes)


class HostBuffer:
    """A page-locked numpy array (fast, asynchronous copies); ``mapped=True`` also maps it into the
    device address space (``device_ptr``), the zero-copy path on a Jetson."""

    def __init__(self, shape: tuple[int, ...], dtype: npt.DTypeLike, mapped: bool = False) -> None:
        cuda = import_pycuda_driver()
        flags = cuda.host_alloc_flags.DEVICEMAP if mapped else 0
        self.array: npt.NDArray[Any] = checked(
            "page-locked alloc", lambda: cuda.pagelocked_empty(shape, np.dtype(dtype), mem_flags=flags)
        )
        self.mapped = mapped

    @property
    def device_ptr(self) -> int:
        if not self.mapped:
            msg = "host buffer is not mapped into the device (create it with mapped=True)"
            raise BackendError(msg)
        base: Any = self.array.base  # pycuda's HostAllocation behind the array
        return int(checked("host pointer mapping", base.get_device_pointer))

    def free(self) -> None:
        base = getattr(self.array, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()


class Stream:
    def __init__(self) -> None:
        cuda = import_pycuda_driver()
        self._stream: Any = checked("stream create", cuda.Stream)

    @property
    def handle(self) -> int:
        """The cudaStream_t as an int: what ``execute_async_v3`` takes."""
        return int(self._stream.handle)

    @property
    def raw(self) -> Any:
        return self._stream

    def synchronize(self) -> None:
        checked("stream synchronize", self._stream.synchronize)

    def wait(self, event: Event) -> None:
        """Work queued on this stream after this call starts once ``event`` has completed."""
        checked("stream wait event", lambda: self._stream.wait_for_event(event.raw))


class Event:
    def __init__(self) -> None:
        cuda = import_pycuda_driver()
        self.raw: Any = checked("event create", cuda.Event)

    def record(self, stream: Stream) -> Event:
        checked("event record", lambda: self.raw.record(stream.raw))
        return self

    def synchronize(self) -> None:
        checked("event synchronize", self.raw.synchronize)

    def elapsed_ms(self, start: Event) -> float:
        return float(checked("event elapsed time", lambda: start.raw.time_till(self.raw)))


def copy_to_device(dst: DeviceBuffer | DeviceView, src: npt.NDArray[Any], stream: Stream) -> None:
    cuda = import_pycuda_driver()
    if src.nbytes > dst.nbytes:
        msg = f"host array of {src.nbytes} bytes does not fit a device buffer of {dst.nbytes}"
        raise BackendError(msg)
    if not src.flags.c_contiguous:  # a temporary copy could be freed before the async copy reads it
        msg = "copy_to_device needs a C-contiguous source array"
        raise BackendError(msg)
    checked("host-to-device copy", lambda: cuda.memcpy_htod_async(dst.ptr, src, stream.raw))


def copy_to_host(dst: npt.NDArray[Any], src: DeviceBuffer | DeviceView, stream: Stream) -> None:
    cuda = import_pycuda_driver()
    if dst.nbytes > src.nbytes:
        msg = f"host array of {dst.nbytes} bytes is larger than the device buffer of {src.nbytes}"
        raise BackendError(msg)
    if not dst.flags.c_contiguous:
        msg = "copy_to_host needs a C-contiguous destination array"
        raise BackendError(msg)
    checked("device-to-host copy", lambda: cuda.memcpy_dtoh_async(dst, src.ptr, stream.raw))
