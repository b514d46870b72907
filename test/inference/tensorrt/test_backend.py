"""TensorRTBackend's buffer, binding, cache and cleanup logic on the CPU, against fake tensorrt
(8.6 and 10 API surfaces) and a fake pycuda whose device memory is host memory. The same code path
runs with real pycuda and real CUDA kernels in test_gpu_check.py (marker gpu); real TensorRT never
ran here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from yolo_trt_ros.detection.detector import Detector
from yolo_trt_ros.inference.base import DiagnosticsSource, FrameBackend, ModelError
from yolo_trt_ros.inference.selection import device_tree_model
from yolo_trt_ros.inference.tensorrt import engine_cache as ec
from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend

GPU = ("Fake Orin", "8.7")
GIB = 8
"""make_fake_pycuda's total memory (8 GiB)."""


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch):
    """install(version) -> (fake tensorrt module, fake CUDA state)."""

    def install(version: str):
        trt = fake.make_fake_tensorrt(version)
        package, driver, state = make_fake_pycuda(GPU[0], (8, 7))
        for name, module in (("tensorrt", trt), ("pycuda", package), ("pycuda.driver", driver)):
            monkeypatch.setitem(sys.modules, name, module)
        return trt, state

    return install


def _engine(
    tmp_path: Path, version: str, plan: bytes, precision: str = "fp16", name: str = "model.engine"
) -> Path:
    path = tmp_path / name
    path.write_bytes(plan)
    profile = {"images": {"min": [1], "opt": [1], "max": [1]}}
    platform = ec.Platform(version, *GPU, 0, GIB, device_tree_model())
    ec.write_sidecar(
        path,
        ec.EngineSpec.for_platform(platform, "", precision, profile),
        {"metadata": {"names": "{0: 'person'}", "imgsz": "[64, 64]"}},
    )
    return path


def _assert_released(state) -> None:
    assert state.device_allocations == {} and state.pinned == {}
    assert state.retained == 0 and state.stack == 0


