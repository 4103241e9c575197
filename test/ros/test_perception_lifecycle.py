"""Lifecycle transitions of the perception node, in process: configure fails cleanly on a bad model or
calibration and succeeds once fixed; activate creates the I/O, deactivate and cleanup release it."""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from bevfusion_ros.ros.perception_node import PerceptionNode


@pytest.fixture
def context():  # type: ignore[no-untyped-def]
    """A context of its own: nodes here never meet the default context's global executor, which
    other tests spin (destroying a lifecycle node's services once hung on a handle it held)."""
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory, frame_dir) -> Path:  # type: ignore[no-untyped-def]
    import yaml

    from bevfusion_ros.tools.bags.writer import calibration_dict
    from bevfusion_ros.tools.data.nuscenes_frame import load_frame

    path = tmp_path_factory.mktemp("calib") / "calibration.yaml"
    path.write_text(yaml.safe_dump(calibration_dict(load_frame(frame_dir, decode_images=False))))
    return path


def topics_subscribed(node) -> set[str]:  # type: ignore[no-untyped-def]
    return {s.topic_name for s in node.subscriptions}


def diagnostics_now(node) -> dict[str, tuple[int, str]]:  # type: ignore[no-untyped-def]
    """What the node's diagnostic_updater would publish now: task name -> (level, message)."""
    from diagnostic_updater import DiagnosticStatusWrapper

    runs = {t.name: t.run(DiagnosticStatusWrapper()) for t in node.updater.tasks}
    return {name: (int.from_bytes(s.level, "little"), s.message) for name, s in runs.items()}


def test_configure_activate_deactivate_cleanup(context, calibration, tmp_path) -> None:  # type: ignore[no-untyped-def]
    node = PerceptionNode(
        context=context,
        parameter_overrides=[
            Parameter("calibration_file", value=str(calibration)),
            Parameter("model", value=str(tmp_path / "missing.yaml")),
        ],
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.pipeline is None
        node.set_parameters([Parameter("model", value="")])  # back to the bundled model
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.pipeline is not None and node.current_rig is not None
        assert "/lidar/points" not in topics_subscribed(node)
        assert "/bevfusion_perception/detections" in {p.topic_name for p in node.publishers}  # made, disabled
        # configured, not active: diagnostics say so (WARN) instead of going stale
        assert diagnostics_now(node) == {
            "inputs": (1, "not subscribed: the node is not active"),
            "sync": (1, "no frames: the node is not active"),
            "processing": (0, "no frame processed yet"),
            "sensor modes": (0, "no frame yet"),
        }
        assert "/diagnostics" in {p.topic_name for p in node.publishers}

        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        subs = topics_subscribed(node)
        assert "/lidar/points" in subs and "/cameras/cam_front/image_raw" in subs
        assert "/cameras/cam_back_left/camera_info" in subs
        pubs = {p.topic_name for p in node.publishers}
        assert "/bevfusion_perception/detections" in pubs and "/bevfusion_perception/map/divider" in pubs
        now = diagnostics_now(node)
        assert now["inputs"][0] == 2 and "/lidar/points" in now["inputs"][1]  # no LiDAR yet: ERROR, named
        assert now["output rate"] == (2, "No events recorded.")  # FrequencyStatus while active

        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert "/lidar/points" not in topics_subscribed(node)
        assert "output rate" not in diagnostics_now(node)
        # lifecycle publishers: the topics stay while inactive (disabled), as in ros2/demos' talker
        assert "/bevfusion_perception/detections" in {p.topic_name for p in node.publishers}

        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS  # and again
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.pipeline is None
        assert "/bevfusion_perception/detections" not in {p.topic_name for p in node.publishers}
        assert "/diagnostics" not in {p.topic_name for p in node.publishers}
        # configured again after cleanup: the updater's parameters are declared anew, not twice
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert set(diagnostics_now(node)) == {"inputs", "sync", "processing", "sensor modes"}
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"calibration_file": ""}, "'calibration_file' is empty"),
        ({"sync_policy": "exact"}, "'sync_policy' = 'exact' is not one of"),
        ({"backend": "nope"}, "nope"),
        ({"image_topics": ["/only/one"]}, "image_topics has 1 entries"),
    ],
)
def test_configure_failure_names_the_problem(context, calibration, params, fragment, caplog) -> None:  # type: ignore[no-untyped-def]
    overrides = [Parameter("calibration_file", value=str(calibration))]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = PerceptionNode(context=context, parameter_overrides=overrides)
    errors: list[str] = []
    node.get_logger().error = lambda msg, **kw: errors.append(msg)  # type: ignore[method-assign]
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert len(errors) == 1 and fragment in errors[0], errors
    finally:
        node.destroy_node()


