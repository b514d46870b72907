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


Pair = tuple[int, int, float]  # (row, column, value) of one cell of a sparse matrix


def overlaps(a: np.ndarray, b: np.ndarray, class_aware: bool = False) -> list[Pair]:
    """(i, j, IoU) of every pair of boxes ``a[:, i]``, ``b[:, j]`` with IoU > 0, row-major; boxes as in ``iou_matrix``.

    The sparse form of ``iou_matrix`` (every pair not listed has IoU 0) with the same arithmetic: in plain Python up
    to ``_PYTHON_MAX_PAIRS`` pairs (most pairs of a frame do not overlap and cost one comparison), else from
    ``iou_matrix``.
    """
    n, m = a.shape[1], b.shape[1]
    if n * m > _PYTHON_MAX_PAIRS:
        iou = iou_matrix(a, b, class_aware)
        rows, cols = iou.nonzero()
        return list(zip(rows.tolist(), cols.tolist(), iou[rows, cols].tolist()))
    pairs = []
    others = list(enumerate(b[:6].T.tolist()))
    for i, (ax1, ay1, ax2, ay2, area_a, class_a) in enumerate(a[:6].T.tolist()):
        for j, (bx1, by1, bx2, by2, area_b, class_b) in others:
            if bx1 < ax2 and ax1 < bx2 and by1 < ay2 and ay1 < by2:  # necessary for an overlap, and cheap
                iw = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
                ih = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
                if iw > 0 and ih > 0 and (class_a == class_b or not class_aware):
                    inter = iw * ih
                    pairs.append((i, j, inter / (area_b + area_a - inter + 1e-7)))
    return pairs


_PYTHON_MAX_PAIRS = 128


def linear_assignment(costs: list[Pair], shape: tuple[int, int], thresh: float) -> tuple[list[int], list[int]]:
    """Minimum-cost matching of an (n, m) cost matrix in which a pair may match only if its cost is below ``thresh``.

    The matrix is given sparse: ``costs`` lists (row, col, cost) row-major, every other cell costs 1 (an IoU cost
    of boxes that do not overlap). Returns the matched (rows, cols), rows ascending. This is the problem
    ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`` solves (as Ultralytics' ByteTrack calls it): leaving a
    row or a column unmatched costs ``thresh / 2``, so a pair is worth matching exactly when its cost is below
    ``thresh`` (pairs costing exactly ``thresh`` are left unmatched, where lap may take them either way). When no
    row and no column has more than one such candidate, matching all candidates is the optimum, unique up to such
    pairs: in any other matching, a pair costing ``thresh`` or more can be dropped at no loss, after which a
    candidate is left unmatched with its row and column free, and matching it gains ``thresh - cost > 0``. That, the
    common case in tracking, is returned without calling the solver (~10 us cheaper).
    """
    rows = [r for r, _, cost in costs if cost < thresh]
    cols = [c for _, c, cost in costs if cost < thresh]
    if len(set(rows)) == len(rows) and len(set(cols)) == len(cols):
        return rows, cols
    dense = np.ones(shape)
    r, c, v = zip(*costs)
    dense[r, c] = v
    _, x, _ = lap.lapjv(dense, extend_cost=True, cost_limit=thresh)
    matched = (x >= 0).nonzero()[0]
    taken = x.take(matched)
    below = dense[matched, taken] < thresh  # a pair costing exactly thresh gains nothing: the solver may take it or not
    return matched[below].tolist(), taken[below].tolist()
