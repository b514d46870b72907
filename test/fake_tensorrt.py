"""A stand-in ``tensorrt`` module with the documented Python API surface this package uses.

TensorRT cannot be installed on our machines, so the compatibility layer, builder and backend are
exercised against this fake: ``make_fake_tensorrt("8.6.1")`` exposes the TensorRT 8.6 bindings API
(``num_bindings``, ``get_binding_*``, ``set_binding_shape``, ``execute_async_v2``) and no tensor
API is used there; ``make_fake_tensorrt("10.3.0")`` exposes only the tensor API
(``num_io_tensors``, ``get_tensor_*``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), as TensorRT 10 removed the bindings API, and adds ``IProgressMonitor``
(``config.progress_monitor``, called during builds). ``make_fake_tensorrt("11.1.0")`` lacks what
TensorRT 11 removed: the IInt8 calibrators, ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``,
``Builder.platform_has_fast_fp16``, ``config.int8_calibrator``, ``set_calibration_profile`` and the
FP16/INT8 builder flags. As TensorRT does, a build of a network with a dynamic input and no
optimization profile fails (None, error logged), and an exception in a calibrator's ``get_batch``
does not propagate (calibration just ends). Output dims that depend on dynamic input dims are
computed as TensorRT's shape inference would, by running the ONNX (its path is kept in the plan)
with onnxruntime at the input shapes set: the profile's opt shape until one is set.

Serialized engines ("plans") are JSON. What an execution computes is the ``executor`` callable,
called with the inputs and the outputs as lists of (address, shape, numpy dtype) and the stream
handle; ``host_executor`` computes on host memory (CPU tests); test_gpu_check.py passes one that
launches a real CUDA kernel.

An executor with a ``release()`` method is told when an engine is destroyed (TensorRT frees an
engine's device memory then). Default computation (host_executor), for an output of shape (B, R,
N): out[b].flat[k] = 2 * x[b].flat[k % x[b].size] + (k // N), i.e. every output row r is the input
(wrapped) doubled, plus r.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import json
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Bound = tuple[int, tuple[int, ...], np.dtype]
"""A bound tensor: device (or, for host_executor, host) address, shape, dtype."""
Executor = Callable[[list[Bound], list[Bound], int], None]


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    BF16 = 7


_NP = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
}


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass

    def log(self, severity: Severity, msg: str) -> None:
        raise NotImplementedError


class Dims(tuple):
    def __new__(cls, shape: Any = ()) -> Dims:
        return super().__new__(cls, (int(d) for d in shape))


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 1
    REFIT = 3


class BuilderFlag11(enum.Enum):
    """TensorRT 11's BuilderFlag: FP16 and INT8 (and the other weak-typing flags) are gone."""

    REFIT = 3


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class NetworkDefinitionCreationFlag11(enum.IntEnum):
    """TensorRT 11's flags: EXPLICIT_BATCH removed (every network is explicit-batch)."""

    STRONGLY_TYPED = 1