def test_bad_calibration_fails_configure(context, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "calibration.yaml"
    bad.write_text(
        "cameras:\n  - {name: cam_front, width: 1600, height: 900, K: [[1,0,0],[0,1,0],[0,0,1]], "
        "lidar2cam: [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}\n"
    )
    node = PerceptionNode(context=context, parameter_overrides=[Parameter("calibration_file", value=str(bad))])
    errors: list[str] = []
    node.get_logger().error = lambda msg, **kw: errors.append(msg)  # type: ignore[method-assign]
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "not a rigid transform" in errors[0]
    finally:
        node.destroy_node()


def _configure_errors(node) -> list[str]:  # type: ignore[no-untyped-def]
    errors: list[str] = []
    node.get_logger().error = lambda msg, **kw: errors.append(msg)  # type: ignore[method-assign]
    return errors


def test_tensorrt_backend_refuses_missing_engines_then_builds_when_allowed(  # type: ignore[no-untyped-def]
    trt_fakes, context, calibration, tmp_path
) -> None:
    """With the FAKE TensorRT: configure names the missing engine, builds it with
    allow_engine_build, runs frames through the engines, and gpu_pipeline needs the CUDA kernels."""
    overrides = [
        Parameter("calibration_file", value=str(calibration)),
        Parameter("backend", value="tensorrt"),
        Parameter("engine_dir", value=str(tmp_path / "engines")),
    ]
    node = PerceptionNode(context=context, parameter_overrides=overrides)
    errors = _configure_errors(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "camera.backbone.engine does not exist" in errors[0] and "build-engines" in errors[0]
        node.set_parameters([Parameter("allow_engine_build", value=True)])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, errors
        assert trt_fakes.build_stats["builds"] == 6
        assert (tmp_path / "engines" / "fuser.engine.json").is_file()
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        node.set_parameters(
            [Parameter("allow_engine_build", value=False), Parameter("gpu_pipeline", value="pipelined")]
        )
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "pycuda.compiler" in errors[-1] and trt_fakes.build_stats["builds"] == 6  # engines reused
    finally:
        node.destroy_node()


def test_gpu_pipeline_needs_tensorrt_and_model_must_match_engine_config(context, calibration, tmp_path) -> None:  # type: ignore[no-untyped-def]
    node = PerceptionNode(
        context=context,
        parameter_overrides=[
            Parameter("calibration_file", value=str(calibration)),
            Parameter("gpu_pipeline", value="sequential"),
        ],
    )
    errors = _configure_errors(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "'gpu_pipeline' = 'sequential' needs backend 'tensorrt'" in errors[0]
        int8 = Path(__file__).resolve().parents[2] / "engines" / "reference" / "model.int8.yaml"
        node.set_parameters(
            [
                Parameter("gpu_pipeline", value="off"),
                Parameter("backend", value="tensorrt"),
                Parameter("model", value=str(int8)),
            ]
        )
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "engine_config" in errors[1] and "fp16.yaml" in errors[1]
    finally:
        node.destroy_node()


def test_every_parameter_has_a_value_for_ros2_param(context) -> None:  # type: ignore[no-untyped-def]
    """`ros2 param dump` lists only parameters with a value; the empty lists must have one, typed."""
    from rclpy.parameter import Parameter as P

    from bevfusion_ros.core.perception.config import PARAMETERS

    node = PerceptionNode(context=context, parameter_overrides=[P("camera_frames", value=["a", "b"])])
    try:
        params = {p.name: p for p in node.get_parameters([s.name for s in PARAMETERS])}
        assert params["camera_names"].type_ == P.Type.STRING_ARRAY and params["camera_names"].value == []
        assert params["camera_frames"].value == ["a", "b"]  # an override is kept
        assert all(p.type_ != P.Type.NOT_SET for p in params.values())
    finally:
        node.destroy_node()


def test_parameters_are_refused_with_a_reason_once_configured(context, calibration) -> None:  # type: ignore[no-untyped-def]
    node = PerceptionNode(context=context, parameter_overrides=[Parameter("calibration_file", value=str(calibration))])
    try:
        assert node.set_parameters([Parameter("sync_slop", value=0.05)])[0].successful  # unconfigured: fine
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        (result,) = node.set_parameters([Parameter("sync_slop", value=0.07)])
        assert not result.successful and "sync_slop take(s) effect at configure" in result.reason
        assert node.get_parameter("sync_slop").value == 0.05
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.set_parameters([Parameter("sync_slop", value=0.07)])[0].successful  # cleaned up: fine again
    finally:
        node.destroy_node()
