"""Tracker matching: sparse IoU (both paths) against a brute-force reference, and the thresholded assignment
against an exhaustive search of every matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from box_reference import ref_iou
from yolo_trt_ros.tracking.matching import Box, linear_assignment, overlaps


def random_boxes(rng: np.random.Generator, n: int, classes: int = 1) -> list[Box]:
    boxes = []
    for _ in range(n):
        x1, y1 = rng.uniform(0, 150, 2).tolist()
        w, h = rng.uniform(5, 80, 2).tolist()
        boxes.append((x1, y1, x1 + w, y1 + h, w * h, int(rng.integers(classes))))
    return boxes


@pytest.mark.parametrize("n, m", [(4, 6), (0, 5), (30, 40), (40, 30)])  # 30 x 40 pairs: the numpy path
@pytest.mark.parametrize("class_aware", [False, True])
@pytest.mark.parametrize("wide", [False, True])
def test_overlaps_lists_every_overlapping_pair(n: int, m: int, class_aware: bool, wide: bool) -> None:
    rng = np.random.default_rng(n * 100 + m + 1)
    a, b = random_boxes(rng, n, 2), random_boxes(rng, m, 2)
    if wide and m:  # a box that starts left of all others and spans them: found despite its small x1
        b[m // 2] = (-50.0, 0.0, 400.0, 300.0, 450.0 * 300.0, 1)
    expected = [
        (i, j, ref_iou(p, q)) for i, p in enumerate(a) for j, q in enumerate(b)
        if ref_iou(p, q) > 0 and (p[5] == q[5] or not class_aware)
    ]
    pairs = overlaps(a, b, class_aware)
    assert [(i, j) for i, j, _ in pairs] == [(i, j) for i, j, _ in expected]  # row-major, nothing else
    np.testing.assert_allclose([v for _, _, v in pairs], [v for _, _, v in expected], rtol=1e-6)
    assert n == 0 or 0 < len(expected) < n * m  # both kinds of pairs occur


def extended_cost(rows: list[int], cols: list[int], dense: np.ndarray, thresh: float) -> float:
    """What lap.lapjv(extend_cost=True, cost_limit=thresh) minimises: matched costs + thresh/2 per unmatched."""
    n, m = dense.shape
    return float(sum(dense[r, c] for r, c in zip(rows, cols)) + (n + m - 2 * len(rows)) * thresh / 2)


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
    dense = np.ones((n, m))
    mask = rng.random((n, m)) < 0.5  # sparse, with conflicts in most instances
    dense[mask] = rng.uniform(0.0, 1.0, mask.sum())
    thresh = 0.8
    costs = [(r, c, float(dense[r, c])) for r, c in zip(*mask.nonzero())]
    rows, cols = linear_assignment(costs, (n, m), thresh)
    assert rows == sorted(rows) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert all(dense[r, c] < thresh for r, c in zip(rows, cols))
    assert extended_cost(rows, cols, dense, thresh) == pytest.approx(best_cost(dense, thresh), abs=1e-12)


def test_linear_assignment_without_conflicts_takes_every_candidate() -> None:
    costs = [(0, 2, 0.3), (1, 0, 0.9), (2, 1, 0.1), (3, 3, 0.8)]  # (1, 0) and (3, 3) are not below 0.8
    assert linear_assignment(costs, (4, 4), 0.8) == ([0, 2], [2, 1])
    assert linear_assignment([], (3, 2), 0.8) == ([], [])
