"""Make ``test/golden/format_detections.npz``: what Ultralytics ``predict`` detects with each
random-weight model of ``shared/data/models/formats/``, for test/detection/test_format_parity.py.

Run once in the reference environment (torch + Ultralytics, ``bash bench/setup_ref_env.sh``), from
the repo root:

    .venv-ref/bin/python tools/make_format_golden.py

Per model (yolo11n: one-to-many [1, 84, 8400]; yolo26n and yolov10n: end-to-end [1, 300, 6]),
per image (coco8's 8 images; bus.jpg and zidane.jpg, the Ultralytics wheel's samples that
test/conftest.py's ``sample_images`` caches in ``.cache/assets/``) and per setting (``SETTINGS``;
the class allow-list only for the end-to-end models, where Ultralytics filters rows as this
package does): ``YOLO(model, task='detect').predict(image, **setting)`` on CPU, rows x1 y1 x2 y2
score cls in original-image pixels. Nothing from yolo_trt_ros is used here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import ultralytics
from ultralytics import YOLO

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "test" / "golden" / "format_detections.npz"
MODELS = {
    "yolo11n-random": False,
    "yolo26n-random": True,
    "yolov10n-random": True,
}
"""Model name -> end-to-end."""
SETTINGS: dict[str, dict] = {
    "predict": {"conf": 0.25, "iou": 0.7, "max_det": 300},
    "strict": {"conf": 0.5, "iou": 0.5, "max_det": 10},
    "classes": {"conf": 0.25, "iou": 0.7, "max_det": 300, "classes": list(range(0, 80, 3))},
}
"""Setting name -> predict arguments (``classes``: end-to-end models only)."""


def main() -> None:
    coco = DATA / "coco8" / "extracted" / "coco8" / "images"
    images = {f"coco8/{p.parent.name}/{p.name}": p for p in sorted(coco.glob("*/*.jpg"))}
    for name in ("bus", "zidane"):
        images[f"assets/{name}.jpg"] = REPO / ".cache" / "assets" / f"{name}.jpg"
    for path in images.values():
        if not path.is_file():
            sys.exit(f"missing {path} (bus/zidane: run test/test_sample_images.py once)")
    arrays: dict[str, np.ndarray] = {}
    for name, end2end in MODELS.items():
        model = YOLO(str(DATA / "models" / "formats" / f"{name}.onnx"), task="detect")
        for setting, args in SETTINGS.items():
            if "classes" in args and not end2end:
                continue
            for image, path in images.items():
                key = f"{name}:{setting}:{image}"
                result = model.predict(str(path), imgsz=640, device="cpu", verbose=False, **args)
                rows = result[0].boxes.data.cpu().numpy().astype(np.float32)
                arrays[key] = rows
                print(f"{key}: {len(rows)}")
    versions = (
        f"ultralytics {ultralytics.__version__}, torch {torch.__version__}, onnxruntime "
        f"{ort.__version__}"
    )
    np.savez_compressed(
        OUT, versions=np.array(versions), settings=np.array(json.dumps(SETTINGS)), **arrays
    )
    print(f"wrote {OUT} ({versions})")


if __name__ == "__main__":
    main()
