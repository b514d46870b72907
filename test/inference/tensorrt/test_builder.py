"""Engine builder and ``build-engine`` CLI against fake tensorrt/pycuda (real ONNX files, real
calibration images).

What the fake checks: the calls are the documented 8.6/10 ones (explicit-batch flag on 8.6,
workspace pool, FP16/INT8 flags, calibrator protocol, profile for dynamic inputs); what comes out
is a cached engine with a sidecar that the backend then accepts. Real TensorRT never ran here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from yolo_trt_ros.cli import build_engine
from yolo_trt_ros.detection.letterbox import Letterbox
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.tensorrt import builder as engine_builder
from yolo_trt_ros.inference.tensorrt import engine_cache as ec
from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch):
    def install(version: str = "10.3.0"):
        trt = fake.make_fake_tensorrt(version)
        package, driver, state = make_fake_pycuda()
        for name, module in (("tensorrt", trt), ("pycuda", package), ("pycuda.driver", driver)):
            monkeypatch.setitem(sys.modules, name, module)
        return trt, state

    return install


@pytest.fixture
def tiny_onnx(tmp_path: Path, make_yolo_onnx) -> Path:
    rng = np.random.default_rng(0)
    return make_yolo_onnx(
        tmp_path / "tiny.onnx",
        rng.random((20, 4), np.float32) * 64,
        rng.random((3, 20), np.float32),
        input_hw=(64, 64),
        metadata={"names": "{0: 'a', 1: 'b', 2: 'c'}", "imgsz": "[64, 64]"},
    )


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="yolo-trt-ros")
    build_engine.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.run(args))


def test_engine_spec_of_the_real_model(model_path: Path) -> None:
    platform = ec.Platform("10.3.0", "Orin", "8.7")
    spec = engine_builder.engine_spec(model_path, engine_builder.BuildOptions("fp16"), platform)
    assert spec.profile == {
        "images": {"min": [1, 3, 640, 640], "opt": [1, 3, 640, 640], "max": [1, 3, 640, 640]}
    }
    assert spec.onnx_sha256 == "de2b28b6d75c7b6e6e12ff5928430898045aae378edd7add80b0ee0e35c9c1ec"
    assert (spec.tensorrt_version, spec.gpu_name, spec.precision) == ("10.3.0", "Orin", "fp16")


def test_engine_spec_of_dynamic_model(tmp_path: Path, make_yolo_onnx) -> None:
    rng = np.random.default_rng(0)
    onnx = make_yolo_onnx(
        tmp_path / "dyn.onnx",
        rng.random((5, 4), np.float32),
        rng.random((2, 5), np.float32),
        dynamic=True,
        metadata={"imgsz": "[320, 480]"},
    )
    platform = ec.Platform("8.6.1", "Orin", "8.7")
    spec = engine_builder.engine_spec(
        onnx, engine_builder.BuildOptions("fp32", max_batch=4), platform
    )
    assert spec.profile == {
        "images": {"min": [1, 3, 320, 480], "opt": [1, 3, 320, 480], "max": [4, 3, 320, 480]}
    }
    spec = engine_builder.engine_spec(
        onnx, engine_builder.BuildOptions("fp32", imgsz=(256, 256)), platform
    )
    assert spec.profile["images"]["max"] == [1, 3, 256, 256]


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_cli_builds_then_reports_up_to_date(
    gpu, tiny_onnx: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    trt, state = gpu(version)
    assert _cli("build-engine", "--onnx", str(tiny_onnx), "--fp16", "--workspace", "512") == 0
    engine = tiny_onnx.with_name("tiny.fp16.engine")
    assert capsys.readouterr().out.strip() == str(engine)
    (built,) = trt.Builder.built
    assert built["flags"] == ["FP16"] and built["workspace"] == 512 << 20
    assert built["network_flags"] == (1 if version.startswith("8.") else 0)
    record = json.loads(ec.sidecar_path(engine).read_text())
    assert record["tensorrt_version"] == version and record["gpu_name"] == "Fake Orin"
    assert record["metadata"]["names"] == "{0: 'a', 1: 'b', 2: 'c'}"
    assert _cli("build-engine", "--onnx", str(tiny_onnx), "--fp16") == 0
    assert len(trt.Builder.built) == 1  # up to date
    assert _cli("build-engine", "--onnx", str(tiny_onnx), "--fp16", "--force") == 0
    assert len(trt.Builder.built) == 2
    backend = TensorRTBackend(engine)  # the node accepts what the CLI built
    assert backend.output_shape == (1, 7, 84)  # 20 anchors padded to a 64x64 head's 8*8+4*4+2*2
    backend.close()
    assert state.retained == 0 and state.device_allocations == {}


def test_cli_dynamic_batch_profile(gpu, tmp_path: Path, make_yolo_onnx) -> None:
    trt, _ = gpu("10.3.0")
    rng = np.random.default_rng(0)
    onnx = make_yolo_onnx(
        tmp_path / "dyn.onnx",
        rng.random((5, 4), np.float32),
        rng.random((2, 5), np.float32),
        dynamic=True,
    )
    out = tmp_path / "custom" / "dyn.engine"
    out.parent.mkdir()
    assert (
        _cli(
            "build-engine",
            "--onnx",
            str(onnx),
            "--max-batch",
            "8",
            "--imgsz",
            "96",
            "--output",
            str(out),
        )
        == 0
    )
    (built,) = trt.Builder.built
    assert built["tensors"][0]["profile"] == [[1, 3, 96, 96], [1, 3, 96, 96], [8, 3, 96, 96]]
    assert json.loads(ec.sidecar_path(out).read_text())["precision"] == "fp32"


def test_int8_calibrates_on_images_then_uses_the_cache(
    gpu, tiny_onnx: Path, tmp_path: Path, mot_dir: Path
) -> None:
    trt, state = gpu("10.3.0")
    calib = tmp_path / "calib"
    calib.mkdir()
    frames = sorted((mot_dir / "img1").glob("*.jpg"))[:3]
    for frame in frames:
        shutil.copy(frame, calib)
    (calib / "notes.txt").write_text("not an image")
    assert _cli("build-engine", "--onnx", str(tiny_onnx), "--int8", "--calib-dir", str(calib)) == 0
    letterbox = Letterbox((64, 64))
    expected = [
        float(letterbox(cv2.imread(str(f)), "bgr8")[0].astype(np.float64).sum()) for f in frames
    ]
    np.testing.assert_allclose(trt.Builder.calibration_sums, expected, rtol=1e-6)
    assert (
        trt.Builder.built[0]["flags"] == ["FP16", "INT8"]
        and trt.Builder.built[0]["calibrated_batches"] == 3
    )
    cache = tiny_onnx.with_name("tiny.int8.calib")
    assert cache.read_bytes() == b"fake calibration table"
    assert (
        _cli(
            "build-engine",
            "--onnx",
            str(tiny_onnx),
            "--int8",
            "--calib-dir",
            str(calib),
            "--force",
        )
        == 0
    )
    assert trt.Builder.built[1]["calibrated_batches"] == 0  # read from the cache
    assert state.device_allocations == {}  # calibration buffer freed
    record = json.loads(tiny_onnx.with_name("tiny.int8.engine.json").read_text())
    assert record["precision"] == "int8" and record["calibration"]["cache"] == str(cache)


def test_int8_without_images_is_a_clear_error(gpu, tiny_onnx: Path, tmp_path: Path) -> None:
    gpu("10.3.0")
    with pytest.raises(ModelError, match="INT8 needs calibration images: pass --calib-dir"):
        _cli("build-engine", "--onnx", str(tiny_onnx), "--int8")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="calibration folder .*empty: 0 images"):
        _cli(
            "build-engine",
            "--onnx",
            str(tiny_onnx),
            "--int8",
            "--calib-dir",
            str(tmp_path / "empty"),
        )


def test_fp16_on_tensorrt_11_explains_strong_typing(gpu, tiny_onnx: Path) -> None:
    gpu("11.4.0")
    with pytest.raises(ModelError, match="removed the FP16/INT8 builder flags"):
        _cli("build-engine", "--onnx", str(tiny_onnx), "--fp16")
    assert _cli("build-engine", "--onnx", str(tiny_onnx)) == 0


def test_parser_errors_are_reported(gpu, tmp_path: Path) -> None:
    gpu("10.3.0")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(
        b"\x08\x07\x12\x04abcd"
    )  # a valid protobuf prefix (ir_version, producer) but no graph
    with pytest.raises(ModelError, match="bad.onnx"):
        _cli("build-engine", "--onnx", str(bad))


def test_adopt_an_ultralytics_engine(gpu, tmp_path: Path) -> None:
    _, state = gpu("10.3.0")
    meta = json.dumps(
        {"names": {"0": "person"}, "imgsz": [32, 32], "args": {"half": True}}
    ).encode()
    engine = tmp_path / "yolov8n.engine"
    engine.write_bytes(
        len(meta).to_bytes(4, "little")
        + meta
        + fake.make_plan("10.3.0", [1, 3, 32, 32], [1, 5, 21])
    )
    with pytest.raises(ModelError, match="no sidecar yolov8n.engine.json"):
        TensorRTBackend(engine)
    assert _cli("build-engine", "--adopt", str(engine), "--fp16") == 0
    record = json.loads(ec.sidecar_path(engine).read_text())
    assert (
        record["adopted"] is True and record["onnx_sha256"] == "" and record["precision"] == "fp16"
    )
    assert record["profile"] == {
        "images": {"min": [1, 3, 32, 32], "opt": [1, 3, 32, 32], "max": [1, 3, 32, 32]}
    }
    backend = TensorRTBackend(engine)
    assert backend.metadata["names"] == "{0: 'person'}" and backend.output_shape == (1, 5, 21)
    backend.close()
    assert state.retained == 0


def test_without_tensorrt_the_cli_says_so(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "tensorrt", None
    )  # import fails as on a machine without TensorRT
    with pytest.raises(ModelError, match="TensorRT's Python bindings are not installed"):
        _cli("build-engine", "--onnx", str(tiny_onnx))
