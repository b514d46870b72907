"""Draw detections (boxes, "class score" or "class #id score" labels) on a BGR copy of an image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from yolo_trt_ros.detection.encodings import ENCODINGS

if TYPE_CHECKING:
    from yolo_trt_ros.detection.detections import Detections

# Ultralytics' 20-colour palette (RGB hex), stored as BGR; a class always gets the same colour.
_PALETTE_HEX = (
    "FF3838",
    "FF9D97",
    "FF701F",
    "FFB21D",
    "CFD231",
    "48F90A",
    "92CC17",
    "3DDB86",
    "1A9334",
    "00D4BB",
    "2C99A8",
    "00C2FF",
    "344593",
    "6473FF",
    "0018EC",
    "8438FF",
    "520085",
    "CB38FF",
    "FF95C8",
    "FF37C7",
)
PALETTE_BGR = tuple((int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _PALETTE_HEX)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MAX_THICKNESS = 32767  # OpenCV rejects thicker lines


def class_color(class_id: int) -> tuple[int, int, int]:
    """BGR colour of a class id."""
    return PALETTE_BGR[int(class_id) % len(PALETTE_BGR)]


def label_text(name: str, score: float, track_id: int | None = None) -> str:
    """``"person 0.87"``, or ``"person #12 0.87"`` with a track id."""
    return f"{name} {score:.2f}" if track_id is None else f"{name} #{track_id} {score:.2f}"


def line_thickness(height: int, width: int, requested: int | None = None) -> int:
    """Line width: ``requested`` (default 0.3 % of the mean side), at most a tenth of the shorter
    side, >= 1."""
    wanted = requested or round((height + width) / 2 * 0.003)
    return int(max(1, min(wanted, min(height, width) // 10, _MAX_THICKNESS)))


def place_labels(
    corners: Sequence[tuple[int, int]] | np.ndarray,
    sizes: Sequence[tuple[int, int]],
    image_size: tuple[int, int],
    max_tries: int = 32,
) -> np.ndarray:
    """Label rectangles ``(x1, y1, x2, y2)`` (exclusive ends), one per box top-left corner and
    positive ``(w, h)``.

    A label sits above its corner (last row on the box's top line) if it fits, else just inside;
    while it overlaps a label placed earlier it steps down by its height, then up from the start
    once the image's bottom is reached, falling back to the last of ``max_tries`` candidates.
    ``image_size`` is ``(width, height)``; labels stay inside it where they fit.
    """
    width, height = image_size
    rects = np.empty((len(sizes), 4), np.int64)
    for i, ((x1, y1), (w, h)) in enumerate(zip(corners, sizes, strict=True)):
        x = max(0, min(int(x1), width - w))
        start = int(y1) + 1 - h if int(y1) + 1 - h >= 0 else int(y1)
        down = start + h * np.arange(min(max_tries, max(0, (height - start) // h)))
        up = start - h * np.arange(1, min(max_tries, start // h + 1))
        tops = np.concatenate((down, up))[:max_tries] if len(down) + len(up) else np.array([start])
        placed = rects[:i][
            (x < rects[:i, 2]) & (x + w > rects[:i, 0])
        ]  # earlier labels sharing columns
        hits = (tops[:, None] < placed[:, 3]) & (tops[:, None] + h > placed[:, 1])
        free = np.flatnonzero(~hits.any(axis=1))
        top = int(tops[free[0]] if len(free) else tops[-1])
        rects[i] = (x, top, x + w, top + h)
    return rects


class Annotator:
    """Draws on an internal BGR buffer, reused while the image size stays the same; the input is
    never touched."""

    def __init__(self, line_width: int | None = None) -> None:
        self.line_width = line_width
        self._canvas: np.ndarray | None = None

    def __call__(
        self,
        image: np.ndarray,
        encoding: str,
        detections: Detections,
        names: Sequence[str],
        track_ids: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Return the annotated BGR image (the internal buffer: valid until the next call).

        ``track_ids``: one per detection; an ID below 1 (untracked) gets no ``#id``.
        """
        canvas = self._to_bgr(image, encoding)
        height, width = canvas.shape[:2]
        thickness = line_thickness(height, width, self.line_width)
        font_scale, font_thickness = thickness / 3, max(thickness - 1, 1)
        boxes = np.empty((0, 4), np.int32)
        if len(detections):  # clipped to the image so every coordinate handed to OpenCV fits int32
            limits = np.array([width, height, width, height], np.float64)
            boxes = np.rint(
                np.clip(np.nan_to_num(np.asarray(detections.boxes, np.float64)), 0, limits)
            )
            boxes = boxes.astype(np.int32)
        labels: list[tuple[str, tuple[int, int, int], int]] = []  # text, colour, text height
        sizes: list[tuple[int, int]] = []
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            class_id = int(detections.class_ids[i])
            color = class_color(class_id)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
            track = None if track_ids is None or track_ids[i] < 1 else int(track_ids[i])
            text = label_text(name, float(detections.scores[i]), track)
            (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, font_thickness)
            labels.append((text, color, text_h))
            sizes.append((text_w + 1, text_h + baseline + 1))
        rects = place_labels(boxes[:, :2], sizes, (width, height))
        for (text, color, text_h), (x1, y1, x2, y2) in zip(labels, rects.tolist(), strict=True):
            cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), color, -1, cv2.LINE_AA)
            text_color = (255, 255, 255) if sum(color) < 3 * 160 else (0, 0, 0)
            cv2.putText(
                canvas,
                text,
                (x1, y1 + text_h),
                _FONT,
                font_scale,
                text_color,
                font_thickness,
                cv2.LINE_AA,
            )
        return canvas

    def _to_bgr(self, image: np.ndarray, encoding: str) -> np.ndarray:
        height, width = image.shape[:2]
        if self._canvas is None or self._canvas.shape != (height, width, 3):
            self._canvas = np.empty((height, width, 3), np.uint8)
        code = ENCODINGS[encoding].to_bgr if encoding in ENCODINGS else -1
        if code is None:
            np.copyto(self._canvas, image)
        elif code < 0:
            raise ValueError(f"cannot annotate encoding '{encoding}'")
        else:
            cv2.cvtColor(image, code, dst=self._canvas)
        return self._canvas
