"""Which output layout a detection model has, and whether this package decodes it.

Decoded: YOLOv8/YOLO11 anchor-free detection heads as Ultralytics exports them, output [1, 4+nc,
anchors] with one anchor per cell of each stride's grid. Other layouts (end-to-end NMS-inside
heads, YOLOv5 anchor-based heads, transposed outputs, other tasks) are classified so that they are
refused by name instead of decoded into garbage.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from yolo_trt_ros.inference.onnx_info import Dim

DEFAULT_STRIDES = (8, 16, 32)
"""Strides of a YOLOv8 detection head (P3-P5) when the metadata has no ``stride``."""

SUPPORTED = "YOLOv8/YOLO11 detection models exported by Ultralytics"


class ModelError(RuntimeError):
    """A model that cannot be used; message names the file and the problem."""


class LayoutKind(Enum):
    """What a model's output looks like."""

    YOLOV8 = "yolov8"
    """[1, 4+nc, anchors]: YOLOv8/YOLO11 anchor-free head, no NMS (the only kind decoded)."""
    END_TO_END = "end2end"
    """[1, max_det, 6] (x1, y1, x2, y2, score, class): NMS inside (YOLOv10, YOLO26, ``nms=True``
    exports)."""
    YOLOV5 = "yolov5"
    """[1, 3*anchors, 5+nc]: anchor-based head with objectness (YOLOv5/YOLOv7)."""
    TRANSPOSED = "transposed"
    """[1, anchors, 4+nc]: a YOLOv8 head transposed."""
    OTHER_TASK = "other_task"
    """Not a detection model (metadata ``task`` segment, pose, obb, classify, ...)."""
    UNKNOWN = "unknown"
    """None of the above (e.g. an anchor count that does not fit the input size)."""


@dataclass(frozen=True)
class ModelLayout:
    """A model's output layout: its kind, the shapes and metadata it was judged on, and the head's
    strides."""

    kind: LayoutKind
    input_hw: tuple[int, int]
    output_shape: tuple[Dim, ...]
    strides: tuple[int, ...] = DEFAULT_STRIDES
    task: str = "detect"
    end2end_metadata: bool = False

    @property
    def supported(self) -> bool:
        """True when this package decodes the layout."""
        return self.kind is LayoutKind.YOLOV8

    @property
    def expected_anchors(self) -> int:
        """Anchors a YOLOv8 head with ``strides`` has at ``input_hw``."""
        return anchor_count(self.input_hw, self.strides)

    @property
    def num_classes(self) -> int | None:
        """Classes in the output (None when the layout does not say, or the dimension is
        dynamic)."""
        rows, cols = (
            (_known(d) for d in self.output_shape[1:3])
            if len(self.output_shape) == 3
            else (None, None)
        )
        offsets = {
            LayoutKind.YOLOV8: (rows, 4),
            LayoutKind.TRANSPOSED: (cols, 4),
            LayoutKind.YOLOV5: (cols, 5),
        }
        size, offset = offsets.get(self.kind, (None, 0))
        return None if size is None else size - offset

    def describe(self) -> str:
        """What the output looks like, in words."""
        h, w = self.input_hw
        k = self.expected_anchors
        if self.kind is LayoutKind.OTHER_TASK:
            return f"a {self.task} model (metadata task '{self.task}'), not a detection model"
        if self.kind is LayoutKind.END_TO_END:
            source = (
                "metadata end2end=True"
                if self.end2end_metadata
                else "YOLOv10/YOLO26 or an nms=True export"
            )
            return f"an end-to-end model with NMS inside, output [1, max_det, 6] ({source})"
        if self.kind is LayoutKind.YOLOV5:
            return (
                f"a YOLOv5-style anchor-based model, output [1, 3*anchors, 5+nc] (3 x {k} = "
                f"{3 * k} rows at {h}x{w})"
            )
        if self.kind is LayoutKind.TRANSPOSED:
            return f"a transposed output [1, anchors, 4+nc] ({k} anchors first at {h}x{w})"
        if self.kind is LayoutKind.YOLOV8:
            return f"a YOLOv8/YOLO11 detection head [1, 4+nc, anchors] ({k} anchors at {h}x{w})"
        anchors = _known(self.output_shape[2]) if len(self.output_shape) == 3 else None
        if anchors is None:
            return f"no YOLOv8 detection output (shape {format_shape(self.output_shape)})"
        return f"{anchors} anchors where a YOLOv8 head at {h}x{w} has {k}"


