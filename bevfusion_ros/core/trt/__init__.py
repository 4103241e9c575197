"""TensorRT: engine build configs, building and caching engines, INT8 calibration, DLA reports."""
