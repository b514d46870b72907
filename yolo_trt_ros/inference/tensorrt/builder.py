"""Build TensorRT engines from ONNX with TensorRT's ONNX parser, and keep the engine cache filled.

``ensure_engine`` is what the backend calls for a model path (``.onnx``: reuse or build the cached
engine; ``.engine``: check its sidecar). ``register`` adds the ``build-engine`` subcommand to the
``yolo-trt-ros`` CLI:

    yolo-trt-ros build-engine --onnx M.onnx [--fp16 | --int8 --calib-dir DIR] [--workspace MB]
    [--max-batch N]
    yolo-trt-ros build-engine --adopt M.engine [--fp16 | --int8]   # sidecar for an engine built
    here by another tool

A build logs its progress on the "yolo_trt_ros.tensorrt" logger: TensorRT's build phases
(``IProgressMonitor``, TensorRT >= 10) or, before 10, a heartbeat line every ``HEARTBEAT_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolo_trt_ros import __version__
from yolo_trt_ros.detection.letterbox import rect_input_hw
from yolo_trt_ros.detection.model_layout import check_layout
from yolo_trt_ros.inference.base import ModelError, has_dynamic_hw, resolve_input_shape
from yolo_trt_ros.inference.onnx_info import read_onnx_info
from yolo_trt_ros.inference.selection import device_tree_model
from yolo_trt_ros.inference.tensorrt import compat as trt_compat
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext
from yolo_trt_ros.inference.tensorrt.engine_cache import (
    EngineSpec,
    Platform,
    profile_for,
    read_engine_plan,
    resolve_engine,
    sha256_file,
    write_atomic,
    write_sidecar,
)
from yolo_trt_ros.inference.tensorrt.int8_calibrator import CALIBRATORS

DEFAULT_WORKSPACE_MB = 2048
"""Builder workspace limit on a discrete GPU."""
INTEGRATED_WORKSPACE_MB = 1024
"""Builder workspace limit on an integrated GPU (Jetson), whose memory the camera, DDS and the
other nodes share."""
JETSON_COMPUTE_CAPABILITIES = ("5.3", "6.2", "7.2", "8.7")
"""Nano, TX2, Xavier, Orin: integrated GPUs, for a pycuda without the INTEGRATED attribute."""
HEARTBEAT_S = 30.0
"""Seconds between "still building" lines where TensorRT has no progress monitor (< 10)."""
PROGRESS_LOG = logging.getLogger("yolo_trt_ros.tensorrt.build")
"""Engine build progress (a child of the backend's logger: the node shows it on /diagnostics)."""
_ONNX_FLOAT16 = 10


class BuildError(RuntimeError):
    """The engine could not be built; the message names the model and the reason."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build: precision (fp32/fp16/int8), workspace limit (None: ``default_workspace_mb``
    of the GPU), max batch of a dynamic-batch model, nominal input size for dynamic H/W (default:
    the model's ``imgsz`` metadata, else 640), INT8 calibration images, cache and calibrator (one
    of CALIBRATORS; minmax, as Ultralytics uses for YOLO).

    A model with dynamic H/W gets, with ``rect`` (the default), a profile spanning every
    rectangular letterbox size (the model's largest stride up to the nominal size) whose opt shape
    is the rectangular input of a ``camera_hw`` image (default: the nominal square); without
    ``rect``, the nominal size only."""

    precision: str = "fp16"
    workspace_mb: int | None = None
    max_batch: int = 1
    imgsz: tuple[int, int] | None = None
    calib_dir: Path | None = None
    calib_cache: Path | None = None
    calibrator: str = "minmax"
    rect: bool = True
    camera_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.calibrator not in CALIBRATORS:
            raise ValueError(
                f"calibrator must be one of {', '.join(CALIBRATORS)}, got {self.calibrator!r}"
            )


def current_platform(cuda: CudaContext) -> Platform:
    """This machine as an engine records it: TensorRT version, GPU name, compute capability, SM
    count (0 where pycuda cannot say), total memory in GiB and the device-tree model."""
    import tensorrt as trt

    return Platform(
        trt.__version__,
        cuda.device_name,
        cuda.compute_capability,
        _device_attribute(cuda, "MULTIPROCESSOR_COUNT") or 0,
        round(cuda.total_memory / 2**30),
        device_tree_model(),
    )


def _device_attribute(cuda: CudaContext, name: str) -> int | None:
    """pycuda's ``Device.get_attribute(device_attribute.<name>)``; None where pycuda lacks it."""
    import pycuda.driver as driver

    attribute = getattr(getattr(driver, "device_attribute", None), name, None)
    device = driver.Device(cuda.device_index)
    if attribute is None or not hasattr(device, "get_attribute"):
        return None
    return int(device.get_attribute(attribute))


def is_integrated(cuda: CudaContext) -> bool:
    """True for a GPU that shares the system memory (Jetson): pycuda's INTEGRATED device
    attribute, else a Jetson compute capability."""
    integrated = _device_attribute(cuda, "INTEGRATED")
    if integrated is not None:
        return bool(integrated)
    return cuda.compute_capability in JETSON_COMPUTE_CAPABILITIES


def default_workspace_mb(cuda: CudaContext) -> int:
    """The builder workspace limit when none is given: ``INTEGRATED_WORKSPACE_MB`` (1024) on an
    integrated GPU such as a Jetson (``is_integrated``), where the build shares memory with the
    camera and DDS processes, else ``DEFAULT_WORKSPACE_MB`` (2048)."""
    return INTEGRATED_WORKSPACE_MB if is_integrated(cuda) else DEFAULT_WORKSPACE_MB


def engine_spec(onnx_path: Path, options: BuildOptions, platform: Platform) -> EngineSpec:
    """What an engine of ``onnx_path`` built with ``options`` on ``platform`` records (no TensorRT
    needed).

    ModelError for a model that the detector would refuse anyway (inputs, outputs, output layout),
    before any build.
    """
    try:
        info = read_onnx_info(onnx_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {onnx_path}: {exc}") from exc
    if len(info.inputs) != 1:
        names = ", ".join(i.name for i in info.inputs)
        raise ModelError(
            f"model {onnx_path}: has {len(info.inputs)} inputs ({names}); YOLOv8 needs one image "
            "input"
        )
    inp = info.inputs[0]
    dims = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
    if options.imgsz is not None and len(dims) == 4:
        dims[2] = dims[2] or options.imgsz[0]
        dims[3] = dims[3] or options.imgsz[1]
    _, _, h, w = resolve_input_shape(onnx_path, inp.name, dims, info.metadata)
    layout = None
    if info.outputs:
        layout = check_layout(onnx_path, (1, 3, h, w), info.outputs[0].shape, info.metadata)
    if len(info.outputs) != 1:
        names = ", ".join(o.name for o in info.outputs)
        raise ModelError(
            f"model {onnx_path}: has {len(info.outputs)} outputs ({names}); only single-output "
            "YOLOv8 "
            "detection models are supported"
        )
    rect = None
    if options.rect and layout is not None and has_dynamic_hw(inp.shape):
        stride = max(layout.strides)
        camera = options.camera_hw or (h, w)
        rect = (stride, rect_input_hw(camera, (h, w), stride))
    try:
        profile = profile_for([(inp.name, inp.shape)], options.max_batch, (h, w), rect)
    except ValueError as exc:
        raise ModelError(f"model {onnx_path}: {exc}") from exc
    return EngineSpec.for_platform(platform, sha256_file(onnx_path), options.precision, profile)


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    spec: EngineSpec,
    options: BuildOptions,
    cuda: CudaContext,
    log: logging.Logger,
) -> dict[str, Any]:
    """Parse ``onnx_path``, build it as ``spec`` says and write the plan to ``engine_path``
    (atomically).

    Returns the extra sidecar fields: the ONNX metadata (class names, ...) and the build settings.
    Needs the CUDA context ``cuda`` current. BuildError names the model and the reason; a
    precision this TensorRT cannot build is refused before anything is created.
    """
    import tensorrt as trt

    try:
        trt_compat.check_precision(spec.precision)
    except trt_compat.TensorRTError as exc:
        raise BuildError(f"model {onnx_path}: {exc}") from exc
    if spec.precision == "int8" and options.calib_dir is None:
        raise BuildError(
            "INT8 needs calibration images: pass --calib-dir DIR (a few hundred frames from your "
            "camera)"
        )
    workspace_mb = options.workspace_mb
    if workspace_mb is None:
        workspace_mb = default_workspace_mb(cuda)
    info = read_onnx_info(onnx_path)
    logger = trt_compat.trt_logger(log)
    builder = trt.Builder(logger)
    network = trt_compat.create_network(builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(
            f"model {onnx_path}: TensorRT {trt.__version__}'s ONNX parser failed: {errors}"
        )
    config = builder.create_builder_config()
    trt_compat.set_workspace(config, workspace_mb << 20)
    profile = trt_compat.add_profile(builder, config, network, spec.profile)
    monitor = trt_compat.progress_monitor(PROGRESS_LOG)
    if monitor is not None:
        config.progress_monitor = monitor
    calibrator = _calibrator(info.inputs[0].elem_type, spec, options, engine_path, log)
    plan: bytes | None = None
    failure: trt_compat.TensorRTError | None = None
    try:
        trt_compat.set_precision(builder, config, spec.precision, calibrator, log)
        if calibrator is not None and profile is not None:
            config.set_calibration_profile(profile)
        PROGRESS_LOG.info(
            "building %s engine from %s with TensorRT %s, workspace %d MiB (this takes minutes)",
            spec.precision,
            onnx_path,
            trt.__version__,
            workspace_mb,
        )
        started = time.monotonic()
        with _heartbeat(monitor is None):
            plan = trt_compat.build_serialized(builder, network, config)
        PROGRESS_LOG.info("engine built in %.0f s", time.monotonic() - started)
    except trt_compat.TensorRTError as exc:
        failure = exc
    finally:
        if calibrator is not None:
            calibrator.free()
    if calibrator is not None and calibrator.error is not None:
        error = calibrator.error
        raise BuildError(
            f"model {onnx_path}: INT8 calibration failed: {type(error).__name__}: {error}"
        ) from error
    if plan is None:
        raise BuildError(f"model {onnx_path}: {failure}") from failure
    write_atomic(engine_path, plan)
    log.info("wrote %s (%.1f MB)", engine_path, len(plan) / 1e6)
    extra: dict[str, Any] = {
        "metadata": info.metadata,
        "build": {
            "workspace_mb": workspace_mb,
            "max_batch": options.max_batch,
            "onnx": str(onnx_path),
            "yolo_trt_ros": __version__,
        },
    }
    if calibrator is not None:
        extra["calibration"] = {
            "dir": str(options.calib_dir),
            "cache": str(_calib_cache(options, engine_path)),
            "calibrator": options.calibrator,
        }
    return extra


@contextmanager
def _heartbeat(enabled: bool) -> Iterator[None]:
    """While enabled, log "still building" every HEARTBEAT_S seconds until the block ends."""
    if not enabled:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            PROGRESS_LOG.info(
                "building engine: still running (%.0f s)", time.monotonic() - started
            )

    thread = threading.Thread(target=beat, name="engine-build-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _calib_cache(options: BuildOptions, engine_path: Path) -> Path:
    return options.calib_cache or engine_path.with_suffix(".calib")


def _calibrator(
    elem_type: int, spec: EngineSpec, options: BuildOptions, engine_path: Path, log: logging.Logger
) -> Any:
    """The INT8 calibrator of the build (see ``int8_calibrator.make_calibrator``), None for other
    precisions."""
    if spec.precision != "int8" or options.calib_dir is None:
        return None
    import numpy as np

    from yolo_trt_ros.inference.tensorrt.int8_calibrator import (
        CalibrationCache,
        CalibrationImages,
        calibration_key,
        make_calibrator,
    )

    shape = next(iter(spec.profile.values()))["opt"]
    dtype = np.dtype(np.float16 if elem_type == _ONNX_FLOAT16 else np.float32)
    images = CalibrationImages(
        options.calib_dir, (int(shape[2]), int(shape[3])), int(shape[0]), dtype
    )
    key = calibration_key(spec.onnx_sha256, images, options.calibrator, spec.tensorrt_version)
    cache = CalibrationCache(_calib_cache(options, engine_path), key, log)
    return make_calibrator(options.calibrator, images, cache, log)


def ensure_engine(
    model_path: Path,
    options: BuildOptions,
    cuda: CudaContext,
    log: logging.Logger,
    failed_sha256: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The engine to load for ``model_path`` and its sidecar record: a checked ``.engine``, or the
    cached engine of an ``.onnx`` (built now when missing, stale, or the engine ``failed_sha256``
    that did not deserialize). Needs the CUDA context current."""
    platform = current_platform(cuda)
    return resolve_engine(
        model_path,
        lambda onnx: engine_spec(onnx, options, platform),
        platform,
        lambda onnx, engine, spec: build_engine(onnx, engine, spec, options, cuda, log),
        log.info,
        failed_sha256,
    )


def adopt_engine(
    engine_path: Path, precision: str, cuda: CudaContext, log: logging.Logger
) -> Path:
    """Write a sidecar for an engine built on this machine by another tool (e.g. ``yolo export
    format=engine``).

    The engine is deserialized here first, so only an engine this TensorRT can load is adopted; its
    profile is read from the engine. The ONNX hash is unknown (empty).
    """
    plan, header = read_engine_plan(engine_path)
    runner = trt_compat.load_engine(plan, log)
    try:
        profile = {
            t.name: {"min": list(p[0]), "opt": list(p[1]), "max": list(p[2])}
            for t in runner.inputs
            if (p := t.profile) is not None
        }
    finally:
        runner.close()
    spec = EngineSpec.for_platform(current_platform(cuda), "", precision, profile)
    return write_sidecar(engine_path, spec, {"metadata": header, "adopted": True})
