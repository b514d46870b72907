"""Box geometry: conversions and IoU against plain-Python references and known values, nms /
batched_nms against a brute-force greedy reference written with plain Python loops."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

from box_reference import greedy_keep, ref_iou
from yolo_trt_ros.detection import boxes as boxes_module
from yolo_trt_ros.detection.boxes import (
    batched_nms,
    iou,
    nms,
    xyah_to_xyxy,
    xywh_to_xyxy,
    xyxy_to_xyah,
)

# ---------------------------------------------------------------------------------------------
# Conversions and IoU.


def random_xyxy(rng: np.random.Generator, n: int, span: float = 150.0) -> np.ndarray:
    x1y1 = rng.uniform(0, span, (n, 2))
    return np.concatenate((x1y1, x1y1 + rng.uniform(5, 80, (n, 2))), axis=1)


def test_conversions_known_values() -> None:
    np.testing.assert_array_equal(xywh_to_xyxy([[50, 40, 20, 10]]), [[40, 35, 60, 45]])
    np.testing.assert_array_equal(xyxy_to_xyah([[40, 35, 60, 45]]), [[50, 40, 2, 10]])
    np.testing.assert_array_equal(xyah_to_xyxy([[50, 40, 2, 10]]), [[40, 35, 60, 45]])
    for convert in (xywh_to_xyxy, xyxy_to_xyah, xyah_to_xyxy):
        assert convert(np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conversions_keep_float_precision_and_round_trip(dtype: type) -> None:
    b = random_xyxy(np.random.default_rng(3), 20).astype(dtype)
    xyah = xyxy_to_xyah(b)
    assert xyah.dtype == dtype and xywh_to_xyxy(b).dtype == dtype
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    np.testing.assert_allclose(xyah[:, 2], w / h, rtol=1e-6)
    np.testing.assert_allclose(xyah_to_xyxy(xyah), b, rtol=1e-6)


def test_conversions_write_into_column_views() -> None:
    """``out=``: the tracker converts into columns of its track and detection arrays."""
    b = random_xyxy(np.random.default_rng(4), 5)
    table = np.full((5, 10), np.nan)
    assert xyxy_to_xyah(b, out=table[:, 2:6]) is not None
    np.testing.assert_array_equal(table[:, 2:6], xyxy_to_xyah(b))
    xyah_to_xyxy(table[:, 2:6], out=table[:, 6:10])
    np.testing.assert_array_equal(table[:, 6:10], xyah_to_xyxy(xyxy_to_xyah(b)))
    assert np.isnan(table[:, :2]).all()


@pytest.mark.parametrize("n, m", [(4, 6), (0, 5), (5, 0), (30, 40), (40, 30), (1, 1)])
@pytest.mark.parametrize("eps", [0.0, 1e-7])
def test_iou_matches_reference(n: int, m: int, eps: float) -> None:
    rng = np.random.default_rng(n * 100 + m + 1)
    a, b = random_xyxy(rng, n), random_xyxy(rng, m)
    got = iou(a, b, eps=eps)
    assert got.shape == (n, m) and got.dtype == np.float64
    expected = [[ref_iou(p, q) for q in b] for p in a]
    np.testing.assert_allclose(got, np.reshape(expected, (n, m)), rtol=1e-6, atol=1e-12)
    if n * m > 100:
        assert 0 < (got > 0).sum() < n * m  # overlapping and separate pairs both occur


def test_iou_known_values_and_eps() -> None:
    one = [[0, 0, 10, 10]]
    others = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [10, 0, 20, 10]]
    np.testing.assert_array_equal(iou(one, others, eps=0.0), [[1.0, 50 / 150, 0.0, 0.0]])
    np.testing.assert_allclose(
        iou(one, others), [[100 / (100 + 1e-7), 50 / (150 + 1e-7), 0, 0]], rtol=1e-15
    )


def test_iou_of_empty_and_inverted_boxes_is_zero_without_warnings() -> None:
    odd = [[5, 5, 5, 5], [5, 5, 5, 20], [30, 30, 10, 10], [0, 0, 10, 10]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for eps in (0.0, 1e-7):
            got = iou(odd, odd, eps=eps)
            assert np.isfinite(got).all()
            np.testing.assert_array_equal(got[:3], 0.0)
            np.testing.assert_array_equal(got[:, :3], 0.0)


def test_iou_is_float64_for_float32_input() -> None:
    a = np.array([[0.1, 0.2, 10.3, 10.4]], np.float32)
    assert iou(a, a).dtype == np.float64
    assert iou(a, a, eps=0.0)[0, 0] == 1.0


# ---------------------------------------------------------------------------------------------
# NMS: every test runs with each block size of the nms_block fixture.


@pytest.fixture(params=[1, 7, boxes_module.NMS_BLOCK])
def nms_block(request, monkeypatch) -> int:
    """Every NMS test with blocks of one box (the greedy rule box by box), of 7 (many block
    boundaries inside clusters) and of the default size."""
    monkeypatch.setattr(boxes_module, "NMS_BLOCK", request.param)
    return request.param


def ref_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Greedy: by descending score (ties: input order), keep a box if IoU <= thr with all kept."""
    return greedy_keep(boxes, scores, [0] * len(boxes), thr)


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


