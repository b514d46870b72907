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
