"""FAKE of the part of ``pycuda.driver`` that bevfusion_ros uses, for machines without a GPU.

It exists because CI has no CUDA device; on the GPU machine the same tests run against real pycuda
(test/core/cuda). It mirrors pycuda 2026.1's names and signatures and, where it matters for correctness,
CUDA's semantics:

* Device memory is an address space of its own: ``mem_alloc`` returns an allocation whose ``int()``
  is an address; reading or writing outside a live allocation raises ``LogicError`` (a real GPU
  would fault or corrupt memory silently).
* Asynchronous work is *really* deferred: copies and kernels queued on a stream run only when
  something waits for them (``Stream.synchronize``, ``Event.synchronize``, ``Context.synchronize``)
  or when another stream that waits on an event of this stream runs. So a host read before a sync
  sees stale data, a host buffer overwritten before its copy ran sends the new data, and a stream
  that forgot to wait for another stream's event reads memory that was never written - the bugs a
  real GPU shows only sometimes are shown every time here.
* ``Context.push``/``pop`` keep a per-thread stack; allocating without an active context raises,
  as pycuda does.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np


class Error(Exception):
    pass


class LogicError(Error):
    pass


class MemoryError_(Error):
    pass


MemoryError = MemoryError_


class device_attribute:
    INTEGRATED = "INTEGRATED"
    CAN_MAP_HOST_MEMORY = "CAN_MAP_HOST_MEMORY"
    MULTIPROCESSOR_COUNT = "MULTIPROCESSOR_COUNT"


class host_alloc_flags:
    PORTABLE = 1
    DEVICEMAP = 2
    WRITECOMBINED = 4


# What the fake device reports; tests may change it (e.g. an Orin: integrated, "8.7").
DEVICE_PROPERTIES: dict[str, Any] = {
    "name": "FAKE CUDA device (test/fakes)",
    "compute_capability": (8, 7),
    "INTEGRATED": 1,
    "CAN_MAP_HOST_MEMORY": 1,
    "MULTIPROCESSOR_COUNT": 16,
    "count": 1,
}

_state = threading.local()
_lock = threading.RLock()
_initialised = False


def _stack() -> list[Context]:
    if not hasattr(_state, "stack"):
        _state.stack = []
    s: list[Context] = _state.stack
    return s


def _require_context(what: str) -> None:
    if not _stack():
        msg = f"cu{what} failed: invalid device context (no context is active on this thread)"
        raise LogicError(msg)


def init(flags: int = 0) -> None:
    global _initialised
    _initialised = True


class Device:
    def __init__(self, number: int) -> None:
        if not _initialised:
            msg = "cuDeviceGet failed: initialization error (call cuda.init() first)"
            raise LogicError(msg)
        if not 0 <= number < DEVICE_PROPERTIES["count"]:
            msg = f"cuDeviceGet failed: invalid device ordinal {number}"
            raise LogicError(msg)
        self.number = number

    @staticmethod
    def count() -> int:
        if not _initialised:
            msg = "cuDeviceGetCount failed: initialization error"
            raise LogicError(msg)
        return int(DEVICE_PROPERTIES["count"])

    def name(self) -> str:
        return str(DEVICE_PROPERTIES["name"])

    def compute_capability(self) -> tuple[int, int]:
        cc: tuple[int, int] = DEVICE_PROPERTIES["compute_capability"]
        return cc

    def get_attribute(self, attr: str) -> int:
        return int(DEVICE_PROPERTIES[attr])

    def total_memory(self) -> int:
        return 32 << 30

    def retain_primary_context(self) -> Context:
        return Context(self)


class Context:
    def __init__(self, device: Device) -> None:
        self.device = device
        self.detached = False

    def push(self) -> None:
        if self.detached:
            msg = "cuCtxPushCurrent failed: context was detached"
            raise LogicError(msg)
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        if not _stack():
            msg = "cuCtxPopCurrent failed: no context on this thread"
            raise LogicError(msg)
        _stack().pop()

    def detach(self) -> None:
        self.detached = True

    @staticmethod
    def synchronize() -> None:
        _require_context("CtxSynchronize")
        for s in list(Stream.all_streams.values()):
            s._run_all()

    @staticmethod
    def get_current() -> Context | None:
        return _stack()[-1] if _stack() else None


# ---------------------------------------------------------------- device memory
_next_address = itertools.count(0x7F0000000000, 1 << 24)
_allocations: dict[int, np.ndarray] = {}  # base address -> uint8 storage


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        self.address = next(_next_address)
        self.nbytes = nbytes
        # Fresh device memory is garbage on a GPU; a fixed pattern makes "never written" visible.
        _allocations[self.address] = np.full(nbytes, 0xA5, np.uint8)

    def __int__(self) -> int:
        return self.address

    def __index__(self) -> int:
        return self.address

    def free(self) -> None:
        _allocations.pop(self.address, None)


def mem_alloc(nbytes: int) -> DeviceAllocation:
    _require_context("MemAlloc")
    if nbytes <= 0:
        msg = f"cuMemAlloc failed: invalid argument ({nbytes} bytes)"
        raise LogicError(msg)
    return DeviceAllocation(int(nbytes))


def device_view(address: int, nbytes: int) -> np.ndarray:
    """The fake device's bytes at [address, address + nbytes) (raises outside live allocations)."""
    for base, store in _allocations.items():
        if base <= address and address + nbytes <= base + store.size:
            return store[address - base : address - base + nbytes]
    msg = f"illegal address: {nbytes} bytes at {address:#x} are not inside one live device allocation"
    raise LogicError(msg)


