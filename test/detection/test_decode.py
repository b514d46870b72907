"""decode_yolov8 against a brute-force reference of Ultralytics' non_max_suppression semantics."""

from __future__ import annotations

import numpy as np
import pytest

from box_reference import greedy_nms
from yolo_trt_ros.detection import decode as postprocess
from yolo_trt_ros.detection.decode import decode_yolov8


def reference_decode(
    out, conf, iou, max_det, class_filter=None, agnostic=False, multi_label=False, max_nms=30000
):
    """Anchor by anchor, class by class, greedy NMS with plain loops; returns [(box, score,
    class)].

    Box corners (cx -/+ w/2, in float32) are computed elementwise for all anchors at once; rows
    with a non-finite corner or allowed-class score are skipped. Scores are compared with the
    threshold in float32, as torch (and numpy) compare a float32 tensor with a Python float.
    """
    pred = out.reshape(out.shape[-2], out.shape[-1])
    conf = np.float32(conf)
    nc = pred.shape[0] - 4
    allowed = list(range(nc)) if class_filter is None else sorted(int(c) for c in class_filter)
    cands = []  # (box, score, class) in anchor-major order, as Ultralytics builds them
    cx, cy, w, h = pred[:4].astype(np.float32)
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    finite = np.isfinite(corners).all(axis=1) & np.isfinite(pred[4:][allowed]).all(axis=0)
    class_scores = pred[4:].T.tolist()  # float32 values, exactly as Python floats
    for k, box in enumerate(corners.tolist()):
        s = class_scores[k]
        if not finite[k]:
            continue
        if multi_label:
            cands += [(box, s[c], c) for c in allowed if s[c] > conf]
        else:
            best = max(allowed, key=s.__getitem__)  # the first (lowest) class on ties, as argmax
            if s[best] > conf:
                cands.append((box, s[best], best))
    return greedy_nms(cands, iou, agnostic, max_det, max_nms)


