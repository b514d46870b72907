"""Tracker matching: association costs by hand, and the thresholded assignment against an
exhaustive search of every matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from yolo_trt_ros.tracking.matching import iou_cost, linear_assignment


def test_iou_cost_plain_and_score_fused() -> None:
    iou = np.array([[1.0, 0.5, 0.0], [0.25, 0.0, 0.8]])
    np.testing.assert_allclose(iou_cost(iou), [[0.0, 0.5, 1.0], [0.75, 1.0, 0.2]])
    scores = np.array([0.5, 1.0, 0.25])  # per detection (column)
    np.testing.assert_allclose(iou_cost(iou, scores), [[0.5, 0.5, 1.0], [0.875, 1.0, 0.8]])


def extended_cost(rows: list[int], cols: list[int], dense: np.ndarray, thresh: float) -> float:
    """What lap.lapjv(extend_cost=True, cost_limit=thresh) minimises: matched costs + thresh/2 per
    unmatched row or column."""
    n, m = dense.shape
    return float(
        sum(dense[r, c] for r, c in zip(rows, cols, strict=True))
        + (n + m - 2 * len(rows)) * thresh / 2
    )


def best_cost(dense: np.ndarray, thresh: float) -> float:
    """Exhaustive minimum of extended_cost over every (partial) matching."""
    n, m = dense.shape
    best = (n + m) * thresh / 2
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                best = min(best, extended_cost(list(rows), list(cols), dense, thresh))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_linear_assignment_is_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 6, 2).tolist()
    dense = np.ones((n, m))  # IoU 0: cost 1
    mask = rng.random((n, m)) < 0.5  # overlapping pairs, with conflicts in most instances
    dense[mask] = rng.uniform(0.0, 1.0, mask.sum())
    thresh = 0.8
    rows, cols = linear_assignment(dense, thresh)
    rows, cols = rows.tolist(), cols.tolist()
    assert rows == sorted(rows) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert all(dense[r, c] < thresh for r, c in zip(rows, cols, strict=True))
    assert extended_cost(rows, cols, dense, thresh) == pytest.approx(
        best_cost(dense, thresh), abs=1e-12
    )


def test_linear_assignment_without_conflicts_takes_every_pair_below_the_threshold() -> None:
    dense = np.ones((4, 4))
    dense[0, 2], dense[1, 0], dense[2, 1], dense[3, 3] = 0.3, 0.9, 0.1, 0.8  # 0.9, 0.8: not below
    rows, cols = linear_assignment(dense, 0.8)
    assert (rows.tolist(), cols.tolist()) == ([0, 2], [2, 1])


def test_linear_assignment_of_empty_and_unmatchable_matrices() -> None:
    for shape in ((0, 3), (3, 0), (0, 0)):
        rows, cols = linear_assignment(np.ones(shape), 0.8)
        assert rows.shape == cols.shape == (0,)
    rows, cols = linear_assignment(np.full((3, 2), 0.8), 0.8)  # at the threshold: no gain
    assert rows.size == cols.size == 0


@pytest.mark.parametrize("seed", range(20))
def test_shortcut_without_conflicts_equals_the_solver(seed: int) -> None:
    """At most one pair below the threshold per row and per column: ``linear_assignment`` skips
    the solver; the pairs are the ones ``linear_sum_assignment`` keeps."""
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 8, 2).tolist()
    dense = rng.uniform(0.8, 1.0, (n, m))
    k = min(n, m)
    rows, cols = rng.permutation(n)[:k], rng.permutation(m)[:k]
    dense[rows, cols] = rng.uniform(0.0, 1.0, k)  # some below 0.8, some not
    got = linear_assignment(dense, 0.8)
    solver_rows, solver_cols = linear_sum_assignment(np.minimum(dense - 0.8, 0.0))
    below = dense[solver_rows, solver_cols] < 0.8
    assert got[0].tolist() == solver_rows[below].tolist()
    assert got[1].tolist() == solver_cols[below].tolist()
