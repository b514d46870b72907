"""GPU pre- and post-processing kernels (pycuda): letterbox straight into the engine input,
candidate compaction.

``GpuLetterbox``: one kernel reads the raw uint8 HWC frame (bgr8, rgb8, bgra8, rgba8, mono8; any
size and row step) already on the device and writes the letterboxed, RGB, 0..1, CHW float32/float16
tensor into the engine's input buffer, sampling exactly like cv2.resize INTER_LINEAR with
Ultralytics' letterbox geometry (``detection.letterbox.letterbox_geometry``); only the raw frame
crosses PCIe (``FrameUploader``).

``CandidateReducer``: two kernels keep the output columns (anchors) whose best class score is above
the confidence threshold, in anchor order, as a compact (K, 4+nc) float32 array written straight
into mapped (zero-copy) pinned host memory, so only K columns cross PCIe instead of (4+nc) x N and
no copy call is needed. Decoding the compact output gives exactly the detections of decoding the
full output (same anchors, same order, same values).

The kernels ship precompiled as PTX (``kernels.ptx``, made from ``kernels.cu`` by
tools/make_ptx.py) that the CUDA driver JIT-compiles for the GPU at hand, so no nvcc is needed at
run time; nvcc compiles ``kernels.cu`` only when the driver refuses the PTX.

Kernel arguments are packed once per layout (``_Launch``), so a frame costs one driver call per
kernel. All methods must run with the owning CUDA context current; every launch and copy goes on
the given stream.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from yolo_trt_ros.detection.encodings import ENCODINGS
from yolo_trt_ros.detection.letterbox import (
    LetterboxTransform,
    letterbox_geometry,
    rect_input_hw,
)
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext

PAD_VALUE = 114
_BLOCK_2D = (32, 8, 1)
_BLOCK_1D = 256

KERNEL_SOURCE = (Path(__file__).parent / "kernels.cu").read_text()
"""The CUDA source of the letterbox and candidate-compaction kernels (``kernels.cu``)."""

PTX_PATH = Path(__file__).with_name("kernels.ptx")
"""``kernels.cu`` compiled to PTX by tools/make_ptx.py (PTX ISA 8.2: CUDA 12.2+ drivers)."""

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}
_SIGNATURES = {
    "letterbox": "PiiiiiiiPiiiiiifff",
    "flag_candidates": "PiifP",
    "gather_candidates": "PiiPP",
}
ENTRY_POINTS = tuple(f"{base}_{suffix}" for base in _SIGNATURES for suffix in _SUFFIX.values())
"""The kernels' names, as ``kernels.cu`` declares them (extern "C") and the PTX exports them."""

_PTX_FIX = (
    "an NVIDIA driver for CUDA >= 12.2 (JetPack >= 6.0) loads the shipped PTX; otherwise put "
    "nvcc on PATH, e.g. export PATH=/usr/local/cuda/bin:$PATH in the launch environment"
)
_LOG = logging.getLogger("yolo_trt_ros.tensorrt")


def _suffix(dtype: np.dtype) -> str:
    suffix = _SUFFIX.get(np.dtype(dtype))
    if suffix is None:
        raise ValueError(f"GPU kernels handle float32 and float16 tensors, not {dtype}")
    return suffix


class _Launch:
    """One kernel launch with its arguments packed once. ``prepared_async_call`` packs the
    arguments and sets the block shape on every call (about 9 us of Python per launch on an H100
    host); this calls pycuda's underlying ``_launch_kernel`` (cuLaunchKernel) with the packed
    buffer (about 5 us)."""

    def __init__(
        self,
        function: Any,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        args: tuple[Any, ...],
    ):
        from pycuda._pvt_struct import pack

        self._function, self._grid, self._block = function, grid, block
        self._params = pack(function.arg_format, *args)

    def __call__(self, stream: Any) -> None:
        self._function._launch_kernel(self._grid, self._block, self._params, 0, stream)


