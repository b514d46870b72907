"""Lifecycle node ``yolo_tracker``: camera images in, vision_msgs/Detection2DArray (+ annotated image) out.

A thin shell (as ros2/demos lifecycle_py) around ``pipeline.FramePipeline``:
- configure: check every parameter (``ros.parameters``: a bad value, also one given at start, fails the transition
  naming the parameter, the value and what is allowed), load the model (``backend: auto`` takes TensorRT when it
  imports and sees a GPU, else ONNX Runtime; TensorRT builds or reuses a cached engine, its log lines forwarded to
  this node's logger) and create the publishers. A failure names the file and the problem; it is logged at ERROR
  and shown on /diagnostics (ERROR) until the next successful transition. A failed activate is reported alike.
- activate: subscribe to ``input_topic`` (default QoS: best effort, depth 1: a slow detector drops stale frames
  instead of queueing them); deactivate: unsubscribe; cleanup: free the model (TensorRT: device memory, context).

Each frame: its header stamp is checked against the receive clock (``ros.stamps``; a glitch steps one typical
frame interval instead of ending every track), the pipeline detects and tracks, the Detection2DArray keeps the
image header (``Detection2D.id``: the track ID, "" untracked; see ``tracking.assignment``), and the annotated image
is drawn only while it has subscribers. Track IDs count from 1 for the configured life; ``~/reset_tracker``
(std_srvs/Trigger) restarts them. A bad frame (``ImageRejected``) is counted per reason, an internal error per
stage (``failed.<stage>``, logged with its traceback); either way the frame is dropped, logged at most once per
``LOG_PERIOD_S`` per reason, /diagnostics (``ros.diagnostics``) warns while it recurs, and the node keeps serving.
Structural parameters change only while unconfigured; the others at run time (validated; tracks are kept).

Between processes on one host, FastDDS needs ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` to deliver best-effort
camera images reliably.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.pipeline import FramePipeline, StageFailed
from yolo_trt_ros.ros import diagnostics
from yolo_trt_ros.ros.frame_stats import FrameStats
from yolo_trt_ros.ros.image_conversion import image_frame
from yolo_trt_ros.ros.input_monitor import InputMonitor
from yolo_trt_ros.ros.log_forwarding import RclpyLogHandler
from yolo_trt_ros.ros.log_text import ProblemLog, printable
from yolo_trt_ros.ros.outputs import Outputs
from yolo_trt_ros.ros.parameters import (
    BY_NAME,
    SPECS,
    STRUCTURAL,
    backend_options,
    declare_all,
    pipeline_config,
)
from yolo_trt_ros.ros.qos import image_qos
from yolo_trt_ros.ros.stamps import StampGuard, plausible_latency_ms

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

MESSAGE_INFO = hasattr(Subscription, "CallbackType")
"""Iron and later pass MessageInfo (publication sequence numbers, for drop counting) to two-argument callbacks."""

NODE_NAME = "yolo_tracker"
TRT_LOGGER = "yolo_trt_ros.tensorrt"
"""The Python logger of the TensorRT backend (engine build/cache, GPU path), forwarded to the node's logger."""
LOG_PERIOD_S = diagnostics.WARN_FOR_S
"""A problem (bad input per reason, failure per stage, stamp glitch per kind) is logged at most once per this."""


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
        classes = self.get_parameter("classes")
        if (
            not classes.value and classes.type_ != Parameter.Type.STRING_ARRAY
        ):  # unset, or [] typed otherwise
            self.set_parameters([Parameter("classes", Parameter.Type.STRING_ARRAY, [])])
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.stats = FrameStats()
        self.pipeline: FramePipeline | None = None
        self.input = InputMonitor(self)
        self._stamps = StampGuard()
        self._state = "unconfigured"
        self._error = ""  # why the last configure or activate failed
        self._last_failure = ""
        self._log_problem = ProblemLog(
            self.get_logger().error, self.get_logger().warning, LOG_PERIOD_S
        )
        self.outputs = Outputs(self, LOG_PERIOD_S)
        self._subscription: Subscription[Image] | None = None
        self._trt_log = RclpyLogHandler(self.get_logger())
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = (
            BY_NAME["diagnostics_period"].default
            if "diagnostics_period" in start_problems
            else self._values()["diagnostics_period"]
        )
        self._diagnostics_timer = self.create_timer(period, self._on_diagnostics_timer)
        self._reset_service = self.create_service(
            Trigger, "~/reset_tracker", self._on_reset_tracker
        )

    def _values(self, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter's value as the node uses it (``Spec.coerce``), with ``changes`` applied; only for values
        already checked (configure and set_parameters check them)."""
        values = {spec.name: self.get_parameter(spec.name).value for spec in SPECS}
        values.update(changes or {})
        return {
            name: BY_NAME[name].coerce(value) for name, value in values.items() if name in BY_NAME
        }

    # Lifecycle transitions ------------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        problems = [
            p for p in (spec.check(self.get_parameter(spec.name).value) for spec in SPECS) if p
        ]
        if problems:
            return self._transition_failed(
                f"configure failed: invalid parameters: {'; '.join(problems)} (fix with:"
                f" ros2 param set {self.get_fully_qualified_name()} NAME VALUE)"
            )
        values = self._values()
        model_path = values["model_path"]
        if not model_path:
            return self._transition_failed(
                "configure failed: parameter model_path is empty: pass the YOLOv8 "
                "model, e.g. --ros-args -p model_path:=/path/to/yolov8n.onnx"
            )
        try:
            config = pipeline_config(values)
        except ValueError as exc:
            return self._transition_failed(f"configure failed: tracker parameters: {exc}")
        self._trt_log.attach(TRT_LOGGER)
        try:
            self.pipeline = FramePipeline.from_model(
                model_path,
                config,
                values["backend"],
                values["names_file"] or None,
                backend_options(values),
                convert=image_frame,
            )
        except Exception as exc:  # noqa: BLE001 - any failure must fail the transition with its reason
            self._trt_log.detach()
            reason = str(exc) if model_path in str(exc) else f"model {model_path}: {exc}"
            return self._transition_failed(f"configure failed: {reason}")
        self._error = ""
        self._stamps = StampGuard(values["stamp_tolerance"])
        self.stats.reset()
        self.outputs.create()
        detector = self.pipeline.detector
        shape = detector.backend.input_shape
        self.get_logger().info(detector.backend_reason)
        self.get_logger().info(
            f"configured: model {model_path} ({detector.backend.name}, input {shape[3]}x"
            f"{shape[2]}, {len(detector.names)} classes from {detector.names_source})"
        )
        if detector.names_source == "fallback":
            self.get_logger().warning(
                f"model {model_path} has no class names in its metadata: publishing "
                "placeholders class_<i>; set names_file to get real names"
            )
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _transition_failed(self, error: str) -> TransitionCallbackReturn:
        """Fail a transition: ``error`` is logged and shown on /diagnostics (ERROR) until a transition succeeds."""
        self._error = printable(error, limit=2000)
        self.get_logger().error(self._error)
        self._publish_diagnostics()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self._values()
        qos = image_qos(values["qos_reliability"], values["qos_depth"])
        topic = values["input_topic"]
        try:
            self._subscription = self.create_subscription(
                Image,
                topic,
                self._on_image if MESSAGE_INFO else lambda msg: self._on_image(msg, None),
                qos,
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=self.input.on_incompatible_qos
                ),
            )
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: fail the transition with the reason
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
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self._trt_log.detach()

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    def _on_set_parameters(self, params: list[Parameter[Any]]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        structural = sorted(set(STRUCTURAL) & changes.keys())
        if structural and self._state != "unconfigured":
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(structural)} can only change while unconfigured "
                f"(now {self._state}): cleanup, set, then configure",
            )
        problems = [
            BY_NAME[name].check(value) for name, value in changes.items() if name in BY_NAME
        ]
        if any(problems):
            return SetParametersResult(
                successful=False, reason="; ".join(p for p in problems if p)
            )
        if self.pipeline is not None:  # configured (unconfigured, configure checks the whole set)
            try:
                self.pipeline.configure(pipeline_config(self._values(changes)))
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if "stamp_tolerance" in changes:
            self._stamps.tolerance_s = float(changes["stamp_tolerance"])
        if "diagnostics_period" in changes:
            self._diagnostics_timer.timer_period_ns = int(changes["diagnostics_period"] * 1e9)
        return SetParametersResult(successful=True)

    # Frames ---------------------------------------------------------------------------------------------------

    def _on_image(self, msg: Image, info: Mapping[str, Any] | None) -> None:
        """One frame through the pipeline; bad input and internal errors drop the frame (module docstring)."""
        received = (
            self.get_clock().now().nanoseconds * 1e-9
        )  # the stamps' clock (sim time with use_sim_time)
        gid = info.get("publisher_gid") if info else None
        self.stats.received(
            time.monotonic(),
            gid["data"] if gid else None,
            info.get("publication_sequence_number") if info else None,
        )
        self.input.frame_arrived()
        pipeline = self.pipeline
        if pipeline is None or not self.outputs.ready:
            return
        stage = "stamp"
        try:
            stamp = msg.header.stamp
            check = self._stamps.check(stamp.sec, stamp.nanosec, received)
            if check.glitch is not None:
                count = self.stats.stamp_glitch(time.monotonic(), check.glitch)
                self._log_problem(
                    f"stamp_glitches.{check.glitch}",
                    count,
                    f"header stamp glitch {self._describe(msg)}: {check.detail}; tracking steps one "
                    "typical frame interval and the frame's latency is not counted",
                    error=False,
                )
            result = pipeline(msg, check.time)
            t0 = time.perf_counter()
            stage = "build"
            out = self.outputs.build(
                msg.header, result.detections, pipeline.names, result.track_ids
            )
            stage = "publish"
            self.outputs.publish_detections(out)
            t1 = time.perf_counter()
            stages = {**result.times_ms, "publish": (t1 - t0) * 1e3}
            latency_ms = plausible_latency_ms(
                check, stamp.sec + stamp.nanosec * 1e-9, self.get_clock().now().nanoseconds * 1e-9
            )
            if self.get_parameter("publish_annotated").value and self.outputs.wants_annotated():
                stage = "annotate"
                self.outputs.publish_annotated(msg.header, result, pipeline.names)
                stages["annotate"] = (time.perf_counter() - t1) * 1e3
        except ImageRejected as exc:
            count = self.stats.rejected(time.monotonic(), exc.reason)
            self._log_problem(
                f"rejected.{exc.reason}",
                count,
                f"dropped bad frame {self._describe(msg)}: {printable(exc)}",
            )
            return
        except Exception as exc:  # noqa: BLE001 - an internal error drops this frame, never the node
            stage, cause = (
                (exc.stage, exc.__cause__ or exc) if isinstance(exc, StageFailed) else (stage, exc)
            )
            count = self.stats.failed(time.monotonic(), stage)
            self._last_failure = (
                f"frames failing in {stage}: {type(cause).__name__}: {printable(cause)}"
            )
            self._log_problem(
                f"failed.{stage}",
                count,
                f"dropped frame {self._describe(msg)}: {stage} failed: "
                f"{type(cause).__name__}: {printable(cause)}",
                details="Traceback (most recent call "
                f"last):\n{''.join(traceback.format_tb(cause.__traceback__)).rstrip()}",
            )
            return
        self.stats.processed(time.monotonic(), latency_ms, stages)

    def _describe(self, msg: Image) -> str:
        """Where a frame came from, for a log line (message text bounded and escaped)."""
        stamp = msg.header.stamp
        return (
            f"on {printable(self.input.topic)} (frame_id '{printable(msg.header.frame_id)}', stamp "
            f"{stamp.sec}.{stamp.nanosec:09d})"
        )

    def _on_reset_tracker(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        """``~/reset_tracker``: forget every track; the next tracks are numbered from 1 again."""
        if self.pipeline is None:
            response.success = False
            response.message = f"no tracker while {self._state}: configure the node first"
            return response
        dropped = self.pipeline.tracker.tracked_count + self.pipeline.tracker.lost_count
        self.pipeline.reset()
        self._stamps.reset()
        response.success = True
        response.message = f"tracker reset: {dropped} tracks dropped, IDs restart at 1"
        self.get_logger().info(response.message)
        return response

    # Diagnostics ----------------------------------------------------------------------------------------------

    def _on_diagnostics_timer(self) -> None:
        try:
            if self._state == "active":
                self.input.check(
                    self.stats.snapshot(time.monotonic()).last_input_age_s,
                    self._values()["input_timeout"],
                )
            self._publish_diagnostics()
        except Exception as exc:  # noqa: BLE001 - a diagnostics failure must not end the node
            self.get_logger().error(
                f"diagnostics failed: {type(exc).__name__}: {printable(exc)}\n"
                f"{''.join(traceback.format_tb(exc.__traceback__)).rstrip()}",
                throttle_duration_sec=LOG_PERIOD_S,
            )

    def node_state(self) -> diagnostics.NodeState:
        """What /diagnostics reports besides the frame statistics."""

        def value(name: str) -> Any:  # as given: also a start value that fails its check is shown
            return self.get_parameter(name).value

        pipeline = self.pipeline
        return diagnostics.NodeState(
            state=self._state,
            input_topic=self.input.topic or str(value("input_topic")),
            model_path=str(value("model_path")),
            backend=str(value("backend")),
            tracking=bool(value("tracking")),
            error=self._error,
            qos_problem=self.input.qos_problem,
            last_failure=self._last_failure,
            input_silent=self.input.silent,
            input_publishers=self.input.publishers(),
            model=diagnostics.ModelInfo.of(pipeline.detector) if pipeline else None,
            tracks=diagnostics.TrackerInfo.of(pipeline.tracker) if pipeline else None,
        )

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        report = diagnostics.report(self.node_state(), self.stats.snapshot(time.monotonic()))
        array = DiagnosticArray(
            status=[
                DiagnosticStatus(
                    level=bytes([report.level]),
                    name=f"{name}: detector",
                    message=report.message,
                    hardware_id=name,
                    values=[KeyValue(key=k, value=v) for k, v in report.values],
                )
            ]
        )
        array.header.stamp = self.get_clock().now().to_msg()
        try:
            self._diagnostics_pub.publish(array)
        except RCLError:
            pass  # context shutting down


def main(args: list[str] | None = None) -> None:
    """Run the node until Ctrl-C; it starts unconfigured (drive it with lifecycle services or the launch file).
    An exception escaping a callback (every frame and timer callback catches its own) is logged; spinning goes on."""
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
