"""One camera of ``yolo_tracker``: its input topic, outputs, statistics, stamp check and tracker.

A camera is named after its topic's namespace (``/front/image_raw`` -> ``front``,
``/arm/camera/color/image_raw/compressed`` -> ``arm/camera/color``) unless ``camera_names``
says otherwise; with several cameras its outputs are ``<name>/detections`` and
``<name>/annotated_image`` (relative to the node's namespace), with one camera ``detections`` and
``annotated_image`` as they always were. A topic ending in ``/compressed`` (image_transport's
convention) carries sensor_msgs/CompressedImage (JPEG, PNG).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image

from yolo_trt_ros.pipeline import FramePipeline
from yolo_trt_ros.ros import diagnostics
from yolo_trt_ros.ros.compressed_image import compressed_to_array, is_compressed
from yolo_trt_ros.ros.frame_handler import FrameHandler, Received
from yolo_trt_ros.ros.frame_stats import FrameStats
from yolo_trt_ros.ros.image_conversion import image_frame
from yolo_trt_ros.ros.input_monitor import InputMonitor
from yolo_trt_ros.ros.outputs import Outputs

IMAGE_SEGMENTS = (
    "image_raw",
    "image_rect",
    "image_color",
    "image_rect_color",
    "image_rect_raw",
    "image_mono",
    "image",
)
"""Last topic segments that name the image stream, not the camera (dropped from the name)."""


def camera_name(topic: str, index: int) -> str:
    """The camera's name from its topic's namespace; ``camera<index>`` when nothing is left."""
    parts = [p for p in topic.strip("/").lstrip("~").split("/") if p]
    if parts and parts[-1] == "compressed":
        parts.pop()
    if parts and parts[-1] in IMAGE_SEGMENTS:
        parts.pop()
    return "/".join(parts) or f"camera{index}"


class Camera:
    """One camera's subscription (``input``), outputs, statistics and frame handling
    (``frames``, with its own tracker in ``pipeline``)."""

    def __init__(
        self,
        node: LifecycleNode,
        index: int,
        name: str,
        topic: str,
        pipeline: FramePipeline,
        output_prefix: str,
        stamp_tolerance_s: float,
        log_period_s: float,
        annotate: Callable[[], bool],
    ) -> None:
        self.index = index
        self.name = name
        self.topic = topic
        self.compressed = is_compressed(topic)
        self.pipeline = pipeline
        self.input = InputMonitor(node)
        self.outputs = Outputs(node, output_prefix)
        self.stats = FrameStats()
        self.frames = FrameHandler(
            node,
            pipeline,
            self.outputs,
            self.stats,
            stamp_tolerance_s,
            log_period_s,
            annotate,
            topic=lambda: self.input.topic or topic,
        )

    @staticmethod
    def converter(topic: str) -> Callable[[Any], tuple[Any, str]]:
        """How frames of ``topic`` become images."""
        return compressed_to_array if is_compressed(topic) else image_frame

    def subscribe(self, qos: QoSProfile, deliver: Callable[[Camera, Received], None]) -> None:
        """Subscribe to the camera's topic; each frame is counted and handed to ``deliver``."""

        def arrived(msg: Any, info: Mapping[str, Any] | None) -> None:
            deliver(self, self.frames.receive(msg, info))

        msg_type = CompressedImage if self.compressed else Image
        self.input.subscribe(msg_type, self.topic, qos, arrived)
        self.stats.restart_sequences()

    def release(self) -> None:
        self.input.unsubscribe()
        self.outputs.destroy()

    def state(self, node: diagnostics.NodeState) -> diagnostics.NodeState:
        """What /diagnostics reports for this camera: the node's part, with the camera's input,
        failures and tracks."""
        return replace(
            node,
            input_topic=self.input.topic or self.topic,
            qos_problem=self.input.qos_problem,
            last_failure=self.frames.last_failure,
            input_silent=self.input.silent,
            input_publishers=self.input.publishers(),
            tracks=diagnostics.TrackerInfo.of(self.pipeline.tracker),
        )

    def report(
        self, node: diagnostics.NodeState, input_timeout_s: float | None
    ) -> diagnostics.Report:
        """This camera's /diagnostics status; with ``input_timeout_s`` (while active) it first
        checks that frames arrive."""
        snapshot = self.stats.snapshot(time.monotonic())
        if input_timeout_s is not None:
            self.input.check(snapshot.last_input_age_s, input_timeout_s)
        return diagnostics.report(self.state(node), snapshot)
