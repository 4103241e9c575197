"""An ONNX graph with TensorRT-plugin nodes, run by ONNX Runtime plus the CPU plugin ops.

ONNX Runtime's Python API cannot register an op written in Python: onnxruntime-extensions' PyOps
live in their own fixed domain and pass every tensor through Python lists, and a compiled custom-op
library needs ONNX Runtime's C headers, which no pinned wheel ships. So the graph is cut instead:
each maximal run of standard nodes becomes one ONNX Runtime session (the real runtime, every
standard op), and each plugin node runs its implementation from ``plugin_ops`` between them. The
cut happens once, at activate, with every value's element type known; a plugin op with no CPU
implementation is refused there, naming the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bevfusion_ros.core.backends.onnxruntime.plugin_ops import PLUGIN_OPS, PluginOp, implemented
from bevfusion_ros.core.errors import BackendError, BevFusionError
from bevfusion_ros.core.optional import import_onnx


def inference_session(ort: Any, model: str | bytes, options: Any, providers: Sequence[str]) -> Any:
    """``ort.InferenceSession``; before ONNX Runtime 1.21 without its MatMul+BatchNormalization fusion, which turns a
    MatMul of rank > 2 into a Gemm that fails shape inference ("First input does not have rank 2",
    microsoft/onnxruntime#22512; engines/examples/pointpillars_tiny's lidar.pfn; 1.17-1.20 are
    what Ubuntu 24.04 / JetPack 7 pip installs may hold)."""
    major, minor = (int(x) for x in ort.__version__.split(".")[:2])
    kwargs = {"disabled_optimizers": ["MatMul_BatchNormalization_Fusion"]} if (major, minor) < (1, 21) else {}
    return ort.InferenceSession(model, options, providers=list(providers), **kwargs)


# domains ONNX Runtime runs itself; a node of any other domain is a plugin op
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
# ONNX element type -> the type string ONNX Runtime's NodeArg reports
_TYPE_NAMES = {
    1: "tensor(float)",
    10: "tensor(float16)",
    6: "tensor(int32)",
    7: "tensor(int64)",
    2: "tensor(uint8)",
    9: "tensor(bool)",
}


@dataclass(frozen=True)
class GraphValue:
    """A graph input or output, shaped like ONNX Runtime's ``NodeArg`` (name, shape, type)."""

    name: str
    shape: list[int | str | None]
    type: str


@dataclass
class _Segment:
    nodes: list[Any]
    plugin: PluginOp | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    session: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)


def plugin_op_names(path: Path) -> list[str]:
    """The distinct non-standard ops of an ONNX file ("domain::op_type")."""
    onnx = import_onnx()
    model = onnx.load(str(path), load_external_data=False)
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in STANDARD_DOMAINS})


def _graph_value(value_info: Any) -> GraphValue:
    tensor = value_info.type.tensor_type
    dims: list[int | str | None] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
    ]
    return GraphValue(value_info.name, dims, _TYPE_NAMES.get(tensor.elem_type, f"onnx type {tensor.elem_type}"))


