"""The parameters of ``yolo_tracker``: one table (default, type, range or choices, description),
their declaration, and the check of a value against its entry.

A value given at start (``-p`` or the YAML) that fails its type or range must not take the node
down, so ``declare_all`` declares such a parameter without its constraints, holding the given
value, and returns the problem; ``on_configure`` refuses to configure while any value fails
``check``, with a reason that names the parameter, the value and what is allowed, until ``ros2
param set`` fixes it. At run time a bad value is refused.
"""

from __future__ import annotations

import array
import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    NameValidationException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.validate_topic_name import validate_topic_name

from yolo_trt_ros.detection.detector import DetectorConfig
from yolo_trt_ros.inference.selection import CHOICES as BACKEND_CHOICES
from yolo_trt_ros.pipeline import Converter, FramePipeline, PipelineConfig
from yolo_trt_ros.ros.camera import camera_name
from yolo_trt_ros.ros.log_text import printable
from yolo_trt_ros.tracking.assignment import TRACKER_FIELDS
from yolo_trt_ros.tracking.bytetrack import TrackerConfig

RELIABILITIES = ("best_effort", "reliable")
TRT_PRECISIONS = ("fp16", "fp32", "int8")
_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}
_TYPE_NAMES = {
    bool: "a boolean (true/false)",
    int: "an integer",
    float: "a double (e.g. 0.5)",
    str: "a string",
    list: "a list of strings",
}
_UNCONFIGURED_ONLY = " Changeable only while unconfigured."


@dataclass(frozen=True)
class Spec:
    """One parameter: its default (whose type is the parameter's; a list: string array), allowed
    range or choices."""

    name: str
    default: Any
    description: str
    value_range: tuple[float, float] | None = None
    choices: Sequence[str] = ()
    structural: bool = False
    """Applied at configure/activate: changeable only while unconfigured."""
    low_exclusive: bool = False
    """The range excludes its low end: (low, high]. ROS descriptors cannot say so, so the
    descriptor's range includes it and ``check`` (at configure and on set) refuses it."""

    @property
    def kind(self) -> type:
        return type(self.default)

    @property
    def range_text(self) -> str:
        """The allowed range as written in messages and the params file, e.g. [0, 1] or (0, 1]."""
        if self.value_range is None:
            return ""
        low, high = self.value_range
        return f"{'(' if self.low_exclusive else '['}{low:g}, {high:g}]"

    def descriptor(self, constrained: bool = True) -> ParameterDescriptor:
        """The ROS descriptor; ``constrained`` False drops type and range (a bad start value is
        kept, see module)."""
        text = (
            self.description
            + (f" Allowed: {self.range_text}." if self.low_exclusive else "")
            + (_UNCONFIGURED_ONLY if self.structural else "")
        )
        constraints = ", ".join(self.choices)
        if (
            self.kind is list or not constrained
        ):  # lists: an empty one may arrive typed as any array
            return ParameterDescriptor(
                description=text, additional_constraints=constraints, dynamic_typing=True
            )
        descriptor = ParameterDescriptor(
            description=text, type=_TYPES[self.kind], additional_constraints=constraints
        )
        if self.value_range is not None and self.kind is float:
            low, high = self.value_range
            descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
        elif self.value_range is not None:
            low, high = (int(v) for v in self.value_range)
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        return descriptor

    def check(self, value: Any) -> str:
        """Why ``value`` is not allowed ("" when it is), naming the parameter, the value and what
        is allowed."""
        kind = self.kind
        if kind is list:
            if value is None or (
                isinstance(value, (list, tuple, array.array))
                and all(isinstance(v, str) for v in value)
            ):
                return ""
            return f"{self.name} = {value!r} is not a list of strings, e.g. ['a', 'b']"
        fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            fits = True  # an integer given at start stands for the same double
        if not fits:
            return f"{self.name} = {value!r} ({type(value).__name__}) must be {_TYPE_NAMES[kind]}"
        if self.choices and value not in self.choices:
            return f"{self.name} = {value!r} is not allowed: one of {', '.join(self.choices)}"
        if self.value_range is not None:
            low, high = self.value_range
            above_low = low < value if self.low_exclusive else low <= value
            if not (math.isfinite(value) and above_low and value <= high):
                return f"{self.name} = {value!r} is out of range: allowed {self.range_text}"
        return ""

    def coerce(self, value: Any) -> Any:
        """A checked value as the node uses it: a double for an integer given to a double
        parameter, a tuple of class names for a list."""
        if self.kind is float:
            return float(value)
        if self.kind is list:
            return tuple(value or ())
        return value


