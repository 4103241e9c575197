"""ONNX Runtime backend: the reference backend, and what CI runs.

``backend`` is the ``Backend``; a stage whose ONNX graph holds TensorRT-plugin ops (a sparse-
convolution LiDAR encoder) runs through ``partitioned``, which hands those nodes to the CPU
implementations in ``plugin_ops`` and everything else to ONNX Runtime.
"""

from bevfusion_ros.core.backends.onnxruntime.backend import OnnxRuntimeBackend

__all__ = ["OnnxRuntimeBackend"]
