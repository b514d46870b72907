"""TensorRT backend: a raw TensorRT runtime (through ``compat``) with pycuda buffers and one
CUDA stream.

Per frame: pinned host -> device copy, ``execute_async``, device -> pinned host copy, all on one
stream with a single synchronize. With ``gpu_preprocess`` the raw uint8 frame is uploaded instead
and letterboxed on the GPU straight into the engine input, and for a one-to-many output only the
candidate anchors come back (``infer_image``). An engine whose profile leaves the input height and
width free (``dynamic_hw``) runs each frame at its own input size (the rectangular letterbox).

The backend owns its CUDA context (the device's primary context) and pushes/pops it around every
call, so any thread may call it (one at a time); ``close`` releases every allocation, the engine
and the context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from yolo_trt_ros.detection.encodings import checked_frame
from yolo_trt_ros.detection.letterbox import LetterboxTransform, rect_input_hw
from yolo_trt_ros.inference.base import ModelError, check_output_shape, resolve_input_shape
from yolo_trt_ros.inference.tensorrt.builder import BuildOptions, ensure_engine
from yolo_trt_ros.inference.tensorrt.compat import (
    EngineDeserializeError,
    EngineRunner,
    TensorInfo,
    load_engine,
)
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext
from yolo_trt_ros.inference.tensorrt.engine_cache import read_engine_plan
from yolo_trt_ros.inference.tensorrt.gpu_preprocess import (
    CandidateReducer,
    FrameUploader,
    GpuKernels,
    GpuLetterbox,
    free_pinned,
)

_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float16))
_T = TypeVar("_T")


class _Buffer:
    """A device allocation and its pinned host twin, both grown on demand."""

    def __init__(self, cuda: Any, dtype: np.dtype):
        self._cuda = cuda
        self.dtype = dtype
        self.capacity = 0
        self.device: Any = None
        self.host: np.ndarray = np.empty(0, dtype)

    def ensure(self, count: int) -> bool:
        """Make room for ``count`` elements; True when the device address changed."""
        if count <= self.capacity:
            return False
        self.free()
        self.device = self._cuda.mem_alloc(count * self.dtype.itemsize)
        self.host = self._cuda.pagelocked_empty(count, self.dtype)
        self.capacity = count
        return True

    @property
    def nbytes(self) -> int:
        return self.capacity * self.dtype.itemsize

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
            free_pinned(self.host)
        self.device, self.host, self.capacity = None, np.empty(0, self.dtype), 0


class TensorRTBackend:
    """A YOLOv8 detection engine (from ``.engine``, or built and cached from ``.onnx``) on CUDA
    device ``device``.

    ``precision``, ``max_batch`` and ``workspace_mb`` (None: the GPU's default, smaller on a
    Jetson) apply when an engine is built from an ``.onnx`` (precision and max batch select and
    fingerprint its cache slot); an ``.engine`` runs as built (its sidecar says how). A cached
    engine that TensorRT cannot deserialize is rebuilt once; an ``.engine`` given directly is
    not.

    An ``.onnx`` with dynamic height/width gets (``rect``) a profile spanning every rectangular
    letterbox size, from the model's largest stride up to its nominal size (``dynamic_hw``), tuned
    for the rectangular input of a ``camera_hw`` (height, width) image (default: the nominal
    square); ``rect`` False builds the nominal size only.

    Raises ModelError naming the file and the problem (refused engine, build failure, wrong I/O, no
    GPU, ...). ``infer`` returns a view of a pinned buffer that the next call overwrites.
    ``gpu_timing`` records CUDA events around the stages of ``infer_image`` (``last_gpu_times``; a
    few microseconds per frame).
    """

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | Path,
        precision: str = "fp16",
        *,
        device: int = 0,
        max_batch: int = 1,
        workspace_mb: int | None = None,
        rect: bool = True,
        camera_hw: tuple[int, int] | None = None,
        gpu_preprocess: bool = True,
        gpu_timing: bool = False,
        log: logging.Logger | None = None,
    ):
        self.model_path = Path(model_path)
        self._log = log or logging.getLogger("yolo_trt_ros.tensorrt")
        self._ctx: CudaContext | None = None
        self._runner: EngineRunner | None = None
        self._gpu: _GpuPath | None = None
        self._buffers: list[_Buffer] = []
        self._stream: Any = None
        self.metadata: dict[str, str] = {}
        self.dynamic_hw = False
        self.max_batch = 1
        self.device_memory_bytes = 0
        if not self.model_path.is_file():
            raise ModelError(f"model {self.model_path}: file not found")
        try:
            import pycuda.driver as cuda

            self._cuda: Any = cuda
            self._ctx = CudaContext(device)
            with self._ctx.active():
                free_before = cuda.mem_get_info()[0]
                options = BuildOptions(
                    precision, workspace_mb, max_batch, rect=rect, camera_hw=camera_hw
                )
                self._load(options)
                if gpu_preprocess:
                    self._gpu = _GpuPath.start(self, gpu_timing, self._log)
                self.device_memory_bytes = max(0, free_before - cuda.mem_get_info()[0])
        except ModelError:
            self.close()
            raise
        except (
            Exception
        ) as exc:  # TensorRT, pycuda and cache errors all become one ModelError line
            self.close()
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"model {self.model_path}: {text}") from exc

    def _load(self, options: BuildOptions) -> None:
        assert self._ctx is not None
        engine_path, record = ensure_engine(self.model_path, options, self._ctx, self._log)
        plan, header = read_engine_plan(engine_path)
        try:
            runner = self._runner = load_engine(plan, self._log)
        except EngineDeserializeError as exc:
            if self.model_path.suffix.lower() != ".onnx":
                raise
            self._log.warning(
                "TensorRT engine cache: %s does not load (%s); rebuilding it once",
                engine_path,
                exc,
            )
            engine_path, record = ensure_engine(
                self.model_path, options, self._ctx, self._log, str(record["engine_sha256"])
            )
            plan, header = read_engine_plan(engine_path)
            runner = self._runner = load_engine(plan, self._log)
        self.engine_path = engine_path
        self.precision = str(record.get("precision", "unknown"))
        self.tensorrt_version = str(record.get("tensorrt_version"))
        self.gpu_name = self._ctx.device_name
        self.metadata = {**record.get("metadata", {}), **header}
        self.api = runner.api
        inputs, outputs = runner.inputs, runner.outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"model {self.model_path}: engine has inputs "
                f"({', '.join(t.name for t in inputs)}) and outputs "
                f"({', '.join(t.name for t in outputs)}); YOLOv8 detection needs one of each"
            )
        self._in, self._out = inputs[0], outputs[0]
        for t in (self._in, self._out):
            if t.dtype not in _FLOAT_TYPES:
                raise ModelError(
                    f"model {self.model_path}: tensor '{t.name}' is {t.dtype}; need float32 or "
                    "float16"
                )
        self.input_dtype: np.dtype = self._in.dtype
        self.input_shape = resolve_input_shape(
            self.model_path, self._in.name, _batch1(self._in), self.metadata
        )
        self.dynamic_hw = _spans_hw(self._in)
        assert self._in.profile is not None
        self.max_batch = int(self._in.profile[2][0])
        self._stream = self._cuda.Stream()
        self._in_buf = _Buffer(self._cuda, self._in.dtype)
        self._out_buf = _Buffer(self._cuda, self._out.dtype)
        self._buffers = [self._in_buf, self._out_buf]
        self._shape: tuple[int, ...] = ()
        self._bind(self.input_shape)
        self.output_shape: tuple[int, ...] = self._out_shape
        check_output_shape(self.model_path, self._out.name, self.output_shape)
        self._log.info(
            "TensorRT %s engine %s (%s API): input %s %s, output %s %s, on %s",
            self.precision,
            engine_path,
            self.api,
            list(self.input_shape),
            self.input_dtype,
            list(self.output_shape),
            self._out.dtype,
            self.gpu_name,
        )

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Set the input shape, grow the buffers to fit and bind their device addresses."""
        assert self._runner is not None
        self._runner.set_input_shape(self._in.name, shape)
        out_shape = self._runner.shape(self._out.name)
        if any(d < 0 for d in out_shape):
            raise ModelError(
                f"model {self.model_path}: output shape {list(out_shape)} unresolved for input "
                f"{shape}"
            )
        if self._in_buf.ensure(int(np.prod(shape))) or not self._shape:
            self._runner.set_address(self._in.name, int(self._in_buf.device))
        if self._out_buf.ensure(int(np.prod(out_shape))) or not self._shape:
            self._runner.set_address(self._out.name, int(self._out_buf.device))
        self._shape, self._out_shape = tuple(shape), tuple(out_shape)
        self._out_f32 = (
            np.empty(self._out_shape, np.float32) if self._out.dtype != np.float32 else None
        )

    @property
    def gpu_preprocessing(self) -> bool:
        """True when ``infer_image`` (GPU letterbox + candidate compaction) is available."""
        return self._gpu is not None

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run a (B, 3, H, W) tensor (B within the engine profile); returns (B, 4+nc, N)
        float32."""
        ctx = self._live()
        with ctx.active():
            if tuple(tensor.shape) != self._shape:
                self._bind(tuple(int(d) for d in tensor.shape))
            count = int(np.prod(self._shape))
            host_in = self._in_buf.host[:count].reshape(self._shape)
            np.copyto(host_in, tensor, casting="same_kind")
            self._cuda.memcpy_htod_async(self._in_buf.device, host_in, self._stream)
            self._execute()
            host_out = self._enqueue_download()
            self._stream.synchronize()
        return self._as_float32(host_out)

    def infer_image(
        self,
        image: np.ndarray,
        encoding: str,
        conf_threshold: float | None,
        stride: int | None = None,
    ) -> tuple[np.ndarray, LetterboxTransform]:
        """GPU path for one raw uint8 frame: upload, letterbox on the GPU (with ``stride``, on a
        ``dynamic_hw`` engine: into the smallest stride-multiple rectangle), run. With
        ``conf_threshold`` (one-to-many outputs) only the anchors whose best score exceeds it come
        back: the (1, 4+nc, K) float32 candidates, which decode to the same detections as the full
        output; with None, the whole output. Also returns the letterbox geometry. ValueError for a
        bad frame."""
        return self.infer_images([(image, encoding)], conf_threshold, stride)[0]

    def infer_images(
        self,
        frames: Sequence[tuple[np.ndarray, str]],
        conf_threshold: float | None,
        stride: int | None = None,
    ) -> list[tuple[np.ndarray, LetterboxTransform]]:
        """``infer_image`` for up to ``max_batch`` frames (several cameras) in one engine run:
        each frame is uploaded and letterboxed on the GPU into its slot of the engine input, at
        one input size for all (the frames' common rectangle, else the nominal size); per frame
        its output (valid until the next call) and letterbox geometry."""
        ctx = self._live()
        if self._gpu is None:
            raise RuntimeError("GPU preprocessing is not available for this backend")
        images = [(checked_frame(image, encoding), encoding) for image, encoding in frames]
        hw = (self.input_shape[2], self.input_shape[3])
        if stride:
            sizes = {rect_input_hw(image.shape[:2], hw, stride) for image, _ in images}
            hw, stride = (sizes.pop(), stride) if len(sizes) == 1 else (hw, None)
        with ctx.active():
            if self._shape != (len(images), 3, *hw):
                self._bind((len(images), 3, *hw))
            return self._gpu.run(images, conf_threshold, stride)

    def _enqueue_download(self) -> np.ndarray:
        """Queue the copy of the whole output into its pinned buffer; returns that buffer's view
        (valid once the stream synchronized)."""
        host_out = self._out_buf.host[: int(np.prod(self._out_shape))].reshape(self._out_shape)
        self._cuda.memcpy_dtoh_async(host_out, self._out_buf.device, self._stream)
        return host_out

    def _as_float32(self, host_out: np.ndarray) -> np.ndarray:
        if self._out_f32 is None:
            return host_out
        np.copyto(self._out_f32, host_out)
        return self._out_f32

    @property
    def last_gpu_times(self) -> dict[str, float]:
        """With ``gpu_timing``: milliseconds (CUDA events) of the last ``infer_image`` stages
        (upload+letterbox, engine, compaction or copy of the output); else empty."""
        return dict(self._gpu.times) if self._gpu is not None else {}

    def _execute(self) -> None:
        assert self._runner is not None
        self._runner.execute_async(int(self._stream.handle))

    def _live(self) -> CudaContext:
        if self._ctx is None or self._runner is None:
            raise RuntimeError(f"model {self.model_path}: backend is closed")
        return self._ctx

    def diagnostics(self) -> dict[str, str]:
        """Key/values for the node's diagnostics: GPU, TensorRT, precision, device memory held, GPU
        path."""
        out = {
            "gpu": self.gpu_name if self._ctx is not None else "",
            "tensorrt": self.tensorrt_version,
            "engine_precision": self.precision,
            "engine": str(self.engine_path),
            "gpu_memory_mb": f"{self.device_memory_bytes / 2**20:.1f}",
            "gpu_preprocess": "on" if self._gpu is not None else "off",
        }
        return out

    def close(self) -> None:
        """Free every buffer, the kernels, the engine and the stream, then release the CUDA
        context."""
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        try:
            if not ctx.closed:
                with ctx.active():
                    if self._gpu is not None:
                        self._gpu.close()
                    for buffer in self._buffers:
                        buffer.free()
                    if self._runner is not None:
                        self._runner.close()
                    self._gpu, self._runner, self._stream, self._buffers = None, None, None, []
        finally:
            ctx.close()


def _batch1(info: TensorInfo) -> list[int | None]:
    """The input shape at batch 1: a dynamic height/width that the profile spans is the
    profile's maximum (the nominal size; smaller rectangles run too), other dynamic dims the opt
    shape's."""
    assert info.profile is not None
    opt, high = info.profile[1], info.profile[2]
    spans = _spans_hw(info)
    dims: list[int | None] = [
        d if d >= 0 else (high if spans and i >= 2 else opt)[i] for i, d in enumerate(info.shape)
    ]
    if dims:
        dims[0] = 1
    return dims


def _spans_hw(info: TensorInfo) -> bool:
    """Whether the profile of an image input lets its height or width vary."""
    assert info.profile is not None
    low, _, high = info.profile
    return len(info.shape) == 4 and any(low[i] != high[i] for i in (2, 3))


class _GpuPath:
    """Upload + GPU letterbox into the engine input, engine, then candidate compaction or the
    whole output back; timed with CUDA events."""

    def __init__(self, backend: TensorRTBackend, timing: bool):
        self._backend = backend
        cuda = backend._cuda
        self.kernels = GpuKernels()
        # per batch slot, made on first use; reducers: one-to-many outputs only
        self.uploaders: list[FrameUploader] = []
        self.letterboxes: list[GpuLetterbox] = []
        self.reducers: list[CandidateReducer] = []
        self._events = [cuda.Event() for _ in range(4)] if timing else []
        self.times: dict[str, float] = {}

    @classmethod
    def start(cls, backend: TensorRTBackend, timing: bool, log: logging.Logger) -> _GpuPath | None:
        """The GPU path, or None (logged) when its kernels cannot be built here, e.g. without
        nvcc."""
        try:
            return cls(backend, timing)
        except Exception as exc:  # pycuda compile errors, missing nvcc
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("GPU preprocessing disabled, using the CPU letterbox: %s", first)
            return None

    def run(
        self, images: Sequence[tuple[np.ndarray, str]], conf: float | None, stride: int | None
    ) -> list[tuple[np.ndarray, LetterboxTransform]]:
        """``infer_images`` once the engine is bound to the batch's input shape."""
        b = self._backend
        stream = b._stream
        events = self._events
        if events:
            events[0].record(stream)
        slot_in = int(np.prod(b._shape[1:])) * b.input_dtype.itemsize
        transforms = []
        for slot, (image, encoding) in enumerate(images):
            src = self._slot(self.uploaders, slot, FrameUploader).upload(image, stream)
            letterbox = self._slot(
                self.letterboxes,
                slot,
                lambda: GpuLetterbox(self.kernels, b.input_shape[2:], b.input_dtype),
            )
            dst = int(b._in_buf.device) + slot * slot_in
            transform = letterbox(src, image.shape[:2], encoding, dst, stream, stride=stride)
            transforms.append(transform)
        if events:
            events[1].record(stream)
        b._execute()
        if events:
            events[2].record(stream)
        if conf is None:
            host_out = b._enqueue_download()
        else:
            _, rows, anchors = b.output_shape  # the nominal size: the most anchors
            slot_out = int(np.prod(b._out_shape[1:])) * b._out.dtype.itemsize
            for slot in range(len(images)):
                reducer = self._slot(
                    self.reducers,
                    slot,
                    lambda: CandidateReducer(self.kernels, rows, anchors, b._out.dtype),
                )
                output = int(b._out_buf.device) + slot * slot_out
                reducer.enqueue(output, conf, stream, n=b._out_shape[2])
        if events:
            events[3].record(stream)
        stream.synchronize()
        if conf is None:
            whole = b._as_float32(host_out)
            outputs = [whole[i : i + 1] for i in range(len(images))]
        else:
            outputs = [self.reducers[slot].result() for slot in range(len(images))]
        if events:
            self.times = {
                name: events[i + 1].time_since(events[i])
                for i, name in enumerate(("preprocess", "infer", "output"))
            }
        return list(zip(outputs, transforms, strict=True))

    @staticmethod
    def _slot(items: list[_T], slot: int, make: Callable[[], _T]) -> _T:
        """``items[slot]``, made (and the list grown) on first use."""
        while len(items) <= slot:
            items.append(make())
        return items[slot]

    def close(self) -> None:
        for reducer in self.reducers:
            reducer.close()
        for uploader in self.uploaders:
            uploader.close()
        self.reducers, self.uploaders, self.letterboxes = [], [], []
        self.kernels.close()
        self._events = []
