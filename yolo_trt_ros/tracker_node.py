"""Lifecycle node ``yolo_tracker``: camera images in, vision_msgs/Detection2DArray (+ annotated image) out.

Lifecycle (as in ros2/demos lifecycle_py):
- configure: read parameters, choose the backend (``backend: auto`` takes TensorRT when it imports and sees a GPU,
  else ONNX Runtime; the choice and why are logged and in /diagnostics), load the model (``Detector.from_model``;
  TensorRT builds or reuses a cached engine for an .onnx, its log lines are forwarded to this node's logger) and
  create the lifecycle publishers. A missing, corrupt or wrong-shaped model, or ``backend: tensorrt`` where TensorRT
  cannot run, fails the transition; the reason names the file and the problem, is logged at ERROR and is published
  on /diagnostics (level ERROR) until the next successful configure.
- activate: subscribe to ``input_topic`` (default QoS: best effort, KEEP_LAST depth 1, so a slow detector drops
  stale frames instead of queueing them) and enable the publishers.
- deactivate: unsubscribe (nothing is published while inactive); cleanup: free the model (with TensorRT: its
  device memory and CUDA context) and the publishers.

Tracking (``tracking: true``, the default): each frame's detections go through a ``ByteTracker`` timed by the
image header stamp (dropped frames are predicted over; see ``bytetrack``). ``Detection2D.id`` is the track ID as a
string, fixed for the track's life; what is published, with which box and at which detector threshold (the
detector runs at ``min(conf_threshold, track_low_thresh)`` for ByteTrack's low-score stage; untracked detections
are published, with id "", only with ``publish_untracked`` and only above ``conf_threshold``) is described in
``tracking``. IDs count up from 1 for the node's configured life: they are kept across deactivate/activate (a
pause does not rename the objects; a long pause just ends the tracks) and restart only on cleanup or through the
``~/reset_tracker`` service (std_srvs/Trigger; always offered, it answers success=false while unconfigured).
``tracking: false`` publishes plain detections (id "") as without a tracker.

Frames are processed in the subscription callback (single-threaded executor). A bad frame is counted, logged once
per reason per ``REJECT_LOG_PERIOD_S`` and dropped; the node keeps running. ``model_path``, ``backend``,
``trt_precision``, ``gpu_preprocess``, ``cuda_device``, ``names_file``, ``input_topic``, ``qos_reliability`` and
``qos_depth`` apply at configure/activate and can only be changed while unconfigured; thresholds, ``classes``,
``max_detections``, ``agnostic_nms``, ``publish_annotated``, ``diagnostics_period``, ``tracking``,
``publish_untracked`` and the tracker parameters change at run time (validated, a bad value is refused with a
reason; a tracker change keeps the tracks).

Between processes on one host, FastDDS needs ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` to deliver best-effort
camera images reliably.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolo_trt_ros.annotate import Annotator
from yolo_trt_ros.backends.base import DiagnosticsSource
from yolo_trt_ros.backends.selection import CHOICES as BACKEND_CHOICES
from yolo_trt_ros.bytetrack import ByteTracker, TrackerConfig
from yolo_trt_ros.detections import Detections
from yolo_trt_ros.detector import Detector, DetectorConfig
from yolo_trt_ros.frame_stats import STAGES, FrameStats
from yolo_trt_ros.image_conversion import ImageRejected, array_to_image, image_to_array
from yolo_trt_ros.ros_logging import RclpyLogHandler
from yolo_trt_ros.tracking import TRACKER_FIELDS, UNTRACKED, assign_ids, detector_threshold

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

MESSAGE_INFO = hasattr(Subscription, "CallbackType")
"""Iron and later pass MessageInfo (publication sequence numbers, for drop counting) to two-argument callbacks."""

NODE_NAME = "yolo_tracker"
RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
TRT_PRECISIONS = ("fp16", "fp32", "int8")
CHOICE_PARAMS: dict[str, Sequence[str]] = {"backend": BACKEND_CHOICES, "trt_precision": TRT_PRECISIONS,
                                           "qos_reliability": tuple(RELIABILITY)}
"""String parameters with a fixed set of values: another value is refused when set."""
TRT_LOGGER = "yolo_trt_ros.tensorrt"
"""The Python logger of the TensorRT backend (engine build/cache, GPU path), forwarded to the node's logger."""
REJECT_LOG_PERIOD_S = 10.0
"""A bad-input reason is logged at most once per this period (each reason separately)."""

