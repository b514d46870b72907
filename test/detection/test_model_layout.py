"""Output layouts: one-to-many (YOLOv8/YOLO11, P6), end-to-end (YOLOv10/YOLO26) and YOLOv5 heads
are accepted; transposed, ambiguous and non-detect models, and anchor counts that do not fit the
input size, are refused by name (real exports and tiny ONNX models)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from onnx_models import constant_model, fixed_output_model
from yolo_trt_ros.detection.detector import Detector
from yolo_trt_ros.detection.model_layout import (
    LayoutKind,
    anchor_count,
    check_layout,
    classify_layout,
    end2end_from_metadata,
    strides_from_metadata,
)
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.onnx_info import read_onnx_info
from yolo_trt_ros.inference.tensorrt import builder as engine_builder
from yolo_trt_ros.inference.tensorrt import engine_cache as ec
from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend

SUPPORTED = (
    "supported are detection models with a one-to-many output [1, 4+nc, anchors] (YOLOv8, "
    "YOLO11), an end-to-end output [1, max_det, 6] (YOLOv10, YOLO26) or a YOLOv5 output "
    "[1, 3*anchors, 5+nc]; anchors = sum over strides s = 8, 16, 32 of ceil(H/s)*ceil(W/s) = "
    "8400 at 640x640"
)
PLATFORM = ec.Platform("10.3.0", "Orin", "8.7")


def assert_refused(path: Path, looks_like: str, supported: str = SUPPORTED) -> None:
    with pytest.raises(ModelError) as info:
        Detector.from_model(path)
    message = str(info.value)
    assert message.startswith(f"model {path}: output ["), message
    assert f"looks like {looks_like}" in message and supported in message, message


@pytest.mark.parametrize("name", ["yolo26n", "yolov10n"])
def test_real_end_to_end_exports_are_accepted(data_dir: Path, name: str) -> None:
    path = data_dir / "models" / "formats" / f"{name}-random.onnx"
    detector = Detector.from_model(path)
    assert detector.layout.kind is LayoutKind.END_TO_END and detector.layout.end2end_metadata
    assert detector.backend.output_shape == (1, 300, 6) and len(detector.names) == 80
    detector.close()


def test_end_to_end_by_shape_or_nms_export_metadata(tmp_path: Path) -> None:
    layout = classify_layout((1, 3, 640, 640), (1, 300, 6), {})
    assert layout.kind is LayoutKind.END_TO_END and layout.num_classes is None
    assert "(YOLOv10/YOLO26 or an nms=True export)" in layout.describe()
    nms_export = {"end2end": "False", "args": "{'batch': 1, 'nms': True}"}
    assert end2end_from_metadata(nms_export) is True
    assert end2end_from_metadata({"end2end": "False", "args": "{'nms': None}"}) is False
    assert end2end_from_metadata({}) is None
    assert classify_layout((1, 3, 640, 640), (1, 300, 6), nms_export).kind is (
        LayoutKind.END_TO_END
    )
    # an Ultralytics export that says end2end False is not end-to-end, whatever its shape
    plain = {"end2end": "False", "args": "{'nms': False}"}
    assert classify_layout((1, 3, 640, 640), (1, 300, 6), plain).kind is LayoutKind.UNKNOWN
    path = fixed_output_model(
        tmp_path / "e2e.onnx", np.zeros((1, 300, 6)), (640, 640), {"names": "{0: 'a'}"}
    )
    assert Detector.from_model(path).layout.kind is LayoutKind.END_TO_END


def test_metadata_end2end_and_task_are_refused(tmp_path: Path, make_yolo_onnx) -> None:
    boxes, weights = np.ones((3, 4)), np.ones((2, 3))
    e2e = make_yolo_onnx(tmp_path / "e2e.onnx", boxes, weights, metadata={"end2end": "True"})
    assert_refused(
        e2e,
        "metadata end2end=True but not an end-to-end output [1, max_det, 6]",
        supported="1680 at 320x256",
    )
    seg = make_yolo_onnx(tmp_path / "seg.onnx", boxes, weights, metadata={"task": "segment"})
    assert_refused(seg, "a segment model (metadata task 'segment'), not a detection model")
    detect = make_yolo_onnx(
        tmp_path / "detect.onnx", boxes, weights, metadata={"task": "detect", "end2end": "False"}
    )
    assert Detector.from_model(detect).names == ["class_0", "class_1"]


def test_yolov5_shape_is_accepted(tmp_path: Path) -> None:
    detector = Detector.from_model(constant_model(tmp_path / "v5.onnx", [1, 25200, 85]))
    assert detector.layout.kind is LayoutKind.YOLOV5 and len(detector.names) == 80
    p6 = classify_layout((1, 3, 640, 640), (1, 25500, 85), {})
    assert p6.kind is LayoutKind.YOLOV5 and p6.strides == (8, 16, 32, 64)


@pytest.mark.parametrize(
    "shape, fits",
    [
        ([1, 8400, 6], "transposed [1, anchors, 4+nc] and end-to-end [1, max_det, 6]"),
        ([1, 25200, 6], "YOLOv5 [1, 3*anchors, 5+nc] and end-to-end [1, max_det, 6]"),
    ],
)
def test_ambiguous_shapes_are_refused_saying_what_they_fit(
    tmp_path: Path, shape: list[int], fits: str
) -> None:
    assert_refused(
        constant_model(tmp_path / "ambiguous.onnx", shape),
        f"an ambiguous output: at 640x640 it fits {fits}, and no Ultralytics metadata (end2end) "
        "says which",
    )
    meta = {"end2end": "False"}
    assert classify_layout((1, 3, 640, 640), shape, meta).kind is not LayoutKind.AMBIGUOUS


@pytest.mark.parametrize(
    "shape, looks_like",
    [
        ([1, 8400, 84], "a transposed output [1, anchors, 4+nc] (8400 anchors first at 640x640)"),
        ([1, 84, 8000], "8000 anchors where a YOLOv8 head at 640x640 has 8400"),
        (
            [1, 84, 2100],
            "2100 anchors where a YOLOv8 head at 640x640 has 8400",
        ),  # a 320x320 export, resized
    ],
)
def test_foreign_layouts_without_names_are_refused(
    tmp_path: Path, shape: list[int], looks_like: str
) -> None:
    assert_refused(constant_model(tmp_path / "foreign.onnx", shape), looks_like)


@pytest.mark.parametrize(
    "name", ["yolov8n-coco-fp32.onnx", "yolov8n-coco-dynamic.onnx", "formats/yolo11n-random.onnx"]
)
def test_yolov8_and_yolo11_exports_are_accepted(data_dir: Path, name: str) -> None:
    path = data_dir / "models" / name
    detector = Detector.from_model(path)
    assert detector.backend.output_shape == (1, 84, 8400) and len(detector.names) == 80
    detector.close()
    info = read_onnx_info(path)
    layout = check_layout(path, (1, 3, 640, 640), info.outputs[0].shape, info.metadata)
    assert (
        layout.kind is LayoutKind.ONE_TO_MANY
        and layout.supported
        and layout.expected_anchors == 8400
    )
    assert layout.num_classes == 80 and layout.strides == (8, 16, 32)
    engine_builder.engine_spec(path, engine_builder.BuildOptions("fp16"), PLATFORM)


@pytest.mark.parametrize("hw", [(384, 640), (320, 480), (640, 384)])
def test_anchor_count_matches_the_real_dynamic_model(data_dir: Path, hw: tuple[int, int]) -> None:
    session = ort.InferenceSession(
        str(data_dir / "models" / "yolov8n-coco-dynamic.onnx"), providers=["CPUExecutionProvider"]
    )
    out = session.run(None, {"images": np.zeros((1, 3, *hw), np.float32)})[0]
    assert out.shape == (1, 84, anchor_count(hw))


def test_rectangular_input(tmp_path: Path) -> None:
    assert anchor_count((384, 640)) == 48 * 80 + 24 * 40 + 12 * 20 == 5040
    good = constant_model(
        tmp_path / "rect.onnx", [1, 6, 5040], (384, 640), {"names": "{0: 'a', 1: 'b'}"}
    )
    assert Detector.from_model(good).names == ["a", "b"]
    bad = constant_model(
        tmp_path / "rect8400.onnx", [1, 6, 8400], (384, 640), {"names": "{0: 'a', 1: 'b'}"}
    )
    assert_refused(
        bad,
        "8400 anchors where a YOLOv8 head at 384x640 has 5040",
        supported="8400 at 640x640, 5040 at 384x640",
    )


def test_p6_stride_metadata() -> None:
    meta = {"stride": "64"}
    assert strides_from_metadata(meta) == (8, 16, 32, 64) and strides_from_metadata({}) == (
        8,
        16,
        32,
    )
    assert anchor_count((640, 640), strides_from_metadata(meta)) == 8500
    assert classify_layout((1, 3, 640, 640), (1, 84, 8500), meta).kind is LayoutKind.ONE_TO_MANY
    assert classify_layout((1, 3, 640, 640), (1, 84, 8400), meta).kind is LayoutKind.UNKNOWN
    no_stride = classify_layout((1, 3, 640, 640), (1, 84, 8500), {})
    assert no_stride.kind is LayoutKind.ONE_TO_MANY and no_stride.strides == (8, 16, 32, 64)
    with pytest.raises(
        ModelError,
        match=re.escape(
            "model p6.onnx: output [1, 84, 8400] looks like 8400 anchors where "
            "a YOLOv8 head at 640x640 has 8500; supported are"
        ),
    ) as info:
        check_layout("p6.onnx", (1, 3, 640, 640), (1, 84, 8400), meta)
    assert "strides s = 8, 16, 32, 64 of ceil(H/s)*ceil(W/s) = 8500 at 640x640" in str(info.value)
    for bad in ("'big'", "4", "[8, 0]"):
        with pytest.raises(ModelError, match="model m.onnx: metadata stride"):
            check_layout("m.onnx", (1, 3, 640, 640), (1, 84, 8400), {"stride": bad})


def test_layout_is_a_reusable_value() -> None:
    cases = {
        (1, 84, 8400): (LayoutKind.ONE_TO_MANY, 80),
        (1, 8400, 84): (LayoutKind.TRANSPOSED, 80),
        (1, 25200, 85): (LayoutKind.YOLOV5, 80),
        (1, 300, 6): (LayoutKind.END_TO_END, None),
        (1, 8400, 6): (LayoutKind.AMBIGUOUS, None),
        (1, 84, 100): (LayoutKind.UNKNOWN, None),
        (1, 6): (LayoutKind.UNKNOWN, None),
        ("batch", 84, "anchors"): (LayoutKind.ONE_TO_MANY, 80),  # dynamic dims fit
    }
    for shape, (kind, nc) in cases.items():
        layout = classify_layout((1, 3, 640, 640), shape, {})
        assert (layout.kind, layout.num_classes, layout.supported) == (
            kind,
            nc,
            kind in (LayoutKind.ONE_TO_MANY, LayoutKind.YOLOV5, LayoutKind.END_TO_END),
        ), shape
    pose = classify_layout((1, 3, 640, 640), (1, 56, 8400), {"task": "pose"})
    assert pose.kind is LayoutKind.OTHER_TASK and pose.task == "pose" and not pose.supported


def test_engine_build_refused_before_tensorrt_runs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data_dir / "models" / "formats" / "yolov8n-seg-random.onnx"
    looks_like = "a segment model (metadata task 'segment')"
    with pytest.raises(ModelError, match=re.escape(f"model {path}: output [1, ")) as info:
        engine_builder.engine_spec(path, engine_builder.BuildOptions("fp16"), PLATFORM)
    assert looks_like in str(info.value)
    trt = fake.make_fake_tensorrt("10.3.0")
    package, driver, state = make_fake_pycuda()
    for module_name, module in (("tensorrt", trt), ("pycuda", package), ("pycuda.driver", driver)):
        monkeypatch.setitem(sys.modules, module_name, module)
    with pytest.raises(ModelError, match=re.escape(looks_like)):
        TensorRTBackend(path)
    assert trt.Builder.built == [] and state.device_allocations == {}