def _tracker(
    name: str,
    text: str,
    value_range: tuple[float, float] | None = None,
    low_exclusive: bool = False,
) -> Spec:
    """A tracker parameter: its default is ``TrackerConfig``'s."""
    return Spec(
        name,
        getattr(TrackerConfig(), name),
        f"Tracker: {text}",
        value_range,
        low_exclusive=low_exclusive,
    )


SPECS: tuple[Spec, ...] = (
    Spec(
        "model_path",
        "",
        "YOLOv8 detection model: .onnx exported by Ultralytics, or a TensorRT .engine with its "
        ".json sidecar (yolo-trt-ros build-engine); required.",
        structural=True,
    ),
    Spec(
        "backend",
        "auto",
        "Inference backend; auto: TensorRT when it imports and sees a GPU, else ONNX Runtime.",
        choices=BACKEND_CHOICES,
        structural=True,
    ),
    Spec(
        "trt_precision",
        "fp16",
        "TensorRT precision of the engine built (once, then cached) from an .onnx "
        "model_path; an .engine runs as built. int8 needs a calibrated engine (yolo-trt-ros "
        "build-engine --int8).",
        choices=TRT_PRECISIONS,
        structural=True,
    ),
    Spec(
        "gpu_preprocess",
        True,
        "TensorRT: letterbox the raw frame on the GPU and copy back only candidate detections.",
        structural=True,
    ),
    Spec("cuda_device", 0, "TensorRT: CUDA device index.", (0, 63), structural=True),
    Spec(
        "rect_input",
        True,
        "Models with a dynamic input size: letterbox each frame only to the smallest rectangle "
        "of stride multiples (a 640x480 camera: 640x480, not 640x640); false: the model's "
        "nominal square.",
        structural=True,
    ),
    Spec(
        "trt_camera_width",
        0,
        "TensorRT, dynamic-size .onnx: tune the engine for the rectangular input of images this "
        "wide (with trt_camera_height); 0: for the nominal square. Any size still runs.",
        (0, 65535),
        structural=True,
    ),
    Spec(
        "trt_camera_height",
        0,
        "TensorRT, dynamic-size .onnx: the camera image height for trt_camera_width.",
        (0, 65535),
        structural=True,
    ),
    Spec(
        "ort_threads",
        0,
        "ONNX Runtime: intra-op threads; 0 = one per physical core.",
        (0, 256),
        structural=True,
    ),
    Spec(
        "ort_parallel_runs",
        0,
        "ONNX Runtime: frames inferred at once, each on its share of the cores (with ort_threads "
        "0); more images/s, each frame slower. 0: 2 for several cameras, 1 for one.",
        (0, 16),
        structural=True,
    ),
    Spec(
        "ort_allow_spinning",
        False,
        "ONNX Runtime: let idle worker threads busy-wait. Off by default: on a robot "
        "the cores are shared with the camera driver, DDS and other nodes, and spinning threads "
        "slow them and, "
        "through them, inference.",
        structural=True,
    ),
    Spec(
        "names_file",
        "",
        "Class names file (one per line or YAML names); empty: names from the model metadata.",
        structural=True,
    ),
    Spec("conf_threshold", 0.25, "Minimum class score of a detection.", (0.0, 1.0)),
    Spec("iou_threshold", 0.7, "IoU above which NMS suppresses the lower-scored box.", (0.0, 1.0)),
    Spec("max_detections", 300, "Maximum detections per image.", (1, 10000)),
    Spec("classes", [], "Class names to publish (allow-list); empty: all classes."),
    Spec("agnostic_nms", False, "Suppress overlapping boxes across classes too."),
    Spec(
        "input_topic",
        "image_raw",
        "Image topic to subscribe to (relative names follow the node namespace).",
        structural=True,
    ),
    Spec(
        "input_topics",
        [],
        "Several cameras in one node: one image topic each (sensor_msgs/Image, or "
        "CompressedImage for a topic ending in /compressed); their frames share batched "
        "inference, each camera keeps its own tracks and outputs <camera>/detections and "
        "<camera>/annotated_image. Empty: the one camera input_topic.",
        structural=True,
    ),
    Spec(
        "max_batch",
        0,
        "Several cameras: most frames per inference. 0: TensorRT as many as the model takes (an "
        "engine is built for one frame per camera), ONNX Runtime one frame per run "
        "(ort_parallel_runs side by side beat batches on the CPU); 1: one frame per inference.",
        (0, 64),
        structural=True,
    ),
    Spec(
        "camera_names",
        [],
        "Names of the input_topics cameras (their output namespaces and /diagnostics entries), "
        "in the same order; empty: each topic's namespace (/front/image_raw -> front).",
        structural=True,
    ),
    Spec(
        "qos_reliability",
        "best_effort",
        "Reliability of the image subscription; best_effort matches every camera publisher.",
        choices=RELIABILITIES,
        structural=True,
    ),
    Spec(
        "qos_depth",
        1,
        "Image subscription queue depth; 1 drops stale frames instead of queueing them.",
        (1, 100),
        structural=True,
    ),
    Spec(
        "publish_annotated", True, "Publish annotated_image (only drawn while it has subscribers)."
    ),
    Spec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", (0.1, 60.0)),
    Spec(
        "input_timeout",
        5.0,
        "Warn when no image arrives for this many seconds while active.",
        (0.5, 3600.0),
    ),
    Spec(
        "stamp_tolerance",
        1.0,
        "Seconds by which a header stamp's progress may differ from the receive clock's "
        "before the stamp counts as a glitch (the tracker then steps one typical frame interval "
        "and the frame's "
        "latency is not counted).",
        (0.01, 3600.0),
    ),
    _tracker(
        "track_high_thresh",
        "detections scoring at least this enter the first association.",
        (0.0, 1.0),
    ),
    _tracker(
        "track_low_thresh",
        "detections scoring above this (below track_high_thresh) enter the second "
        "association; the detector runs at min(conf_threshold, this) while tracking.",
        (0.0, 1.0),
    ),
    _tracker(
        "new_track_thresh",
        "an unmatched detection scoring at least this starts a track.",
        (0.0, 1.0),
    ),
    _tracker(
        "match_thresh",
        "first association: a pair needs a cost (1 - IoU, or 1 - IoU * score) below this.",
        (0.0, 1.0),
        low_exclusive=True,  # as TrackerConfig: 0 would match nothing
    ),
    _tracker(
        "track_buffer",
        "frames (at 30 fps; scaled by frame_rate) a lost track is kept for re-identification.",
        (1, 100000),
    ),
    _tracker(
        "frame_rate",
        "nominal camera rate in Hz: header stamps 1/frame_rate apart are one frame.",
        (0.1, 1000.0),
    ),
    _tracker("fuse_score", "first association cost 1 - IoU * score instead of 1 - IoU."),
    _tracker(
        "class_aware",
        "match detections only to tracks of their class (off: a track survives class flips).",
    ),
    Spec(
        "tracking",
        True,
        "Track detections (ByteTrack): Detection2D.id is the track ID; false: plain detections.",
    ),
    Spec(
        "publish_untracked",
        False,
        'While tracking, also publish detections no confirmed track matched (id "", '
        "score >= conf_threshold).",
    ),
)
BY_NAME = {spec.name: spec for spec in SPECS}
STRUCTURAL = tuple(spec.name for spec in SPECS if spec.structural)
PARAMS_FILE_WIDTH = 99
"""Longest line of the generated params file (``params_file_text``)."""
_NO_BREAK = "\u00a0"  # a space the wrapping keeps: textwrap breaks at ASCII whitespace only


