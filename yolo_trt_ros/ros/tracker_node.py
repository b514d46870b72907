"""Lifecycle node ``yolo_tracker``: camera images in, vision_msgs/Detection2DArray (+ annotated image) out.

Lifecycle (as in ros2/demos lifecycle_py):
- configure: check every parameter (``node_parameters``; a bad value, also one given at start, fails the
  transition naming the parameter, the value and what is allowed), choose the backend (``backend: auto`` takes
  TensorRT when it imports and sees a GPU, else ONNX Runtime; the choice and why are logged and in /diagnostics),
  load the model (``Detector.from_model``; TensorRT builds or reuses a cached engine for an .onnx, its log lines are
  forwarded to this node's logger) and create the lifecycle publishers. A missing, corrupt or wrong-shaped model, or
  ``backend: tensorrt`` where TensorRT cannot run, fails the transition; the reason names the file and the problem,
  is logged at ERROR and is published on /diagnostics (level ERROR) until the next successful transition. A failed
  activate is reported the same way.
- activate: subscribe to ``input_topic`` (default QoS: best effort, KEEP_LAST depth 1, so a slow detector drops
  stale frames instead of queueing them) and enable the publishers.
- deactivate: unsubscribe (nothing is published while inactive); cleanup: free the model (with TensorRT: its
  device memory and CUDA context) and the publishers.

Tracking (``tracking: true``, the default): each frame's detections go through a ``ByteTracker`` timed by the
image header stamp as checked by ``stamps.StampGuard`` (dropped frames are predicted over; a glitched stamp, zero or
far off the receive clock, steps one typical frame interval instead of ending every track). ``Detection2D.id`` is
the track ID as a string, fixed for the track's life; what is published, with which box and at which detector
threshold is described in ``tracking``. IDs count up from 1 for the node's configured life: they are kept across
deactivate/activate and restart only on cleanup or through the ``~/reset_tracker`` service (std_srvs/Trigger; always
offered, it answers success=false while unconfigured). ``tracking: false`` publishes plain detections (id "").

Frames are processed in the subscription callback (single-threaded executor). A bad frame (``ImageRejected``) is
counted per reason; an exception anywhere else in the frame path is counted per stage (``failed.<stage>``) and
logged with its traceback; either way the frame is dropped, the log line is throttled (``LOG_PERIOD_S`` per reason),
/diagnostics goes to WARN while it recurs, and the node keeps serving. Text taken from messages or the graph is
bounded and escaped in logs (``log_text.printable``). Structural parameters (``node_parameters.STRUCTURAL``) can
only change while unconfigured; the others change at run time (validated; a tracker change keeps the tracks).

Between processes on one host, FastDDS needs ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` to deliver best-effort
camera images reliably.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.topic_endpoint_info import TopicEndpointInfo
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolo_trt_ros.detection.annotate import Annotator
from yolo_trt_ros.inference.base import DiagnosticsSource
from yolo_trt_ros.tracking.bytetrack import ByteTracker, TrackerConfig
from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.ros.frame_stats import STAGES, FrameStats
from yolo_trt_ros.ros.image_conversion import array_to_image, image_to_array
from yolo_trt_ros.ros.log_text import printable
from yolo_trt_ros.ros.parameters import BY_NAME, SPECS, STRUCTURAL, declare_all
from yolo_trt_ros.ros.log_forwarding import RclpyLogHandler
from yolo_trt_ros.ros.stamps import StampGuard, plausible_latency_ms
from yolo_trt_ros.tracking.assignment import TRACKER_FIELDS, UNTRACKED, assign_ids, detector_threshold

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

MESSAGE_INFO = hasattr(Subscription, "CallbackType")
"""Iron and later pass MessageInfo (publication sequence numbers, for drop counting) to two-argument callbacks."""

NODE_NAME = "yolo_tracker"
RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
TRT_LOGGER = "yolo_trt_ros.tensorrt"
"""The Python logger of the TensorRT backend (engine build/cache, GPU path), forwarded to the node's logger."""
LOG_PERIOD_S = 10.0
"""A problem (bad input per reason, failure per stage, stamp glitch per kind) is logged at most once per this
period; /diagnostics stays at WARN for this long after its last occurrence."""
DETECTOR_PARAMS = ("conf_threshold", "iou_threshold", "max_detections", "classes", "agnostic_nms")
THRESHOLD_PARAMS = (*DETECTOR_PARAMS, "tracking", "track_low_thresh")
"""Parameters that change the detector's config (tracking lowers its threshold to track_low_thresh)."""


