"""Inference backends behind one interface (``Backend``); ``create_backend`` picks one by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolo_trt_ros.backends.base import Backend, ModelError

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "Backend", "ModelError", "create_backend"]


def create_backend(kind: str, model_path: str | Path, **options: Any) -> Backend:
    """Load ``model_path`` with the backend ``kind``; raises ModelError naming the file and the problem.

    ``options`` go to the backend: for "onnxruntime", ``intra_op_threads`` (0: ONNX Runtime's default).
    """
    if kind == "onnxruntime":
        from yolo_trt_ros.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, **options)
    if kind == "tensorrt":
        raise ModelError(
            f"model {model_path}: backend 'tensorrt' is not available yet in this version; use 'onnxruntime'"
        )
    raise ModelError(f"model {model_path}: unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