@functools.cache
def expected_nms(seed: int, n: int, thr: float) -> list[int]:
    """``ref_nms`` of the ``clustered_boxes`` of a case, once for every ``nms_block``."""
    boxes, scores = clustered_boxes(np.random.default_rng(seed), n)
    return ref_nms(boxes, scores, thr)


@pytest.mark.usefixtures("nms_block")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [0, 1, 2, 17, 300])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_reference(seed: int, n: int, thr: float) -> None:
    boxes, scores = clustered_boxes(np.random.default_rng(seed), n)
    keep = nms(boxes, scores, thr)
    assert keep.dtype == np.int64
    assert keep.tolist() == expected_nms(seed, n, thr)


@pytest.mark.usefixtures("nms_block")
def test_nms_suppresses_only_above_threshold() -> None:
    # IoU with box 0: 0.5 for box 1, 0.49 for box 2; boxes 1 and 2 do not overlap
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 5.1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]  # IoU == threshold is kept (iou > thr)
    assert nms(boxes, scores, 0.495).tolist() == [0, 2]
    assert nms(boxes, scores, 0.4).tolist() == [0]


@pytest.mark.usefixtures("nms_block")
def test_ties_keep_input_order() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32
    )
    scores = np.array([0.5, 0.5, 0.5, 0.9], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 1]


@pytest.mark.usefixtures("nms_block")
def test_degenerate_boxes_are_kept_without_warnings() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    with np.errstate(all="raise"):
        assert nms(boxes, scores, 0.5).tolist() == ref_nms(boxes, scores, 0.5) == [0, 1, 2]


def batched_case(seed: int, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 clustered boxes, scores rounded to 2 decimals (ties) and random classes."""
    rng = np.random.default_rng(100 + seed)
    boxes, scores = clustered_boxes(rng, 400)
    scores = np.round(scores, 2)  # ties
    classes = rng.integers(0, num_classes, 400)
    return boxes, scores, classes


@functools.cache
def expected_batched(seed: int, num_classes: int, thr: float) -> list[int]:
    """``ref_batched`` of a ``batched_case``, once for every ``nms_block``."""
    return ref_batched(*batched_case(seed, num_classes), thr)


@pytest.mark.usefixtures("nms_block")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_classes", [1, 3, 80])
@pytest.mark.parametrize("thr", [0.45, 0.7])
def test_batched_nms_matches_per_class_reference(seed: int, num_classes: int, thr: float) -> None:
    boxes, scores, classes = batched_case(seed, num_classes)
    expected = expected_batched(seed, num_classes, thr)
    assert batched_nms(boxes, scores, classes, thr).tolist() == expected


@pytest.mark.usefixtures("nms_block")
def test_batched_nms_classes_never_interact_even_for_huge_or_negative_boxes() -> None:
    huge = [-9000, -9000, 20000, 20000]
    boxes = np.array([huge, huge, [0, 0, 30000, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 1, 0])
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]


@pytest.mark.usefixtures("nms_block")
def test_empty_inputs() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert nms(empty, np.zeros(0, np.float32), 0.5).shape == (0,)
    assert batched_nms(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).shape == (0,)
