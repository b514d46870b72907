"""The CUDA context a node works in (pycuda): the device's primary context, retained once per
process and pushed around work on any thread."""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _DriverStack:
    """The calling thread's context stack in the CUDA driver (libcuda), which pycuda keeps in step
    with its own stack except when a primary context is released."""

    def __init__(self, lib: Any):
        self._lib = lib

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise RuntimeError(f"{call} failed: CUresult {status}")

    def pop(self) -> None:
        handle = ctypes.c_void_p()
        self._check(self._lib.cuCtxPopCurrent_v2(ctypes.byref(handle)), "cuCtxPopCurrent")

    def push(self, handle: int) -> None:
        self._check(self._lib.cuCtxPushCurrent_v2(ctypes.c_void_p(handle)), "cuCtxPushCurrent")


@functools.cache
def _driver_stack() -> _DriverStack | None:
    """libcuda's stack calls; None where libcuda.so.1 does not load (pycuda's test fakes)."""
    try:
        return _DriverStack(ctypes.CDLL("libcuda.so.1"))
    except OSError:
        return None


def release_primary_context(cuda: Any, context: Any) -> None:
    """Release a primary context retained with pycuda's ``Device.retain_primary_context``, from
    any thread, leaving this thread's current context as it was.

    pycuda's ``detach`` releases only while the context is current (from another thread it does
    nothing and the retain leaks), and ``cuDevicePrimaryCtxRelease`` never pops it off the
    driver's stack: pycuda forgets it but the driver keeps it current. So push it, detach (pycuda
    then re-pushes its previous current context, if any, on the driver's stack), and pop the
    released context off the driver's stack.
    """
    previous = cuda.Context.get_current()
    context.push()
    context.detach()
    stack = _driver_stack()
    if stack is None:
        return
    if previous is not None:
        stack.pop()  # the previous context, re-pushed by detach above the released one
    stack.pop()
    if previous is not None:
        stack.push(previous.handle)


class _Primary:
    """A device's primary context, retained once and shared by every CudaContext on it."""

    def __init__(self, context: Any):
        self.context = context
        self.users = 0


_PRIMARIES: dict[tuple[Any, int], _Primary] = {}
_PRIMARIES_LOCK = threading.Lock()


class CudaContext:
    """A hold on device ``device``'s primary context (shared with TensorRT's CUDA runtime) until
    ``close``.

    Every CUDA call must run inside ``with ctx.active():``, which makes the context current on the
    calling thread and pops it afterwards, so ROS executor threads can take turns (one at a time
    per CudaContext: ``active`` and ``close`` share a lock). The primary context is retained once
    per process and released when the last CudaContext on the device closes. ``close`` may run on
    any thread, waits for running work, and leaves no context current. Raises RuntimeError when
    there is no such GPU.
    """

    def __init__(self, device: int = 0):
        import pycuda.driver as cuda

        cuda.init()
        count = cuda.Device.count()
        if not 0 <= device < count:
            raise RuntimeError(f"CUDA device {device} not found ({count} GPU(s) visible)")
        self._driver: Any = cuda
        dev = cuda.Device(device)
        self.device_index = device
        self.device_name: str = dev.name()
        major, minor = dev.compute_capability()
        self.compute_capability = f"{major}.{minor}"
        self.total_memory: int = dev.total_memory()
        self._key = (cuda, device)
        with _PRIMARIES_LOCK:
            primary = _PRIMARIES.get(self._key)
            if primary is None:
                primary = _PRIMARIES[self._key] = _Primary(dev.retain_primary_context())
            primary.users += 1
        self._primary: _Primary | None = primary
        self._lock = threading.RLock()
        self._pushes = threading.local()  # .count: pushes of this context open on the thread

    @property
    def closed(self) -> bool:
        return self._primary is None

    def _open_pushes(self) -> int:
        return int(getattr(self._pushes, "count", 0))

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this context current on this thread for the ``with`` block."""
        with self._lock:
            if self._primary is None:
                raise RuntimeError("CUDA context is closed")
            self._primary.context.push()
            self._pushes.count = self._open_pushes() + 1
            try:
                yield
            finally:
                if self._open_pushes() > 0:  # else close() inside the block popped it
                    self._pushes.count -= 1
                    self._driver.Context.pop()

    def mem_info(self) -> tuple[int, int]:
        """(free, total) device memory in bytes, as ``nvidia-smi`` counts it (all processes)."""
        with self.active():
            free, total = self._driver.mem_get_info()
        return int(free), int(total)

    def close(self) -> None:
        """Give up this hold (the primary context is released with the last one). Waits for work
        in ``active`` on other threads; inside ``active`` on this thread, pops it first.
        Idempotent."""
        with self._lock:
            primary, self._primary = self._primary, None
            if primary is None:
                return
            while self._open_pushes() > 0:
                self._pushes.count -= 1
                self._driver.Context.pop()
            with _PRIMARIES_LOCK:
                primary.users -= 1
                if primary.users > 0:
                    return
                del _PRIMARIES[self._key]
                release_primary_context(self._driver, primary.context)
