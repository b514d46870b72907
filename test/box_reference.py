"""Brute-force box geometry, an independent reference for the box (IoU, NMS) and decode tests."""


def ref_iou(a, b) -> float:
    """IoU of two xyxy boxes, one pair at a time in plain Python."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_nms(cands, iou, agnostic=False, max_det=300, max_nms=None):
    """Greedy NMS over [(box, score, class)] by descending score (stable), the first ``max_nms``
    candidates only; a candidate is kept unless its IoU with a kept one (of its class unless
    ``agnostic``) exceeds ``iou``. Returns the first ``max_det`` kept candidates."""
    boxes = [[float(v) for v in box] for box, _, _ in cands]
    order = sorted(range(len(cands)), key=lambda i: -float(cands[i][1]))[:max_nms]
    kept: list[int] = []
    rivals: dict[int, list[int]] = {}  # kept boxes by class (all under one key if agnostic)
    for i in order:
        group = rivals.setdefault(0 if agnostic else int(cands[i][2]), [])
        if all(ref_iou(boxes[k], boxes[i]) <= iou for k in group):
            kept.append(i)
            group.append(i)
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
