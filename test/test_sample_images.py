"""Acceptance: Ultralytics sample images through Detector vs an independent plain OpenCV + ONNX
Runtime reference.

Expected (data MANIFEST section 4, conf 0.25, IoU 0.7): bus.jpg -> 4 persons + 1 bus, zidane.jpg ->
2 persons + 1 tie.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from yolo_trt_ros.detection.detector import Detector

MANIFEST = {  # (class, score, [x1, y1, x2, y2]) in original pixels
    "bus": [
        ("person", 0.891, [670, 380, 810, 879]),
        ("person", 0.887, [222, 408, 343, 856]),
        ("person", 0.882, [51, 397, 244, 905]),
        ("bus", 0.849, [34, 230, 798, 768]),
        ("person", 0.428, [1, 550, 58, 868]),
    ],
    "zidane": [
        ("person", 0.825, [118, 198, 1114, 711]),
        ("person", 0.824, [749, 42, 1144, 710]),
        ("tie", 0.284, [436, 437, 524, 715]),
    ],
}


def reference_detect(
    session: ort.InferenceSession, bgr: np.ndarray, conf: float = 0.25, iou: float = 0.7
):
    """Plain letterbox with OpenCV, raw ORT session, argmax decode and per-class
    cv2.dnn.NMSBoxes."""
    h, w = bgr.shape[:2]
    size = session.get_inputs()[0].shape[2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    top, left = round((size - nh) / 2 - 0.1), round((size - nw) / 2 - 0.1)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[top : top + nh, left : left + nw] = cv2.resize(
        bgr, (nw, nh), interpolation=cv2.INTER_LINEAR
    )
    blob = cv2.dnn.blobFromImage(canvas, scalefactor=1 / 255, swapRB=True)
    pred = session.run(None, {session.get_inputs()[0].name: blob})[0][0].T  # (N, 4+nc)
    cls, score = pred[:, 4:].argmax(1), pred[:, 4:].max(1)
    found = []
    for c in np.unique(cls[score > conf]):
        idx = np.flatnonzero((cls == c) & (score > conf))
        cx, cy, bw, bh = pred[idx, :4].T
        rects = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1).tolist()
        for k in np.asarray(cv2.dnn.NMSBoxes(rects, score[idx].tolist(), conf, iou)).reshape(-1):
            x, y, rw, rh = rects[k]
            box = [
                (x - left) / (nw / w),
                (y - top) / (nh / h),
                (x + rw - left) / (nw / w),
                (y + rh - top) / (nh / h),
            ]
            box = [min(max(v, 0), lim) for v, lim in zip(box, (w, h, w, h), strict=True)]
            found.append((int(c), float(score[idx[k]]), box))
    return sorted(found, key=lambda d: -d[1])


@pytest.fixture(scope="module")
def detector(model_path: Path):
    det = Detector.from_model(model_path)
    yield det
    det.close()


@pytest.mark.parametrize(
    "name, expected", [("bus", {"person": 4, "bus": 1}), ("zidane", {"person": 2, "tie": 1})]
)
def test_sample_image(
    detector: Detector, model_path: Path, sample_images: dict[str, Path], name, expected
) -> None:
    image = cv2.imread(str(sample_images[name]))
    dets = detector(image)
    names = [detector.names[c] for c in dets.class_ids]
    assert Counter(names) == expected

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    ref = reference_detect(session, image)
    assert [detector.names[c] for c, _, _ in ref] == names
    np.testing.assert_allclose(dets.scores, [s for _, s, _ in ref], atol=2e-3)
    np.testing.assert_allclose(dets.boxes, [b for _, _, b in ref], atol=2.0)

    manifest = MANIFEST[name]
    assert names == [n for n, _, _ in manifest]
    np.testing.assert_allclose(dets.scores, [s for _, s, _ in manifest], atol=2e-3)
    np.testing.assert_allclose(dets.boxes, [b for _, _, b in manifest], atol=2.0)
