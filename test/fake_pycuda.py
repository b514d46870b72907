"""A stand-in ``pycuda.driver`` whose "device memory" is host memory, for CPU tests of the TensorRT
code.

Device allocations are host buffers, so ``int(allocation)`` is a host address that fake_tensorrt's
host executor can read and write; copies are memmoves. It keeps the books a leak check needs: live
device allocations, pinned host allocations, loaded modules, primary-context retains and, per
thread, pycuda's context stack and the CUDA driver's (``libcuda``: the few ``cuCtx*`` calls the
package makes through ctypes). Contexts behave as pycuda's C++ ``context`` and ``primary_context``
do (src/cpp/cuda.hpp): ``push`` keeps only pycuda's top context on the driver's stack, ``detach``
of a primary context releases it only while it is current or on the thread that retained it, and
never pops it off the driver's stack.

Module loading: with ``loads_kernels`` (off by default, so the backend's GPU path stays off: this
device runs no kernels) ``module_from_buffer`` checks PTX as the driver's JIT does (PTX ISA version
against ``driver_version``, ``.target`` against the compute capability, ``.entry`` names) and
accepts the fake cubins of ``pycuda.compiler.SourceModule`` (which needs ``nvcc`` on PATH) built
for this device; anything else is refused. test_gpu_check.py runs the kernels on a real GPU.
"""

from __future__ import annotations

import ctypes
import itertools
import re
import shutil
import threading
import types
import weakref
from typing import Any

import numpy as np

PRIMARY_HANDLE = 0x7F00_0000
"""The device's primary context handle (``CUcontext``)."""

_PTX_ISA = {11040: (7, 4), 11080: (7, 8), 12050: (8, 5), 12070: (8, 6), 13000: (9, 0)}
_PTX_ISA |= {12000 + 10 * minor: (8, minor) for minor in range(5)} | {12080: (8, 7), 12090: (8, 8)}
"""The newest PTX ISA a driver of each CUDA version loads (PTX ISA release history)."""


def max_ptx_isa(driver_version: int) -> tuple[int, int]:
    return _PTX_ISA[max(v for v in _PTX_ISA if v <= driver_version)]


class _Stacks:
    """One thread's context stacks: pycuda's (context objects) and the driver's (handles)."""

    def __init__(self) -> None:
        self.pycuda: list[Any] = []
        self.driver: list[int] = []


class FakeCudaState:
    def __init__(
        self,
        gpu_name: str,
        compute_capability: tuple[int, int],
        total_memory: int,
        driver_version: int,
        loads_kernels: bool,
    ):
        self.gpu_name = gpu_name
        self.compute_capability = compute_capability
        self.total_memory = total_memory
        self.driver_version = driver_version
        self.loads_kernels = loads_kernels
        self.device_allocations: dict[int, Any] = {}
        self.pinned: dict[int, Any] = {}
        self.modules: weakref.WeakSet[Any] = weakref.WeakSet()
        self.retained = 0
        self.copies = 0
        self.threads: dict[int, _Stacks] = {}
        self.libcuda = FakeLibcuda(self)

    def stacks(self) -> _Stacks:
        """The calling thread's stacks."""
        return self.threads.setdefault(threading.get_ident(), _Stacks())

    @property
    def stack(self) -> int:
        """Contexts on pycuda's stacks, all threads."""
        return sum(len(s.pycuda) for s in self.threads.values())

    @property
    def driver_stack(self) -> int:
        """Contexts on the driver's stacks, all threads."""
        return sum(len(s.driver) for s in self.threads.values())


class FakeLibcuda:
    """The ``cuCtx*`` stack calls of ``ctypes.CDLL("libcuda.so.1")`` on the fake's stacks."""

    CUDA_ERROR_INVALID_CONTEXT = 201

    def __init__(self, state: FakeCudaState):
        self._state = state

    def cuCtxPushCurrent_v2(self, handle: ctypes.c_void_p) -> int:
        self._state.stacks().driver.append(int(handle.value or 0))
        return 0

    def cuCtxPopCurrent_v2(self, out: Any) -> int:
        driver = self._state.stacks().driver
        if not driver:
            return self.CUDA_ERROR_INVALID_CONTEXT
        out._obj.value = driver.pop()
        return 0

    def cuCtxGetCurrent(self, out: Any) -> int:
        driver = self._state.stacks().driver
        out._obj.value = driver[-1] if driver else None
        return 0


