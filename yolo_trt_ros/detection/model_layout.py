"""Which output layout a detection model has, and whether this package decodes it.

Decoded, each by its own function in ``decode``:

- one-to-many ``[B, 4+nc, A]`` (YOLOv8, YOLO11, YOLO26/YOLOv10 exported with ``end2end=False``, P6
  models): one anchor per cell of each stride's grid, NMS needed;
- end-to-end ``[B, K, 6]`` (YOLOv10, YOLO26, ``nms=True`` exports): x1, y1, x2, y2, score, class,
  no NMS needed;
- YOLOv5 ``[B, 3*A, 5+nc]`` (original anchor-based head): cx, cy, w, h, objectness, nc class
  scores.

The layout is decided once from the shapes and the Ultralytics metadata (``task``, ``end2end``,
``stride``); other tasks, transposed outputs, and shapes that fit no layout or several are
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
"""Strides of a P3-P5 detection head when the metadata has no ``stride``."""
P6_STRIDES = (8, 16, 32, 64)
"""Strides of a P3-P6 head (``yolov8n6``, ``yolov5n6``), also tried when the metadata has no
``stride``."""

SUPPORTED = (
    "detection models with a one-to-many output [1, 4+nc, anchors] (YOLOv8, YOLO11), an "
    "end-to-end output [1, max_det, 6] (YOLOv10, YOLO26) or a YOLOv5 output [1, 3*anchors, 5+nc]"
)


class ModelError(RuntimeError):
    """A model that cannot be used; message names the file and the problem."""


class LayoutKind(Enum):
    """What a model's output looks like."""

    ONE_TO_MANY = "one_to_many"
    """[1, 4+nc, anchors]: anchor-free head (YOLOv8, YOLO11, ...), decoded with NMS."""
    END_TO_END = "end2end"
    """[1, max_det, 6] (x1, y1, x2, y2, score, class): NMS-free head or NMS inside (YOLOv10,
    YOLO26, ``nms=True`` exports)."""
    YOLOV5 = "yolov5"
    """[1, 3*anchors, 5+nc]: anchor-based head with objectness (YOLOv5), decoded with NMS."""
    TRANSPOSED = "transposed"
    """[1, anchors, 4+nc]: a one-to-many head transposed (refused)."""
    OTHER_TASK = "other_task"
    """Not a detection model (metadata ``task`` segment, pose, obb, classify, ...; refused)."""
    AMBIGUOUS = "ambiguous"
    """The shape fits several layouts and no metadata tells which (refused)."""
    UNKNOWN = "unknown"
    """None of the above (e.g. an anchor count that does not fit the input size; refused)."""


DECODED = frozenset({LayoutKind.ONE_TO_MANY, LayoutKind.END_TO_END, LayoutKind.YOLOV5})
"""The layouts this package decodes."""

_NAMES = {
    LayoutKind.ONE_TO_MANY: "one-to-many [1, 4+nc, anchors]",
    LayoutKind.END_TO_END: "end-to-end [1, max_det, 6]",
    LayoutKind.YOLOV5: "YOLOv5 [1, 3*anchors, 5+nc]",
    LayoutKind.TRANSPOSED: "transposed [1, anchors, 4+nc]",
}


