"""Box overlap and thresholded optimal assignment for the tracker."""

from __future__ import annotations

import functools

import lap
import numpy as np

BOX_ROWS = 5  # x1, y1, x2, y2, area: box rows as iou_matrix reads them (then a class row)


def iou_matrix(a: np.ndarray, b: np.ndarray, class_aware: bool = False) -> np.ndarray:
    """IoU (n, m) of the boxes ``a`` (6, n) and ``b`` (6, m), rows x1, y1, x2, y2, area, class (float64).

    ``class_aware``: pairs of different classes get 0. Arithmetic as Ultralytics' ``bbox_ioa(iou=True)`` (eps
    1e-7 in the denominator), in float64. Small problems gather the pairs into flat rows (no broadcasting: a numpy
    call on a few elements costs the same whatever its size, and broadcasting costs ~3 of them).
    """
    n, m = a.shape[1], b.shape[1]
    if n * m <= _GATHER_MAX_PAIRS:
        ia, ib = _pairs(n, m)
        a, b = a.take(ia, 1), b.take(ib, 1)
    else:
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
    return inter.reshape(n, m)


_GATHER_MAX_PAIRS = 256


@functools.lru_cache(maxsize=1024)
def _pairs(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every cell of an (n, m) matrix, row-major."""
    return np.repeat(np.arange(n), m), np.tile(np.arange(m), n)


def may_overlap(a: np.ndarray, b: np.ndarray, iou_thresh: float, max_pairs: int = 64) -> bool:
    """Whether a box of ``a`` and one of ``b`` (rows x1, y1, x2, y2, ...) may have an IoU above ``iou_thresh``.

    A cheap test to skip ``iou_matrix`` when no pair can pass (typical for the few tracks of a frame): exact IoU in
    float64 with a 1e-6 margin for float32 rounding, in plain Python up to ``max_pairs`` pairs (a numpy call costs
    as much as ~10 pairs); above that it answers True and leaves the work to ``iou_matrix``.
    """
    if a.shape[1] * b.shape[1] > max_pairs:
        return True
    limit = iou_thresh - 1e-6
    others = b[:4].T.tolist()
    for ax1, ay1, ax2, ay2 in a[:4].T.tolist():
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


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[list[int], list[int]]:
    """Minimum-cost matching of ``cost`` (n, m) in which a pair may match only if its cost is below ``thresh``.

    Returns the matched (rows, cols), rows ascending. This is the problem ``lap.lapjv(cost, extend_cost=True,
    cost_limit=thresh)`` solves (as Ultralytics' ByteTrack calls it): leaving a row or a column unmatched costs
    ``thresh / 2``, so a pair is worth matching exactly when its cost is below ``thresh`` (pairs costing exactly
    ``thresh`` are left unmatched, where lap may take them either way). When no row and no column has more than one
    such candidate, matching all candidates is the unique optimum: any other matching leaves a candidate pair
    unmatched, and matching it instead gains ``thresh - cost > 0`` without touching another pair. That, the common
    case in tracking, is returned without calling the solver (~10 us cheaper).
    """
    rows, cols = (cost < thresh).nonzero()
    row_list, col_list = rows.tolist(), cols.tolist()
    if len(set(row_list)) == len(row_list) and len(set(col_list)) == len(col_list):
        return row_list, col_list
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = (x >= 0).nonzero()[0]
    cols = x.take(rows)
    below = cost[rows, cols] < thresh  # a pair costing exactly thresh gains nothing: the solver may take it or not
    return rows[below].tolist(), cols[below].tolist()
