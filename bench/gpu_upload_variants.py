"""Ways to get a 640x480 bgr8 frame to the GPU path's letterbox kernel, measured side by side
(bench/gpu_results.md).

Each variant does the GPU work of TensorRTBackend.infer_image without the engine: the raw frame
into device memory (or read by the kernel from host memory), the letterbox kernel, the candidate
compaction kernels, one synchronize; wall-clock per frame, median and 90th percentile, on the same
frame every run ("hot") and on a frame rewritten (untimed) right before every run, as a newly
received message is ("fresh"). Each variant's engine input and candidates are checked equal to the
production path's.

  pageable     memcpy_htod_async straight from the frame's own memory; the driver stages it
  (production path)
  staged       np.copyto into one pinned buffer, then one async H2D
  chunked xN   the copy in N chunks, each chunk's H2D enqueued right after its copy, so the DMA of
  chunk i
               overlaps the copy of chunk i+1
  zero-copy    np.copyto into mapped pinned memory; the letterbox kernel reads it across PCIe (no
  H2D)
  registered   the frame's own pages locked for the call (cuMemHostRegister / cuMemHostUnregister
  through ctypes:
               pycuda 2026.1's register_host_memory fails under numpy 2), H2D straight from them
  2 threads    the copy into pinned memory split over two threads (numpy releases the GIL while
  copying)
Launch overhead: pycuda's ``_launch_kernel`` with arguments packed once (production) vs ctypes
``cuLaunchKernel``.

Usage: python bench/gpu_upload_variants.py [--frames DIR] [--iters N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import data_paths
from bench_gpu import Bench  # first: puts the repo on sys.path

PAGE = 4096
CU_MEMHOSTREGISTER_READ_ONLY = 0x08


class Variants:
    """Device buffers, kernels and host staging for one frame; ``full(upload)`` is one frame's GPU
    path."""

    def __init__(self, cuda: Any, stream: Any, frame: np.ndarray):
        from yolo_trt_ros.inference.tensorrt.gpu_preprocess import (
            CandidateReducer,
            GpuKernels,
            GpuLetterbox,
        )

        self.cuda, self.stream, self.frame = cuda, stream, frame
        self.current = frame
        self.nbytes = frame.nbytes
        self.kernels = GpuKernels()
        self.letterbox = GpuLetterbox(self.kernels, (640, 640), np.dtype(np.float32))
        self.reducer = CandidateReducer(self.kernels, 84, 8400, np.dtype(np.float32))
        self.d_raw = cuda.mem_alloc(self.nbytes)
        self.d_in = cuda.mem_alloc(3 * 640 * 640 * 4)
        self.d_out = cuda.mem_alloc(84 * 8400 * 4)
        self.pinned = cuda.pagelocked_empty(self.nbytes, np.uint8)
        self.mapped = cuda.pagelocked_empty(
            self.nbytes, np.uint8, mem_flags=cuda.host_alloc_flags.DEVICEMAP
        )
        self.mapped_device = int(self.mapped.base.get_device_pointer())
        self.libcuda = ctypes.CDLL("libcuda.so.1")
        self.libcuda.cuMemHostRegister_v2.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
        ]
        self.libcuda.cuMemHostUnregister.argtypes = [ctypes.c_void_p]
        self._jobs: queue.SimpleQueue[tuple[np.ndarray, np.ndarray] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._copy_worker, daemon=True)
        self._worker.start()

    def set_output(self, output: np.ndarray) -> None:
        self.cuda.memcpy_htod(self.d_out, output)

    def full(
        self, upload: Callable[[], int], after: Callable[[], None] | None = None
    ) -> Callable[[], np.ndarray]:
        """upload (returns the address the letterbox kernel reads) + letterbox + compaction +
        synchronize."""

        def run() -> np.ndarray:
            src = upload()
            self.letterbox(src, self.frame.shape[:2], "bgr8", int(self.d_in), self.stream)
            self.reducer.enqueue(int(self.d_out), 0.25, self.stream)
            self.stream.synchronize()
            if after is not None:
                after()
            return self.reducer.result()

        return run

    def pageable(self) -> int:
        self.cuda.memcpy_htod_async(self.d_raw, self.current, self.stream)
        return int(self.d_raw)

    def staged(self) -> int:
        np.copyto(self.pinned, self.current.reshape(-1))
        self.cuda.memcpy_htod_async(self.d_raw, self.pinned, self.stream)
        return int(self.d_raw)

    def chunked(self, parts: int) -> Callable[[], int]:
        step = -(-self.nbytes // parts // PAGE) * PAGE
        bounds = [(a, min(a + step, self.nbytes)) for a in range(0, self.nbytes, step)]
        base = int(self.d_raw)

        def upload() -> int:
            src = self.current.reshape(-1)
            for a, b in bounds:
                np.copyto(self.pinned[a:b], src[a:b])
                self.cuda.memcpy_htod_async(base + a, self.pinned[a:b], self.stream)
            return base

        return upload

    def zero_copy(self) -> int:
        np.copyto(self.mapped, self.current.reshape(-1))
        return self.mapped_device

    def registered(self) -> int:
        result = self.libcuda.cuMemHostRegister_v2(
            self.current.ctypes.data, self.nbytes, CU_MEMHOSTREGISTER_READ_ONLY
        )
        if result != 0:
            raise RuntimeError(f"cuMemHostRegister failed: CUresult {result}")
        self.cuda.memcpy_htod_async(self.d_raw, self.current, self.stream)
        return int(self.d_raw)

    def unregister(self) -> None:
        result = self.libcuda.cuMemHostUnregister(self.current.ctypes.data)
        if result != 0:
            raise RuntimeError(f"cuMemHostUnregister failed: CUresult {result}")

    def two_threads(self) -> int:
        half = -(-self.nbytes // 2 // PAGE) * PAGE
        src = self.current.reshape(-1)
        self._jobs.put((self.pinned[half:], src[half:]))
        np.copyto(self.pinned[:half], src[:half])
        self.cuda.memcpy_htod_async(self.d_raw, self.pinned[:half], self.stream)
        self._done.get()
        self.cuda.memcpy_htod_async(int(self.d_raw) + half, self.pinned[half:], self.stream)
        return int(self.d_raw)

    def _copy_worker(self) -> None:
        while (job := self._jobs.get()) is not None:
            np.copyto(*job)
            self._done.put(True)

    def poison(self) -> None:
        """Zero the raw frame buffer and fill the engine input with NaN, so a check cannot pass on
        stale data."""
        self.cuda.memset_d8(self.d_raw, 0, self.nbytes)
        self.cuda.memset_d32(self.d_in, 0x7FC00000, 3 * 640 * 640)

    def engine_input(self) -> np.ndarray:
        host = np.empty(3 * 640 * 640, np.float32)
        self.cuda.memcpy_dtoh(host, self.d_in)
        return host

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join()
        for allocation in (self.d_raw, self.d_in, self.d_out):
            allocation.free()
        for pinned in (self.pinned, self.mapped):
            pinned.base.free()
        self.reducer.close()
        self.kernels.close()


def launch_rows(bench: Bench, v: Variants) -> None:
    """Host time of one launch of the flag kernel: pycuda (arguments packed once) vs ctypes
    cuLaunchKernel."""
    from pycuda.compiler import compile as nvcc_compile

    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import KERNEL_SOURCE

    lib = v.libcuda
    lib.cuModuleLoadData.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
    lib.cuModuleGetFunction.argtypes = [
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p,
        ctypes.c_char_p,
    ]
    lib.cuModuleUnload.argtypes = [ctypes.c_void_p]
    lib.cuLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
    module, function = ctypes.c_void_p(), ctypes.c_void_p()
    cubin = nvcc_compile(KERNEL_SOURCE, no_extern_c=True, options=["-O3"])
    if lib.cuModuleLoadData(ctypes.byref(module), cubin) or lib.cuModuleGetFunction(
        ctypes.byref(function), module, b"flag_candidates_f32"
    ):
        raise RuntimeError("cannot load the kernels through the driver API")
    masks = ctypes.c_uint64(int(v.reducer._masks))
    values = [
        ctypes.c_uint64(int(v.d_out)),
        ctypes.c_int32(84),
        ctypes.c_int32(8400),
        ctypes.c_float(0.25),
        masks,
    ]
    params = (ctypes.c_void_p * len(values))(
        *[ctypes.cast(ctypes.pointer(x), ctypes.c_void_p) for x in values]
    )
    args = (
        function,
        (8400 + 31) // 32,
        1,
        1,
        32,
        8,
        1,
        0,
        ctypes.c_void_p(v.stream.handle),
        params,
        None,
    )
    flag = v.reducer._launches[0]
    bench.wall(
        "launch of one kernel: pycuda _launch_kernel, arguments packed once (production)",
        lambda: flag(v.stream),
    )
    v.stream.synchronize()
    bench.wall(
        "launch of one kernel: ctypes cuLaunchKernel, arguments prepared once",
        lambda: lib.cuLaunchKernel(*args),
    )
    v.stream.synchronize()
    lib.cuModuleUnload(module)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=data_paths.mot_sequence() / "img1")
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--markdown", type=Path, help="also write the result table here")
    args = parser.parse_args()

    import onnxruntime as ort
    import pycuda.driver as cuda

    from yolo_trt_ros.detection.letterbox import Letterbox

    cuda.init()
    device = cuda.Device(0)
    context = device.retain_primary_context()
    context.push()
    frame = cv2.imread(str(sorted(args.frames.glob("*.jpg"))[0]))
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    output = session.run(None, {"images": Letterbox((640, 640))(frame, "bgr8")[0]})[0]
    stream = cuda.Stream()
    bench = Bench(cuda, stream, args.iters, args.warmup)
    v = Variants(cuda, stream, frame)
    failures: list[str] = []
    try:
        v.set_output(output)
        reference = v.full(v.pageable)().copy()
        reference_input = v.engine_input()
        received = frame.copy()

        def fresh() -> None:
            np.copyto(received, frame)
            v.current = received

        def hot() -> None:
            v.current = frame

        variants: list[tuple[str, Callable[[], np.ndarray]]] = [
            ("pageable H2D from the frame (production)", v.full(v.pageable)),
            ("staged: copy to pinned + H2D", v.full(v.staged)),
            ("chunked x2: copy + H2D per chunk", v.full(v.chunked(2))),
            ("chunked x4: copy + H2D per chunk", v.full(v.chunked(4))),
            ("zero-copy: copy to mapped pinned, kernel reads host memory", v.full(v.zero_copy)),
            (
                "registered: frame page-locked for the call + H2D",
                v.full(v.registered, v.unregister),
            ),
            ("2 threads: copy to pinned split over 2 threads + H2D", v.full(v.two_threads)),
        ]
        bench.wall(
            "CPU copy of the frame into pinned memory (hot)",
            lambda: np.copyto(v.pinned, frame.reshape(-1)),
        )
        bench.wall(
            "CPU copy of the frame into pinned memory (fresh)",
            lambda: np.copyto(v.pinned, received.reshape(-1)),
            prep=fresh,
        )
        bench.wall(
            "page-lock + unlock the frame (cuMemHostRegister + cuMemHostUnregister)",
            lambda: (v.registered(), v.stream.synchronize(), v.unregister()),
            prep=hot,
        )
        for name, run in variants:
            bench.wall(f"{name} [hot]", run, prep=hot)
            bench.wall(f"{name} [fresh]", run, prep=fresh)
            v.poison()
            got = run()
            if not (
                np.array_equal(got, reference)
                and np.array_equal(v.engine_input(), reference_input)
            ):
                failures.append(name)
        launch_rows(bench, v)
    finally:
        v.close()
        cuda.Context.pop()
        context.detach()
    print(
        "results equal to the production path's:",
        "all" if not failures else f"NOT for {', '.join(failures)}",
    )
    if args.markdown:
        lines = ["| step (wall-clock) | median (us) | p90 (us) |", "|---|---:|---:|"]
        lines += [f"| {name} | {median:.1f} | {p90:.1f} |" for name, _, median, p90 in bench.rows]
        args.markdown.write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
