"""Choose the inference backend for ``backend: auto|tensorrt|onnxruntime`` and say why."""

from __future__ import annotations

from yolo_trt_ros.backends.base import ModelError

CHOICES = ("auto", "tensorrt", "onnxruntime")


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): TensorRT and pycuda import and CUDA sees a GPU; the reason names what is missing."""
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

    ``auto`` takes TensorRT when it imports and a GPU is present, else ONNX Runtime. ``tensorrt`` raises
    ModelError with the reason when TensorRT cannot run here; ``onnxruntime`` is taken as asked.
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
