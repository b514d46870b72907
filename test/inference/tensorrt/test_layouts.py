"""Every output layout through the TensorRT path, on the CPU: engines built here from ONNX models
(fake TensorRT 8.6 and 10, whose engines run their ONNX with onnxruntime, see
``fake_tensorrt.OnnxExecutor``) and an engine with Ultralytics' metadata header detect what ONNX
Runtime detects from the same model, decoded by the same layout rules; a dynamic-H/W model runs
each frame at its rectangular input size through an engine profile tuned for the camera.
"""

from __future__ import annotations

import ast
import functools
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

import fake_tensorrt as fake
from box_reference import assert_same_rows
from fake_pycuda import make_fake_pycuda
from onnx_models import yolov5_model
from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.detection.model_layout import LayoutKind
from yolo_trt_ros.inference.onnx_info import read_onnx_info
from yolo_trt_ros.inference.tensorrt.engine_cache import read_engine_plan

VERSIONS = ["8.6.1", "10.3.0"]
FORMATS = {
    "yolo11n-random": LayoutKind.ONE_TO_MANY,
    "yolo26n-random": LayoutKind.END_TO_END,
    "yolov10n-random": LayoutKind.END_TO_END,
}
TENSORRT = {"tensorrt": {"precision": "fp32"}}


