"""Inference backends: one small contract (base.Backend), one module per runtime, imported lazily."""

from __future__ import annotations

from bevfusion_ros.core.backends.base import Backend, BackendFactory, create_backend, registered_backends

__all__ = ["Backend", "BackendFactory", "create_backend", "registered_backends"]