@dataclass(frozen=True)
class ModelLayout:
    """A model's output layout: its kind, the shapes and metadata it was judged on, and the head's
    strides (``fits``: the layouts an AMBIGUOUS shape fits)."""

    kind: LayoutKind
    input_hw: tuple[int, int]
    output_shape: tuple[Dim, ...]
    strides: tuple[int, ...] = DEFAULT_STRIDES
    task: str = "detect"
    end2end_metadata: bool = False
    fits: tuple[LayoutKind, ...] = ()

    @property
    def supported(self) -> bool:
        """True when this package decodes the layout."""
        return self.kind in DECODED

    @property
    def expected_anchors(self) -> int:
        """Anchors (grid cells) a head with ``strides`` has at ``input_hw``."""
        return anchor_count(self.input_hw, self.strides)

    @property
    def num_classes(self) -> int | None:
        """Classes in the output (None when the layout does not say, as end-to-end, or the
        dimension is dynamic)."""
        rows, cols = (
            (_known(d) for d in self.output_shape[1:3])
            if len(self.output_shape) == 3
            else (None, None)
        )
        offsets = {
            LayoutKind.ONE_TO_MANY: (rows, 4),
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
            return f"an end-to-end model, output [1, max_det, 6] ({source})"
        if self.kind is LayoutKind.YOLOV5:
            return (
                f"a YOLOv5-style anchor-based model, output [1, 3*anchors, 5+nc] (3 x {k} = "
                f"{3 * k} rows at {h}x{w})"
            )
        if self.kind is LayoutKind.TRANSPOSED:
            return f"a transposed output [1, anchors, 4+nc] ({k} anchors first at {h}x{w})"
        if self.kind is LayoutKind.ONE_TO_MANY:
            return f"a one-to-many detection head [1, 4+nc, anchors] ({k} anchors at {h}x{w})"
        if self.kind is LayoutKind.AMBIGUOUS:
            return (
                f"an ambiguous output: at {h}x{w} it fits "
                f"{' and '.join(_NAMES[f] for f in self.fits)}, and no Ultralytics metadata "
                "(end2end) says which"
            )
        if self.end2end_metadata:
            return "metadata end2end=True but not an end-to-end output [1, max_det, 6]"
        anchors = _known(self.output_shape[2]) if len(self.output_shape) == 3 else None
        if anchors is None:
            return f"no detection output (shape {format_shape(self.output_shape)})"
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


def end2end_from_metadata(metadata: Mapping[str, str]) -> bool | None:
    """Whether Ultralytics metadata says the output is end-to-end: ``end2end`` True or an
    ``nms=True`` export (``args``), as Ultralytics' AutoBackend reads it; None without either
    key."""
    flag = metadata.get("end2end")
    raw_args = metadata.get("args")
    if flag is None and raw_args is None:
        return None
    try:
        args = ast.literal_eval(raw_args) if raw_args is not None else {}
    except (ValueError, SyntaxError):
        args = {}
    nms = isinstance(args, dict) and args.get("nms") is True
    return (flag or "").strip().lower() in ("true", "1") or nms


def classify_layout(
    input_shape: Sequence[int], output_shape: Sequence[Dim], metadata: Mapping[str, str]
) -> ModelLayout:
    """Classify one output of a model with image input ``input_shape`` (1, 3, H, W) and Ultralytics
    ``metadata``.

    Metadata decides first (``task``; ``end2end``/``args`` nms: end-to-end or not); then the shape
    picks among the layouts it fits at the head's strides (metadata ``stride``, else P3-P5 and
    P3-P6). Dynamic output dims (names, None, or ints <= 0) fit a rule that needs them, except the
    6 columns of an end-to-end output. A shape that fits several layouts is AMBIGUOUS. ValueError
    for a bad ``stride``.
    """
    hw = (int(input_shape[2]), int(input_shape[3]))
    strides = strides_from_metadata(metadata)
    stride_sets = [strides] if "stride" in metadata else [DEFAULT_STRIDES, P6_STRIDES]
    task = metadata.get("task", "detect").strip() or "detect"
    end2end = end2end_from_metadata(metadata)
    shape = tuple(output_shape)

    def layout(
        kind: LayoutKind, head: tuple[int, ...] = strides, fits: tuple[LayoutKind, ...] = ()
    ) -> ModelLayout:
        return ModelLayout(kind, hw, shape, head, task, bool(end2end), fits)

    if task != "detect":
        return layout(LayoutKind.OTHER_TASK)
    if len(shape) != 3:
        return layout(LayoutKind.UNKNOWN)
    rows, cols = _known(shape[1]), _known(shape[2])
    if end2end:
        return layout(LayoutKind.END_TO_END if cols == 6 else LayoutKind.UNKNOWN)
    found: dict[LayoutKind, tuple[int, ...]] = {}
    for head in stride_sets:
        k = anchor_count(hw, head)
        if (cols is None or cols == k) and _fits(rows, lambda d: d >= 5):
            found.setdefault(LayoutKind.ONE_TO_MANY, head)
        if rows == 3 * k and _fits(cols, lambda d: d >= 6):
            found.setdefault(LayoutKind.YOLOV5, head)
        if rows == k and _fits(cols, lambda d: d >= 5):
            found.setdefault(LayoutKind.TRANSPOSED, head)
    if cols == 6 and end2end is None:
        found.setdefault(LayoutKind.END_TO_END, strides)
    if len(found) > 1:
        return layout(LayoutKind.AMBIGUOUS, fits=tuple(found))
    if found:
        ((kind, head),) = found.items()
        return layout(kind, head)
    return layout(LayoutKind.UNKNOWN)


def check_layout(
    model_path: str | Path,
    input_shape: Sequence[int],
    output_shape: Sequence[Dim],
    metadata: Mapping[str, str],
) -> ModelLayout:
    """``classify_layout``, raising ModelError (naming the file, what the output looks like and
    what is supported) unless decoded."""
    try:
        layout = classify_layout(input_shape, output_shape, metadata)
    except ValueError as exc:
        raise ModelError(f"model {model_path}: {exc}") from exc
    if not layout.supported:
        h, w = layout.input_hw
        here = "" if (h, w) == (640, 640) else f", {layout.expected_anchors} at {h}x{w}"
        raise ModelError(
            f"model {model_path}: output {format_shape(output_shape)} looks like "
            f"{layout.describe()}; supported are {SUPPORTED}; anchors = sum over strides s = "
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
