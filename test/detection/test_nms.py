"""nms / batched_nms against a brute-force greedy reference written with plain Python loops."""

from __future__ import annotations

import numpy as np
import pytest

from box_reference import ref_iou
from yolo_trt_ros.detection import nms as nms_module
from yolo_trt_ros.detection.nms import batched_nms, nms


@pytest.fixture(params=["matrix", "rows"], autouse=True)
def nms_path(request, monkeypatch) -> str:
    """Run every test through both code paths: full IoU matrix (small N) and row by row (large N)."""
    monkeypatch.setattr(nms_module, "MATRIX_MAX_BOXES", 10**9 if request.param == "matrix" else 0)
    return request.param


def ref_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Greedy: visit by descending score (ties: input order); keep a box unless IoU > thr with a kept box."""
    b = [[float(v) for v in box] for box in boxes]
    keep: list[int] = []
    for i in sorted(range(len(b)), key=lambda i: -float(scores[i])):
        if all(ref_iou(b[k], b[i]) <= thr for k in keep):
            keep.append(i)
    return keep


def ref_batched(boxes, scores, classes, thr) -> list[int]:
    keep: list[int] = []
    for c in set(classes.tolist()):
        idx = np.flatnonzero(classes == c)
        keep += [int(idx[k]) for k in ref_nms(boxes[idx], scores[idx], thr)]
    return sorted(keep, key=lambda i: (-float(scores[i]), i))


def clustered_boxes(rng: np.random.Generator, n: int, clusters: int = 5, span: float = 640.0):
    centers = rng.uniform(0, span, size=(clusters, 2))
    c = centers[rng.integers(0, clusters, n)] + rng.normal(0, 8, size=(n, 2))
    wh = rng.uniform(5, 120, size=(n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    return boxes, scores


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [0, 1, 2, 17, 300])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_reference(seed: int, n: int, thr: float) -> None:
    boxes, scores = clustered_boxes(np.random.default_rng(seed), n)
    keep = nms(boxes, scores, thr)
    assert keep.dtype == np.int64
    assert keep.tolist() == ref_nms(boxes, scores, thr)


def test_nms_suppresses_only_above_threshold() -> None:
    # IoU with box 0: 0.5 for box 1, 0.49 for box 2; boxes 1 and 2 do not overlap
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 5.1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]  # IoU == threshold is kept (torchvision: iou > thr)
    assert nms(boxes, scores, 0.495).tolist() == [0, 2]
    assert nms(boxes, scores, 0.4).tolist() == [0]


def test_ties_keep_input_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.5, 0.5, 0.5, 0.9], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 1]


def test_degenerate_boxes_are_kept_without_warnings() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    with np.errstate(all="raise"):
        assert nms(boxes, scores, 0.5).tolist() == ref_nms(boxes, scores, 0.5) == [0, 1, 2]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_classes", [1, 3, 80])
@pytest.mark.parametrize("thr", [0.45, 0.7])
def test_batched_nms_matches_per_class_reference(seed: int, num_classes: int, thr: float) -> None:
    rng = np.random.default_rng(100 + seed)
    boxes, scores = clustered_boxes(rng, 400)
    scores = np.round(scores, 2)  # ties
    classes = rng.integers(0, num_classes, 400)
    assert batched_nms(boxes, scores, classes, thr).tolist() == ref_batched(boxes, scores, classes, thr)


def test_batched_nms_classes_never_interact_even_for_huge_or_negative_boxes() -> None:
    boxes = np.array([[-9000, -9000, 20000, 20000], [-9000, -9000, 20000, 20000], [0, 0, 30000, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 1, 0])
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_empty_inputs() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert nms(empty, np.zeros(0, np.float32), 0.5).shape == (0,)
    assert batched_nms(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).shape == (0,)
