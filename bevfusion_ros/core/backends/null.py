"""The ``null`` backend: zeros of each output's declared shape, no model compute.

For measuring everything around the model (message conversion, sync, pre/post-processing, bevpool,
publishing) on the real graph, e.g. ``backend:=null`` in the node benchmark. Never for perception.
"""

from __future__ import annotations

import numpy as np

from bevfusion_ros.core.errors import BackendError
from bevfusion_ros.core.pipeline.backend import _NP_DTYPES, Arrays, Backend


class NullBackend(Backend):
    name = "null"

    def activate_impl(self) -> None:
        for t in self.stage.outputs:
            if any(d <= 0 for d in t.shape):
                msg = f"null backend: output {t.name} of stage {self.stage.name} has no fixed shape {list(t.shape)}"
                raise BackendError(msg)
        self._outputs: Arrays = {t.name: np.zeros(t.shape, _NP_DTYPES[t.dtype]) for t in self.stage.outputs}

    def infer_impl(self, feeds: Arrays) -> Arrays:
        return {k: v.copy() for k, v in self._outputs.items()}

    def deactivate_impl(self) -> None:
        self._outputs = {}
