"""The TensorRT backend's CUDA parts on a real GPU, on real MOT16-05 frames.

Needs an NVIDIA GPU with its driver, pycuda and nvcc (skipped otherwise; nvcc compiles the engine
stand-in and the fallback check, the package's kernels load from PTX), OpenCV and ONNX Runtime.
TensorRT is not needed and is not used (it cannot be installed on our machines): a real CUDA kernel
stands in for the engine (bench/gpu_engine_stub.py) behind fake TensorRT 8.6 (bindings API) and 10
(tensor API).

0. kernels without nvcc: with an empty PATH, GpuKernels loads the shipped PTX (driver JIT) and
   its letterbox equals the CPU Letterbox; the doctor's check_kernels says so. With the PTX made
   unloadable, nvcc compiles kernels.cu instead, with the same results.
1. letterbox: the GPU kernel equals the CPU Letterbox within 1/255 per element, for
   bgr8/rgb8/bgra8/rgba8/mono8, many source sizes, two model input sizes, float32 and float16, and
   a source with padded rows; every output element is written (the buffer is poisoned with NaN).
2. compaction: the GPU candidate reduction of a real YOLOv8n output (ONNX Runtime, CPU) keeps
   exactly the columns decode needs, and decoding it gives exactly the detections of decoding the
   full output (thresholds, multi-label, class filter, agnostic; float32 and float16 outputs;
   synthetic NaN/inf/tie/odd-size cases).
3. engine path: TensorRTBackend (real pycuda buffers, stream, context) whose fake engine is a real
   kernel launched on the stream handle the backend passes, at the addresses it bound; exact
   outputs for float32, float16 and a dynamic batch.
4. GPU path: infer_image (raw frame upload, letterbox into the engine input buffer, compaction)
   gives the CPU path's detections exactly; the engine input equals the CPU letterbox within 1/255.
   With a dynamic-H/W engine each frame runs at its stride-32 rectangle (the CPU rectangular
   letterbox within 1/255, compaction of the smaller output exact), and without a threshold the
   whole output comes back exactly. Several cameras' frames run as one batch (infer_images), each
   slot letterboxed, compacted and decoded like the CPU path.
5. memory: 20 configure/cleanup cycles of the backend leave the device's free memory unchanged.

Run on the GPU machine (-rP prints each check's numbers; data from $YOLO_TRT_ROS_DATA as for every
test: models/yolov8n-coco-fp32.onnx and mot/MOT16-05/img1):
    python -m pytest test/inference/tensorrt/test_gpu_check.py -m gpu -rP
Last run: bench/gpu_check.log.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import fake_tensorrt as fake
from gpu_engine_stub import DriverKernels, FormulaEngine, ReplayEngine, write_engine
from yolo_trt_ros.detection.decode import decode_yolov8
from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.detection.letterbox import Letterbox, letterbox_geometry
from yolo_trt_ros.inference.tensorrt import gpu_preprocess
from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend
from yolo_trt_ros.inference.tensorrt.cuda_context import release_primary_context

_CUDA_BIN = Path("/usr/local/cuda/bin")


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    return found or (str(_CUDA_BIN / "nvcc") if (_CUDA_BIN / "nvcc").is_file() else None)


def _missing() -> str | None:
    """Why this machine cannot run these checks, or None.

    Imports no pycuda: the CPU tests put a fake one into ``sys.modules``.
    """
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA driver (libcuda.so.1)"
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda not installed (GPU machine: the wheels in shared/device, see its README)"
    if _nvcc() is None:
        return "nvcc not found (pycuda compiles the engine stand-in's kernel with it)"
    return None


MISSING = _missing()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(MISSING is not None, reason=f"skipped: {MISSING}"),
]

ENCODINGS = ("bgr8", "rgb8", "bgra8", "rgba8", "mono8")
SOURCE_SIZES = [
    (480, 640),
    (720, 1280),
    (517, 333),
    (1080, 1920),
    (640, 640),
    (240, 320),
    (960, 1280),
    (37, 100),
    (640, 480),
    (1, 1),
]
INPUT_SIZES = [(640, 640), (384, 640)]
TOLERANCE = 1 / 255 + 1e-6
ENGINE_APIS = [("8.6.1", "bindings"), ("10.3.0", "tensor")]
FRAME_COUNT = 3
"""Frames used, spread over the sequence."""

Gpu = tuple[str, str]
"""(device name, compute capability "major.minor"), as the engine sidecar records them."""
UseEngine = Callable[[str, Any], None]
"""use(version, executor): a fake ``tensorrt`` of that version whose engines run ``executor``."""


@pytest.fixture(scope="module", autouse=True)
def _isolated_modules() -> Iterator[None]:
    """Leave ``sys.modules`` as found: later CPU tests put fakes under these names."""

    def ours(name: str) -> bool:
        return name.split(".")[0] in ("pycuda", "tensorrt")

    before = {name: module for name, module in sys.modules.items() if ours(name)}
    yield
    for name in [name for name in sys.modules if ours(name) and name not in before]:
        del sys.modules[name]
    sys.modules.update(before)


@pytest.fixture(scope="module")
def cuda() -> Iterator[Any]:
    """``pycuda.driver``, nvcc on PATH, device 0's primary context current.

    The test's own hold on the context, so that free memory can be read between backend cycles.
    """
    with pytest.MonkeyPatch.context() as mp:
        if shutil.which("nvcc") is None:
            mp.setenv("PATH", f"{_CUDA_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        import pycuda
        import pycuda.driver as driver

        try:
            driver.init()
            count = driver.Device.count()
        except driver.Error as exc:
            pytest.skip(f"CUDA driver does not initialize: {exc}")
        if count == 0:
            pytest.skip("no CUDA device")
        device = driver.Device(0)
        major, minor = device.compute_capability()
        print(
            f"{device.name()} (compute {major}.{minor}), driver CUDA "
            f"{driver.get_driver_version()}, pycuda {pycuda.VERSION_TEXT}, "
            f"numpy {np.__version__}, OpenCV {cv2.__version__}, "
            f"Python {platform.python_version()}"
        )
        context = device.retain_primary_context()
        context.push()
        try:
            yield driver
        finally:
            driver.Context.pop()
            release_primary_context(driver, context)


@pytest.fixture(scope="module")
def gpu(cuda: Any) -> Gpu:
    device = cuda.Context.get_device()
    major, minor = device.compute_capability()
    return device.name(), f"{major}.{minor}"


@pytest.fixture(scope="module")
def frames(mot_dir: Path) -> list[np.ndarray]:
    files = sorted((mot_dir / "img1").glob("*.jpg"))
    step = (len(files) - 1) / max(FRAME_COUNT - 1, 1)
    picks = [files[round(i * step)] for i in range(FRAME_COUNT)]
    images = [cv2.imread(str(p)) for p in picks]
    assert all(image is not None for image in images), picks
    print(f"frames: {', '.join(p.name for p in picks)} of {mot_dir / 'img1'}")
    return images


@pytest.fixture(scope="module")
def outputs(model_path: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Real YOLOv8n outputs [1, 84, 8400] of the frames (ONNX Runtime on the CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    letterbox = Letterbox((640, 640))
    return [session.run(None, {"images": letterbox(f, "bgr8")[0]})[0] for f in frames]


@pytest.fixture(scope="module")
def kernels(cuda: Any) -> DriverKernels:
    return DriverKernels()


@pytest.fixture
def use_engine(monkeypatch: pytest.MonkeyPatch) -> UseEngine:
    def use(version: str, executor: Any) -> None:
        trt = fake.make_fake_tensorrt(version, executor=executor)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)

    return use


def _backend(engine: Path, gpu_timing: bool = False) -> TensorRTBackend:
    log = logging.getLogger("test_gpu_check")
    return TensorRTBackend(engine, gpu_timing=gpu_timing, log=log)


def _write_engine(path: Path, version: str, gpu: Gpu, **kwargs: Any) -> Path:
    """A fake YOLOv8n-shaped plan (input [1, 3, 640, 640], output [1, 84, 8400]) and sidecar."""
    return write_engine(path, version, *gpu, [1, 3, 640, 640], [1, 84, 8400], **kwargs)


def _dynamic_engine(
    data_dir: Path,
    tmp_path: Path,
    kernels: DriverKernels,
    gpu: Gpu,
    use_engine: UseEngine,
    version: str,
    max_batch: int,
) -> tuple[Any, ReplayEngine, TensorRTBackend]:
    """An engine of the dynamic-size YOLOv8n as built for a 640x480 camera (rectangles from 32x32
    to 640x640, batch 1..``max_batch``) whose execution replays what the test puts in
    ``executor.source``; with an ONNX Runtime session of that model for the expected outputs."""
    import onnxruntime as ort

    onnx = data_dir / "models" / "yolov8n-coco-dynamic.onnx"
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    executor = ReplayEngine(kernels)
    use_engine(version, executor)
    engine = write_engine(
        tmp_path / "dynamic.engine",
        version,
        *gpu,
        [-1, 3, -1, -1],
        [-1, 84, -1],
        profile=[[1, 3, 32, 32], [1, 3, 480, 640], [max_batch, 3, 640, 640]],
        onnx_path=onnx,
    )
    return session, executor, _backend(engine)


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


def max_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference; inf where ``got`` holds a NaN or inf (a poisoned element)."""
    if not np.isfinite(got).all():
        return float("inf")
    return float(np.abs(got.astype(np.float32) - expected).max())


