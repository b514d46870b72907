"""INT8 calibration set digest and the keyed calibration cache (no TensorRT needed)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from yolo_trt_ros.inference.tensorrt.int8_calibrator import (
    CalibrationCache,
    CalibrationImages,
    calibration_key,
)

LOG = logging.getLogger("test.int8")


def test_digest_follows_the_images_and_the_input(calib: Path) -> None:
    digest = CalibrationImages(calib, (64, 64)).digest()
    assert CalibrationImages(calib, (64, 64)).digest() == digest
    assert CalibrationImages(calib, (96, 64)).digest() != digest
    first = sorted(calib.iterdir())[0]
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # re-exported
    touched = CalibrationImages(calib, (64, 64)).digest()
    assert touched != digest
    (calib / "notes.txt").write_text("not an image")
    assert CalibrationImages(calib, (64, 64)).digest() == touched


def test_cache_is_used_only_with_its_key(
    calib: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = calibration_key("a" * 64, CalibrationImages(calib, (64, 64)), "minmax", "10.3.0")
    path = tmp_path / "model.int8.calib"
    assert CalibrationCache(path, key, LOG).read() is None  # nothing cached yet
    CalibrationCache(path, key, LOG).write(b"TRT-100300-MinMaxCalibration\n")
    assert json.loads(path.with_name("model.int8.calib.json").read_text()) == key
    assert CalibrationCache(path, key, LOG).read() == b"TRT-100300-MinMaxCalibration\n"
    with caplog.at_level(logging.INFO, logger="test.int8"):
        assert CalibrationCache(path, {**key, "onnx_sha256": "b" * 64}, LOG).read() is None
        assert CalibrationCache(path, {**key, "calibrator": "entropy"}, LOG).read() is None
    assert "is stale (onnx_sha256)" in caplog.text and "is stale (calibrator)" in caplog.text
    path.with_name("model.int8.calib.json").unlink()  # a table from elsewhere: no key
    with caplog.at_level(logging.INFO, logger="test.int8"):
        assert CalibrationCache(path, key, LOG).read() is None
    assert "no readable key model.int8.calib.json" in caplog.text
