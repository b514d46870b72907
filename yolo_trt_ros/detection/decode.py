"""Decode raw detection outputs, one function per layout (see ``model_layout``), into detections
in input-tensor pixels, by descending score.

All share the thresholds (a score strictly above ``conf_threshold``), the class allow-list
(``class_filter``, class indices) and ``max_detections``; rows with a NaN/inf in their box or
(allowed) scores are dropped.
"""

from __future__ import annotations

import numpy as np

from yolo_trt_ros.detection.boxes import batched_nms, nms, xywh_to_xyxy
from yolo_trt_ros.detection.detections import Detections

MAX_NMS_CANDIDATES = 30000
"""Candidates kept (by score) before NMS, as Ultralytics ``max_nms``."""


def decode_yolov8(
    output: np.ndarray,
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_filter: np.ndarray | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
) -> Detections:
    """Decode ``output`` ([1, 4+nc, N] or [4+nc, N]: cx, cy, w, h in input pixels, then nc class
    scores).

    Returns xyxy boxes in input-tensor pixels, by descending score. A candidate needs a score
    strictly above ``conf_threshold``; anchors with a NaN/inf in their box or (allowed) scores are
    dropped. ``class_filter`` (class indices) restricts the classes considered: an anchor's best
    class is taken among the allowed classes only (Ultralytics instead takes the best of all
    classes, then drops it if not allowed). ``multi_label`` keeps every (anchor, class) pair above
    the threshold, as Ultralytics validation does. At most ``MAX_NMS_CANDIDATES`` candidates (by
    score) enter the NMS, which is class-aware unless ``agnostic``; the first ``max_detections``
    survivors are returned.
    """
    pred = output[0] if output.ndim == 3 else output
    if pred.ndim != 2 or pred.shape[0] < 5 or (output.ndim == 3 and output.shape[0] != 1):
        raise ValueError(
            "YOLOv8 output must be [1, 4+nc, N] or [4+nc, N] with nc >= 1, got "
            f"{list(output.shape)}"
        )
    return _decode_candidates(
        pred[:4],
        pred[4:],
        conf_threshold,
        iou_threshold,
        max_detections,
        class_filter,
        agnostic,
        multi_label,
    )


def decode_yolov5(
    output: np.ndarray,
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_filter: np.ndarray | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
) -> Detections:
    """Decode an original YOLOv5 output ([1, N, 5+nc] or [N, 5+nc]: cx, cy, w, h in input pixels,
    objectness, then nc class scores).

    A class's score is objectness x class score; from there as ``decode_yolov8`` (an anchor needs
    objectness above ``conf_threshold`` too, which a score above it implies).
    """
    pred = output[0] if output.ndim == 3 else output
    if pred.ndim != 2 or pred.shape[1] < 6 or (output.ndim == 3 and output.shape[0] != 1):
        raise ValueError(
            "YOLOv5 output must be [1, N, 5+nc] or [N, 5+nc] with nc >= 1, got "
            f"{list(output.shape)}"
        )
    rows = pred[pred[:, 4] > conf_threshold]
    return _decode_candidates(
        rows[:, :4].T,
        (rows[:, 5:] * rows[:, 4:5]).T,
        conf_threshold,
        iou_threshold,
        max_detections,
        class_filter,
        agnostic,
        multi_label,
    )


def decode_end2end(
    output: np.ndarray,
    conf_threshold: float,
    max_detections: int,
    num_classes: int,
    class_filter: np.ndarray | None = None,
) -> Detections:
    """Decode an end-to-end output ([1, K, 6] or [K, 6]: x1, y1, x2, y2 in input pixels, score,
    class), which needs no NMS.

    Keeps rows with a finite box, a score above ``conf_threshold`` and a class in [0,
    ``num_classes``) (and in ``class_filter``): the ``max_detections`` best, as Ultralytics (whose
    rows come sorted by score).
    """
    pred = output[0] if output.ndim == 3 else output
    if pred.ndim != 2 or pred.shape[1] != 6 or (output.ndim == 3 and output.shape[0] != 1):
        raise ValueError(
            f"end-to-end output must be [1, K, 6] or [K, 6], got {list(output.shape)}"
        )
    cls = pred[:, 5]
    keep = (
        (pred[:, 4] > conf_threshold)
        & np.isfinite(pred[:, :4]).all(axis=1)
        & (cls >= 0)
        & (cls < num_classes)
    )
    rows = pred[keep]
    if class_filter is not None:
        allowed = np.zeros(num_classes, bool)
        allowed[class_filter] = True
        rows = rows[allowed[rows[:, 5].astype(np.int64)]]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")[:max_detections]]
    return Detections(
        rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int64)
    )


def _decode_candidates(
    boxes_xywh: np.ndarray,
    scores: np.ndarray,
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_filter: np.ndarray | None,
    agnostic: bool,
    multi_label: bool,
) -> Detections:
    """Threshold, class allow-list and NMS of (4, N) cx, cy, w, h boxes with (nc, N) scores."""
    if class_filter is not None:
        class_filter = np.asarray(class_filter, np.int64)
        if class_filter.size == 0:
            return Detections.empty()
        scores = scores[class_filter]
    best = scores.max(axis=0)
    anchors = np.flatnonzero(best > conf_threshold)
    if anchors.size == 0:
        return Detections.empty()
    cand_scores = scores[:, anchors]
    boxes = xywh_to_xyxy(boxes_xywh[:, anchors].T)
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(cand_scores).all(axis=0)
    if not finite.all():
        cand_scores, boxes = cand_scores[:, finite], boxes[finite]
    if multi_label:
        anchor_pos, cls = np.nonzero(conf_threshold < cand_scores.T)
        conf = cand_scores[cls, anchor_pos]
        boxes = boxes[anchor_pos]
    else:
        cls = cand_scores.argmax(axis=0)
        conf = cand_scores[cls, np.arange(cls.shape[0])]
    if conf.shape[0] > MAX_NMS_CANDIDATES:
        top = np.argsort(-conf, kind="stable")[:MAX_NMS_CANDIDATES]
        boxes, conf, cls = boxes[top], conf[top], cls[top]
    keep = (
        nms(boxes, conf, iou_threshold)
        if agnostic
        else batched_nms(boxes, conf, cls, iou_threshold)
    )
    keep = keep[:max_detections]
    class_ids = cls[keep].astype(np.int64)
    if class_filter is not None:
        class_ids = class_filter[class_ids]
    return Detections(boxes[keep].astype(np.float32), conf[keep].astype(np.float32), class_ids)
