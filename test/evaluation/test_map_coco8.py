"""Detection accuracy: our Detector (ONNX Runtime) + our COCO metric over coco8 vs the data
MANIFEST's number.

The MANIFEST computed mAP50-95 0.716 (mAP50 0.907) over all 8 images with an independent
implementation of the Ultralytics metric, at Ultralytics val settings (conf 0.001, IoU 0.7, max_det
300, multi-label NMS).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.evaluation.coco_metrics import MapEvaluator, read_yolo_labels, yolo_dataset_items

VAL_CONFIG = DetectorConfig(
    conf_threshold=0.001, iou_threshold=0.7, max_detections=300, multi_label=True
)


@pytest.fixture(scope="module")
def coco8_map(data_dir: Path, model_path: Path):
    root = data_dir / "coco8" / "extracted" / "coco8"
    detector = Detector.from_model(model_path, config=VAL_CONFIG)
    evaluator = MapEvaluator()
    try:
        for image_path, label_path in yolo_dataset_items(root):
            image = cv2.imread(str(image_path))
            dets = detector(image)
            gt_boxes, gt_classes = read_yolo_labels(label_path, image.shape[1], image.shape[0])
            evaluator.add_image(dets.boxes, dets.scores, dets.class_ids, gt_boxes, gt_classes)
    finally:
        detector.close()
    return evaluator.result()


def test_coco8_covers_all_images_and_boxes(coco8_map) -> None:
    assert (coco8_map.num_images, coco8_map.num_targets) == (8, 30)


def test_coco8_map50_95_matches_manifest(coco8_map) -> None:
    assert coco8_map.map50_95 == pytest.approx(0.716, abs=0.005)


def test_coco8_map50_matches_manifest(coco8_map) -> None:
    assert coco8_map.map50 == pytest.approx(0.907, abs=0.01)
