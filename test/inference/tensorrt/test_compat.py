"""The TensorRT 8.6 / 10 / 11 compatibility layer, executed against fake tensorrt modules of each
API surface.

The fakes (test/fake_tensorrt.py) implement only the documented calls of their version: the 8.6
fake has no tensor API and the 10 fake no bindings API, so a wrong branch fails with
AttributeError.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

import fake_tensorrt as fake
from yolo_trt_ros.inference.tensorrt import compat as trt_compat

LOG = logging.getLogger("test.trt")


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    def _install(version: str, **kwargs: object):
        module = fake.make_fake_tensorrt(version, **kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        return module

    return _install


def _run(runner: trt_compat.EngineRunner, x: np.ndarray) -> np.ndarray:
    """Bind host buffers (the fake executes on host addresses) and execute once."""
    runner.set_input_shape("images", x.shape)
    out_info = runner.tensor("output0")
    y = np.full(runner.shape("output0"), np.nan, out_info.dtype)
    x = np.ascontiguousarray(x, runner.tensor("images").dtype)
    runner.set_address("images", x.ctypes.data)
    runner.set_address("output0", y.ctypes.data)
    runner.execute_async(0)
    return y


@pytest.mark.parametrize(
    "version, api", [("8.6.1", "bindings"), ("10.3.0", "tensor"), ("11.4.0", "tensor")]
)
def test_load_and_execute_static_engine(install, version: str, api: str) -> None:
    install(version)
    runner = trt_compat.load_engine(fake.make_plan(version, [1, 3, 8, 8], [1, 6, 10]), LOG)
    assert runner.api == api
    assert [(t.name, t.is_input, t.shape, t.dtype) for t in runner.tensors] == [
        ("images", True, (1, 3, 8, 8), np.float32),
        ("output0", False, (1, 6, 10), np.float32),
    ]
    assert runner.inputs[0].profile == ((1, 3, 8, 8),) * 3
    x = np.random.default_rng(0).random((1, 3, 8, 8), np.float32)
    np.testing.assert_array_equal(_run(runner, x), fake.expected_output(x, (1, 6, 10)))
    runner.close()
    with pytest.raises(trt_compat.TensorRTError, match="closed"):
        runner.shape("output0")


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_close_destroys_context_then_engine_then_runtime(install, version: str) -> None:
    import weakref

    install(version)
    runner = trt_compat.load_engine(fake.make_plan(version, [1, 3, 8, 8], [1, 6, 10]), LOG)
    _run(runner, np.zeros((1, 3, 8, 8), np.float32))
    order: list[str] = []
    for name in ("context", "engine", "runtime"):
        weakref.finalize(getattr(runner, f"_{name}"), order.append, name)
    runner.close()
    assert order == ["context", "engine", "runtime"]


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_dynamic_batch_profile(install, version: str) -> None:
    install(version)
    plan = fake.make_plan(
        version, [-1, 3, 4, 4], [-1, 5, 7], profile=[[1, 3, 4, 4], [1, 3, 4, 4], [4, 3, 4, 4]]
    )
    runner = trt_compat.load_engine(plan, LOG)
    info = runner.tensor("images")
    assert info.shape == (-1, 3, 4, 4) and info.profile == (
        (1, 3, 4, 4),
        (1, 3, 4, 4),
        (4, 3, 4, 4),
    )
    x = np.random.default_rng(1).random((3, 3, 4, 4), np.float32)
    y = _run(runner, x)
    assert y.shape == (3, 5, 7)
    np.testing.assert_array_equal(y, fake.expected_output(x, (3, 5, 7)))
    outside = r"outside the engine profile \(min \[1, 3, 4, 4\], max \[4, 3, 4, 4\]\)"
    with pytest.raises(trt_compat.TensorRTError, match=outside):
        runner.set_input_shape("images", (5, 3, 4, 4))
    with pytest.raises(KeyError, match="no I/O tensor 'input'"):
        runner.tensor("input")


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_half_io_dtypes(install, version: str) -> None:
    install(version)
    runner = trt_compat.load_engine(
        fake.make_plan(version, [1, 3, 4, 4], [1, 5, 6], input_dtype="HALF", output_dtype="HALF"),
        LOG,
    )
    assert (
        runner.tensor("images").dtype == np.float16
        and runner.tensor("output0").dtype == np.float16
    )
    x = np.random.default_rng(2).random((1, 3, 4, 4)).astype(np.float16)
    y = _run(runner, x)
    np.testing.assert_allclose(y.astype(np.float32), fake.expected_output(x, (1, 5, 6)), rtol=1e-3)


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_unbound_tensor_fails_execution(install, version: str) -> None:
    install(version)
    runner = trt_compat.load_engine(fake.make_plan(version, [1, 3, 4, 4], [1, 5, 6]), LOG)
    x = np.zeros((1, 3, 4, 4), np.float32)
    runner.set_address("images", x.ctypes.data)
    with pytest.raises(trt_compat.TensorRTError, match="output0|execute_async_v3 failed"):
        runner.execute_async(0)


def test_undeserializable_plan_is_reported(install, caplog: pytest.LogCaptureFixture) -> None:
    install("10.3.0")
    with caplog.at_level(logging.ERROR, logger="test.trt"):
        with pytest.raises(trt_compat.TensorRTError, match="could not deserialize the engine"):
            trt_compat.load_engine(b"\x00garbage", LOG)
        with pytest.raises(trt_compat.TensorRTError, match="could not deserialize"):
            trt_compat.load_engine(fake.make_plan("8.6.1", [1, 3, 4, 4], [1, 5, 6]), LOG)
    assert "TensorRT: 1: [runtime.cpp::deserializeCudaEngine] invalid plan" in caplog.text
    assert "plan built by TensorRT 8.6.1" in caplog.text


def test_unsupported_types_and_versions(install) -> None:
    install("10.3.0")
    with pytest.raises(
        trt_compat.TensorRTError, match="tensor 'images' has TensorRT type DataType.BF16"
    ):
        trt_compat.load_engine(
            fake.make_plan("10.3.0", [1, 3, 4, 4], [1, 5, 6], input_dtype="BF16"), LOG
        )
    install("7.2.3")
    with pytest.raises(trt_compat.TensorRTError, match="TensorRT 7.2.3 is too old"):
        trt_compat.load_engine(b"", LOG)
    assert trt_compat._parse_version("10.13.0.35") == (10, 13, 0, 35)
    assert trt_compat._parse_version("8.6.1.post1") == (8, 6, 1)


# -- builder --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version, flags", [("8.6.1", 1), ("10.3.0", 0)])
def test_create_network_explicit_batch_flag(install, version: str, flags: int) -> None:
    trt = install(version)
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    assert trt_compat.create_network(builder).flags == flags


@pytest.mark.parametrize("version, legacy", [("10.3.0", False), ("8.6.1", False), ("8.2.5", True)])
def test_workspace_limit(install, version: str, legacy: bool) -> None:
    trt = install(version, legacy_workspace=legacy)
    config = trt.Builder(trt_compat.trt_logger(LOG)).create_builder_config()
    assert hasattr(config, "set_memory_pool_limit") is not legacy
    trt_compat.set_workspace(config, 1 << 30)
    assert config.workspace == 1 << 30


def test_precision_flags(install) -> None:
    trt = install("10.3.0")
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    config = builder.create_builder_config()
    trt_compat.set_precision(builder, config, "fp32", None, LOG)
    assert config.flags == set()
    trt_compat.set_precision(builder, config, "fp16", None, LOG)
    assert config.flags == {trt.BuilderFlag.FP16}
    with pytest.raises(trt_compat.TensorRTError, match="INT8 needs a calibrator"):
        trt_compat.set_precision(builder, builder.create_builder_config(), "int8", None, LOG)
    calibrator = trt.IInt8EntropyCalibrator2()
    config = builder.create_builder_config()
    trt_compat.set_precision(builder, config, "int8", calibrator, LOG)
    assert (
        config.flags == {trt.BuilderFlag.FP16, trt.BuilderFlag.INT8}
        and config.int8_calibrator is calibrator
    )


def test_precision_flags_removed_in_tensorrt_11(install) -> None:
    trt = install("11.4.0")
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    config = builder.create_builder_config()
    trt_compat.set_precision(builder, config, "fp32", None, LOG)
    with pytest.raises(
        trt_compat.TensorRTError, match="removed the FP16/INT8 builder flags.*ModelOpt"
    ):
        trt_compat.set_precision(builder, config, "fp16", None, LOG)


def _network(trt, shape: list[int]):
    network = trt_compat.create_network(trt.Builder(trt_compat.trt_logger(LOG)))
    network.inputs.append({"name": "images", "shape": shape, "dtype": "FLOAT"})
    return network


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_profile_registered_when_the_network_is_dynamic(install, version: str) -> None:
    trt = install(version)
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    fixed = {"images": {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [1, 3, 64, 64]}}
    config = builder.create_builder_config()
    assert trt_compat.add_profile(builder, config, _network(trt, [1, 3, 64, 64]), fixed) is None
    assert config.profiles == []
    # dynamic inputs need a profile even when min = opt = max (max_batch 1, fixed imgsz)
    dynamic = _network(trt, [-1, 3, -1, -1])
    profile = trt_compat.add_profile(builder, config, dynamic, fixed)
    assert config.profiles == [profile]
    assert profile.shapes == {"images": [[1, 3, 64, 64]] * 3}
    assert trt_compat.build_serialized(builder, dynamic, config)
    batch = {"images": {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [8, 3, 64, 64]}}
    config = builder.create_builder_config()
    profile = trt_compat.add_profile(builder, config, _network(trt, [-1, 3, 64, 64]), batch)
    assert profile.shapes == {"images": [[1, 3, 64, 64], [1, 3, 64, 64], [8, 3, 64, 64]]}


def test_dynamic_network_without_profile_fails_like_tensorrt(
    install, caplog: pytest.LogCaptureFixture
) -> None:
    trt = install("10.3.0")
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    network = _network(trt, [-1, 3, -1, -1])
    with (
        caplog.at_level(logging.ERROR, logger="test.trt"),
        pytest.raises(trt_compat.TensorRTError, match="could not build the engine"),
    ):
        trt_compat.build_serialized(builder, network, builder.create_builder_config())
    assert "no optimization profile has been defined" in caplog.text


def test_tensorrt_11_fake_lacks_what_11_removed(install) -> None:
    trt = install("11.1.0")
    for name in ("IInt8Calibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator"):
        assert not hasattr(trt, name)
    assert not hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt.BuilderFlag, "INT8")
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    config = builder.create_builder_config()
    assert not hasattr(builder, "platform_has_fast_fp16")
    assert not hasattr(config, "int8_calibrator")
    assert not hasattr(config, "set_calibration_profile")
    assert hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor")
    assert trt_compat.create_network(builder).flags == 0
    old = install("10.3.0")
    assert hasattr(old, "IInt8MinMaxCalibrator") and hasattr(old.BuilderFlag, "INT8")
    assert not hasattr(install("8.6.1"), "IProgressMonitor")


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_precision_check_on_tensorrt_11(install, precision: str) -> None:
    install("11.1.0")
    trt_compat.check_precision("fp32")
    with pytest.raises(trt_compat.TensorRTError, match="TensorRT 11.1.0 removed") as info:
        trt_compat.check_precision(precision)
    assert ("INT8 calibration" in str(info.value)) is (precision == "int8")
    assert "tensorrt<11" in str(info.value)
    install("10.3.0")
    trt_compat.check_precision(precision)
    with pytest.raises(trt_compat.TensorRTError, match="unknown precision 'bf16'"):
        trt_compat.check_precision("bf16")


def test_progress_monitor_logs_phases(
    install, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install("8.6.1")
    assert trt_compat.progress_monitor(LOG) is None  # no IProgressMonitor before 10
    trt = install("10.3.0")
    monkeypatch.setattr(trt_compat, "PROGRESS_INTERVAL_S", 0.0)
    monitor = trt_compat.progress_monitor(LOG)
    assert isinstance(monitor, trt.IProgressMonitor)
    with caplog.at_level(logging.INFO, logger="test.trt"):
        monitor.phase_start("Building engine", None, 2)
        monitor.phase_start("Tactic selection", "Building engine", 40)
        assert monitor.step_complete("Tactic selection", 9) is True
        monitor.phase_finish("Tactic selection")
        monitor.phase_finish("Building engine")
    assert [r.getMessage() for r in caplog.records] == [
        "building engine: Building engine started",
        "building engine: Tactic selection, step 10/40",
        "building engine: Building engine done",
    ]


def test_failed_build_raises(install) -> None:
    trt = install("10.3.0")
    builder = trt.Builder(trt_compat.trt_logger(LOG))
    network = trt_compat.create_network(builder)
    network.inputs.append(
        {"name": "images", "shape": [-1, 3, 64, 64], "dtype": "FLOAT"}
    )  # dynamic, no profile
    with pytest.raises(trt_compat.TensorRTError, match="could not build the engine"):
        trt_compat.build_serialized(builder, network, builder.create_builder_config())


def test_logger_forwards_severities(install, caplog: pytest.LogCaptureFixture) -> None:
    trt = install("10.3.0")
    logger = trt_compat.trt_logger(LOG)
    assert trt_compat.trt_logger(LOG) is logger  # one per process
    with caplog.at_level(logging.DEBUG, logger="test.trt"):
        logger.log(trt.ILogger.Severity.WARNING, "careful")
        logger.log(trt.ILogger.Severity.VERBOSE, "chatter")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "TensorRT: careful"),
        (logging.DEBUG, "TensorRT: chatter"),
    ]
