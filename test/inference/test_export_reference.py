"""``yolo-trt-ros export`` for real: the shared YOLOv8n checkpoint exported by Ultralytics in the
reference environment (``bash bench/setup_ref_env.sh``; ``$YOLO_TRT_ROS_REF_PYTHON`` or
``.venv-ref/bin/python``), static and dynamic, detects what the shared ONNX detects. Skips where
that environment is absent (CI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from reference_env import ref_python
from yolo_trt_ros.detection.detector import Detector
from yolo_trt_ros.inference.onnx_info import read_onnx_info

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def exported(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    python = ref_python("ultralytics", "yolo_trt_ros")
    weights = data_dir / "models" / "yolov8n-coco-reconstructed.pt"
    out = tmp_path_factory.mktemp("export")
    paths = {}
    for kind, flags in (("static", []), ("dynamic", ["--dynamic"])):
        paths[kind] = out / f"yolov8n-{kind}.onnx"
        command = [str(python), "-m", "yolo_trt_ros.cli.main", "export", "--weights"]
        command += [str(weights), *flags, "--output", str(paths[kind])]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert str(paths[kind]) in result.stdout
    assert sorted(p.name for p in weights.parent.iterdir() if p.suffix == ".onnx") == [
        "yolov8n-coco-dynamic.onnx",
        "yolov8n-coco-fp32.onnx",
    ], "the export must not write into the weights' folder"
    return paths


def test_input_shapes(exported: dict[str, Path]) -> None:
    assert read_onnx_info(exported["static"]).inputs[0].shape == (1, 3, 640, 640)
    assert read_onnx_info(exported["dynamic"]).inputs[0].shape == ("batch", 3, "height", "width")


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_exported_model_detects_like_the_shared_onnx(
    exported: dict[str, Path], model_path: Path, data_dir: Path, kind: str
) -> None:
    """Each export against the shared ONNX of its kind (the dynamic ones both letterbox
    rectangles)."""
    images = sorted((data_dir / "coco8" / "extracted" / "coco8" / "images").rglob("*.jpg"))
    assert len(images) == 8
    reference = (
        model_path if kind == "static" else data_dir / "models" / "yolov8n-coco-dynamic.onnx"
    )
    shared, ours = Detector.from_model(reference), Detector.from_model(exported[kind])
    assert shared.rect == ours.rect == (kind == "dynamic")
    try:
        assert ours.names == shared.names
        for image_path in images:
            image = cv2.imread(str(image_path))
            want, got = shared(image), ours(image)
            assert got.class_ids.tolist() == want.class_ids.tolist(), image_path.name
            np.testing.assert_allclose(got.boxes, want.boxes, atol=0.5)
            np.testing.assert_allclose(got.scores, want.scores, atol=2e-3)
    finally:
        shared.close()
        ours.close()