class _PinnedBase:
    def __init__(self, nbytes: int, mapped: bool) -> None:
        self.storage = np.zeros(max(nbytes, 1), np.uint8)
        self.mapped = mapped
        self.freed = False
        self._device: DeviceAllocation | None = None
        if mapped:
            # Mapped host memory is visible to the device: register it as device memory that
            # shares the host storage.
            self._device = DeviceAllocation.__new__(DeviceAllocation)
            self._device.address = next(_next_address)
            self._device.nbytes = self.storage.size
            _allocations[self._device.address] = self.storage

    def get_device_pointer(self) -> int:
        if self._device is None:
            msg = "cuMemHostGetDevicePointer failed: memory was not allocated with DEVICEMAP"
            raise LogicError(msg)
        return self._device.address

    def free(self) -> None:
        if self._device is not None:
            self._device.free()
        self.freed = True


def pagelocked_empty(shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> np.ndarray:
    _require_context("MemHostAlloc")
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    base = _PinnedBase(nbytes, bool(mem_flags & host_alloc_flags.DEVICEMAP))
    # pycuda exposes the allocation as ``array.base``; the subclass below does the same.
    return _PinnedArray(base.storage[:nbytes].view(dtype).reshape(shape), base)


class _PinnedArray(np.ndarray):
    def __new__(cls, arr: np.ndarray, base: _PinnedBase) -> _PinnedArray:
        obj = arr.view(cls)
        obj._pinned = base
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self._pinned = getattr(obj, "_pinned", None)

    @property
    def base(self) -> Any:  # type: ignore[override]
        return self._pinned


def _is_pinned(arr: np.ndarray) -> bool:
    return isinstance(arr, _PinnedArray) and arr._pinned is not None and not arr._pinned.freed


# ---------------------------------------------------------------- streams and events
class Stream:
    all_streams: ClassVar[dict[int, Stream]] = {}
    _handles = itertools.count(0x5000)

    def __init__(self, flags: int = 0) -> None:
        _require_context("StreamCreate")
        self.handle = next(self._handles)
        self.queue: list[Callable[[], None]] = []
        self.executed = 0  # number of queue entries run so far
        self.log: list[str] = []  # what ran, in order (tests read it)
        Stream.all_streams[self.handle] = self

    def enqueue(self, op: Callable[[], None], what: str = "op") -> int:
        """Queue ``op``; returns its position (events mark positions)."""
        with _lock:

            def tagged() -> None:
                op()
                self.log.append(what)

            self.queue.append(tagged)
            return len(self.queue)

    def _run_until(self, position: int) -> None:
        with _lock:
            while self.executed < position:
                op = self.queue[self.executed]
                self.executed += 1
                op()

    def _run_all(self) -> None:
        self._run_until(len(self.queue))

    def synchronize(self) -> None:
        self._run_all()

    def is_done(self) -> bool:
        return self.executed == len(self.queue)

    def wait_for_event(self, event: Event) -> None:
        if event.stream is None:
            return  # an event never recorded counts as complete (CUDA semantics)
        src, pos = event.stream, event.position
        self.enqueue(lambda: src._run_until(pos), f"wait({src.handle})")


def stream_from_handle(handle: int) -> Stream:
    if handle == 0:
        msg = "the fake has no legacy default stream: pass a Stream's handle"
        raise LogicError(msg)
    if handle not in Stream.all_streams:
        msg = f"invalid resource handle: no stream {handle:#x}"
        raise LogicError(msg)
    return Stream.all_streams[handle]


class Event:
    _clock = itertools.count()

    def __init__(self, flags: int = 0) -> None:
        self.stream: Stream | None = None
        self.position = 0
        self.time = 0.0

    def record(self, stream: Stream | None = None) -> Event:
        if stream is None:
            msg = "the fake needs an explicit stream for Event.record"
            raise LogicError(msg)
        self.stream = stream
        self.position = stream.enqueue(self._stamp, "event")
        return self

    def _stamp(self) -> None:
        self.time = float(next(self._clock))

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream._run_until(self.position)

    def query(self) -> bool:
        return self.stream is None or self.stream.executed >= self.position

    def time_till(self, end: Event) -> float:
        return end.time - self.time


# ---------------------------------------------------------------- copies
def _host_bytes(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr).reshape(-1).view(np.uint8)


def memcpy_htod_async(dest: int, src: np.ndarray, stream: Stream | None = None) -> None:
    _require_context("MemcpyHtoDAsync")
    if stream is None:
        memcpy_htod(dest, src)
        return
    if not _is_pinned(src):
        # pycuda/CUDA accept pageable memory but then copy synchronously; code that wants overlap
        # must use page-locked buffers, so the fake treats it as the bug it is.
        msg = "memcpy_htod_async from pageable memory: use a page-locked (pagelocked_empty) buffer"
        raise LogicError(msg)
    nbytes = src.nbytes
    address = int(dest)
    device_view(address, nbytes)  # a bad address fails at enqueue, as the driver does

    def op() -> None:
        device_view(address, nbytes)[:] = _host_bytes(src)

    stream.enqueue(op, "htod")


def memcpy_dtoh_async(dest: np.ndarray, src: int, stream: Stream | None = None) -> None:
    _require_context("MemcpyDtoHAsync")
    if stream is None:
        memcpy_dtoh(dest, src)
        return
    if not _is_pinned(dest):
        msg = "memcpy_dtoh_async into pageable memory: use a page-locked (pagelocked_empty) buffer"
        raise LogicError(msg)
    nbytes = dest.nbytes
    address = int(src)
    device_view(address, nbytes)

    def op() -> None:
        _host_bytes(dest)[:] = device_view(address, nbytes)

    stream.enqueue(op, "dtoh")


def memcpy_dtod_async(dest: int, src: int, size: int, stream: Stream | None = None) -> None:
    _require_context("MemcpyDtoDAsync")
    d, s = int(dest), int(src)

    def op() -> None:
        device_view(d, size)[:] = device_view(s, size)

    if stream is None:
        op()
    else:
        stream.enqueue(op, "dtod")


def memcpy_htod(dest: int, src: np.ndarray) -> None:
    _require_context("MemcpyHtoD")
    Context.synchronize()
    device_view(int(dest), src.nbytes)[:] = _host_bytes(np.ascontiguousarray(src))


def memcpy_dtoh(dest: np.ndarray, src: int) -> None:
    _require_context("MemcpyDtoH")
    Context.synchronize()
    _host_bytes(dest)[:] = device_view(int(src), dest.nbytes)


def memset_d8_async(dest: int, data: int, count: int, stream: Stream | None = None) -> None:
    _require_context("MemsetD8Async")
    d = int(dest)

    def op() -> None:
        device_view(d, count)[:] = data

    if stream is None:
        op()
    else:
        stream.enqueue(op, "memset")


def reset() -> None:
    """Forget all fake device state (between tests)."""
    global _initialised
    _allocations.clear()
    Stream.all_streams.clear()
    _state.__dict__.clear()
    _initialised = False
