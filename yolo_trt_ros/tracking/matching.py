"""Box overlap and thresholded optimal assignment for the tracker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

Box = tuple[float, float, float, float, float, Any]  # x1, y1, x2, y2, area, class


Pair = tuple[int, int, float]  # (row, column, value) of one cell of a sparse matrix


def overlaps(a: Sequence[Box], b: Sequence[Box], class_aware: bool = False) -> list[Pair]:
    """(i, j, IoU) of every pair of boxes ``a[i]``, ``b[j]`` with IoU > 0, row-major.

    Boxes are (x1, y1, x2, y2, area, class); ``class_aware``: pairs of different classes do not overlap. Arithmetic
    as Ultralytics' ``bbox_ioa(iou=True)`` (eps 1e-7 in the denominator), in float64. Plain Python up to
    ``_PYTHON_MAX_PAIRS`` pairs (most pairs of a frame do not overlap and cost one comparison), else numpy over the
    pairs whose x ranges can overlap only.
    """
    if len(a) * len(b) > _PYTHON_MAX_PAIRS:
        return _overlaps_sorted(a, b, class_aware)
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


_PYTHON_MAX_PAIRS = 900  # measured: the two paths take the same time (~45 us) at ~900 pairs


def _overlaps_sorted(a: Sequence[Box], b: Sequence[Box], class_aware: bool) -> list[Pair]:
    """``overlaps`` for large frames: with ``b`` sorted by x1, the boxes of ``b`` that can overlap box ``a[i]``
    have x1 in (a_x1 - widest b, a_x2), one contiguous run found by binary search; IoU is computed for those
    candidate pairs only, not for all n x m."""
    boxes_a = np.array(a, dtype=np.float64).T  # (6, n): x1, y1, x2, y2, area, class
    boxes_b = np.array(b, dtype=np.float64).T
    order = np.argsort(boxes_b[0], kind="stable")
    x1_sorted = boxes_b[0, order]
    widest = float((boxes_b[2] - boxes_b[0]).max())
    # 1 px of margin: the run may hold extra candidates (filtered below), never miss one to rounding
    lo = np.searchsorted(x1_sorted, boxes_a[0] - widest - 1.0)
    hi = np.searchsorted(x1_sorted, boxes_a[2])
    counts = np.maximum(hi - lo, 0)
    ia = np.repeat(np.arange(len(a)), counts)
    ib = order[np.arange(len(ia)) + np.repeat(lo - (np.cumsum(counts) - counts), counts)]
    pa, pb = boxes_a[:, ia], boxes_b[:, ib]
    iw = np.minimum(pa[2], pb[2]) - np.maximum(pa[0], pb[0])
    ih = np.minimum(pa[3], pb[3]) - np.maximum(pa[1], pb[1])
    keep = (iw > 0) & (ih > 0)
    if class_aware:
        keep &= pa[5] == pb[5]
    ia, ib = ia[keep], ib[keep]
    inter = iw[keep] * ih[keep]
    iou = inter / (pb[4, keep] + pa[4, keep] - inter + 1e-7)
    row_major = np.lexsort((ib, ia))
    return list(zip(ia[row_major].tolist(), ib[row_major].tolist(), iou[row_major].tolist()))


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
