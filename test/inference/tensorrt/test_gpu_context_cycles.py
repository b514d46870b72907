"""CUDA context lifecycle on a real GPU: configure/cleanup cycles of CudaContext + GpuKernels (the
shipped PTX) + letterbox, compaction and upload buffers + pinned and device buffers, as the
TensorRT backend makes and frees them (no TensorRT here), half of them closed from a second thread.

After every cycle the device's free memory is back where it started (within 4 MiB), no context is
current on either thread, neither for pycuda nor for the CUDA driver (libcuda's
``cuCtxGetCurrent``), and the process's hold on the primary context was released. Free memory is
read in the test's own retained primary context, which keeps the context alive between cycles.

Needs an NVIDIA GPU with its driver and pycuda (skipped otherwise); no nvcc. Run on the GPU machine
(data from $YOLO_TRT_ROS_DATA: mot/MOT16-05/img1):
    python -m pytest test/inference/tensorrt/test_gpu_context_cycles.py -m gpu -rP
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from yolo_trt_ros.detection.letterbox import Letterbox
from yolo_trt_ros.inference.tensorrt import cuda_context
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext, release_primary_context


def _libcuda() -> Any:
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


LIBCUDA = _libcuda()


def _missing() -> str | None:
    """Why this machine cannot run this check, or None (imports no pycuda: CPU tests fake it)."""
    if LIBCUDA is None:
        return "no CUDA driver (libcuda.so.1)"
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda not installed (GPU machine: the wheels in shared/device, see its README)"
    return None


MISSING = _missing()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(MISSING is not None, reason=f"skipped: {MISSING}"),
]

CYCLES = 50
TOLERANCE_BYTES = 4 << 20
INPUT_HW = (640, 640)
ROWS, ANCHORS = 84, 8400


@pytest.fixture(scope="module", autouse=True)
def _isolated_modules() -> Iterator[None]:
    """Leave ``sys.modules`` as found: later CPU tests put fakes under these names."""

    def ours(name: str) -> bool:
        return name.split(".")[0] == "pycuda"

    before = {name: module for name, module in sys.modules.items() if ours(name)}
    yield
    for name in [name for name in sys.modules if ours(name) and name not in before]:
        del sys.modules[name]
    sys.modules.update(before)


def driver_current() -> int:
    """The calling thread's current context in the CUDA driver (0: none)."""
    handle = ctypes.c_void_p()
    assert LIBCUDA.cuCtxGetCurrent(ctypes.byref(handle)) == 0
    return int(handle.value or 0)


def primary_context_active() -> bool:
    """Whether anyone in the process retains device 0's primary context (libcuda)."""
    device, flags, active = ctypes.c_int(), ctypes.c_uint(), ctypes.c_int()
    assert LIBCUDA.cuDeviceGet(ctypes.byref(device), 0) == 0
    status = LIBCUDA.cuDevicePrimaryCtxGetState(device, ctypes.byref(flags), ctypes.byref(active))
    assert status == 0
    return bool(active.value)


def nothing_current(cuda: Any) -> bool:
    return cuda.Context.get_current() is None and driver_current() == 0


