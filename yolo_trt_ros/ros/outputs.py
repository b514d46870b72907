"""The tracker node's outputs: detections (vision_msgs/Detection2DArray), the annotated image, and
its /diagnostics status."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from yolo_trt_ros.detection.annotate import Annotator
from yolo_trt_ros.pipeline import FrameResult
from yolo_trt_ros.ros.detection_msgs import DetectionArrayBuilder
from yolo_trt_ros.ros.diagnostics import Report
from yolo_trt_ros.ros.image_conversion import array_to_image
from yolo_trt_ros.ros.log_text import printable


class Outputs:
    """Lifecycle publishers ``<prefix>/detections`` and ``<prefix>/annotated_image`` of ``node``
    (no prefix: ``detections``, ``annotated_image``). A failed publish raises: the frame handler
    counts that frame as failed in publish (or annotate). After shutdown, publishing does
    nothing."""

    def __init__(self, node: LifecycleNode, prefix: str = "") -> None:
        self._node = node
        self._prefix = f"{prefix}/" if prefix else ""
        self.build = DetectionArrayBuilder()
        self.annotate = Annotator()
        self._detections: LifecyclePublisher[Detection2DArray] | None = None
        self._annotated: LifecyclePublisher[Image] | None = None

    def create(self) -> None:
        self._detections = self._node.create_lifecycle_publisher(
            Detection2DArray, f"{self._prefix}detections", 10
        )
        # Reliable depth 1: matches reliable and best-effort viewers (rviz), never queues stale
        # images.
        self._annotated = self._node.create_lifecycle_publisher(
            Image, f"{self._prefix}annotated_image", 1
        )

    def destroy(self) -> None:
        for publisher in (self._detections, self._annotated):
            if publisher is not None:
                self._node.destroy_lifecycle_publisher(publisher)
        self._detections = self._annotated = None

    @property
    def detections_topic(self) -> str:
        if self._detections is not None:
            return self._detections.topic_name
        return f"{self._prefix}detections"

    def publish_detections(self, msg: Detection2DArray) -> None:
        self._publish(self._detections, msg)

    def wants_annotated(self) -> bool:
        """Draw only while someone subscribes (False once the context is shutting down)."""
        if self._annotated is None:
            return False
        try:
            return self._annotated.get_subscription_count() > 0
        except RCLError:
            return False

    def publish_annotated(self, header: Header, result: FrameResult, names: list[str]) -> None:
        canvas = self.annotate(
            result.image, result.encoding, result.detections, names, result.track_ids
        )
        self._publish(self._annotated, array_to_image(canvas, "bgr8", Image(header=header)))

    def _publish(self, publisher: LifecyclePublisher[Any] | None, msg: Any) -> None:
        """Publish ``msg``. RCLError is raised (e.g. "cannot publish data" under load), except once
        the node's context is shut down (Ctrl-C): a frame finishing then is let go quietly."""
        if publisher is None:
            return
        try:
            publisher.publish(msg)
        except RCLError:
            if self._node.context.ok():
                raise


class DiagnosticsOutput:
    """``node``'s statuses on /diagnostics (``report()``: (name, report) of each, one per camera)
    published every ``period_s`` and on ``publish()``. A failure to make or publish them is logged
    (throttled), never raised: diagnostics must not end the node."""

    def __init__(
        self,
        node: Node,
        report: Callable[[], list[tuple[str, Report]]],
        period_s: float,
        log_period_s: float,
    ) -> None:
        self._node, self._report, self._log_period_s = node, report, log_period_s
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)

    @property
    def period_s(self) -> float:
        return self._timer.timer_period_ns * 1e-9

    def set_period(self, period_s: float) -> None:
        self._timer.timer_period_ns = int(period_s * 1e9)

    def publish(self) -> None:
        node = self._node
        try:
            msg = diagnostic_array(
                self._report(), node.get_fully_qualified_name(), node.get_clock().now().to_msg()
            )
            self._publisher.publish(msg)
        except RCLError:  # context shutting down
            pass
        except Exception as exc:  # noqa: BLE001 - a diagnostics failure must not end the node
            tb = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            node.get_logger().error(
                f"diagnostics failed: {type(exc).__name__}: {printable(exc)}\n{tb}",
                throttle_duration_sec=self._log_period_s,
            )


def diagnostic_array(reports: list[tuple[str, Report]], name: str, stamp: Time) -> DiagnosticArray:
    """The /diagnostics message of node ``name`` (fully qualified): one status "<name>: <part>"
    per (part, report) of ``reports``."""
    statuses = [
        DiagnosticStatus(
            level=bytes([report.level]),
            name=f"{name}: {part}",
            message=report.message,
            hardware_id=name,
            values=[KeyValue(key=k, value=v) for k, v in report.values],
        )
        for part, report in reports
    ]
    array = DiagnosticArray(status=statuses)
    array.header.stamp = stamp
    return array
