"""Build TensorRT engines from ONNX with TensorRT's ONNX parser, and keep the engine cache filled.

``ensure_engine`` is what the backend calls for a model path (``.onnx``: reuse or build the cached
engine; ``.engine``: check its sidecar). ``register`` adds the ``build-engine`` subcommand to the
``yolo-trt-ros`` CLI:

    yolo-trt-ros build-engine --onnx M.onnx [--fp16 | --int8 --calib-dir DIR] [--workspace MB]
    [--max-batch N]
    yolo-trt-ros build-engine --adopt M.engine [--fp16 | --int8]   # sidecar for an engine built
    here by another tool
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_trt_ros import __version__
from yolo_trt_ros.detection.model_layout import check_layout
from yolo_trt_ros.inference.base import ModelError, resolve_input_shape
from yolo_trt_ros.inference.onnx_info import read_onnx_info
from yolo_trt_ros.inference.tensorrt import compat as trt_compat
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext
from yolo_trt_ros.inference.tensorrt.engine_cache import (
    EngineSpec,
    Platform,
    profile_for,
    read_engine_plan,
    resolve_engine,
    sha256_file,
    write_sidecar,
)

if TYPE_CHECKING:
    import tensorrt as trt

DEFAULT_WORKSPACE_MB = 2048
_ONNX_FLOAT16 = 10


class BuildError(RuntimeError):
    """The engine could not be built; the message names the model and the reason."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build: precision (fp32/fp16/int8), workspace limit, max batch of a dynamic-batch
    model, input size for dynamic H/W (default: the model's ``imgsz`` metadata, else 640), INT8
    calibration images and cache."""

    precision: str = "fp16"
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    max_batch: int = 1
    imgsz: tuple[int, int] | None = None
    calib_dir: Path | None = None
    calib_cache: Path | None = None


def current_platform(cuda: CudaContext) -> Platform:
    import tensorrt as trt

    return Platform(trt.__version__, cuda.device_name, cuda.compute_capability)


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
    if info.outputs:
        check_layout(onnx_path, (1, 3, h, w), info.outputs[0].shape, info.metadata)
    if len(info.outputs) != 1:
        names = ", ".join(o.name for o in info.outputs)
        raise ModelError(
            f"model {onnx_path}: has {len(info.outputs)} outputs ({names}); only single-output "
            "YOLOv8 "
            "detection models are supported"
        )
    profile = profile_for([(inp.name, inp.shape)], options.max_batch, (h, w))
    return EngineSpec.for_platform(platform, sha256_file(onnx_path), options.precision, profile)


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    spec: EngineSpec,
    options: BuildOptions,
    log: logging.Logger,
) -> dict[str, Any]:
    """Parse ``onnx_path``, build it as ``spec`` says and write the plan to ``engine_path``
    (atomically).

    Returns the extra sidecar fields: the ONNX metadata (class names, ...) and the build settings.
    Needs the CUDA context current.
    """
    import tensorrt as trt

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
    trt_compat.set_workspace(config, options.workspace_mb << 20)
    profile = trt_compat.add_profile(builder, config, spec.profile)
    calibrator, release = _calibrator(info.inputs[0].elem_type, spec, options, engine_path, log)
    extra: dict[str, Any] = {
        "metadata": info.metadata,
        "build": {
            "workspace_mb": options.workspace_mb,
            "max_batch": options.max_batch,
            "onnx": str(onnx_path),
            "yolo_trt_ros": __version__,
        },
    }
    try:
        trt_compat.set_precision(builder, config, spec.precision, calibrator, log)
        if calibrator is not None and profile is not None:
            config.set_calibration_profile(profile)
        log.info(
            "building %s engine from %s with TensorRT %s (this takes minutes)",
            spec.precision,
            onnx_path,
            trt.__version__,
        )
        plan = trt_compat.build_serialized(builder, network, config)
    except trt_compat.TensorRTError as exc:
        raise BuildError(f"model {onnx_path}: {exc}") from exc
    finally:
        release()
    if calibrator is not None:
        extra["calibration"] = {
            "dir": str(options.calib_dir),
            "cache": str(_calib_cache(options, engine_path)),
        }
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(plan)
    os.replace(tmp, engine_path)
    log.info("wrote %s (%.1f MB)", engine_path, len(plan) / 1e6)
    return extra


def _calib_cache(options: BuildOptions, engine_path: Path) -> Path:
    return options.calib_cache or engine_path.with_suffix(".calib")


def _calibrator(
    elem_type: int, spec: EngineSpec, options: BuildOptions, engine_path: Path, log: logging.Logger
) -> tuple[trt.IInt8Calibrator | None, Callable[[], None]]:
    if spec.precision != "int8":
        return None, lambda: None
    if options.calib_dir is None:
        raise BuildError(
            "INT8 needs calibration images: pass --calib-dir DIR (a few hundred frames from your "
            "camera)"
        )
    import numpy as np

    from yolo_trt_ros.inference.tensorrt.int8_calibrator import (
        CalibrationImages,
        make_entropy_calibrator,
    )

    shape = next(iter(spec.profile.values()))["opt"]
    dtype = np.dtype(np.float16 if elem_type == _ONNX_FLOAT16 else np.float32)
    images = CalibrationImages(
        options.calib_dir, (int(shape[2]), int(shape[3])), int(shape[0]), dtype
    )
    return make_entropy_calibrator(images, _calib_cache(options, engine_path), log)


def ensure_engine(
    model_path: Path, options: BuildOptions, cuda: CudaContext, log: logging.Logger
) -> tuple[Path, dict[str, Any]]:
    """The engine to load for ``model_path`` and its sidecar record: a checked ``.engine``, or the
    cached engine of an ``.onnx`` (built now when missing or stale). Needs the CUDA context
    current."""
    platform = current_platform(cuda)
    return resolve_engine(
        model_path,
        lambda onnx: engine_spec(onnx, options, platform),
        platform,
        lambda onnx, engine, spec: build_engine(onnx, engine, spec, options, log),
        log.info,
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
    platform = current_platform(cuda)
    spec = EngineSpec(
        "",
        platform.tensorrt_version,
        platform.gpu_name,
        platform.compute_capability,
        precision,
        profile,
    )
    return write_sidecar(engine_path, spec, {"metadata": header, "adopted": True})
