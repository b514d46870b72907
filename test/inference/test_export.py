"""``yolo-trt-ros export`` through Ultralytics, on a randomly initialised YOLOv8n built from
yolov8n.yaml (no download). Skips where Ultralytics (the optional ``export`` extra) is not
installed; run it in the reference environment: ``PYTHONPATH=. .venv-ref/bin/python -m pytest
test/inference/test_export.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from yolo_trt_ros.cli import export as export_cli  # noqa: E402
from yolo_trt_ros.detection.class_names import names_from_metadata  # noqa: E402
from yolo_trt_ros.inference import export  # noqa: E402
from yolo_trt_ros.inference.tensorrt import builder as engine_builder
from yolo_trt_ros.inference.tensorrt import engine_cache as ec  # noqa: E402


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="yolo-trt-ros")
    export_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.run(args))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "yolov8n-random.onnx"
    assert (
        _cli(
            "export",
            "--weights",
            "yolov8n.yaml",
            "--opset",
            "12",
            "--no-simplify",
            "--output",
            str(out),
        )
        == 0
    )
    return out


def test_signature_and_metadata(exported: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [12]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp), inp.type.tensor_type.elem_type) == ("images", [1, 3, 640, 640], 1)
    assert (out.name, dims(out), out.type.tensor_type.elem_type) == ("output0", [1, 84, 8400], 1)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["task"] == "detect" and meta["stride"] == "32" and meta["imgsz"] == "[640, 640]"
    assert meta["batch"] == "1"
    names = names_from_metadata(meta)
    assert names is not None and len(names) == 80


def test_runs_and_feeds_the_engine_builder(exported: Path) -> None:
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 640, 640), np.float32)
    (y,) = session.run(None, {"images": x})
    assert y.shape == (1, 84, 8400) and np.isfinite(y).all()
    assert ((y[0, 4:] >= 0) & (y[0, 4:] <= 1)).all()  # class scores come out sigmoid-activated
    spec = engine_builder.engine_spec(
        exported, engine_builder.BuildOptions("fp16"), ec.Platform("10.3", "g", "8.7")
    )
    assert spec.profile == {
        "images": {"min": [1, 3, 640, 640], "opt": [1, 3, 640, 640], "max": [1, 3, 640, 640]}
    }


def test_other_input_size(tmp_path: Path) -> None:
    path = export.export_onnx(
        "yolov8n.yaml", imgsz=320, simplify=False, output=tmp_path / "small.onnx"
    )
    line = export.check_exported(path)
    assert "input images [1, 3, 320, 320], output output0 [1, 84, 2100], 80 class names" in line


def test_non_detection_model_refused(tmp_path: Path) -> None:
    with pytest.raises(export.ModelError, match="task is 'classify'"):
        export.export_onnx("yolov8n-cls.yaml", output=tmp_path / "cls.onnx")
