"""The detections of one image: boxes, scores and class ids as parallel numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections sorted by descending score.

    ``boxes`` is (N, 4) float32 xyxy (pixels of the model input after ``decode_yolov8``, pixels of
    the original image after ``Detector``), ``scores`` is (N,) float32 and ``class_ids`` is (N,)
    int64.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
