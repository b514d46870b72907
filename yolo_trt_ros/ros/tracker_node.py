"""Lifecycle node ``yolo_tracker``: camera images in, vision_msgs/Detection2DArray (+ annotated
image) out. A thin shell (as ros2/demos lifecycle_py) around ``pipeline.FramePipeline``:

- configure: check every parameter (``ros.parameters``; a bad value fails the transition naming
  it), load the model (``backend: auto``: TensorRT when it imports and sees a GPU, else ONNX
  Runtime) and create the publishers. A failed configure or activate is logged and shown on
  /diagnostics (ERROR) until the next successful transition.
- activate: subscribe to ``input_topic`` (default QoS best effort, depth 1: stale frames are
  dropped, not queued); deactivate: unsubscribe; cleanup: free the model.

Frames go through ``ros.frame_handler``; ``ros.input_monitor`` says why none arrive;
``ros.diagnostics`` makes the /diagnostics status. ``~/reset_tracker`` (std_srvs/Trigger)
restarts track IDs at 1. Structural parameters change only while unconfigured, the others at run
time. Between processes on one host, FastDDS needs ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` to
deliver best-effort images.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from yolo_trt_ros.pipeline import FramePipeline
from yolo_trt_ros.ros import diagnostics
from yolo_trt_ros.ros.frame_handler import FrameHandler
from yolo_trt_ros.ros.frame_stats import FrameStats
from yolo_trt_ros.ros.image_conversion import image_frame
from yolo_trt_ros.ros.input_monitor import InputMonitor
from yolo_trt_ros.ros.log_forwarding import RclpyLogHandler
from yolo_trt_ros.ros.log_text import printable
from yolo_trt_ros.ros.outputs import DiagnosticsOutput, Outputs
from yolo_trt_ros.ros.parameters import (
    BY_NAME,
    ConfigurationError,
    change_refused,
    declare_all,
    load_pipeline,
    pipeline_config,
    problems_of,
    values_of,
)
from yolo_trt_ros.ros.qos import image_qos

NODE_NAME = "yolo_tracker"
TRT_LOGGER = "yolo_trt_ros.tensorrt"
BUILD_LOGGER = "yolo_trt_ros.tensorrt.build"  # its build progress, on /diagnostics too
"""The TensorRT backend's Python logger (engine build/cache, GPU path), forwarded to the node's."""
LOG_PERIOD_S = diagnostics.WARN_FOR_S
"""A problem (bad input per reason, failure per stage, stamp glitch per kind) is logged at most
once per this period."""


class TrackerNode(LifecycleNode):
    """The ``yolo_tracker`` lifecycle node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        start_problems = declare_all(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = FrameStats()
        self.pipeline: FramePipeline | None = None
        self.frames: FrameHandler | None = None
        self.input = InputMonitor(self)
        self.outputs = Outputs(self, LOG_PERIOD_S)
        self._state = "unconfigured"
        self._error = ""  # why the last configure or activate failed
        self._activity = ""  # engine build progress while configure runs
        self._trt_log = RclpyLogHandler(self.get_logger(), BUILD_LOGGER, self._on_build_progress)
        period = BY_NAME["diagnostics_period"].default
        if "diagnostics_period" not in start_problems:
            period = values_of(self)["diagnostics_period"]
        self.diagnostics = DiagnosticsOutput(self, self._report, period, LOG_PERIOD_S)
        self.create_service(Trigger, "~/reset_tracker", self._on_reset_tracker)

    # Lifecycle transitions -----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        problems = problems_of(self)
        if problems:
            return self._transition_failed(
                f"configure failed: invalid parameters: {'; '.join(problems)} (fix with: "
                f"ros2 param set {self.get_fully_qualified_name()} NAME VALUE)"
            )
        values = values_of(self)
        self._trt_log.attach(TRT_LOGGER)
        try:
            self.pipeline = load_pipeline(values, convert=image_frame)
        except ConfigurationError as exc:
            self._trt_log.detach()
            return self._transition_failed(f"configure failed: {exc}")
        finally:
            self._activity = ""
        self._error = ""
        self.stats.reset()
        self.outputs.create()
        self.frames = FrameHandler(
            self,
            self.pipeline,
            self.outputs,
            self.stats,
            values["stamp_tolerance"],
            LOG_PERIOD_S,
            annotate=lambda: bool(self.get_parameter("publish_annotated").value),
            topic=lambda: self.input.topic,
        )
        detector, log = self.pipeline.detector, self.get_logger()
        for warning, note in detector.load_notes("set names_file to get real names"):
            (log.warning if warning else log.info)(note)
        log.info(f"configured: model {values['model_path']} ({detector.describe()})")
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _transition_failed(self, error: str) -> TransitionCallbackReturn:
        """Fail a transition: ``error`` is logged and shown on /diagnostics (ERROR) until a
        transition succeeds."""
        self._error = printable(error, limit=2000)
        self.get_logger().error(self._error)
        self.diagnostics.publish()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = values_of(self)
        qos = image_qos(values["qos_reliability"], values["qos_depth"])
        topic = values["input_topic"]
        try:
            self.input.subscribe(Image, topic, qos, self._on_image)
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: the reason is shown
            return self._transition_failed(
                f"activate failed: cannot subscribe to input_topic {topic!r}: {exc}"
            )
        self._error = ""
        self.stats.restart_sequences()
        self._state = "active"
        self.get_logger().info(
            f"active: subscribed to {self.input.topic} ({values['qos_reliability']}, depth "
            f"{qos.depth}), publishing {self.outputs.detections_topic}"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.input.unsubscribe()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._error = ""
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(
            f"error during a transition from {state.label}: releasing the model"
        )
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.input.unsubscribe()
        self.outputs.destroy()
        self.frames = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self._trt_log.detach()

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    # Callbacks -----------------------------------------------------------------------------------

    def _on_set_parameters(self, params: list[Parameter[Any]]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        refused = change_refused(changes, self._state)
        if refused:
            return SetParametersResult(successful=False, reason=refused)
        if self.pipeline is not None:  # configured (unconfigured, configure checks the whole set)
            try:
                self.pipeline.configure(pipeline_config(values_of(self, changes)))
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if "stamp_tolerance" in changes and self.frames is not None:
            self.frames.stamps.tolerance_s = float(changes["stamp_tolerance"])
        if "diagnostics_period" in changes:
            self.diagnostics.set_period(changes["diagnostics_period"])
        return SetParametersResult(successful=True)

    def _on_build_progress(self, message: str) -> None:
        self._activity = message
        self.diagnostics.publish()

    def _on_image(self, msg: Image, info: Mapping[str, Any] | None) -> None:
        if self.frames is not None:
            self.frames(msg, info)

    def _on_reset_tracker(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        """``~/reset_tracker``: forget every track; the next tracks are numbered from 1 again."""
        if self.frames is None:
            response.success = False
            response.message = f"no tracker while {self._state}: configure the node first"
            return response
        dropped = self.frames.reset_tracker()
        response.success = True
        response.message = f"tracker reset: {dropped} tracks dropped, IDs restart at 1"
        self.get_logger().info(response.message)
        return response

    def _report(self) -> diagnostics.Report:
        """The /diagnostics report; while active, first checks that frames arrive."""
        snapshot = self.stats.snapshot(time.monotonic())
        if self._state == "active":
            self.input.check(snapshot.last_input_age_s, values_of(self)["input_timeout"])
        return diagnostics.report(self.node_state(), snapshot)

    def node_state(self) -> diagnostics.NodeState:
        """What /diagnostics reports besides the frame statistics."""

        def given(name: str) -> Any:  # as given: a start value that fails its check is shown too
            return self.get_parameter(name).value

        pipeline = self.pipeline
        return diagnostics.NodeState(
            state=self._state,
            input_topic=self.input.topic or str(given("input_topic")),
            model_path=str(given("model_path")),
            backend=str(given("backend")),
            tracking=bool(given("tracking")),
            error=self._error,
            qos_problem=self.input.qos_problem,
            last_failure=self.frames.last_failure if self.frames is not None else "",
            input_silent=self.input.silent,
            activity=self._activity,
            input_publishers=self.input.publishers(),
            model=diagnostics.ModelInfo.of(pipeline.detector) if pipeline else None,
            tracks=diagnostics.TrackerInfo.of(pipeline.tracker) if pipeline else None,
        )


def main(args: list[str] | None = None) -> None:
    """Run the node until Ctrl-C; it starts unconfigured (drive it with lifecycle services or the
    launch file). An exception escaping a callback is logged; spinning goes on."""
    rclpy.init(args=args)
    node = TrackerNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            try:
                executor.spin()
            except (KeyboardInterrupt, ExternalShutdownException):
                break
            except Exception as exc:  # noqa: BLE001 - keep serving; the traceback says what to fix
                node.get_logger().error(
                    f"callback failed: {type(exc).__name__}: {printable(exc)}\n"
                    f"{traceback.format_exc().rstrip()}",
                    throttle_duration_sec=LOG_PERIOD_S,
                )
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
