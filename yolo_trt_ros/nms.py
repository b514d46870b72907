"""Greedy non-maximum suppression in numpy (same semantics as ``torchvision.ops.nms``)."""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, by descending score (ties keep input order).

    ``boxes`` is (N, 4) xyxy. A box is suppressed when its IoU with a higher-scoring kept box is greater than
    ``iou_threshold``, as in torchvision and Ultralytics.
    """
    n = int(scores.shape[0])
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    b = np.asarray(boxes, np.float64)[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    remaining = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        while remaining.size:
            i = remaining[0]
            keep.append(i)
            rest = remaining[1:]
            w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
            h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
            inter = np.clip(w, 0.0, None) * np.clip(h, 0.0, None)
            iou = inter / (areas[i] + areas[rest] - inter)
            remaining = rest[~(iou > iou_threshold)]
    return order[np.asarray(keep, np.int64)]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Shifts each class into its own coordinate range (the torchvision/Ultralytics offset trick, with an offset
    larger than the span of all boxes, computed in float64) and runs one ``nms``.
    """
    if scores.shape[0] == 0:
        return np.zeros(0, np.int64)
    b = np.asarray(boxes, np.float64)
    span = float(b.max() - b.min()) + 1.0
    offsets = np.asarray(class_ids, np.float64)[:, None] * span
    return nms(b + offsets, scores, iou_threshold)
