"""Node ``image_replay``: publishes a video file, an image folder or a MOT sequence as a camera
would.

Publishes sensor_msgs/Image (bgr8) on ``image_raw`` (remap it) at the source frame rate or
``rate``, stamped with the time of publishing and ``frame_id``. When the topic, remapped, ends in
``/compressed`` (image_transport's convention, e.g. ``-r image_raw:=image_raw/compressed``), it
publishes sensor_msgs/CompressedImage instead: JPEG of quality ``jpeg_quality``, format
``bgr8; jpeg compressed bgr8``, same header. The next frame is decoded (and encoded) right
after each publish, so the timer only publishes; the timer runs on a fixed schedule and does not
drift. Without ``loop`` the node exits at the end of the source (``exit_on_end``, default true)
after logging ``published N frames ...``.

Over FastDDS on one machine, set ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``: the default transports
lose most best-effort 640x480 frames.
"""

from __future__ import annotations

import array
import sys
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.task import Future
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image

from yolo_trt_ros.ros.compressed_image import is_compressed
from yolo_trt_ros.ros.image_conversion import array_to_image
from yolo_trt_ros.ros.interrupts import ignore_interrupts
from yolo_trt_ros.ros.qos import image_qos
from yolo_trt_ros.sources import FrameSource, SourceError, open_source

ACK_TIMEOUT_S = 5.0
JPEG_FORMAT = "bgr8; jpeg compressed bgr8"
"""CompressedImage ``format`` of the frames, as image_transport's compressed plugin writes it."""


class ReplayError(ValueError):
    """Bad parameters or an unusable source; the message says which and why."""


