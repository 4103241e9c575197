"""Optional third-party imports for the core, each in one place, imported only when used."""

from __future__ import annotations

import functools
from types import ModuleType

from bevfusion_ros.core.errors import DependencyError


@functools.cache
def cv2_or_none() -> ModuleType | None:
    """OpenCV where installed, else None: the CPU image pre-processing's fast pooling; without it
    the same sums come from numpy."""
    try:
        import cv2
    except ImportError:
        return None
    module: ModuleType = cv2
    return module


def import_cv2() -> ModuleType:
    """OpenCV, needed for JPEG/PNG decode and encode."""
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - exercised only where OpenCV is absent
        msg = (
            "OpenCV is needed to decode compressed images: install python3-opencv (ROS distro) "
            f"or opencv-python-headless (pip). Import failed: {exc}"
        )
        raise DependencyError(msg) from exc
    return cv2


def import_pycuda_driver() -> ModuleType:
    """``pycuda.driver``, for the TensorRT backend and the CUDA kernels (never ``pycuda.autoinit``)."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        msg = (
            "pycuda is needed for the TensorRT backend: on the Orin `pip install pycuda` (builds against "
            f"JetPack's CUDA); see scripts/gpu_tests.sh for a build from the sdist. Import failed: {exc}"
        )
        raise DependencyError(msg) from exc
    return cuda  # type: ignore[no-any-return]


def import_tensorrt() -> ModuleType:
    """TensorRT's Python bindings (JetPack ships them as python3-libnvinfer; 10.3 on JetPack 6.1/6.2)."""
    try:
        import tensorrt
    except ImportError as exc:
        msg = (
            "TensorRT is needed for the tensorrt backend and build-engines: on the Orin it comes with JetPack "
            f"(apt install python3-libnvinfer; in a venv use --system-site-packages). Import failed: {exc}"
        )
        raise DependencyError(msg) from exc
    return tensorrt  # type: ignore[no-any-return]


def import_pycuda_compiler() -> ModuleType:
    """``pycuda.compiler`` (runtime compilation of core/cuda/kernels.cu through nvcc)."""
    import_pycuda_driver()
    try:
        import pycuda.compiler as compiler
    except ImportError as exc:
        msg = f"pycuda.compiler is unavailable (pycuda without nvcc support?): {exc}"
        raise DependencyError(msg) from exc
    return compiler  # type: ignore[no-any-return]


def import_pynvml() -> ModuleType:
    """nvidia-ml-py, the monitor's source on a desktop or datacenter NVIDIA GPU (extra ``nvml``)."""
    try:
        import pynvml
    except ImportError as exc:
        msg = f"the nvml source needs nvidia-ml-py (pip install nvidia-ml-py): {exc}"
        raise DependencyError(msg) from exc
    return pynvml  # type: ignore[no-any-return]


def import_onnxruntime() -> ModuleType:
    """ONNX Runtime, the reference backend (on a Jetson: NVIDIA's onnxruntime-gpu wheel for JetPack)."""
    try:
        import onnxruntime
    except ImportError as exc:
        msg = f"the onnxruntime backend needs the onnxruntime package (pip install onnxruntime): {exc}"
        raise DependencyError(msg) from exc
    module: ModuleType = onnxruntime
    return module


def import_onnx() -> ModuleType:
    """The ``onnx`` package, to read a graph whose plugin ops ONNX Runtime cannot run by itself."""
    try:
        import onnx
    except ImportError as exc:
        msg = (
            "a stage with TensorRT-plugin ops runs in ONNX Runtime only with the onnx package, which splits "
            f"its graph (pip install onnx): {exc}"
        )
        raise DependencyError(msg) from exc
    return onnx


@functools.cache
def scipy_sparse() -> ModuleType | None:
    """``scipy.sparse`` where installed (python3-scipy on a vehicle), else None: the CPU bevpool's
    fast path; without it the same sums come from numpy."""
    try:
        import scipy.sparse as sparse
    except ImportError:
        return None
    module: ModuleType = sparse
    return module
