"""GPU path timings for one 640x480 frame (MOT16-05), model input 640x640, YOLOv8n output [1, 84,
8400].

Compares, per frame and excluding the engine itself:
  preprocessing: CPU letterbox + upload of the float tensor   vs   raw uint8 upload + GPU letterbox
  kernel
  output copy:   device-to-host of the full output           vs   GPU candidate compaction into
  mapped host memory
  end to end:    TensorRTBackend.infer (CPU letterbox) + decode of the full output
                 vs   TensorRTBackend.infer_image (GPU path) + decode of the candidates
The engine is a fake TensorRT (test/fake_tensorrt.py) whose execution enqueues nothing, so the
output buffer keeps a real YOLOv8n output (ONNX Runtime on the same frame) placed there once.
"wall" times are host perf_counter around the call including the stream synchronize (what a node
thread waits, Python included); "GPU" times are CUDA events around work that was queued behind a
spinning kernel, so they measure the device alone, not how fast Python submits. Median and 90th
percentile over --iters runs after --warmup runs. Rows marked "at 30 Hz" call once every 33 ms, as
a camera delivers frames, with the frame rewritten (untimed) before each call, as a newly received
message is; all other rows run back to back on the same frame.

Usage: python bench/bench_gpu.py [--frames DIR] [--model ONNX] [--iters N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import data_paths
from gpu_engine_stub import (  # first: repo + test/ on sys.path
    NoOpEngine,
    install_fake_tensorrt,
    write_engine,
)
from yolo_trt_ros.detection.decode import decode_yolov8
from yolo_trt_ros.detection.letterbox import Letterbox

SPIN_SOURCE = """
__global__ void spin(long long cycles) {
    const long long t0 = clock64();
    while (clock64() - t0 < cycles) {}
}
"""


class Bench:
    def __init__(self, cuda: Any, stream: Any, iters: int, warmup: int):
        from pycuda.compiler import SourceModule

        self.cuda, self.stream, self.iters, self.warmup = cuda, stream, iters, warmup
        self.rows: list[tuple[str, str, float, float]] = []
        self._spin_module = SourceModule(SPIN_SOURCE)
        self._spin = self._spin_module.get_function("spin")

    def wall(
        self,
        name: str,
        fn: Callable[[], Any],
        note: str = "",
        prep: Callable[[], Any] | None = None,
    ) -> float:
        """Wall time of ``fn``; ``prep`` (untimed) runs right before each call."""
        samples = []
        for i in range(self.warmup + self.iters):
            if prep is not None:
                prep()
            t0 = time.perf_counter()
            fn()
            if i >= self.warmup:
                samples.append(time.perf_counter() - t0)
        return self._add(name, "wall", samples, note)

    def gpu(self, name: str, enqueue: Callable[[], Any], note: str = "") -> float:
        start, end = self.cuda.Event(), self.cuda.Event()
        for _ in range(self.warmup):
            enqueue()
        self.stream.synchronize()
        samples = []
        for _ in range(self.iters):
            self._spin(
                np.int64(1_000_000), block=(1, 1, 1), grid=(1, 1), stream=self.stream
            )  # ~0.5 ms busy
            start.record(self.stream)
            enqueue()
            end.record(self.stream)
            end.synchronize()
            samples.append(end.time_since(start) / 1e3)
        return self._add(name, "GPU", samples, note)

    def paced(
        self, name: str, fn: Callable[[], Any], prep: Callable[[], Any], period: float, runs: int
    ) -> float:
        """Wall time of ``fn`` called once every ``period`` seconds, ``prep`` (untimed) right
        before each call."""
        samples = []
        tick = time.perf_counter()
        for i in range(runs + 5):  # the first 5 warm up
            tick += period
            prep()
            time.sleep(max(0.0, tick - time.perf_counter()))
            t0 = time.perf_counter()
            fn()
            if i >= 5:
                samples.append(time.perf_counter() - t0)
        return self._add(name, "wall", samples, f"one call every {period * 1e3:.0f} ms")

    def _add(self, name: str, kind: str, samples: list[float], note: str) -> float:
        us = sorted(s * 1e6 for s in samples)
        median, p90 = statistics.median(us), us[int(0.9 * (len(us) - 1))]
        self.rows.append((name, kind, median, p90))
        print(f"{name:<72} {kind:>4} {median:9.1f} us  p90 {p90:9.1f} us  {note}", flush=True)
        return median


def sm_clock() -> str:
    """Current SM clock (NVML), to show the card was at its working clock while timing."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return f"{pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)} MHz"
    except Exception as exc:  # no NVML here
        return f"unknown ({type(exc).__name__})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=data_paths.mot_sequence() / "img1")
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--paced-runs", type=int, default=300, help="runs of the rows at 30 Hz")
    parser.add_argument("--markdown", type=Path, help="also write the result table here")
    parser.add_argument(
        "--spin-up",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds of back-to-back kernels first, so the GPU leaves its idle clock",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import onnxruntime as ort
    import pycuda
    import pycuda.driver as cuda

    from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import (
        CandidateReducer,
        FrameUploader,
        GpuKernels,
        GpuLetterbox,
    )

    cuda.init()
    device = cuda.Device(0)
    gpu = (device.name(), "{}.{}".format(*device.compute_capability()))
    context = device.retain_primary_context()
    context.push()
    frame_path = sorted(args.frames.glob("*.jpg"))[0]
    frame = cv2.imread(str(frame_path))
    letterbox = Letterbox((640, 640))
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    real = session.run(None, {"images": letterbox(frame, "bgr8")[0]})[0]
    header = (
        f"{gpu[0]} (compute {gpu[1]}), driver CUDA {cuda.get_driver_version()}, pycuda "
        f"{pycuda.VERSION_TEXT}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}, "
        f"CPU threads {cv2.getNumThreads()}; frame {frame_path.name} "
        f"{frame.shape[1]}x{frame.shape[0]} bgr8; "
        f"{args.iters} runs after {args.warmup} warm-up"
    )
    print(header)
    stream = cuda.Stream()
    bench = Bench(cuda, stream, args.iters, args.warmup)
    try:
        kernels = GpuKernels()
        spin_lb = GpuLetterbox(kernels, (640, 640), np.dtype(np.float32))
        spin_src, spin_dst = cuda.mem_alloc(frame.nbytes), cuda.mem_alloc(3 * 640 * 640 * 4)
        cuda.memcpy_htod(spin_src, frame)
        idle = sm_clock()
        end = time.perf_counter() + args.spin_up
        while time.perf_counter() < end:
            for _ in range(100):
                spin_lb(int(spin_src), frame.shape[:2], "bgr8", int(spin_dst), stream)
            stream.synchronize()
        print(
            f"SM clock: {idle} before, {sm_clock()} after {args.spin_up:.0f} s of back-to-back "
            "letterbox kernels"
        )
        spin_src.free()
        spin_dst.free()
        # -- preprocessing + upload ---------------------------------------------------------------
        tensor_pinned = cuda.pagelocked_empty((1, 3, 640, 640), np.float32)
        d_tensor = cuda.mem_alloc(tensor_pinned.nbytes)

        def cpu_pre() -> None:
            tensor, _ = letterbox(frame, "bgr8")
            np.copyto(tensor_pinned, tensor)
            cuda.memcpy_htod_async(d_tensor, tensor_pinned, stream)
            stream.synchronize()

        bench.wall("CPU letterbox (OpenCV) only", lambda: letterbox(frame, "bgr8"))
        bench.gpu(
            "H2D float32 tensor 4.9 MB (pinned)",
            lambda: cuda.memcpy_htod_async(d_tensor, tensor_pinned, stream),
        )
        cpu_pre_us = bench.wall("A. CPU letterbox + copy to pinned + H2D 4.9 MB + sync", cpu_pre)

        uploader = FrameUploader()
        gpu_lb = GpuLetterbox(kernels, (640, 640), np.dtype(np.float32))
        gpu_lb16 = GpuLetterbox(kernels, (640, 640), np.dtype(np.float16))
        src = uploader.upload(frame, stream)
        raw_pinned = cuda.pagelocked_empty(frame.nbytes, np.uint8)
        d_raw = cuda.mem_alloc(frame.nbytes)
        bench.wall(
            "copy frame to pinned staging (CPU memcpy 0.9 MB)",
            lambda: np.copyto(raw_pinned, frame.reshape(-1)),
        )
        bench.gpu(
            "H2D raw frame 0.9 MB (pinned)",
            lambda: cuda.memcpy_htod_async(d_raw, raw_pinned, stream),
        )
        bench.gpu(
            "letterbox kernel -> float32 tensor",
            lambda: gpu_lb(src, frame.shape[:2], "bgr8", int(d_tensor), stream),
        )
        bench.gpu(
            "letterbox kernel -> float16 tensor",
            lambda: gpu_lb16(src, frame.shape[:2], "bgr8", int(d_tensor), stream),
        )

        def gpu_pre() -> None:
            pointer = uploader.upload(frame, stream)
            gpu_lb(pointer, frame.shape[:2], "bgr8", int(d_tensor), stream)
            stream.synchronize()

        def gpu_pre_staged() -> None:
            np.copyto(raw_pinned, frame.reshape(-1))
            cuda.memcpy_htod_async(d_raw, raw_pinned, stream)
            gpu_lb(int(d_raw), frame.shape[:2], "bgr8", int(d_tensor), stream)
            stream.synchronize()

        gpu_pre_us = bench.wall(
            "B. H2D 0.9 MB from the frame (pageable) + letterbox kernel + sync", gpu_pre
        )
        bench.wall(
            "B'. copy to pinned staging + H2D 0.9 MB + letterbox kernel + sync", gpu_pre_staged
        )
        bench.gpu(
            "B. on the GPU: H2D 0.9 MB (pinned) + letterbox kernel",
            lambda: (
                cuda.memcpy_htod_async(d_raw, raw_pinned, stream),
                gpu_lb(int(d_raw), frame.shape[:2], "bgr8", int(d_tensor), stream),
            ),
        )

        # -- output copy --------------------------------------------------------------------------
        d_out = cuda.mem_alloc(real.nbytes)
        cuda.memcpy_htod(d_out, real)
        out_pinned = cuda.pagelocked_empty(real.shape, np.float32)
        reducer = CandidateReducer(kernels, 84, 8400, np.dtype(np.float32))

        def full_copy() -> None:
            cuda.memcpy_dtoh_async(out_pinned, d_out, stream)
            stream.synchronize()

        def reduced_copy() -> np.ndarray:
            reducer.enqueue(int(d_out), 0.25, stream)
            stream.synchronize()
            return reducer.result()

        candidates = reduced_copy()
        k = candidates.shape[2]
        full_us = bench.wall("C. D2H full output 2.8 MB + sync", full_copy)
        bench.gpu(
            "D2H full output 2.8 MB (pinned)",
            lambda: cuda.memcpy_dtoh_async(out_pinned, d_out, stream),
        )
        reduced_us = bench.wall(
            f"D. compaction kernels writing count + candidates to mapped host memory "
            f"({(k + 1) * 84 * 4 / 1e3:.1f} kB; K = {k}) + sync",
            reduced_copy,
        )
        bench.gpu(
            "compaction kernels, candidates written to mapped host memory",
            lambda: reducer.enqueue(int(d_out), 0.25, stream),
        )
        flag, gather = reducer._launches
        bench.gpu("  flag kernel (a candidate bit mask per 32 anchors)", lambda: flag(stream))
        bench.gpu(
            "  gather kernel (count + candidates into mapped host memory)", lambda: gather(stream)
        )
        bench.wall(
            "decode (NMS) of the full output on the CPU",
            lambda: decode_yolov8(real, 0.25, 0.7, 300),
        )
        bench.wall(
            f"decode (NMS) of the {k} candidates on the CPU",
            lambda: decode_yolov8(candidates, 0.25, 0.7, 300),
        )
        same = decode_yolov8(real, 0.25, 0.7, 300)
        other = decode_yolov8(candidates, 0.25, 0.7, 300)
        assert np.array_equal(same.boxes, other.boxes) and np.array_equal(
            same.class_ids, other.class_ids
        )

        # -- end to end through TensorRTBackend (engine enqueues nothing) -------------------------
        install_fake_tensorrt("10.3.0", NoOpEngine())
        with tempfile.TemporaryDirectory() as tmp:
            engine = write_engine(
                Path(tmp) / "noop.engine", "10.3.0", *gpu, [1, 3, 640, 640], [1, 84, 8400]
            )
            backend = TensorRTBackend(engine)
            with backend._ctx.active():
                cuda.memcpy_htod(backend._out_buf.device, real)

            def cpu_path() -> Any:
                tensor, transform = letterbox(frame, "bgr8")
                return decode_yolov8(backend.infer(tensor), 0.25, 0.7, 300)

            def gpu_path() -> Any:
                cands, transform = backend.infer_image(frame, "bgr8", 0.25)
                return decode_yolov8(cands, 0.25, 0.7, 300)

            assert np.array_equal(cpu_path().boxes, gpu_path().boxes)
            e2e_cpu = bench.wall("E. backend.infer(CPU letterbox) + decode, no engine", cpu_path)
            e2e_gpu = bench.wall("F. backend.infer_image (GPU path) + decode, no engine", gpu_path)
            e2e_gpu_only = bench.wall(
                "G. backend.infer_image (GPU path) alone, no engine",
                lambda: backend.infer_image(frame, "bgr8", 0.25),
            )
            # where G's wall-clock time goes: host time of each call (the GPU work is queued, not
            # waited for)
            path = backend._gpu
            bench.wall(
                "  G1. FrameUploader.upload (pageable H2D 0.9 MB call)",
                lambda: path.uploaders[0].upload(frame, backend._stream),
                "host blocked while the driver stages",
            )
            bench.wall(
                "  G2. letterbox kernel launch (arguments packed once)",
                lambda: path.letterboxes[0](
                    src, frame.shape[:2], "bgr8", int(d_tensor), backend._stream
                ),
            )
            bench.wall(
                "  G3. execute_async through trt_compat (fake engine, no-op)", backend._execute
            )
            bench.wall(
                "  G4. CandidateReducer.enqueue (2 launches, no copy call)",
                lambda: path.reducers[0].enqueue(
                    int(backend._out_buf.device), 0.25, backend._stream
                ),
            )
            bench.wall("  G5. stream.synchronize() of an idle stream", backend._stream.synchronize)
            backend._stream.synchronize()
            received = frame.copy()
            paced = (lambda: np.copyto(received, frame), 1 / 30, args.paced_runs)
            paced_pre = bench.paced(
                "B at 30 Hz. H2D 0.9 MB (pageable) + letterbox kernel + sync",
                lambda: (
                    gpu_lb(
                        uploader.upload(received, stream),
                        received.shape[:2],
                        "bgr8",
                        int(d_tensor),
                        stream,
                    ),
                    stream.synchronize(),
                ),
                *paced,
            )
            paced_gpu = bench.paced(
                "G at 30 Hz. backend.infer_image (GPU path) alone, no engine",
                lambda: backend.infer_image(received, "bgr8", 0.25),
                *paced,
            )
            backend.close()
        gpu_path_device = bench.gpu(
            "H. on the GPU: H2D 0.9 MB + letterbox + compaction to mapped host memory",
            lambda: (
                cuda.memcpy_htod_async(d_raw, raw_pinned, stream),
                gpu_lb(int(d_raw), frame.shape[:2], "bgr8", int(d_tensor), stream),
                reducer.enqueue(int(d_out), 0.25, stream),
            ),
        )
        print(f"SM clock at the end: {sm_clock()}")
        summary = (
            f"preprocessing+upload: CPU {cpu_pre_us:.0f} us vs GPU {gpu_pre_us:.0f} us "
            f"({cpu_pre_us / gpu_pre_us:.1f}x); output copy: full {full_us:.0f} us vs compacted "
            f"{reduced_us:.0f} us ({full_us / reduced_us:.1f}x); end to end without engine: CPU "
            "path "
            f"{e2e_cpu:.0f} us vs GPU path {e2e_gpu:.0f} us ({e2e_cpu / e2e_gpu:.1f}x); GPU path "
            f"pre+transfers {e2e_gpu_only:.0f} us per frame wall-clock, {gpu_path_device:.0f} us "
            "on the GPU; "
            f"at 30 Hz with a newly written frame: upload+letterbox {paced_pre:.0f} us, GPU path "
            f"{paced_gpu:.0f} us wall-clock"
        )
        print(summary)
        if args.markdown:
            lines = [
                f"Machine: {header}",
                "",
                "| step | clock | median (us) | p90 (us) |",
                "|---|---|---:|---:|",
            ]
            lines += [f"| {n} | {kind} | {m:.1f} | {p:.1f} |" for n, kind, m, p in bench.rows]
            lines += ["", summary, ""]
            args.markdown.write_text("\n".join(lines))
        for allocation in (d_tensor, d_raw, d_out):
            allocation.free()
        for pinned in (tensor_pinned, raw_pinned, out_pinned):
            pinned.base.free()
        reducer.close()
        uploader.close()
        kernels.close()
    finally:
        cuda.Context.pop()
        context.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
