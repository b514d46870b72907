"""How GpuKernels gets its kernels, and the doctor's check_kernels, on the fake pycuda: the shipped
PTX through the driver's JIT (no nvcc), nvcc only when the driver refuses the PTX, and a reason
with its fix when neither works."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fake_pycuda import FakeCudaState, make_fake_pycuda
from yolo_trt_ros.inference.tensorrt import cuda_context, gpu_preprocess
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext
from yolo_trt_ros.inference.tensorrt.gpu_preprocess import (
    ENTRY_POINTS,
    GpuKernels,
    check_kernels,
)

JETPACK_5 = 11040
"""CUDA 11.4 driver: PTX ISA 7.4, older than the shipped PTX's 8.2."""

Install = Callable[..., FakeCudaState]


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Install:
    """install(**make_fake_pycuda kwargs) -> state; pycuda, pycuda.driver and pycuda.compiler in
    ``sys.modules``, the fake's libcuda behind the driver-stack calls."""

    def run(**kwargs: Any) -> FakeCudaState:
        package, driver, state = make_fake_pycuda(**kwargs)
        for name, module in (
            ("pycuda", package),
            ("pycuda.driver", driver),
            ("pycuda.compiler", package.compiler),
        ):
            monkeypatch.setitem(sys.modules, name, module)
        stack = cuda_context._DriverStack(state.libcuda)
        monkeypatch.setattr(cuda_context, "_driver_stack", lambda: stack)
        return state

    return run


@pytest.fixture
def no_nvcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def nvcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An ``nvcc`` executable first on PATH (the fake SourceModule only needs to find it)."""
    bin_dir = tmp_path / "cuda-bin"
    bin_dir.mkdir()
    path = bin_dir / "nvcc"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return str(path)


def _load(caplog: pytest.LogCaptureFixture) -> GpuKernels:
    ctx = CudaContext()
    try:
        with caplog.at_level(logging.WARNING), ctx.active():
            kernels = GpuKernels()
            for name in ENTRY_POINTS:
                assert kernels.get(name).arg_format
            kernels.close()
        return kernels
    finally:
        ctx.close()


def _released(state: FakeCudaState) -> bool:
    return state.retained == 0 and state.stack == 0 and state.driver_stack == 0


def test_ptx_loads_without_nvcc(
    install: Install, no_nvcc: None, caplog: pytest.LogCaptureFixture
) -> None:
    state = install(driver_version=12060, loads_kernels=True)  # JetPack 6.1/6.2
    kernels = _load(caplog)
    assert kernels.origin == "ptx" and kernels.ptx_problem is None
    assert caplog.records == []
    assert len(state.modules) == 0, "module not released by close()"
    assert _released(state)


def test_ptx_loads_on_the_oldest_jetpack_6_driver(install: Install, no_nvcc: None) -> None:
    install(driver_version=12020, compute_capability=(7, 2), loads_kernels=True)
    assert check_kernels() == (True, "PTX kernels loaded (sm_72, no nvcc needed)")


def test_ptx_refused_by_an_old_driver_compiles_with_nvcc(
    install: Install, nvcc: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = install(driver_version=JETPACK_5, loads_kernels=True)
    kernels = _load(caplog)
    assert kernels.origin == "nvcc"
    assert kernels.ptx_problem is not None and "unsupported toolchain" in kernels.ptx_problem
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "kernels.ptx did not load" in record.getMessage()
    assert "compiling kernels.cu with nvcc" in record.getMessage()
    assert _released(state)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\xff", b"not ptx at all\n", None])
def test_garbage_or_missing_ptx_compiles_with_nvcc(
    install: Install,
    nvcc: str,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
) -> None:
    install(loads_kernels=True)
    ptx = tmp_path / "kernels.ptx"
    if content is not None:
        ptx.write_bytes(content)
    monkeypatch.setattr(gpu_preprocess, "PTX_PATH", ptx)
    kernels = _load(caplog)
    assert kernels.origin == "nvcc" and kernels.ptx_problem
    assert "did not load" in caplog.text


def test_neither_ptx_nor_nvcc_names_what_is_missing(
    install: Install, no_nvcc: None, caplog: pytest.LogCaptureFixture
) -> None:
    state = install(driver_version=JETPACK_5, loads_kernels=True)
    with pytest.raises(RuntimeError) as info:
        _load(caplog)
    message = str(info.value)
    assert "\n" not in message
    assert "kernels.ptx did not load" in message and "unsupported toolchain" in message
    assert "nvcc is not on PATH" in message
    assert "fix:" in message and "CUDA >= 12.2" in message
    assert _released(state)


def test_nvcc_that_cannot_compile_names_it(
    install: Install, nvcc: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install(driver_version=JETPACK_5, loads_kernels=True)
    monkeypatch.delitem(sys.modules, "pycuda.compiler")  # as in a pycuda without its compiler
    with pytest.raises(RuntimeError, match=f"and {nvcc} could not compile kernels.cu"):
        _load(caplog)


def test_check_kernels_ok(install: Install, no_nvcc: None) -> None:
    state = install(compute_capability=(8, 7), loads_kernels=True)
    assert check_kernels() == (True, "PTX kernels loaded (sm_87, no nvcc needed)")
    assert _released(state)


def test_check_kernels_flags_a_dependence_on_nvcc(install: Install, nvcc: str) -> None:
    state = install(driver_version=JETPACK_5, loads_kernels=True)
    ok, message = check_kernels()
    assert not ok
    assert "nvcc compiled kernels.cu instead" in message and "fix:" in message
    assert _released(state)


def test_check_kernels_without_ptx_or_nvcc(install: Install, no_nvcc: None) -> None:
    state = install(driver_version=JETPACK_5, loads_kernels=True)
    ok, message = check_kernels()
    assert not ok and "nvcc is not on PATH" in message and "fix:" in message
    assert _released(state)


def test_check_kernels_without_pycuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    ok, message = check_kernels()
    assert not ok and message.startswith("pycuda does not import") and "fix:" in message


def test_check_kernels_without_the_device(install: Install) -> None:
    state = install(loads_kernels=True)
    ok, message = check_kernels(device=1)
    assert not ok and "CUDA device 1 not found" in message and "fix:" in message
    assert _released(state)