def host_executor(inputs: list[Bound], outputs: list[Bound], stream: int) -> None:
    """The default computation on host addresses (see module docstring)."""
    (x_addr, x_shape, x_dtype), (y_addr, y_shape, y_dtype) = inputs[0], outputs[0]
    x = _host_array(x_addr, x_shape, x_dtype).reshape(x_shape[0], -1).astype(np.float32)
    y = _host_array(y_addr, y_shape, y_dtype).reshape(y_shape[0], -1)
    k = np.arange(y.shape[1])
    y[:] = (2 * x[:, k % x.shape[1]] + (k // y_shape[-1]).astype(np.float32)).astype(y.dtype)


class OnnxExecutor:
    """Runs an ONNX model with onnxruntime on host memory: an engine of that model computes what
    the model does (CPU tests of whole detections through the TensorRT path)."""

    def __init__(self, onnx_path: str | Path):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.input_shapes: list[tuple[int, ...]] = []

    def __call__(self, inputs: list[Bound], outputs: list[Bound], stream: int) -> None:
        names = [i.name for i in self.session.get_inputs()]
        feeds = {
            name: _host_array(addr, shape, dtype).astype(np.float32)
            for name, (addr, shape, dtype) in zip(names, inputs, strict=True)
        }
        self.input_shapes.append(inputs[0][1])
        results = self.session.run(None, feeds)
        for (addr, shape, dtype), result in zip(outputs, results, strict=True):
            assert tuple(result.shape) == shape, (result.shape, shape)
            np.copyto(_host_array(addr, shape, dtype), result, casting="unsafe")


def expected_output(x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """What ``host_executor`` writes for input ``x`` (float32 result)."""
    flat = x.reshape(x.shape[0], -1).astype(np.float32)
    k = np.arange(int(np.prod(out_shape[1:])))
    return (2 * flat[:, k % flat.shape[1]] + (k // out_shape[-1]).astype(np.float32)).reshape(
        out_shape
    )


def _host_array(addr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    count = int(np.prod(shape))
    buf = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(addr)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


# -- runtime --------------------------------------------------------------------------------------


class _Plan:
    def __init__(self, data: dict[str, Any]):
        self.tensors: list[dict[str, Any]] = data["tensors"]
        self.info = data

    def find(self, name: str) -> dict[str, Any]:
        return next(t for t in self.tensors if t["name"] == name)


class _ContextBase:
    def __init__(self, plan: _Plan, executor: Executor):
        self._plan = plan
        self._executor = executor
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}

    def _set_shape(self, name: str, shape: Any) -> bool:
        t = self._plan.find(name)
        shape = tuple(int(d) for d in shape)
        low, _, high = t["profile"]
        if len(shape) != len(low) or not all(
            lo <= d <= hi for d, lo, hi in zip(shape, low, high, strict=True)
        ):
            return False
        self._shapes[name] = shape
        return True

    def _shape(self, name: str) -> Dims:
        """An input's shape as set; an output's with the batch of the inputs and its other dynamic
        dims from the ONNX at the inputs' shapes (``resolved``: at the profile's opt shape, where
        the plan has no ONNX)."""
        t = self._plan.find(name)
        if t["mode"] == "input":
            return Dims(self._shapes.get(name, t["shape"]))
        batch = next((s[0] for s in self._shapes.values()), None)
        resolved = t.get("resolved", t["shape"])
        onnx_path = self._plan.info.get("onnx_path")
        if onnx_path and "resolved" in t:
            inputs = [u for u in self._plan.tensors if u["mode"] == "input"]
            shapes = tuple(
                (u["name"], self._shapes.get(u["name"], tuple(u["profile"][1])), u["dtype"])
                for u in inputs
            )
            outputs = [u["name"] for u in self._plan.tensors if u["mode"] == "output"]
            resolved = _output_shapes(onnx_path, shapes)[outputs.index(name)]
        return Dims(
            [
                (batch if batch is not None else d) if i == 0 and d < 0 else resolved[i]
                for i, d in enumerate(t["shape"])
            ]
        )

    def _run(self, stream: int) -> bool:
        bound: dict[str, list[Bound]] = {"input": [], "output": []}
        for t in self._plan.tensors:
            if t["name"] not in self._addresses:
                return False
            shape = tuple(self._shape(t["name"]))
            if any(d < 0 for d in shape):
                return False
            bound[t["mode"]].append(
                (self._addresses[t["name"]], shape, np.dtype(_NP[DataType[t["dtype"]]]))
            )
        self._executor(bound["input"], bound["output"], stream)
        return True


class _EngineBase:
    def __init__(self, plan: _Plan, executor: Executor):
        self._plan = plan
        self._executor = executor
        self.num_optimization_profiles = 1

    def __del__(self) -> None:
        release = getattr(self._executor, "release", None)
        if release is not None:
            release()


class _Engine10(_EngineBase):
    @property
    def num_io_tensors(self) -> int:
        return len(self._plan.tensors)

    def get_tensor_name(self, index: int) -> str:
        return self._plan.tensors[index]["name"]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return (
            TensorIOMode.INPUT if self._plan.find(name)["mode"] == "input" else TensorIOMode.OUTPUT
        )

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._plan.find(name)["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self._plan.find(name)["dtype"]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        assert profile_index == 0
        return [Dims(s) for s in self._plan.find(name)["profile"]]

    def create_execution_context(self) -> _Context10:
        return _Context10(self._plan, self._executor)


class _Context10(_ContextBase):
    def set_input_shape(self, name: str, shape: Any) -> bool:
        return self._set_shape(name, shape)

    def get_tensor_shape(self, name: str) -> Dims:
        return self._shape(name)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        return self._run(stream_handle)


class _Engine86(_EngineBase):
    @property
    def num_bindings(self) -> int:
        return len(self._plan.tensors)

    def get_binding_name(self, index: int) -> str:
        return self._plan.tensors[index]["name"]

    def binding_is_input(self, index: int) -> bool:
        return self._plan.tensors[index]["mode"] == "input"

    def get_binding_shape(self, index: int) -> Dims:
        return Dims(self._plan.tensors[index]["shape"])

    def get_binding_dtype(self, index: int) -> DataType:
        return DataType[self._plan.tensors[index]["dtype"]]

    def get_profile_shape(self, profile_index: int, binding: int) -> list[Dims]:
        assert profile_index == 0
        return [Dims(s) for s in self._plan.tensors[binding]["profile"]]

    def create_execution_context(self) -> _Context86:
        return _Context86(self._plan, self._executor)


class _Context86(_ContextBase):
    def set_binding_shape(self, binding: int, shape: Any) -> bool:
        return self._set_shape(self._plan.tensors[binding]["name"], shape)

    def get_binding_shape(self, binding: int) -> Dims:
        return self._shape(self._plan.tensors[binding]["name"])

    def execute_async_v2(self, bindings: list[int], stream_handle: int) -> bool:
        if len(bindings) != len(self._plan.tensors):
            return False
        self._addresses = {
            t["name"]: int(a) for t, a in zip(self._plan.tensors, bindings, strict=True) if a
        }
        return self._run(stream_handle)


class _Runtime:
    engine_class: type = _Engine10
    executor: Executor = staticmethod(host_executor)

    def __init__(self, logger: ILogger):
        if not isinstance(logger, ILogger):
            raise TypeError("Runtime needs an ILogger")
        self._logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> Any:
        try:
            data = json.loads(bytes(serialized_engine).decode())
            plan = _Plan(data)
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            self._logger.log(
                Severity.ERROR, "1: [runtime.cpp::deserializeCudaEngine] invalid plan"
            )
            return None
        if data.get("version") != self.version:
            self._logger.log(
                Severity.ERROR, f"plan built by TensorRT {data.get('version')}, not {self.version}"
            )
            return None
        return self.engine_class(plan, type(self).executor)


# -- builder --------------------------------------------------------------------------------------


class _Tensor:
    """ITensor: name, shape (Dims, -1 where dynamic), dtype."""

    def __init__(self, name: str, shape: list[int], dtype: str):
        self.name = name
        self.shape = Dims(shape)
        self.dtype = DataType[dtype]


class _Network:
    def __init__(self, flags: int):
        self.flags = flags
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.onnx_path: str | None = None

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> _Tensor:
        t = self.inputs[index]
        return _Tensor(t["name"], t["shape"], t["dtype"])


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, input: str, min: Dims, opt: Dims, max: Dims) -> None:
        self.shapes[input] = [list(min), list(opt), list(max)]


class _ConfigBase:
    def __init__(self) -> None:
        self.flags: set[Any] = set()
        self.workspace: int | None = None
        self.profiles: list[_Profile] = []

    def set_flag(self, flag: Any) -> None:
        self.flags.add(flag)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class _CalibrationConfig:
    """The implicit-quantization part of IBuilderConfig (8.x-10.x; removed in 11)."""

    def __init__(self) -> None:
        super().__init__()
        self.int8_calibrator: Any = None
        self.calibration_profile: _Profile | None = None

    def set_calibration_profile(self, profile: _Profile) -> bool:
        self.calibration_profile = profile
        return True


class _ProgressConfig:
    """``IBuilderConfig.progress_monitor`` (TensorRT >= 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.progress_monitor: Any = None


class _Config(_ConfigBase):
    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        assert pool == MemoryPoolType.WORKSPACE
        self.workspace = pool_size


class _LegacyConfig(_ConfigBase):
    """IBuilderConfig before 8.4: workspace as ``max_workspace_size`` only."""

    @property
    def max_workspace_size(self) -> int | None:
        return self.workspace

    @max_workspace_size.setter
    def max_workspace_size(self, value: int) -> None:
        self.workspace = value


class _Builder:
    config_class: type = _Config
    built: list[dict[str, Any]] = []
    calibration_sums: list[float] = []
    """Sum of each calibration batch read from the calibrator's device pointer (host memory with
    fake pycuda)."""
    build_seconds = 0.0
    """How long ``build_serialized_network`` takes (a test of build progress logs sets it)."""
    progress_phases: list[tuple[str, str | None, int]] = [
        ("Building engine", None, 2),
        ("Tactic selection", "Building engine", 3),
    ]
    """Phases (name, parent, steps) reported to a progress monitor, in order."""

    def __init__(self, logger: ILogger):
        if not isinstance(logger, ILogger):
            raise TypeError("Builder needs an ILogger")
        self._logger = logger

    def create_network(self, flags: int = 0) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _ConfigBase:
        return self.config_class()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _ConfigBase) -> bytes | None:
        profile = config.profiles[0].shapes if config.profiles else {}
        for t in network.inputs:
            if -1 in t["shape"] and t["name"] not in profile:
                self._logger.log(
                    Severity.ERROR,
                    "4: [network.cpp::validate::3000] Error Code 4: Network has dynamic or shape "
                    "inputs, but no optimization profile has been defined.",
                )
                return None
        if not self._report_progress(getattr(config, "progress_monitor", None)):
            self._logger.log(Severity.ERROR, "the build was cancelled by the progress monitor")
            return None
        time.sleep(self.build_seconds)
        calibrated = 0
        calibrator = getattr(config, "int8_calibrator", None)
        if BuilderFlag.INT8 in config.flags:
            cache = calibrator.read_calibration_cache()
            if cache is None:
                names = [t["name"] for t in network.inputs]
                calibration = config.calibration_profile
                if calibration is not None:
                    shape = tuple(calibration.shapes[network.inputs[0]["name"]][1])
                else:
                    shape = (calibrator.get_batch_size(), *network.inputs[0]["shape"][1:])
                while pointers := _call_from_cpp(self._logger, calibrator.get_batch, names):
                    batch = _host_array(
                        pointers[0], shape, np.dtype(_NP[DataType[network.inputs[0]["dtype"]]])
                    )
                    self.calibration_sums.append(float(batch.astype(np.float64).sum()))
                    calibrated += 1
                if not calibrated:
                    self._logger.log(Severity.ERROR, "calibration failed: no batches")
                    return None
                calibrator.write_calibration_cache(b"fake calibration table")
        tensors = []
        for t in network.inputs:
            shape = t["shape"]
            tensors.append(
                {**t, "mode": "input", "profile": profile.get(t["name"], [shape, shape, shape])}
            )
        outputs = [{**t, "mode": "output"} for t in network.outputs]
        onnx_path = None
        if any(-1 in t["shape"][1:] for t in outputs):
            onnx_path = network.onnx_path
            opt = tuple((t["name"], tuple(t["profile"][1]), t["dtype"]) for t in tensors)
            for t, shape in zip(outputs, _output_shapes(onnx_path, opt), strict=True):
                t["resolved"] = shape
        info = {
            "version": self.version,
            "onnx_path": onnx_path,
            "tensors": tensors + outputs,
            "flags": sorted(f.name for f in config.flags),
            "workspace": config.workspace,
            "network_flags": network.flags,
            "calibrated_batches": calibrated,
            "calibrator": _calibrator_kind(calibrator),
        }
        type(self).built.append(info)
        return json.dumps(info).encode()

    def _report_progress(self, monitor: Any) -> bool:
        """Drive ``monitor`` through ``progress_phases``; False when it cancels the build."""
        if monitor is None:
            return True
        for name, parent, steps in self.progress_phases:
            monitor.phase_start(name, parent, steps)
        for name, _, steps in reversed(self.progress_phases):
            for step in range(steps):
                if not monitor.step_complete(name, step):
                    return False
            monitor.phase_finish(name)
        return True


def _call_from_cpp(logger: ILogger, method: Callable[..., Any], *args: Any) -> Any:
    """Call a Python override as TensorRT's C++ side does: an exception does not propagate (the
    binding logs it and the call counts as returning nothing)."""
    try:
        return method(*args)
    except Exception as exc:  # noqa: BLE001 - what the C++ caller sees
        logger.log(Severity.ERROR, f"exception in {method.__name__}: {exc}")
        return None


@functools.lru_cache(maxsize=64)
def _output_shapes(
    onnx_path: str, inputs: tuple[tuple[str, tuple[int, ...], str], ...]
) -> list[list[int]]:
    """Output shapes of an ONNX model for the (name, shape, dtype) inputs (run by onnxruntime), as
    TensorRT infers them from the network."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    feeds = {name: np.zeros(shape, _NP[DataType[dtype]]) for name, shape, dtype in inputs}
    return [list(out.shape) for out in session.run(None, feeds)]


def _calibrator_kind(calibrator: Any) -> str | None:
    """The TensorRT calibrator class ``calibrator`` derives from (None without one)."""
    if calibrator is None:
        return None
    for kind in (IInt8MinMaxCalibrator, IInt8EntropyCalibrator2):
        if isinstance(calibrator, kind):
            return kind.__name__
    return type(calibrator).__name__


class _OnnxParser:
    def __init__(self, network: _Network, logger: ILogger):
        self._network = network
        self.errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> str:
        return self.errors[index]

    def parse_from_file(self, model: str) -> bool:
        import onnx

        self._network.onnx_path = model
        if self.version < (10,) and not self._network.flags & (
            1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        ):
            self.errors.append("ONNX models need an explicit batch network (EXPLICIT_BATCH flag)")
            return False
        try:
            model_proto = onnx.load(model)
        except Exception as exc:  # noqa: BLE001 - a fake parser reports anything as a parse error
            self.errors.append(f"ModelImporter.cpp: failed to parse ONNX model: {exc}")
            return False
        inits = {i.name for i in model_proto.graph.initializer}
        dtypes = {1: "FLOAT", 10: "HALF"}
        for dst, values in (
            (self._network.inputs, model_proto.graph.input),
            (self._network.outputs, model_proto.graph.output),
        ):
            for v in values:
                if v.name in inits:
                    continue
                dims = [
                    d.dim_value if d.HasField("dim_value") else -1
                    for d in v.type.tensor_type.shape.dim
                ]
                dst.append(
                    {"name": v.name, "shape": dims, "dtype": dtypes[v.type.tensor_type.elem_type]}
                )
        return True


class IInt8Calibrator:
    def __init__(self) -> None:
        pass


class IInt8EntropyCalibrator2(IInt8Calibrator):
    pass


class IInt8MinMaxCalibrator(IInt8Calibrator):
    pass


class IProgressMonitor:
    def __init__(self) -> None:
        pass


def make_fake_tensorrt(
    version: str = "10.3.0", executor: Executor = host_executor, legacy_workspace: bool = False
) -> types.ModuleType:
    """A fresh fake ``tensorrt`` module of ``version`` (8.x: bindings API; 10+: tensor API)."""
    major = int(version.split(".")[0])
    parsed = tuple(int(p) for p in version.split("."))
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version  # type: ignore[attr-defined]
    runtime = type(
        "Runtime",
        (_Runtime,),
        {
            "engine_class": _Engine86 if major < 10 else _Engine10,
            "executor": staticmethod(executor),
            "version": version,
        },
    )
    config_bases: tuple[type, ...] = (_LegacyConfig if legacy_workspace else _Config,)
    if major < 11:
        config_bases = (_CalibrationConfig, *config_bases)
    if major >= 10:
        config_bases = (_ProgressConfig, *config_bases)
    builder_attrs: dict[str, Any] = {
        "config_class": type("IBuilderConfig", config_bases, {}),
        "built": [],
        "calibration_sums": [],
        "version": version,
    }
    if major < 11:
        builder_attrs["platform_has_fast_fp16"] = True
    builder = type("Builder", (_Builder,), builder_attrs)
    parser = type("OnnxParser", (_OnnxParser,), {"version": parsed})
    attrs: dict[str, Any] = {
        "Runtime": runtime,
        "Builder": builder,
        "OnnxParser": parser,
        "ILogger": ILogger,
        "Dims": Dims,
        "DataType": DataType,
        "TensorIOMode": TensorIOMode,
        "MemoryPoolType": MemoryPoolType,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag11,
        "BuilderFlag": BuilderFlag11,
    }
    if major < 11:
        attrs["NetworkDefinitionCreationFlag"] = NetworkDefinitionCreationFlag
        attrs["BuilderFlag"] = BuilderFlag
        attrs["IInt8Calibrator"] = IInt8Calibrator
        attrs["IInt8EntropyCalibrator2"] = IInt8EntropyCalibrator2
        attrs["IInt8MinMaxCalibrator"] = IInt8MinMaxCalibrator
    if major >= 10:
        attrs["IProgressMonitor"] = IProgressMonitor
    for name, value in attrs.items():
        setattr(mod, name, value)
    return mod


def make_plan(
    version: str,
    input_shape: list[int],
    output_shape: list[int],
    profile: list[list[int]] | None = None,
    input_dtype: str = "FLOAT",
    output_dtype: str = "FLOAT",
    input_name: str = "images",
    output_name: str = "output0",
    onnx_path: str | Path | None = None,
) -> bytes:
    """A serialized fake engine with one input and one output (-1 dims are dynamic, ``profile``
    min/opt/max). Output dims that follow dynamic input dims come from ``onnx_path`` (see
    ``_ContextBase._shape``)."""
    profile = profile or [input_shape, input_shape, input_shape]
    output: dict[str, Any] = {
        "name": output_name,
        "mode": "output",
        "shape": output_shape,
        "dtype": output_dtype,
    }
    if onnx_path is not None:
        opt = ((input_name, tuple(profile[1]), input_dtype),)
        output["resolved"] = _output_shapes(str(onnx_path), opt)[0]
    return json.dumps(
        {
            "version": version,
            "onnx_path": None if onnx_path is None else str(onnx_path),
            "tensors": [
                {
                    "name": input_name,
                    "mode": "input",
                    "shape": input_shape,
                    "dtype": input_dtype,
                    "profile": profile,
                },
                output,
            ],
        }
    ).encode()
