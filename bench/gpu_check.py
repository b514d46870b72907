"""GPU-machine check of the TensorRT backend's CUDA parts, on real MOT16-05 frames (output: bench/gpu_check.log).

Needs an NVIDIA GPU, pycuda (with nvcc), OpenCV and ONNX Runtime; TensorRT is not needed and is not used (it
cannot be installed on our machines): a real CUDA kernel stands in for the engine (bench/gpu_engine_stub.py).

1. letterbox: the GPU kernel equals the CPU Letterbox (yolo_trt_ros.detection.letterbox) within 1/255 per element, for
   bgr8/rgb8/bgra8/rgba8/mono8, many source sizes, two model input sizes, float32 and float16, and a source
   with padded rows; every output element is written (the buffer is poisoned with NaN first).
2. compaction: the GPU candidate reduction of a real YOLOv8n output (ONNX Runtime, CPU) keeps exactly the
   columns decode needs, and decoding it gives exactly the detections of decoding the full output (thresholds,
   multi-label, class filter, agnostic; float32 and float16 outputs; synthetic NaN/inf/tie/odd-size cases).
3. engine path: TensorRTBackend (real pycuda buffers, stream, context) with fake TensorRT 8.6 (bindings API) and
   10 (tensor API) whose engine is a real kernel launched on the stream handle the backend passes, at the
   addresses it bound; exact outputs for float32, float16 and a dynamic batch.
4. GPU path: infer_image (raw frame upload, letterbox into the engine input buffer, compaction) gives the CPU
   path's detections exactly, and the engine input buffer equals the CPU letterbox within 1/255.
5. memory: 20 configure/cleanup cycles of the backend leave the device's free memory where it started.

Usage: python bench/gpu_check.py [--frames DIR] [--model ONNX]     (exit status 1 when a check fails)
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from gpu_engine_stub import (  # first: puts the repo and test/ on sys.path
    DriverKernels,
    FormulaEngine,
    ReplayEngine,
    fake,
    install_fake_tensorrt,
    write_engine,
)
import data_paths
from yolo_trt_ros.detection.decode import decode_yolov8
from yolo_trt_ros.detection.letterbox import Letterbox, letterbox_geometry

ENCODINGS = ("bgr8", "rgb8", "bgra8", "rgba8", "mono8")
SOURCE_SIZES = [(480, 640), (720, 1280), (517, 333), (1080, 1920), (640, 640), (240, 320), (960, 1280),
                (37, 100), (640, 480), (1, 1)]
INPUT_SIZES = [(640, 640), (384, 640)]
TOLERANCE = 1 / 255 + 1e-6
VERSIONS = ("8.6.1", "10.3.0")


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)
        return ok


def encode(bgr: np.ndarray, encoding: str, rng: np.random.Generator) -> np.ndarray:
    """The frame in ``encoding`` (alpha random, so a kernel that reads it as color would fail)."""
    if encoding == "bgr8":
        return bgr
    if encoding == "rgb8":
        return np.ascontiguousarray(bgr[:, :, ::-1])
    if encoding == "mono8":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    alpha = rng.integers(0, 256, bgr.shape[:2], dtype=np.uint8)[:, :, None]
    color = bgr if encoding == "bgra8" else bgr[:, :, ::-1]
    return np.ascontiguousarray(np.concatenate([color, alpha], axis=2))


def poison(cuda: Any, allocation: Any, nbytes: int) -> None:
    cuda.memset_d32(allocation, 0x7FC07FC0, nbytes // 4)  # NaN as float32 and as float16 pairs


def check_letterbox(cuda: Any, frames: list[np.ndarray], report: Report) -> None:
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import GpuKernels, GpuLetterbox

    kernels = GpuKernels()
    stream = cuda.Stream()
    rng = np.random.default_rng(0)
    worst: dict[tuple[str, str], float] = {}
    runs = 0
    failures: list[str] = []
    d_dst = cuda.mem_alloc(3 * 640 * 640 * 4)
    for dtype in (np.float32, np.float16):
        for input_hw in INPUT_SIZES:
            gpu_lb = GpuLetterbox(kernels, input_hw, np.dtype(dtype))
            cpu_lb = Letterbox(input_hw, dtype)
            nbytes = 3 * input_hw[0] * input_hw[1] * np.dtype(dtype).itemsize
            host = cuda.pagelocked_empty((1, 3, *input_hw), dtype)
            for f, frame in enumerate(frames):
                for size in SOURCE_SIZES:
                    sized = frame if size == frame.shape[:2] else cv2.resize(frame, (size[1], size[0]),
                                                                             interpolation=cv2.INTER_AREA)
                    for enc in ENCODINGS:
                        img = encode(sized, enc, rng)
                        expected = cpu_lb(img, enc)[0].astype(np.float32)
                        d_src = cuda.mem_alloc(img.nbytes)
                        cuda.memcpy_htod(d_src, np.ascontiguousarray(img))
                        poison(cuda, d_dst, nbytes)
                        gpu_lb(int(d_src), img.shape[:2], enc, int(d_dst), stream)
                        cuda.memcpy_dtoh_async(host, d_dst, stream)
                        stream.synchronize()
                        d_src.free()
                        got = host.astype(np.float32)
                        diff = float(np.abs(got - expected).max()) if np.isfinite(got).all() else float("inf")
                        key = (np.dtype(dtype).name, enc)
                        worst[key] = max(worst.get(key, 0.0), diff)
                        runs += 1
                        if diff > TOLERANCE:
                            failures.append(f"{key} frame {f} src {size} input {input_hw}: "
                                            f"max diff {diff * 255:.3f}/255")
            host.base.free()
    detail = ", ".join(f"{d}/{e} {v * 255:.3f}" for (d, e), v in sorted(worst.items()))
    report.check(not failures, f"letterbox kernel == CPU Letterbox within 1/255 ({runs} runs; "
                 f"{len(frames)} frames x {len(SOURCE_SIZES)} sizes x {len(ENCODINGS)} encodings x "
                 f"{len(INPUT_SIZES)} inputs x 2 dtypes)", "worst |diff| in 1/255 units: " + detail
                 + ("; " + "; ".join(failures[:5]) if failures else ""))

    # a source with padded rows (ROS Image step > width * channels), read through src_step
    frame = frames[0]
    h, w, _ = frame.shape
    step = w * 3 + 64
    padded = np.zeros((h, step), np.uint8)
    padded[:, : w * 3] = frame.reshape(h, -1)
    d_src = cuda.mem_alloc(padded.nbytes)
    cuda.memcpy_htod(d_src, padded)
    gpu_lb = GpuLetterbox(kernels, (640, 640), np.dtype(np.float32))
    host = np.empty((1, 3, 640, 640), np.float32)
    poison(cuda, d_dst, host.nbytes)
    gpu_lb(int(d_src), (h, w), "bgr8", int(d_dst), stream, src_step=step)
    stream.synchronize()
    cuda.memcpy_dtoh(host, d_dst)
    diff = float(np.abs(host - Letterbox((640, 640))(frame, "bgr8")[0]).max())
    report.check(diff <= TOLERANCE, "letterbox kernel reads padded rows (step = width*3 + 64)",
                 f"max diff {diff * 255:.3f}/255")
    d_src.free()
    d_dst.free()
    kernels.close()


def real_outputs(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    letterbox = Letterbox((640, 640))
    return [session.run(None, {"images": letterbox(f, "bgr8")[0]})[0] for f in frames]


def _same(a: Any, b: Any) -> bool:
    return (np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
            and np.array_equal(a.class_ids, b.class_ids))


def check_compaction(cuda: Any, outputs: list[np.ndarray], report: Report) -> None:
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import CandidateReducer, GpuKernels

    kernels = GpuKernels()
    stream = cuda.Stream()
    decodes: list[tuple[str, dict[str, Any]]] = [
        ("default", {}), ("multi_label", {"multi_label": True}),
        ("classes person+car", {"class_filter": np.array([0, 2])}), ("agnostic", {"agnostic": True})]
    cases = 0
    failures: list[str] = []
    counts: list[int] = []
    for dtype in (np.float32, np.float16):
        reducer = CandidateReducer(kernels, 84, 8400, np.dtype(dtype))
        for i, out in enumerate(outputs):
            full = out.astype(dtype)
            d_full = cuda.mem_alloc(full.nbytes)
            cuda.memcpy_htod(d_full, full)
            ref = full.astype(np.float32)
            for conf in (0.25, 0.5, 0.05, 0.001, 0.95):
                reducer.enqueue(int(d_full), conf, stream)
                stream.synchronize()
                compact = reducer.result()
                keep = np.flatnonzero(ref[0, 4:].max(axis=0) > conf)
                counts.append(len(keep))
                if compact.shape != (1, 84, len(keep)) or not np.array_equal(compact[0], ref[0][:, keep]):
                    failures.append(f"{np.dtype(dtype).name} frame {i} conf {conf}: columns differ "
                                    f"({compact.shape[2]} vs {len(keep)})")
                    continue
                for name, options in decodes:
                    cases += 1
                    a = decode_yolov8(ref, conf, 0.7, 300, **options)
                    b = decode_yolov8(compact, conf, 0.7, 300, **options)
                    if not _same(a, b):
                        failures.append(f"{np.dtype(dtype).name} frame {i} conf {conf} {name}: detections differ")
            d_full.free()
        reducer.close()
    report.check(not failures, f"compaction of real YOLOv8n outputs == full decode, exactly ({cases} decodes; "
                 f"{len(outputs)} frames x 5 thresholds x 4 decode modes x fp32/fp16)",
                 f"candidates per frame {min(counts)}..{max(counts)} of 8400, written to mapped host memory"
                 + ("; " + "; ".join(failures[:5]) if failures else ""))

    # synthetic edge cases: NaN/inf, scores exactly at the threshold, 1 class, 600 classes, N not a block multiple
    rng = np.random.default_rng(1)
    failures = []
    for rows, n in ((5, 1000), (604, 300), (84, 257), (84, 1)):
        out = rng.random((1, rows, n), np.float32)
        out[0, :4] *= 640
        out[0, 4:, ::7] = 0.25  # exact ties with the threshold: not candidates (decode keeps score > conf)
        out[0, rng.integers(0, rows, 5), rng.integers(0, n, 5)] = np.nan
        out[0, 4, rng.integers(0, n, 3)] = np.inf
        d_out = cuda.mem_alloc(out.nbytes)
        cuda.memcpy_htod(d_out, out)
        reducer = CandidateReducer(kernels, rows, n, np.dtype(np.float32))
        reducer.enqueue(int(d_out), 0.25, stream)
        stream.synchronize()
        compact = reducer.result()
        keep = np.flatnonzero(np.fmax.reduce(out[0, 4:], axis=0) > 0.25)
        same_columns = compact.shape[2] == len(keep) and np.array_equal(compact[0], out[0][:, keep], equal_nan=True)
        same_dets = _same(decode_yolov8(out, 0.25, 0.7, 300), decode_yolov8(compact, 0.25, 0.7, 300))
        if not (same_columns and same_dets):
            failures.append(f"rows {rows} n {n}: columns {same_columns}, detections {same_dets}")
        reducer.close()
        d_out.free()
    report.check(not failures, "compaction edge cases (NaN, inf, ties at the threshold, nc=1, nc=600, N=257, N=1)",
                 "; ".join(failures))
    kernels.close()


def _backend(engine: Path, log: logging.Logger, gpu_timing: bool = False) -> Any:
    from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(engine, gpu_timing=gpu_timing, log=log)


def check_engine_path(cuda: Any, kernels: DriverKernels, gpu: tuple[str, str], frames: list[np.ndarray],
                      workdir: Path, report: Report, log: logging.Logger) -> None:
    letterbox = Letterbox((640, 640))
    tensors = [letterbox(f, "bgr8")[0].copy() for f in frames]
    for version in VERSIONS:
        executor = FormulaEngine(kernels, spin_cycles=2_000_000)  # ~1 ms: a wrong stream/sync reads the poison
        install_fake_tensorrt(version, executor)
        engine = write_engine(workdir / f"formula-{version}.engine", version, *gpu, [1, 3, 640, 640], [1, 84, 8400])
        backend = _backend(engine, log)
        ok, worst = True, 0.0
        for x in tensors:
            with backend._ctx.active():
                poison(cuda, backend._out_buf.device, backend._out_buf.nbytes)
            got = backend.infer(x)
            expected = fake.expected_output(x, (1, 84, 8400))
            ok &= np.array_equal(got, expected)
            worst = max(worst, float(np.nanmax(np.abs(got - expected))) if np.isfinite(got).all() else np.inf)
        stream = int(backend._stream.handle)
        on_stream = bool(executor.streams) and all(s == stream for s in executor.streams)
        report.check(ok and on_stream, f"TensorRT {version} ({backend.api} API): fp32 engine kernel output exact",
                     f"{len(tensors)} real frames, max |diff| {worst}, kernel launched on the backend's stream "
                     f"{hex(stream)}: {on_stream}")
        backend.close()

        engine = write_engine(workdir / f"formula16-{version}.engine", version, *gpu, [1, 3, 640, 640],
                              [1, 84, 8400], dtype="HALF")
        backend = _backend(engine, log)
        x = tensors[0]
        got = backend.infer(x)
        expected = fake.expected_output(x.astype(np.float16), (1, 84, 8400)).astype(np.float16).astype(np.float32)
        report.check(backend.input_dtype == np.float16 and got.dtype == np.float32 and np.array_equal(got, expected),
                     f"TensorRT {version}: fp16-I/O engine (half input/output buffers) output exact")
        backend.close()

        engine = write_engine(workdir / f"dynamic-{version}.engine", version, *gpu, [-1, 3, 64, 64], [-1, 84, 100],
                              profile=[[1, 3, 64, 64], [1, 3, 64, 64], [4, 3, 64, 64]])
        backend = _backend(engine, log)
        rng = np.random.default_rng(0)
        ok = True
        for batch in (3, 1, 4, 2):
            x = rng.random((batch, 3, 64, 64), np.float32)
            ok &= np.array_equal(backend.infer(x), fake.expected_output(x, (batch, 84, 100)))
        report.check(ok, f"TensorRT {version}: dynamic batch 3, 1, 4, 2 (rebinding, buffer growth) exact")
        backend.close()


def check_gpu_path(cuda: Any, kernels: DriverKernels, gpu: tuple[str, str], frames: list[np.ndarray],
                   outputs: list[np.ndarray], workdir: Path, report: Report, log: logging.Logger) -> None:
    rng = np.random.default_rng(2)
    for version in VERSIONS:
        executor = ReplayEngine(kernels)
        install_fake_tensorrt(version, executor)
        engine = write_engine(workdir / f"replay-{version}.engine", version, *gpu, [1, 3, 640, 640], [1, 84, 8400])
        backend = _backend(engine, log, gpu_timing=True)
        if not report.check(backend.gpu_preprocessing, f"TensorRT {version}: GPU preprocessing kernels built"):
            backend.close()
            continue
        failures: list[str] = []
        worst = 0.0
        host_in = np.empty((1, 3, 640, 640), np.float32)
        sources = []
        for i, frame in enumerate(frames):
            sources += [(i, enc, encode(frame, enc, rng)) for enc in ENCODINGS]
            sources.append((i, "bgr8 crop view", frame[40:440, 100:600]))  # non-contiguous view, other size
        for i, label, image in sources:
            enc = label.split()[0]
            with backend._ctx.active():
                d_real = cuda.mem_alloc(outputs[i].nbytes)
                cuda.memcpy_htod(d_real, outputs[i])
                executor.source = int(d_real)
                candidates, transform = backend.infer_image(image, enc, 0.25)
                cuda.memcpy_dtoh(host_in, backend._in_buf.device)
                d_real.free()
            ref = decode_yolov8(outputs[i], 0.25, 0.7, 300)
            got = decode_yolov8(candidates, 0.25, 0.7, 300)
            expected_in = Letterbox((640, 640))(image, enc)[0]
            diff = float(np.abs(host_in - expected_in).max())
            worst = max(worst, diff)
            if not _same(ref, got) or transform != letterbox_geometry(image.shape[:2], (640, 640)):
                failures.append(f"frame {i} {label}: detections differ")
            if diff > TOLERANCE:
                failures.append(f"frame {i} {label}: engine input differs from CPU letterbox by {diff * 255:.3f}/255")
        times = backend.last_gpu_times
        report.check(not failures, f"TensorRT {version}: infer_image == CPU path ({len(sources)} frames/encodings, "
                     "crop view included)",
                     f"engine input buffer vs CPU letterbox max {worst * 255:.3f}/255; last GPU times (ms) "
                     + ", ".join(f"{k} {v:.3f}" for k, v in times.items())
                     + ("; " + "; ".join(failures[:5]) if failures else ""))
        backend.close()


def check_memory(cuda: Any, kernels: DriverKernels, gpu: tuple[str, str], frames: list[np.ndarray],
                 workdir: Path, report: Report, log: logging.Logger) -> None:
    cycles = 20
    for version in VERSIONS:
        install_fake_tensorrt(version, FormulaEngine(kernels))
        engine = write_engine(workdir / f"memory-{version}.engine", version, *gpu, [1, 3, 640, 640], [1, 84, 8400])
        x = Letterbox((640, 640))(frames[0], "bgr8")[0]

        def cycle() -> Any:
            backend = _backend(engine, log)
            backend.infer(x)
            backend.infer_image(frames[0], "bgr8", 0.25)
            return backend

        cycle().close()  # warm-up: CUDA runtime, pycuda's compiler cache, module loading
        base = cuda.mem_get_info()[0]
        held = cycle()
        held_bytes = base - cuda.mem_get_info()[0]
        reported = held.device_memory_bytes
        held.close()
        frees = []
        for _ in range(cycles):
            cycle().close()
            frees.append(cuda.mem_get_info()[0])
        drift = [base - f for f in frees]
        report.check(held_bytes > 0 and all(d == 0 for d in drift),
                     f"TensorRT {version}: {cycles} configure/cleanup cycles leave free device memory unchanged",
                     f"free before {base / 2**20:.1f} MiB; one open backend holds {held_bytes / 2**20:.1f} MiB "
                     f"(it reports {reported / 2**20:.1f} MiB); drift after each cycle (bytes): "
                     f"{sorted(set(drift))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=data_paths.mot_sequence() / "img1")
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument("--count", type=int, default=3, help="frames to use (spread over the sequence)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("gpu_check")

    import pycuda
    import pycuda.driver as cuda

    cuda.init()
    device = cuda.Device(0)
    gpu = (device.name(), "%d.%d" % device.compute_capability())
    files = sorted(args.frames.glob("*.jpg"))
    picks = [files[round(i * (len(files) - 1) / max(args.count - 1, 1))] for i in range(args.count)]
    frames = [cv2.imread(str(p)) for p in picks]
    print(f"gpu_check: {gpu[0]} (compute {gpu[1]}), driver CUDA {cuda.get_driver_version()}, "
          f"pycuda {pycuda.VERSION_TEXT}, numpy {np.__version__}, OpenCV {cv2.__version__}, "
          f"Python {platform.python_version()}")
    print(f"frames: {', '.join(p.name for p in picks)} of {args.frames} ({frames[0].shape[1]}x{frames[0].shape[0]}); "
          f"model {args.model.name}; TensorRT: not installed, engines are real kernels behind fake TensorRT "
          "8.6/10 APIs")
    context = device.retain_primary_context()  # the checker's own hold, to read mem_get_info between cycles
    context.push()
    report = Report()
    start = time.perf_counter()
    try:
        outputs = real_outputs(args.model, frames)
        kernels = DriverKernels()
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            steps: list[tuple[str, Callable[[], None]]] = [
                ("letterbox", lambda: check_letterbox(cuda, frames, report)),
                ("compaction", lambda: check_compaction(cuda, outputs, report)),
                ("engine path", lambda: check_engine_path(cuda, kernels, gpu, frames, workdir, report, log)),
                ("GPU path", lambda: check_gpu_path(cuda, kernels, gpu, frames, outputs, workdir, report, log)),
                ("memory", lambda: check_memory(cuda, kernels, gpu, frames, workdir, report, log)),
            ]
            for name, step in steps:
                try:
                    step()
                except Exception as exc:  # report and go on with the other checks
                    traceback.print_exc()
                    report.check(False, f"{name} check raised {type(exc).__name__}: {exc}")
    finally:
        cuda.Context.pop()
        context.detach()
    print(f"gpu_check: {report.passed} passed, {len(report.failed)} failed in {time.perf_counter() - start:.1f} s")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
