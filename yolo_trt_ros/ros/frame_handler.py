"""One camera's frames through the pipeline: stamp check, detect and track, publish.

Per frame: the header stamp is checked against the receive clock (``ros.stamps``: a glitch steps
one typical frame interval instead of ending every track), ``FramePipeline`` detects and tracks,
the Detection2DArray keeps the image header, and the annotated image is drawn only while it has
subscribers. A bad frame (``ImageRejected``) is counted per reason, an internal error per stage
(``failed.<stage>``, logged with its traceback); either way the frame is dropped, the log line is
throttled per reason (``log_text.ProblemLog``) and the node keeps serving.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import Image

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.pipeline import FramePipeline, StageFailed
from yolo_trt_ros.ros.frame_stats import FrameStats
from yolo_trt_ros.ros.log_text import ProblemLog, printable
from yolo_trt_ros.ros.outputs import Outputs
from yolo_trt_ros.ros.stamps import StampGuard, plausible_latency_ms


class FrameHandler:
    """The image callback's work for one camera topic (see the module docstring)."""

    def __init__(
        self,
        node: Node,
        pipeline: FramePipeline,
        outputs: Outputs,
        stats: FrameStats,
        stamp_tolerance_s: float,
        log_period_s: float,
        annotate: Callable[[], bool],
        topic: Callable[[], str],
    ) -> None:
        self.pipeline = pipeline
        self.outputs = outputs
        self.stats = stats
        self.stamps = StampGuard(stamp_tolerance_s)
        self.last_failure = ""
        """The last internal error, as "frames failing in <stage>: <exception>"."""
        self._clock = node.get_clock()
        logger = node.get_logger()
        self._log = ProblemLog(logger.error, logger.warning, log_period_s)
        self._annotate = annotate
        self._topic = topic

    def __call__(self, msg: Image, info: Mapping[str, Any] | None) -> None:
        received = self._clock.now().nanoseconds * 1e-9  # the stamps' clock (sim time or not)
        gid = info.get("publisher_gid") if info else None
        sequence = info.get("publication_sequence_number") if info else None
        self.stats.received(time.monotonic(), gid["data"] if gid else None, sequence)
        pipeline = self.pipeline
        stage = "stamp"
        try:
            stamp = msg.header.stamp
            check = self.stamps.check(stamp.sec, stamp.nanosec, received)
            if check.glitch is not None:
                count = self.stats.stamp_glitch(time.monotonic(), check.glitch)
                self._log(
                    f"stamp_glitches.{check.glitch}",
                    count,
                    f"header stamp glitch {self._describe(msg)}: {check.detail}; tracking steps "
                    "one typical frame interval and the frame's latency is not counted",
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
            now = self._clock.now().nanoseconds * 1e-9
            latency_ms = plausible_latency_ms(check, stamp.sec + stamp.nanosec * 1e-9, now)
            if self._annotate() and self.outputs.wants_annotated():
                stage = "annotate"
                self.outputs.publish_annotated(msg.header, result, pipeline.names)
                stages["annotate"] = (time.perf_counter() - t1) * 1e3
        except ImageRejected as exc:
            count = self.stats.rejected(time.monotonic(), exc.reason)
            self._log(
                f"rejected.{exc.reason}",
                count,
                f"dropped bad frame {self._describe(msg)}: {printable(exc)}",
            )
            return
        except Exception as exc:  # noqa: BLE001 - an internal error drops this frame, never the node
            stage, cause = (
                (exc.stage, exc.__cause__ or exc) if isinstance(exc, StageFailed) else (stage, exc)
            )
            self._failed(msg, stage, cause)
            return
        self.stats.processed(time.monotonic(), latency_ms, stages)

    def reset_tracker(self) -> int:
        """Forget every track (IDs restart at 1) and the stamp history; returns the number of
        tracks dropped."""
        tracker = self.pipeline.tracker
        dropped = tracker.tracked_count + tracker.lost_count
        self.pipeline.reset()
        self.stamps.reset()
        return dropped

    def _failed(self, msg: Image, stage: str, cause: BaseException) -> None:
        count = self.stats.failed(time.monotonic(), stage)
        what = f"{type(cause).__name__}: {printable(cause)}"
        self.last_failure = f"frames failing in {stage}: {what}"
        tb = "".join(traceback.format_tb(cause.__traceback__)).rstrip()
        self._log(
            f"failed.{stage}",
            count,
            f"dropped frame {self._describe(msg)}: {stage} failed: {what}",
            details=f"Traceback (most recent call last):\n{tb}",
        )

    def _describe(self, msg: Image) -> str:
        """Where a frame came from, for a log line (message text bounded and escaped)."""
        stamp = msg.header.stamp
        return (
            f"on {printable(self._topic())} (frame_id '{printable(msg.header.frame_id)}', "
            f"stamp {stamp.sec}.{stamp.nanosec:09d})"
        )