class DetectionArrayBuilder:
    """Builds Detection2DArray messages: the input header; bbox centre/size in original-image pixels, class name +
    score; ``id`` the track ID as a string ("" without ``track_ids`` and for ``UNTRACKED``).

    The Detection2D objects are reused from frame to frame: rosidl constructors eagerly build every default
    sub-message (a 36-double covariance array per hypothesis), ~30 us per detection once inference has evicted the
    caches. A message is valid until the next call, so publish it (publish serializes at once) before building again.
    """

    def __init__(self) -> None:
        self._pool: list[Detection2D] = []

    def __call__(self, header: Header, detections: Detections, names: Sequence[str],
                 track_ids: np.ndarray | None = None) -> Detection2DArray:
        out = Detection2DArray(header=header)
        n = len(detections)
        if not n:
            return out
        while len(self._pool) < n:
            self._pool.append(Detection2D(results=[ObjectHypothesisWithPose()]))
        boxes = detections.boxes.astype(np.float64)
        centers = ((boxes[:, :2] + boxes[:, 2:]) * 0.5).tolist()
        sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
        labels = [names[i] for i in detections.class_ids.tolist()]
        ids = [""] * n if track_ids is None else ["" if i == UNTRACKED else str(i) for i in track_ids.tolist()]
        for det, (cx, cy), (w, h), score, label, track_id in zip(
                self._pool, centers, sizes, detections.scores.tolist(), labels, ids):
            det.header = header
            det.id = track_id
            det.bbox.center.position.x = cx
            det.bbox.center.position.y = cy
            det.bbox.size_x = w
            det.bbox.size_y = h
            hypothesis = det.results[0].hypothesis
            hypothesis.class_id = label
            hypothesis.score = score
        out.detections = self._pool[:n]
        return out


class _ParameterError(ValueError):
    """A parameter value that fails configure; the message names the parameter."""


