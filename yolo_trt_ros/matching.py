"""Box overlap and thresholded optimal assignment for the tracker."""

from __future__ import annotations

import lap
import numpy as np

_NO_PAIRS = (np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (4, n) with every box in ``b`` (4, m), both float32 corner rows -> (n, m) float32.

    Same arithmetic as Ultralytics' ``bbox_ioa(iou=True)`` (eps 1e-7 in the denominator), so costs, and with
    them assignment decisions near a threshold, agree with the reference tracker.
    """
    ax1, ay1, ax2, ay2 = a[:, :, None]
    bx1, by1, bx2, by2 = b
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    np.maximum(inter, 0, out=inter)
    ih = np.minimum(ay2, by2)
    ih -= np.maximum(ay1, by1)
    np.maximum(ih, 0, out=ih)
    inter *= ih
    union = (bx2 - bx1) * (by2 - by1) + (ax2 - ax1) * (ay2 - ay1)
    union -= inter
    union += 1e-7
    inter /= union
    return inter


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching in which a pair may match only if its cost is below ``thresh``.

    Returns the matched (rows, cols), rows ascending. This is the problem ``lap.lapjv(cost, extend_cost=True,
    cost_limit=thresh)`` solves (as Ultralytics' ByteTrack calls it): leaving a row or a column unmatched costs
    ``thresh / 2``, so a pair is worth matching exactly when its cost is below ``thresh``. When no row and no column
    has more than one such candidate, matching all candidates is the unique optimum and is returned without calling
    the solver (the common case in tracking, and ~10 us cheaper).
    """
    rows, cols = (cost < np.float64(thresh)).nonzero()
    count = len(rows)
    if count <= 1:
        return (rows, cols) if count else _NO_PAIRS
    if len(set(rows.tolist())) == count and len(set(cols.tolist())) == count:
        return rows, cols
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = (x >= 0).nonzero()[0]
    return rows, x[rows]
