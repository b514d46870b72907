"""Lifecycle node ``yolo_tracker``: camera images in, vision_msgs/Detection2DArray (+ annotated
image) out.

A thin shell (as ros2/demos lifecycle_py) around ``pipeline.FramePipeline``:
- configure: check every parameter (``ros.parameters``: a bad value, also one given at start, fails
  the transition naming the parameter, the value and what is allowed), load the model
  (``backend: auto`` takes TensorRT when it imports and sees a GPU, else ONNX Runtime; TensorRT
  builds or reuses a cached engine, its log lines forwarded to this node's logger) and create the
  publishers. A failure names the file and the problem; it is logged at ERROR and shown on
  /diagnostics (ERROR) until the next successful transition. A failed activate is reported alike.
- activate: subscribe to ``input_topic`` (default QoS: best effort, depth 1: a slow detector drops
  stale frames instead of queueing them); deactivate: unsubscribe; cleanup: free the model.

Frames go through ``ros.frame_handler`` (stamp check, pipeline, publishing, counting of bad frames
and failures); ``ros.input_monitor`` says why no frame arrives; ``ros.diagnostics`` makes the
/diagnostics status. Track IDs count from 1 for the configured life; ``~/reset_tracker``
(std_srvs/Trigger) restarts them. Structural parameters change only while unconfigured; the others
at run time (validated; tracks are kept).

Between processes on one host, FastDDS needs ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` to deliver
best-effort camera images reliably.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Mapping
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription
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
from yolo_trt_ros.ros.outputs import Outputs, diagnostic_array
from yolo_trt_ros.ros.parameters import (
    BY_NAME,
    SPECS,
    STRUCTURAL,
    backend_options,
    declare_all,
    pipeline_config,
)
from yolo_trt_ros.ros.qos import image_qos

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

MESSAGE_INFO = hasattr(Subscription, "CallbackType")
"""Iron and later pass MessageInfo (publication sequence numbers, for drop counting) to
two-argument callbacks."""

NODE_NAME = "yolo_tracker"
TRT_LOGGER = "yolo_trt_ros.tensorrt"
"""The Python logger of the TensorRT backend (engine build/cache, GPU path), forwarded to the
node's logger."""
LOG_PERIOD_S = diagnostics.WARN_FOR_S
"""A problem (bad input per reason, failure per stage, stamp glitch per kind) is logged at most
once per this period."""


