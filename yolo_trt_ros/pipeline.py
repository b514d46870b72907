"""The frame path, implemented once: image -> detections -> track IDs, with per-stage timings.

``FramePipeline`` is what the node (``ros.tracker_node``), ``yolo-trt-ros track``, ``eval-mot
--model``, ``bench/bench_stages.py`` and the tests run for every frame:

    convert      the caller's frame (a sensor_msgs/Image, a decoded video frame) to a uint8 array +
    encoding
    preprocess   letterbox to the model input           \
    infer        the backend (ONNX Runtime or TensorRT)   } ``Detector``
    postprocess  decode + NMS, boxes back to the image    /
    track        ``ByteTracker.update`` + ``assign_ids`` (what is published, see
    ``tracking.assignment``)

While tracking, the detector runs at ``min(conf_threshold, track_low_thresh)`` (ByteTrack's second
association needs the low-score detections) and what is published follows ``tracking.assignment``.
Bad input raises ``ImageRejected`` as it is; any other exception is re-raised as ``StageFailed``
naming the stage it came from, so a caller can drop the frame and count it per stage.
``run_batch`` runs several cameras' frames with one inference; its two halves, ``detect_frames``
and ``FramePipeline.track``, are there for a caller that runs them on two threads (the node tracks
and publishes one batch while the next is inferred).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.detection.encodings import checked_frame
from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.tracking.assignment import assign_ids, detector_threshold
from yolo_trt_ros.tracking.bytetrack import ByteTracker, TrackerConfig

STAGES = ("convert", "preprocess", "infer", "postprocess", "track")
"""The timed stages, in order; ``FrameResult.times_ms`` has each one that ran."""

Converter = Callable[[Any], "tuple[np.ndarray, str]"]
"""A frame -> (uint8 image array, encoding such as "bgr8"); raises ImageRejected for an unusable
frame."""


def bgr_frame(frame: np.ndarray) -> tuple[np.ndarray, str]:
    """The default converter: frames are BGR arrays already (OpenCV video and image reads)."""
    return frame, "bgr8"


@dataclass(frozen=True)
class PipelineConfig:
    """What a user sets: detection thresholds (``detector.conf_threshold`` is the published
    threshold), tracking."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    tracking: bool = True
    publish_untracked: bool = False
    """While tracking, also publish detections no confirmed track took (scoring at least
    conf_threshold)."""


@dataclass(frozen=True)
class FrameResult:
    """One frame's output, ready to publish."""

    image: np.ndarray
    """The converted input image (for drawing)."""
    encoding: str
    detections: Detections
    """In original-image pixels, in detection order."""
    track_ids: np.ndarray | None
    """Per detection: its track ID, or ``UNTRACKED``; None while not tracking."""
    times_ms: dict[str, float]
    """Milliseconds per stage of ``STAGES`` that ran (GPU preprocessing counts as ``infer``)."""


