"""The committed kernels.ptx is what tools/make_ptx.py makes from today's kernels.cu, and what the
loader and a JetPack 6 driver need (no GPU, no compiler needed)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from yolo_trt_ros.inference.tensorrt.gpu_preprocess import ENTRY_POINTS, PTX_PATH

KERNELS = PTX_PATH.with_suffix(".cu")
REPO = Path(__file__).resolve().parents[3]


def _header(ptx: str) -> dict[str, str]:
    """The ``// key: value`` lines make_ptx.py writes above the compiler's output."""
    header = {}
    for line in ptx.splitlines()[:4]:
        key, _, value = line.removeprefix("// ").partition(": ")
        header[key] = value
    return header


def test_ptx_was_made_from_the_current_kernel_source() -> None:
    recorded = _header(PTX_PATH.read_text())["source"]
    current = f"kernels.cu sha256 {hashlib.sha256(KERNELS.read_bytes()).hexdigest()}"
    assert recorded == current, (
        "kernels.cu changed since kernels.ptx was made: run python3 tools/make_ptx.py"
    )


def test_ptx_exports_every_kernel_the_loader_looks_up() -> None:
    entries = re.findall(r"^\.visible \.entry (\w+)\(", PTX_PATH.read_text(), re.MULTILINE)
    assert sorted(entries) == sorted(ENTRY_POINTS)
    assert len(ENTRY_POINTS) == 6


def test_ptx_loads_on_a_cuda_12_2_driver_and_every_gpu_from_xavier_on() -> None:
    """PTX ISA <= 8.2 (JetPack 6.0's CUDA 12.2 driver; CUDA 13's nvcc writes 9.0) and target
    sm_72, as the header says."""
    ptx = PTX_PATH.read_text()
    version = re.search(r"^\.version (\d+)\.(\d+)$", ptx, re.MULTILINE)
    target = re.search(r"^\.target (sm_\d+)$", ptx, re.MULTILINE)
    assert version is not None and target is not None
    assert (int(version[1]), int(version[2])) <= (8, 2)
    assert target[1] == "sm_72"
    header = _header(ptx)
    assert header["target"] == "compute_72"
    assert header["compiler"].startswith("NVRTC 12.2 ")


def test_ptx_is_installed_with_the_package() -> None:
    setup = (REPO / "setup.py").read_text()
    assert '"inference/tensorrt/kernels.ptx"' in setup