def free_pinned(array: np.ndarray) -> None:
    """Free the page-locked memory behind an array from ``pycuda.driver.pagelocked_empty``."""
    allocation: Any = array.base
    allocation.free()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class GpuKernels:
    """The kernels above, loaded once in the current CUDA context.

    From the shipped PTX (driver JIT, no nvcc; ``origin`` "ptx"), else compiled from
    ``kernels.cu`` by pycuda with nvcc (``origin`` "nvcc", logged at WARN with the reason in
    ``ptx_problem``). RuntimeError naming what is missing, and the fix, when neither works.
    """

    def __init__(self, log: logging.Logger | None = None) -> None:
        import pycuda.driver as cuda

        self.ptx_problem: str | None = None
        try:
            # cuModuleLoadDataEx reads PTX as a NUL-terminated string
            self._module: Any = cuda.module_from_buffer(PTX_PATH.read_bytes() + b"\0")
            self.origin = "ptx"
        except (OSError, cuda.Error) as exc:
            self.ptx_problem = _first_line(exc)
            (log or _LOG).warning(
                "GPU kernels: %s did not load (%s); compiling kernels.cu with nvcc instead",
                PTX_PATH.name,
                self.ptx_problem,
            )
            self._module = self._compile(self.ptx_problem)
            self.origin = "nvcc"
        self._functions: dict[str, Any] = {}
        for name in ENTRY_POINTS:
            function = self._module.get_function(name)
            function.prepare(_SIGNATURES[name.rsplit("_", 1)[0]])
            self._functions[name] = function

    @staticmethod
    def _compile(ptx_problem: str) -> Any:
        unavailable = f"GPU kernels unavailable: {PTX_PATH.name} did not load ({ptx_problem})"
        nvcc = shutil.which("nvcc")
        if nvcc is None:
            raise RuntimeError(
                f"{unavailable} and nvcc is not on PATH to compile kernels.cu; fix: {_PTX_FIX}"
            )
        try:
            from pycuda.compiler import SourceModule

            return SourceModule(KERNEL_SOURCE, nvcc=nvcc, no_extern_c=True, options=["-O3"])
        except Exception as exc:  # pycuda.driver.CompileError, nvcc or module load failures
            raise RuntimeError(
                f"{unavailable} and {nvcc} could not compile kernels.cu ({_first_line(exc)}); "
                f"fix: {_PTX_FIX}"
            ) from exc

    def get(self, name: str) -> Any:
        if self._module is None:
            raise RuntimeError("GPU kernels were released")
        return self._functions[name]

    def close(self) -> None:
        """Drop the functions and the module (pycuda unloads it from the device)."""
        self._functions.clear()
        self._module = None


def check_kernels(device: int = 0) -> tuple[bool, str]:
    """Doctor check: load the GPU kernels on ``device`` as preprocessing does. (True, what
    loaded) when the shipped PTX loads (no nvcc needed), else (False, the problem and its fix).
    Never raises."""
    try:
        import pycuda.driver  # noqa: F401
    except Exception as exc:  # ImportError, or OSError when libcuda is missing
        return False, f"pycuda does not import ({_first_line(exc)}); fix: install pycuda"
    try:
        ctx = CudaContext(device)
    except Exception as exc:
        return False, (
            f"no CUDA context on device {device} ({_first_line(exc)}); fix: check the NVIDIA "
            "driver (nvidia-smi, or JetPack on a Jetson)"
        )
    try:
        return _check_kernels(ctx)
    except Exception as exc:  # GpuKernels' reason and fix, or a CUDA error
        return False, _first_line(exc)


def _check_kernels(ctx: CudaContext) -> tuple[bool, str]:
    """check_kernels' result once ``ctx`` exists; closes it."""
    try:
        with ctx.active():
            kernels = GpuKernels()
            kernels.close()
    finally:
        ctx.close()
    if kernels.origin == "ptx":
        sm = "sm_" + ctx.compute_capability.replace(".", "")
        return True, f"PTX kernels loaded ({sm}, no nvcc needed)"
    return False, (
        f"{PTX_PATH.name} did not load ({kernels.ptx_problem}); nvcc compiled kernels.cu "
        f"instead, which a launch file or service without nvcc on PATH cannot; fix: {_PTX_FIX}"
    )


