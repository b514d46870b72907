"""A stand-in ``pycuda.driver`` whose "device memory" is host memory, for CPU tests of the TensorRT
code.

Device allocations are host buffers, so ``int(allocation)`` is a host address that fake_tensorrt's
host executor can read and write; copies are memmoves. It keeps the books a leak check needs: live
device allocations, pinned host allocations, retained contexts and the context stack. No kernels
(``pycuda.compiler`` is absent), so the backend's GPU pre/post-processing path is off here;
test_gpu_check.py runs that part on a real GPU.
"""

from __future__ import annotations

import ctypes
import itertools
import types
from typing import Any

import numpy as np


class FakeCudaState:
    def __init__(self, gpu_name: str, compute_capability: tuple[int, int], total_memory: int):
        self.gpu_name = gpu_name
        self.compute_capability = compute_capability
        self.total_memory = total_memory
        self.device_allocations: dict[int, Any] = {}
        self.pinned: dict[int, Any] = {}
        self.retained = 0
        self.stack = 0
        self.copies = 0


def make_fake_pycuda(
    gpu_name: str = "Fake Orin",
    compute_capability: tuple[int, int] = (8, 7),
    total_memory: int = 8 << 30,
) -> tuple[types.ModuleType, types.ModuleType, FakeCudaState]:
    """(pycuda package, pycuda.driver, state) to install in ``sys.modules``."""
    state = FakeCudaState(gpu_name, compute_capability, total_memory)
    handles = itertools.count(0x1000)

    class Error(Exception):
        pass

    def require_context() -> None:
        if state.stack <= 0:
            raise Error("cuCtxGetCurrent: no current context")

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

    class _PrimaryContext:
        def push(self) -> None:
            state.stack += 1

        def detach(self) -> None:
            state.retained -= 1

    class Context:
        @staticmethod
        def pop() -> None:
            if state.stack <= 0:
                raise Error("cuCtxPopCurrent: context stack empty")
            state.stack -= 1

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int):
            if index != 0:
                raise Error(f"invalid device ordinal {index}")

        def name(self) -> str:
            return state.gpu_name

        def compute_capability(self) -> tuple[int, int]:
            return state.compute_capability

        def total_memory(self) -> int:
            return state.total_memory

        def retain_primary_context(self) -> _PrimaryContext:
            state.retained += 1
            return _PrimaryContext()

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

    driver = types.ModuleType("pycuda.driver")
    for name, value in {
        "Error": Error,
        "Device": Device,
        "Context": Context,
        "Stream": Stream,
        "Event": Event,
        "DeviceAllocation": DeviceAllocation,
        "init": lambda: None,
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
    package = types.ModuleType("pycuda")
    package.__path__ = []  # a package, so `import pycuda.compiler` fails as "no such module"
    package.driver = driver  # type: ignore[attr-defined]
    return package, driver, state
