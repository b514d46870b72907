"""COCO-style detection mAP (mAP50 and mAP50-95) as Ultralytics ``val`` computes it, in numpy.

The metric, as Ultralytics 8.4 defines it:

* Matching, per image and per IoU threshold t in 0.50:0.05:0.95 (the COCO greedy rule): predictions
  are taken in descending score order; each claims the unclaimed ground-truth box of its own class
  with the highest IoU, and is a true positive if that IoU >= t, otherwise a false positive.
* Per class (only classes that have ground truth count; a class never predicted has AP 0):
  predictions of all images sorted by score, cumulative TP/FP give precision and recall (recall =
  TP / number of ground-truth boxes). The curve gets sentinels (recall 0, precision 1) in front and
  (last recall, precision 0), (recall 1, precision 0) behind; its precision envelope (running max
  from the right), linearly interpolated at 101 recall points 0, 0.01, ..., 1, is integrated with
  the trapezoidal rule. So a perfect detector scores 0.995, not 1.
* mAP50 is the mean over classes of AP at t = 0.5; mAP50-95 the mean over classes and the 10
  thresholds.

Also reads YOLO-format label files (``class cx cy w h``, normalised) for datasets such as coco8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo_trt_ros.detection.boxes import iou, xywh_to_xyxy

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def match_predictions(
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    pred_classes: np.ndarray,
    gt_boxes: np.ndarray,
    gt_classes: np.ndarray,
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
) -> np.ndarray:
    """True-positive flags (num_preds, num_thresholds) for one image, by the matching rule in the
    module doc."""
    n_pred, n_gt = len(pred_scores), len(gt_classes)
    correct = np.zeros((n_pred, len(iou_thresholds)), dtype=bool)
    if n_pred == 0 or n_gt == 0:
        return correct
    overlap = iou(pred_boxes, gt_boxes)
    overlap[np.asarray(pred_classes)[:, None] != np.asarray(gt_classes)[None, :]] = 0.0
    claimed = np.zeros((n_gt, len(iou_thresholds)), dtype=bool)
    columns = np.arange(len(iou_thresholds))
    for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
        available = np.where(claimed, 0.0, overlap[p][:, None])  # (n_gt, n_thresholds)
        best = available.argmax(axis=0)
        correct[p] = available[best, columns] >= iou_thresholds
        claimed[best, columns] |= correct[p]
    return correct


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, 101-point trapezoid, sentinels as in the module doc
    (recall ascending)."""
    last = recall[-1] if len(recall) else 1.0
    mrec = np.concatenate(([0.0], recall, [last, 1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0, 0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    x = np.linspace(0.0, 1.0, 101)
    y = np.interp(x, mrec, mpre)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


@dataclass
class MapResult:
    """mAP summary; ``ap`` is (num_classes, num_thresholds) for the classes in ``classes``."""

    map50_95: float
    map50: float
    classes: np.ndarray
    ap: np.ndarray
    num_images: int
    num_targets: int


@dataclass
class MapEvaluator:
    """Accumulates per-image predictions and ground truth; ``result()`` gives mAP over all images
    so far."""

    iou_thresholds: np.ndarray = field(default_factory=lambda: COCO_IOU_THRESHOLDS.copy())
    _tp: list[np.ndarray] = field(default_factory=list)
    _scores: list[np.ndarray] = field(default_factory=list)
    _pred_classes: list[np.ndarray] = field(default_factory=list)
    _gt_classes: list[np.ndarray] = field(default_factory=list)
    _num_images: int = 0

    def add_image(
        self,
        pred_boxes: np.ndarray,
        pred_scores: np.ndarray,
        pred_classes: np.ndarray,
        gt_boxes: np.ndarray,
        gt_classes: np.ndarray,
    ) -> None:
        """Add one image: xyxy predictions with scores and class ids, xyxy ground truth with class
        ids."""
        pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        pred_classes = np.asarray(pred_classes, dtype=np.int64).reshape(-1)
        gt_classes = np.asarray(gt_classes, dtype=np.int64).reshape(-1)
        self._tp.append(
            match_predictions(
                pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes, self.iou_thresholds
            )
        )
        self._scores.append(pred_scores)
        self._pred_classes.append(pred_classes)
        self._gt_classes.append(gt_classes)
        self._num_images += 1

    def result(self) -> MapResult:
        """mAP50-95 and mAP50 over the classes that have ground truth."""
        n_thr = len(self.iou_thresholds)
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, n_thr), dtype=bool)
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        pred_classes = (
            np.concatenate(self._pred_classes) if self._pred_classes else np.zeros(0, np.int64)
        )
        gt_classes = (
            np.concatenate(self._gt_classes) if self._gt_classes else np.zeros(0, np.int64)
        )
        order = np.argsort(-scores, kind="stable")
        tp, pred_classes = tp[order], pred_classes[order]
        classes, counts = np.unique(gt_classes, return_counts=True)
        ap = np.zeros((len(classes), n_thr))
        for ci, (cls, n_gt) in enumerate(zip(classes, counts, strict=True)):
            hits = tp[pred_classes == cls].astype(np.float64)
            if len(hits) == 0:
                continue
            tpc = np.cumsum(hits, axis=0)
            fpc = np.cumsum(1.0 - hits, axis=0)
            recall = tpc / n_gt
            precision = tpc / (tpc + fpc)
            for t in range(n_thr):
                ap[ci, t] = average_precision(recall[:, t], precision[:, t])
        has_classes = len(classes) > 0
        return MapResult(
            map50_95=float(ap.mean()) if has_classes else 0.0,
            map50=float(ap[:, 0].mean()) if has_classes else 0.0,
            classes=classes,
            ap=ap,
            num_images=self._num_images,
            num_targets=int(len(gt_classes)),
        )


def read_yolo_labels(path: str | Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a YOLO label file (``class cx cy w h`` normalised) into xyxy pixel boxes and class
    ids."""
    path = Path(path)
    rows = (
        np.loadtxt(path, ndmin=2)
        if path.is_file() and path.stat().st_size > 0
        else np.zeros((0, 5))
    )
    if rows.shape[1] < 5:
        raise ValueError(f"{path}: expected 5 columns (class cx cy w h), got {rows.shape[1]}")
    boxes = xywh_to_xyxy(rows[:, 1:5] * [width, height, width, height])
    return boxes, rows[:, 0].astype(np.int64)


def yolo_dataset_items(
    root: str | Path, splits: tuple[str, ...] = ("train", "val")
) -> list[tuple[Path, Path]]:
    """(image, label) paths of a YOLO dataset laid out as ``images/<split>/*`` and
    ``labels/<split>/*.txt``."""
    root = Path(root)
    items = []
    for split in splits:
        for image in sorted((root / "images" / split).iterdir()):
            if image.suffix.lower() in _IMAGE_SUFFIXES:
                items.append((image, root / "labels" / split / f"{image.stem}.txt"))
    return items