def anchor_count(input_hw: Sequence[int], strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """Anchors of a YOLOv8 head: sum over the strides s of ceil(H/s) * ceil(W/s) (8400 at
    640x640)."""
    h, w = input_hw
    return sum(math.ceil(h / s) * math.ceil(w / s) for s in strides)


def strides_from_metadata(metadata: Mapping[str, str]) -> tuple[int, ...]:
    """Head strides from Ultralytics metadata ``stride`` (the largest one: 32 -> 8, 16, 32; 64 -> 8
    .. 64).

    A list of strides is taken as is; ValueError for anything else.
    """
    raw = metadata.get("stride")
    if raw is None:
        return DEFAULT_STRIDES
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"metadata stride {raw!r} is not an int or a list of ints") from exc
    if isinstance(value, (list, tuple)) and value and all(type(v) is int and v > 0 for v in value):
        return tuple(sorted(value))
    if type(value) is not int or value < 8:
        raise ValueError(f"metadata stride {raw!r} is not an int >= 8 or a list of ints")
    return tuple(8 << i for i in range(value.bit_length() - 3))


def classify_layout(
    input_shape: Sequence[int], output_shape: Sequence[Dim], metadata: Mapping[str, str]
) -> ModelLayout:
    """Classify one output of a model with image input ``input_shape`` (1, 3, H, W) and Ultralytics
    ``metadata``.

    Dynamic output dims (names, None, or ints <= 0) fit any rule that needs them; ValueError for a
    bad ``stride``.
    """
    hw = (int(input_shape[2]), int(input_shape[3]))
    strides = strides_from_metadata(metadata)
    task = metadata.get("task", "detect").strip() or "detect"
    end2end = metadata.get("end2end", "").strip().lower() in ("true", "1")
    shape = tuple(output_shape)

    def layout(kind: LayoutKind) -> ModelLayout:
        return ModelLayout(kind, hw, shape, strides, task, end2end)

    if task != "detect":
        return layout(LayoutKind.OTHER_TASK)
    if end2end:
        return layout(LayoutKind.END_TO_END)
    if len(shape) != 3:
        return layout(LayoutKind.UNKNOWN)
    rows, cols = _known(shape[1]), _known(shape[2])
    k = anchor_count(hw, strides)
    if _fits(cols, lambda d: d == k) and _fits(rows, lambda d: d >= 5):
        return layout(LayoutKind.YOLOV8)
    if rows == k and _fits(cols, lambda d: d >= 5):
        return layout(LayoutKind.TRANSPOSED)
    if rows == 3 * k and _fits(cols, lambda d: d >= 6):
        return layout(LayoutKind.YOLOV5)
    if cols == 6:
        return layout(LayoutKind.END_TO_END)
    return layout(LayoutKind.UNKNOWN)


def check_layout(
    model_path: str | Path,
    input_shape: Sequence[int],
    output_shape: Sequence[Dim],
    metadata: Mapping[str, str],
) -> ModelLayout:
    """``classify_layout``, raising ModelError (naming the file, the layout and what is supported)
    unless decoded."""
    try:
        layout = classify_layout(input_shape, output_shape, metadata)
    except ValueError as exc:
        raise ModelError(f"model {model_path}: {exc}") from exc
    if not layout.supported:
        h, w = layout.input_hw
        here = "" if (h, w) == (640, 640) else f", {layout.expected_anchors} at {h}x{w}"
        raise ModelError(
            f"model {model_path}: output {format_shape(output_shape)} looks like "
            f"{layout.describe()}; supported are "
            f"{SUPPORTED}: output [1, 4+nc, anchors], anchors = sum over strides s = "
            f"{', '.join(map(str, layout.strides))} of ceil(H/s)*ceil(W/s) = "
            f"{anchor_count((640, 640), layout.strides)} at 640x640{here}"
        )
    return layout


def check_output_shape(model_path: str | Path, name: str, shape: Sequence[Dim]) -> None:
    """Raise ModelError unless ``shape`` can be a YOLOv8 detection output [1, 4+nc, N] with nc >=
    1."""
    ok = (
        len(shape) == 3
        and _fits(shape[0], lambda d: d == 1)
        and _fits(shape[1], lambda d: d >= 5)
        and _fits(shape[2], lambda d: d >= 1)
    )
    if not ok:
        raise ModelError(
            f"model {model_path}: output '{name}' has shape {format_shape(shape)} "
            "but YOLOv8 detection needs [1, 4+nc, N] with nc >= 1"
        )


def format_shape(shape: Sequence[Dim]) -> str:
    """``[1, 84, 8400]``; unknown dims as their name or ``?``."""
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def _known(dim: Dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _fits(dim: Dim, test: Callable[[int], bool]) -> bool:
    return not isinstance(dim, int) or test(dim)