STRUCTURAL = ("model_path", "backend", "trt_precision", "gpu_preprocess", "cuda_device", "ort_threads",
              "ort_allow_spinning", "names_file", "input_topic", "qos_reliability", "qos_depth")
"""Parameters applied at configure/activate: changeable only while unconfigured."""
DETECTOR_PARAMS = ("conf_threshold", "iou_threshold", "max_detections", "classes", "agnostic_nms")
THRESHOLD_PARAMS = (*DETECTOR_PARAMS, "tracking", "track_low_thresh")
"""Parameters that change the detector's config (tracking lowers its threshold to track_low_thresh)."""


def _descriptor(description: str, ptype: int, *, float_range: tuple[float, float] | None = None,
                int_range: tuple[int, int] | None = None, constraints: str = "") -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, type=ptype, additional_constraints=constraints)
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float_range[0], to_value=float_range[1])]
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    return descriptor


def _tracker_parameter(name: str, text: str, value_range: tuple[float, float] | None = None
                       ) -> tuple[Any, ParameterDescriptor]:
    """Default (TrackerConfig's) and descriptor of the tracker parameter ``name``."""
    default = getattr(TrackerConfig(), name)
    if isinstance(default, bool):
        return default, _descriptor(f"Tracker: {text}", ParameterType.PARAMETER_BOOL)
    if isinstance(default, int):
        assert value_range is not None
        return default, _descriptor(f"Tracker: {text}", ParameterType.PARAMETER_INTEGER,
                                    int_range=(int(value_range[0]), int(value_range[1])))
    return default, _descriptor(f"Tracker: {text}", ParameterType.PARAMETER_DOUBLE, float_range=value_range)


