"""Make ``ultralytics_detections.npz``: what Ultralytics itself detects with our ONNX model, for
test_ultralytics_parity.

Run once in the reference environment (torch + Ultralytics, ``bash bench/setup_ref_env.sh``), from
the repo root:

    .venv-ref/bin/python test/golden/make_ultralytics_golden.py

Per image (coco8's 8, bus.jpg, zidane.jpg, MOT16-05 frames 1 and 25): Ultralytics ``LetterBox`` ->
ONNX Runtime -> ``non_max_suppression``, (a) predict settings (conf 0.25, IoU 0.7, then
``scale_boxes`` to original pixels) and (b) val settings (conf 0.001, IoU 0.7, multi_label, max_det
300; boxes in input pixels). Rows: x1 y1 x2 y2 score cls. Nothing from yolo_trt_ros is used here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
import ultralytics
from ultralytics.data.augment import LetterBox
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import scale_boxes

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
OUT = Path(__file__).with_name("ultralytics_detections.npz")


def images() -> dict[str, Path]:
    coco = DATA / "coco8" / "extracted" / "coco8" / "images"
    found = {f"coco8/{p.parent.name}/{p.name}": p for p in sorted(coco.glob("*/*.jpg"))}
    found["assets/bus.jpg"] = REPO / ".cache" / "assets" / "bus.jpg"
    found["assets/zidane.jpg"] = REPO / ".cache" / "assets" / "zidane.jpg"
    for frame in ("000001", "000025"):
        found[f"mot/MOT16-05/{frame}.jpg"] = DATA / "mot" / "MOT16-05" / "img1" / f"{frame}.jpg"
    return found


def main() -> None:
    model = DATA / "models" / "yolov8n-coco-fp32.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    letterbox = LetterBox(new_shape=(640, 640), auto=False, scaleup=True, center=True)
    arrays: dict[str, np.ndarray] = {}
    for key, path in images().items():
        if not path.is_file():
            sys.exit(
                f"missing {path} (bus/zidane: run test/test_sample_images.py once to fetch them)"
            )
        img = cv2.imread(str(path))
        canvas = letterbox(image=img)
        tensor = (
            np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
            / 255
        )
        pred = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: tensor})[0])
        predict = non_max_suppression(pred.clone(), 0.25, 0.7, max_det=300)[0]
        predict[:, :4] = scale_boxes((640, 640), predict[:, :4], img.shape[:2])
        val = non_max_suppression(pred.clone(), 0.001, 0.7, multi_label=True, max_det=300)[0]
        arrays[f"predict:{key}"] = predict.numpy().astype(np.float32)
        arrays[f"val:{key}"] = val.numpy().astype(np.float32)
        print(f"{key}: predict {len(predict)}, val {len(val)}")
    versions = (
        f"ultralytics {ultralytics.__version__}, torch {torch.__version__}, onnxruntime "
        f"{ort.__version__}"
    )
    np.savez_compressed(OUT, versions=np.array(versions), **arrays)
    print(f"wrote {OUT} ({versions})")


if __name__ == "__main__":
    main()
