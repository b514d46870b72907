"""Parity per output layout with Ultralytics ``predict`` on the same ONNX file: golden detections
of the ``models/formats/`` random-weight models made by tools/make_format_golden.py (one-to-many
yolo11n, end-to-end yolo26n and yolov10n) vs our Detector; the segmentation model is refused
naming its task. A reference-environment test checks the golden file against a live Ultralytics."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from box_reference import assert_same_rows
from reference_env import ref_python
from yolo_trt_ros.detection.class_names import names_from_metadata
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.detection.model_layout import LayoutKind, check_layout
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.onnx_info import read_onnx_info
from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "test" / "golden" / "format_detections.npz"
LAYOUTS = {
    "yolo11n-random": LayoutKind.ONE_TO_MANY,
    "yolo26n-random": LayoutKind.END_TO_END,
    "yolov10n-random": LayoutKind.END_TO_END,
}

with np.load(GOLDEN) as _golden:
    KEYS = sorted(k for k in _golden.files if k.count(":") == 2)
    SETTINGS: dict[str, dict] = json.loads(str(_golden["settings"]))


def image_path(key: str, data_dir: Path, sample_images: dict[str, Path]) -> Path:
    group, rest = key.split("/", 1)
    if group == "coco8":
        return data_dir / "coco8" / "extracted" / "coco8" / "images" / rest
    return sample_images[Path(rest).stem]


def rows(dets) -> np.ndarray:
    return np.concatenate(
        [dets.boxes, dets.scores[:, None], dets.class_ids[:, None].astype(np.float32)], axis=1
    )


# Scores within 1e-3, wider than the YOLOv8 parity test's 1e-5: our input tensor differs from
# Ultralytics' by float rounding (6e-8: x * (1/255) vs x / 255), which these random-weight heads
# amplify to up to 2.5e-4 in a score.
SCORE_TOL, BOX_TOL = 1e-3, 0.05


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in KEYS}


class RepeatServed:
    """A backend that runs each distinct input tensor once: the two settings of an image share
    one inference (the detector's letterbox and decode still run every time)."""

    def __init__(self, backend: OnnxRuntimeBackend):
        self.backend = backend
        self.outputs: dict[bytes, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        key = hashlib.sha256(tensor.tobytes()).digest() + str(tensor.shape).encode()
        if key not in self.outputs:
            self.outputs[key] = self.backend.infer(tensor).copy()
        return self.outputs[key]


@pytest.fixture(scope="module")
def detectors(data_dir: Path):
    made = {}
    for name in LAYOUTS:
        backend = OnnxRuntimeBackend(data_dir / "models" / "formats" / f"{name}.onnx")
        names = names_from_metadata(backend.metadata)
        assert names is not None
        made[name] = Detector(RepeatServed(backend), names)  # type: ignore[arg-type]
    yield made
    for det in made.values():
        det.close()


def config(detector: Detector, setting: str) -> DetectorConfig:
    args = SETTINGS[setting]
    classes = tuple(detector.names[i] for i in args.get("classes", ()))
    return DetectorConfig(args["conf"], args["iou"], args["max_det"], classes)


@pytest.mark.parametrize("name, kind", LAYOUTS.items())
def test_layout_decided_at_load(detectors, name: str, kind: LayoutKind) -> None:
    detector = detectors[name]
    assert detector.layout.kind is kind and detector.names == [str(i) for i in range(80)]


@pytest.mark.parametrize("key", KEYS)
def test_matches_ultralytics_predict(key, golden, detectors, data_dir, sample_images) -> None:
    name, setting, image_key = key.split(":")
    image = cv2.imread(str(image_path(image_key, data_dir, sample_images)))
    assert image is not None, key
    detector = detectors[name]
    detector.set_config(config(detector, setting))
    got = rows(detector(image))
    assert_same_rows(got, golden[key], box_tol=BOX_TOL, score_tol=SCORE_TOL)
    assert (np.diff(got[:, 4]) <= 0).all()


def test_golden_covers_each_layout(golden) -> None:
    for name in LAYOUTS:
        counts = [len(v) for k, v in golden.items() if k.startswith(f"{name}:predict:")]
        assert len(counts) == 10 and sum(counts) > 50, (name, counts)


def test_segmentation_model_refused_naming_its_task(data_dir: Path) -> None:
    path = data_dir / "models" / "formats" / "yolov8n-seg-random.onnx"
    info = read_onnx_info(path)
    with pytest.raises(ModelError) as error:
        check_layout(path, (1, 3, 640, 640), info.outputs[0].shape, info.metadata)
    assert "a segment model (metadata task 'segment'), not a detection model" in str(error.value)
    with pytest.raises(ModelError):
        Detector.from_model(path)


PREDICT = """
import json, sys
from ultralytics import YOLO
out = {}
for model, image in json.loads(sys.argv[1]):
    result = YOLO(model, task="detect").predict(image, imgsz=640, device="cpu", verbose=False)
    out[model] = result[0].boxes.data.numpy().tolist()
print(json.dumps(out))
"""


@pytest.mark.reference
def test_golden_is_what_ultralytics_predicts_now(data_dir, sample_images, golden) -> None:
    python = ref_python("ultralytics")
    models = {name: str(data_dir / "models" / "formats" / f"{name}.onnx") for name in LAYOUTS}
    jobs = [(path, str(sample_images["bus"])) for path in models.values()]
    result = subprocess.run(
        [str(python), "-c", PREDICT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    live = json.loads(result.stdout.strip().splitlines()[-1])
    for name, path in models.items():
        np.testing.assert_allclose(
            np.array(live[path], np.float32).reshape(-1, 6),
            golden[f"{name}:predict:assets/bus.jpg"],
            atol=1e-4,
        )