def random_output(rng: np.random.Generator, nc: int, n: int, span: float = 640.0) -> np.ndarray:
    """[1, 4+nc, n]: boxes clustered around a few objects (so NMS has work), one or two strong
    classes each."""
    objects = max(1, n // 20)
    centers = rng.uniform(0, span, (objects, 2))
    which = rng.integers(0, objects, n)
    xy = centers[which] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(8, 150, (objects, 2))[which] * rng.uniform(0.8, 1.25, (n, 2))
    scores = rng.uniform(0, 0.1, (nc, n))
    obj_class = rng.integers(0, nc, objects)
    scores[obj_class[which], np.arange(n)] = rng.uniform(0, 1, n)
    second = rng.integers(0, nc, n)
    scores[second, np.arange(n)] = np.maximum(scores[second, np.arange(n)], rng.uniform(0, 0.8, n))
    return np.concatenate([xy.T, wh.T, scores])[None].astype(np.float32)


def assert_same(dets, ref) -> None:
    assert len(dets) == len(ref)
    if ref:
        np.testing.assert_allclose(
            dets.boxes, np.array([r[0] for r in ref], np.float32), atol=1e-4
        )
        np.testing.assert_array_equal(dets.scores, np.array([r[1] for r in ref], np.float32))
        np.testing.assert_array_equal(dets.class_ids, [r[2] for r in ref])
    assert (
        dets.boxes.dtype == np.float32
        and dets.scores.dtype == np.float32
        and dets.class_ids.dtype == np.int64
    )
    assert dets.boxes.shape == (len(ref), 4)


CASES = [(1, 1), (1, 400), (3, 7), (3, 600), (80, 150)]


@pytest.mark.parametrize("nc, n", CASES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("conf, iou", [(0.25, 0.7), (0.5, 0.45), (0.05, 0.7)])
@pytest.mark.parametrize("ties", [False, True])
def test_decode_matches_reference(nc, n, seed, multi_label, conf, iou, ties) -> None:
    out = random_output(np.random.default_rng(seed), nc, n)
    if ties:  # equal scores: the order of candidates (anchor-major, as Ultralytics) decides
        out[0, 4:] = np.round(out[0, 4:] * 20) / 20
    dets = decode_yolov8(out, conf, iou, 300, multi_label=multi_label)
    assert_same(dets, reference_decode(out, conf, iou, 300, multi_label=multi_label))


@pytest.mark.parametrize("nc, n", CASES)
@pytest.mark.parametrize("multi_label", [False, True])
def test_agnostic_and_max_detections(nc, n, multi_label) -> None:
    out = random_output(np.random.default_rng(7), nc, n)
    for agnostic in (False, True):
        for max_det in (1, 5, 300):
            dets = decode_yolov8(
                out, 0.1, 0.6, max_det, agnostic=agnostic, multi_label=multi_label
            )
            ref = reference_decode(
                out, 0.1, 0.6, max_det, agnostic=agnostic, multi_label=multi_label
            )
            assert_same(dets, ref)


@pytest.mark.parametrize("multi_label", [False, True])
def test_class_filter(multi_label: bool) -> None:
    out = random_output(np.random.default_rng(11), 80, 500)
    for allowed in ([0], [2, 5, 79], [79, 3]):
        dets = decode_yolov8(
            out, 0.2, 0.7, 300, class_filter=np.array(allowed), multi_label=multi_label
        )
        assert set(dets.class_ids.tolist()) <= set(allowed)
        assert_same(
            dets,
            reference_decode(out, 0.2, 0.7, 300, class_filter=allowed, multi_label=multi_label),
        )
    assert len(decode_yolov8(out, 0.2, 0.7, 300, class_filter=np.array([], np.int64))) == 0


def test_class_filter_takes_best_allowed_class() -> None:
    """An anchor whose best class is not allowed still yields its best allowed class above the
    threshold."""
    out = np.zeros((1, 4 + 3, 1), np.float32)
    out[0, :4, 0] = [50, 50, 20, 20]
    out[0, 4:, 0] = [0.9, 0.6, 0.1]
    dets = decode_yolov8(out, 0.25, 0.7, 300, class_filter=np.array([1, 2]))
    assert dets.class_ids.tolist() == [1] and dets.scores.tolist() == [pytest.approx(0.6)]
    np.testing.assert_allclose(dets.boxes, [[40, 40, 60, 60]])


def test_threshold_is_strict_and_both_layouts_work() -> None:
    out = np.zeros((6, 2), np.float32)
    out[:4] = [[10, 100], [10, 100], [4, 4], [4, 4]]
    out[4:] = [[0.5, 0.25], [0.1, 0.2]]
    for layout in (out, out[None]):
        dets = decode_yolov8(layout, 0.25, 0.7, 300)
        assert dets.class_ids.tolist() == [0] and dets.scores.tolist() == [0.5]
        np.testing.assert_allclose(dets.boxes, [[8, 8, 12, 12]])


@pytest.mark.parametrize("multi_label", [False, True])
def test_non_finite_rows_dropped(multi_label: bool) -> None:
    rng = np.random.default_rng(5)
    out = random_output(rng, 3, 300)
    bad = rng.choice(300, 60, replace=False)
    out[0, 0, bad[:15]] = np.nan  # box
    out[0, 3, bad[15:30]] = np.inf  # box
    out[0, 5, bad[30:45]] = np.nan  # a score
    out[0, 4, bad[45:]] = np.inf  # a score
    with np.errstate(all="raise"):
        dets = decode_yolov8(out, 0.1, 0.7, 300, multi_label=multi_label)
    assert np.isfinite(dets.boxes).all() and np.isfinite(dets.scores).all()
    assert_same(dets, reference_decode(out, 0.1, 0.7, 300, multi_label=multi_label))
    clean = out.copy()
    clean[0, :, bad] = 0.0
    assert_same(dets, reference_decode(clean, 0.1, 0.7, 300, multi_label=multi_label))


def test_all_nan_output_is_empty() -> None:
    assert len(decode_yolov8(np.full((1, 84, 100), np.nan, np.float32), 0.25, 0.7, 300)) == 0


def test_candidate_cap_keeps_top_scores_before_nms(monkeypatch) -> None:
    """Ultralytics max_nms: only the best candidates (by score) enter NMS."""
    monkeypatch.setattr(postprocess, "MAX_NMS_CANDIDATES", 25)
    out = random_output(np.random.default_rng(9), 3, 400)
    for multi_label in (False, True):
        dets = decode_yolov8(out, 0.05, 0.7, 300, multi_label=multi_label)
        assert_same(
            dets, reference_decode(out, 0.05, 0.7, 300, multi_label=multi_label, max_nms=25)
        )
        assert len(dets) < len(reference_decode(out, 0.05, 0.7, 300, multi_label=multi_label))


def test_multi_label_keeps_several_classes_per_anchor() -> None:
    out = np.zeros((1, 4 + 3, 1), np.float32)
    out[0, :4, 0] = [50, 50, 20, 20]
    out[0, 4:, 0] = [0.9, 0.6, 0.1]
    assert decode_yolov8(out, 0.25, 0.7, 300, multi_label=True).class_ids.tolist() == [0, 1]
    assert decode_yolov8(out, 0.25, 0.7, 300).class_ids.tolist() == [0]


def test_empty_and_no_candidates() -> None:
    assert len(decode_yolov8(np.zeros((1, 85, 0), np.float32), 0.25, 0.7, 300)) == 0
    dets = decode_yolov8(np.zeros((1, 84, 8400), np.float32), 0.25, 0.7, 300)
    assert len(dets) == 0 and dets.boxes.shape == (0, 4) and dets.class_ids.dtype == np.int64


@pytest.mark.parametrize("shape", [(84,), (1, 4, 100), (2, 84, 100), (1, 1, 84, 100), (3, 100)])
def test_bad_shapes_raise(shape) -> None:
    with pytest.raises(ValueError, match="4\\+nc"):
        decode_yolov8(np.zeros(shape, np.float32), 0.25, 0.7, 300)
