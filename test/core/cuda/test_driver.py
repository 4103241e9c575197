"""core/cuda/driver.py on a real CUDA GPU (skips where pycuda or a GPU is absent, as here in CI).
Run on the lent GPU machine with scripts/gpu_tests.sh; results in benchmarks/results/."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bevfusion_ros.core.cuda import driver as bc
from bevfusion_ros.core.errors import BackendError


@pytest.fixture(scope="module")
def ctx():  # type: ignore[no-untyped-def]
    try:
        c = bc.CudaContext(0)
    except BackendError as exc:
        pytest.skip(f"no usable CUDA device: {exc}")
    yield c
    c.release()


def test_roundtrip_through_device_on_a_stream(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.active():
        src = bc.HostBuffer((6, 3, 128, 352), np.float32)
        src.array[...] = np.random.default_rng(0).standard_normal(src.array.shape, np.float32)
        dev = bc.DeviceBuffer(src.array.nbytes)
        out = bc.HostBuffer(src.array.shape, np.float32)
        s = bc.Stream()
        bc.copy_to_device(dev, src.array, s)
        bc.copy_to_host(out.array, dev, s)
        s.synchronize()
        np.testing.assert_array_equal(out.array, src.array)
        dev.free()
        with pytest.raises(BackendError, match="used after free"):
            _ = dev.ptr


def test_event_orders_work_across_streams(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.active():
        n = 64 << 20  # 256 MiB of float32: long enough that an unordered read would see old data
        a = bc.HostBuffer((n,), np.float32)
        a.array[...] = 7.0
        b = bc.HostBuffer((n,), np.float32)
        b.array[...] = 0.0
        dev = bc.DeviceBuffer(a.array.nbytes)
        s1, s2 = bc.Stream(), bc.Stream()
        bc.copy_to_device(dev, a.array, s1)
        done = bc.Event().record(s1)
        s2.wait(done)
        bc.copy_to_host(b.array, dev, s2)
        s2.synchronize()
        assert float(b.array.min()) == 7.0 and float(b.array.max()) == 7.0


def test_context_is_usable_from_other_threads(ctx) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            with ctx.active():
                x = np.full(1 << 20, seed, np.int32)
                d = bc.DeviceBuffer(x.nbytes)
                y = np.empty_like(x)
                s = bc.Stream()
                bc.copy_to_device(d, x, s)
                bc.copy_to_host(y, d, s)
                s.synchronize()
                assert (y == seed).all()
                d.free()
                del s  # pycuda objects must go while their context is current (else a cleanup warning)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_mapped_host_memory_is_visible_to_the_device(ctx) -> None:  # type: ignore[no-untyped-def]
    if not ctx.can_map_host_memory:
        pytest.skip("device cannot map host memory")
    with ctx.active():
        h = bc.HostBuffer((1024,), np.float32, mapped=True)
        h.array[...] = np.arange(1024, dtype=np.float32)
        out = np.empty(1024, np.float32)
        import pycuda.driver as cuda

        cuda.memcpy_dtoh(out, h.device_ptr)  # the device reads the host buffer through its mapping
        np.testing.assert_array_equal(out, h.array)


def test_bad_sizes_and_devices_are_clear_errors(ctx) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BackendError, match="does not exist"):
        bc.CudaContext(99)
    with ctx.active():
        small = bc.DeviceBuffer(16)
        with pytest.raises(BackendError, match="does not fit"):
            bc.copy_to_device(small, np.zeros(8, np.float32), bc.Stream())
        with pytest.raises(BackendError, match="C-contiguous"):
            bc.copy_to_device(bc.DeviceBuffer(64), np.zeros((4, 4), np.float32)[:, ::2], bc.Stream())
        with pytest.raises(BackendError, match="size must be > 0"):
            bc.DeviceBuffer(0)
    print(f"device {ctx.name}, compute capability {ctx.compute_capability}, integrated {ctx.integrated}")
