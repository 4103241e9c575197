"""CUDA: the driver wrapper, the runtime-stage kernels and the streamed GPU pipeline."""
