"""The CUDA sources compile with nvcc for Jetson Orin (sm_87) and Hopper (sm_90), with no warnings.

nvcc compiles them at run time only when the shipped PTX does not load (test_ptx.py checks the
PTX; tools/make_ptx.py makes it with NVRTC). They run on the GPU machine (test_gpu_check.py); here
the compiler catches syntax and type errors without a GPU. Skips where nvcc is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from yolo_trt_ros.inference.tensorrt.gpu_preprocess import ENTRY_POINTS, KERNEL_SOURCE

_CUDA_NVCC = Path("/usr/local/cuda/bin/nvcc")
NVCC = shutil.which("nvcc") or (str(_CUDA_NVCC) if _CUDA_NVCC.exists() else None)


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_87", "sm_90"])
def test_kernels_compile(tmp_path: Path, arch: str) -> None:
    source = tmp_path / "kernels.cu"
    source.write_text(KERNEL_SOURCE)
    cubin = tmp_path / "kernels.cubin"
    proc = subprocess.run(
        [
            NVCC,
            f"-arch={arch}",
            "-O3",
            "-cubin",
            "-Werror",
            "all-warnings",
            "-o",
            str(cubin),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    symbols = cubin.read_bytes()  # an ELF file: the symbol names are in its string table
    for name in ENTRY_POINTS:
        assert b"\0" + name.encode() + b"\0" in symbols, (
            f'{name} missing from the cubin (extern "C" lost?)'
        )
