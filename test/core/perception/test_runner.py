"""core/perception/runner.py: results keep their frame's tag in pipelined mode, a waiting frame is flushed,
a calibration change hands out the frame computed with the old geometry first."""

from __future__ import annotations

import numpy as np
import pytest

from bevfusion_ros.core.errors import ConfigError
from bevfusion_ros.core.perception import runner as frame_runner
from bevfusion_ros.core.pipeline.pipeline import Pipeline


class FakeStreamed:
    """FAKE of core.streamed.StreamedPipeline (it needs a CUDA GPU and nvcc): same submit/flush
    contract, each result labelled with the points it came from."""

    def __init__(self, spec, engines, rig, pipelined, image_order):  # type: ignore[no-untyped-def]
        self.pipelined, self.last = pipelined, None

    def submit(self, images, points):  # type: ignore[no-untyped-def]
        mine = float(np.asarray(points)[0, 0])
        if not self.pipelined:
            return mine
        prev, self.last = self.last, mine
        return prev

    def flush(self):  # type: ignore[no-untyped-def]
        prev, self.last = self.last, None
        return prev

    def free(self) -> None:
        pass


class _Ctx:
    def active(self):  # type: ignore[no-untyped-def]
        import contextlib

        return contextlib.nullcontext()


@pytest.fixture
def streamed(monkeypatch, spec):  # type: ignore[no-untyped-def]
    import bevfusion_ros.core.backends.tensorrt as trt_backend
    import bevfusion_ros.core.cuda.streamed as streamed_mod

    monkeypatch.setattr(streamed_mod, "StreamedPipeline", FakeStreamed)

    class Backend(trt_backend.TensorRTBackend):
        context = _Ctx()  # type: ignore[assignment]

        def __init__(self, model, stage):  # type: ignore[no-untyped-def]
            self.stage = stage

    class StageByStage(Pipeline):
        """The stage-by-stage path a frame without a sensor takes: labelled, not run."""

        def __call__(self, images, points, keep_tensors=False):  # type: ignore[no-untyped-def]
            return "stage by stage"

    pipe = StageByStage.__new__(StageByStage)
    pipe.spec = spec
    pipe.backends = {s.name: Backend(spec, s) for s in spec.stages if s.kind == "onnx"}
    return pipe


IMAGES = [np.zeros((2, 2, 3), np.uint8), None]  # one camera masked: still a full frame


def test_pipelined_results_keep_their_tags_and_flush(streamed) -> None:  # type: ignore[no-untyped-def]
    r = frame_runner.StreamedRunner(streamed, rig=None, pipelined=True)  # type: ignore[arg-type]
    pts = [np.full((1, 4), float(i)) for i in range(4)]
    assert r.run(IMAGES, pts[0], "f0") == [] and r.pending
    assert r.run(IMAGES, pts[1], "f1") == [("f0", 0.0)]
    assert r.run(IMAGES, pts[2], "f2") == [("f1", 1.0)]
    assert r.set_calibration(None) == [("f2", 2.0)] and not r.pending  # type: ignore[arg-type]
    assert r.run(IMAGES, pts[3], "f3") == []
    assert r.flush() == [("f3", 3.0)] and r.flush() == []


def test_sequential_returns_each_frame_at_once(streamed) -> None:  # type: ignore[no-untyped-def]
    r = frame_runner.StreamedRunner(streamed, rig=None, pipelined=False)  # type: ignore[arg-type]
    assert r.run(IMAGES, np.full((1, 4), 7.0), "a") == [("a", 7.0)] and not r.pending


def test_a_frame_without_a_sensor_hands_out_the_waiting_one_then_runs_stage_by_stage(streamed) -> None:  # type: ignore[no-untyped-def]
    r = frame_runner.StreamedRunner(streamed, rig=None, pipelined=True)  # type: ignore[arg-type]
    assert r.run(IMAGES, np.full((1, 4), 1.0), "full") == []
    assert r.run(IMAGES, None, "camera only") == [("full", 1.0), ("camera only", "stage by stage")]
    assert r.run([None, None], np.full((1, 4), 2.0), "lidar only") == [("lidar only", "stage by stage")]
    assert not r.pending


def test_streamed_runner_refuses_other_backends(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="needs backend 'tensorrt'"):
        frame_runner.StreamedRunner(Pipeline(spec, "null"), rig=None, pipelined=True)  # type: ignore[arg-type]
