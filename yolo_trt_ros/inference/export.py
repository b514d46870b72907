"""``yolo-trt-ros export``: Ultralytics weights (.pt, or a model .yaml) -> ONNX for the backends.

Uses Ultralytics (the optional ``export`` extra, which brings torch); the node never imports it. On
a user's machine ``--weights yolov8n.pt`` downloads the official weights as Ultralytics always
does. The ONNX keeps Ultralytics' signature (input ``images`` [1, 3, H, W], output ``output0`` [1,
4+nc, N], no NMS) and metadata (class names, stride, imgsz), which the ONNX Runtime backend and the
TensorRT engine builder both read.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yolo_trt_ros.detection.class_names import names_from_metadata
from yolo_trt_ros.inference.base import ModelError, check_output_shape
from yolo_trt_ros.inference.onnx_info import read_onnx_info


def export_onnx(
    weights: str | Path,
    imgsz: int | Sequence[int] = 640,
    opset: int | None = None,
    simplify: bool = True,
    output: Path | None = None,
    dynamic: bool = False,
) -> Path:
    """Export a YOLOv8 detection model to ONNX; returns the file. ``dynamic``: batch, height and
    width as dynamic axes (any camera size, several cameras in one batch). ModelError when
    Ultralytics is missing, the model is not a detector, or the result is not a [B, 4+nc, N]
    detection output."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ModelError(
            f"export needs Ultralytics ({exc}): pip install 'yolo_trt_ros[export]'"
        ) from exc
    if output is not None and Path(weights).is_file():
        # Ultralytics writes beside the weights: export a copy in the output's folder instead, so
        # that a read-only or shared weights folder stays untouched.
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=Path(output).parent) as scratch:
            copy = Path(shutil.copy2(weights, scratch))
            path = export_onnx(copy, imgsz, opset, simplify, None, dynamic)
            return Path(shutil.move(str(path), str(output)))
    model = YOLO(str(weights))
    if model.task != "detect":
        raise ModelError(
            f"model {weights}: task is {model.task!r}; yolo_trt_ros runs detection models only"
        )
    size: Any = list(imgsz) if not isinstance(imgsz, int) else imgsz
    path = Path(
        model.export(
            format="onnx",
            imgsz=size,
            opset=opset,
            simplify=simplify,
            dynamic=dynamic,
            half=False,
            nms=False,
            batch=1,
            device="cpu",
        )
    )
    if output is not None and path.resolve() != Path(output).resolve():
        path = Path(shutil.move(str(path), str(output)))
    check_exported(path)
    return path


def check_exported(path: Path) -> str:
    """One line describing an exported ONNX; ModelError unless it is a single-input YOLOv8
    detection model."""
    info = read_onnx_info(path)
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise ModelError(
            f"model {path}: expected one input and one output, got {len(info.inputs)} and "
            f"{len(info.outputs)}"
        )
    inp, out = info.inputs[0], info.outputs[0]
    check_output_shape(path, out.name, out.shape)
    names = names_from_metadata(info.metadata) or []
    return (
        f"{path}: input {inp.name} {list(inp.shape)}, output {out.name} {list(out.shape)}, "
        f"{len(names)} class names in the metadata"
    )
