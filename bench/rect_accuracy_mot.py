"""Rectangular vs square input on a real camera sequence: person AP on the MOT16-05 frames of the
data set (640x480, 4:3) with the dynamic-size YOLOv8n, letterboxed to 640x480 (rect) and to
640x640 (square).

Ground truth: MOT16-05 pedestrians (class 1) with flag 1, as xyxy boxes clipped to the image; our
Detector with Ultralytics' val settings (conf 0.001, IoU 0.7, max_det 300, multi-label NMS),
only the person class kept; scored with ``yolo_trt_ros.evaluation.coco_metrics`` (AP50-95 and
AP50). coco8 (bench/coco8_map.py) has 8 images of varied shapes; this is one camera's shape.

    .venv/bin/python bench/rect_accuracy_mot.py [--model M.onnx] [--frames N]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

import data_paths
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.evaluation.coco_metrics import MapEvaluator
from yolo_trt_ros.evaluation.mot import read_seqinfo


def ground_truth(seq_dir: Path, width: int, height: int) -> dict[int, np.ndarray]:
    """Frame -> (N, 4) xyxy pedestrian boxes (class 1, flag 1), clipped to the image."""
    rows = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    keep = (rows[:, 7] == 1) & (rows[:, 6] == 1)
    boxes: dict[int, list[np.ndarray]] = {}
    for frame, x, y, w, h in rows[keep][:, [0, 2, 3, 4, 5]]:
        xyxy = np.clip([x - 1, y - 1, x - 1 + w, y - 1 + h], 0, [width, height, width, height])
        if xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]:
            boxes.setdefault(int(frame), []).append(xyxy)
    return {f: np.array(b, np.float64) for f, b in boxes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="dynamic-size ONNX model")
    parser.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    args = parser.parse_args()
    model = args.model or data_paths.data_dir() / "models" / "yolov8n-coco-dynamic.onnx"
    seq_dir = data_paths.mot_sequence()
    info = read_seqinfo(seq_dir)
    truth = ground_truth(seq_dir, info.width, info.height)
    frames = sorted((seq_dir / "img1").glob("*.jpg"))[: args.frames or None]
    config = DetectorConfig(0.001, 0.7, 300, ("person",), multi_label=True)
    print(
        f"{model.name} on {len(frames)} frames of {seq_dir.name} ({info.width}x{info.height}); "
        f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )
    for rect in (True, False):
        detector = Detector.from_model(model, config=config, rect=rect)
        evaluator = MapEvaluator()
        start = time.perf_counter()
        for path in frames:
            dets = detector(cv2.imread(str(path)))
            gt = truth.get(int(path.stem), np.zeros((0, 4)))
            evaluator.add_image(dets.boxes, dets.scores, dets.class_ids, gt, np.zeros(len(gt)))
        seconds = time.perf_counter() - start
        result = evaluator.result()
        label = "rectangular 640x480" if rect else "square 640x640"
        print(
            f"{label:20s} person AP50-95 {result.map50_95:.4f}  AP50 {result.map50:.4f}  "
            f"({result.num_targets} boxes, {seconds / len(frames) * 1e3:.1f} ms/frame)"
        )
        detector.close()


if __name__ == "__main__":
    main()
