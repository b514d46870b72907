"""The dependency-free ONNX reader against the onnx package, on the real model and on small built
ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from yolo_trt_ros.inference.onnx_info import OnnxFormatError, read_onnx_info


def _reference(path: Path) -> tuple[list, list, dict[str, str]]:
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}

    def spec(v: onnx.ValueInfoProto) -> tuple:
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in v.type.tensor_type.shape.dim
        )
        return v.name, dims, v.type.tensor_type.elem_type

    inputs = [spec(v) for v in model.graph.input if v.name not in inits]
    return (
        inputs,
        [spec(v) for v in model.graph.output],
        {p.key: p.value for p in model.metadata_props},
    )


def _mine(path: Path) -> tuple[list, list, dict[str, str]]:
    info = read_onnx_info(path)
    as_tuples = [
        [(t.name, t.shape, t.elem_type) for t in ts] for ts in (info.inputs, info.outputs)
    ]
    return as_tuples[0], as_tuples[1], info.metadata


def test_real_model_matches_onnx_package(model_path: Path) -> None:
    mine = _mine(model_path)
    assert mine == _reference(model_path)
    assert mine[0] == [("images", (1, 3, 640, 640), 1)] and mine[1] == [
        ("output0", (1, 84, 8400), 1)
    ]
    assert "person" in mine[2]["names"]


@pytest.mark.parametrize("dynamic", [False, True])
def test_built_models_match_onnx_package(tmp_path: Path, make_yolo_onnx, dynamic: bool) -> None:
    rng = np.random.default_rng(0)
    path = make_yolo_onnx(
        tmp_path / "m.onnx",
        rng.random((7, 4), np.float32),
        rng.random((3, 7), np.float32),
        dynamic=dynamic,
        input_type=onnx.TensorProto.FLOAT16,
        metadata={"k": "v", "é": "ü"},
    )
    mine = _mine(path)
    assert mine == _reference(path)
    assert mine[0][0][2] == onnx.TensorProto.FLOAT16
    if dynamic:
        assert mine[0][0][1] == ("batch", 3, "height", "width")


def test_initializers_listed_as_inputs_are_skipped(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 4]),
        ],  # IR < 4 style
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert [t.name for t in read_onnx_info(path).inputs] == ["x"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\xff\xff\xff", "not a valid ONNX model"),
        (b"\x08\x07", "no graph"),
        (b"\x3a\x50abc", "truncated"),
    ],
)
def test_garbage_is_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxFormatError, match=message):
        read_onnx_info(path)