def install(monkeypatch: pytest.MonkeyPatch, version: str, onnx: Path) -> fake.OnnxExecutor:
    """Fake TensorRT ``version`` whose engines run ``onnx``; fake pycuda (no kernels: CPU
    letterbox)."""
    executor = fake.OnnxExecutor(onnx)
    package, driver, _ = make_fake_pycuda("Fake Orin", (8, 7))
    modules = {
        "tensorrt": fake.make_fake_tensorrt(version, executor=executor),
        "pycuda": package,
        "pycuda.driver": driver,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return executor


def rows(dets: Detections) -> np.ndarray:
    return np.concatenate(
        [dets.boxes, dets.scores[:, None], dets.class_ids[:, None].astype(np.float32)], axis=1
    )


def detections_of(detector: Detector, images: list[np.ndarray]) -> list[np.ndarray]:
    return [rows(detector(image)) for image in images]


def assert_same_detections(
    got: Detector, expected: list[np.ndarray], images: list[np.ndarray]
) -> int:
    """``got`` finds the ``expected`` rows in every image; returns how many."""
    for image, want in zip(images, expected, strict=True):
        assert_same_rows(rows(got(image)), want, box_tol=1e-3, score_tol=1e-5)
    return sum(len(want) for want in expected)


@pytest.fixture(scope="module")
def images(sample_images: dict[str, Path], mot_dir: Path) -> list[np.ndarray]:
    frame = sorted((mot_dir / "img1").glob("*.jpg"))[0]
    paths = [sample_images["bus"], frame]
    return [cv2.imread(str(p)) for p in paths]


class Reference(NamedTuple):
    names: list[str]
    detections: list[np.ndarray]


@pytest.fixture(scope="module")
def onnxruntime_reference(data_dir: Path, images: list[np.ndarray]) -> Callable[[str], Reference]:
    """ONNX Runtime's Detector on a ``models/formats/`` model (conf 0.05): its names and its
    detections in ``images``, found once per model for every test and TensorRT version."""

    @functools.cache
    def reference(name: str) -> Reference:
        onnx = data_dir / "models" / "formats" / f"{name}.onnx"
        detector = Detector.from_model(onnx, config=DetectorConfig(conf_threshold=0.05))
        try:
            return Reference(detector.names, detections_of(detector, images))
        finally:
            detector.close()

    return reference


@pytest.mark.parametrize(
    "name, version",
    [
        ("yolo11n-random", "8.6.1"),
        ("yolo11n-random", "10.3.0"),
        ("yolo26n-random", "10.3.0"),
        ("yolov10n-random", "8.6.1"),
    ],
)
def test_engine_of_each_layout_detects_what_onnxruntime_does(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    data_dir: Path,
    images: list[np.ndarray],
    onnxruntime_reference: Callable[[str], Reference],
    name: str,
    version: str,
) -> None:
    onnx = Path(shutil.copy(data_dir / "models" / "formats" / f"{name}.onnx", tmp_path))
    install(monkeypatch, version, onnx)
    config = DetectorConfig(conf_threshold=0.05)
    engine = Detector.from_model(onnx, "tensorrt", config=config, backend_options=TENSORRT)
    reference = onnxruntime_reference(name)
    try:
        assert engine.backend.name == "tensorrt" and engine.layout.kind is FORMATS[name]
        assert engine.names == reference.names and engine.names_source == "metadata"
        assert assert_same_detections(engine, reference.detections, images) > 0
    finally:
        engine.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_engine_of_a_yolov5_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    found = np.array(
        [[60, 80, 40, 50, 0.9, 0.1, 0.9], [200, 150, 60, 80, 0.6, 0.7, 0.1]], np.float32
    )
    onnx = yolov5_model(tmp_path / "v5.onnx", found, metadata={"names": "{0: 'a', 1: 'b'}"})
    install(monkeypatch, version, onnx)
    engine = Detector.from_model(onnx, "tensorrt", backend_options=TENSORRT)
    reference = Detector.from_model(onnx)
    try:
        assert engine.layout.kind is LayoutKind.YOLOV5
        image = np.full((640, 512, 3), 90, np.uint8)
        assert assert_same_detections(engine, detections_of(reference, [image]), [image]) == 2
    finally:
        engine.close()
        reference.close()


def ultralytics_engine(path: Path, plan: bytes, onnx: Path) -> Path:
    """An engine file as ``yolo export format=engine`` writes it: int32 length, JSON metadata (the
    ONNX's, as the Python values Ultralytics keeps), the plan."""
    metadata = {}
    for key, text in read_onnx_info(onnx).metadata.items():
        try:
            metadata[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            metadata[key] = text
    header = json.dumps(metadata).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(header).to_bytes(4, "little") + header + plan)
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_an_adopted_ultralytics_end_to_end_engine(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    data_dir: Path,
    images: list[np.ndarray],
    onnxruntime_reference: Callable[[str], Reference],
    version: str,
) -> None:
    """The layout (end2end) and names come from the engine's header: no ONNX beside it."""
    from yolo_trt_ros.cli.main import main

    onnx = Path(shutil.copy(data_dir / "models" / "formats" / "yolo26n-random.onnx", tmp_path))
    install(monkeypatch, version, onnx)
    built = Detector.from_model(onnx, "tensorrt", backend_options=TENSORRT)
    plan, header = read_engine_plan(built.backend.engine_path)
    built.close()
    assert header == {}
    engine_path = ultralytics_engine(tmp_path / "exported" / "yolo26n.engine", plan, onnx)
    assert main(["build-engine", "--adopt", str(engine_path)]) == 0  # fp32: the default
    config = DetectorConfig(conf_threshold=0.05)
    engine = Detector.from_model(engine_path, "tensorrt", config=config)
    reference = onnxruntime_reference("yolo26n-random")
    try:
        assert engine.layout.kind is LayoutKind.END_TO_END
        assert engine.names == reference.names and engine.names_source == "metadata"
        assert assert_same_detections(engine, reference.detections, images) > 0
    finally:
        engine.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_dynamic_model_runs_rectangular_inputs_through_a_camera_tuned_profile(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    small_dynamic_model: Path,
    images: list[np.ndarray],
    version: str,
) -> None:
    onnx = Path(shutil.copy(small_dynamic_model, tmp_path))  # nominal 352x352
    executor = install(monkeypatch, version, onnx)
    options = {"tensorrt": {"precision": "fp32", "camera_hw": (480, 640)}}
    engine = Detector.from_model(onnx, "tensorrt", backend_options=options)
    reference = Detector.from_model(onnx)
    try:
        assert engine.rect and engine.backend.dynamic_hw
        assert engine.backend.input_shape == (1, 3, 352, 352)
        record = json.loads(Path(f"{engine.backend.engine_path}.json").read_text())
        assert record["profile"]["images"] == {
            "min": [1, 3, 32, 32],
            "opt": [1, 3, 288, 352],
            "max": [1, 3, 352, 352],
        }
        wide = cv2.resize(images[1], (1280, 720))
        frames = [images[1], wide, images[0]]
        assert assert_same_detections(engine, detections_of(reference, frames), frames) > 10
        # MOT16-05 640x480 -> 288x352, 1280x720 -> 224x352, bus.jpg 810x1080 -> 352x288
        assert executor.input_shapes == [(1, 3, 288, 352), (1, 3, 224, 352), (1, 3, 352, 288)]
    finally:
        engine.close()
        reference.close()