def _comment(text: str, indent: str = "") -> list[str]:
    """``text`` as YAML comment lines of at most ``PARAMS_FILE_WIDTH`` columns, not breaking a
    `command`."""
    text = re.sub(r"`[^`]*`", lambda m: m[0].replace(" ", _NO_BREAK), text)
    lines = textwrap.wrap(
        text,
        PARAMS_FILE_WIDTH,
        initial_indent=f"{indent}# ",
        subsequent_indent=f"{indent}# ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace(_NO_BREAK, " ") for line in lines]


def _yaml_value(value: Any) -> str:
    """``value`` in YAML that rcl's parser reads as the parameter's type: strings quoted, doubles
    with a decimal point, booleans true/false, lists in brackets."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text if "." in text or "e" in text else f"{text}.0"
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(_yaml_value(v) for v in value)}]"
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted YAML scalar: always a string
    return str(value)


def params_file_text() -> str:
    """``config/tracker.yaml``: every parameter with its default and description, from ``SPECS``
    (``python -m yolo_trt_ros.ros.parameters > config/tracker.yaml`` writes it)."""
    header = (
        "Parameters of the yolo_tracker lifecycle node with their defaults, generated from SPECS "
        "in yolo_trt_ros/ros/parameters.py: do not edit, regenerate with "
        "`python -m yolo_trt_ros.ros.parameters > config/tracker.yaml`. tracker.launch.py "
        "passes this file (params_file:=) but sets model_path, input_topic and input_topics "
        "from its model:=, image_topic:= and image_topics:= arguments.",
        "Details: `ros2 param describe /yolo_tracker <name>`. A value out of its range or of the "
        "wrong type leaves the node unconfigured: configure fails naming it until it is fixed "
        "with `ros2 param set /yolo_tracker <name> <value>` (doubles need a decimal point there: "
        "1.0, not 1).",
        "Changeable only while unconfigured (applied at configure/activate; cleanup, set, "
        f"configure): {', '.join(STRUCTURAL)}. The others change at run time (ros2 param set). "
        "Track IDs restart only on cleanup or "
        "`ros2 service call /yolo_tracker/reset_tracker std_srvs/srv/Trigger`.",
    )
    lines = [
        *(line for paragraph in header for line in _comment(paragraph)),
        "/**/yolo_tracker:  # matches the node in any namespace (launch namespace:=...)",
        "  ros__parameters:",
    ]
    for i, spec in enumerate(SPECS):
        text = spec.description
        if spec.value_range is not None:
            text += " " + f"Range {spec.range_text}.".replace(" ", _NO_BREAK)
        if spec.choices:
            text += f" One of: {', '.join(spec.choices)}."
        text += _UNCONFIGURED_ONLY if spec.structural else ""
        if i:
            lines.append("")
        lines += [*_comment(text, "    "), f"    {spec.name}: {_yaml_value(spec.default)}"]
    return "\n".join(lines) + "\n"


def declare_all(node: Node) -> dict[str, str]:
    """Declare every parameter on ``node``; start values that fail their check are logged and
    returned as {name: problem}."""
    problems: dict[str, str] = {}
    for spec in SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except (InvalidParameterTypeException, InvalidParameterValueException):
            node.declare_parameter(spec.name, spec.default, spec.descriptor(constrained=False))
        problem = spec.check(node.get_parameter(spec.name).value)
        if problem:
            problems[spec.name] = problem
            node.get_logger().error(
                f"invalid parameter at start: {printable(problem)}; configure fails until it is "
                "fixed with ros2 param set"
            )
    for spec in SPECS:
        if spec.kind is list and spec.name not in problems:
            given = node.get_parameter(spec.name)
            if not given.value and given.type_ != Parameter.Type.STRING_ARRAY:  # [] untyped
                node.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY, [])])
    return problems


class ConfigurationError(ValueError):
    """The parameters do not make a working pipeline: ``str()`` says which and why."""


def values_of(node: Node, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's value on ``node`` as the node uses it (``Spec.coerce``), with ``changes``
    applied; only for values already checked (configure and set_parameters check them)."""
    values = {spec.name: node.get_parameter(spec.name).value for spec in SPECS}
    values.update(changes or {})
    return {name: BY_NAME[name].coerce(v) for name, v in values.items() if name in BY_NAME}


def problems_of(node: Node) -> list[str]:
    """Why the parameter values on ``node`` cannot be used: one line per bad value."""
    return [p for p in (spec.check(node.get_parameter(spec.name).value) for spec in SPECS) if p]


def change_refused(changes: Mapping[str, Any], node_state: str) -> str:
    """Why a set_parameters request ``changes`` is refused in lifecycle state ``node_state`` (""
    when it is accepted): a structural parameter outside ``unconfigured``, or a bad value."""
    structural = sorted(set(STRUCTURAL) & changes.keys())
    if structural and node_state != "unconfigured":
        return (
            f"{', '.join(structural)} can only change while unconfigured (now {node_state}): "
            "cleanup, set, then configure"
        )
    return "; ".join(
        p for p in (BY_NAME[n].check(v) for n, v in changes.items() if n in BY_NAME) if p
    )


def cameras_of(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, topic) of each camera: ``input_topics`` (named by ``camera_names`` or their
    namespaces), else the one ``input_topic``; ``ConfigurationError`` for names that do not fit."""
    topics = list(values["input_topics"]) or [values["input_topic"]]
    names = list(values["camera_names"]) or [camera_name(t, i) for i, t in enumerate(topics)]
    if len(names) != len(topics):
        raise ConfigurationError(
            f"camera_names has {len(names)} names for {len(topics)} input_topics: give one per "
            "topic, or none"
        )
    if len(set(names)) != len(names):
        raise ConfigurationError(
            f"camera names {names} repeat: set camera_names to tell the cameras apart"
        )
    if len(set(topics)) != len(topics):
        raise ConfigurationError(f"input_topics {topics} lists a topic twice")
    for name, topic in zip(names, topics, strict=True):
        _check_ros_name(
            topic, f"input topic {printable(topic)!r}", "fix input_topic or input_topics"
        )
        _check_ros_name(
            f"{name}/detections",
            f"camera name {printable(name)!r} (its outputs' namespace)",
            "set camera_names",
        )
    return list(zip(names, topics, strict=True))


def _check_ros_name(name: str, what: str, fix: str) -> None:
    """ConfigurationError unless ``name`` is a valid ROS topic name."""
    try:
        validate_topic_name(name)
    except NameValidationException as exc:
        reason = str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
        raise ConfigurationError(f"{what} is not a valid ROS name: {reason}; {fix}") from exc


def load_pipeline(values: Mapping[str, Any], convert: Converter) -> FramePipeline:
    """The frame pipeline of the checked parameter ``values``, its model loaded;
    ``ConfigurationError`` naming the parameter or the model file and the problem."""
    model_path = values["model_path"]
    if not model_path:
        raise ConfigurationError(
            "parameter model_path is empty: pass the YOLOv8 model, e.g. --ros-args -p "
            "model_path:=/path/to/yolov8n.onnx"
        )
    try:
        config = pipeline_config(values)
    except ValueError as exc:
        raise ConfigurationError(f"tracker parameters: {exc}") from exc
    try:
        pipeline = FramePipeline.from_model(
            model_path,
            config,
            values["backend"],
            values["names_file"] or None,
            backend_options(values),
            convert=convert,
            rect=values["rect_input"],
        )
    except Exception as exc:  # noqa: BLE001 - any failure to load is the configuration's
        reason = str(exc) if model_path in str(exc) else f"model {model_path}: {exc}"
        raise ConfigurationError(reason) from exc
    if values["max_batch"]:
        pipeline.detector.batch_size = min(values["max_batch"], pipeline.detector.max_batch)
    return pipeline


def pipeline_config(values: Mapping[str, Any]) -> PipelineConfig:
    """The frame pipeline's settings from checked, coerced values (``Spec.coerce``) of every
    parameter; ValueError when the tracker parameters do not fit together."""
    return PipelineConfig(
        detector=DetectorConfig(
            conf_threshold=values["conf_threshold"],
            iou_threshold=values["iou_threshold"],
            max_detections=values["max_detections"],
            classes=values["classes"],
            agnostic_nms=values["agnostic_nms"],
        ),
        tracker=TrackerConfig(**{name: values[name] for name in TRACKER_FIELDS}),
        tracking=values["tracking"],
        publish_untracked=values["publish_untracked"],
    )


def camera_hw(values: Mapping[str, Any]) -> tuple[int, int] | None:
    """(height, width) of ``trt_camera_height``/``trt_camera_width``; None unless both are set."""
    height, width = values["trt_camera_height"], values["trt_camera_width"]
    return (height, width) if height > 0 and width > 0 else None


def backend_options(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per backend, its keyword arguments (``create_backend``) from the parameter values; an
    engine built from an .onnx with a dynamic batch takes one frame per camera."""
    return {
        "tensorrt": {
            "max_batch": values["max_batch"] or max(1, len(values["input_topics"])),
            "precision": values["trt_precision"],
            "device": values["cuda_device"],
            "gpu_preprocess": values["gpu_preprocess"],
            "rect": values["rect_input"],
            "camera_hw": camera_hw(values),
        },
        "onnxruntime": {
            "intra_op_threads": values["ort_threads"],
            "allow_spinning": values["ort_allow_spinning"],
            "parallel_runs": values["ort_parallel_runs"]
            or (2 if len(values["input_topics"]) > 1 else 1),
        },
    }


if __name__ == "__main__":
    print(params_file_text(), end="")
