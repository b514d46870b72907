"""Box overlap and thresholded optimal assignment for the tracker."""

from __future__ import annotations

import functools

import lap
import numpy as np

_NO_PAIRS = (np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (4, n) with every box in ``b`` (4, m), both float32 corner rows -> (n, m) float32.

    Same arithmetic as Ultralytics' ``bbox_ioa(iou=True)`` (eps 1e-7 in the denominator), so costs, and with
    them assignment decisions near a threshold, agree with the reference tracker.
    """
    a3, b3 = a[:, :, None], b[:, None, :]
    overlap = np.minimum(a3[2:], b3[2:])  # (2, n, m): x, y extent of the intersection
    overlap -= np.maximum(a3[:2], b3[:2])
    np.maximum(overlap, 0, out=overlap)
    inter = overlap[0] * overlap[1]
    size_a, size_b = a[2:] - a[:2], b[2:] - b[:2]
    union = size_b[0] * size_b[1] + (size_a[0] * size_a[1])[:, None]
    union -= inter
    union += 1e-7
    inter /= union
    return inter


def may_overlap(a: np.ndarray, b: np.ndarray, iou_thresh: float, max_pairs: int = 64) -> bool:
    """Whether a box of ``a`` (4, n) and one of ``b`` (4, m), corner rows, may have an IoU above ``iou_thresh``.

    A cheap test to skip ``iou_matrix`` when no pair can pass (typical for the few tracks of a frame): exact IoU in
    float64 with a 1e-6 margin for float32 rounding, in plain Python up to ``max_pairs`` pairs (a numpy call costs
    as much as ~10 pairs); above that it answers True and leaves the work to ``iou_matrix``.
    """
    if a.shape[1] * b.shape[1] > max_pairs:
        return True
    limit = iou_thresh - 1e-6
    others = b.T.tolist()
    for ax1, ay1, ax2, ay2 in a.T.tolist():
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for bx1, by1, bx2, by2 in others:
            iw = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
            if iw <= 0:
                continue
            ih = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
            if ih <= 0:
                continue
            inter = iw * ih
            if inter > limit * (area_a + (bx2 - bx1) * (by2 - by1) - inter):
                return True
    return False


@functools.lru_cache(maxsize=32)
def _float32_limit(thresh: float) -> np.float32:
    """The smallest float32 not below ``thresh``: for a float32 cost c, c < thresh exactly when c < it."""
    limit = np.float32(thresh)
    return limit if float(limit) >= thresh else np.nextafter(limit, np.float32(np.inf))


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching of a float32 ``cost`` matrix in which a pair may match only if its cost is below ``thresh``.

    Returns the matched (rows, cols), rows ascending. This is the problem ``lap.lapjv(cost, extend_cost=True,
    cost_limit=thresh)`` solves (as Ultralytics' ByteTrack calls it): leaving a row or a column unmatched costs
    ``thresh / 2``, so a pair is worth matching exactly when its cost is below ``thresh`` (pairs costing exactly
``thresh`` are left unmatched, where lap may take them either way). When no row and no column
    has more than one such candidate, matching all candidates is the unique optimum and is returned without calling
    the solver (the common case in tracking, and ~10 us cheaper).
    """
    limit = _float32_limit(thresh)
    rows, cols = (cost < limit).nonzero()
    count = len(rows)
    if count <= 1:
        return (rows, cols) if count else _NO_PAIRS
    if len(set(rows.tolist())) == count and len(set(cols.tolist())) == count:
        return rows, cols
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = (x >= 0).nonzero()[0]
    cols = x.take(rows)
    below = cost[rows, cols] < limit  # a pair costing exactly thresh gains nothing: the solver may take it or not
    return rows[below], cols[below]
