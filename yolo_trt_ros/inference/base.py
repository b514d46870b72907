"""The inference backend interface and the input checks shared by all backends.

``ModelError`` and ``check_output_shape`` come from ``yolo_trt_ros.detection.model_layout`` (the
output layout rules) and are importable from here too.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from yolo_trt_ros.detection.letterbox import LetterboxTransform
from yolo_trt_ros.detection.model_layout import Dim, ModelError, format_shape
from yolo_trt_ros.detection.model_layout import check_output_shape as check_output_shape

DEFAULT_IMGSZ = 640
"""Input side used for a dynamic H/W when the model metadata has no ``imgsz``."""
UNBOUNDED_BATCH = 1 << 16
"""``max_batch`` of a model whose batch dimension is dynamic without a limit."""


class Backend(Protocol):
    """Runs a YOLOv8 detection model: one (B, 3, H, W) image tensor in (B up to ``max_batch``),
    one (B, ...) float32 output array out (its layout: ``detection.model_layout``).

    Optional capabilities, checked with ``isinstance``: ``FrameBackend`` (takes raw frames,
    preprocessing them itself), ``ParallelRuns`` (several threads may infer at once) and
    ``DiagnosticsSource`` (adds key/values to the node's diagnostics).
    """

    name: str
    model_path: Path
    input_shape: tuple[int, int, int, int]
    max_batch: int
    """The largest batch ``infer`` takes (1 for a static batch-1 model)."""
    input_dtype: np.dtype
    output_shape: tuple[int, ...]
    metadata: dict[str, str]

    def infer(self, tensor: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@runtime_checkable
class ParallelRuns(Protocol):
    """Optional: ``infer`` may run in up to ``parallel_runs`` threads at once (ONNX Runtime's
    session is thread-safe)."""

    parallel_runs: int


@runtime_checkable
class FrameBackend(Protocol):
    """Optional: letterboxes raw uint8 frames itself (TensorRT's GPU path) while
    ``gpu_preprocessing`` is True."""

    @property
    def gpu_preprocessing(self) -> bool: ...

    def infer_image(
        self,
        image: np.ndarray,
        encoding: str,
        conf_threshold: float | None,
        stride: int | None = None,
    ) -> tuple[np.ndarray, LetterboxTransform]:
        """The float32 output and the letterbox. With ``conf_threshold`` (one-to-many outputs) the
        output (1, 4+nc, K) may keep only the anchors whose best score exceeds it; with ``stride``
        the frame is letterboxed into the smallest stride-multiple rectangle (``dynamic_hw``)."""
        ...

    def infer_images(
        self,
        frames: Sequence[tuple[np.ndarray, str]],
        conf_threshold: float | None,
        stride: int | None = None,
    ) -> list[tuple[np.ndarray, LetterboxTransform]]:
        """``infer_image`` for up to ``max_batch`` (image, encoding) frames in one inference."""
        ...


@runtime_checkable
class DiagnosticsSource(Protocol):
    """Optional: key/values for the node's diagnostics (GPU, engine, device memory, ...)."""

    def diagnostics(self) -> dict[str, str]: ...


@runtime_checkable
class DynamicInput(Protocol):
    """Optional: ``dynamic_hw`` True when the model also runs at input sizes other than
    ``input_shape`` (any H, W that are multiples of its largest stride)."""

    dynamic_hw: bool


def has_dynamic_hw(shape: Sequence[Dim]) -> bool:
    """Whether an image input's shape ([B, C, H, W]) leaves H or W dynamic."""
    return len(shape) == 4 and not all(isinstance(d, int) for d in shape[2:])


def resolve_input_shape(
    model_path: Path, name: str, shape: Sequence[Dim], metadata: dict[str, str]
) -> tuple[int, int, int, int]:
    """Check an image input's shape ([1|dyn, 3|dyn, H|dyn, W|dyn]) and fill dynamic dims.

    Dynamic batch and channels become 1 and 3; a dynamic H/W comes from metadata ``imgsz`` or
    ``DEFAULT_IMGSZ``.
    """
    if len(shape) != 4:
        raise ModelError(
            f"model {model_path}: input '{name}' has shape {format_shape(shape)} but YOLOv8 needs "
            "[1, 3, H, W]"
        )
    batch, channels, h, w = shape
    if isinstance(batch, int) and batch != 1:
        raise ModelError(
            f"model {model_path}: input '{name}' has batch size {batch}; only batch 1 is supported"
        )
    if isinstance(channels, int) and channels != 3:
        raise ModelError(
            f"model {model_path}: input '{name}' has {channels} channels; YOLOv8 needs 3 (RGB)"
        )
    default_h, default_w = _imgsz(model_path, metadata)
    return 1, 3, h if isinstance(h, int) else default_h, w if isinstance(w, int) else default_w


def _imgsz(model_path: Path, metadata: dict[str, str]) -> tuple[int, int]:
    raw = metadata.get("imgsz")
    if raw is None:
        return DEFAULT_IMGSZ, DEFAULT_IMGSZ
    try:
        value = ast.literal_eval(raw)
        if isinstance(value, int):
            value = [value, value]
        h, w = (int(v) for v in value)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ModelError(
            f"model {model_path}: metadata imgsz {raw!r} is not [h, w] or an int"
        ) from exc
    if h <= 0 or w <= 0:
        raise ModelError(f"model {model_path}: metadata imgsz {raw!r} is not positive")
    return h, w