def make_fake_pycuda(
    gpu_name: str = "Fake Orin",
    compute_capability: tuple[int, int] = (8, 7),
    total_memory: int = 8 << 30,
    driver_version: int = 12060,
    loads_kernels: bool = False,
) -> tuple[types.ModuleType, types.ModuleType, FakeCudaState]:
    """(pycuda package, pycuda.driver, state) to install in ``sys.modules``; the package's
    ``compiler`` attribute is ``pycuda.compiler``."""
    state = FakeCudaState(
        gpu_name, compute_capability, total_memory, driver_version, loads_kernels
    )
    handles = itertools.count(0x1000)
    sm = compute_capability[0] * 10 + compute_capability[1]

    class Error(Exception):
        pass

    class LogicError(Error):
        pass

    class CudaRuntimeError(Error):
        pass

    def driver_pop() -> None:
        if state.libcuda.cuCtxPopCurrent_v2(ctypes.byref(ctypes.c_void_p())) != 0:
            raise LogicError("cuCtxPopCurrent failed: invalid device context")

    def driver_push(handle: int) -> None:
        state.libcuda.cuCtxPushCurrent_v2(ctypes.c_void_p(handle))

    def current_context(except_: Any = None) -> Any:
        """pycuda's context::current_context: drops dead (or ``except_``) entries on top."""
        stack = state.stacks().pycuda
        while stack:
            if stack[-1] is not except_ and stack[-1].valid:
                return stack[-1]
            stack.pop()
        return None

    def prepare_context_switch() -> None:
        if state.stacks().pycuda:
            driver_pop()

    def require_context() -> None:
        if current_context() is None:
            raise LogicError(
                "explicit_context_dependent failed: invalid device context - no currently "
                "active context?"
            )

    class Context:
        """pycuda's primary_context (only ``retain_primary_context`` makes them here)."""

        def __init__(self) -> None:
            self.handle = PRIMARY_HANDLE
            self.valid = True
            self.thread = threading.get_ident()

        def push(self) -> None:
            prepare_context_switch()
            driver_push(self.handle)
            state.stacks().pycuda.append(self)

        @staticmethod
        def pop() -> None:
            prepare_context_switch()
            stack = state.stacks().pycuda
            if not stack:
                raise LogicError(
                    "context::pop failed: invalid device context - cannot pop non-current context"
                )
            current_context()
            if not stack:
                raise LogicError("m_stack::pop failed: cannot pop context from empty stack")
            stack.pop()
            current = current_context()
            if current is not None:
                driver_push(current.handle)

        @staticmethod
        def get_current() -> Context | None:
            return current_context()

        @staticmethod
        def get_device() -> Device:
            require_context()
            return Device(0)

        def detach(self) -> None:
            if not self.valid:
                raise LogicError(
                    "context::detach failed: invalid device context - cannot detach from "
                    "invalid context"
                )
            active = current_context() is self
            if active:
                state.retained -= 1  # cuDevicePrimaryCtxRelease: no pop
            elif self.thread == threading.get_ident():
                driver_push(self.handle)
                state.retained -= 1
            # else another thread, not current: pycuda does nothing and the retain leaks
            self.valid = False
            if active:
                new_active = current_context(except_=self)
                if new_active is not None:
                    driver_push(new_active.handle)

    def check_image(data: bytes) -> list[str]:
        """The entry names of a module image the fake driver accepts; raises as cuModuleLoadDataEx
        would otherwise."""

        def fail(error: type[Error], text: str) -> Error:
            return error(f"cuModuleLoadDataEx failed: {text} - ")

        if not state.loads_kernels:
            raise fail(LogicError, "operation not supported")
        if data.startswith(b"\x7fELF fake cubin "):
            arch, _, entries = data[len(b"\x7fELF fake cubin ") :].decode().partition(" ")
            if arch != f"sm_{sm}":
                raise fail(CudaRuntimeError, "no kernel image is available for execution")
            return entries.split(",")
        try:
            text = data.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise fail(LogicError, "device kernel image is invalid") from None
        version = re.search(r"^\.version (\d+)\.(\d+)\s*$", text, re.MULTILINE)
        target = re.search(r"^\.target sm_(\d+)\s*$", text, re.MULTILINE)
        if version is None or target is None:
            raise fail(LogicError, "a PTX JIT compilation failed")
        if (int(version[1]), int(version[2])) > max_ptx_isa(state.driver_version):
            raise fail(LogicError, "the provided PTX was compiled with an unsupported toolchain.")
        if int(target[1]) > sm:
            raise fail(LogicError, "a PTX JIT compilation failed")
        return re.findall(r"^\.visible \.entry (\w+)\(", text, re.MULTILINE)

    class Function:
        def __init__(self, name: str):
            self.name = name
            self.arg_format = ""

        def prepare(self, arg_types: str) -> Function:
            self.arg_format = arg_types
            return self

    class Module:
        def __init__(self, entries: list[str]):
            require_context()
            self._entries = set(entries)
            state.modules.add(self)

        def get_function(self, name: str) -> Function:
            if name not in self._entries:
                raise LogicError("cuModuleGetFunction failed: named symbol not found")
            return Function(name)

    def module_from_buffer(
        buffer: Any, options: Any = None, message_handler: Any = None
    ) -> Module:
        require_context()
        return Module(check_image(bytes(buffer)))

    class DeviceAllocation:
        def __init__(self, nbytes: int):
            require_context()
            self._buf = np.zeros(max(int(nbytes), 1), np.uint8)
            self.nbytes = int(nbytes)
            state.device_allocations[id(self)] = self

        def __int__(self) -> int:
            return int(self._buf.ctypes.data)

        __index__ = __int__

        def free(self) -> None:
            state.device_allocations.pop(id(self), None)

    class HostAllocation(bytearray):
        def free(self) -> None:
            state.pinned.pop(id(self), None)

        def get_device_pointer(
            self,
        ) -> int:  # mapped (DEVICEMAP) memory: "device" memory is host memory here
            return ctypes.addressof(ctypes.c_char.from_buffer(self))

    host_alloc_flags = types.SimpleNamespace(PORTABLE=1, DEVICEMAP=2, WRITECOMBINED=4)

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int):
            if index != 0:
                raise LogicError(f"cuDeviceGet failed: invalid device ordinal {index}")

        def name(self) -> str:
            return state.gpu_name

        def compute_capability(self) -> tuple[int, int]:
            return state.compute_capability

        def total_memory(self) -> int:
            return state.total_memory

        def retain_primary_context(self) -> Context:
            state.retained += 1
            return Context()

    class Stream:
        def __init__(self) -> None:
            require_context()
            self.handle = next(handles)

        def synchronize(self) -> None:
            require_context()

    class Event:
        def record(self, stream: Stream | None = None) -> None:
            pass

        def time_since(self, other: Event) -> float:
            return 0.0

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        return DeviceAllocation(nbytes)

    def pagelocked_empty(
        shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0
    ) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        host = HostAllocation(max(count * dtype.itemsize, 1))
        state.pinned[id(host)] = host
        return np.ndarray(shape, dtype, buffer=host)

    def mem_get_info() -> tuple[int, int]:
        require_context()
        used = sum(a.nbytes for a in state.device_allocations.values())
        return state.total_memory - used, state.total_memory

    def _copy(dst: int, src: int, nbytes: int) -> None:
        require_context()
        ctypes.memmove(dst, src, nbytes)
        state.copies += 1

    def memcpy_htod_async(dest: Any, src: np.ndarray, stream: Any = None) -> None:
        assert src.flags.c_contiguous
        _copy(int(dest), src.ctypes.data, src.nbytes)

    def memcpy_dtoh_async(dest: np.ndarray, src: Any, stream: Any = None) -> None:
        assert dest.flags.c_contiguous
        _copy(dest.ctypes.data, int(src), dest.nbytes)

    def SourceModule(  # noqa: N802 (pycuda's name)
        source: str,
        nvcc: str = "nvcc",
        options: list[str] | None = None,
        keep: bool = False,
        no_extern_c: bool = False,
        arch: str | None = None,
        code: str | None = None,
        cache_dir: str | None = None,
        include_dirs: list[str] | None = None,
    ) -> Module:
        """pycuda.compiler.SourceModule: nvcc to a cubin for the current device, then load it."""
        if shutil.which(nvcc) is None:  # pytools.prefork.ExecError is an OSError
            raise OSError(
                f"error invoking '{nvcc} --version': [Errno 2] No such file or directory"
            )
        require_context()
        entries = re.findall(r"__global__\s+void\s+(\w+)\s*\(", source)
        cubin = f"\x7fELF fake cubin {arch or f'sm_{sm}'} {','.join(entries)}".encode()
        return module_from_buffer(cubin)

    driver = types.ModuleType("pycuda.driver")
    for name, value in {
        "Error": Error,
        "LogicError": LogicError,
        "RuntimeError": CudaRuntimeError,
        "Device": Device,
        "Context": Context,
        "Stream": Stream,
        "Event": Event,
        "DeviceAllocation": DeviceAllocation,
        "init": lambda: None,
        "get_driver_version": lambda: state.driver_version,
        "module_from_buffer": module_from_buffer,
        "mem_alloc": mem_alloc,
        "pagelocked_empty": pagelocked_empty,
        "host_alloc_flags": host_alloc_flags,
        "mem_get_info": mem_get_info,
        "memcpy_htod_async": memcpy_htod_async,
        "memcpy_dtoh_async": memcpy_dtoh_async,
        "memcpy_htod": memcpy_htod_async,
        "memcpy_dtoh": memcpy_dtoh_async,
    }.items():
        setattr(driver, name, value)
    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = SourceModule  # type: ignore[attr-defined]
    package = types.ModuleType("pycuda")
    package.__path__ = []  # a package: submodules come from sys.modules
    package.driver = driver  # type: ignore[attr-defined]
    package.compiler = compiler  # type: ignore[attr-defined]
    return package, driver, state