class ImageReplay(Node):
    """Publishes the frames of a source on ``image_raw`` at a fixed rate; ``finished`` completes at
    the end."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("image_replay", **kwargs)
        p = self._declare_parameters()
        try:
            qos = image_qos(p["qos_reliability"], p["qos_depth"])
        except ValueError as exc:
            raise ReplayError(str(exc)) from exc
        if not p["source"]:
            raise ReplayError(
                "parameter 'source' is required: a video file, an image folder or a MOT sequence"
            )
        try:
            self._source: FrameSource = open_source(p["source"], p["rate"] or None)
        except SourceError as exc:
            raise ReplayError(str(exc)) from exc
        self._frame_id: str = p["frame_id"]
        self._loop: bool = p["loop"]
        self._max_frames: int = p["max_frames"]
        self._wait_for: int = p["wait_for_subscribers"]
        self.exit_on_end: bool = p["exit_on_end"]
        self._jpeg_quality: int = p["jpeg_quality"]
        self._compressed = is_compressed(self.resolve_topic_name("image_raw"))
        self._publisher = self.create_publisher(
            CompressedImage if self._compressed else Image, "image_raw", qos
        )
        self.finished: Future[int] = Future()
        self.published = 0
        self.publish_errors = 0
        self.failed = False
        self._started_at = 0.0
        self._frames: Iterator[tuple[int, np.ndarray]] = iter(self._source)
        self._next = self._prefetch()
        if self._next is None:
            raise ReplayError(f"{self._source.description}: no frames")
        limit = f", max {self._max_frames} frames" if self._max_frames else ""
        jpeg = f"JPEG CompressedImage, quality {self._jpeg_quality}, " if self._compressed else ""
        self.get_logger().info(
            f"replaying {self._source.description} at {self._source.fps:g} fps on "
            f"{self._publisher.topic_name} "
            f"({jpeg}{p['qos_reliability']}, depth {p['qos_depth']}, frame_id {self._frame_id!r}"
            f"{', loop' if self._loop else ''}{limit})"
        )
        if self._wait_for:
            self.get_logger().info(f"waiting for {self._wait_for} subscriber(s) before publishing")
        self._timer: Timer = self.create_timer(1.0 / self._source.fps, self._tick)

    def _declare_parameters(self) -> dict[str, Any]:
        def desc(text: str, **ranges: Any) -> ParameterDescriptor:
            return ParameterDescriptor(description=text, **ranges)

        specs: dict[str, tuple[Any, ParameterDescriptor]] = {
            "source": (
                "",
                desc(
                    "video file, image folder, or MOTChallenge sequence folder / its img1/",
                    read_only=True,
                ),
            ),
            "rate": (
                0.0,
                desc(
                    "publish rate in Hz; 0 = the source's frame rate",
                    read_only=True,
                    floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0)],
                ),
            ),
            "frame_id": ("camera", desc("header.frame_id of the published images")),
            "loop": (False, desc("start over at the end of the source")),
            "max_frames": (
                0,
                desc(
                    "stop after publishing this many frames; 0 = no limit",
                    read_only=True,
                    integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1)],
                ),
            ),
            "qos_reliability": (
                "best_effort",
                desc("best_effort (sensor data) or reliable", read_only=True),
            ),
            "qos_depth": (
                1,
                desc(
                    "publisher queue depth",
                    read_only=True,
                    integer_range=[IntegerRange(from_value=1, to_value=100)],
                ),
            ),
            "wait_for_subscribers": (
                0,
                desc(
                    "publish nothing until this many subscribers are matched",
                    read_only=True,
                    integer_range=[IntegerRange(from_value=0, to_value=100)],
                ),
            ),
            "jpeg_quality": (
                90,
                desc(
                    "JPEG quality (1-100) of the frames on a .../compressed topic",
                    read_only=True,
                    integer_range=[IntegerRange(from_value=1, to_value=100)],
                ),
            ),
            "exit_on_end": (
                True,
                desc(
                    "exit the process at the end of the source (when not looping)", read_only=True
                ),
            ),
        }
        return {
            name: self.declare_parameter(name, default, d).value
            for name, (default, d) in specs.items()
        }

    def _prefetch(self) -> Image | CompressedImage | None:
        """Decode the next frame into a message ready to publish (None at the end of the
        source or when it cannot be encoded)."""
        try:
            item = next(self._frames, None)
            if item is None and self._loop and self.published:
                self._frames = iter(self._source)
                item = next(self._frames, None)
        except SourceError as exc:
            self.get_logger().error(f"stopping: {exc}")
            self.failed = True
            item = None
        if item is None:
            return None
        if not self._compressed:
            return array_to_image(item[1], "bgr8", Image())
        ok, encoded = cv2.imencode(".jpg", item[1], [cv2.IMWRITE_JPEG_QUALITY, self._jpeg_quality])
        if not ok:
            self.get_logger().error(f"stopping: frame {item[0]} could not be encoded as JPEG")
            self.failed = True
            return None
        return CompressedImage(format=JPEG_FORMAT, data=array.array("B", encoded.tobytes()))

    def _tick(self) -> None:
        if self._wait_for and self._publisher.get_subscription_count() < self._wait_for:
            return
        self._wait_for = 0
        msg = self._next
        if msg is None or (self._max_frames and self.published >= self._max_frames):
            self._finish()
            return
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        try:
            self._publisher.publish(msg)
        except RCLError as exc:
            self.publish_errors += 1
            self.get_logger().warning(f"publish failed: {exc}", throttle_duration_sec=5.0)
        else:
            if not self.published:
                self._started_at = time.monotonic()
            self.published += 1
        self._next = self._prefetch()

    def _finish(self) -> None:
        self._timer.cancel()
        # A reliable sample is delivered only once acknowledged: exiting earlier would drop the
        # last frames.
        if not self._publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)):
            self.get_logger().warning(
                f"not every frame was acknowledged within {ACK_TIMEOUT_S:g} s"
            )
        self.log_totals()
        self.finished.set_result(self.published)

    def log_totals(self) -> None:
        """Log ``published N frames in T s (R fps), E publish errors`` (the demo reads N from this
        line)."""
        elapsed = time.monotonic() - self._started_at if self.published else 0.0
        rate = (self.published - 1) / elapsed if elapsed > 0 else 0.0
        self.get_logger().info(
            f"published {self.published} frames in {elapsed:.2f} s ({rate:.1f} fps), "
            f"{self.publish_errors} publish errors"
        )


def main(args: list[str] | None = None) -> int:
    """Console entry point ``image_replay``; exit status 1 for bad parameters or an unreadable
    source."""
    rclpy.init(args=args)
    node: ImageReplay | None = None
    try:
        node = ImageReplay()
        if node.exit_on_end:
            rclpy.spin_until_future_complete(node, node.finished)
        else:
            rclpy.spin(node)
        return 1 if node.failed else 0
    except (ReplayError, ParameterException) as exc:
        rclpy.logging.get_logger("image_replay").fatal(f"cannot start: {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        ignore_interrupts()
        if node is not None and not node.finished.done():
            node.log_totals()
        return 0
    finally:
        ignore_interrupts()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