class StageFailed(RuntimeError):
    """An internal error in stage ``stage`` of a frame; the cause is chained. The pipeline raises
    it for "convert", "detect" and "track"; the node adds its own steps ("stamp", "build",
    "publish", "annotate")."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} failed: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.__cause__ = cause


class FramePipeline:
    """Detector + ByteTracker for one camera (see the module docstring)."""

    def __init__(
        self,
        detector: Detector,
        config: PipelineConfig | None = None,
        convert: Converter = bgr_frame,
    ) -> None:
        config = config or PipelineConfig()
        self.detector = detector
        self.convert = convert
        self.tracker = ByteTracker(config.tracker)
        self._owns_detector = True
        self.configure(config)

    @classmethod
    def from_model(
        cls,
        model_path: str | Path,
        config: PipelineConfig | None = None,
        backend: str = "auto",
        names_file: str | Path | None = None,
        backend_options: Mapping[str, Mapping[str, Any]] | None = None,
        convert: Converter = bgr_frame,
        rect: bool = True,
    ) -> FramePipeline:
        """Load the model (``Detector.from_model``: ModelError naming the file and the problem;
        ``rect``: rectangular inputs for a dynamic-size model) into a pipeline."""
        detector = Detector.from_model(
            model_path,
            backend=backend,
            names_file=names_file,
            backend_options=backend_options,
            rect=rect,
        )
        try:
            return cls(detector, config, convert)
        except Exception:
            detector.close()
            raise

    @property
    def names(self) -> list[str]:
        """Class names, indexed by class id."""
        return self.detector.names

    def configure(self, config: PipelineConfig) -> None:
        """Apply ``config`` (the tracks are kept); ValueError naming the bad value leaves
        everything unchanged."""
        self.detector.check_config(config.detector)  # the published threshold, before lowering it
        tracker = config.tracker if config.tracking else None
        conf = detector_threshold(config.detector.conf_threshold, tracker)
        self.detector.set_config(replace(config.detector, conf_threshold=conf))
        self.tracker.set_config(config.tracker)
        self.config = config

    def reset(self) -> None:
        """Forget every track; IDs restart at 1."""
        self.tracker.reset()

    def __call__(self, frame: Any, stamp: float | None) -> FrameResult:
        """Run one frame stamped ``stamp`` (seconds; None: one frame period after the previous
        frame)."""
        (result,) = run_batch([(self, frame, stamp)])
        if isinstance(result, BaseException):
            raise result
        return result

    def track(self, detected: FrameResult, stamp: float | None) -> FrameResult:
        """The tracking stage of a frame ``detect_frames`` detected for this pipeline (unchanged
        while not tracking); ``StageFailed("track")`` on an internal error."""
        if not self.config.tracking:
            return detected
        try:
            t0 = time.perf_counter()
            tracks = self.tracker.update(
                detected.detections.boxes,
                detected.detections.scores,
                detected.detections.class_ids,
                stamp,
            )
            detections, track_ids = assign_ids(
                detected.detections,
                tracks,
                self.config.detector.conf_threshold,
                self.config.publish_untracked,
            )
            times = {**detected.times_ms, "track": (time.perf_counter() - t0) * 1e3}
        except Exception as exc:
            raise StageFailed("track", exc) from exc
        return replace(detected, detections=detections, track_ids=track_ids, times_ms=times)

    def sibling(self, convert: Converter | None = None) -> FramePipeline:
        """A pipeline for another camera: the same detector (model) and settings, its own
        tracker; closing it leaves the detector to this pipeline."""
        other = FramePipeline(self.detector, self.config, convert or self.convert)
        other._owns_detector = False
        return other

    def close(self) -> None:
        """Release the model (with TensorRT: its device memory and CUDA context), unless this is a
        ``sibling``."""
        if self._owns_detector:
            self.detector.close()


def detect_frames(
    frames: Sequence[tuple[FramePipeline, Any]],
) -> list[FrameResult | ImageRejected | StageFailed]:
    """Convert each (pipeline, frame) of ``frames`` and detect in all of them at once
    (``Detector.detect_batch``: the pipelines share one detector, e.g. ``sibling``s, one per
    camera). Per frame, its untracked result (``FramePipeline.track`` is the next stage) or why it
    was dropped: its ``ImageRejected`` or a ``StageFailed`` (a failed detection fails every frame
    of the call). The detector's stage times are the call's, given to each of its frames."""
    results: dict[int, FrameResult | ImageRejected | StageFailed] = {}
    converted: list[tuple[int, np.ndarray, str, float]] = []
    for i, (pipeline, frame) in enumerate(frames):
        try:
            t0 = time.perf_counter()
            image, encoding = pipeline.convert(frame)
            image = checked_frame(image, encoding)  # a bad frame must not fail the batch
            converted.append((i, image, encoding, (time.perf_counter() - t0) * 1e3))
        except ImageRejected as exc:
            results[i] = exc
        except Exception as exc:
            results[i] = StageFailed("convert", exc)
    if converted:
        detector = frames[converted[0][0]][0].detector
        try:
            found = detector.detect_batch(
                [(image, encoding) for _, image, encoding, _ in converted]
            )
        except ImageRejected as exc:
            found = []
            for i, *_ in converted:
                results[i] = exc
        except Exception as exc:
            found = []
            for i, *_ in converted:
                results[i] = StageFailed("detect", exc)
        detected = detector.last_times
        for (i, image, encoding, convert_ms), detections in zip(converted, found, strict=False):
            times = {
                "convert": convert_ms,
                "preprocess": detected.preprocess,
                "infer": detected.infer,
                "postprocess": detected.postprocess,
            }
            results[i] = FrameResult(image, encoding, detections, None, times)
    return [results[i] for i in range(len(frames))]


def run_batch(
    frames: Sequence[tuple[FramePipeline, Any, float | None]],
) -> list[FrameResult | ImageRejected | StageFailed]:
    """Run each (pipeline, frame, stamp) of ``frames``: ``detect_frames``, then each frame's
    tracking in its own pipeline. Per frame, the result or why it was dropped."""
    detected = detect_frames([(pipeline, frame) for pipeline, frame, _ in frames])
    results: list[FrameResult | ImageRejected | StageFailed] = []
    for (pipeline, _, stamp), result in zip(frames, detected, strict=True):
        if isinstance(result, FrameResult):
            try:
                result = pipeline.track(result, stamp)
            except StageFailed as exc:
                result = exc
        results.append(result)
    return results
