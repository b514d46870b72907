"""The YOLOv5 and end-to-end decoders (against brute-force references), and the Detector on each
layout: thresholds, class allow-list and max_detections apply to all, boxes in original pixels."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from box_reference import greedy_nms
from onnx_models import fixed_output_model, yolov5_model
from yolo_trt_ros.detection.decode import decode_end2end, decode_yolov5, decode_yolov8
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.detection.model_layout import LayoutKind, anchor_count
from yolo_trt_ros.inference.base import ModelError

NAMES = {"names": "{0: 'a', 1: 'b', 2: 'c'}", "stride": "32"}


def reference_yolov5(rows, conf, iou, max_det, class_filter=None, agnostic=False):
    """YOLOv5's non_max_suppression with plain loops: objectness > conf, score = objectness x
    class score (float32), best (allowed) class > conf, greedy NMS; returns [(box, score, cls)]."""
    conf = np.float32(conf)
    nc = rows.shape[1] - 5
    allowed = list(range(nc)) if class_filter is None else [int(c) for c in class_filter]
    cands = []
    for row in rows:
        cx, cy, w, h, obj = (np.float32(v) for v in row[:5])
        if not obj > conf:
            continue
        box = [float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2)]
        s = {c: float(np.float32(row[5 + c]) * obj) for c in allowed}
        if not all(math.isfinite(v) for v in box + list(s.values())):
            continue
        best = max(allowed, key=lambda c: (s[c], -c))
        if s[best] > conf:
            cands.append((box, s[best], best))
    return greedy_nms(cands, iou, agnostic, max_det)


def random_yolov5(rng: np.random.Generator, nc: int, n: int) -> np.ndarray:
    """[n, 5+nc] rows clustered around a few objects (so NMS has work)."""
    objects = max(1, n // 20)
    which = rng.integers(0, objects, n)
    xy = rng.uniform(0, 640, (objects, 2))[which] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(8, 150, (objects, 2))[which] * rng.uniform(0.8, 1.25, (n, 2))
    obj = rng.uniform(0, 1, (n, 1))
    scores = rng.uniform(0, 1, (n, nc)) ** 3
    return np.concatenate([xy, wh, obj, scores], axis=1).astype(np.float32)


def assert_same(dets, ref) -> None:
    assert len(dets) == len(ref)
    if ref:
        np.testing.assert_allclose(dets.boxes, [r[0] for r in ref], atol=1e-4)
        np.testing.assert_array_equal(dets.scores, np.array([r[1] for r in ref], np.float32))
        np.testing.assert_array_equal(dets.class_ids, [r[2] for r in ref])
    assert dets.scores.dtype == np.float32 and dets.class_ids.dtype == np.int64


@pytest.mark.parametrize("nc, n", [(1, 50), (3, 400), (80, 200)])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("conf, iou", [(0.25, 0.7), (0.05, 0.45)])
@pytest.mark.parametrize("agnostic", [False, True])
def test_yolov5_matches_reference(nc, n, seed, conf, iou, agnostic) -> None:
    rows = random_yolov5(np.random.default_rng(seed), nc, n)
    for max_det in (300, 5):
        dets = decode_yolov5(rows[None], conf, iou, max_det, agnostic=agnostic)
        assert_same(dets, reference_yolov5(rows, conf, iou, max_det, agnostic=agnostic))


def test_yolov5_class_filter_non_finite_and_objectness() -> None:
    rows = random_yolov5(np.random.default_rng(7), 3, 300)
    rows[::7, 0] = np.nan
    rows[::11, 6] = np.inf
    allowed = np.array([0, 2])
    dets = decode_yolov5(rows, 0.2, 0.7, 300, class_filter=allowed)
    assert len(dets) and set(dets.class_ids) <= {0, 2}
    assert_same(dets, reference_yolov5(rows, 0.2, 0.7, 300, class_filter=allowed))
    # a row with a strong class but objectness at the threshold is no candidate
    one = np.array([[50, 50, 10, 10, 0.25, 1.0, 0.0]], np.float32)
    assert len(decode_yolov5(one, 0.25, 0.7, 300)) == 0
    assert decode_yolov5(one, 0.2, 0.7, 300).scores.tolist() == [np.float32(0.25)]
    assert len(decode_yolov5(one, 0.2, 0.7, 300, class_filter=np.array([], np.int64))) == 0


def test_yolov5_is_yolov8_with_objectness_folded_in() -> None:
    rows = random_yolov5(np.random.default_rng(3), 5, 500)
    as_v8 = np.concatenate([rows[:, :4], rows[:, 5:] * rows[:, 4:5]], axis=1).T[None]
    a, b = decode_yolov5(rows, 0.1, 0.6, 300), decode_yolov8(as_v8, 0.1, 0.6, 300)
    for field in ("boxes", "scores", "class_ids"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize(
    "shape", [(1, 10, 5), (2, 10, 8), (10,), (1, 1, 10, 8)], ids=lambda s: str(list(s))
)
def test_bad_shapes_raise(shape) -> None:
    with pytest.raises(ValueError, match="YOLOv5 output must be"):
        decode_yolov5(np.zeros(shape, np.float32), 0.25, 0.7, 300)
    with pytest.raises(ValueError, match="end-to-end output must be"):
        decode_end2end(np.zeros(shape, np.float32), 0.25, 300, 80)


def reference_end2end(rows, conf, max_det, nc, classes=None):
    keep = [
        r
        for r in rows
        if r[4] > np.float32(conf)
        and all(math.isfinite(v) for v in r[:4])
        and 0 <= r[5] < nc
        and (classes is None or int(r[5]) in classes)
    ]
    return sorted(keep, key=lambda r: -r[4])[:max_det]


def random_end2end(rng: np.random.Generator, k: int = 300, nc: int = 80) -> np.ndarray:
    xy = rng.uniform(0, 600, (k, 2))
    wh = rng.uniform(1, 100, (k, 2))
    scores = np.sort(rng.uniform(0, 1, k))[::-1]
    cls = rng.integers(0, nc, k)
    return np.concatenate([xy, xy + wh, scores[:, None], cls[:, None]], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("conf, max_det", [(0.25, 300), (0.6, 10), (0.0, 1000), (1.0, 300)])
@pytest.mark.parametrize("classes", [None, [0, 5, 79]])
def test_end2end_matches_reference(seed, conf, max_det, classes) -> None:
    rows = random_end2end(np.random.default_rng(seed))
    rows[3, 0] = np.nan  # dropped
    rows[4, 5] = 80  # class out of range: dropped
    rows[5, 5] = -1
    filt = None if classes is None else np.array(classes)
    dets = decode_end2end(rows[None], conf, max_det, 80, class_filter=filt)
    ref = reference_end2end(rows, conf, max_det, 80, classes)
    assert len(dets) == len(ref)
    if ref:
        np.testing.assert_array_equal(dets.boxes, np.array([r[:4] for r in ref]))
        np.testing.assert_array_equal(dets.scores, [r[4] for r in ref])
        np.testing.assert_array_equal(dets.class_ids, [int(r[5]) for r in ref])
    assert dets.boxes.dtype == np.float32 and dets.class_ids.dtype == np.int64


def test_end2end_unsorted_rows_come_out_by_score() -> None:
    rows = random_end2end(np.random.default_rng(1), 50)
    rows = rows[np.random.default_rng(2).permutation(50)]
    dets = decode_end2end(rows, 0.1, 5, 80)
    np.testing.assert_array_equal(dets.scores, np.sort(rows[:, 4][rows[:, 4] > 0.1])[::-1][:5])


BOXES = [(60, 80, 40, 50), (62, 81, 40, 50), (200, 150, 60, 80), (120, 220, 30, 30)]
"""cx, cy, w, h in input pixels of a 320x256 (HxW) model."""


def yolov5_rows() -> np.ndarray:
    rows = np.zeros((len(BOXES), 8), np.float32)
    rows[:, :4] = BOXES
    rows[:, 4] = [0.9, 0.8, 0.6, 0.3]  # objectness
    rows[:, 5:] = [[0.1, 0.9, 0.0], [0.2, 0.8, 0.1], [0.7, 0.1, 0.2], [0.0, 0.0, 0.95]]
    return rows


def test_detector_on_a_yolov5_model(tmp_path: Path) -> None:
    path = yolov5_model(tmp_path / "v5.onnx", yolov5_rows(), metadata=NAMES)
    detector = Detector.from_model(path)
    assert detector.layout.kind is LayoutKind.YOLOV5 and detector.names == ["a", "b", "c"]
    assert detector.backend.output_shape == (1, 3 * anchor_count((320, 256)), 8)
    image = np.full((640, 512, 3), 90, np.uint8)  # scale 2, no padding
    dets = detector(image)
    ref = reference_yolov5(yolov5_rows(), 0.25, 0.7, 300)
    assert [r[2] for r in ref] == [1, 0, 2] and len(dets) == 3  # row 1 suppressed by row 0
    np.testing.assert_allclose(dets.boxes, np.array([r[0] for r in ref]) * 2, atol=1e-3)
    np.testing.assert_allclose(dets.scores, [r[1] for r in ref], rtol=1e-6)

    detector.set_config(DetectorConfig(conf_threshold=0.3, classes=("b", "a"), max_detections=1))
    only = detector(image)
    assert only.class_ids.tolist() == [1] and only.scores[0] == pytest.approx(0.81)
    detector.set_config(DetectorConfig(iou_threshold=0.95))
    assert detector(image).class_ids.tolist() == [1, 1, 0, 2]
    detector.close()


def end2end_output() -> np.ndarray:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, :4] = [
        [20, 30, 100, 130, 0.9, 2],
        [22, 31, 101, 131, 0.8, 2],  # no NMS in the decode: kept
        [150, 100, 250, 200, 0.5, 0],
        [10, 10, 20, 20, 0.2, 1],
    ]
    return rows


def test_detector_on_an_end_to_end_model(tmp_path: Path) -> None:
    meta = {**NAMES, "end2end": "True", "task": "detect"}
    path = fixed_output_model(tmp_path / "e2e.onnx", end2end_output(), metadata=meta)
    detector = Detector.from_model(path)
    assert detector.layout.kind is LayoutKind.END_TO_END and detector.names == ["a", "b", "c"]
    image = np.zeros((640, 512, 3), np.uint8)
    dets = detector(image)
    np.testing.assert_allclose(dets.boxes, end2end_output()[0, :3, :4] * 2)
    assert dets.class_ids.tolist() == [2, 2, 0]
    detector.set_config(DetectorConfig(conf_threshold=0.1, classes=("b", "c"), max_detections=2))
    assert detector(image).class_ids.tolist() == [2, 2]
    detector.set_config(DetectorConfig(conf_threshold=0.1, classes=("b", "a")))
    assert detector(image).class_ids.tolist() == [0, 1]
    detector.close()


def test_end_to_end_without_names_needs_a_names_file(tmp_path: Path) -> None:
    path = fixed_output_model(tmp_path / "e2e.onnx", end2end_output())
    with pytest.raises(ModelError, match="does not tell the number of classes") as info:
        Detector.from_model(path)
    assert "[1, 300, 6] is end-to-end" in str(info.value)
    names = tmp_path / "names.txt"
    names.write_text("x\ny\nz\nw\n")
    detector = Detector.from_model(path, names_file=names)
    assert detector.names_source == "names_file" and len(detector(np.zeros((64, 64, 3), np.uint8)))
    detector.close()


def test_dynamic_model_detects_on_bus_what_the_static_model_does(
    data_dir: Path, model_path: Path, sample_images: dict[str, Path]
) -> None:
    """At the square input it detects exactly what the static model does; at its default
    rectangular input (1080x810 -> 640x480) the same persons and bus."""
    image = cv2.imread(str(sample_images["bus"]))
    dynamic = data_dir / "models" / "yolov8n-coco-dynamic.onnx"
    found = []
    for path, rect in ((model_path, True), (dynamic, False), (dynamic, True)):
        detector = Detector.from_model(path, rect=rect)
        dets = detector(image)
        counts = {
            n: int((dets.class_ids == detector.names.index(n)).sum()) for n in ("person", "bus")
        }
        found.append((counts, dets))
        detector.close()
    (static, a), (square, b), (rect, _) = found
    assert static == square == rect == {"person": 4, "bus": 1} and len(a) == len(b) == 5
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
