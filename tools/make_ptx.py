#!/usr/bin/env python3
"""Compile yolo_trt_ros/inference/tensorrt/kernels.cu to the committed kernels.ptx.

The PTX is loaded at run time by the CUDA driver's JIT (``module_from_buffer``), so no nvcc is
needed on the robot. A driver loads PTX only up to the PTX ISA of its own CUDA version, so the
compiler must be old: NVRTC 12.2 writes PTX ISA 8.2, which JetPack 6.0 (CUDA 12.2) and every newer
driver load; CUDA 13's nvcc writes ISA 9.0, which the JetPack 6 drivers (CUDA 12.2-12.6) refuse.
PyPI's nvidia-cuda-nvcc-cu12 12.2/12.4 wheels hold ptxas and libnvvm but no nvcc, so this uses
NVRTC (the same front end and NVVM as nvcc 12.2) from the nvidia-cuda-nvrtc-cu12 wheel, with
cuda_fp16.h from nvidia-cuda-runtime-cu12. Both are installed into a scratch directory (not the
project's environment); no GPU is needed.

Target compute_72 (Jetson Xavier, sm_72: the oldest Jetson JetPack 5 supports): the kernels use
nothing newer than sm_70 (warp-synchronous intrinsics, half conversions), and the driver JIT
compiles the PTX for the GPU it runs on (Turing sm_75, Ampere, Orin sm_87, Ada, Hopper, ...), so a
low target costs no speed; CUDA 13's ptxas still assembles it. Xavier's JetPack 5 driver (CUDA
11.4, PTX ISA <= 7.4) refuses this PTX all the same, and nvcc (which JetPack installs) compiles
kernels.cu there instead.

The header records the sha256 of kernels.cu, the compiler and the target;
test/inference/tensorrt/test_ptx.py fails when kernels.cu changes without rerunning this:
    python3 tools/make_ptx.py
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import subprocess
import sys
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[1] / "yolo_trt_ros/inference/tensorrt/kernels.cu"
PTX = KERNELS.with_suffix(".ptx")
TARGET = "compute_72"
NVRTC_VERSION = "12.2.140"
WHEELS = [f"nvidia-cuda-nvrtc-cu12=={NVRTC_VERSION}", f"nvidia-cuda-runtime-cu12=={NVRTC_VERSION}"]
DEFAULT_TOOLCHAIN = Path("/tmp/yolo-trt-ros-nvrtc-" + NVRTC_VERSION)


def install_toolchain(root: Path) -> None:
    """The NVRTC and CUDA runtime header wheels, unpacked under ``root`` (once)."""
    if (root / "nvidia/cuda_nvrtc/lib/libnvrtc.so.12").is_file():
        return
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(root)]
    subprocess.run([*cmd, *WHEELS], check=True)


class Nvrtc:
    def __init__(self, root: Path):
        lib = root / "nvidia/cuda_nvrtc/lib"
        for builtins in lib.glob("libnvrtc-builtins.so.*"):  # found by soname when NVRTC loads it
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
        self._lib = ctypes.CDLL(str(lib / "libnvrtc.so.12"))
        self._lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise RuntimeError(f"{call}: {self._lib.nvrtcGetErrorString(status).decode()}")

    def version(self) -> str:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self._lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "version")
        return f"{major.value}.{minor.value}"

    def compile(self, source: str, name: str, options: list[str]) -> str:
        """PTX of ``source``; RuntimeError with NVRTC's log on an error or any warning."""
        program = ctypes.c_void_p()
        self._check(
            self._lib.nvrtcCreateProgram(
                ctypes.byref(program), source.encode(), name.encode(), 0, None, None
            ),
            "nvrtcCreateProgram",
        )
        try:
            args = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            status = self._lib.nvrtcCompileProgram(program, len(options), args)
            log = self._read(program, "ProgramLog").strip()
            if status != 0 or log:
                raise RuntimeError(f"NVRTC failed to compile {name} cleanly:\n{log}")
            return self._read(program, "PTX")
        finally:
            self._lib.nvrtcDestroyProgram(ctypes.byref(program))

    def _read(self, program: ctypes.c_void_p, what: str) -> str:
        size = ctypes.c_size_t()
        get_size = getattr(self._lib, f"nvrtcGet{what}Size")
        self._check(get_size(program, ctypes.byref(size)), f"nvrtcGet{what}Size")
        buffer = ctypes.create_string_buffer(size.value)
        self._check(getattr(self._lib, f"nvrtcGet{what}")(program, buffer), f"nvrtcGet{what}")
        return buffer.value.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--toolchain",
        type=Path,
        default=DEFAULT_TOOLCHAIN,
        help=f"scratch directory for the NVRTC wheels (default {DEFAULT_TOOLCHAIN})",
    )
    args = parser.parse_args()
    install_toolchain(args.toolchain)
    nvrtc = Nvrtc(args.toolchain)
    source = KERNELS.read_bytes()
    include = args.toolchain / "nvidia/cuda_runtime/include"
    ptx = nvrtc.compile(
        source.decode(),
        KERNELS.name,
        [f"--gpu-architecture={TARGET}", f"--include-path={include}"],
    )
    header = (
        f"// Made by tools/make_ptx.py from {KERNELS.name}; do not edit: rerun the script.\n"
        f"// source: {KERNELS.name} sha256 {hashlib.sha256(source).hexdigest()}\n"
        f"// compiler: NVRTC {nvrtc.version()} (nvidia-cuda-nvrtc-cu12=={NVRTC_VERSION})\n"
        f"// target: {TARGET}\n"
    )
    PTX.write_text(header + ptx)
    print(f"wrote {PTX} ({PTX.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
