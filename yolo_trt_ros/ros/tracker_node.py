"""Lifecycle node ``yolo_tracker``: camera images in, vision_msgs/Detection2DArray (+ annotated
image) out, for one camera or several. A thin shell (as ros2/demos lifecycle_py) around
``pipeline.FramePipeline``:

- configure: check every parameter (``ros.parameters``; a bad value fails the transition naming
  it), load the model once (``backend: auto``: TensorRT when it imports and sees a GPU, else ONNX
  Runtime), and per camera (``ros.camera``: ``input_topic``, or each of ``input_topics``) a
  tracker and publishers. A failed configure or activate is logged and shown on /diagnostics
  (ERROR) until the next successful transition.
- activate: subscribe to each camera (default QoS best effort, depth 1) and start the inference
  thread (``ros.inference_loop``: batches of the newest frame of each camera, stale frames
  dropped, never queued); deactivate: unsubscribe and stop it; cleanup: free the model.

``ros.input_monitor`` says why no frame arrives; ``ros.diagnostics`` makes one /diagnostics
status per camera. ``~/reset_tracker`` (std_srvs/Trigger) restarts every camera's track IDs at 1,
``~/<camera>/reset_tracker`` one camera's (with several cameras). Structural parameters change
only while unconfigured, the others at run time. Between processes on one host, FastDDS needs
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` to deliver best-effort images.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from yolo_trt_ros.pipeline import FramePipeline
from yolo_trt_ros.ros import diagnostics
from yolo_trt_ros.ros.camera import Camera
from yolo_trt_ros.ros.camera_rig import CameraRig
from yolo_trt_ros.ros.frame_stats import FrameStats
from yolo_trt_ros.ros.interrupts import ignore_interrupts
from yolo_trt_ros.ros.log_forwarding import RclpyLogHandler
from yolo_trt_ros.ros.log_text import printable
from yolo_trt_ros.ros.outputs import DiagnosticsOutput
from yolo_trt_ros.ros.parameters import (
    BY_NAME,
    ConfigurationError,
    cameras_of,
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
        self.pipeline: FramePipeline | None = None
        """The model and the first camera's tracker (the other cameras' share its detector)."""
        self.rig: CameraRig | None = None
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
        try:
            cameras = cameras_of(values)
        except ConfigurationError as exc:
            return self._transition_failed(f"configure failed: {exc}")
        self._trt_log.attach(TRT_LOGGER)
        try:
            self.pipeline = load_pipeline(values, convert=Camera.converter(cameras[0][1]))
        except ConfigurationError as exc:
            self._trt_log.detach()
            return self._transition_failed(f"configure failed: {exc}")
        finally:
            self._activity = ""
        try:
            self.rig = CameraRig(
                self,
                self.pipeline,
                cameras,
                values["stamp_tolerance"],
                LOG_PERIOD_S,
                annotate=lambda: bool(self.get_parameter("publish_annotated").value),
            )
        except Exception as exc:  # noqa: BLE001 - rclpy refused an output or service
            self._release()
            return self._transition_failed(
                f"configure failed: cannot create the cameras' outputs: {type(exc).__name__}: "
                f"{exc}"
            )
        self._error = ""
        detector, log = self.pipeline.detector, self.get_logger()
        for warning, note in detector.load_notes("set names_file to get real names"):
            (log.warning if warning else log.info)(note)
        names = self.rig.names
        named = f", cameras: {', '.join(names)}" if len(names) > 1 else ""
        log.info(f"configured: model {values['model_path']} ({detector.describe()}){named}")
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
        assert self.rig is not None
        try:
            self.rig.start(qos)
        except Exception as exc:  # noqa: BLE001 - e.g. rclpy refused the subscription
            return self._transition_failed(f"activate failed: {exc}")
        self._error = ""
        self._state = "active"
        cameras = self.rig.cameras
        self.get_logger().info(
            f"active: subscribed to {', '.join(c.input.topic for c in cameras)} "
            f"({values['qos_reliability']}, depth {qos.depth}), publishing "
            f"{', '.join(c.outputs.detections_topic for c in cameras)}"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.rig is not None:
            self.rig.stop()
        self._state = "inactive"
        self.get_logger().info("inactive: unsubscribed, publishing nothing until activated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._error = ""
        self._state = "unconfigured"
        self.get_logger().info("unconfigured: model released; configure loads it again")
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
        if self.rig is not None:
            self.rig.release()
            self.rig = None
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
        if self.rig is not None:  # configured (unconfigured, configure checks the whole set)
            values = values_of(self, changes)
            try:
                config = pipeline_config(values)
                self.rig.cameras[0].pipeline.detector.check_config(config.detector)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            self.rig.configure(config, values["stamp_tolerance"])
        if "diagnostics_period" in changes:
            self.diagnostics.set_period(changes["diagnostics_period"])
        return SetParametersResult(successful=True)

    def _on_build_progress(self, message: str) -> None:
        self._activity = message
        self.diagnostics.publish()

    def _on_reset_tracker(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        """``~/reset_tracker``: forget every camera's tracks; IDs restart at 1."""
        if self.rig is None:
            response.success = False
            response.message = f"no tracker while {self._state}: configure the node first"
            return response
        return self.rig.reset(response, self.rig.cameras)

    def _report(self) -> list[tuple[str, diagnostics.Report]]:
        """The /diagnostics statuses: one per camera ("detector" with a single camera)."""
        node = self.node_state()
        if self.rig is None:
            return [
                ("detector", diagnostics.report(node, FrameStats().snapshot(time.monotonic())))
            ]
        timeout = values_of(self)["input_timeout"] if self._state == "active" else None
        return self.rig.reports(node, timeout)

    def node_state(self) -> diagnostics.NodeState:
        """The node's part of what /diagnostics reports (each camera adds its own,
        ``Camera.state``)."""

        def given(name: str) -> Any:  # as given: a start value that fails its check is shown too
            return self.get_parameter(name).value

        pipeline = self.pipeline
        topics = list(given("input_topics") or []) or [str(given("input_topic"))]
        return diagnostics.NodeState(
            state=self._state,
            input_topic=", ".join(topics),
            model_path=str(given("model_path")),
            backend=str(given("backend")),
            tracking=bool(given("tracking")),
            error=self._error,
            activity=self._activity,
            model=diagnostics.ModelInfo.of(pipeline.detector) if pipeline else None,
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
        ignore_interrupts()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
