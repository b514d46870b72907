"""Small ONNX models written by tests: saving with metadata, and a model with a constant output of
any shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_model(graph: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Save ``graph`` (an onnx GraphProto) as a checked opset-12 model with ``metadata_props``."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_model(
    path: Path,
    output_shape: list[int],
    input_hw: tuple[int, int] = (640, 640),
    metadata: dict[str, str] | None = None,
) -> Path:
    """A valid ONNX model: image input [1, 3, H, W], output ``output_shape`` filled with 0.5 +
    mean(input)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node(
                "ConstantOfShape",
                ["shape"],
                ["c"],
                value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5]),
            ),
            helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
            helper.make_node("Add", ["c", "m"], ["output0"]),
        ],
        "constant",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
        [numpy_helper.from_array(np.array(output_shape, np.int64), "shape")],
    )
    return save_model(graph, path, metadata)


def fixed_output_model(
    path: Path,
    output: np.ndarray,
    input_hw: tuple[int, int] = (320, 256),
    metadata: dict[str, str] | None = None,
) -> Path:
    """A model with image input [1, 3, H, W] whose float32 output is ``output`` plus 0 x
    mean(input) (so the graph depends on its input)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
            helper.make_node("Mul", ["m", "zero"], ["z"]),
            helper.make_node("Add", ["fixed", "z"], ["output0"]),
        ],
        "fixed_output",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [
            numpy_helper.from_array(output.astype(np.float32), "fixed"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    return save_model(graph, path, metadata)


def yolov5_model(
    path: Path,
    rows: np.ndarray,
    input_hw: tuple[int, int] = (320, 256),
    metadata: dict[str, str] | None = None,
) -> Path:
    """An original-YOLOv5 layout model (``fixed_output_model``): output [1, 3*A, 5+nc], A the grid
    cells at strides 8, 16, 32 (``anchor_count``): ``rows`` (cx, cy, w, h in input pixels,
    objectness, nc class scores), then zero rows."""
    from yolo_trt_ros.detection.model_layout import anchor_count

    total = 3 * anchor_count(input_hw)
    if rows.ndim != 2 or rows.shape[0] > total or rows.shape[1] < 6:
        raise ValueError(f"rows must be (N <= {total}, 5+nc >= 6), got {rows.shape}")
    padded = np.pad(rows.astype(np.float32), ((0, total - rows.shape[0]), (0, 0)))[None]
    return fixed_output_model(path, padded, input_hw, metadata)


def smaller_yolov8n(source: Path, path: Path, size: int, static: bool = False) -> Path:
    """``source`` (yolov8n-coco-dynamic.onnx, any H/W that are multiples of 32) with nominal input
    ``size`` x ``size`` (metadata ``imgsz``): the real network on fewer pixels. ``static`` fixes
    the input at [1, 3, size, size] (a batch-1 model of one size)."""
    import onnx

    model = onnx.load(str(source))
    (imgsz,) = [p for p in model.metadata_props if p.key == "imgsz"]
    imgsz.value = f"[{size}, {size}]"
    if static:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        for dim, value in zip(dims, (1, 3, size, size), strict=True):
            dim.dim_value = value
    onnx.save(model, str(path))
    return path
