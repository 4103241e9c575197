"""What a fleet task is and what it sends back: compact records, picklable, no images.

A task is a bag, or the frames of one stamped in ``[start_ns, end_ns)``. A slice reads from
``WARMUP_NS`` before its start, through the sync policy and the past-sweep buffer only, so that both
hold at its first frame what a replay of the whole bag holds there; it reads ``LOOKAHEAD_NS`` past
its end so the sync policy completes its last frames as it would mid-bag.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bevfusion_ros.core.eval.agreement import FrameAgreement, FrameQuality
from bevfusion_ros.core.eval.metrics import MapCounts
from bevfusion_ros.core.model import ModelSpec
from bevfusion_ros.core.pipeline.detections import Detections
from bevfusion_ros.core.pipeline.postprocess import Segmentation
from bevfusion_ros.tools.bags.io import LogWindow
from bevfusion_ros.tools.bags.replay import GroundTruth

# A slice's reading margins. Before: longer than the past-sweep window (20 sweeps at 10 Hz at most)
# and the sync policy's waits; after: longer than the sync policy waits for a frame's images.
WARMUP_NS = 3_000_000_000
LOOKAHEAD_NS = 3_000_000_000
EXTREMES = 2  # best and worst frames rendered


@dataclass(frozen=True)
class BagTask:
    """One unit of fleet work: a bag, or the frames of one stamped in ``[start_ns, end_ns)``."""

    bag: Path
    index: int  # position in the fleet: outcomes are scored in this order
    label: str  # the bag as the report names it
    tags: Mapping[str, str] = field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None
    expected_frames: int = 0  # for the progress bar
    span: str = ""  # a manifest's time range, as the report writes it after the bag's name
    score_alone: bool = False  # the fleet's only task of this bag: its worker scores it for the breakdown

    @property
    def sliced(self) -> bool:
        return self.start_ns is not None or self.end_ns is not None

    def owns(self, stamp_ns: int) -> bool:
        return (self.start_ns is None or stamp_ns >= self.start_ns) and (self.end_ns is None or stamp_ns < self.end_ns)

    def window(self) -> LogWindow | None:
        """The log time this task reads (messages are logged at or after their stamps)."""
        if not self.sliced:
            return None
        start = 0 if self.start_ns is None else max(0, self.start_ns - WARMUP_NS)
        end = 2**63 - 1 if self.end_ns is None else self.end_ns + LOOKAHEAD_NS
        return start, end


@dataclass(frozen=True)
class FrameView:
    """What the report draws for one best or worst frame."""

    stamp_ns: int
    points: npt.NDArray[np.float32] | None
    ground_truth: GroundTruth
    detections: Detections
    segmentation: Segmentation | None
    f1: float
    bag: str = ""


@dataclass(frozen=True)
class RunFrame:
    """One run's output on one frame, as the scores need it."""

    detections: Detections
    timings_ms: dict[str, float]
    mode: str
    map_counts: MapCounts | None  # against the frame's map ground truth, when both lie on one grid


@dataclass(frozen=True)
class FrameRecord:
    stamp_ns: int
    ground_truth: Detections | None  # None: the frame is not scored (no ground truth for it)
    outputs: dict[str, RunFrame]  # run name -> its output; a run without one missed the frame
    agreement: dict[str, FrameAgreement]  # compared run -> its agreement with the first run
    quality: FrameQuality | None  # the first run against the ground truth


@dataclass
class BagOutcome:
    """Everything one task sends back; ``error`` says why a bag could not be replayed at all."""

    task: BagTask
    specs: dict[str, ModelSpec] = field(default_factory=dict)  # run name -> its model
    frames: list[FrameRecord] = field(default_factory=list)
    extremes: list[tuple[float, FrameView]] = field(default_factory=list)  # candidates, in frame order
    # run name -> mAP / NDS / mIoU of this bag, scored where it was replayed (a whole bag only)
    bag_scores: dict[str, dict[str, Any]] | None = None
    compute_s: dict[str, float] = field(default_factory=dict)  # run name -> seconds in its runner
    drops: Counter[str] = field(default_factory=Counter)
    sync: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    incomplete: str | None = None  # why the bag was read only in part
    error: str | None = None
    frames_without_gt: int = 0
    wall_s: float = 0.0