class TrackerNode(LifecycleNode):
    """The ``yolo_tracker`` lifecycle node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        start_problems = declare_all(self)
        for problem in start_problems.values():
            self.get_logger().error(
                f"invalid parameter at start: {printable(problem)}; configure fails until it is "
                "fixed with ros2 param set"
            )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = FrameStats()
        self.pipeline: FramePipeline | None = None
        self.frames: FrameHandler | None = None
        self.input = InputMonitor(self)
        self.outputs = Outputs(self, LOG_PERIOD_S)
        self._state = "unconfigured"
        self._error = ""  # why the last configure or activate failed
        self._subscription: Subscription[Image] | None = None
        self._trt_log = RclpyLogHandler(self.get_logger())
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = BY_NAME["diagnostics_period"].default
        if "diagnostics_period" not in start_problems:
            period = self._values()["diagnostics_period"]
        self._diagnostics_timer = self.create_timer(period, self._on_diagnostics_timer)
        self.create_service(Trigger, "~/reset_tracker", self._on_reset_tracker)

    def _values(self, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter's value as the node uses it (``Spec.coerce``), with ``changes`` applied;
        only for values already checked (configure and set_parameters check them)."""
        values = {spec.name: self.get_parameter(spec.name).value for spec in SPECS}
        values.update(changes or {})
        return {name: BY_NAME[name].coerce(v) for name, v in values.items() if name in BY_NAME}

    # Lifecycle transitions -----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        problems = [p for p in (s.check(self.get_parameter(s.name).value) for s in SPECS) if p]
        if problems:
            return self._transition_failed(
                f"configure failed: invalid parameters: {'; '.join(problems)} (fix with: "
                f"ros2 param set {self.get_fully_qualified_name()} NAME VALUE)"
            )
        values = self._values()
        model_path = values["model_path"]
        if not model_path:
            return self._transition_failed(
                "configure failed: parameter model_path is empty: pass the YOLOv8 model, e.g. "
                "--ros-args -p model_path:=/path/to/yolov8n.onnx"
            )
        try:
            config = pipeline_config(values)
        except ValueError as exc:
            return self._transition_failed(f"configure failed: tracker parameters: {exc}")
        self._trt_log.attach(TRT_LOGGER)
        try:
            options = backend_options(values)
            self.pipeline = FramePipeline.from_model(
                model_path,
                config,
                values["backend"],
                values["names_file"] or None,
                options,
                convert=image_frame,
            )
        except Exception as exc:  # noqa: BLE001 - the transition fails with the reason
            self._trt_log.detach()
            reason = str(exc) if model_path in str(exc) else f"model {model_path}: {exc}"
            return self._transition_failed(f"configure failed: {reason}")
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
        detector = self.pipeline.detector
        _, _, height, width = detector.backend.input_shape
        self.get_logger().info(detector.backend_reason)
        self.get_logger().info(
            f"configured: model {model_path} ({detector.backend.name}, input {width}x{height}, "
            f"{len(detector.names)} classes from {detector.names_source})"
        )
        if detector.names_source == "fallback":
            self.get_logger().warning(
                f"model {model_path} has no class names in its metadata: publishing placeholders "
                "class_<i>; set names_file to get real names"
            )
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _transition_failed(self, error: str) -> TransitionCallbackReturn:
        """Fail a transition: ``error`` is logged and shown on /diagnostics (ERROR) until a
        transition succeeds."""
        self._error = printable(error, limit=2000)
        self.get_logger().error(self._error)
        self._publish_diagnostics()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self._values()
        qos = image_qos(values["qos_reliability"], values["qos_depth"])
        topic = values["input_topic"]
        callback = self._on_image if MESSAGE_INFO else lambda msg: self._on_image(msg, None)
        events = SubscriptionEventCallbacks(incompatible_qos=self.input.on_incompatible_qos)
        try:
            self._subscription = self.create_subscription(
                Image, topic, callback, qos, event_callbacks=events
            )
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: the reason is shown
            return self._transition_failed(
                f"activate failed: cannot subscribe to input_topic {topic!r}: {exc}"
            )
        self._error = ""
        self.input.watch(self._subscription)
        self.stats.restart_sequences()
        self._state = "active"
        self.get_logger().info(
            f"active: subscribed to {self.input.topic} ({values['qos_reliability']}, depth "
            f"{qos.depth}), publishing {self.outputs.detections_topic}"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_subscription()
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

    def _destroy_subscription(self) -> None:
        self.input.stop()
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None

    def _release(self) -> None:
        self._destroy_subscription()
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
        structural = sorted(set(STRUCTURAL) & changes.keys())
        if structural and self._state != "unconfigured":
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(structural)} can only change while unconfigured (now "
                f"{self._state}): cleanup, set, then configure",
            )
        problems = [BY_NAME[n].check(v) for n, v in changes.items() if n in BY_NAME]
        if any(problems):
            return SetParametersResult(
                successful=False, reason="; ".join(p for p in problems if p)
            )
        if self.pipeline is not None:  # configured (unconfigured, configure checks the whole set)
            try:
                self.pipeline.configure(pipeline_config(self._values(changes)))
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if "stamp_tolerance" in changes and self.frames is not None:
            self.frames.stamps.tolerance_s = float(changes["stamp_tolerance"])
        if "diagnostics_period" in changes:
            self._diagnostics_timer.timer_period_ns = int(changes["diagnostics_period"] * 1e9)
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image, info: Mapping[str, Any] | None) -> None:
        self.input.frame_arrived()
        if self.frames is not None:
            self.frames(msg, info)

    def _on_reset_tracker(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        """``~/reset_tracker``: forget every track; the next tracks are numbered from 1 again."""
        if self.pipeline is None or self.frames is None:
            response.success = False
            response.message = f"no tracker while {self._state}: configure the node first"
            return response
        dropped = self.pipeline.tracker.tracked_count + self.pipeline.tracker.lost_count
        self.pipeline.reset()
        self.frames.stamps.reset()
        response.success = True
        response.message = f"tracker reset: {dropped} tracks dropped, IDs restart at 1"
        self.get_logger().info(response.message)
        return response

    def _on_diagnostics_timer(self) -> None:
        try:
            if self._state == "active":
                age = self.stats.snapshot(time.monotonic()).last_input_age_s
                self.input.check(age, self._values()["input_timeout"])
            self._publish_diagnostics()
        except Exception as exc:  # noqa: BLE001 - a diagnostics failure must not end the node
            tb = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            self.get_logger().error(
                f"diagnostics failed: {type(exc).__name__}: {printable(exc)}\n{tb}",
                throttle_duration_sec=LOG_PERIOD_S,
            )

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
            input_publishers=self.input.publishers(),
            model=diagnostics.ModelInfo.of(pipeline.detector) if pipeline else None,
            tracks=diagnostics.TrackerInfo.of(pipeline.tracker) if pipeline else None,
        )

    def _publish_diagnostics(self) -> None:
        report = diagnostics.report(self.node_state(), self.stats.snapshot(time.monotonic()))
        name, stamp = self.get_fully_qualified_name(), self.get_clock().now().to_msg()
        with contextlib.suppress(RCLError):  # context shutting down
            self._diagnostics_pub.publish(diagnostic_array(report, name, stamp))


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
