"""Run the package's TensorRT helpers on the real ``tensorrt`` module on the path (a subprocess of
test_real_bindings.py) and print what they did as JSON. CUDA is the FAKE pycuda driver (no GPU
here); TensorRT is the real module with stub libraries, so nothing reaches a Builder or Runtime."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # test/, for fakes
    from fakes import fake_pycuda_driver

    pycuda = types.ModuleType("pycuda")
    pycuda.driver = fake_pycuda_driver  # type: ignore[attr-defined]
    sys.modules.update({"pycuda": pycuda, "pycuda.driver": fake_pycuda_driver})
    import numpy as np
    import tensorrt as trt

    from bevfusion_ros.core.cuda import driver as cuda
    from bevfusion_ros.core.errors import BackendError
    from bevfusion_ros.core.trt import common
    from bevfusion_ros.core.trt.calibrator import make_entropy_calibrator

    out: dict[str, Any] = {"version": trt.__version__}
    logger, records = common.make_logger(trt, echo="internal_error")
    severities = ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")
    for name in severities:
        logger.log(getattr(trt.ILogger, name), name)
    out["logger"] = [list(r) for r in records]
    out["is_ilogger"] = isinstance(logger, trt.ILogger)
    numpy_types = {n: d for n, d in trt.DataType.__members__.items() if n not in ("FP8", "INT4", "BF16")}
    out["np_dtype"] = {name: str(common.np_dtype(trt, d)) for name, d in numpy_types.items()}
    out["network_flags"] = common.network_flags(trt)
    out["enum_name"] = common.enum_name(trt.BuilderFlag.FP16)

    def failing():  # type: ignore[no-untyped-def]
        yield {"x": np.ones((1, 4), np.float32)}
        raise BackendError("copy failed")

    ctx = cuda.CudaContext(0)
    with ctx.active():
        cache = Path(sys.argv[1]) / "stage.cache"
        cal = make_entropy_calibrator(trt, failing(), cache)
        out["calibrator_is_real_subclass"] = isinstance(cal, trt.IInt8EntropyCalibrator2)
        out["algorithm"] = common.enum_name(cal.get_algorithm())
        out["batch_size"] = cal.get_batch_size()
        first = cal.get_batch(["x"])
        out["first_batch_pointers"] = len(first or [])
        out["second_batch"] = cal.get_batch(["x"])  # the iterator raised: None, as end of batches
        cal.write_calibration_cache(b"TRT-100300-EntropyCalibration2\nx: 3c010204\n")
        out["cache_written_after_error"] = cache.exists()
        out["read_cache"] = cal.read_calibration_cache()
        try:
            cal.raise_if_failed("stage")
            out["raised"] = ""
        except BackendError as exc:
            out["raised"] = str(exc)
        cal.free()
    ctx.release()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
