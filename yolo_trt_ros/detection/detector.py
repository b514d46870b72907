"""Detector: letterbox -> backend inference -> decode of the model's output layout, with per-stage
timings."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolo_trt_ros.detection.class_names import fallback_names, load_names_file, names_from_metadata
from yolo_trt_ros.detection.decode import decode_end2end, decode_yolov5, decode_yolov8
from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.detection.letterbox import Letterbox, LetterboxTransform, rect_input_hw
from yolo_trt_ros.detection.model_layout import LayoutKind, ModelLayout, check_layout
from yolo_trt_ros.inference.base import (
    Backend,
    DynamicInput,
    FrameBackend,
    ModelError,
    ParallelRuns,
)
from yolo_trt_ros.inference.selection import Selection, create_backend


@dataclass
class DetectorConfig:
    """Runtime-changeable detection settings."""

    conf_threshold: float = 0.25
    iou_threshold: float = 0.7
    max_detections: int = 300
    classes: Sequence[str] = ()
    """Allow-list of class names; empty = all classes."""
    agnostic_nms: bool = False
    multi_label: bool = False
    """Keep every class above ``conf_threshold`` per anchor (Ultralytics val does, for mAP); False
    for tracking."""


@dataclass
class StageTimes:
    """Milliseconds spent in each stage for the last frame (GPU preprocessing: 0, it is part of
    ``infer``)."""

    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.infer + self.postprocess

    def __add__(self, other: StageTimes) -> StageTimes:
        return StageTimes(
            self.preprocess + other.preprocess,
            self.infer + other.infer,
            self.postprocess + other.postprocess,
        )


class Detector:
    """Detects objects in uint8 images; boxes come back in original-image pixels.

    ``names_source`` says where the names came from: "names_file", "metadata", "fallback"
    (placeholders ``class_<i>``: callers should warn) or "given" (passed to the constructor);
    ``selection`` why this backend was chosen (set by ``from_model``; ``backend_reason`` its log
    line). A ``FrameBackend`` with
    ``gpu_preprocessing`` on gets the raw frame (letterboxed on the GPU) instead of the CPU
    letterbox's tensor. The output layout (``layout``: one-to-many, end-to-end or YOLOv5, see
    ``model_layout``) is decided once here; any other is refused with a ModelError.

    ``rect`` True (the default): a model with dynamic input height/width (``DynamicInput``) gets
    each frame letterboxed only to the smallest rectangle of multiples of its largest stride that
    holds the frame scaled to its nominal size (Ultralytics' ``auto`` letterbox: 640x480 ->
    640x480, 768x432 -> 640x384 at 640); other models, and ``rect`` False, get the nominal size.

    ``detect_batch`` runs several frames (several cameras) as batches of up to ``batch_size``
    frames (by default the backend's ``max_batch``; 1 with parallel runs): one input shape per
    batch, each frame's rectangle when all frames share it, else the nominal size.

    Up to ``parallel_runs`` threads may detect at once (a ``ParallelRuns`` backend, ONNX Runtime:
    letterbox buffers and ``last_times`` are per thread, a ``set_config`` takes effect for each
    call as a whole); otherwise one at a time.
    """

    def __init__(
        self,
        backend: Backend,
        names: Sequence[str],
        config: DetectorConfig | None = None,
        rect: bool = True,
    ):
        self.layout = _layout(backend)
        num_classes = self.layout.num_classes
        if num_classes is not None and len(names) != num_classes:
            raise ModelError(
                f"model {backend.model_path}: {len(names)} class names given but the model "
                "outputs "
                f"{num_classes} classes (output shape {list(backend.output_shape)})"
            )
        self.backend = backend
        self.names = list(names)
        self.names_source = "given"
        self.selection: Selection | None = None
        self.rect = rect and isinstance(backend, DynamicInput) and backend.dynamic_hw
        self._stride = max(self.layout.strides) if self.rect else None
        self._per_thread = threading.local()  # letterbox buffers and last_times
        self._frame_backend = (
            backend if isinstance(backend, FrameBackend) and backend.gpu_preprocessing else None
        )
        # candidate compaction pays on the one-to-many output (8400 anchors, most below the
        # threshold); an end-to-end output is 300 rows already, a YOLOv5 one anchor-major
        self._compact = self.layout.kind is LayoutKind.ONE_TO_MANY
        self.parallel_runs = backend.parallel_runs if isinstance(backend, ParallelRuns) else 1
        """How many threads may detect at once."""
        # Runs side by side, each on its share of the CPU cores, give as many images/s as batches
        # at ~0.6x the latency (4 cameras, 2 cores; BENCHMARKS.md "Several cameras").
        self.batch_size = 1 if self.parallel_runs > 1 else backend.max_batch
        """Frames per inference in ``detect_batch`` (1 .. ``max_batch``)."""
        self._settings: tuple[DetectorConfig, np.ndarray | None] = (DetectorConfig(), None)
        self.set_config(config or DetectorConfig())

    @classmethod
    def from_model(
        cls,
        model_path: str | Path,
        backend: str = "onnxruntime",
        names_file: str | Path | None = None,
        config: DetectorConfig | None = None,
        backend_options: Mapping[str, Mapping[str, Any]] | None = None,
        rect: bool = True,
    ) -> Detector:
        """Load a model and its class names (``names_file`` if given, else model metadata, else
        placeholders).

        ``backend`` is "onnxruntime", "tensorrt" or "auto"; ``backend_options`` go to
        ``create_backend`` (per backend name, e.g. ``{"onnxruntime": {"intra_op_threads": 1}}``);
        ``rect`` as in the class docstring.
        Raises ModelError naming the file and the problem (also for an output layout this package
        does not decode, a bad names file, a names count that does not match the model, or an
        invalid ``config`` such as an unknown class in ``classes``).
        """
        engine, selection = create_backend(backend, model_path, backend_options)
        try:
            names, source = _resolve_names(engine, names_file)
            try:
                detector = cls(engine, names, config, rect)
            except ValueError as exc:
                raise ModelError(f"model {engine.model_path}: {exc}") from exc
        except Exception:
            engine.close()
            raise
        detector.names_source = source
        detector.selection = selection
        return detector

    @property
    def backend_reason(self) -> str:
        return self.selection.reason if self.selection is not None else ""

    @property
    def gpu_unused(self) -> str:
        """Why the machine's NVIDIA GPU is left unused (a degraded ``auto`` fallback), or ""."""
        return self.selection.warning if self.selection is not None else ""

    def load_notes(self, names_hint: str) -> list[tuple[bool, str]]:
        """What to tell the user once the model is loaded, as (is a warning, text): why this
        backend (a warning when it leaves a GPU unused), and placeholder class names (with
        ``names_hint``, how to give real ones)."""
        notes = [(bool(self.gpu_unused), self.backend_reason)]
        if self.names_source == "fallback":
            notes.append(
                (
                    True,
                    f"model {self.backend.model_path} has no class names in its metadata: using "
                    f"placeholders class_<i>; {names_hint}",
                )
            )
        return notes

    def describe(self) -> str:
        """Backend, input size, and the number of classes and where their names came from."""
        _, _, height, width = self.backend.input_shape
        rect = " or smaller (rectangular)" if self.rect else ""
        return (
            f"{self.backend.name}, input {width}x{height}{rect}, {len(self.names)} classes from "
            f"{self.names_source}"
        )

    @property
    def config(self) -> DetectorConfig:
        return self._settings[0]

    @property
    def last_times(self) -> StageTimes:
        """This thread's last ``__call__`` or ``detect_batch``."""
        times: StageTimes = getattr(self._per_thread, "times", StageTimes())
        return times

    @last_times.setter
    def last_times(self, times: StageTimes) -> None:
        self._per_thread.times = times

    def set_config(self, config: DetectorConfig) -> None:
        """Validate and apply ``config``; raises ValueError (config unchanged) naming the bad
        value."""
        self._settings = (config, self.check_config(config))

    def check_config(self, config: DetectorConfig) -> np.ndarray | None:
        """Validate ``config`` without applying it: ValueError naming the bad value; else the
        class ids its allow-list keeps (None: all)."""
        for field in ("conf_threshold", "iou_threshold"):
            value = getattr(config, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field} must be in [0, 1], got {value}")
        if int(config.max_detections) != config.max_detections or config.max_detections < 1:
            raise ValueError(
                f"max_detections must be an integer >= 1, got {config.max_detections}"
            )
        class_filter = None
        if config.classes:
            unknown = [c for c in config.classes if c not in self.names]
            if unknown:
                raise ValueError(
                    f"classes: unknown class {', '.join(map(repr, unknown))} (the model has "
                    f"{len(self.names)} "
                    "classes: "
                    f"{', '.join(self.names[:10])}{', ...' if len(self.names) > 10 else ''})"
                )
            wanted = set(config.classes)
            class_filter = np.array([i for i, n in enumerate(self.names) if n in wanted], np.int64)
        return class_filter

    def __call__(self, image: np.ndarray, encoding: str = "bgr8") -> Detections:
        """Detect in a uint8 image (see ``Letterbox`` for layouts); ValueError for an unusable
        image."""
        settings = self._settings
        t0 = time.perf_counter()
        if self._frame_backend is not None:
            t1 = t0
            output, transform = self._frame_backend.infer_image(
                image,
                encoding,
                settings[0].conf_threshold if self._compact else None,
                self._stride,
            )
        else:
            tensor, transform = self._letterbox(0, self._stride)(image, encoding)
            t1 = time.perf_counter()
            output = self.backend.infer(tensor)
        t2 = time.perf_counter()
        dets = self._original(self._decode(output, settings), transform)
        t3 = time.perf_counter()
        self.last_times = StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return dets

    @property
    def max_batch(self) -> int:
        """The most frames one inference takes."""
        return int(self.backend.max_batch)

    def detect_batch(self, frames: Sequence[tuple[np.ndarray, str]]) -> list[Detections]:
        """Detect in each (uint8 image, encoding) of ``frames``: one inference per ``batch_size``
        frames (one after the other for a batch size of 1). ValueError for an unusable image
        (``ImageRejected``: check each frame alone first to keep the others). ``last_times``: the
        whole call's."""
        results: list[Detections] = []
        times = StageTimes()
        size = max(1, min(self.batch_size, self.max_batch))
        if len(frames) <= 1 or size == 1:
            for image, encoding in frames:
                results.append(self(image, encoding))
                times += self.last_times
        else:
            for start in range(0, len(frames), size):
                results += self._batch(frames[start : start + size])
                times += self.last_times
        self.last_times = times
        return results

    def _batch(self, frames: Sequence[tuple[np.ndarray, str]]) -> list[Detections]:
        """One inference over ``frames`` (at most ``max_batch``), timed in ``last_times``."""
        settings = self._settings
        t0 = time.perf_counter()
        if self._frame_backend is not None:
            conf = settings[0].conf_threshold if self._compact else None
            outputs = self._frame_backend.infer_images(frames, conf, self._stride)
            t2 = time.perf_counter()
            results = [self._original(self._decode(out, settings), t) for out, t in outputs]
            self.last_times = StageTimes(0.0, (t2 - t0) * 1e3, (time.perf_counter() - t2) * 1e3)
            return results
        stride = self._stride
        if stride is not None:
            nominal = (self.backend.input_shape[2], self.backend.input_shape[3])
            sizes = {rect_input_hw(image.shape[:2], nominal, stride) for image, _ in frames}
            stride = stride if len(sizes) == 1 else None
        tensors, transforms = [], []
        for slot, (image, encoding) in enumerate(frames):
            tensor, transform = self._letterbox(slot, stride)(image, encoding)
            tensors.append(tensor)
            transforms.append(transform)
        batch = np.concatenate(tensors)
        t1 = time.perf_counter()
        output = self.backend.infer(batch)
        t2 = time.perf_counter()
        results = [
            self._original(self._decode(output[i : i + 1], settings), t)
            for i, t in enumerate(transforms)
        ]
        t3 = time.perf_counter()
        self.last_times = StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return results

    @staticmethod
    def _original(dets: Detections, transform: LetterboxTransform) -> Detections:
        """``dets`` with boxes in original-image pixels."""
        if not len(dets):
            return dets
        return Detections(transform.to_original(dets.boxes), dets.scores, dets.class_ids)

    def _letterbox(self, slot: int, stride: int | None) -> Letterbox:
        """This thread's letterbox (its reused buffers) for batch slot ``slot``."""
        letterboxes: dict[tuple[int, int | None], Letterbox] = vars(self._per_thread).setdefault(
            "letterboxes", {}
        )
        key = (slot, stride)
        if key not in letterboxes:
            letterboxes[key] = Letterbox(
                self.backend.input_shape[2:], self.backend.input_dtype, stride=stride
            )
        return letterboxes[key]

    def _decode(
        self, output: np.ndarray, settings: tuple[DetectorConfig, np.ndarray | None]
    ) -> Detections:
        """Decode one raw output by the model's layout with ``settings`` (config, class filter),
        in input pixels."""
        cfg, class_filter = settings
        if self.layout.kind is LayoutKind.END_TO_END:
            return decode_end2end(
                output,
                cfg.conf_threshold,
                int(cfg.max_detections),
                len(self.names),
                class_filter=class_filter,
            )
        decode = decode_yolov5 if self.layout.kind is LayoutKind.YOLOV5 else decode_yolov8
        return decode(
            output,
            cfg.conf_threshold,
            cfg.iou_threshold,
            int(cfg.max_detections),
            class_filter=class_filter,
            agnostic=cfg.agnostic_nms,
            multi_label=cfg.multi_label,
        )

    def close(self) -> None:
        self.backend.close()


def _resolve_names(backend: Backend, names_file: str | Path | None) -> tuple[list[str], str]:
    """(names, source): from ``names_file`` if given, else the model metadata, else
    placeholders."""
    num_classes = _layout(backend).num_classes
    if names_file:
        try:
            names = load_names_file(names_file)
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
        if num_classes is not None and len(names) != num_classes:
            raise ModelError(
                f"names file {names_file}: {len(names)} names but model {backend.model_path} "
                "outputs "
                f"{num_classes} classes"
            )
        return names, "names_file"
    try:
        from_metadata = names_from_metadata(backend.metadata)
    except ValueError as exc:
        raise ModelError(f"model {backend.model_path}: {exc}") from exc
    if from_metadata is None:
        if num_classes is None:
            raise ModelError(
                f"model {backend.model_path}: output {list(backend.output_shape)} is end-to-end "
                "(x1, y1, x2, y2, score, class), which does not tell the number of classes, and "
                "the model has no class names in its metadata: give a names file"
            )
        return fallback_names(num_classes), "fallback"
    return from_metadata, "metadata"


def _layout(backend: Backend) -> ModelLayout:
    """The backend's output layout; ModelError unless this package decodes it."""
    return check_layout(
        backend.model_path, backend.input_shape, backend.output_shape, backend.metadata
    )
