"""Parity with Ultralytics itself: golden detections made by test/golden/make_ultralytics_golden.py
(Ultralytics 8.4 LetterBox + non_max_suppression on the same ONNX model) vs our Detector and
decode_yolov8.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from box_reference import assert_same_rows
from yolo_trt_ros.detection.decode import decode_yolov8
from yolo_trt_ros.detection.detector import Detector

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ultralytics_detections.npz"


def image_path(key: str, data_dir: Path, sample_images: dict[str, Path]) -> Path:
    group, rest = key.split("/", 1)
    if group == "coco8":
        return data_dir / "coco8" / "extracted" / "coco8" / "images" / rest
    if group == "assets":
        return sample_images[Path(rest).stem]
    return data_dir / "mot" / "MOT16-05" / "img1" / Path(rest).name


def rows(dets) -> np.ndarray:
    return np.concatenate(
        [dets.boxes, dets.scores[:, None], dets.class_ids[:, None].astype(np.float32)], axis=1
    )


with np.load(GOLDEN) as _golden:
    KEYS = sorted(k.split(":", 1)[1] for k in _golden.files if k.startswith("predict:"))


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def detector(model_path: Path):
    """The Detector, its backend running a tensor once when asked for it again right after (the
    val settings infer the tensor the predict settings just ran)."""
    det = Detector.from_model(model_path)
    infer = det.backend.infer
    last: list[np.ndarray] = []  # the last tensor run and its output

    def infer_once(tensor: np.ndarray) -> np.ndarray:
        if not (last and np.array_equal(last[0], tensor)):
            last[:] = [tensor.copy(), infer(tensor).copy()]
        return last[1].copy()

    det.backend.infer = infer_once  # type: ignore[method-assign]
    yield det
    det.close()


@pytest.mark.parametrize("key", KEYS)
def test_matches_ultralytics(key, golden, detector, data_dir, sample_images) -> None:
    image = cv2.imread(str(image_path(key, data_dir, sample_images)))
    assert image is not None, key

    # predict settings, end to end, original pixels
    expected = golden[f"predict:{key}"]
    got = rows(detector(image))
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got[:, 5], expected[:, 5])
    np.testing.assert_allclose(got[:, 4], expected[:, 4], atol=1e-5)
    np.testing.assert_allclose(got[:, :4], expected[:, :4], atol=0.05)

    # val settings (multi-label, conf 0.001, max_det 300) on the raw output, input pixels
    tensor, _ = detector._letterbox(0, detector._stride)(image)
    output = detector.backend.infer(tensor)
    got = rows(decode_yolov8(output, 0.001, 0.7, 300, multi_label=True))
    assert_same_rows(got, golden[f"val:{key}"], box_tol=0.01, score_tol=1e-5)