class FrameUploader:
    """Copies raw frames into one device buffer (grown to the largest frame).

    A C-contiguous frame is copied straight from its own (pageable) memory: the driver stages and
    pipelines it. On an H100 host that was as fast as or faster than every alternative measured
    (bench/gpu_upload_variants.py): staging into pinned memory whole or in chunks overlapping their
    DMA, the letterbox kernel reading mapped memory (zero-copy), a two-thread copy, and
    page-locking the frame itself per call (about 0.3 ms). Other views (row padding, crops) are
    first packed into one pinned buffer.
    """

    def __init__(self) -> None:
        import pycuda.driver as cuda

        self._cuda: Any = cuda
        self._host: np.ndarray | None = None
        self._device: Any = None
        self.capacity = 0

    def upload(self, image: np.ndarray, stream: Any) -> int:
        """Enqueue the host-to-device copy of ``image`` as packed HWC rows; returns the device
        pointer. The frame may be reused once this returns."""
        nbytes = image.size
        if nbytes > self.capacity:
            self._release()
            self._device = self._cuda.mem_alloc(nbytes)
            self.capacity = nbytes
        if image.flags.c_contiguous:
            self._cuda.memcpy_htod_async(self._device, image, stream)
        else:
            if self._host is None or self._host.size < nbytes:
                if self._host is not None:
                    free_pinned(self._host)
                self._host = self._cuda.pagelocked_empty(self.capacity, np.uint8)
            staged = self._host[:nbytes].reshape(image.shape)
            np.copyto(staged, image)
            self._cuda.memcpy_htod_async(self._device, staged, stream)
        return int(self._device)

    def _release(self) -> None:
        if self._device is not None:
            self._device.free()
        self._device, self.capacity = None, 0

    def close(self) -> None:
        self._release()
        if self._host is not None:
            free_pinned(self._host)
            self._host = None


