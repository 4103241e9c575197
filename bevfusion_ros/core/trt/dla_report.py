"""Which layers of a stage run on the DLA and which fell back to the GPU, from three sources:

* before the build, ``IBuilderConfig.can_run_on_DLA`` for every network layer (the ONNX-level view);
* the builder's verbose log, whose "Layers Running on DLA/GPU" sections list the final placement
  (DLA layers appear fused as ``{ForeignNode[first...last]}``);
* the built engine's inspector JSON (``profiling_verbosity = DETAILED``), kept as the record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

_DLA_HEADER = "Layers Running on DLA"
_GPU_HEADER = "Layers Running on GPU"


@dataclass(frozen=True)
class DlaReport:
    stage: str
    dla_core: int
    network_layers: tuple[tuple[str, str, bool], ...]  # (name, layer type, can run on DLA)
    dla_layers: tuple[str, ...]  # from the build log
    gpu_layers: tuple[str, ...]
    engine_layers: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def fallback(self) -> tuple[tuple[str, str], ...]:
        return tuple((n, t) for n, t, ok in self.network_layers if not ok)

    @property
    def dla_fraction(self) -> float:
        n = len(self.network_layers)
        return (n - len(self.fallback)) / n if n else 0.0

    def summary(self) -> str:
        n = len(self.network_layers)
        line = (
            f"{self.stage}: {n - len(self.fallback)}/{n} network layers on DLA core {self.dla_core}; "
            f"engine: {len(self.dla_layers)} DLA subgraph(s), {len(self.gpu_layers)} GPU layer(s)"
        )
        if self.fallback:
            kinds = sorted({t for _, t in self.fallback})
            line += f"; GPU fallback for {len(self.fallback)} layer(s) of type {', '.join(kinds)}"
        return line

    def markdown(self) -> str:
        rows = [f"### {self.stage} (DLA core {self.dla_core})", "", self.summary(), ""]
        if self.fallback:
            rows += ["| layer that falls back to GPU | type |", "|---|---|"]
            rows += [f"| {n} | {t} |" for n, t in self.fallback]
            rows.append("")
        if self.dla_layers:
            rows += ["DLA subgraphs in the engine:", ""] + [f"- `{x}`" for x in self.dla_layers] + [""]
        return "\n".join(rows)

    def to_json(self) -> str:
        d = asdict(self)
        d["fallback"] = [list(x) for x in self.fallback]
        d["summary"] = self.summary()
        return json.dumps(d, indent=1)


def parse_placement_log(messages: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (DLA, GPU) layer lists of a TensorRT verbose build log."""
    dla: list[str] = []
    gpu: list[str] = []
    current: list[str] | None = None
    for msg in messages:
        text = msg.strip()
        if _DLA_HEADER in text:
            current = dla
        elif _GPU_HEADER in text:
            current = gpu
        elif current is not None:
            for tag in ("[DlaLayer] ", "[GpuLayer] "):
                if text.startswith(tag):
                    current.append(text[len(tag) :])
                    break
            else:
                if text.startswith("{ForeignNode[") or (current is gpu and ": " in text and text[0].isupper()):
                    current.append(text)
                else:
                    current = None  # the section ended
    return tuple(dla), tuple(gpu)


def parse_inspector(text: str) -> tuple[dict[str, Any], ...]:
    """Layers of ``get_engine_information(JSON)``; names only unless built with DETAILED verbosity."""
    try:
        raw = json.loads(text)
    except ValueError:
        return ()
    layers = raw.get("Layers", []) if isinstance(raw, dict) else []
    return tuple(x if isinstance(x, dict) else {"Name": str(x)} for x in layers)
