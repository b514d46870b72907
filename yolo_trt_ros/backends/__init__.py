"""Inference backends behind one interface (``Backend``); ``create_backend`` picks one by name or ``auto``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo_trt_ros.backends.base import Backend, ModelError
from yolo_trt_ros.backends.selection import CHOICES, select_backend

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "CHOICES", "Backend", "ModelError", "create_backend"]


def create_backend(kind: str, model_path: str | Path,
                   options: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Backend, str]:
    """Load ``model_path`` with backend ``kind`` (one of ``CHOICES``); returns the backend and why it was chosen.

    ``options`` maps a backend name to its keyword arguments, e.g. ``{"onnxruntime": {"intra_op_threads": 1},
    "tensorrt": {"precision": "fp32", "device": 0}}``; only the chosen backend's are used. Raises ModelError naming
    the file and the problem, also when "tensorrt" is requested but cannot run here.
    """
    if kind not in CHOICES:
        raise ModelError(f"model {model_path}: unknown backend {kind!r}; choose one of {', '.join(CHOICES)}")
    path = Path(model_path)
    if path.is_dir():
        raise ModelError(f"model {path}: is a directory, not a model file (give the .onnx or .engine file in it)")
    if not path.exists():
        raise ModelError(f"model {path}: file not found")
    try:
        name, reason = select_backend(kind)
    except ModelError as exc:
        raise ModelError(f"model {model_path}: {exc}") from exc
    chosen = dict((options or {}).get(name, {}))
    if name == "tensorrt":
        from yolo_trt_ros.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(model_path, **chosen), reason
    from yolo_trt_ros.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_path, **chosen), reason