def _same(a: Detections, b: Detections) -> bool:
    return (
        np.array_equal(a.boxes, b.boxes)
        and np.array_equal(a.scores, b.scores)
        and np.array_equal(a.class_ids, b.class_ids)
    )


def _failures(failures: list[str]) -> str:
    return f"{len(failures)} failed: " + "; ".join(failures[:5])


def _letterbox_failures(cuda: Any, kernels: Any, frames: list[np.ndarray]) -> list[str]:
    """Each frame in every encoding, at its size and at an odd one, float32 and float16: the
    GPU letterbox against the CPU one."""
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import GpuLetterbox

    rng = np.random.default_rng(3)
    stream = cuda.Stream()
    failures: list[str] = []
    for dtype in (np.dtype(np.float32), np.dtype(np.float16)):
        gpu_lb, cpu_lb = GpuLetterbox(kernels, (640, 640), dtype), Letterbox((640, 640), dtype)
        host = cuda.pagelocked_empty((1, 3, 640, 640), dtype)
        d_dst = cuda.mem_alloc(host.nbytes)
        for f, frame in enumerate(frames):
            for sized in (frame, cv2.resize(frame, (333, 517), interpolation=cv2.INTER_AREA)):
                for enc in ENCODINGS:
                    img = encode(sized, enc, rng)
                    d_src = cuda.mem_alloc(img.nbytes)
                    cuda.memcpy_htod(d_src, np.ascontiguousarray(img))
                    poison(cuda, d_dst, host.nbytes)
                    gpu_lb(int(d_src), img.shape[:2], enc, int(d_dst), stream)
                    cuda.memcpy_dtoh_async(host, d_dst, stream)
                    stream.synchronize()
                    d_src.free()
                    diff = max_diff(host, cpu_lb(img, enc)[0].astype(np.float32))
                    if diff > TOLERANCE:
                        failures.append(
                            f"{dtype.name} {enc} frame {f} {img.shape[:2]}: {diff * 255:.3f}/255"
                        )
        d_dst.free()
        host.base.free()
    return failures