_UNCONFIGURED_ONLY = " Changeable only while unconfigured."
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    "model_path": ("", _descriptor(
        "YOLOv8 detection model: .onnx exported by Ultralytics, or a TensorRT .engine with its .json sidecar "
        "(yolo-trt-ros build-engine); required." + _UNCONFIGURED_ONLY, ParameterType.PARAMETER_STRING)),
    "backend": ("auto", _descriptor(
        "Inference backend; auto: TensorRT when it imports and sees a GPU, else ONNX Runtime." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_STRING, constraints="auto, tensorrt or onnxruntime")),
    "trt_precision": ("fp16", _descriptor(
        "TensorRT precision of the engine built (once, then cached) from an .onnx model_path; an .engine runs as "
        "built. int8 needs a calibrated engine (yolo-trt-ros build-engine --int8)." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_STRING, constraints="fp16, fp32 or int8")),
    "gpu_preprocess": (True, _descriptor(
        "TensorRT: letterbox the raw frame on the GPU and copy back only candidate detections." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_BOOL)),
    "cuda_device": (0, _descriptor(
        "TensorRT: CUDA device index." + _UNCONFIGURED_ONLY, ParameterType.PARAMETER_INTEGER, int_range=(0, 63))),
    "ort_threads": (0, _descriptor(
        "ONNX Runtime: intra-op threads; 0 = one per physical core." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_INTEGER, int_range=(0, 256))),
    "ort_allow_spinning": (False, _descriptor(
        "ONNX Runtime: let idle worker threads busy-wait. Off by default: on a robot the cores are shared with the "
        "camera driver, DDS and other nodes, and spinning threads slow them and, through them, inference."
        + _UNCONFIGURED_ONLY, ParameterType.PARAMETER_BOOL)),
    "names_file": ("", _descriptor(
        "Class names file (one per line or YAML names); empty: names from the model metadata." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_STRING)),
    "conf_threshold": (0.25, _descriptor(
        "Minimum class score of a detection.", ParameterType.PARAMETER_DOUBLE, float_range=(0.0, 1.0))),
    "iou_threshold": (0.7, _descriptor(
        "IoU above which NMS suppresses the lower-scored box.", ParameterType.PARAMETER_DOUBLE,
        float_range=(0.0, 1.0))),
    "max_detections": (300, _descriptor(
        "Maximum detections per image.", ParameterType.PARAMETER_INTEGER, int_range=(1, 10000))),
    "classes": (Parameter.Type.STRING_ARRAY, _descriptor(
        "Class names to publish (allow-list); empty: all classes.", ParameterType.PARAMETER_STRING_ARRAY)),
    "agnostic_nms": (False, _descriptor(
        "Suppress overlapping boxes across classes too.", ParameterType.PARAMETER_BOOL)),
    "input_topic": ("image_raw", _descriptor(
        "Image topic to subscribe to (relative names follow the node namespace)." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_STRING)),
    "qos_reliability": ("best_effort", _descriptor(
        "Reliability of the image subscription; best_effort matches every camera publisher." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_STRING, constraints="best_effort or reliable")),
    "qos_depth": (1, _descriptor(
        "Image subscription queue depth; 1 drops stale frames instead of queueing them." + _UNCONFIGURED_ONLY,
        ParameterType.PARAMETER_INTEGER, int_range=(1, 100))),
    "publish_annotated": (True, _descriptor(
        "Publish annotated_image (only drawn while it has subscribers).", ParameterType.PARAMETER_BOOL)),
    "diagnostics_period": (1.0, _descriptor(
        "Seconds between /diagnostics messages.", ParameterType.PARAMETER_DOUBLE, float_range=(0.1, 60.0))),
    "input_timeout": (5.0, _descriptor(
        "Warn when no image arrives for this many seconds while active.", ParameterType.PARAMETER_DOUBLE,
        float_range=(0.5, 3600.0))),
    "track_high_thresh": _tracker_parameter(
        "track_high_thresh", "detections scoring at least this enter the first association.", (0.0, 1.0)),
    "track_low_thresh": _tracker_parameter(
        "track_low_thresh", "detections scoring above this (below track_high_thresh) enter the second association; "
        "the detector runs at min(conf_threshold, this) while tracking.", (0.0, 1.0)),
    "new_track_thresh": _tracker_parameter(
        "new_track_thresh", "an unmatched detection scoring at least this starts a track.", (0.0, 1.0)),
    "match_thresh": _tracker_parameter(
        "match_thresh", "first association: a pair needs a cost (1 - IoU, or 1 - IoU * score) below this.",
        (0.0, 1.0)),
    "track_buffer": _tracker_parameter(
        "track_buffer", "frames (at 30 fps; scaled by frame_rate) a lost track is kept for re-identification.",
        (1, 100000)),
    "frame_rate": _tracker_parameter(
        "frame_rate", "nominal camera rate in Hz: header stamps 1/frame_rate apart are one frame.", (0.1, 1000.0)),
    "fuse_score": _tracker_parameter("fuse_score", "first association cost 1 - IoU * score instead of 1 - IoU."),
    "class_aware": _tracker_parameter("class_aware", "match detections only to tracks of their class."),
    "tracking": (True, _descriptor(
        "Track detections (ByteTrack): Detection2D.id is the track ID; false: plain detections.",
        ParameterType.PARAMETER_BOOL)),
    "publish_untracked": (False, _descriptor(
        "While tracking, also publish detections no confirmed track matched (id \"\", score >= conf_threshold).",
        ParameterType.PARAMETER_BOOL)),
}


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


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of class names, got {value!r}")
    return tuple(value)


