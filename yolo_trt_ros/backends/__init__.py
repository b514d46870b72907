"""Inference backends behind one interface (``Backend``); ``create_backend`` picks one by name."""

from __future__ import annotations

from pathlib import Path

from yolo_trt_ros.backends.base import Backend, ModelError

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "Backend", "ModelError", "create_backend"]


def create_backend(kind: str, model_path: str | Path, intra_op_threads: int = 0) -> Backend:
    """Load ``model_path`` with the backend ``kind``; raises ModelError naming the file and the problem.

    ``intra_op_threads`` sets ONNX Runtime's intra-op thread count (0: its default).
    """
    if kind == "onnxruntime":
        from yolo_trt_ros.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, intra_op_threads=intra_op_threads)
    if kind == "tensorrt":
        raise ModelError(
            f"model {model_path}: backend 'tensorrt' is not available yet in this version; use 'onnxruntime'"
        )
    raise ModelError(f"model {model_path}: unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
