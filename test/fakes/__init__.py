"""FAKES of APIs that cannot exist on CI machines (TensorRT, a CUDA device): see each module."""
