"""``backend: auto|tensorrt|onnxruntime``: which backend and the reason logged."""

from __future__ import annotations

import sys

import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.selection import select_backend, tensorrt_status


def test_onnxruntime_is_taken_as_configured() -> None:
    assert select_backend("onnxruntime") == ("onnxruntime", "backend onnxruntime: as configured")


def test_without_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    name, reason = select_backend("auto")
    assert name == "onnxruntime"
    assert reason.startswith("backend auto -> onnxruntime: TensorRT is not importable (")
    with pytest.raises(
        ModelError, match="backend tensorrt was requested but TensorRT is not importable"
    ):
        select_backend("tensorrt")


def test_without_pycuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake.make_fake_tensorrt("10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    name, reason = select_backend("auto")
    assert name == "onnxruntime" and reason.startswith(
        "backend auto -> onnxruntime: pycuda is not importable ("
    )


def _gpu(monkeypatch: pytest.MonkeyPatch, count: int = 1):
    package, driver, _ = make_fake_pycuda("NVIDIA Jetson AGX Orin")
    if count == 0:
        driver.Device.count = staticmethod(lambda: 0)
    monkeypatch.setitem(sys.modules, "tensorrt", fake.make_fake_tensorrt("10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return driver


def test_with_tensorrt_and_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpu(monkeypatch)
    assert tensorrt_status() == (True, "TensorRT 10.3.0 and GPU 'NVIDIA Jetson AGX Orin' found")
    expected = "backend auto -> tensorrt: TensorRT 10.3.0 and GPU 'NVIDIA Jetson AGX Orin' found"
    assert select_backend("auto") == ("tensorrt", expected)
    assert select_backend("tensorrt")[0] == "tensorrt"


def test_no_gpu_or_broken_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _gpu(monkeypatch, count=0)
    assert select_backend("auto") == (
        "onnxruntime",
        "backend auto -> onnxruntime: CUDA sees no GPU",
    )

    def broken() -> None:
        raise driver.Error(
            "cuInit failed: CUDA driver version is insufficient for CUDA runtime version"
        )

    driver.init = broken
    name, reason = select_backend("auto")
    assert (
        name == "onnxruntime"
        and "CUDA is not usable (cuInit failed: CUDA driver version" in reason
    )


def test_unknown_kind() -> None:
    with pytest.raises(
        ModelError, match="backend must be one of auto, tensorrt, onnxruntime, got 'cuda'"
    ):
        select_backend("cuda")


@pytest.mark.parametrize("kind", ["onnxruntime", "auto"])
def test_a_directory_or_a_missing_file_is_named_as_such(tmp_path, kind: str) -> None:
    from yolo_trt_ros.inference.selection import create_backend

    with pytest.raises(ModelError, match=f"model {tmp_path}: is a directory, not a model file"):
        create_backend(kind, tmp_path)
    with pytest.raises(ModelError, match="missing.onnx: file not found"):
        create_backend(kind, tmp_path / "missing.onnx")
