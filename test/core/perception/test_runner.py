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

    pipe = Pipeline.__new__(Pipeline)
    pipe.spec = spec
    pipe.backends = {s.name: Backend(spec, s) for s in spec.stages if s.kind == "onnx"}
    return pipe


def test_pipelined_results_keep_their_tags_and_flush(streamed) -> None:  # type: ignore[no-untyped-def]
    r = frame_runner.StreamedRunner(streamed, rig=None, pipelined=True)  # type: ignore[arg-type]
    pts = [np.full((1, 4), float(i)) for i in range(4)]
    assert r.run([], pts[0], "f0") == [] and r.pending
    assert r.run([], pts[1], "f1") == [("f0", 0.0)]
    assert r.run([], pts[2], "f2") == [("f1", 1.0)]
    assert r.set_calibration(None) == [("f2", 2.0)] and not r.pending  # type: ignore[arg-type]
    assert r.run([], pts[3], "f3") == []
    assert r.flush() == [("f3", 3.0)] and r.flush() == []


def test_sequential_returns_each_frame_at_once(streamed) -> None:  # type: ignore[no-untyped-def]
    r = frame_runner.StreamedRunner(streamed, rig=None, pipelined=False)  # type: ignore[arg-type]
    assert r.run([], np.full((1, 4), 7.0), "a") == [("a", 7.0)] and not r.pending


def test_streamed_runner_refuses_other_backends(spec) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="needs backend 'tensorrt'"):
        frame_runner.StreamedRunner(Pipeline(spec, "null"), rig=None, pipelined=True)  # type: ignore[arg-type]
