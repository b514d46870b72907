"""Draw detections (boxes, "class score" or "class #id score" labels) on a BGR copy of an image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from yolo_trt_ros.detections import Detections

# Ultralytics' 20-colour palette (RGB hex), stored as BGR; a class always gets the same colour.
_PALETTE_HEX = (
    "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
    "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
)
PALETTE_BGR = tuple((int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _PALETTE_HEX)

_TO_BGR = {
    "rgb8": cv2.COLOR_RGB2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "mono8": cv2.COLOR_GRAY2BGR,
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_id: int) -> tuple[int, int, int]:
    """BGR colour of a class id."""
    return PALETTE_BGR[int(class_id) % len(PALETTE_BGR)]


def label_text(name: str, score: float, track_id: int | None = None) -> str:
    """``"person 0.87"``, or ``"person #12 0.87"`` with a track id."""
    return f"{name} {score:.2f}" if track_id is None else f"{name} #{track_id} {score:.2f}"


class Annotator:
    """Draws on an internal BGR buffer, reused while the image size stays the same; the input is never touched."""

    def __init__(self, line_width: int | None = None) -> None:
        self.line_width = line_width
        self._canvas: np.ndarray | None = None

    def __call__(self, image: np.ndarray, encoding: str, detections: Detections, names: Sequence[str],
                 track_ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Return the annotated BGR image (the internal buffer: valid until the next call).

        ``track_ids``: one per detection; an ID below 1 (untracked) gets no ``#id``.
        """
        canvas = self._to_bgr(image, encoding)
        height, width = canvas.shape[:2]
        thickness = self.line_width or max(1, round((height + width) / 2 * 0.003))
        font_scale = thickness / 3
        boxes = np.rint(detections.boxes).astype(np.int32) if len(detections) else np.empty((0, 4), np.int32)
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            class_id = int(detections.class_ids[i])
            color = class_color(class_id)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
            track = None if track_ids is None or track_ids[i] < 1 else int(track_ids[i])
            self._label(canvas, label_text(name, float(detections.scores[i]), track), (x1, y1), color,
                        font_scale, max(thickness - 1, 1))
        return canvas

    def _to_bgr(self, image: np.ndarray, encoding: str) -> np.ndarray:
        height, width = image.shape[:2]
        if self._canvas is None or self._canvas.shape != (height, width, 3):
            self._canvas = np.empty((height, width, 3), np.uint8)
        if encoding == "bgr8":
            np.copyto(self._canvas, image)
        else:
            code = _TO_BGR.get(encoding)
            if code is None:
                raise ValueError(f"cannot annotate encoding '{encoding}'")
            cv2.cvtColor(image, code, dst=self._canvas)
        return self._canvas

    @staticmethod
    def _label(canvas: np.ndarray, text: str, corner: tuple[int, int], color: tuple[int, int, int],
               font_scale: float, font_thickness: int) -> None:
        (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, font_thickness)
        x, y = corner
        above = y - text_h - baseline >= 0
        top = y - text_h - baseline if above else y
        cv2.rectangle(canvas, (x, top), (x + text_w, top + text_h + baseline), color, -1, cv2.LINE_AA)
        text_color = (255, 255, 255) if sum(color) < 3 * 160 else (0, 0, 0)
        cv2.putText(canvas, text, (x, top + text_h), _FONT, font_scale, text_color, font_thickness, cv2.LINE_AA)