class TrackerNode(LifecycleNode):
    """The ``yolo_tracker`` lifecycle node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declared = {name: self.declare_parameter(name, default, descriptor)
                    for name, (default, descriptor) in PARAMETERS.items()}
        if declared["classes"].value is None:  # unset, or `classes: []` in YAML
            self.set_parameters([Parameter("classes", Parameter.Type.STRING_ARRAY, [])])
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.stats = FrameStats()
        self.detector: Detector | None = None
        self.tracker: ByteTracker | None = None
        self._state = "unconfigured"
        self._error = ""  # why the last configure failed
        self._qos_problem = ""
        self._annotator = Annotator()
        self._build_detections = DetectionArrayBuilder()
        self._subscription: Subscription[Image] | None = None
        self._detections_pub: LifecyclePublisher[Detection2DArray] | None = None
        self._annotated_pub: LifecyclePublisher[Image] | None = None
        self._input_topic = ""
        self._activated_at = 0.0
        self._input_warned = False
        self._reject_logged: dict[str, float] = {}
        self._trt_log = RclpyLogHandler(self.get_logger())
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(self._param("diagnostics_period"), self._on_diagnostics_timer)
        self._reset_service = self.create_service(Trigger, "~/reset_tracker", self._on_reset_tracker)

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _tracker_config(self, overrides: Mapping[str, Any] | None = None) -> TrackerConfig:
        """The tracker parameters (with ``overrides``); ValueError if invalid."""
        values = {name: self._param(name) for name in TRACKER_FIELDS}
        values.update({k: v for k, v in (overrides or {}).items() if k in values})
        return TrackerConfig(**values)

    def _tracking(self, overrides: Mapping[str, Any] | None = None) -> bool:
        return bool((overrides or {}).get("tracking", self._param("tracking")))

    def _detector_config(self, overrides: Mapping[str, Any] | None = None,
                         tracker: TrackerConfig | None = None) -> DetectorConfig:
        """The detector parameters (with ``overrides``); the threshold lowered for ``tracker`` (see tracking)."""
        values = {name: self._param(name) for name in DETECTOR_PARAMS}
        values.update({k: v for k, v in (overrides or {}).items() if k in values})
        return DetectorConfig(
            conf_threshold=detector_threshold(float(values["conf_threshold"]), tracker),
            iou_threshold=float(values["iou_threshold"]),
            max_detections=int(values["max_detections"]),
            classes=_string_list("classes", values["classes"]),
            agnostic_nms=bool(values["agnostic_nms"]),
        )

    # Lifecycle transitions ------------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        model_path = str(self._param("model_path"))
        try:
            if not model_path:
                raise ValueError("parameter model_path is empty: pass the YOLOv8 model, e.g. "
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
            reason = str(exc) if not model_path or model_path in str(exc) or isinstance(exc, _ParameterError) \
                else f"model {model_path}: {exc}"
            self._error = f"configure failed: {reason}"
            self.get_logger().error(self._error)
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._error = ""
        self.tracker = ByteTracker(tracker_config)
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

    def _tensorrt_options(self) -> dict[str, Any]:
        return {"precision": str(self._param("trt_precision")), "device": int(self._param("cuda_device")),
                "gpu_preprocess": bool(self._param("gpu_preprocess"))}

    def _onnxruntime_options(self) -> dict[str, Any]:
        return {"intra_op_threads": int(self._param("ort_threads")),
                "allow_spinning": bool(self._param("ort_allow_spinning"))}

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = str(self._param("qos_reliability"))
        if reliability not in RELIABILITY:
            self.get_logger().error(f"activate failed: qos_reliability must be one of {sorted(RELIABILITY)}, "
                                    f"got {reliability!r}")
            return TransitionCallbackReturn.FAILURE
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(self._param("qos_depth")),
                         reliability=RELIABILITY[reliability], durability=DurabilityPolicy.VOLATILE)
        self._qos_problem = ""
        topic = str(self._param("input_topic"))
        try:
            self._subscription = self.create_subscription(
                Image, topic, self._on_image if MESSAGE_INFO else lambda msg: self._on_image(msg, None), qos,
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos))
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid topic name: fail the transition with the reason
            self.get_logger().error(f"activate failed: cannot subscribe to input_topic {topic!r}: {exc}")
            return TransitionCallbackReturn.FAILURE
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
        for name, allowed in CHOICE_PARAMS.items():
            if name in changes and changes[name] not in allowed:
                return SetParametersResult(successful=False, reason=f"{name} must be one of {', '.join(allowed)}, "
                                                                    f"got {changes[name]!r}")
        try:
            tracker_config = self._tracker_config(changes)
            config = self._detector_config(changes, tracker_config if self._tracking(changes) else None)
            if self.detector is not None and set(THRESHOLD_PARAMS) & changes.keys():
                self.detector.set_config(config)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if self.tracker is not None and set(TRACKER_FIELDS) & changes.keys():
            self.tracker.set_config(tracker_config)
        if "diagnostics_period" in changes:
            self._diagnostics_timer.timer_period_ns = int(changes["diagnostics_period"] * 1e9)
        return SetParametersResult(successful=True)

    # Frames ---------------------------------------------------------------------------------------------------

    def _on_image(self, msg: Image, info: Mapping[str, Any] | None) -> None:
        t0 = time.perf_counter()
        gid = info.get("publisher_gid") if info else None
        self.stats.received(time.monotonic(), gid["data"] if gid else None,
                            info.get("publication_sequence_number") if info else None)
        self._input_warned = False
        detector = self.detector
        if detector is None or self._detections_pub is None:
            return
        try:
            image = image_to_array(msg)
            t1 = time.perf_counter()
            detections = detector(image, msg.encoding)
        except (ImageRejected, ValueError) as exc:
            self._reject(msg, getattr(exc, "reason", "unusable_image"), str(exc))
            return
        t2 = time.perf_counter()
        stages = {"convert": (t1 - t0) * 1e3, "preprocess": detector.last_times.preprocess,
                  "infer": detector.last_times.infer, "postprocess": detector.last_times.postprocess}
        track_ids = None
        if self.tracker is not None and self._param("tracking"):
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            tracks = self.tracker.update(detections.boxes, detections.scores, detections.class_ids, stamp)
            detections, track_ids = assign_ids(detections, tracks, float(self._param("conf_threshold")),
                                               bool(self._param("publish_untracked")))
            tracked_at = time.perf_counter()
            stages["track"] = (tracked_at - t2) * 1e3
            t2 = tracked_at
        self._publish(self._detections_pub, self._build_detections(msg.header, detections, detector.names, track_ids))
        t3 = time.perf_counter()
        stages["publish"] = (t3 - t2) * 1e3
        if self._wants_annotated():
            canvas = self._annotator(image, msg.encoding, detections, detector.names, track_ids)
            annotated = array_to_image(canvas, "bgr8", Image(header=msg.header))
            self._publish(self._annotated_pub, annotated)
            stages["annotate"] = (time.perf_counter() - t3) * 1e3
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns) / 1e6 if stamp_ns else None
        self.stats.processed(time.monotonic(), latency_ms, stages)

    def _wants_annotated(self) -> bool:
        """Draw only while someone subscribes (False once the context is shutting down)."""
        if self._annotated_pub is None or not self._param("publish_annotated"):
            return False
        try:
            return self._annotated_pub.get_subscription_count() > 0
        except RCLError:
            return False

    def _publish(self, publisher: LifecyclePublisher[Any], msg: Any) -> None:
        try:
            publisher.publish(msg)
        except RCLError as exc:
            self.get_logger().warning(f"publishing on {publisher.topic_name} failed: {exc}",
                                      throttle_duration_sec=REJECT_LOG_PERIOD_S)

    def _on_reset_tracker(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """``~/reset_tracker``: forget every track; the next tracks are numbered from 1 again."""
        if self.tracker is None:
            response.success = False
            response.message = f"no tracker while {self._state}: configure the node first"
            return response
        dropped = self.tracker.tracked_count + self.tracker.lost_count
        self.tracker.reset()
        response.success = True
        response.message = f"tracker reset: {dropped} tracks dropped, IDs restart at 1"
        self.get_logger().info(response.message)
        return response

    def _reject(self, msg: Image, reason: str, detail: str) -> None:
        self.stats.rejected(reason)
        now = time.monotonic()
        last = self._reject_logged.get(reason)
        if last is not None and now - last < REJECT_LOG_PERIOD_S:
            return
        self._reject_logged[reason] = now
        count = self.stats.snapshot(now).rejected_by_reason.get(reason, 0)
        self.get_logger().error(
            f"dropped bad frame on {self._input_topic} (frame_id '{msg.header.frame_id}', stamp "
            f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}): {detail} [{reason}: {count} so far; "
            f"logged at most every {REJECT_LOG_PERIOD_S:.0f} s]")

    def _on_incompatible_qos(self, event: Any) -> None:
        """``event``: QoSRequestedIncompatibleQoSInfo (total_count, last_policy_kind)."""
        policy = QoSPolicyKind(event.last_policy_kind)
        wanted = self._subscription.qos_profile if self._subscription is not None else None
        if policy == QoSPolicyKind.RELIABILITY and wanted is not None:
            offered = sorted({info.qos_profile.reliability.name for info in
                              self.get_publishers_info_by_topic(self._input_topic)
                              if info.qos_profile.reliability != wanted.reliability})
            self._qos_problem = (
                f"publisher on {self._input_topic} is {'/'.join(offered) or 'BEST_EFFORT'} but this subscription "
                f"requires {wanted.reliability.name}: no frames will arrive from it; set qos_reliability:=best_effort")
        else:
            self._qos_problem = (f"publisher on {self._input_topic} offers a QoS incompatible with this "
                                 f"subscription (policy {policy.name}): no frames will arrive from it")
        self.get_logger().warning(f"{self._qos_problem} ({event.total_count} incompatible publisher(s) so far)")

    # Diagnostics ----------------------------------------------------------------------------------------------

    def _on_diagnostics_timer(self) -> None:
        if self._state == "active":
            self._check_input()
        self._publish_diagnostics()

    def _check_input(self) -> None:
        """Warn once per silent episode when no frame arrived for ``input_timeout`` seconds."""
        timeout = float(self._param("input_timeout"))
        now = time.monotonic()
        age = self.stats.snapshot(now).last_input_age_s
        silent_for = min(now - self._activated_at, float("inf") if age is None else age)
        if silent_for < timeout or self._input_warned or self._subscription is None:
            return
        self._input_warned = True
        publishers = self._subscription.get_publisher_count()
        if publishers == 0:
            self.get_logger().warning(f"no publisher on {self._input_topic} for {silent_for:.0f} s: check the "
                                      "camera driver and the topic name (input_topic or a remap)")
        else:
            self.get_logger().warning(
                f"{publishers} publisher(s) on {self._input_topic} but no frame for {silent_for:.0f} s"
                f"{': ' + self._qos_problem if self._qos_problem else ''}")

    def _status(self) -> tuple[int, str]:
        if self._error:
            return DiagnosticStatus.ERROR, self._error
        if self._state != "active":
            return DiagnosticStatus.OK, self._state
        if self._qos_problem:
            return DiagnosticStatus.WARN, self._qos_problem
        if self._input_warned:
            return DiagnosticStatus.WARN, f"no input on {self._input_topic}"
        return DiagnosticStatus.OK, "running"

    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot(time.monotonic())
        level, message = self._status()
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
            ("received", str(snap.received)), ("processed", str(snap.processed)),
            ("dropped", str(snap.dropped) if snap.drops_known else "unknown"),
            ("rejected", str(snap.rejected)),
        ]
        values += [(f"rejected.{reason}", str(n)) for reason, n in sorted(snap.rejected_by_reason.items())]
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
    """Run the node until Ctrl-C; it starts unconfigured (drive it with lifecycle services or the launch file)."""
    rclpy.init(args=args)
    node = TrackerNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
