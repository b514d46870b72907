"""Engine builder and ``build-engine`` CLI against fake tensorrt/pycuda (real ONNX files, real
calibration images).

What the fake checks: the calls are the documented 8.6/10/11 ones (explicit-batch flag on 8.6,
workspace pool, FP16/INT8 flags and calibrators only before 11, calibrator protocol, a profile for
every dynamic network, progress monitor from 10); what comes out is a cached engine with a sidecar
that the backend then accepts. Real TensorRT never ran here.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import shutil
import sys
import threading
import time
import types
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from yolo_trt_ros.cli import build_engine
from yolo_trt_ros.detection.letterbox import Letterbox
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.selection import device_tree_model
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


def _device_attributes(
    monkeypatch: pytest.MonkeyPatch, driver: types.ModuleType, **values: int
) -> None:
    """Give the fake pycuda ``device_attribute`` and ``Device.get_attribute`` (as real pycuda has)
    with these attribute values."""
    names = types.SimpleNamespace(**{name: name for name in values})
    monkeypatch.setattr(driver, "device_attribute", names, raising=False)
    monkeypatch.setattr(
        driver.Device, "get_attribute", lambda self, attr: values[attr], raising=False
    )


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
    options = engine_builder.BuildOptions("fp32", max_batch=4)
    # rectangular inputs (the default): every stride-multiple size up to the nominal one
    assert engine_builder.engine_spec(onnx, options, platform).profile == {
        "images": {"min": [1, 3, 32, 32], "opt": [1, 3, 320, 480], "max": [4, 3, 320, 480]}
    }
    # tuned for a 640x480 camera: its rectangular input at 320x480 is 320x448
    camera = replace(options, camera_hw=(480, 640))
    assert engine_builder.engine_spec(onnx, camera, platform).profile["images"]["opt"] == [
        1,
        3,
        320,
        448,
    ]
    square = engine_builder.engine_spec(onnx, replace(options, rect=False), platform)
    assert square.profile == {
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
    assert built["tensors"][0]["profile"] == [[1, 3, 32, 32], [1, 3, 96, 96], [8, 3, 96, 96]]
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
    gpu("11.1.0")
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


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_dynamic_axes_onnx_builds_with_max_batch_1(
    gpu, data_dir: Path, tmp_path: Path, version: str
) -> None:
    """`yolo export format=onnx dynamic=True` (batch, height, width dynamic): the parsed network is
    dynamic, so it needs a profile even with min = opt = max (``--square``)."""
    trt, state = gpu(version)
    onnx = tmp_path / "yolov8n-dynamic.onnx"
    shutil.copy(data_dir / "models" / "yolov8n-coco-dynamic.onnx", onnx)
    assert _cli("build-engine", "--onnx", str(onnx), "--square") == 0
    (built,) = trt.Builder.built
    assert built["tensors"][0]["shape"] == [-1, 3, -1, -1]
    assert built["tensors"][0]["profile"] == [[1, 3, 640, 640]] * 3
    # reuses the engine the CLI built
    backend = TensorRTBackend(onnx, precision="fp32", rect=False)
    assert len(trt.Builder.built) == 1
    assert backend.input_shape == (1, 3, 640, 640) and backend.output_shape == (1, 84, 8400)
    x = np.random.default_rng(0).random((1, 3, 640, 640), np.float32)
    np.testing.assert_array_equal(backend.infer(x), fake.expected_output(x, (1, 84, 8400)))
    backend.close()
    assert state.retained == 0 and state.device_allocations == {}


def test_dynamic_axes_onnx_through_the_backend(gpu, data_dir: Path, tmp_path: Path) -> None:
    trt, state = gpu("10.3.0")
    onnx = tmp_path / "yolov8n-dynamic.onnx"
    shutil.copy(data_dir / "models" / "yolov8n-coco-dynamic.onnx", onnx)
    backend = TensorRTBackend(onnx, precision="fp16", max_batch=2, camera_hw=(480, 640))
    assert trt.Builder.built[0]["tensors"][0]["profile"] == [
        [1, 3, 32, 32],
        [1, 3, 480, 640],
        [2, 3, 640, 640],
    ]
    assert backend.dynamic_hw and backend.input_shape == (1, 3, 640, 640)
    assert backend.output_shape == (1, 84, 8400)
    assert backend.infer(np.zeros((2, 3, 640, 640), np.float32)).shape == (2, 84, 8400)
    assert backend.infer(np.zeros((1, 3, 480, 640), np.float32)).shape == (1, 84, 6300)
    assert backend.infer(np.zeros((2, 3, 384, 640), np.float32)).shape == (2, 84, 5040)
    backend.close()
    assert state.retained == 0


@pytest.mark.parametrize("with_images", [True, False])
def test_int8_on_tensorrt_11_is_a_clear_error(
    gpu, tiny_onnx: Path, calib: Path, with_images: bool
) -> None:
    trt, state = gpu("11.1.0")
    argv = ["build-engine", "--onnx", str(tiny_onnx), "--int8"]
    if with_images:
        argv += ["--calib-dir", str(calib)]
    with pytest.raises(ModelError, match="TensorRT 11.1.0 removed .*INT8 calibration") as info:
        _cli(*argv)
    assert "tensorrt<11" in str(info.value)
    assert trt.Builder.built == [] and state.device_allocations == {}


def test_int8_calibration_cache_follows_model_and_images(
    gpu,
    tiny_onnx: Path,
    calib: Path,
    mot_dir: Path,
    make_yolo_onnx,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trt, _ = gpu("10.3.0")
    build = ["build-engine", "--onnx", str(tiny_onnx), "--int8", "--calib-dir", str(calib)]
    assert _cli(*build) == 0
    assert _cli(*build, "--force") == 0
    assert [b["calibrated_batches"] for b in trt.Builder.built] == [3, 0]  # cache reused
    key = json.loads(tiny_onnx.with_name("tiny.int8.calib.json").read_text())
    assert key["onnx_sha256"] == ec.sha256_file(tiny_onnx) and key["calibrator"] == "minmax"
    rng = np.random.default_rng(7)  # retrained: same shapes, other weights
    make_yolo_onnx(
        tiny_onnx,
        rng.random((20, 4), np.float32) * 64,
        rng.random((3, 20), np.float32),
        input_hw=(64, 64),
        metadata={"names": "{0: 'a', 1: 'b', 2: 'c'}", "imgsz": "[64, 64]"},
    )
    with caplog.at_level(logging.INFO):
        assert _cli(*build) == 0
    assert trt.Builder.built[-1]["calibrated_batches"] == 3
    assert "is stale (onnx_sha256), calibrating again" in caplog.text
    shutil.copy(sorted((mot_dir / "img1").glob("*.jpg"))[5], calib)  # a new calibration image
    assert _cli(*build, "--force") == 0
    assert trt.Builder.built[-1]["calibrated_batches"] == 4
    assert _cli(*build, "--force") == 0
    assert trt.Builder.built[-1]["calibrated_batches"] == 0
    assert _cli(*build, "--force", "--calibrator", "entropy") == 0
    assert trt.Builder.built[-1]["calibrated_batches"] == 4  # another algorithm: recalibrate


@pytest.mark.parametrize(
    "argv, calibrator",
    [([], "IInt8MinMaxCalibrator"), (["--calibrator", "entropy"], "IInt8EntropyCalibrator2")],
)
def test_calibrator_choice(
    gpu, tiny_onnx: Path, calib: Path, argv: list[str], calibrator: str
) -> None:
    trt, _ = gpu("8.6.1")
    assert (
        _cli("build-engine", "--onnx", str(tiny_onnx), "--int8", "--calib-dir", str(calib), *argv)
        == 0
    )
    assert trt.Builder.built[0]["calibrator"] == calibrator
    record = json.loads(tiny_onnx.with_name("tiny.int8.engine.json").read_text())
    assert record["calibration"]["calibrator"] == (argv[-1] if argv else "minmax")
    with pytest.raises(ValueError, match="calibrator must be one of minmax, entropy"):
        engine_builder.BuildOptions("int8", calibrator="legacy")


def test_get_batch_error_is_raised_after_the_build(gpu, tiny_onnx: Path, calib: Path) -> None:
    trt, state = gpu("10.3.0")
    (calib / "zz_truncated.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(
        ModelError,
        match=r"INT8 calibration failed: ValueError: calibration image .*zz_truncated.jpg "
        "cannot be decoded",
    ):
        _cli("build-engine", "--onnx", str(tiny_onnx), "--int8", "--calib-dir", str(calib))
    assert len(trt.Builder.calibration_sums) == 3  # the good images were read first
    assert not tiny_onnx.with_name("tiny.int8.calib").exists()  # no table from a partial run
    assert not tiny_onnx.with_name("tiny.int8.engine").exists()
    assert state.device_allocations == {}


def test_build_progress_is_logged(
    gpu, tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    trt, _ = gpu("10.3.0")
    with caplog.at_level(logging.INFO, logger="yolo_trt_ros.tensorrt"):
        assert _cli("build-engine", "--onnx", str(tiny_onnx)) == 0
    progress = [
        r.getMessage() for r in caplog.records if r.name == engine_builder.PROGRESS_LOG.name
    ]
    assert "building engine: Building engine started" in progress
    assert "building engine: Building engine done" in progress
    trt, _ = gpu("8.6.1")  # no IProgressMonitor: a heartbeat while the build runs
    monkeypatch.setattr(engine_builder, "HEARTBEAT_S", 0.02)
    trt.Builder.build_seconds = 0.2
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="yolo_trt_ros.tensorrt"):
        assert _cli("build-engine", "--onnx", str(tiny_onnx), "--force") == 0
    beats = [r for r in caplog.records if "building engine: still running" in r.getMessage()]
    assert len(beats) >= 3 and {r.name for r in beats} == {engine_builder.PROGRESS_LOG.name}


@pytest.mark.parametrize(
    "attributes, capability, workspace_mb",
    [
        ({"INTEGRATED": 1, "MULTIPROCESSOR_COUNT": 16}, (8, 7), 1024),
        ({"INTEGRATED": 0, "MULTIPROCESSOR_COUNT": 132}, (9, 0), 2048),
        ({}, (8, 7), 1024),  # pycuda without the attributes: Orin's compute capability
        ({}, (8, 9), 2048),
    ],
)
def test_default_workspace_is_smaller_on_integrated_gpus(
    tiny_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
    attributes: dict[str, int],
    capability: tuple[int, int],
    workspace_mb: int,
) -> None:
    trt = fake.make_fake_tensorrt("10.3.0")
    package, driver, _ = make_fake_pycuda("Orin" if capability == (8, 7) else "GPU", capability)
    for name, module in (("tensorrt", trt), ("pycuda", package), ("pycuda.driver", driver)):
        monkeypatch.setitem(sys.modules, name, module)
    if attributes:
        _device_attributes(monkeypatch, driver, **attributes)
    assert _cli("build-engine", "--onnx", str(tiny_onnx)) == 0
    assert trt.Builder.built[0]["workspace"] == workspace_mb << 20
    record = json.loads(tiny_onnx.with_name("tiny.fp32.engine.json").read_text())
    assert record["build"]["workspace_mb"] == workspace_mb
    assert record["sm_count"] == attributes.get("MULTIPROCESSOR_COUNT", 0)


def test_sidecar_tells_orin_modules_apart(
    gpu, tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt, _ = gpu("10.3.0")
    driver = sys.modules["pycuda.driver"]
    _device_attributes(monkeypatch, driver, INTEGRATED=1, MULTIPROCESSOR_COUNT=16)
    model = tmp_path / "proc" / "device-tree" / "model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    monkeypatch.setattr(engine_builder, "device_tree_model", lambda: device_tree_model(tmp_path))
    assert _cli("build-engine", "--onnx", str(tiny_onnx), "--fp16") == 0
    record = json.loads(tiny_onnx.with_name("tiny.fp16.engine.json").read_text())
    assert (record["gpu_name"], record["compute_capability"]) == ("Fake Orin", "8.7")
    assert (record["sm_count"], record["total_memory_gib"]) == (16, 8)
    assert record["device_model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    # the same files on an Orin NX (8 SMs, other board): rebuilt, the reason names the fields
    _device_attributes(monkeypatch, driver, INTEGRATED=1, MULTIPROCESSOR_COUNT=8)
    model.write_bytes(b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    with pytest.raises(ModelError, match="built for another platform \\(sm_count: engine has 16"):
        TensorRTBackend(tiny_onnx.with_name("tiny.fp16.engine"))
    assert _cli("build-engine", "--onnx", str(tiny_onnx), "--fp16") == 0
    assert len(trt.Builder.built) == 2


def test_cli_waits_for_a_concurrent_build_then_reuses_it(
    gpu, tiny_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """build-engine started while a node builds the same engine waits for the lock, then finds
    the engine up to date instead of building it again."""
    trt, _ = gpu("10.3.0")
    engine = tiny_onnx.with_name("tiny.fp32.engine")
    assert _cli("build-engine", "--onnx", str(tiny_onnx)) == 0
    sidecar = ec.sidecar_path(engine)
    record = sidecar.read_text()
    sidecar.unlink()  # the other builder has written the engine, not yet its sidecar
    codes: list[int] = []
    with open(ec.lock_path(engine), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with caplog.at_level(logging.INFO):
            thread = threading.Thread(
                target=lambda: codes.append(_cli("build-engine", "--onnx", str(tiny_onnx)))
            )
            thread.start()
            deadline = time.monotonic() + 10
            while "waiting for another process building tiny.fp32.engine" not in caplog.text:
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.01)
            sidecar.write_text(record)
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
            thread.join(timeout=10)
    assert codes == [0] and len(trt.Builder.built) == 1
    assert "is up to date" in caplog.records[-1].getMessage()
