"""Node ``yolo_recorder``: records what the tracker publishes (used by the demo, in the demo's
process).

Subscribes ``detections`` (one JSON line per Detection2DArray into ``detections.jsonl``),
``annotated_image`` (frames into ``annotated.mp4``) and counts the frames on the input image topic
(sensor_msgs/CompressedImage for a topic ending in ``/compressed``). The multi-camera demo runs one
per camera, in the camera's output namespace.
Latency is header stamp -> receipt here, so it includes transport both ways and the tracker's own
processing. All subscriptions are best effort: compatible with reliable and best-effort publishers
alike.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.ros.compressed_image import is_compressed
from yolo_trt_ros.ros.image_conversion import image_to_array

VIDEO_NAME = "annotated.mp4"
DETECTIONS_NAME = "detections.jsonl"


class Recorder(Node):
    """Writes ``out_dir/annotated.mp4`` and ``out_dir/detections.jsonl``; ``summary()`` has the
    counts."""

    def __init__(self, out_dir: Path, input_topic: str, video_fps: float, **kwargs: Any) -> None:
        super().__init__("yolo_recorder", **kwargs)
        self.out_dir = out_dir
        self.video_fps = video_fps
        self.frames_in = 0
        self.frames_out = 0
        self.annotated_frames = 0
        self.bad_annotated = 0
        self.per_class: Counter[str] = Counter()
        self.track_ids: set[str] = set()
        self.latencies_ms: list[float] = []
        self._first_out: float | None = None
        self._last_out: float | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)
        self._jsonl = open(out_dir / DETECTIONS_NAME, "w")  # noqa: SIM115 - closed in close()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        input_type = CompressedImage if is_compressed(input_topic) else Image
        self.create_subscription(input_type, input_topic, self._on_input, qos, raw=True)
        self.create_subscription(Detection2DArray, "detections", self._on_detections, qos)
        self.create_subscription(Image, "annotated_image", self._on_annotated, qos)

    def _on_input(self, _: bytes) -> None:
        self.frames_in += 1

    def _on_detections(self, msg: Detection2DArray) -> None:
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latency_ms = (now_ns - stamp_ns) / 1e6
        self.latencies_ms.append(latency_ms)
        now = time.monotonic()
        self._first_out = self._first_out or now
        self._last_out = now
        self.frames_out += 1
        detections = []
        for det in msg.detections:
            hyp = det.results[0].hypothesis if det.results else None
            cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
            w, h = det.bbox.size_x, det.bbox.size_y
            name = hyp.class_id if hyp else ""
            self.per_class[name] += 1
            if det.id:
                self.track_ids.add(det.id)
            detections.append(
                {
                    "class": name,
                    "score": round(hyp.score, 4) if hyp else None,
                    "id": det.id,
                    "box_xyxy": [
                        round(v, 1) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                    ],
                }
            )
        self._jsonl.write(
            json.dumps(
                {
                    "stamp": stamp_ns / 1e9,
                    "frame_id": msg.header.frame_id,
                    "latency_ms": round(latency_ms, 2),
                    "detections": detections,
                }
            )
            + "\n"
        )

    def _on_annotated(self, msg: Image) -> None:
        try:
            image = image_to_array(msg)
        except ImageRejected as exc:
            self.bad_annotated += 1
            self.get_logger().warning(f"annotated image dropped: {exc}", throttle_duration_sec=5.0)
            return
        if msg.encoding != "bgr8":
            self.bad_annotated += 1
            self.get_logger().warning(
                f"annotated image is {msg.encoding}, expected bgr8", throttle_duration_sec=5.0
            )
            return
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            path = self.out_dir / VIDEO_NAME
            self._writer = cv2.VideoWriter(
                str(path), cv2.VideoWriter.fourcc(*"mp4v"), self.video_fps, self._size
            )
            if not self._writer.isOpened():
                raise OSError(f"cannot write video {path} (OpenCV mp4v writer unavailable)")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size)
        self._writer.write(np.ascontiguousarray(image))
        self.annotated_frames += 1

    def summary(self) -> dict[str, Any]:
        """Counts, output rate and latency percentiles so far."""
        span = (self._last_out or 0.0) - (self._first_out or 0.0)
        latencies = np.asarray(self.latencies_ms)
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "detections": sum(self.per_class.values()),
            "per_class": dict(self.per_class.most_common()),
            "distinct_track_ids": len(self.track_ids),
            "annotated_frames": self.annotated_frames,
            # one video frame per annotated image: skipped frames shorten the video
            "video_fps": self.video_fps,
            "fps": round((self.frames_out - 1) / span, 2) if span > 0 else None,
            "latency_ms": {
                "p50": round(float(np.percentile(latencies, 50)), 1) if latencies.size else None,
                "p99": round(float(np.percentile(latencies, 99)), 1) if latencies.size else None,
                "max": round(float(latencies.max()), 1) if latencies.size else None,
            },
        }

    def close(self) -> None:
        """Finish the video and the JSON lines file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._jsonl.close()