class TrackerNode(LifecycleNode):
    """The ``yolo_tracker`` lifecycle node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        start_problems = declare_all(self)
        for problem in start_problems.values():
            self.get_logger().error(f"invalid parameter at start: {printable(problem)}; configure fails until it is "
                                    "fixed with ros2 param set")
        classes = self.get_parameter("classes")
        if not classes.value and classes.type_ != Parameter.Type.STRING_ARRAY:  # unset, or [] typed otherwise
            self.set_parameters([Parameter("classes", Parameter.Type.STRING_ARRAY, [])])
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.stats = FrameStats()
        self.detector: Detector | None = None
        self.tracker: ByteTracker | None = None
        self._stamps = StampGuard()
        self._state = "unconfigured"
        self._error = ""  # why the last configure or activate failed
        self._qos_problem = ""
        self._last_failure = ""
        self._annotator = Annotator()
        self._build_detections = DetectionArrayBuilder()
        self._subscription: Subscription[Image] | None = None
        self._detections_pub: LifecyclePublisher[Detection2DArray] | None = None
        self._annotated_pub: LifecyclePublisher[Image] | None = None
        self._input_topic = ""
        self._activated_at = 0.0
        self._input_warned = False
        self._logged_at: dict[str, float] = {}
        self._trt_log = RclpyLogHandler(self.get_logger())
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = BY_NAME["diagnostics_period"].default if "diagnostics_period" in start_problems \
            else self._param("diagnostics_period")
        self._diagnostics_timer = self.create_timer(period, self._on_diagnostics_timer)
        self._reset_service = self.create_service(Trigger, "~/reset_tracker", self._on_reset_tracker)

    def _param(self, name: str) -> Any:
        """A parameter's value as the node uses it (an integer given to a double parameter as a float).

        Only for values already checked (configure and set_parameters check them): not on the frame path again.
        """
        return BY_NAME[name].coerce(self.get_parameter(name).value)

    def _tracker_config(self, overrides: Mapping[str, Any] | None = None) -> TrackerConfig:
        """The tracker parameters (with ``overrides``); ValueError if invalid."""
        values = {name: self._param(name) for name in TRACKER_FIELDS}
        values.update({k: BY_NAME[k].coerce(v) for k, v in (overrides or {}).items() if k in values})
        return TrackerConfig(**values)

    def _tracking(self, overrides: Mapping[str, Any] | None = None) -> bool:
        return bool((overrides or {}).get("tracking", self._param("tracking")))

    def _detector_config(self, overrides: Mapping[str, Any] | None = None,
                         tracker: TrackerConfig | None = None) -> DetectorConfig:
        """The detector parameters (with ``overrides``); the threshold lowered for ``tracker`` (see tracking)."""
        values = {name: self._param(name) for name in DETECTOR_PARAMS}
        values.update({k: BY_NAME[k].coerce(v) for k, v in (overrides or {}).items() if k in values})
        return DetectorConfig(
            conf_threshold=detector_threshold(float(values["conf_threshold"]), tracker),
            iou_threshold=float(values["iou_threshold"]),
            max_detections=int(values["max_detections"]),
            classes=tuple(values["classes"]),
            agnostic_nms=bool(values["agnostic_nms"]),
        )

    # Lifecycle transitions ------------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        model_path = str(self.get_parameter("model_path").value)
        try:
            problems = [spec.check(self.get_parameter(spec.name).value) for spec in SPECS]
            if any(problems):
                raise _ParameterError("invalid parameters: " + "; ".join(p for p in problems if p) +
                                      f" (fix with: ros2 param set {self.get_fully_qualified_name()} NAME VALUE)")
            if not model_path:
                raise _ParameterError("parameter model_path is empty: pass the YOLOv8 model, e.g. "
                                      "--ros-args -p model_path:=/path/to/yolov8n.onnx")
            try:
                tracker_config = self._tracker_config()
            except ValueError as exc:
                raise _ParameterError(f"tracker parameters: {exc}") from exc
            self._trt_log.attach(TRT_LOGGER)
            self.detector = Detector.from_model(model_path, backend=str(self._param("backend")),
                                                names_file=str(self._param("names_file")) or None,
                                                config=self._detector_config(
                                                    tracker=tracker_config if self._tracking() else None),
                                                backend_options={"tensorrt": self._tensorrt_options(),
                                                                 "onnxruntime": self._onnxruntime_options()})
        except Exception as exc:  # noqa: BLE001 - any failure must fail the transition with its reason
            self._trt_log.detach()
            reason = str(exc) if model_path in str(exc) or isinstance(exc, _ParameterError) \
                else f"model {model_path}: {exc}"
            return self._transition_failed(f"configure failed: {reason}")
        self._error = ""
        self.tracker = ByteTracker(tracker_config)
        self._stamps = StampGuard(self._param("stamp_tolerance"))
        self.stats.reset()
        self._detections_pub = self.create_lifecycle_publisher(Detection2DArray, "detections", 10)
        # Reliable depth 1: matches reliable and best-effort viewers (rviz), never queues stale images.
        self._annotated_pub = self.create_lifecycle_publisher(Image, "annotated_image", 1)
        backend = self.detector.backend
        self.get_logger().info(self.detector.backend_reason)
        self.get_logger().info(
            f"configured: model {model_path} ({backend.name}, input {backend.input_shape[3]}x"
            f"{backend.input_shape[2]}, {len(self.detector.names)} classes from {self.detector.names_source})")
        if self.detector.names_source == "fallback":
            self.get_logger().warning(f"model {model_path} has no class names in its metadata: publishing "
                                      "placeholders class_<i>; set names_file to get real names")
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _transition_failed(self, error: str) -> TransitionCallbackReturn:
        """Fail a transition: ``error`` is logged and shown on /diagnostics (ERROR) until a transition succeeds."""
        self._error = printable(error, limit=2000)
        self.get_logger().error(self._error)
        self._publish_diagnostics()
        return TransitionCallbackReturn.FAILURE

    def _tensorrt_options(self) -> dict[str, Any]:
        return {"precision": str(self._param("trt_precision")), "device": int(self._param("cuda_device")),
                "gpu_preprocess": bool(self._param("gpu_preprocess"))}

    def _onnxruntime_options(self) -> dict[str, Any]:
        return {"intra_op_threads": int(self._param("ort_threads")),
                "allow_spinning": bool(self._param("ort_allow_spinning"))}

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = str(self._param("qos_reliability"))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(self._param("qos_depth")),
                         reliability=RELIABILITY[reliability], durability=DurabilityPolicy.VOLATILE)
        self._qos_problem = ""
        topic = str(self._param("input_topic"))
        try:
            self._subscription = self.create_subscription(
                Image, topic, self._on_image if MESSAGE_INFO else lambda msg: self._on_image(msg, None), qos,
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos))
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: fail the transition with the reason
            return self._transition_failed(f"activate failed: cannot subscribe to input_topic {topic!r}: {exc}")
        self._error = ""
        self._input_topic = self._subscription.topic_name
        self.stats.restart_sequences()
        self._activated_at = time.monotonic()
        self._input_warned = False
        self._state = "active"
        published = self._detections_pub.topic_name if self._detections_pub is not None else "detections"
        self.get_logger().info(f"active: subscribed to {self._input_topic} ({reliability}, depth {qos.depth}), "
                               f"publishing {published}")
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
        self.get_logger().error(f"error during a transition from {state.label}: releasing the model")
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _destroy_subscription(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None

    def _release(self) -> None:
        self._destroy_subscription()
        for pub in (self._detections_pub, self._annotated_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._detections_pub = self._annotated_pub = None
        self.tracker = None
        if self.detector is not None:
            self.detector.close()
            self.detector = None
        self._trt_log.detach()

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    # Parameters -----------------------------------------------------------------------------------------------

    def _on_set_parameters(self, params: list[Parameter[Any]]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        structural = sorted(set(STRUCTURAL) & changes.keys())
        if structural and self._state != "unconfigured":
            return SetParametersResult(
                successful=False, reason=f"{', '.join(structural)} can only change while unconfigured "
                                         f"(now {self._state}): cleanup, set, then configure")
        problems = [BY_NAME[name].check(value) for name, value in changes.items() if name in BY_NAME]
        if any(problems):
            return SetParametersResult(successful=False, reason="; ".join(p for p in problems if p))
        if self.detector is not None:  # configured (unconfigured, configure checks the whole set)
            try:
                tracker_config = self._tracker_config(changes)
                config = self._detector_config(changes, tracker_config if self._tracking(changes) else None)
                if set(THRESHOLD_PARAMS) & changes.keys():
                    self.detector.set_config(config)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            if self.tracker is not None and set(TRACKER_FIELDS) & changes.keys():
                self.tracker.set_config(tracker_config)
        if "stamp_tolerance" in changes:
            self._stamps.tolerance_s = float(changes["stamp_tolerance"])
        if "diagnostics_period" in changes:
            self._diagnostics_timer.timer_period_ns = int(changes["diagnostics_period"] * 1e9)
        return SetParametersResult(successful=True)

    # Frames ---------------------------------------------------------------------------------------------------

    def _on_image(self, msg: Image, info: Mapping[str, Any] | None) -> None:
        """One frame through the pipeline; bad input and internal errors drop the frame (module docstring)."""
        t0 = time.perf_counter()
        now = time.monotonic()
        received = self.get_clock().now().nanoseconds * 1e-9  # the stamps' clock (sim time with use_sim_time)
        gid = info.get("publisher_gid") if info else None
        self.stats.received(now, gid["data"] if gid else None,
                            info.get("publication_sequence_number") if info else None)
        self._input_warned = False
        detector = self.detector
        if detector is None or self._detections_pub is None:
            return
        stage = "convert"
        try:
            image = image_to_array(msg)
            t1 = time.perf_counter()
            stage = "detect"
            detections = detector(image, msg.encoding)
            t2 = time.perf_counter()
            stages = {"convert": (t1 - t0) * 1e3, "preprocess": detector.last_times.preprocess,
                      "infer": detector.last_times.infer, "postprocess": detector.last_times.postprocess}
            stage = "stamp"
            stamp = msg.header.stamp
            check = self._stamps.check(stamp.sec, stamp.nanosec, received)
            if check.glitch is not None:
                self._stamp_glitch(msg, check.glitch, check.detail)
            track_ids = None
            if self.tracker is not None and self._param("tracking"):
                stage = "track"
                tracks = self.tracker.update(detections.boxes, detections.scores, detections.class_ids, check.time)
                detections, track_ids = assign_ids(detections, tracks, float(self._param("conf_threshold")),
                                                   bool(self._param("publish_untracked")))
                tracked_at = time.perf_counter()
                stages["track"] = (tracked_at - t2) * 1e3
                t2 = tracked_at
            stage = "build"
            out = self._build_detections(msg.header, detections, detector.names, track_ids)
            stage = "publish"
            self._publish(self._detections_pub, out)
            t3 = time.perf_counter()
            stages["publish"] = (t3 - t2) * 1e3
            latency_ms = plausible_latency_ms(check, stamp.sec + stamp.nanosec * 1e-9,
                                              self.get_clock().now().nanoseconds * 1e-9)
            if self._wants_annotated():
                stage = "annotate"
                canvas = self._annotator(image, msg.encoding, detections, detector.names, track_ids)
                self._publish(self._annotated_pub, array_to_image(canvas, "bgr8", Image(header=msg.header)))
                stages["annotate"] = (time.perf_counter() - t3) * 1e3
        except ImageRejected as exc:
            count = self.stats.rejected(time.monotonic(), exc.reason)
            self._log_problem(f"rejected.{exc.reason}", count,
                              f"dropped bad frame {self._describe(msg)}: {printable(exc)}")
            return
        except Exception as exc:  # noqa: BLE001 - an internal error drops this frame, never the node
            self._frame_failed(msg, stage, exc)
            return
        self.stats.processed(time.monotonic(), latency_ms, stages)

    def _describe(self, msg: Image) -> str:
        """Where a frame came from, for a log line (message text bounded and escaped)."""
        stamp = msg.header.stamp
        return (f"on {printable(self._input_topic)} (frame_id '{printable(msg.header.frame_id)}', stamp "
                f"{stamp.sec}.{stamp.nanosec:09d})")

    def _frame_failed(self, msg: Image, stage: str, exc: Exception) -> None:
        """Count and log (throttled, with the traceback) an internal error in pipeline ``stage``."""
        count = self.stats.failed(time.monotonic(), stage)
        self._last_failure = f"frames failing in {stage}: {type(exc).__name__}: {printable(exc)}"
        tb = "".join(traceback.format_tb(exc.__traceback__))
        self._log_problem(f"failed.{stage}", count, f"dropped frame {self._describe(msg)}: {stage} failed: "
                          f"{type(exc).__name__}: {printable(exc)}",
                          details=f"Traceback (most recent call last):\n{tb.rstrip()}")

    def _stamp_glitch(self, msg: Image, kind: str, detail: str) -> None:
        count = self.stats.stamp_glitch(time.monotonic(), kind)
        self._log_problem(f"stamp_glitches.{kind}", count, f"header stamp glitch {self._describe(msg)}: {detail}; tracking steps one typical frame "
                          "interval and the frame's latency is not counted", error=False)

    def _log_problem(self, key: str, count: int, text: str, error: bool = True, details: str = "") -> None:
        """Log ``text`` (and ``details`` on the lines after it) at most once per ``LOG_PERIOD_S`` for ``key``, with
        ``count``, the occurrences so far."""
        now = time.monotonic()
        last = self._logged_at.get(key)
        if last is not None and now - last < LOG_PERIOD_S:
            return
        self._logged_at[key] = now
        line = f"{text} [{key}: {count} so far; logged at most every {LOG_PERIOD_S:.0f} s]" + \
            (f"\n{details}" if details else "")
        (self.get_logger().error if error else self.get_logger().warning)(line)

    def _wants_annotated(self) -> bool:
        """Draw only while someone subscribes (False once the context is shutting down)."""
        if self._annotated_pub is None or not self._param("publish_annotated"):
            return False
        try:
            return self._annotated_pub.get_subscription_count() > 0
        except RCLError:
            return False

    def _publish(self, publisher: LifecyclePublisher[Any] | None, msg: Any) -> None:
        if publisher is None:
            return
        try:
            publisher.publish(msg)
        except RCLError as exc:
            self.get_logger().warning(f"publishing on {publisher.topic_name} failed: {exc}",
                                      throttle_duration_sec=LOG_PERIOD_S)

    def _on_reset_tracker(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """``~/reset_tracker``: forget every track; the next tracks are numbered from 1 again."""
        if self.tracker is None:
            response.success = False
            response.message = f"no tracker while {self._state}: configure the node first"
            return response
        dropped = self.tracker.tracked_count + self.tracker.lost_count
        self.tracker.reset()
        self._stamps.reset()
        response.success = True
        response.message = f"tracker reset: {dropped} tracks dropped, IDs restart at 1"
        self.get_logger().info(response.message)
        return response

    # Input topic and QoS --------------------------------------------------------------------------------------

    def _on_incompatible_qos(self, event: Any) -> None:
        """``event``: QoSRequestedIncompatibleQoSInfo (total_count, last_policy_kind)."""
        policy = QoSPolicyKind(event.last_policy_kind)
        problem = self._qos_mismatch(self.get_publishers_info_by_topic(self._input_topic))
        self._qos_problem = problem or (
            f"publisher on {printable(self._input_topic)} offers a QoS incompatible with this subscription "
            f"(policy {policy.name}): no frames will arrive from it")
        self.get_logger().warning(f"{self._qos_problem} ({event.total_count} incompatible publisher(s) so far)")

    def _qos_mismatch(self, publishers: Sequence[TopicEndpointInfo]) -> str:
        """A sentence about the publishers whose reliability this subscription cannot match ("" if none)."""
        wanted = self._subscription.qos_profile.reliability if self._subscription is not None else None
        if wanted != ReliabilityPolicy.RELIABLE:
            return ""
        offered = [info for info in publishers if info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT]
        if not offered:
            return ""
        return (f"publisher on {printable(self._input_topic)} is BEST_EFFORT but this subscription requires "
                f"RELIABLE: no frames will arrive from {len(offered)} of {len(publishers)} publisher(s); "
                "set qos_reliability:=best_effort")

    # Diagnostics ----------------------------------------------------------------------------------------------

    def _on_diagnostics_timer(self) -> None:
        try:
            if self._state == "active":
                self._check_input()
            self._publish_diagnostics()
        except Exception as exc:  # noqa: BLE001 - a diagnostics failure must not end the node
            self.get_logger().error(f"diagnostics failed: {type(exc).__name__}: {printable(exc)}\n"
                                    f"{''.join(traceback.format_tb(exc.__traceback__)).rstrip()}",
                                    throttle_duration_sec=LOG_PERIOD_S)

    def _check_input(self) -> None:
        """Warn once per silent episode when no frame arrived for ``input_timeout`` seconds, saying why if known."""
        timeout = float(self._param("input_timeout"))
        now = time.monotonic()
        age = self.stats.snapshot(now).last_input_age_s
        silent_for = min(now - self._activated_at, float("inf") if age is None else age)
        if silent_for < timeout or self._input_warned or self._subscription is None:
            return
        self._input_warned = True
        publishers = self.get_publishers_info_by_topic(self._input_topic)  # the graph: matched or not
        topic = printable(self._input_topic)
        if not publishers:
            self.get_logger().warning(f"no publisher on {topic} for {silent_for:.0f} s: check the camera driver "
                                      "and the topic name (input_topic or a remap)")
            return
        self._qos_problem = self._qos_mismatch(publishers) or self._qos_problem
        self.get_logger().warning(f"{len(publishers)} publisher(s) on {topic} but no frame for {silent_for:.0f} s"
                                  f"{': ' + self._qos_problem if self._qos_problem else ''}")

    def _status(self, problem_ages: Mapping[str, float]) -> tuple[int, str]:
        def recent(kind: str) -> bool:
            return problem_ages.get(kind, LOG_PERIOD_S) < LOG_PERIOD_S

        if self._error:
            return DiagnosticStatus.ERROR, self._error
        if self._state != "active":
            return DiagnosticStatus.OK, self._state
        if self._qos_problem:
            return DiagnosticStatus.WARN, self._qos_problem
        if recent("failed"):
            return DiagnosticStatus.WARN, self._last_failure
        if recent("rejected"):
            return DiagnosticStatus.WARN, "dropping bad frames (see rejected.*)"
        if recent("stamp"):
            return DiagnosticStatus.WARN, "header stamp glitches (see stamp_glitches.*): tracking bridges them"
        if self._input_warned:
            return DiagnosticStatus.WARN, f"no input on {printable(self._input_topic)}"
        return DiagnosticStatus.OK, "running"

    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot(time.monotonic())
        level, message = self._status(snap.problem_ages_s)
        values = [("state", self._state), ("input_topic", self._input_topic or str(self._param("input_topic"))),
                  ("model_path", str(self._param("model_path")))]
        if self.detector is not None:
            _, _, height, width = self.detector.backend.input_shape
            backend = self.detector.backend
            values += [("backend", backend.name), ("backend_reason", self.detector.backend_reason),
                       ("model_input_size", f"{width}x{height}"), ("class_count", str(len(self.detector.names)))]
            if isinstance(backend, DiagnosticsSource):
                values += sorted(backend.diagnostics().items())
        values += [("tracking", "on" if self._param("tracking") else "off")]
        if self.tracker is not None:
            values += [("tracks_active", str(self.tracker.tracked_count)),
                       ("tracks_lost", str(self.tracker.lost_count)), ("track_id_max", str(self.tracker.ids_issued))]
        else:
            values += [("backend", str(self._param("backend")))]
        values += [
            ("input_rate_hz", f"{snap.input_hz:.2f}"), ("processing_rate_hz", f"{snap.processed_hz:.2f}"),
            ("latency_p50_ms", _fmt_ms(snap.latency_p50_ms)), ("latency_p99_ms", _fmt_ms(snap.latency_p99_ms)),
            ("latency_excluded", str(snap.latency_excluded)),
            ("received", str(snap.received)), ("processed", str(snap.processed)),
            ("dropped", str(snap.dropped) if snap.drops_known else "unknown"),
            ("rejected", str(snap.rejected)), ("failed", str(sum(snap.failed_by_stage.values()))),
            ("stamp_glitches", str(sum(snap.stamp_glitches.values()))),
        ]
        for prefix, counts in (("rejected", snap.rejected_by_reason), ("failed", snap.failed_by_stage),
                               ("stamp_glitches", snap.stamp_glitches)):
            values += [(f"{prefix}.{name}", str(n)) for name, n in sorted(counts.items())]
        values += [(f"stage_p50_ms.{stage}", _fmt_ms(snap.stage_p50_ms[stage]))
                   for stage in STAGES if stage in snap.stage_p50_ms]
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: detector", message=message,
                                  hardware_id=self.get_fully_qualified_name(),
                                  values=[KeyValue(key=k, value=v) for k, v in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        try:
            self._diagnostics_pub.publish(array)
        except RCLError:
            pass  # context shutting down


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main(args: list[str] | None = None) -> None:
    """Run the node until Ctrl-C; it starts unconfigured (drive it with lifecycle services or the launch file).

    An exception escaping a callback (every frame and timer callback catches its own) is logged and the node spins
    on.
    """
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
                node.get_logger().error(f"callback failed: {type(exc).__name__}: {printable(exc)}\n"
                                        f"{traceback.format_exc().rstrip()}", throttle_duration_sec=LOG_PERIOD_S)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
