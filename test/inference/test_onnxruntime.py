"""OnnxRuntimeBackend on the real YOLOv8n model and on small generated models, good and bad."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from yolo_trt_ros.detection.model_layout import anchor_count
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend
from yolo_trt_ros.inference.selection import BACKENDS, create_backend


def simple_model(path: Path, inputs: list[tuple[int, list]], outputs: list[list]) -> Path:
    """A model whose outputs (float32, declared ``shapes``) are constants plus the sum of all
    inputs."""
    nodes, value_inputs = [], []
    for i, (elem_type, shape) in enumerate(inputs):
        value_inputs.append(helper.make_tensor_value_info(f"in{i}", elem_type, shape))
        nodes.append(helper.make_node("Cast", [f"in{i}"], [f"f{i}"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("ReduceSum", [f"f{i}"], [f"s{i}"], keepdims=0))
    total = "s0"
    for i in range(1, len(inputs)):
        nodes.append(helper.make_node("Add", [total, f"s{i}"], [f"t{i}"]))
        total = f"t{i}"
    value_outputs = []
    for j, shape in enumerate(outputs):
        const = helper.make_tensor(
            f"c{j}", TensorProto.FLOAT, shape, np.zeros(shape, np.float32).ravel().tolist()
        )
        nodes.append(helper.make_node("Constant", [], [f"k{j}"], value=const))
        nodes.append(helper.make_node("Add", [f"k{j}", total], [f"out{j}"]))
        value_outputs.append(helper.make_tensor_value_info(f"out{j}", TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "simple", value_inputs, value_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


IMAGE = (TensorProto.FLOAT, [1, 3, 64, 64])


def test_real_model(model_path: Path) -> None:
    backend, selection = create_backend("onnxruntime", model_path)
    assert selection.reason == "backend onnxruntime: as configured"
    try:
        assert backend.name == "onnxruntime" and backend.model_path == model_path
        assert backend.input_shape == (1, 3, 640, 640)
        assert backend.input_dtype == np.float32
        assert backend.output_shape == (1, 84, 8400)
        assert backend.metadata["names"].startswith("{0: 'person'")
        out = backend.infer(np.full(backend.input_shape, 114 / 255, np.float32))
        assert out.shape == (1, 84, 8400) and out.dtype == np.float32
        assert np.isfinite(out).all() and out[0, 4:].max() < 0.25  # a gray image: nothing detected
    finally:
        backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.infer(np.zeros((1, 3, 640, 640), np.float32))


def test_session_options(model_path: Path) -> None:
    options = {
        "onnxruntime": {"intra_op_threads": 1, "allow_spinning": False},
        "tensorrt": {"precision": "int8"},
    }  # only its own are used
    backend, _ = create_backend("onnxruntime", model_path, options)
    assert isinstance(backend, OnnxRuntimeBackend)
    options = backend._session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert "CPUExecutionProvider" in backend.providers
    assert backend._session.get_providers() == backend.providers


def assert_model_error(path: Path, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        create_backend("onnxruntime", path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    assert_model_error(tmp_path / "nope.onnx", "file not found")
    assert_model_error(tmp_path, "is a directory, not a model file")


def test_corrupt_files(tmp_path: Path, model_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_model_error(garbage, "ONNX Runtime cannot load it")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model_path.read_bytes()[:200_000])
    assert_model_error(truncated, "ONNX Runtime cannot load it")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_model_error(empty, "ONNX Runtime cannot load it")


@pytest.mark.parametrize(
    "shape", [[1, 6], [1, 84], [1, 4, 100], [2, 84, 100], [1, 84, 100, 1], [84]]
)
def test_wrong_output_shape(tmp_path: Path, shape: list) -> None:
    path = simple_model(tmp_path / "bad_out.onnx", [IMAGE], [shape])
    shown = "[" + ", ".join(map(str, shape)) + "]"
    assert_model_error(
        path,
        f"output 'out0' has shape \\{shown[:-1]}\\] but YOLOv8 detection needs \\[1, 4\\+nc, N\\]",
    )


@pytest.mark.parametrize(
    "inputs, outputs, match",
    [
        ([IMAGE, IMAGE], [[1, 84, 10]], "has 2 inputs \\(in0, in1\\)"),
        ([IMAGE], [[1, 84, 10], [1, 32, 8, 8]], "has 2 outputs"),
        (
            [(TensorProto.FLOAT, [3, 64, 64])],
            [[1, 84, 10]],
            "input 'in0' has shape \\[3, 64, 64\\]",
        ),
        ([(TensorProto.FLOAT, [4, 3, 64, 64])], [[1, 84, 10]], "batch size 4"),
        ([(TensorProto.FLOAT, [1, 1, 64, 64])], [[1, 84, 10]], "1 channels"),
        ([(TensorProto.UINT8, [1, 3, 64, 64])], [[1, 84, 10]], "input 'in0' is tensor\\(uint8\\)"),
    ],
)
def test_wrong_inputs_or_outputs(tmp_path: Path, inputs, outputs, match) -> None:
    assert_model_error(simple_model(tmp_path / "bad.onnx", inputs, outputs), match)


def test_static_custom_shape(tmp_path: Path, make_yolo_onnx) -> None:
    path = make_yolo_onnx(
        tmp_path / "m.onnx", np.ones((5, 4)), np.ones((3, 5)), input_hw=(320, 256)
    )
    backend = OnnxRuntimeBackend(path)
    assert backend.input_shape == (1, 3, 320, 256)
    assert backend.output_shape == (1, 7, 1680)  # 5 anchors padded to 40*32 + 20*16 + 10*8
    assert backend.metadata == {}


@pytest.mark.parametrize(
    "imgsz, expected", [(None, (640, 640)), ("[320, 256]", (320, 256)), ("480", (480, 480))]
)
def test_dynamic_shapes(tmp_path: Path, make_yolo_onnx, imgsz, expected) -> None:
    metadata = {} if imgsz is None else {"imgsz": imgsz}
    path = make_yolo_onnx(
        tmp_path / "dyn.onnx", np.ones((9, 4)), np.ones((2, 9)), expected, metadata, dynamic=True
    )
    backend = OnnxRuntimeBackend(path)
    assert backend.input_shape == (1, 3, *expected)
    assert backend.output_shape == (1, 6, anchor_count(expected))  # learned from a dry run


@pytest.mark.parametrize("imgsz", ["[320]", "'big'", "[0, 640]", "[320, 256"])
def test_bad_imgsz_metadata(tmp_path: Path, make_yolo_onnx, imgsz: str) -> None:
    meta = {"imgsz": imgsz}
    path = make_yolo_onnx(
        tmp_path / "dyn.onnx", np.ones((9, 4)), np.ones((2, 9)), metadata=meta, dynamic=True
    )
    assert_model_error(path, "metadata imgsz")


def test_float16_input_and_output(tmp_path: Path, make_yolo_onnx) -> None:
    boxes = np.array([[10, 20, 4, 6]], np.float32)
    path = make_yolo_onnx(
        tmp_path / "fp16.onnx",
        boxes,
        np.ones((1, 1)),
        input_hw=(32, 32),
        input_type=TensorProto.FLOAT16,
        output_type=TensorProto.FLOAT16,
    )
    backend = OnnxRuntimeBackend(path)
    assert backend.input_dtype == np.float16
    out = backend.infer(np.full((1, 3, 32, 32), 0.5, np.float16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0], [10, 20, 4, 6, 0.5])


def test_create_backend_kinds(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BACKENDS == ("onnxruntime", "tensorrt")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    backend, selection = create_backend("auto", model_path, {"tensorrt": {"precision": "int8"}})
    assert isinstance(backend, OnnxRuntimeBackend)
    assert selection.reason.startswith("backend auto -> onnxruntime: TensorRT is not importable (")
    with pytest.raises(
        ModelError, match="backend tensorrt was requested but TensorRT is not importable"
    ) as info:
        create_backend("tensorrt", model_path)
    assert str(model_path) in str(info.value)
    with pytest.raises(
        ModelError, match="unknown backend 'openvino'; choose one of auto, tensorrt, onnxruntime"
    ):
        create_backend("openvino", model_path)


def test_a_segmentation_model_is_refused_naming_its_task(data_dir: Path) -> None:
    with pytest.raises(
        ModelError, match="looks like a segment model \\(metadata task 'segment'\\)"
    ):
        OnnxRuntimeBackend(data_dir / "models" / "formats" / "yolov8n-seg-random.onnx")


def test_parallel_runs_share_out_the_cores(model_path: Path, monkeypatch) -> None:
    """With ``intra_op_threads`` 0, each of ``parallel_runs`` runs gets its share of the cores this
    process may use (at least one thread); an explicit thread count is kept."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    threads = {}
    for runs, intra in ((1, 0), (2, 0), (3, 0), (16, 0), (2, 3)):
        backend = OnnxRuntimeBackend(model_path, intra_op_threads=intra, parallel_runs=runs)
        threads[runs, intra] = backend._session.get_session_options().intra_op_num_threads
        assert backend.parallel_runs == runs
        backend.close()
    assert threads == {(1, 0): 0, (2, 0): 4, (3, 0): 2, (16, 0): 1, (2, 3): 3}