@pytest.mark.parametrize("version, api", [("8.6.1", "bindings"), ("10.3.0", "tensor")])
def test_engine_runs_and_releases_everything(
    gpu, tmp_path: Path, version: str, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    trt, state = gpu(version)
    path = _engine(tmp_path, version, fake.make_plan(version, [1, 3, 64, 64], [1, 84, 50]))
    with caplog.at_level(logging.INFO):
        backend = TensorRTBackend(path)
    assert (backend.name, backend.api, backend.precision) == ("tensorrt", api, "fp16")
    assert backend.input_shape == (1, 3, 64, 64) and backend.input_dtype == np.float32
    assert backend.output_shape == (1, 84, 50)
    assert backend.metadata["names"] == "{0: 'person'}"
    assert not backend.gpu_preprocessing and "GPU preprocessing disabled" in caplog.text
    assert backend.device_memory_bytes == (3 * 64 * 64 + 84 * 50) * 4
    for seed in range(3):
        x = np.random.default_rng(seed).random((1, 3, 64, 64), np.float32)
        out = backend.infer(x)
        assert out.dtype == np.float32 and out.shape == (1, 84, 50)
        np.testing.assert_array_equal(out, fake.expected_output(x, (1, 84, 50)))
    assert state.stack == 0  # the context is pushed only around each call
    diag = backend.diagnostics()
    assert (
        diag["gpu"] == GPU[0]
        and diag["engine_precision"] == "fp16"
        and diag["tensorrt"] == version
    )
    assert diag["gpu_preprocess"] == "off" and float(diag["gpu_memory_mb"]) > 0
    backend.close()
    _assert_released(state)
    backend.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        backend.infer(x)


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_half_precision_io(gpu, tmp_path: Path, version: str) -> None:
    _, state = gpu(version)
    plan = fake.make_plan(
        version, [1, 3, 32, 32], [1, 6, 40], input_dtype="HALF", output_dtype="HALF"
    )
    backend = TensorRTBackend(_engine(tmp_path, version, plan))
    assert backend.input_dtype == np.float16
    x = np.random.default_rng(0).random((1, 3, 32, 32), np.float32)
    out = backend.infer(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(
        out, fake.expected_output(x.astype(np.float16), (1, 6, 40)), rtol=2e-3
    )
    backend.close()
    _assert_released(state)


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_dynamic_batch(gpu, tmp_path: Path, version: str) -> None:
    _, state = gpu(version)
    plan = fake.make_plan(
        version,
        [-1, 3, 32, 32],
        [-1, 6, 40],
        profile=[[1, 3, 32, 32], [1, 3, 32, 32], [4, 3, 32, 32]],
    )
    backend = TensorRTBackend(_engine(tmp_path, version, plan))
    assert backend.input_shape == (1, 3, 32, 32) and backend.output_shape == (1, 6, 40)
    for batch in (3, 1, 4):
        x = np.random.default_rng(batch).random((batch, 3, 32, 32), np.float32)
        np.testing.assert_array_equal(backend.infer(x), fake.expected_output(x, (batch, 6, 40)))
    with pytest.raises(Exception, match="outside the engine profile"):
        backend.infer(np.zeros((5, 3, 32, 32), np.float32))
    backend.close()
    _assert_released(state)


def test_refused_engines_leak_nothing(gpu, tmp_path: Path) -> None:
    _, state = gpu("10.3.0")
    bare = tmp_path / "exported.engine"
    bare.write_bytes(fake.make_plan("10.3.0", [1, 3, 32, 32], [1, 6, 40]))
    with pytest.raises(ModelError, match="exported.engine: no sidecar exported.engine.json"):
        TensorRTBackend(bare)
    old = _engine(
        tmp_path, "8.6.1", fake.make_plan("8.6.1", [1, 3, 32, 32], [1, 6, 40]), name="old.engine"
    )
    with pytest.raises(
        ModelError, match="built for another platform \\(tensorrt_version: engine has '8.6.1'"
    ):
        TensorRTBackend(old)
    with pytest.raises(ModelError, match="file not found"):
        TensorRTBackend(tmp_path / "missing.engine")
    _assert_released(state)


def test_wrong_io_refused(gpu, tmp_path: Path) -> None:
    _, state = gpu("10.3.0")
    plan = fake.make_plan("10.3.0", [1, 3, 32, 32], [1, 3, 40])
    with pytest.raises(
        ModelError, match="output 'output0' has shape \\[1, 3, 40\\] but YOLOv8 detection needs"
    ):
        TensorRTBackend(_engine(tmp_path, "10.3.0", plan))
    plan = fake.make_plan("10.3.0", [1, 3, 32, 32], [1, 6, 40], input_dtype="INT8")
    with pytest.raises(ModelError, match="tensor 'images' is int8; need float32 or float16"):
        TensorRTBackend(_engine(tmp_path, "10.3.0", plan, name="int8io.engine"))
    _assert_released(state)


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_onnx_built_once_then_cached(
    gpu, tmp_path: Path, make_yolo_onnx, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    trt, state = gpu(version)
    rng = np.random.default_rng(0)
    onnx = make_yolo_onnx(
        tmp_path / "tiny.onnx",
        rng.random((30, 4), np.float32) * 64,
        rng.random((2, 30), np.float32),
        input_hw=(64, 96),
        metadata={"names": "{0: 'cat', 1: 'dog'}"},
    )
    with caplog.at_level(logging.INFO):
        backend = TensorRTBackend(onnx, precision="fp16")
    assert backend.engine_path == tmp_path / "tiny.fp16.engine"
    assert ec.sidecar_path(backend.engine_path).is_file()
    assert len(trt.Builder.built) == 1 and trt.Builder.built[0]["flags"] == ["FP16"]
    assert backend.input_shape == (1, 3, 64, 96) and backend.output_shape == (
        1,
        6,
        126,
    )  # 8*12+4*6+2*3 anchors
    assert backend.metadata["names"] == "{0: 'cat', 1: 'dog'}"
    assert "building" in caplog.text and "no cached engine tiny.fp16.engine" in caplog.text
    backend.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = TensorRTBackend(onnx, precision="fp16")
    assert len(trt.Builder.built) == 1 and "reusing" in caplog.text
    again.close()
    fp32 = TensorRTBackend(onnx, precision="fp32")
    assert len(trt.Builder.built) == 2 and fp32.engine_path.name == "tiny.fp32.engine"
    fp32.close()
    _assert_released(state)


def test_gpu_path_needs_kernels(gpu, tmp_path: Path) -> None:
    _, state = gpu("10.3.0")
    backend = TensorRTBackend(
        _engine(tmp_path, "10.3.0", fake.make_plan("10.3.0", [1, 3, 32, 32], [1, 6, 40]))
    )
    with pytest.raises(RuntimeError, match="GPU preprocessing is not available"):
        backend.infer_image(np.zeros((10, 10, 3), np.uint8), "bgr8", 0.25)
    assert backend.last_gpu_times == {}
    backend.close()
    _assert_released(state)


def test_create_backend_auto_takes_tensorrt_with_its_own_options(
    gpu, tmp_path: Path, make_yolo_onnx
) -> None:
    _, state = gpu("10.3.0")
    rng = np.random.default_rng(1)
    onnx = make_yolo_onnx(
        tmp_path / "tiny.onnx",
        rng.random((30, 4), np.float32) * 64,
        rng.random((2, 30), np.float32),
        input_hw=(64, 64),
        metadata={"names": "{0: 'cat', 1: 'dog'}"},
    )
    options = {"tensorrt": {"precision": "fp32"}, "onnxruntime": {"intra_op_threads": 1}}
    detector = Detector.from_model(onnx, backend="auto", backend_options=options)
    backend = detector.backend
    assert isinstance(backend, TensorRTBackend) and backend.engine_path.name == "tiny.fp32.engine"
    assert (
        detector.backend_reason
        == "backend auto -> tensorrt: TensorRT 10.3.0 and GPU 'Fake Orin' found"
    )
    assert isinstance(backend, FrameBackend) and isinstance(backend, DiagnosticsSource)
    assert (
        not backend.gpu_preprocessing
    )  # no kernels without a real GPU: the CPU letterbox feeds infer()
    detector(np.zeros((48, 80, 3), np.uint8))
    assert state.stack == 0
    detector.close()
    _assert_released(state)


def _tiny_onnx(tmp_path: Path, make_yolo_onnx) -> Path:
    rng = np.random.default_rng(0)
    return make_yolo_onnx(
        tmp_path / "tiny.onnx",
        rng.random((30, 4), np.float32) * 64,
        rng.random((2, 30), np.float32),
        input_hw=(64, 64),
    )


def test_cached_engine_that_does_not_load_is_rebuilt_once(
    gpu, tmp_path: Path, make_yolo_onnx, caplog: pytest.LogCaptureFixture
) -> None:
    trt, state = gpu("10.3.0")
    onnx = _tiny_onnx(tmp_path, make_yolo_onnx)
    TensorRTBackend(onnx, precision="fp32").close()
    engine = tmp_path / "tiny.fp32.engine"
    # matches its sidecar (e.g. a TensorRT reinstall kept the version string) but won't load
    record = ec.read_sidecar(engine)
    engine.write_bytes(b"\x00not a plan this TensorRT can read")
    spec = ec.EngineSpec(**{f: record[f] for f in ec.SPEC_FIELDS})
    ec.write_sidecar(engine, spec, {"metadata": record["metadata"]})
    with caplog.at_level(logging.INFO):
        backend = TensorRTBackend(onnx, precision="fp32")
    assert len(trt.Builder.built) == 2
    assert "TensorRT engine cache: " + str(engine) + " does not load" in caplog.text
    assert "rebuilding it once" in caplog.text
    assert "failed to deserialize" in caplog.text  # the cache's reason for the rebuild
    assert backend.output_shape == (1, 6, 84)
    backend.close()
    _assert_released(state)


def test_rebuilt_engine_that_still_does_not_load_is_an_error(
    gpu, tmp_path: Path, make_yolo_onnx, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt, state = gpu("10.3.0")
    onnx = _tiny_onnx(tmp_path, make_yolo_onnx)
    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", lambda self, plan: None)
    with pytest.raises(ModelError, match="could not deserialize the engine"):
        TensorRTBackend(onnx, precision="fp32")
    assert len(trt.Builder.built) == 2  # built, then rebuilt once: no loop
    _assert_released(state)


def test_given_engine_that_does_not_load_is_not_replaced(gpu, tmp_path: Path) -> None:
    trt, state = gpu("10.3.0")
    path = _engine(tmp_path, "10.3.0", b"\x00corrupt plan")
    with pytest.raises(ModelError, match="model.engine: TensorRT 10.3.0 could not deserialize"):
        TensorRTBackend(path)
    assert path.read_bytes() == b"\x00corrupt plan" and trt.Builder.built == []
    _assert_released(state)