class PartitionedSession:
    """The part of ``onnxruntime.InferenceSession`` the backend uses: get_inputs, get_outputs, run."""

    def __init__(self, path: Path, ort: Any, options: Any, providers: Sequence[str]) -> None:
        onnx = import_onnx()
        model = onnx.load(str(path))
        graph = model.graph
        self._path = path
        initializers = {t.name: t for t in graph.initializer}
        self._inputs = [_graph_value(v) for v in graph.input if v.name not in initializers]
        self._outputs = [_graph_value(v) for v in graph.output]
        self._segments = self._cut(graph.node)
        self._wire(graph)
        types = self._known_types(onnx, model, initializers)
        # plugin nodes may read constants (their filters): those come from the initializers
        self._constants = {
            name: onnx.numpy_helper.to_array(initializers[name])
            for segment in self._segments
            if segment.plugin
            for name in segment.inputs
            if name in initializers
        }
        opsets = [o for o in model.opset_import if o.domain in STANDARD_DOMAINS]
        for index, segment in enumerate(self._segments):
            if segment.plugin is None:
                segment.session = self._session(
                    onnx, ort, options, providers, model, index, opsets, types, initializers
                )
            else:
                node = segment.nodes[0]
                segment.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                in_types = [types.get(n, 0) for n in node.input]
                types.update(zip(node.output, segment.plugin.output_types(in_types), strict=False))
        self._last_use = self._last_uses()

    def _node_label(self, node: Any) -> str:
        return f"node {node.name or node.output[0]!r} ({node.domain}::{node.op_type}) in {self._path.name}"

    def _cut(self, nodes: Sequence[Any]) -> list[_Segment]:
        segments: list[_Segment] = []
        for node in nodes:
            if node.domain in STANDARD_DOMAINS:
                if segments and segments[-1].plugin is None:
                    segments[-1].nodes.append(node)
                else:
                    segments.append(_Segment([node]))
                continue
            plugin = PLUGIN_OPS.get((node.domain, node.op_type))
            if plugin is None:
                msg = f"{self._node_label(node)} has no CPU implementation registered (implemented: {implemented()})"
                raise BackendError(msg)
            segments.append(_Segment([node], plugin))
        return segments

    def _wire(self, graph: Any) -> None:
        """Each segment's external inputs, and the outputs something after it (or the caller) reads."""
        consumed_later: set[str] = {v.name for v in graph.output}
        for segment in reversed(self._segments):
            segment.outputs = [o for node in segment.nodes for o in node.output if o and o in consumed_later]
            seen: set[str] = set()
            inputs: list[str] = []
            internal: set[str] = set()
            for node in segment.nodes:
                for name in node.input:
                    if name and name not in internal and name not in seen:
                        seen.add(name)
                        inputs.append(name)
                internal.update(o for o in node.output if o)
            segment.inputs = inputs
            consumed_later |= set(segment.inputs)

    @staticmethod
    def _known_types(onnx: Any, model: Any, initializers: Mapping[str, Any]) -> dict[str, int]:
        types = {name: t.data_type for name, t in initializers.items()}
        for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
            if value.type.tensor_type.elem_type:
                types[value.name] = value.type.tensor_type.elem_type
        return types

    def _session(
        self,
        onnx: Any,
        ort: Any,
        options: Any,
        providers: Sequence[str],
        model: Any,
        index: int,
        opsets: Sequence[Any],
        types: dict[str, int],
        initializers: Mapping[str, Any],
    ) -> Any:
        segment = self._segments[index]
        helper = onnx.helper
        inits = [initializers[n] for n in segment.inputs if n in initializers]
        feeds = [n for n in segment.inputs if n not in initializers]
        segment.inputs = feeds
        missing = [n for n in feeds if not types.get(n)]
        if missing:
            msg = f"{self._path.name}: cannot type {', '.join(missing)} before part {index} of the graph"
            raise BackendError(msg)
        graph = helper.make_graph(
            segment.nodes,
            f"{model.graph.name or 'graph'}_part{index}",
            [helper.make_tensor_value_info(n, types[n], None) for n in feeds],
            [onnx.ValueInfoProto(name=n) for n in segment.outputs],
            initializer=inits,
        )
        part = helper.make_model(graph, opset_imports=opsets, ir_version=model.ir_version)
        part = onnx.shape_inference.infer_shapes(part)
        for value in (*part.graph.value_info, *part.graph.output):
            if value.type.tensor_type.elem_type:
                types[value.name] = value.type.tensor_type.elem_type
        try:
            return inference_session(ort, part.SerializeToString(), options, providers)
        except Exception as exc:  # ORT raises its own untyped errors
            msg = f"{self._path.name}: ONNX Runtime cannot load part {index} of the graph: {exc}"
            raise BackendError(msg) from None

    def _last_uses(self) -> dict[str, int]:
        last: dict[str, int] = {}
        for index, segment in enumerate(self._segments):
            for name in segment.inputs:
                last[name] = index
        return last

    def sparse_shapes(self) -> dict[str, tuple[int, ...]]:
        """Graph input -> the ``spatial_shape`` of the plugin nodes that read it directly (the grid a
        sparse encoder expects its voxel coordinates on)."""
        inputs = {v.name for v in self._inputs}
        shapes: dict[str, tuple[int, ...]] = {}
        for segment in self._segments:
            if segment.plugin is not None and "spatial_shape" in segment.attrs:
                for name in segment.nodes[0].input:
                    if name in inputs:
                        shapes[name] = tuple(int(v) for v in segment.attrs["spatial_shape"])
        return shapes

    def get_inputs(self) -> list[GraphValue]:
        return list(self._inputs)

    def get_outputs(self) -> list[GraphValue]:
        return list(self._outputs)

    def run(self, names: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        values: dict[str, Any] = {**self._constants, **feeds}
        keep = set(names)
        for index, segment in enumerate(self._segments):
            args = [values.get(n) for n in segment.inputs]
            if segment.plugin is None:
                outs = segment.session.run(segment.outputs, dict(zip(segment.inputs, args, strict=True)))
                values.update(zip(segment.outputs, outs, strict=True))
            else:
                node = segment.nodes[0]
                try:
                    outs = segment.plugin.run([values.get(n) if n else None for n in node.input], segment.attrs)
                except BevFusionError as exc:
                    msg = f"{self._node_label(node)}: {exc}"
                    raise BackendError(msg) from None
                values.update((n, v) for n, v in zip(node.output, outs, strict=False) if n)
            for name in segment.inputs:
                if self._last_use.get(name) == index and name not in keep and name not in self._constants:
                    values.pop(name, None)
        return [values[n] for n in names]
