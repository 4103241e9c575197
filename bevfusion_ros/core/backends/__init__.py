"""Inference backends, one module per runtime, each implementing ``core.pipeline.backend.Backend``.

The pipeline creates them by name through that module's registry, so importing the pipeline never
imports a runtime (TensorRT, ONNX Runtime): each is loaded when a backend of its name is created.
"""
