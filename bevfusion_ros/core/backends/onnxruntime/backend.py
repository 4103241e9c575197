"""The ONNX Runtime backend; a stage that declares a TensorRT plugin runs through ``partitioned``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bevfusion_ros.core.backends.onnxruntime.partitioned import PartitionedSession, inference_session, plugin_op_names
from bevfusion_ros.core.errors import BackendError
from bevfusion_ros.core.model import ModelSpec, Stage, StageKind
from bevfusion_ros.core.optional import import_onnxruntime
from bevfusion_ros.core.pipeline.backend import Arrays, Backend

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _plugin_ops_or_none(path: Path) -> list[str]:
    """Why ONNX Runtime refused a file, when the reason is plugin ops (best effort: onnx may be absent)."""
    try:
        return plugin_op_names(path)
    except Exception:  # the file is unreadable or onnx is missing: ONNX Runtime's own message stands
        return []


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self, model: ModelSpec, stage: Stage, threads: int = 0, providers: tuple[str, ...] = ("CPUExecutionProvider",)
    ) -> None:
        super().__init__(model, stage)
        self.threads = threads
        self.providers = providers
        self._session: Any = None

    def activate_impl(self) -> None:
        ort = import_onnxruntime()
        path = self.model.path(self.stage)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        if self.stage.plugins:
            # the plugin's ops run from their CPU implementations between ONNX Runtime sessions
            try:
                self._session = PartitionedSession(path, ort, opts, self.providers)
            except BackendError as exc:
                msg = f"stage {self.stage.name} (TensorRT plugins {', '.join(self.stage.plugins)}): {exc}"
                raise BackendError(msg) from None
            except Exception as exc:  # onnx raises its own errors for unreadable files
                msg = f"stage {self.stage.name}: cannot read {path}: {exc}"
                raise BackendError(msg) from None
        else:
            try:
                self._session = inference_session(ort, str(path), opts, self.providers)
            except Exception as exc:  # ORT raises its own untyped errors for unreadable or invalid files
                msg = f"stage {self.stage.name}: ONNX Runtime cannot load {path}: {exc}"
                ops = _plugin_ops_or_none(path)
                if ops:
                    msg = (
                        f"stage {self.stage.name}: {path.name} holds TensorRT-plugin ops ({', '.join(ops)}); name "
                        "the plugin library with the stage's `plugin:` key in the model YAML"
                    )
                raise BackendError(msg) from None
        self._check_io()
        if isinstance(self._session, PartitionedSession):
            self._check_sparse_grid(self._session.sparse_shapes())

    def _check_sparse_grid(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """A sparse encoder must expect its coordinates on the grid the voxelize stage puts them on."""
        for stage in self.model.stages:
            if stage.kind is not StageKind.VOXELIZE or stage.voxels is None:
                continue
            coords = stage.outputs[-1].name
            if coords in shapes and shapes[coords] != stage.voxels.grid.shape:
                expected = list(shapes[coords])
                msg = (
                    f"stage {self.stage.name}: its sparse encoder reads {coords} on spatial_shape {expected} "
                    f"(z, y, x) but stage {stage.name}'s voxel_size and point_cloud_range give "
                    f"{list(stage.voxels.grid.shape)}"
                )
                raise BackendError(msg)

    def _check_io(self) -> None:
        """The ONNX file must have exactly the tensors the YAML declares, with compatible shapes."""
        for kind, specs, actual in (
            ("input", self.stage.inputs, self._session.get_inputs()),
            ("output", self.stage.outputs, self._session.get_outputs()),
        ):
            by_name = {a.name: a for a in actual}
            for spec in specs:
                if spec.name not in by_name:
                    msg = (
                        f"stage {self.stage.name}: the model YAML names {kind} {spec.name} but "
                        f"{self.model.path(self.stage).name} has {', '.join(by_name)}"
                    )
                    raise BackendError(msg)
                a = by_name[spec.name]
                if not spec.matches(a.shape) or _ORT_TYPES.get(a.type) != spec.dtype:
                    msg = (
                        f"stage {self.stage.name}: {kind} {spec.name} is {list(spec.shape)} {spec.dtype} in the "
                        f"model YAML but {a.shape} {a.type} in {self.model.path(self.stage).name}"
                    )
                    raise BackendError(msg)

    def infer_impl(self, feeds: Arrays) -> Arrays:
        names = [t.name for t in self.stage.outputs]
        try:
            outs = self._session.run(names, feeds)
        except BackendError as exc:
            msg = f"stage {self.stage.name}: {exc}"
            raise BackendError(msg) from None
        except Exception as exc:
            msg = f"stage {self.stage.name}: ONNX Runtime failed: {exc}"
            raise BackendError(msg) from None
        return dict(zip(names, outs, strict=True))

    def deactivate_impl(self) -> None:
        self._session = None
