"""Choose the inference backend for ``backend: auto|tensorrt|onnxruntime``, say why, and load the
model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo_trt_ros.inference.base import Backend, ModelError

BACKENDS = ("onnxruntime", "tensorrt")
CHOICES = ("auto", "tensorrt", "onnxruntime")


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): TensorRT and pycuda import and CUDA sees a GPU; the reason names what is
    missing."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install raising OSError from its libraries
        return False, f"TensorRT is not importable ({exc})"
    try:
        import pycuda.driver as cuda
    except Exception as exc:
        return False, f"pycuda is not importable ({exc})"
    try:
        cuda.init()
        count = cuda.Device.count()
        name = cuda.Device(0).name() if count else ""
    except Exception as exc:  # pycuda.driver.Error: no driver, driver/runtime mismatch, ...
        return False, f"CUDA is not usable ({exc})"
    if count == 0:
        return False, "CUDA sees no GPU"
    return True, f"TensorRT {trt.__version__} and GPU '{name}' found"


def select_backend(kind: str) -> tuple[str, str]:
    """The backend to use for ``kind`` and a log line saying why.

    ``auto`` takes TensorRT when it imports and a GPU is present, else ONNX Runtime. ``tensorrt``
    raises ModelError with the reason when TensorRT cannot run here; ``onnxruntime`` is taken as
    asked.
    """
    if kind not in CHOICES:
        raise ModelError(f"backend must be one of {', '.join(CHOICES)}, got {kind!r}")
    if kind == "onnxruntime":
        return "onnxruntime", "backend onnxruntime: as configured"
    usable, reason = tensorrt_status()
    if kind == "tensorrt":
        if not usable:
            raise ModelError(f"backend tensorrt was requested but {reason}")
        return "tensorrt", f"backend tensorrt: as configured; {reason}"
    if usable:
        return "tensorrt", f"backend auto -> tensorrt: {reason}"
    return "onnxruntime", f"backend auto -> onnxruntime: {reason}"


def create_backend(
    kind: str, model_path: str | Path, options: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Backend, str]:
    """Load ``model_path`` with backend ``kind`` (one of ``CHOICES``); returns the backend and why
    it was chosen.

    ``options`` maps a backend name to its keyword arguments, e.g. ``{"onnxruntime":
    {"intra_op_threads": 1}, "tensorrt": {"precision": "fp32", "device": 0}}``; only the chosen
    backend's are used. Raises ModelError naming the file and the problem, also when "tensorrt" is
    requested but cannot run here.
    """
    if kind not in CHOICES:
        raise ModelError(
            f"model {model_path}: unknown backend {kind!r}; choose one of {', '.join(CHOICES)}"
        )
    path = Path(model_path)
    if path.is_dir():
        raise ModelError(
            f"model {path}: is a directory, not a model file (give the .onnx or .engine file in "
            "it)"
        )
    if not path.exists():
        raise ModelError(f"model {path}: file not found")
    try:
        name, reason = select_backend(kind)
    except ModelError as exc:
        raise ModelError(f"model {model_path}: {exc}") from exc
    chosen = dict((options or {}).get(name, {}))
    if name == "tensorrt":
        from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend

        return TensorRTBackend(model_path, **chosen), reason
    from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_path, **chosen), reason
