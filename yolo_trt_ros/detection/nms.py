"""Greedy non-maximum suppression in numpy (same semantics as ``torchvision.ops.nms``)."""

from __future__ import annotations

import numpy as np

MATRIX_MAX_BOXES = 512
"""Up to this many boxes, NMS computes the full IoU matrix at once; above it, IoUs row by row (less memory)."""


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, by descending score (ties keep input order).

    ``boxes`` is (N, 4) finite xyxy. A box is suppressed when its IoU with a higher-scoring kept box is greater
    than ``iou_threshold``, as in torchvision and Ultralytics.
    """
    n = int(scores.shape[0])
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    b = np.asarray(boxes, np.float64)[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = _greedy_matrix(b, iou_threshold) if n <= MATRIX_MAX_BOXES else _greedy_rows(b, iou_threshold)
    return order[np.asarray(keep, np.int64)]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other. Same order as ``nms``.

    Few boxes: one ``nms`` with each class shifted into its own coordinate range (the torchvision/Ultralytics
    offset trick, offset larger than the span of all boxes, in float64). Many boxes: one ``nms`` per class.
    """
    n = int(scores.shape[0])
    if n == 0:
        return np.zeros(0, np.int64)
    b = np.asarray(boxes, np.float64)
    if n <= MATRIX_MAX_BOXES:
        span = float(b.max() - b.min()) + 1.0
        return nms(b + np.asarray(class_ids, np.float64)[:, None] * span, scores, iou_threshold)
    kept = []
    for c in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == c)
        kept.append(idx[nms(b[idx], scores[idx], iou_threshold)])
    keep = np.concatenate(kept)
    return keep[np.lexsort((keep, -scores[keep]))]


def _boxes_and_areas(b: np.ndarray) -> tuple[np.ndarray, ...]:
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


def _greedy_matrix(b: np.ndarray, thr: float) -> list[int]:
    """Greedy NMS over score-sorted boxes ``b`` with the full IoU matrix (fast for small N)."""
    x1, y1, x2, y2, areas = _boxes_and_areas(b)
    inter = np.minimum(x2[:, None], x2)
    inter -= np.maximum(x1[:, None], x1)
    np.maximum(inter, 0.0, out=inter)
    h = np.minimum(y2[:, None], y2)
    h -= np.maximum(y1[:, None], y1)
    np.maximum(h, 0.0, out=h)
    inter *= h
    union = np.add(areas[:, None], areas, out=h)
    union -= inter
    over = inter / union > thr
    suppressed = np.zeros(b.shape[0], bool)
    keep = []
    for i in range(b.shape[0]):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return keep


def _greedy_rows(b: np.ndarray, thr: float) -> list[int]:
    """Greedy NMS over score-sorted boxes ``b``, one IoU row per kept box against the boxes still in play."""
    x1, y1, x2, y2, areas = _boxes_and_areas(b)
    keep = []
    remaining = np.arange(b.shape[0])
    while remaining.size:
        i = remaining[0]
        keep.append(int(i))
        rest = remaining[1:]
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
        remaining = rest[~(inter / (areas[i] + areas[rest] - inter) > thr)]
    return keep
