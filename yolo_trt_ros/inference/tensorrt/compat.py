"""The one place that knows how TensorRT 8.6, 10.x and 11.x differ (runtime and builder).

Runtime: TensorRT 10 removed the bindings API, so engines run through the name-based tensor API
(``num_io_tensors``, ``get_tensor_name/mode/shape/dtype``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``); on TensorRT 8.x the bindings API (``get_binding_*``,
``set_binding_shape``, ``execute_async_v2``) is used, which every 8.x release has. ``load_engine``
returns an ``EngineRunner`` that hides the difference. Builder: explicit-batch network flag
(required before 10, deprecated after, removed in 11), workspace limit (``set_memory_pool_limit``
since 8.4, else ``max_workspace_size``), precision flags and INT8 calibrators (removed in 11, where
the ONNX itself must carry FP16 types or Q/DQ nodes), and build progress (``IProgressMonitor``
from 10).

``tensorrt`` is imported inside the functions, so importing this module never needs TensorRT.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

if TYPE_CHECKING:
    import tensorrt as trt

Shape = tuple[int, ...]


class TensorRTError(RuntimeError):
    """TensorRT refused an operation; the message says which and why."""


class EngineDeserializeError(TensorRTError):
    """TensorRT could not deserialize an engine plan (other TensorRT or GPU, or corrupt)."""


@dataclass(frozen=True)
class TensorInfo:
    """One engine I/O tensor. ``shape`` has -1 for dynamic dims; ``profile`` is (min, opt, max) of
    an input under optimization profile 0 (the static shape three times when nothing is dynamic),
    None for outputs."""

    name: str
    is_input: bool
    shape: Shape
    dtype: np.dtype
    profile: tuple[Shape, Shape, Shape] | None


def tensorrt_version() -> tuple[int, ...]:
    """The imported TensorRT's version as integers, e.g. (10, 3, 0, 26)."""
    import tensorrt as trt

    return _parse_version(trt.__version__)


def _parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    if not parts:
        raise TensorRTError(f"cannot parse the TensorRT version {text!r}")
    return tuple(parts)


def _major() -> int:
    return tensorrt_version()[0]


def check_supported() -> None:
    """Raise TensorRTError for TensorRT versions before 8 (no explicit-batch ONNX engines worth
    supporting)."""
    version = tensorrt_version()
    if version[0] < 8:
        raise TensorRTError(
            f"TensorRT {'.'.join(map(str, version))} is too old: 8.6 or newer is required"
        )


# -- logging --------------------------------------------------------------------------------------

_LOGGERS: dict[int, trt.ILogger] = {}