def test_kernels_load_from_ptx_without_nvcc(
    cuda: Any, gpu: Gpu, frames: list[np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No nvcc on PATH (as under a launch file or systemd on a Jetson): the shipped PTX loads
    through the driver's JIT, with the CPU letterbox's results."""
    empty = tmp_path / "no-nvcc"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("nvcc") is None
    kernels = gpu_preprocess.GpuKernels()
    try:
        assert (kernels.origin, kernels.ptx_problem) == ("ptx", None)
        failures = _letterbox_failures(cuda, kernels, frames)
    finally:
        kernels.close()
    ok, message = gpu_preprocess.check_kernels()
    sm = "sm_" + gpu[1].replace(".", "")
    print(f"kernels from {gpu_preprocess.PTX_PATH.name} without nvcc; check_kernels: {message}")
    assert (ok, message) == (True, f"PTX kernels loaded ({sm}, no nvcc needed)")
    assert not failures, _failures(failures)


def test_kernels_compile_with_nvcc_when_the_ptx_does_not_load(
    cuda: Any,
    frames: list[np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    garbage = tmp_path / "kernels.ptx"
    garbage.write_bytes(b"not PTX\n")
    monkeypatch.setattr(gpu_preprocess, "PTX_PATH", garbage)
    with caplog.at_level(logging.WARNING):
        kernels = gpu_preprocess.GpuKernels()
    try:
        assert kernels.origin == "nvcc" and kernels.ptx_problem
        failures = _letterbox_failures(cuda, kernels, frames)
    finally:
        kernels.close()
    print(f"PTX refused ({kernels.ptx_problem}); compiled by nvcc")
    assert "kernels.ptx did not load" in caplog.text
    assert not failures, _failures(failures)


def test_letterbox_kernel_equals_cpu_letterbox(cuda: Any, frames: list[np.ndarray]) -> None:
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import GpuKernels, GpuLetterbox

    kernels = GpuKernels()
    stream = cuda.Stream()
    rng = np.random.default_rng(0)
    worst: dict[tuple[str, str], float] = {}
    runs = 0
    failures: list[str] = []
    d_dst = cuda.mem_alloc(3 * 640 * 640 * 4)
    try:
        for dtype in (np.dtype(np.float32), np.dtype(np.float16)):
            for input_hw in INPUT_SIZES:
                gpu_lb = GpuLetterbox(kernels, input_hw, dtype)
                cpu_lb = Letterbox(input_hw, dtype)
                nbytes = 3 * input_hw[0] * input_hw[1] * dtype.itemsize
                host = cuda.pagelocked_empty((1, 3, *input_hw), dtype)
                for f, frame in enumerate(frames):
                    for h, w in SOURCE_SIZES:
                        sized = frame
                        if (h, w) != frame.shape[:2]:
                            sized = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
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
                            diff = max_diff(host, expected)
                            key = (dtype.name, enc)
                            worst[key] = max(worst.get(key, 0.0), diff)
                            runs += 1
                            if diff > TOLERANCE:
                                failures.append(
                                    f"{key} frame {f} src {(h, w)} input {input_hw}: "
                                    f"max diff {diff * 255:.3f}/255"
                                )
                host.base.free()
    finally:
        d_dst.free()
        kernels.close()
    print(
        f"{runs} runs ({len(frames)} frames x {len(SOURCE_SIZES)} sizes x {len(ENCODINGS)} "
        f"encodings x {len(INPUT_SIZES)} inputs x 2 dtypes); worst |diff| in 1/255 units: "
        + ", ".join(f"{d}/{e} {v * 255:.3f}" for (d, e), v in sorted(worst.items()))
    )
    assert not failures, _failures(failures)


def test_letterbox_kernel_reads_padded_rows(cuda: Any, frames: list[np.ndarray]) -> None:
    """A ROS Image whose step exceeds width * channels, read through ``src_step``."""
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import GpuKernels, GpuLetterbox

    kernels = GpuKernels()
    stream = cuda.Stream()
    frame = frames[0]
    h, w, _ = frame.shape
    step = w * 3 + 64
    padded = np.zeros((h, step), np.uint8)
    padded[:, : w * 3] = frame.reshape(h, -1)
    host = np.empty((1, 3, 640, 640), np.float32)
    d_src = cuda.mem_alloc(padded.nbytes)
    d_dst = cuda.mem_alloc(host.nbytes)
    try:
        cuda.memcpy_htod(d_src, padded)
        poison(cuda, d_dst, host.nbytes)
        letterbox = GpuLetterbox(kernels, (640, 640), np.dtype(np.float32))
        letterbox(int(d_src), (h, w), "bgr8", int(d_dst), stream, src_step=step)
        stream.synchronize()
        cuda.memcpy_dtoh(host, d_dst)
    finally:
        d_src.free()
        d_dst.free()
        kernels.close()
    diff = max_diff(host, Letterbox((640, 640))(frame, "bgr8")[0])
    assert diff <= TOLERANCE, f"max diff {diff * 255:.3f}/255"


def test_compaction_of_real_outputs_decodes_like_the_full_output(
    cuda: Any, outputs: list[np.ndarray]
) -> None:
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import CandidateReducer, GpuKernels

    kernels = GpuKernels()
    stream = cuda.Stream()
    decodes: list[tuple[str, dict[str, Any]]] = [
        ("default", {}),
        ("multi_label", {"multi_label": True}),
        ("classes person+car", {"class_filter": np.array([0, 2])}),
        ("agnostic", {"agnostic": True}),
    ]
    cases = 0
    failures: list[str] = []
    counts: list[int] = []
    try:
        for dtype in (np.dtype(np.float32), np.dtype(np.float16)):
            reducer = CandidateReducer(kernels, 84, 8400, dtype)
            for i, out in enumerate(outputs):
                full = out.astype(dtype)
                ref = full.astype(np.float32)
                d_full = cuda.mem_alloc(full.nbytes)
                cuda.memcpy_htod(d_full, full)
                for conf in (0.25, 0.5, 0.05, 0.001, 0.95):
                    reducer.enqueue(int(d_full), conf, stream)
                    stream.synchronize()
                    compact = reducer.result()
                    keep = np.flatnonzero(ref[0, 4:].max(axis=0) > conf)
                    counts.append(len(keep))
                    if compact.shape != (1, 84, len(keep)) or not np.array_equal(
                        compact[0], ref[0][:, keep]
                    ):
                        failures.append(
                            f"{dtype.name} frame {i} conf {conf}: columns differ "
                            f"({compact.shape[2]} vs {len(keep)})"
                        )
                        continue
                    for name, options in decodes:
                        cases += 1
                        a = decode_yolov8(ref, conf, 0.7, 300, **options)
                        b = decode_yolov8(compact, conf, 0.7, 300, **options)
                        if not _same(a, b):
                            failures.append(
                                f"{dtype.name} frame {i} conf {conf} {name}: detections differ"
                            )
                d_full.free()
            reducer.close()
    finally:
        kernels.close()
    print(
        f"{cases} decodes ({len(outputs)} frames x 5 thresholds x 4 decode modes x fp32/fp16); "
        f"candidates per frame {min(counts)}..{max(counts)} of 8400, written to mapped host "
        "memory"
    )
    assert not failures, _failures(failures)


def test_compaction_edge_cases(cuda: Any) -> None:
    """NaN, inf, scores exactly at the threshold, 1 class, 600 classes, N = 257 and N = 1."""
    from yolo_trt_ros.inference.tensorrt.gpu_preprocess import CandidateReducer, GpuKernels

    kernels = GpuKernels()
    stream = cuda.Stream()
    rng = np.random.default_rng(1)
    failures: list[str] = []
    try:
        for rows, n in ((5, 1000), (604, 300), (84, 257), (84, 1)):
            out = rng.random((1, rows, n), np.float32)
            out[0, :4] *= 640
            out[0, 4:, ::7] = 0.25  # ties with the threshold: not candidates (decode keeps > conf)
            out[0, rng.integers(0, rows, 5), rng.integers(0, n, 5)] = np.nan
            out[0, 4, rng.integers(0, n, 3)] = np.inf
            d_out = cuda.mem_alloc(out.nbytes)
            cuda.memcpy_htod(d_out, out)
            reducer = CandidateReducer(kernels, rows, n, np.dtype(np.float32))
            reducer.enqueue(int(d_out), 0.25, stream)
            stream.synchronize()
            compact = reducer.result()
            keep = np.flatnonzero(np.fmax.reduce(out[0, 4:], axis=0) > 0.25)
            same_columns = compact.shape[2] == len(keep) and np.array_equal(
                compact[0], out[0][:, keep], equal_nan=True
            )
            same_dets = _same(
                decode_yolov8(out, 0.25, 0.7, 300), decode_yolov8(compact, 0.25, 0.7, 300)
            )
            if not (same_columns and same_dets):
                failures.append(
                    f"rows {rows} n {n}: columns {same_columns}, detections {same_dets}"
                )
            reducer.close()
            d_out.free()
    finally:
        kernels.close()
    assert not failures, _failures(failures)


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_engine_output_exact_on_the_backend_stream(
    cuda: Any,
    kernels: DriverKernels,
    gpu: Gpu,
    frames: list[np.ndarray],
    tmp_path: Path,
    use_engine: UseEngine,
    version: str,
    api: str,
) -> None:
    tensors = [Letterbox((640, 640))(f, "bgr8")[0].copy() for f in frames]
    # ~1 ms of spinning first: a copy or synchronize on the wrong stream reads the poison
    executor = FormulaEngine(kernels, spin_cycles=2_000_000)
    use_engine(version, executor)
    backend = _backend(_write_engine(tmp_path / "formula.engine", version, gpu))
    try:
        assert backend.api == api
        worst = 0.0
        for x in tensors:
            with backend._ctx.active():
                poison(cuda, backend._out_buf.device, backend._out_buf.nbytes)
            got = backend.infer(x)
            expected = fake.expected_output(x, (1, 84, 8400))
            worst = max(worst, max_diff(got, expected))
            assert np.array_equal(got, expected), f"max |diff| {worst}"
        stream = int(backend._stream.handle)
    finally:
        backend.close()
    print(
        f"{len(tensors)} real frames, max |diff| {worst}, kernel launched on the backend's "
        f"stream {hex(stream)}"
    )
    launched = sorted(set(map(hex, executor.streams)))
    assert launched == [hex(stream)], f"kernel launched on {launched}, not {hex(stream)}"


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_fp16_io_engine_output_exact(
    kernels: DriverKernels,
    gpu: Gpu,
    frames: list[np.ndarray],
    tmp_path: Path,
    use_engine: UseEngine,
    version: str,
    api: str,
) -> None:
    """Half input and output buffers; the backend returns float32."""
    use_engine(version, FormulaEngine(kernels))
    backend = _backend(_write_engine(tmp_path / "formula16.engine", version, gpu, dtype="HALF"))
    x = Letterbox((640, 640))(frames[0], "bgr8")[0].copy()
    try:
        got = backend.infer(x)
        assert backend.api == api and backend.input_dtype == np.float16
    finally:
        backend.close()
    expected = fake.expected_output(x.astype(np.float16), (1, 84, 8400))
    assert got.dtype == np.float32
    assert np.array_equal(got, expected.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_dynamic_batch_output_exact(
    kernels: DriverKernels, gpu: Gpu, tmp_path: Path, use_engine: UseEngine, version: str, api: str
) -> None:
    """Batches 3, 1, 4, 2 in turn: rebinding and buffer growth."""
    use_engine(version, FormulaEngine(kernels))
    profile = [[1, 3, 64, 64], [1, 3, 64, 64], [4, 3, 64, 64]]
    engine = write_engine(
        tmp_path / "dynamic.engine", version, *gpu, [-1, 3, 64, 64], [-1, 84, 100], profile=profile
    )
    backend = _backend(engine)
    rng = np.random.default_rng(0)
    try:
        assert backend.api == api
        for batch in (3, 1, 4, 2):
            x = rng.random((batch, 3, 64, 64), np.float32)
            expected = fake.expected_output(x, (batch, 84, 100))
            assert np.array_equal(backend.infer(x), expected), f"batch {batch}"
    finally:
        backend.close()


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_infer_image_equals_the_cpu_path(
    cuda: Any,
    kernels: DriverKernels,
    gpu: Gpu,
    frames: list[np.ndarray],
    outputs: list[np.ndarray],
    tmp_path: Path,
    use_engine: UseEngine,
    version: str,
    api: str,
) -> None:
    """Raw frame upload, GPU letterbox into the engine input, compaction: the CPU path's
    detections, exactly."""
    rng = np.random.default_rng(2)
    executor = ReplayEngine(kernels)
    use_engine(version, executor)
    backend = _backend(_write_engine(tmp_path / "replay.engine", version, gpu), gpu_timing=True)
    failures: list[str] = []
    worst = 0.0
    sources: list[tuple[int, str, np.ndarray]] = []
    for i, frame in enumerate(frames):
        sources += [(i, enc, encode(frame, enc, rng)) for enc in ENCODINGS]
        # a non-contiguous view of another size
        sources.append((i, "bgr8 crop view", frame[40:440, 100:600]))
    try:
        assert backend.api == api
        assert backend.gpu_preprocessing, "GPU preprocessing kernels not built (see the log)"
        host_in = np.empty((1, 3, 640, 640), np.float32)
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
            diff = max_diff(host_in, Letterbox((640, 640))(image, enc)[0])
            worst = max(worst, diff)
            if not _same(ref, got):
                failures.append(f"frame {i} {label}: detections differ")
            if transform != letterbox_geometry(image.shape[:2], (640, 640)):
                failures.append(f"frame {i} {label}: transform {transform}")
            if diff > TOLERANCE:
                failures.append(
                    f"frame {i} {label}: engine input differs from the CPU "
                    f"letterbox by {diff * 255:.3f}/255"
                )
        times = backend.last_gpu_times
    finally:
        backend.close()
    print(
        f"{len(sources)} frames/encodings, crop view included; engine input buffer vs CPU "
        f"letterbox max {worst * 255:.3f}/255; last GPU times (ms) "
        + ", ".join(f"{k} {v:.3f}" for k, v in times.items())
    )
    assert not failures, _failures(failures)


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_infer_image_rectangles_of_a_dynamic_engine(
    cuda: Any,
    kernels: DriverKernels,
    gpu: Gpu,
    frames: list[np.ndarray],
    data_dir: Path,
    tmp_path: Path,
    use_engine: UseEngine,
    version: str,
    api: str,
) -> None:
    """An engine with dynamic height/width (the profile of a dynamic-size ONNX tuned for a
    640x480 camera): each frame is letterboxed on the GPU into its own stride-32 rectangle (the
    CPU ``Letterbox(stride=32)`` within 1/255), the engine is bound to it, the compaction of the
    smaller output decodes exactly like the whole output, and without a threshold the whole
    output comes back exactly (the path of end-to-end and YOLOv5 outputs)."""
    session, executor, backend = _dynamic_engine(
        data_dir, tmp_path, kernels, gpu, use_engine, version, max_batch=1
    )
    sources = {
        "640x480": frames[0],
        "1280x720": cv2.resize(frames[1], (1280, 720)),
        "400x480 crop view": frames[2][:, 100:500],
        "640x480 again": frames[1],
    }
    failures: list[str] = []
    shapes = []
    try:
        assert backend.api == api and backend.dynamic_hw and backend.gpu_preprocessing
        assert backend.input_shape == (1, 3, 640, 640)
        for label, image in sources.items():
            x, expected_transform = Letterbox((640, 640), stride=32)(image, "bgr8")
            real = session.run(None, {"images": np.ascontiguousarray(x)})[0]
            shapes.append(f"{label} -> {x.shape[3]}x{x.shape[2]}, output {list(real.shape)}")
            with backend._ctx.active():
                d_real = cuda.mem_alloc(real.nbytes)
                cuda.memcpy_htod(d_real, real)
                executor.source = int(d_real)
                candidates, transform = backend.infer_image(image, "bgr8", 0.25, 32)
                host_in = np.empty(x.shape, np.float32)
                cuda.memcpy_dtoh(host_in, backend._in_buf.device)
                whole, _ = backend.infer_image(image, "bgr8", None, 32)
                d_real.free()
            if transform != expected_transform:
                failures.append(f"{label}: transform {transform} != {expected_transform}")
            if max_diff(host_in, x) > TOLERANCE:
                failures.append(f"{label}: engine input differs by {max_diff(host_in, x) * 255}")
            if not np.array_equal(whole, real):
                failures.append(f"{label}: whole output differs")
            ref = decode_yolov8(real, 0.25, 0.7, 300)
            if not _same(ref, decode_yolov8(candidates, 0.25, 0.7, 300)) or not len(ref):
                failures.append(f"{label}: detections of the candidates differ ({len(ref)})")
    finally:
        backend.close()
    print("; ".join(shapes))
    assert not failures, _failures(failures)


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_infer_images_runs_several_cameras_as_one_batch(
    cuda: Any,
    kernels: DriverKernels,
    gpu: Gpu,
    frames: list[np.ndarray],
    data_dir: Path,
    tmp_path: Path,
    use_engine: UseEngine,
    version: str,
    api: str,
) -> None:
    """Several cameras' frames in one engine run: each frame letterboxed on the GPU into its slot
    of the batch input (the CPU letterbox within 1/255; their common rectangle, else the square),
    each slot's output compacted on its own and decoding exactly like that slot of the whole
    output, which also comes back exactly without a threshold."""
    session, executor, backend = _dynamic_engine(
        data_dir, tmp_path, kernels, gpu, use_engine, version, max_batch=4
    )
    wide = cv2.resize(frames[1], (1280, 720))
    batches = {
        "4 cameras, 640x480": (frames + frames)[:4],
        "2 cameras, 640x480": frames[:2],
        "3 cameras, 640x480 + 1280x720 + crop view": [frames[0], wide, frames[2][:, 100:500]],
    }
    failures: list[str] = []
    try:
        assert backend.api == api and backend.max_batch == 4 and backend.gpu_preprocessing
        for label, images in batches.items():
            sizes = {Letterbox((640, 640), stride=32)(i, "bgr8")[0].shape for i in images}
            letterbox = Letterbox((640, 640), stride=32 if len(sizes) == 1 else None)
            x = np.concatenate([letterbox(i, "bgr8")[0].copy() for i in images])
            real = session.run(None, {"images": x})[0]
            with backend._ctx.active():
                d_real = cuda.mem_alloc(real.nbytes)
                cuda.memcpy_htod(d_real, real)
                executor.source = int(d_real)
                got = backend.infer_images([(i, "bgr8") for i in images], 0.25, 32)
                host_in = np.empty(x.shape, np.float32)
                cuda.memcpy_dtoh(host_in, backend._in_buf.device)
                whole = backend.infer_images([(i, "bgr8") for i in images], None, 32)
                d_real.free()
            if max_diff(host_in, x) > TOLERANCE:
                failures.append(f"{label}: batch input differs by {max_diff(host_in, x) * 255}")
            for slot, ((candidates, _), (full, _)) in enumerate(zip(got, whole, strict=True)):
                ref = decode_yolov8(real[slot : slot + 1], 0.25, 0.7, 300)
                if not len(ref) or not _same(ref, decode_yolov8(candidates, 0.25, 0.7, 300)):
                    failures.append(f"{label}: slot {slot} detections differ ({len(ref)})")
                if not np.array_equal(full, real[slot : slot + 1]):
                    failures.append(f"{label}: slot {slot} whole output differs")
            print(f"{label}: batch input {list(x.shape)}, output {list(real.shape)}")
    finally:
        backend.close()
    assert not failures, _failures(failures)


@pytest.mark.parametrize(("version", "api"), ENGINE_APIS)
def test_configure_cleanup_cycles_leave_free_memory_unchanged(
    cuda: Any,
    kernels: DriverKernels,
    gpu: Gpu,
    frames: list[np.ndarray],
    tmp_path: Path,
    use_engine: UseEngine,
    version: str,
    api: str,
) -> None:
    cycles = 20
    use_engine(version, FormulaEngine(kernels))
    engine = _write_engine(tmp_path / "memory.engine", version, gpu)
    x = Letterbox((640, 640))(frames[0], "bgr8")[0]

    def cycle() -> TensorRTBackend:
        backend = _backend(engine)
        backend.infer(x)
        backend.infer_image(frames[0], "bgr8", 0.25)
        return backend

    cycle().close()  # warm-up: CUDA runtime, pycuda's compiler cache, module loading
    base = cuda.mem_get_info()[0]
    held = cycle()
    held_bytes = base - cuda.mem_get_info()[0]
    reported = held.device_memory_bytes
    held.close()
    drift = []
    for _ in range(cycles):
        cycle().close()
        drift.append(base - cuda.mem_get_info()[0])
    mib = 2**20
    print(
        f"free before {base / mib:.1f} MiB; one open backend holds {held_bytes / mib:.1f} MiB "
        f"(it reports {reported / mib:.1f} MiB); drift after each of {cycles} cycles (bytes): "
        f"{sorted(set(drift))}"
    )
    assert held_bytes > 0
    assert all(d == 0 for d in drift), f"free device memory drifted by {sorted(set(drift))} bytes"