class GpuLetterbox:
    """Letterbox device frames into a (1, 3, H, W) RGB 0..1 tensor of ``dtype`` at a device
    address: H, W is ``input_hw``, or with a ``stride`` the smallest padded rectangle
    (``rect_input_hw``), as the CPU ``Letterbox``."""

    def __init__(
        self,
        kernels: GpuKernels,
        input_hw: tuple[int, int],
        dtype: np.dtype,
        pad_value: int = PAD_VALUE,
    ):
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self._function = kernels.get(f"letterbox_{_suffix(dtype)}")
        self._pad = np.float32(pad_value / 255)
        self._key: tuple[Any, ...] = ()
        self._launch: tuple[_Launch, LetterboxTransform] | None = None

    def __call__(
        self,
        src: int,
        src_hw: tuple[int, int],
        encoding: str,
        dst: int,
        stream: Any,
        src_step: int | None = None,
        stride: int | None = None,
    ) -> LetterboxTransform:
        """Enqueue the kernel for a packed (or ``src_step``-strided) HWC frame of ``src_hw`` at
        ``src``."""
        key = (src, tuple(src_hw), encoding, dst, src_step, stride)
        if (
            key != self._key or self._launch is None
        ):  # geometry and kernel arguments, computed once per layout
            self._launch = self._prepare(
                src, (int(src_hw[0]), int(src_hw[1])), encoding, dst, src_step, stride
            )
            self._key = key
        launch, transform = self._launch
        launch(stream)
        return transform

    def _prepare(
        self,
        src: int,
        src_hw: tuple[int, int],
        encoding: str,
        dst: int,
        src_step: int | None,
        stride: int | None,
    ) -> tuple[_Launch, LetterboxTransform]:
        channels = ENCODINGS[encoding].channels
        t = letterbox_geometry(src_hw, self.input_hw, stride)
        h, w = rect_input_hw(src_hw, self.input_hw, stride) if stride else self.input_hw
        res_h, res_w = t.resized_hw
        r_c, g_c, b_c = ENCODINGS[encoding].rgb
        grid = ((w + _BLOCK_2D[0] - 1) // _BLOCK_2D[0], (h + _BLOCK_2D[1] - 1) // _BLOCK_2D[1], 1)
        step = src_step if src_step is not None else src_hw[1] * channels
        i32 = np.int32
        args = (
            np.uintp(src),
            i32(src_hw[1]),
            i32(src_hw[0]),
            i32(step),
            i32(channels),
            i32(r_c),
            i32(g_c),
            i32(b_c),
            np.uintp(dst),
            i32(w),
            i32(h),
            i32(res_w),
            i32(res_h),
            i32(t.pad_x),
            i32(t.pad_y),
            np.float32(src_hw[1] / res_w),
            np.float32(src_hw[0] / res_h),
            self._pad,
        )
        return _Launch(self._function, grid, _BLOCK_2D, args), t


class CandidateReducer:
    """Compacts a (1, rows, n) YOLOv8 output on the device to the columns whose best score exceeds
    a threshold; a smaller input size's output (fewer columns) is passed with its ``n``.

    ``enqueue`` launches the two kernels; the second writes the count (an int32 in a header slot)
    and the candidates straight into mapped pinned host memory, so nothing else is queued. After
    the stream synchronizes, ``result`` returns the (1, rows, K) float32 view (valid until the next
    ``enqueue``).
    """

    def __init__(self, kernels: GpuKernels, rows: int, n: int, dtype: np.dtype):
        import pycuda.driver as cuda

        suffix = _suffix(dtype)
        self._flag = kernels.get(f"flag_candidates_{suffix}")
        self._gather = kernels.get(f"gather_candidates_{suffix}")
        self.rows, self.n = rows, n
        self._words = (n + 31) // 32  # one 32-bit candidate mask per 32 anchors
        self._masks = cuda.mem_alloc(4 * self._words)
        self._compact: np.ndarray = cuda.pagelocked_empty(
            (n + 1, rows), np.float32, mem_flags=cuda.host_alloc_flags.DEVICEMAP
        )
        self._compact_device = int(self._compact.base.get_device_pointer())
        self._key: tuple[int, float, int] | None = None
        self._launches: tuple[_Launch, ...] = ()

    def enqueue(
        self, output: int, conf_threshold: float, stream: Any, n: int | None = None
    ) -> None:
        """Launch the compaction of the (1, rows, ``n``) output at ``output`` (``n``: the
        constructor's by default, at most that)."""
        n = self.n if n is None else n
        if not 0 < n <= self.n:
            raise ValueError(f"output of {n} columns; this reducer holds at most {self.n}")
        if self._key != (output, conf_threshold, n):
            i32, ptr = np.int32, np.uintp
            words = (n + 31) // 32
            masks = ptr(int(self._masks))
            warps = _BLOCK_1D // 32
            self._launches = (
                _Launch(
                    self._flag,
                    (words, 1, 1),
                    (32, 8, 1),
                    (ptr(output), i32(self.rows), i32(n), np.float32(conf_threshold), masks),
                ),
                _Launch(
                    self._gather,
                    ((words + warps - 1) // warps, 1, 1),
                    (_BLOCK_1D, 1, 1),
                    (ptr(output), i32(self.rows), i32(n), masks, ptr(self._compact_device)),
                ),
            )
            self._key = (output, conf_threshold, n)
        for launch in self._launches:
            launch(stream)

    def result(self) -> np.ndarray:
        """(1, rows, K) float32 view of the candidates; call after the stream synchronized."""
        k = int(self._compact[0].view(np.int32)[0])
        return self._compact[1 : 1 + k].T[None]

    def close(self) -> None:
        self._masks.free()
        free_pinned(self._compact)