def trt_logger(log: logging.Logger) -> trt.ILogger:
    """A TensorRT logger forwarding to ``log``; one per process (TensorRT wants the same one
    everywhere)."""
    import tensorrt as trt

    key = id(trt)
    if key not in _LOGGERS:
        severity = trt.ILogger.Severity
        levels = {
            severity.INTERNAL_ERROR: logging.CRITICAL,
            severity.ERROR: logging.ERROR,
            severity.WARNING: logging.WARNING,
            severity.INFO: logging.INFO,
        }

        class _Forwarding(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
                log.log(levels.get(severity, logging.DEBUG), "TensorRT: %s", msg)

        _LOGGERS[key] = _Forwarding()
    return _LOGGERS[key]


# -- runtime --------------------------------------------------------------------------------------


class EngineRunner(ABC):
    """A deserialized engine with one execution context, driven by tensor names on every TensorRT
    version.

    Call with the CUDA context current. ``execute_async`` only enqueues work on the given stream.
    """

    api: str
    """"tensor" (TensorRT >= 10) or "bindings" (TensorRT 8.x)."""
    tensors: list[TensorInfo]

    def __init__(
        self, runtime: trt.Runtime, engine: trt.ICudaEngine, context: trt.IExecutionContext
    ):
        self._runtime: trt.Runtime | None = runtime
        self._engine: trt.ICudaEngine | None = engine
        self._context: trt.IExecutionContext | None = context

    @property
    def inputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors if t.is_input]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors if not t.is_input]

    def tensor(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(
            f"engine has no I/O tensor {name!r} (it has {', '.join(t.name for t in self.tensors)})"
        )

    def set_input_shape(self, name: str, shape: Sequence[int]) -> None:
        """Set a dynamic input's shape; TensorRTError when outside the engine's profile."""
        info = self.tensor(name)
        shape = tuple(int(d) for d in shape)
        if info.profile is not None:
            low, _, high = info.profile
            fits = len(shape) == len(low) and all(
                lo <= d <= hi for d, lo, hi in zip(shape, low, high, strict=True)
            )
            if not fits:
                raise TensorRTError(
                    f"input '{name}' shape {list(shape)} is outside the engine profile "
                    f"(min {list(low)}, max {list(high)})"
                )
        if not self._set_input_shape(name, shape):
            raise TensorRTError(f"TensorRT rejected shape {list(shape)} for input '{name}'")

    @abstractmethod
    def _set_input_shape(self, name: str, shape: Shape) -> bool: ...

    @abstractmethod
    def shape(self, name: str) -> Shape:
        """Current shape of a tensor (outputs resolved from the input shapes set so far)."""

    @abstractmethod
    def set_address(self, name: str, address: int) -> None:
        """Bind device memory to a tensor."""

    @abstractmethod
    def execute_async(self, stream_handle: int) -> None:
        """Enqueue one inference on the CUDA stream ``stream_handle``; TensorRTError if TensorRT
        refuses."""

    def close(self) -> None:
        """Destroy context, engine and runtime (in that order: TensorRT requires it), freeing their
        device memory. Nothing else may hold references to them."""
        self._context = None
        self._engine = None
        self._runtime = None

    def _live(self) -> tuple[trt.ICudaEngine, trt.IExecutionContext]:
        if self._engine is None or self._context is None:
            raise TensorRTError("engine is closed")
        return self._engine, self._context


def load_engine(plan: bytes, log: logging.Logger) -> EngineRunner:
    """Deserialize ``plan`` and create its execution context (CUDA context must be current)."""
    import tensorrt as trt

    check_supported()
    runtime = trt.Runtime(trt_logger(log))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineDeserializeError(
            f"TensorRT {trt.__version__} could not deserialize the engine (built by another "
            "TensorRT version, "
            "for another GPU, or corrupt; the TensorRT error is logged above)"
        )
    context = engine.create_execution_context()
    if context is None:
        raise TensorRTError("TensorRT could not create an execution context (out of GPU memory?)")
    if _major() >= 10:
        return _TensorApiRunner(runtime, engine, context)
    return _BindingsApiRunner(runtime, engine, context)


def _dims(dims: trt.Dims) -> Shape:
    return tuple(int(dims[i]) for i in range(len(dims)))


def _np_dtype(dtype: trt.DataType, name: str) -> np.dtype:
    import tensorrt as trt

    table = {
        trt.DataType.FLOAT: np.float32,
        trt.DataType.HALF: np.float16,
        trt.DataType.INT32: np.int32,
        trt.DataType.INT8: np.int8,
        trt.DataType.BOOL: np.bool_,
    }
    if dtype not in table:
        raise TensorRTError(
            f"tensor '{name}' has TensorRT type {dtype}, which this package does not handle"
        )
    return np.dtype(table[dtype])


class _TensorApiRunner(EngineRunner):
    api = "tensor"

    def __init__(
        self, runtime: trt.Runtime, engine: trt.ICudaEngine, context: trt.IExecutionContext
    ):
        import tensorrt as trt

        super().__init__(runtime, engine, context)
        self.tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = _dims(engine.get_tensor_shape(name))
            profile = None
            if is_input:
                if -1 in shape:
                    low, opt, high = (_dims(d) for d in engine.get_tensor_profile_shape(name, 0))
                    profile = (low, opt, high)
                else:
                    profile = (shape, shape, shape)
            self.tensors.append(
                TensorInfo(
                    name, is_input, shape, _np_dtype(engine.get_tensor_dtype(name), name), profile
                )
            )

    def _set_input_shape(self, name: str, shape: Shape) -> bool:
        return self._live()[1].set_input_shape(name, shape)

    def shape(self, name: str) -> Shape:
        return _dims(self._live()[1].get_tensor_shape(name))

    def set_address(self, name: str, address: int) -> None:
        if not self._live()[1].set_tensor_address(name, address):
            raise TensorRTError(f"TensorRT rejected the address of tensor '{name}'")

    def execute_async(self, stream_handle: int) -> None:
        if not self._live()[1].execute_async_v3(stream_handle):
            raise TensorRTError("execute_async_v3 failed (the TensorRT error is logged above)")


class _LegacyEngine(Protocol):
    """The TensorRT 8.x bindings API of ICudaEngine (removed in 10, so absent from the 10.x
    stubs)."""

    @property
    def num_bindings(self) -> int: ...

    def get_binding_name(self, index: int) -> str: ...

    def binding_is_input(self, index: int) -> bool: ...

    def get_binding_shape(self, index: int) -> trt.Dims: ...

    def get_binding_dtype(self, index: int) -> trt.DataType: ...

    def get_profile_shape(self, profile_index: int, binding: int) -> list[trt.Dims]: ...


class _LegacyContext(Protocol):
    """The TensorRT 8.x bindings API of IExecutionContext."""

    def set_binding_shape(self, binding: int, shape: Shape) -> bool: ...

    def get_binding_shape(self, binding: int) -> trt.Dims: ...

    def execute_async_v2(self, bindings: list[int], stream_handle: int) -> bool: ...


class _BindingsApiRunner(EngineRunner):
    api = "bindings"

    def __init__(
        self, runtime: trt.Runtime, engine: trt.ICudaEngine, context: trt.IExecutionContext
    ):
        super().__init__(runtime, engine, context)
        legacy = cast(_LegacyEngine, engine)
        self._index: dict[str, int] = {}
        self.tensors = []
        for i in range(legacy.num_bindings):
            name = legacy.get_binding_name(i)
            is_input = legacy.binding_is_input(i)
            shape = _dims(legacy.get_binding_shape(i))
            profile = None
            if is_input:
                if -1 in shape:
                    low, opt, high = (_dims(d) for d in legacy.get_profile_shape(0, i))
                    profile = (low, opt, high)
                else:
                    profile = (shape, shape, shape)
            self._index[name] = i
            self.tensors.append(
                TensorInfo(
                    name, is_input, shape, _np_dtype(legacy.get_binding_dtype(i), name), profile
                )
            )
        self._bindings = [0] * len(self.tensors)

    def _legacy_context(self) -> _LegacyContext:
        return cast(_LegacyContext, self._live()[1])

    def _set_input_shape(self, name: str, shape: Shape) -> bool:
        return self._legacy_context().set_binding_shape(self._index[name], shape)

    def shape(self, name: str) -> Shape:
        return _dims(self._legacy_context().get_binding_shape(self._index[name]))

    def set_address(self, name: str, address: int) -> None:
        self._bindings[self._index[name]] = int(address)

    def execute_async(self, stream_handle: int) -> None:
        context = self._legacy_context()
        if not all(self._bindings):
            unbound = [t.name for t, a in zip(self.tensors, self._bindings, strict=True) if not a]
            raise TensorRTError(f"no address bound for tensor(s) {', '.join(unbound)}")
        if not context.execute_async_v2(self._bindings, stream_handle):
            raise TensorRTError("execute_async_v2 failed (the TensorRT error is logged above)")


# -- builder --------------------------------------------------------------------------------------


class _LegacyBuilderConfig(Protocol):
    """IBuilderConfig before TensorRT 8.4 (workspace as an attribute; removed in 10)."""

    max_workspace_size: int


def create_network(builder: trt.Builder) -> trt.INetworkDefinition:
    """An explicit-batch network definition (the flag is required before TensorRT 10 and ignored
    after)."""
    import tensorrt as trt

    flags = 0
    if _major() < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return builder.create_network(flags)


def set_workspace(config: trt.IBuilderConfig, nbytes: int) -> None:
    """Limit the builder's workspace memory pool to ``nbytes``."""
    import tensorrt as trt

    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
    else:
        cast(_LegacyBuilderConfig, config).max_workspace_size = nbytes


def check_precision(precision: str) -> None:
    """TensorRTError when this TensorRT cannot build ``precision`` (before anything is created):
    TensorRT 11 removed the FP16/INT8 builder flags and the INT8 calibrators."""
    import tensorrt as trt

    if precision not in ("fp32", "fp16", "int8"):
        raise TensorRTError(f"unknown precision {precision!r}")
    if precision == "fp32" or _major() < 11:
        return
    removed = "the FP16/INT8 builder flags"
    if precision == "int8":
        removed += " and INT8 calibration (IInt8 calibrators)"
    raise TensorRTError(
        f"TensorRT {trt.__version__} removed {removed} (networks are strongly typed): convert "
        "the ONNX first (FP16: ModelOpt AutoCast; INT8: Q/DQ nodes from ModelOpt) and build it "
        "with precision fp32, which keeps the ONNX's own types, or use TensorRT 10 "
        "(pip install 'tensorrt<11')"
    )


def set_precision(
    builder: trt.Builder,
    config: trt.IBuilderConfig,
    precision: str,
    calibrator: trt.IInt8Calibrator | None,
    log: logging.Logger,
) -> None:
    """Enable FP16 or INT8 (with FP16 fallback) kernels; on TensorRT 11 only fp32 (types come from
    the ONNX)."""
    import tensorrt as trt

    check_precision(precision)
    if precision == "fp32":
        return
    if not builder.platform_has_fast_fp16:
        log.warning("this GPU has no fast FP16; %s kernels may be slower than FP32", precision)
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibrator is None:
            raise TensorRTError("INT8 needs a calibrator (calibration images)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator


def is_dynamic(network: trt.INetworkDefinition) -> bool:
    """True when any network input has a dynamic (-1) dimension."""
    return any(-1 in _dims(network.get_input(i).shape) for i in range(network.num_inputs))


def add_profile(
    builder: trt.Builder,
    config: trt.IBuilderConfig,
    network: trt.INetworkDefinition,
    profile: Mapping[str, Mapping[str, Sequence[int]]],
) -> trt.IOptimizationProfile | None:
    """Register one optimization profile (input -> min/opt/max shapes) when the parsed network has
    a dynamic input (TensorRT requires one then, even with min = opt = max); returns it."""
    if not is_dynamic(network):
        return None
    import tensorrt as trt

    opt_profile = builder.create_optimization_profile()
    for name, shapes in profile.items():
        low, opt, high = (trt.Dims([int(d) for d in shapes[key]]) for key in ("min", "opt", "max"))
        opt_profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(opt_profile) < 0:
        raise TensorRTError(f"TensorRT rejected the optimization profile {dict(profile)}")
    return opt_profile


def build_serialized(
    builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig
) -> bytes:
    """Build and serialize (``build_serialized_network``: 8.x and later); TensorRTError when the
    build fails."""
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TensorRTError("TensorRT could not build the engine (its errors are logged above)")
    return bytes(memoryview(plan))


PROGRESS_INTERVAL_S = 10.0
"""Least seconds between two step lines of one build phase."""


def progress_monitor(log: logging.Logger) -> trt.IProgressMonitor | None:
    """An ``IProgressMonitor`` (TensorRT >= 10) logging build phases to ``log``: top-level phases
    when they start and finish, steps at most every ``PROGRESS_INTERVAL_S``; None before 10."""
    import tensorrt as trt

    if _major() < 10:
        return None

    class _Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}
            self._top: set[str] = set()
            self._logged = 0.0

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            if parent_phase is None:
                self._top.add(phase_name)
            log.log(self._level(phase_name), "building engine: %s started", phase_name)

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._logged >= PROGRESS_INTERVAL_S:
                self._logged = now
                total = self._steps.get(phase_name, 0)
                log.info("building engine: %s, step %d/%d", phase_name, step + 1, total)
            return True

        def phase_finish(self, phase_name: str) -> None:
            log.log(self._level(phase_name), "building engine: %s done", phase_name)
            self._steps.pop(phase_name, None)
            self._top.discard(phase_name)

        def _level(self, phase_name: str) -> int:
            return logging.INFO if phase_name in self._top else logging.DEBUG

    return _Progress()
