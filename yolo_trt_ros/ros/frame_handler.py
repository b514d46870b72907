"""One camera's frames before and after inference: receive, stamp check, publish or drop.

Per frame: ``FramePipeline`` detects, the header stamp is checked against the receive clock
(``ros.stamps``: a glitch steps one typical frame interval instead of ending every track), the
pipeline tracks, the Detection2DArray keeps the image header, and the annotated image is drawn
only while it has subscribers. A bad frame (``ImageRejected``) is counted per reason, an internal
error per stage (``failed.<stage>``, logged with its traceback); either way the frame is dropped,
the log line is throttled per reason (``log_text.ProblemLog``) and the node keeps serving.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.pipeline import FramePipeline, FrameResult, StageFailed
from yolo_trt_ros.ros.frame_stats import FrameStats
from yolo_trt_ros.ros.log_text import ProblemLog, printable
from yolo_trt_ros.ros.outputs import Outputs
from yolo_trt_ros.ros.stamps import StampCheck, StampGuard, plausible_latency_ms


@dataclass(frozen=True)
class Received:
    """A frame as its subscription callback got it, waiting for inference."""

    msg: Any
    time_s: float
    """Receive time on the node's clock (the stamps' clock: sim time or not)."""


class FrameHandler:
    """One camera's frames before and after inference (see the module docstring):
    ``receive`` in the subscription callback, then (by the caller) detection in batches,
    ``check_stamp``, tracking and ``publish`` or ``drop``."""

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

    def receive(self, msg: Any, info: Mapping[str, Any] | None) -> Received:
        """Count an arriving frame (with its publication sequence number, where the rmw gives
        one)."""
        received = Received(msg, self._clock.now().nanoseconds * 1e-9)
        gid = info.get("publisher_gid") if info else None
        sequence = info.get("publication_sequence_number") if info else None
        self.stats.received(time.monotonic(), gid["data"] if gid else None, sequence)
        return received

    def check_stamp(self, frame: Received) -> StampCheck:
        """The frame's header stamp against the receive clock; a glitch is counted and logged."""
        stamp = frame.msg.header.stamp
        check = self.stamps.check(stamp.sec, stamp.nanosec, frame.time_s)
        if check.glitch is not None:
            count = self.stats.stamp_glitch(time.monotonic(), check.glitch)
            self._log(
                f"stamp_glitches.{check.glitch}",
                count,
                f"header stamp glitch {self._describe(frame.msg)}: {check.detail}; tracking "
                "steps one typical frame interval and the frame's latency is not counted",
                error=False,
            )
        return check

    def publish(self, frame: Received, check: StampCheck, result: FrameResult) -> None:
        """Publish the frame's detections (and the annotated image while someone watches)."""
        msg, pipeline = frame.msg, self.pipeline
        stage = "build"
        try:
            t0 = time.perf_counter()
            out = self.outputs.build(
                msg.header, result.detections, pipeline.names, result.track_ids
            )
            stage = "publish"
            self.outputs.publish_detections(out)
            t1 = time.perf_counter()
            stages = {**result.times_ms, "publish": (t1 - t0) * 1e3}
            stamp = msg.header.stamp
            now = self._clock.now().nanoseconds * 1e-9
            latency_ms = plausible_latency_ms(check, stamp.sec + stamp.nanosec * 1e-9, now)
            if self._annotate() and self.outputs.wants_annotated():
                stage = "annotate"
                self.outputs.publish_annotated(msg.header, result, pipeline.names)
                stages["annotate"] = (time.perf_counter() - t1) * 1e3
        except Exception as exc:  # noqa: BLE001 - an internal error drops this frame, never the node
            self.drop(frame, StageFailed(stage, exc))
            return
        self.stats.processed(time.monotonic(), latency_ms, stages)

    def drop(self, frame: Received, problem: Exception) -> None:
        """Count and log (throttled) a frame that cannot be published: a bad frame
        (``ImageRejected``, per reason) or an internal error (``StageFailed``, per stage)."""
        if isinstance(problem, ImageRejected):
            count = self.stats.rejected(time.monotonic(), problem.reason)
            self._log(
                f"rejected.{problem.reason}",
                count,
                f"dropped bad frame {self._describe(frame.msg)}: {printable(problem)}",
            )
            return
        stage, cause = (
            (problem.stage, problem.__cause__ or problem)
            if isinstance(problem, StageFailed)
            else ("stamp", problem)
        )
        self._failed(frame.msg, stage, cause)

    def reset_tracker(self) -> int:
        """Forget every track (IDs restart at 1) and the stamp history; returns the number of
        tracks dropped."""
        tracker = self.pipeline.tracker
        dropped = tracker.tracked_count + tracker.lost_count
        self.pipeline.reset()
        self.stamps.reset()
        return dropped

    def _failed(self, msg: Any, stage: str, cause: BaseException) -> None:
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

    def _describe(self, msg: Any) -> str:
        """Where a frame came from, for a log line (message text bounded and escaped)."""
        stamp = msg.header.stamp
        return (
            f"on {printable(self._topic())} (frame_id '{printable(msg.header.frame_id)}', "
            f"stamp {stamp.sec}.{stamp.nanosec:09d})"
        )
