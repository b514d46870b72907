"""Unit tests of the Ultralytics-style COCO mAP on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_trt_ros.detection.boxes import iou as box_iou
from yolo_trt_ros.evaluation.coco_metrics import (
    MapEvaluator,
    average_precision,
    match_predictions,
    read_yolo_labels,
)

# A perfect detector scores 0.995, not 1.0, in Ultralytics' metric: the 101-point trapezoid has its
# last point at recall 1 on the precision-0 sentinel, which costs half of the last 0.01 step.
PERFECT = 0.995
GT = np.array([[100, 100, 200, 200], [300, 300, 400, 420]], dtype=np.float64)
GT_CLS = np.array([0, 1])


def evaluate(*images) -> tuple[float, float]:
    ev = MapEvaluator()
    for pred_boxes, scores, classes, gt_boxes, gt_classes in images:
        ev.add_image(np.asarray(pred_boxes, float), scores, classes, gt_boxes, gt_classes)
    result = ev.result()
    return result.map50_95, result.map50


def test_box_iou_values() -> None:
    iou = box_iou(
        np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    )
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]], atol=1e-9)


def test_perfect_predictions() -> None:
    assert evaluate((GT, [0.9, 0.8], GT_CLS, GT, GT_CLS)) == pytest.approx(
        (PERFECT, PERFECT), abs=1e-9
    )


def test_no_predictions_is_zero() -> None:
    assert evaluate((np.zeros((0, 4)), [], [], GT, GT_CLS)) == (0.0, 0.0)


def test_false_positive_below_all_true_positives_costs_nothing() -> None:
    preds = np.vstack([GT, [[500, 500, 600, 600]]])
    assert evaluate((preds, [0.9, 0.8, 0.1], [0, 1, 0], GT, GT_CLS)) == pytest.approx(
        (PERFECT, PERFECT)
    )


def test_false_positive_ranked_first_halves_precision() -> None:
    # Class 0: FP (0.95) then TP (0.9): precision 0.5 at recall 1 -> AP 0.5; class 1 perfect.
    preds = np.vstack([[[500, 500, 600, 600]], GT])
    m, m50 = evaluate((preds, [0.95, 0.9, 0.8], [0, 0, 1], GT, GT_CLS))
    assert m50 == pytest.approx((0.5 + PERFECT) / 2, abs=0.005)
    assert m == pytest.approx(m50, abs=1e-9)


def test_shifted_box_counts_only_at_low_iou_thresholds() -> None:
    # Shift by 20 px: IoU = 80*100 / (120*100) = 0.667 -> TP at 0.50, 0.55, 0.60, 0.65; FP from
    # 0.70 on.
    gt = GT[:1]
    m, m50 = evaluate((gt + [20, 0, 20, 0], [0.9], [0], gt, [0]))
    assert m50 == pytest.approx(PERFECT)
    assert m == pytest.approx(4 * PERFECT / 10)


def test_wrong_class_never_matches() -> None:
    m, m50 = evaluate((GT, [0.9, 0.8], [1, 0], GT, GT_CLS))
    assert (m, m50) == (0.0, 0.0)


def test_duplicate_detection_is_a_false_positive() -> None:
    # A shifted box (IoU 0.667) outscores an exact duplicate: at IoU 0.5-0.65 the shifted one takes
    # the gt and the duplicate is an FP behind it (AP unchanged); from 0.70 only the exact one
    # matches, behind an FP (AP ~0.5).
    gt = GT[:1]
    preds = np.vstack([gt + [20, 0, 20, 0], gt])
    m, m50 = evaluate((preds, [0.9, 0.8], [0, 0], gt, [0]))
    assert m50 == pytest.approx(PERFECT)
    assert m == pytest.approx((4 * PERFECT + 6 * 0.5) / 10, abs=0.005)


def test_greedy_match_falls_back_to_the_next_unclaimed_box() -> None:
    # Two same-class gts side by side. A (score 0.9) is exactly gt0; B (0.8) overlaps gt0 best (IoU
    # 0.5625) and gt1 (0.515). gt0 is claimed by A, so B takes gt1: a TP at IoU 0.5 only.
    gt = np.array([[0, 0, 100, 100], [60, 0, 160, 100]], dtype=float)
    preds = np.array([[0, 0, 100, 100], [28, 0, 128, 100]], dtype=float)
    np.testing.assert_allclose(box_iou(preds[1:], gt), [[72 / 128, 68 / 132]])
    correct = match_predictions(
        preds, np.array([0.9, 0.8]), np.array([0, 0]), gt, np.array([0, 0])
    )
    assert correct[0].all()
    assert correct[1].tolist() == [True] + [False] * 9


def test_higher_score_wins_a_shared_box() -> None:
    gt = GT[:1]
    preds = np.vstack([gt + [5, 0, 5, 0], gt])  # second one is the better box but the lower score
    correct = match_predictions(preds, np.array([0.5, 0.9]), np.array([0, 0]), gt, np.array([0]))
    assert correct[1].all() and not correct[0].any()


def test_images_are_pooled_per_class() -> None:
    # Class 0 gt in image 1 only; a confident class-0 box in image 2 (no gt there) is an FP ranked
    # first.
    img1 = (GT[:1], [0.5], [0], GT[:1], [0])
    img2 = (GT[:1], [0.9], [0], np.zeros((0, 4)), np.zeros(0, int))
    m, m50 = evaluate(img1, img2)
    assert m50 == pytest.approx(0.5, abs=0.005)


def test_class_only_predicted_is_ignored_and_class_never_predicted_is_zero() -> None:
    m, m50 = evaluate((np.vstack([GT[:1], GT[:1]]), [0.9, 0.9], [0, 7], GT, GT_CLS))
    assert m50 == pytest.approx(PERFECT / 2)


def test_average_precision_of_a_known_curve() -> None:
    # Envelope (recall, precision): (0,1) (0.5,1) (0.75,0.6) (1,0.5), linearly interpolated
    # (np.interp): 0.5*1 + 0.25*(1+0.6)/2 + 0.25*(0.6+0.5)/2 = 0.8375, less half of the last 0.01
    # step at 0.5 (the sentinel).
    ap = average_precision(np.array([0.25, 0.5, 0.75, 1.0]), np.array([1.0, 1.0, 0.6, 0.5]))
    assert ap == pytest.approx(0.8375 - 0.0025, abs=1e-9)


def test_precision_drops_to_zero_after_the_last_recall() -> None:
    # Half of the boxes found, all correct: AP 0.5 (no ramp from the last point to recall 1).
    assert average_precision(np.array([0.5]), np.array([1.0])) == pytest.approx(0.5, abs=0.006)


def test_read_yolo_labels(tmp_path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("3 0.5 0.5 0.5 0.25\n0 0.1 0.2 0.2 0.2\n")
    boxes, classes = read_yolo_labels(f, width=640, height=480)
    np.testing.assert_allclose(boxes, [[160, 180, 480, 300], [0, 48, 128, 144]])
    assert classes.tolist() == [3, 0]
    empty = tmp_path / "e.txt"
    empty.write_text("")
    assert read_yolo_labels(empty, 10, 10)[0].shape == (0, 4)
