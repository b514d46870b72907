"""yolo_tracker in this process: internal errors in the frame path and the timers drop a frame,
never the node.

The node runs in-process (its own context) with a tiny YOLOv8-like ONNX model that finds one
person in any frame (ONNX Runtime runs it; what is tested is the node, not detection); frames are
handed to its image callback directly, and a stage is made to fail by replacing one of the node's
parts. What crosses processes is tested in test_tracker_node.py.
"""

from __future__ import annotations

import gc
import logging
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image

from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.inference.tensorrt.builder import PROGRESS_LOG
from yolo_trt_ros.ros import tracker_node
from yolo_trt_ros.ros.diagnostics import Level, status
from yolo_trt_ros.ros.image_conversion import array_to_image
from yolo_trt_ros.ros.outputs import Outputs
from yolo_trt_ros.ros.tracker_node import TrackerNode

DOMAIN_ID = 1 + zlib.crc32(Path(__file__).name.encode()) % 200


@pytest.fixture(scope="module")
def person_model(make_yolo_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make_yolo_onnx``: one person box at 320x320, scored by the mean of the frame's first
    channel; classes person and car."""
    return make_yolo_onnx(
        tmp_path_factory.mktemp("model") / "person.onnx",
        np.array([[160.0, 160.0, 60.0, 120.0]]),
        np.array([[1.0], [0.0]]),
        input_hw=(320, 320),
        metadata={"names": "{0: 'person', 1: 'car'}"},
    )


@pytest.fixture
def make_node(person_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    # Nothing here crosses processes: FastDDS's default transports, whose teardown never hangs on a
    # TCP channel.
    monkeypatch.setenv("FASTDDS_BUILTIN_TRANSPORTS", "DEFAULT")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    nodes: list[TrackerNode] = []

    def make(**parameters: object) -> TrackerNode:
        overrides = [
            Parameter(name, value=value)
            for name, value in {"model_path": str(person_model), **parameters}.items()
        ]
        nodes.append(TrackerNode(context=context, parameter_overrides=overrides))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()
    nodes.clear()
    # whatever rclpy objects are left go while their context is alive, not in a later test
    gc.collect()
    rclpy.try_shutdown(context=context)


def frame(mot_dir: Path, index: int = 1, frame_id: str = "camera") -> Image:
    msg = array_to_image(cv2.imread(str(mot_dir / "img1" / f"{index:06d}.jpg")), "bgr8", Image())
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
    return msg


def succeeds(result: TransitionCallbackReturn) -> bool:
    return result == TransitionCallbackReturn.SUCCESS


def active(make_node, **parameters: object) -> TrackerNode:
    node = make_node(**parameters)
    assert succeeds(node.trigger_configure()), node._error
    assert succeeds(node.trigger_activate()), node._error
    return node


def deliver(node: TrackerNode, msg: Image) -> None:
    """Hand ``msg`` to the node as its first camera's subscription does; wait until it is
    published or dropped."""
    camera = node.rig.cameras[0]
    assert node.rig.loop is not None, "node not active"
    node.rig.loop.deliver(camera, camera.frames.receive(msg, None))
    assert node.rig.loop.wait_idle(60)


def _raise(exc: Exception):
    def fail(*_: object, **__: object) -> None:
        raise exc

    return fail


@pytest.mark.parametrize("stage", ["detect", "track", "build", "publish", "annotate"])
def test_an_exception_in_any_stage_drops_the_frame_and_is_counted_under_its_stage(
    make_node,
    mot_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    stage: str,
) -> None:
    node = active(make_node)
    outputs = node.rig.cameras[0].outputs
    monkeypatch.setattr(outputs, "wants_annotated", lambda: True)  # as if rviz were watching
    published: list[object] = []
    for publisher in (outputs._detections, outputs._annotated):
        monkeypatch.setattr(publisher, "publish", published.append)
    broken = {
        "detect": (node.pipeline.detector.backend, "infer"),
        "track": (node.pipeline.tracker, "update"),
        "build": (outputs, "build"),
        "publish": (outputs._detections, "publish"),
        "annotate": (outputs, "annotate"),
    }[stage]
    good = getattr(*broken)
    # A ValueError from inside the pipeline is an internal error, not a bad camera frame; rclpy
    # raises RCLError when it cannot publish (e.g. "cannot publish data" under load).
    error = RCLError(f"{stage} broke") if stage == "publish" else ValueError(f"{stage} broke")
    monkeypatch.setattr(*broken, _raise(error))
    for _ in range(3):
        deliver(node, frame(mot_dir))
    snap = node.rig.cameras[0].stats.snapshot(time.monotonic())
    assert snap.failed_by_stage == {stage: 3}
    assert snap.rejected == 0 and snap.processed == 0
    level, message = status(node.rig.cameras[0].state(node.node_state()), snap.problem_ages_s)
    text = f"{type(error).__name__}: {stage} broke"
    assert level == Level.WARN and message == f"frames failing in {stage}: {text}"
    log = capfd.readouterr().err
    lines = [line for line in log.splitlines() if f"[failed.{stage}:" in line]
    assert len(lines) == 1 and "1 so far" in lines[0], log  # throttled
    assert f"{stage} failed: {text}" in log and "Traceback (most recent call last)" in log

    monkeypatch.setattr(*broken, good)
    published.clear()
    deliver(node, frame(mot_dir))
    assert node.rig.cameras[0].stats.snapshot(time.monotonic()).processed == 1
    assert len(published) == 2 and published[0].detections  # detections, then the annotated image


def test_a_frame_finishing_after_ctrl_c_is_let_go_quietly(
    make_node, mot_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """On Ctrl-C rclpy's signal handler shuts the rcl context down first; the node is destroyed
    after spinning stops, and a frame the output thread publishes in between fails ("publisher's
    context is invalid"). That frame is let go without an error or a failure count."""
    node = active(make_node)
    deliver(node, frame(mot_dir))
    assert node.rig.cameras[0].stats.snapshot(time.monotonic()).processed == 1
    with node.context.handle:
        node.context.handle.shutdown()  # what the signal handler does; nodes stay
    assert not node.context.ok()
    capfd.readouterr()
    deliver(node, frame(mot_dir, 2))
    snap = node.rig.cameras[0].stats.snapshot(time.monotonic())
    assert snap.failed_by_stage == {} and snap.rejected == 0
    assert "failed" not in capfd.readouterr().err


def test_every_transition_says_what_it_did(make_node, capfd: pytest.CaptureFixture[str]) -> None:
    node = make_node()
    transitions = {
        node.trigger_configure: "configured: model ",
        node.trigger_activate: "active: subscribed to /image_raw",
        node.trigger_deactivate: "inactive: unsubscribed",
        node.trigger_cleanup: "unconfigured: model released",
    }
    for trigger, logged in transitions.items():
        capfd.readouterr()
        assert succeeds(trigger()), node._error
        assert logged in capfd.readouterr().err


def test_a_problem_warns_only_while_it_recurs(
    make_node, mot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = active(make_node)
    monkeypatch.setattr(node.pipeline.tracker, "update", _raise(RuntimeError("boom")))
    deliver(node, frame(mot_dir))
    ages = node.rig.cameras[0].stats.snapshot(time.monotonic()).problem_ages_s
    assert status(node.rig.cameras[0].state(node.node_state()), ages)[0] == Level.WARN
    assert status(
        node.rig.cameras[0].state(node.node_state()),
        {kind: age + 10.0 for kind, age in ages.items()},
    ) == (
        Level.OK,
        "running",
    )


def test_bad_input_is_rejected_not_failed(make_node, mot_dir: Path) -> None:
    node = active(make_node)
    msg = frame(mot_dir)
    msg.encoding = "16UC1"
    deliver(node, msg)
    snap = node.rig.cameras[0].stats.snapshot(time.monotonic())
    assert snap.rejected_by_reason == {"unsupported_encoding": 1} and snap.failed_by_stage == {}


def test_no_publisher_check_runs_without_subscription_publisher_count(
    make_node, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Humble's Subscription has no get_publisher_count (rclpy < 4): the input check must not need
    it."""
    monkeypatch.delattr(Subscription, "get_publisher_count", raising=False)
    node = active(make_node, input_timeout=0.5, input_topic="/resilience_no_camera")
    node.rig.cameras[0].input._since -= 1.0
    node.diagnostics.publish()
    assert "no publisher on /resilience_no_camera" in capfd.readouterr().err
    assert status(node.rig.cameras[0].state(node.node_state()), {})[0] == Level.WARN


def test_the_diagnostics_timer_survives_an_exception(
    make_node, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    node = make_node()
    monkeypatch.setattr(node, "node_state", _raise(KeyError("values")))
    node.diagnostics.publish()
    assert "diagnostics failed: KeyError" in capfd.readouterr().err


def test_a_failed_activate_is_shown_on_diagnostics(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node()
    assert succeeds(node.trigger_configure())
    monkeypatch.setattr(
        node.rig.cameras[0].input, "subscribe", _raise(RuntimeError("rmw refused the reader"))
    )
    assert not succeeds(node.trigger_activate())
    level, message = status(node.rig.cameras[0].state(node.node_state()), {})
    assert level == Level.ERROR
    assert "activate failed: cannot subscribe to 'image_raw'" in message
    assert "rmw refused the reader" in message
    monkeypatch.undo()
    assert succeeds(node.trigger_activate())
    assert status(node.rig.cameras[0].state(node.node_state()), {}) == (Level.OK, "running")


def diagnostics_of(node: TrackerNode) -> tuple[Level, str]:
    ((_, report),) = node._report()
    return report.level, report.message


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"input_topic": "not a valid topic!"}, "input topic 'not a valid topic!' is not a valid"),
        (
            {"input_topics": ["/a/image_raw", "/b/image_raw"], "camera_names": ["front cam", "b"]},
            "camera name 'front cam' (its outputs' namespace) is not a valid ROS name",
        ),
    ],
)
def test_names_rclpy_refuses_fail_configure_with_the_reason(
    make_node, parameters: dict[str, Any], reason: str
) -> None:
    node = make_node(**parameters)
    assert not succeeds(node.trigger_configure())
    level, message = diagnostics_of(node)
    assert level == Level.ERROR and reason in message, message
    assert node.rig is None and node.pipeline is None
    fixed = {"input_topic": "image_raw", "camera_names": ["front", "b"]}
    results = node.set_parameters([Parameter(k, value=fixed[k]) for k in parameters if k in fixed])
    assert all(result.successful for result in results)
    assert succeeds(node.trigger_configure()), node._error


def test_a_camera_output_rclpy_refuses_fails_configure_and_releases_the_others(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(input_topics=["/a/image_raw", "/b/image_raw", "/c/image_raw"])
    made = []
    create = Outputs.create

    def create_two(outputs: Outputs) -> None:
        if len(made) == 2:
            raise RuntimeError("rcl refused the publisher")
        create(outputs)
        made.append(outputs)

    monkeypatch.setattr(Outputs, "create", create_two)
    assert not succeeds(node.trigger_configure())
    level, message = diagnostics_of(node)
    assert (
        level == Level.ERROR and "cannot create the cameras' outputs: RuntimeError: rcl" in message
    )
    assert node.rig is None and node.pipeline is None
    graph = node.get_publisher_names_and_types_by_node(node.get_name(), "/")
    graph += node.get_service_names_and_types_by_node(node.get_name(), "/")
    left = [name for name, _ in graph if name.startswith(("/a/", "/b/", "/yolo_tracker/a/"))]
    assert left == [], "outputs of the cameras made before the failure stay"
    monkeypatch.undo()
    assert succeeds(node.trigger_configure()), node._error


def test_an_empty_class_list_of_any_array_type_means_all_classes(make_node) -> None:
    """``ros2 param set /yolo_tracker classes "[]"`` arrives as an empty bool array."""
    node = active(make_node)
    for array_type in (
        Parameter.Type.BOOL_ARRAY,
        Parameter.Type.INTEGER_ARRAY,
        Parameter.Type.STRING_ARRAY,
    ):
        assert node.set_parameters([Parameter("classes", Parameter.Type.STRING_ARRAY, ["car"])])[
            0
        ].successful
        assert node.pipeline.detector.config.classes == ("car",)
        assert node.set_parameters([Parameter("classes", array_type, [])])[0].successful, (
            array_type
        )
        assert node.pipeline.detector.config.classes == ()
    result = node.set_parameters([Parameter("classes", Parameter.Type.INTEGER_ARRAY, [1, 2])])[0]
    assert not result.successful and "list of strings" in result.reason


def test_wide_frames_are_detected_tracked_and_drawn(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 x 21,900,000 frame with a detection and an annotated-image subscriber (it killed the
    node)."""
    node = active(make_node)
    monkeypatch.setattr(node.rig.cameras[0].outputs, "wants_annotated", lambda: True)
    published: list[object] = []
    monkeypatch.setattr(
        node.rig.cameras[0].outputs, "_publish", lambda publisher, msg: published.append(msg)
    )
    wide = np.full((1, 21_900_000, 3), 200, np.uint8)
    msg = array_to_image(wide, "bgr8", Image())
    msg.header.stamp.sec = 1
    box = Detections(
        np.array([[1e6, 0, 5e6, 1]], np.float32), np.array([0.9], np.float32), np.array([0])
    )
    monkeypatch.setattr(type(node.pipeline.detector), "__call__", lambda *_: box)
    deliver(node, msg)
    snap = node.rig.cameras[0].stats.snapshot(time.monotonic())
    assert snap.failed_by_stage == {} and snap.processed == 1
    assert published[-1].width == 21_900_000


def test_run_time_sets_are_checked_against_the_other_values(make_node) -> None:
    node = make_node()
    # Unconfigured: each value is checked alone; configure checks the set.
    assert node.set_parameters([Parameter("track_low_thresh", value=0.5)])[0].successful
    assert not succeeds(node.trigger_configure()) and "track_low_thresh" in node._error
    assert node.set_parameters([Parameter("track_low_thresh", value=0.1)])[0].successful
    assert succeeds(node.trigger_configure())
    result = node.set_parameters([Parameter("track_low_thresh", value=0.5)])[0]
    assert not result.successful and "track_low_thresh" in result.reason
    assert node.set_parameters([Parameter("diagnostics_period", value=0.5)])[0].successful
    assert node.diagnostics.period_s == pytest.approx(0.5)


def test_engine_build_progress_is_on_diagnostics_while_configure_runs(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine build blocks configure for minutes: its progress lines reach /diagnostics."""
    node = make_node()
    seen = []
    load = tracker_node.load_pipeline

    def building(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger(PROGRESS_LOG.name).info("building engine: %s started", "Building engine")
        seen.append(status(node.node_state(), {}))
        return load(*args, **kwargs)

    published = []
    monkeypatch.setattr(tracker_node, "load_pipeline", building)
    monkeypatch.setattr(node.diagnostics, "publish", lambda: published.append(node._activity))
    assert succeeds(node.trigger_configure())
    assert seen == [
        (Level.OK, "unconfigured; configuring: building engine: Building engine started")
    ]
    assert published == ["building engine: Building engine started"]
    assert status(node.rig.cameras[0].state(node.node_state()), {}) == (Level.OK, "inactive")
