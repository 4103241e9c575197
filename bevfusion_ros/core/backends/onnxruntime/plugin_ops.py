"""CPU implementations of the TensorRT-plugin ops real exports contain, for ONNX Runtime.

Each op is keyed by its ONNX (domain, op_type) and mirrors what its TensorRT plugin computes, so a
model that builds on the Orin with the plugin library runs here with the same numbers. Today: the
sparse convolution of Autoware's open plugins (``autoware_tensorrt_plugins``, built on spconv),
the contract written down in engines/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.errors import BackendError
from bevfusion_ros.core.pipeline.sparse_conv import SparseConvGeometry, implicit_gemm, rule_book

Array = npt.NDArray[Any]
# ONNX TensorProto element types used here (onnx.TensorProto.FLOAT, INT32)
ONNX_FLOAT, ONNX_INT32 = 1, 6


@dataclass(frozen=True)
class PluginOp:
    domain: str
    op_type: str
    run: Callable[[Sequence[Array | None], Mapping[str, Any]], list[Array]]
    # ONNX element types of the outputs, from those of the inputs (for typing the graph around it)
    output_types: Callable[[Sequence[int]], list[int]]

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}::{self.op_type}"


def _triple(attrs: Mapping[str, Any], key: str, default: Sequence[int] | None = None) -> tuple[int, int, int]:
    value = attrs.get(key, default)
    if value is None or len(value) != 3:
        msg = f"attribute {key} must be three ints (z, y, x), got {value!r}"
        raise BackendError(msg)
    z, y, x = (int(v) for v in value)
    return z, y, x


def _get_indice_pairs(inputs: Sequence[Array | None], attrs: Mapping[str, Any]) -> list[Array]:
    if int(attrs.get("transpose", 0)):
        msg = "transposed (inverse) sparse convolution has no CPU implementation; BEVFusion's SparseEncoder uses none"
        raise BackendError(msg)
    geometry = SparseConvGeometry(
        spatial_shape=_triple(attrs, "spatial_shape"),
        ksize=_triple(attrs, "ksize"),
        stride=_triple(attrs, "stride", (1, 1, 1)),
        padding=_triple(attrs, "padding", (0, 0, 0)),
        dilation=_triple(attrs, "dilation", (1, 1, 1)),
        subm=bool(int(attrs.get("subm", 0))),
    )
    indices = inputs[0]
    if indices is None:
        msg = "GetIndicePairsImplicitGemm needs its indices input"
        raise BackendError(msg)
    book = rule_book(indices, geometry, batch_size=int(attrs.get("batch_size", 1)))
    count = np.asarray(len(book.out_indices), np.int32)
    return [book.out_indices, book.pair_fwd, book.pair_mask[:, None], book.mask_argsort, count]


def _implicit_gemm(inputs: Sequence[Array | None], attrs: Mapping[str, Any]) -> list[Array]:
    # The plugin runs spconv's implicit GEMM with no activation, bias or output scaling whatever the
    # act_*/output_* attributes say (bias and ReLU are separate ONNX nodes); so does this.
    features, filters, pair_fwd = inputs[0], inputs[1], inputs[2]
    if features is None or filters is None or pair_fwd is None:
        msg = "ImplicitGemm needs features, filters and pair_fwd"
        raise BackendError(msg)
    return [implicit_gemm(features, filters, pair_fwd)]


PLUGIN_OPS: dict[tuple[str, str], PluginOp] = {
    (op.domain, op.op_type): op
    for op in (
        PluginOp("autoware", "GetIndicePairsImplicitGemm", _get_indice_pairs, lambda _types: [ONNX_INT32] * 5),
        PluginOp("autoware", "ImplicitGemm", _implicit_gemm, lambda types: [types[0]]),
    )
}


def implemented() -> str:
    return ", ".join(sorted(op.qualified_name for op in PLUGIN_OPS.values()))