class Pipeline:
    """What a configured backend holds on the GPU, minus the engine: context, stream, kernels,
    letterbox, uploader, compaction, engine-sized input/output buffers and their pinned twins.
    ``run`` letterboxes one frame into the input buffer and compacts the output buffer."""

    def __init__(self, cuda: Any):
        from yolo_trt_ros.inference.tensorrt.gpu_preprocess import (
            CandidateReducer,
            FrameUploader,
            GpuKernels,
            GpuLetterbox,
        )

        self._cuda = cuda
        self.ctx = CudaContext(0)
        with self.ctx.active():
            self.stream = cuda.Stream()
            self.kernels = GpuKernels()
            self.origin = self.kernels.origin
            self.letterbox = GpuLetterbox(self.kernels, INPUT_HW, np.dtype(np.float32))
            self.uploader = FrameUploader()
            self.reducer = CandidateReducer(self.kernels, ROWS, ANCHORS, np.dtype(np.float32))
            self.input = cuda.mem_alloc(3 * INPUT_HW[0] * INPUT_HW[1] * 4)
            self.output = cuda.mem_alloc(ROWS * ANCHORS * 4)
            self.host_in = cuda.pagelocked_empty((1, 3, *INPUT_HW), np.float32)
            self.host_out = cuda.pagelocked_empty((1, ROWS, ANCHORS), np.float32)

    def run(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        """(letterboxed input as read back, candidate count of an all-zero output)."""
        cuda = self._cuda
        with self.ctx.active():
            self.host_out.fill(0)
            cuda.memcpy_htod_async(self.output, self.host_out, self.stream)
            src = self.uploader.upload(frame, self.stream)
            self.letterbox(src, frame.shape[:2], "bgr8", int(self.input), self.stream)
            cuda.memcpy_dtoh_async(self.host_in, self.input, self.stream)
            self.reducer.enqueue(int(self.output), 0.25, self.stream)
            self.stream.synchronize()
            return self.host_in.copy(), self.reducer.result().shape[2]

    def close(self) -> None:
        """As the backend's close: free everything with the context current, then release it."""
        from yolo_trt_ros.inference.tensorrt.gpu_preprocess import free_pinned

        with self.ctx.active():
            self.reducer.close()
            self.uploader.close()
            self.kernels.close()
            self.input.free()
            self.output.free()
            free_pinned(self.host_in)
            free_pinned(self.host_out)
            del self.letterbox, self.reducer, self.uploader, self.kernels, self.stream
            del self.input, self.output, self.host_in, self.host_out
        self.ctx.close()


@pytest.fixture(scope="module")
def frame(mot_dir: Path) -> np.ndarray:
    image = cv2.imread(str(sorted((mot_dir / "img1").glob("*.jpg"))[0]))
    assert image is not None
    return image


def test_configure_cleanup_cycles_release_memory_and_contexts(frame: np.ndarray) -> None:
    import pycuda.driver as cuda

    cuda.init()
    device = cuda.Device(0)
    assert nothing_current(cuda), "a context was current before the test"
    unheld_before = not primary_context_active()
    meter = device.retain_primary_context()  # keeps the primary context alive between cycles

    def free_memory() -> int:
        meter.push()
        try:
            return int(cuda.mem_get_info()[0])
        finally:
            cuda.Context.pop()

    def close_and_check(pipeline: Pipeline) -> bool:
        """Close on this (second) thread; True when nothing is left current here."""
        pipeline.close()
        return nothing_current(cuda)

    expected = Letterbox(INPUT_HW)(frame, "bgr8")[0]
    second = ThreadPoolExecutor(max_workers=1)  # one other thread, as a ROS executor's
    try:
        Pipeline(cuda).close()  # warm-up: driver JIT of the PTX, CUDA runtime state
        base = free_memory()
        drift: list[int] = []
        failures: list[str] = []
        held = 0
        for cycle in range(CYCLES):
            pipeline = Pipeline(cuda)
            letterboxed, candidates = pipeline.run(frame)
            if cycle == 0:
                held = base - free_memory()
            if pipeline.origin != "ptx":
                failures.append(f"cycle {cycle}: kernels from {pipeline.origin}, not the PTX")
            if float(np.abs(letterboxed - expected).max()) > 1 / 255 + 1e-6 or candidates != 0:
                failures.append(f"cycle {cycle}: wrong letterbox or compaction result")
            if cycle % 2:
                if not second.submit(close_and_check, pipeline).result(timeout=60):
                    failures.append(f"cycle {cycle}: a context is current on the closing thread")
            else:
                pipeline.close()
            if not nothing_current(cuda):
                failures.append(f"cycle {cycle}: a context is current on the main thread")
            if cuda_context._PRIMARIES:
                failures.append(f"cycle {cycle}: the primary context hold was not released")
            drift.append(base - free_memory())
        second_clean = second.submit(lambda: nothing_current(cuda)).result(timeout=60)
    finally:
        second.shutdown()
        release_primary_context(cuda, meter)
    # with no other holder in the process, every retain (the cycles' and the meter's) is released
    all_released = not primary_context_active() if unheld_before else None
    mib = 2**20
    print(
        f"{device.name()}: free {base / mib:.1f} MiB after warm-up; one open pipeline holds "
        f"{held / mib:.1f} MiB; drift after each of {CYCLES} cycles (bytes, half closed from a "
        f"second thread): {sorted(set(drift))}; primary context released at the end: "
        f"{all_released if unheld_before else 'not checked (held before the test)'}"
    )
    assert not failures, f"{len(failures)} failed: " + "; ".join(failures[:5])
    assert held > 0
    assert all(abs(d) <= TOLERANCE_BYTES for d in drift), f"free memory drifted: {drift}"
    assert second_clean and nothing_current(cuda)
    assert all_released is not False, "a retain of the primary context leaked"
