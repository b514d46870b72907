"""``backend: auto|tensorrt|onnxruntime``: which backend and the reason logged."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from yolo_trt_ros.inference import selection
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.selection import (
    GpuHost,
    choose_backend,
    device_tree_model,
    find_nvidia_gpu,
    select_backend,
    tensorrt_status,
)

ORIN_MODEL = b"NVIDIA Jetson AGX Orin Developer Kit\x00"
L4T_36 = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: x\n"


def host_tree(root: Path, files: dict[str, bytes]) -> Path:
    """A machine's file system under ``root``: ``files`` by path relative to /."""
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


ORIN = {"proc/device-tree/model": ORIN_MODEL, "etc/nv_tegra_release": L4T_36.encode()}
RTX = {"dev/nvidia0": b"", "dev/nvidiactl": b"", "proc/driver/nvidia/version": b"NVRM 550.54"}


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


def test_no_gpu_or_broken_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    driver = _gpu(monkeypatch, count=0)
    assert select_backend("auto", tmp_path) == (
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


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, None),
        ({"proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\x00"}, None),
        (
            {"proc/driver/nvidia/version": b"NVRM version: 550.54.15"},
            GpuHost(False, "NVIDIA driver (/proc/driver/nvidia/version)"),
        ),
        ({"dev/nvidiactl": b""}, GpuHost(False, "/dev/nvidiactl")),
        (RTX, GpuHost(False, "/dev/nvidia0")),
        (
            {"etc/nv_tegra_release": L4T_36.encode()},
            GpuHost(True, "Jetson (/etc/nv_tegra_release)"),
        ),
        (ORIN, GpuHost(True, "Jetson 'NVIDIA Jetson AGX Orin Developer Kit'")),
        (
            {"proc/device-tree/model": b"p3768-0000+p3767-0005 Orin\x00"},
            GpuHost(True, "Jetson 'p3768-0000+p3767-0005 Orin'"),
        ),
        (
            {"proc/device-tree/model": b"NVIDIA Jetson Xavier NX Developer Kit\x00"},
            GpuHost(True, "Jetson 'NVIDIA Jetson Xavier NX Developer Kit'"),
        ),
    ],
)
def test_find_nvidia_gpu(
    tmp_path: Path, files: dict[str, bytes], expected: GpuHost | None
) -> None:
    assert find_nvidia_gpu(host_tree(tmp_path, files)) == expected


def test_fallback_on_a_jetson_without_pycuda_is_degraded_and_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake.make_fake_tensorrt("10.3.0"))
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    chosen = choose_backend("auto", host_tree(tmp_path, ORIN))
    assert (chosen.backend, chosen.missing, chosen.degraded) == ("onnxruntime", "pycuda", True)
    assert chosen.reason.startswith("backend auto -> onnxruntime: pycuda is not importable (")
    assert "pip install --no-build-isolation pycuda" in chosen.fix
    assert chosen.reason.endswith(
        "the NVIDIA GPU (Jetson 'NVIDIA Jetson AGX Orin Developer Kit') stays unused; "
        f"fix: {chosen.fix} (see docs/tensorrt.md)"
    )
    assert chosen.warning.startswith(
        "NVIDIA GPU unused (Jetson 'NVIDIA Jetson AGX Orin Developer Kit'), running on the CPU "
        "with ONNX Runtime: pycuda is not importable ("
    )
    assert chosen.degraded


@pytest.mark.parametrize(
    ("files", "fix"),
    [
        (RTX, 'pip install "tensorrt-cu12<11"'),
        (
            ORIN,
            "sudo apt install python3-libnvinfer (JetPack's TensorRT), and run with the system "
            "Python or a venv created with --system-site-packages",
        ),
    ],
)
def test_fallback_without_tensorrt_on_a_gpu_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, bytes], fix: str
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    chosen = choose_backend("auto", host_tree(tmp_path, files))
    assert (chosen.missing, chosen.fix, chosen.degraded) == ("tensorrt", fix, True)
    assert f"stays unused; fix: {fix} (see docs/tensorrt.md)" in chosen.reason


def test_fallback_when_cuda_fails_on_a_gpu_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    driver = _gpu(monkeypatch)

    def broken() -> None:
        raise driver.Error("cuInit failed: no CUDA-capable device is detected")

    driver.init = broken
    chosen = choose_backend("auto", host_tree(tmp_path, RTX))
    assert (chosen.backend, chosen.missing, chosen.degraded) == ("onnxruntime", "cuda", True)
    assert chosen.cause == "CUDA is not usable (cuInit failed: no CUDA-capable device is detected)"
    assert "--gpus all" in chosen.fix


def test_without_a_gpu_the_fallback_is_normal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    chosen = choose_backend("auto", tmp_path)
    assert (chosen.backend, chosen.missing, chosen.degraded, chosen.fix, chosen.warning) == (
        "onnxruntime",
        "tensorrt",
        False,
        "",
        "",
    )
    assert chosen.reason == f"backend auto -> onnxruntime: {chosen.cause}"
    assert not choose_backend("onnxruntime", host_tree(tmp_path, ORIN)).degraded


def test_tensorrt_on_a_gpu_machine_is_not_degraded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _gpu(monkeypatch)
    chosen = choose_backend("auto", host_tree(tmp_path, ORIN))
    assert (chosen.backend, chosen.degraded, chosen.warning) == ("tensorrt", False, "")


def test_the_cli_prints_a_degraded_fallback_as_a_warning(
    monkeypatch: pytest.MonkeyPatch, model_path: Path
) -> None:
    from yolo_trt_ros.cli.options import load_pipeline

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(selection, "find_nvidia_gpu", lambda root: GpuHost(False, "/dev/nvidia0"))
    args = argparse.Namespace(
        model=model_path, backend="auto", names_file=None, conf=0.25, iou=0.7, classes=""
    )
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        load_pipeline(args).close()
    first = stderr.getvalue().splitlines()[0]
    assert first.startswith("yolo-trt-ros: warning: backend auto -> onnxruntime: TensorRT is not")
    assert first.endswith('fix: pip install "tensorrt-cu12<11" (see docs/tensorrt.md)')


def test_device_tree_model_strips_nul(tmp_path: Path) -> None:
    model = tmp_path / "proc" / "device-tree" / "model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    assert device_tree_model(tmp_path) == "NVIDIA Jetson AGX Orin Developer Kit"
    assert device_tree_model(tmp_path / "x86") == ""
