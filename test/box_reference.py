"""Brute-force box geometry, an independent reference for the box (IoU, NMS) and decode tests."""


def ref_iou(a, b) -> float:
    """IoU of two xyxy boxes, one pair at a time in plain Python."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    if iw <= 0 or ih <= 0:
        return 0.0  # apart
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def greedy_keep(boxes, scores, classes, iou, max_nms=None) -> list[int]:
    """Greedy NMS by descending score (stable: ties in input order), the first ``max_nms`` boxes
    only: a box is kept unless its IoU with a kept box of its class exceeds ``iou``. Returns the
    indices of the kept boxes, in that order.

    A kept box whose extent misses the candidate's (IoU 0, so ``iou`` >= 0 keeps it) is passed
    over before ``ref_iou`` is called: most pairs, and most of the time.
    """
    rows = [tuple(float(v) for v in box) for box in boxes]
    order = sorted(range(len(rows)), key=lambda i: -float(scores[i]))[:max_nms]
    kept: list[int] = []
    rivals: dict[int, list[tuple]] = {}  # kept boxes by class
    for i in order:
        group = rivals.setdefault(int(classes[i]), [])
        x1, y1, x2, y2 = box = rows[i]
        for k in group:
            if k[2] <= x1 or x2 <= k[0] or k[3] <= y1 or y2 <= k[1]:
                continue  # apart
            if ref_iou(k, box) > iou:
                break
        else:
            kept.append(i)
            group.append(box)
    return kept


def greedy_nms(cands, iou, agnostic=False, max_det=300, max_nms=None):
    """``greedy_keep`` over [(box, score, class)] (all one class if ``agnostic``); returns the
    first ``max_det`` kept candidates."""
    boxes = [box for box, _, _ in cands]
    scores = [score for _, score, _ in cands]
    classes = [0 if agnostic else cls for _, _, cls in cands]
    kept = greedy_keep(boxes, scores, classes, iou, max_nms)
    return [cands[i] for i in kept[:max_det]]


def assert_same_rows(got, expected, box_tol: float, score_tol: float) -> None:
    """One-to-one match of (x1, y1, x2, y2, score, cls) detection rows (numpy arrays): same class,
    close score and box. Tie order is free."""
    import numpy as np

    assert got.shape == expected.shape
    free = np.ones(len(got), bool)
    for row in expected:
        close = (
            free
            & (got[:, 5] == row[5])
            & (np.abs(got[:, 4] - row[4]) <= score_tol)
            & (np.abs(got[:, :4] - row[:4]).max(axis=1) <= box_tol)
        )
        assert close.any(), f"reference row {row.tolist()} has no match"
        free[np.argmax(close)] = False
