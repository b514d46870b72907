"""Box overlap and thresholded optimal assignment for the tracker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

Box = tuple[float, float, float, float, float, Any]  # x1, y1, x2, y2, area, class


def iou_matrix(a: np.ndarray, b: np.ndarray, class_aware: bool = False) -> np.ndarray:
    """IoU (n, m) of the boxes ``a`` (6, n) and ``b`` (6, m), rows x1, y1, x2, y2, area, class (float64).

    ``class_aware``: pairs of different classes get 0. Arithmetic as Ultralytics' ``bbox_ioa(iou=True)`` (eps
    1e-7 in the denominator), in float64.
    """
    a, b = a[:, :, None], b[:, None, :]
    inter = np.minimum(a[2:4], b[2:4])
    inter -= np.maximum(a[0:2], b[0:2])
    np.maximum(inter, 0.0, out=inter)
    inter = inter[0] * inter[1]
    union = b[4] + a[4]
    union -= inter
    union += 1e-7
    inter /= union
    if class_aware:
        inter *= a[5] == b[5]
    return inter


Pair = tuple[int, int, float]  # (row, column, value) of one cell of a sparse matrix


def overlaps(a: Sequence[Box], b: Sequence[Box], class_aware: bool = False) -> list[Pair]:
    """(i, j, IoU) of every pair of boxes ``a[i]``, ``b[j]`` with IoU > 0, row-major; ``class_aware`` as in
    ``iou_matrix``.

    The sparse form of ``iou_matrix`` with the same arithmetic: in plain Python up to ``_PYTHON_MAX_PAIRS`` pairs
    (most pairs of a frame do not overlap and cost one comparison), else from ``iou_matrix``.
    """
    if len(a) * len(b) > _PYTHON_MAX_PAIRS:
        iou = iou_matrix(_rows(a), _rows(b), class_aware)
        rows, cols = iou.nonzero()
        return list(zip(rows.tolist(), cols.tolist(), iou[rows, cols].tolist()))
    pairs = []
    others = list(enumerate(b))
    for i, (ax1, ay1, ax2, ay2, area_a, class_a) in enumerate(a):
        for j, (bx1, by1, bx2, by2, area_b, class_b) in others:
            if bx1 < ax2 and ax1 < bx2 and by1 < ay2 and ay1 < by2:  # necessary for an overlap, and cheap
                iw = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
                ih = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
                if iw > 0 and ih > 0 and (class_a == class_b or not class_aware):
                    inter = iw * ih
                    pairs.append((i, j, inter / (area_b + area_a - inter + 1e-7)))
    return pairs


_PYTHON_MAX_PAIRS = 400  # measured crossover with the numpy path: ~400-900 pairs at camera-scene densities


def _rows(boxes: Sequence[Box]) -> np.ndarray:
    """``boxes`` as a C-contiguous (6, n) float64 array (broadcasting over strided rows took twice as long)."""
    return np.ascontiguousarray(np.array(boxes, dtype=np.float64).T)


def linear_assignment(costs: list[Pair], shape: tuple[int, int], thresh: float) -> tuple[list[int], list[int]]:
    """Minimum-cost matching of an (n, m) cost matrix in which a pair may match only if its cost is below ``thresh``.

    The matrix is given sparse: ``costs`` lists (row, col, cost) row-major, every other cell costs 1 (an IoU cost
    of boxes that do not overlap). Returns the matched (rows, cols), rows ascending.

    This is the problem ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`` solves (as Ultralytics' ByteTrack
    calls it): leaving a row or a column unmatched costs ``thresh / 2``. A matching of k pairs then costs
    ``sum(cost) + (n + m - 2k) thresh / 2``, which is ``sum(cost - thresh)`` plus a constant, so a pair is worth
    matching exactly when its cost is below ``thresh`` and the optimum is the assignment minimising the sum of
    ``min(cost - thresh, 0)``: ``scipy.optimize.linear_sum_assignment`` on that matrix, keeping the pairs below 0
    (pairs costing exactly ``thresh`` gain nothing and are left unmatched). When no row and no column has more than
    one such candidate, matching all candidates is that optimum, the common case in tracking, returned without
    calling the solver.
    """
    candidates = [(r, c, cost - thresh) for r, c, cost in costs if cost < thresh]
    rows = [r for r, _, _ in candidates]
    cols = [c for _, c, _ in candidates]
    if len(set(rows)) == len(rows) and len(set(cols)) == len(cols):
        return rows, cols
    gain = np.zeros(shape)
    gain[rows, cols] = [g for _, _, g in candidates]
    matched_rows, matched_cols = linear_sum_assignment(gain)
    below = gain[matched_rows, matched_cols] < 0
    return matched_rows[below].tolist(), matched_cols[below].tolist()
