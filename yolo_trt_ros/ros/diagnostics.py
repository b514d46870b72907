"""What ``yolo_tracker`` reports on /diagnostics: a pure function of the node's state and a stats
snapshot.

``report(node, stats)`` gives the level, the one-line message and the key/values of the node's
DiagnosticStatus (the node only wraps them in messages). The level is ERROR while the last
transition failed; while active, WARN for an incompatible camera QoS, for internal errors, bad
frames or stamp glitches seen within ``WARN_FOR_S``, and for a silent input; OK otherwise. A model
running on ONNX Runtime because TensorRT cannot run on this GPU machine (a degraded fallback, see
``inference.selection``) is a WARN whenever nothing more serious is current, inactive or active.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from yolo_trt_ros.detection.detector import Detector
from yolo_trt_ros.inference.base import DiagnosticsSource
from yolo_trt_ros.ros.frame_stats import STAGES, StatsSnapshot
from yolo_trt_ros.tracking.bytetrack import ByteTracker

WARN_FOR_S = 10.0
"""A problem keeps the status at WARN for this long after its last occurrence (also the log
throttle period)."""


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class ModelInfo:
    """The loaded model, as reported."""

    backend: str
    backend_reason: str
    input_width: int
    input_height: int
    class_count: int
    backend_values: Mapping[str, str] = field(default_factory=dict)
    """Backend-specific values (TensorRT: GPU, engine, device memory)."""
    gpu_unused: str = ""
    """Why this machine's NVIDIA GPU is unused and the fix ("" unless a degraded fallback)."""

    @classmethod
    def of(cls, detector: Detector) -> ModelInfo:
        backend = detector.backend
        values = backend.diagnostics() if isinstance(backend, DiagnosticsSource) else {}
        _, _, height, width = backend.input_shape
        return cls(
            backend.name,
            detector.backend_reason,
            width,
            height,
            len(detector.names),
            values,
            detector.gpu_unused,
        )


@dataclass(frozen=True)
class TrackerInfo:
    active: int
    lost: int
    id_max: int

    @classmethod
    def of(cls, tracker: ByteTracker) -> TrackerInfo:
        return cls(tracker.tracked_count, tracker.lost_count, tracker.ids_issued)


@dataclass(frozen=True)
class NodeState:
    """What the node knows besides the frame statistics."""

    state: str
    """unconfigured, inactive, active or finalized."""
    input_topic: str
    model_path: str
    backend: str
    """The ``backend`` parameter (shown until a model is loaded)."""
    tracking: bool
    error: str = ""
    """Why the last configure or activate failed ("" once a transition succeeds)."""
    qos_problem: str = ""
    last_failure: str = ""
    """The last internal error, as "frames failing in <stage>: <exception>"."""
    input_silent: bool = False
    """No frame for ``input_timeout`` while active."""
    activity: str = ""
    """What a transition in progress is doing, e.g. the last engine build progress line."""
    input_publishers: int | None = None
    """Publishers on the input topic in the graph (matched or not); None while not subscribed."""
    model: ModelInfo | None = None
    tracks: TrackerInfo | None = None


@dataclass(frozen=True)
class Report:
    level: Level
    message: str
    values: list[tuple[str, str]]


def status(node: NodeState, problem_ages_s: Mapping[str, float]) -> tuple[Level, str]:
    """The level and message: the most serious problem that is current (see the module
    docstring)."""

    def recent(kind: str) -> bool:
        return problem_ages_s.get(kind, WARN_FOR_S) < WARN_FOR_S

    gpu_unused = node.model.gpu_unused if node.model is not None else ""
    if node.error:
        return Level.ERROR, node.error
    if node.state != "active":
        if node.activity:
            return Level.OK, f"{node.state}; configuring: {node.activity}"
        if node.state == "inactive" and gpu_unused:
            return Level.WARN, f"inactive; {gpu_unused}"
        return Level.OK, node.state
    if node.qos_problem:
        return Level.WARN, node.qos_problem
    if recent("failed"):
        return Level.WARN, node.last_failure
    if recent("rejected"):
        return Level.WARN, "dropping bad frames (see rejected.*)"
    if recent("stamp"):
        return Level.WARN, "header stamp glitches (see stamp_glitches.*): tracking bridges them"
    if node.input_silent:
        return Level.WARN, f"no input on {node.input_topic}"
    if gpu_unused:
        return Level.WARN, gpu_unused
    return Level.OK, "running"


def report(node: NodeState, stats: StatsSnapshot) -> Report:
    """The node's status and key/values for one /diagnostics message."""
    level, message = status(node, stats.problem_ages_s)
    values = [
        ("state", node.state),
        ("input_topic", node.input_topic),
        ("model_path", node.model_path),
    ]
    if node.input_publishers is not None:
        values.append(("input_publishers", str(node.input_publishers)))
    model = node.model
    if model is not None:
        values += [
            ("backend", model.backend),
            ("backend_reason", model.backend_reason),
            ("model_input_size", f"{model.input_width}x{model.input_height}"),
            ("class_count", str(model.class_count)),
        ]
        values += sorted(model.backend_values.items())
    values.append(("tracking", "on" if node.tracking else "off"))
    if node.tracks is not None:
        values += [
            ("tracks_active", str(node.tracks.active)),
            ("tracks_lost", str(node.tracks.lost)),
            ("track_id_max", str(node.tracks.id_max)),
        ]
    if model is None:
        values.append(("backend", node.backend))
    values += [
        ("input_rate_hz", f"{stats.input_hz:.2f}"),
        ("processing_rate_hz", f"{stats.processed_hz:.2f}"),
        ("latency_p50_ms", _ms(stats.latency_p50_ms)),
        ("latency_p99_ms", _ms(stats.latency_p99_ms)),
        ("latency_excluded", str(stats.latency_excluded)),
        ("received", str(stats.received)),
        ("processed", str(stats.processed)),
        ("dropped", str(stats.dropped) if stats.drops_known else "unknown"),
        ("superseded", str(stats.superseded)),
        ("rejected", str(stats.rejected)),
        ("failed", str(sum(stats.failed_by_stage.values()))),
        ("stamp_glitches", str(sum(stats.stamp_glitches.values()))),
    ]
    for prefix, counts in (
        ("rejected", stats.rejected_by_reason),
        ("failed", stats.failed_by_stage),
        ("stamp_glitches", stats.stamp_glitches),
    ):
        values += [(f"{prefix}.{name}", str(n)) for name, n in sorted(counts.items())]
    values += [
        (f"stage_p50_ms.{stage}", _ms(stats.stage_p50_ms[stage]))
        for stage in STAGES
        if stage in stats.stage_p50_ms
    ]
    return Report(level, message, values)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
