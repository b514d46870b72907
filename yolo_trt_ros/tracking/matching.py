"""Association costs and thresholded optimal assignment for the tracker."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_cost(iou: np.ndarray, det_scores: np.ndarray | None = None) -> np.ndarray:
    """Cost matrix (tracks, detections) from their IoU matrix: 1 - IoU, or with ``det_scores``
    1 - IoU * score (Ultralytics' ``fuse_score``: a weak detection needs more overlap)."""
    return 1.0 - (iou if det_scores is None else iou * det_scores)


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching of the (n, m) ``cost`` matrix in which a pair may match only if its
    cost is below ``thresh``. Returns the matched rows (ascending) and columns.

    This is the problem ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`` solves (as
    Ultralytics' ByteTrack calls it): leaving a row or a column unmatched costs ``thresh / 2``. A
    matching of k pairs then costs ``sum(cost) + (n + m - 2k) thresh / 2``, which is
    ``sum(cost - thresh)`` plus a constant, so a pair is worth matching exactly when its cost is
    below ``thresh``, and the optimum is the assignment minimising the sum of
    ``min(cost - thresh, 0)``: ``scipy.optimize.linear_sum_assignment`` on that matrix, keeping the
    pairs below 0 (pairs costing exactly ``thresh`` gain nothing and are left unmatched).

    Shortcut, exact: when every row and every column has at most one pair below ``thresh``, those
    pairs are the optimum (their gains sum to the least any matching can reach, and leaving one
    out costs more), so ``linear_sum_assignment`` is skipped. At a few objects per frame that is
    most associations.
    """
    rows, cols = (cost < thresh).nonzero()  # rows ascending
    row_list, col_list = rows.tolist(), cols.tolist()
    if len(set(row_list)) == len(row_list) == len(set(col_list)):
        return rows, cols
    gain = np.minimum(cost - thresh, 0.0)
    rows, cols = linear_sum_assignment(gain)
    below = gain[rows, cols] < 0
    return rows[below], cols[below]
