"""Put the FAKE ``tensorrt`` and ``pycuda.driver`` into ``sys.modules`` for one test, then remove them.

Only for machines where the real packages are absent (CI); where real pycuda exists (the GPU
machine) tests that need the fake CUDA ask for it explicitly and never mix the two.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fakes import fake_pycuda_driver, fake_tensorrt, fake_tensorrt_build, fake_tensorrt_runtime

_NAMES = ("tensorrt", "pycuda", "pycuda.driver")


@contextmanager
def fakes(trt_version: str = "10.3.0", dla_cores: int = 2, **device: Any) -> Iterator[types.SimpleNamespace]:
    saved = {n: sys.modules.get(n) for n in _NAMES}
    saved_props = dict(fake_pycuda_driver.DEVICE_PROPERTIES)
    pycuda_pkg = types.ModuleType("pycuda")
    pycuda_pkg.driver = fake_pycuda_driver  # type: ignore[attr-defined]
    sys.modules.update({"tensorrt": fake_tensorrt, "pycuda": pycuda_pkg, "pycuda.driver": fake_pycuda_driver})
    fake_tensorrt.__version__ = trt_version
    fake_tensorrt.NUM_DLA_CORES = dla_cores
    fake_tensorrt._LOADED_PLUGIN_OPS.clear()
    fake_pycuda_driver.DEVICE_PROPERTIES.update(device)
    fake_pycuda_driver.reset()
    for stats in (fake_tensorrt_build.STATS, fake_tensorrt_runtime.STATS):
        for k in stats:
            stats[k] = 0
    try:
        yield types.SimpleNamespace(
            trt=fake_tensorrt,
            cuda=fake_pycuda_driver,
            build_stats=fake_tensorrt_build.STATS,
            run_stats=fake_tensorrt_runtime.STATS,
        )
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod
        fake_pycuda_driver.DEVICE_PROPERTIES.clear()
        fake_pycuda_driver.DEVICE_PROPERTIES.update(saved_props)
        fake_pycuda_driver.reset()
