"""The CUDA context a node owns (pycuda): the device's primary context, pushed around work on any
thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class CudaContext:
    """Retains device ``device``'s primary context (shared with TensorRT's CUDA runtime) until
    ``close``.

    Every CUDA call must run inside ``with ctx.active():``, which makes the context current on the
    calling thread and pops it afterwards, so ROS executor threads can take turns. Raises
    RuntimeError when there is no such GPU.
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
        self._context: Any = dev.retain_primary_context()

    @property
    def closed(self) -> bool:
        return self._context is None

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this context current on this thread for the ``with`` block."""
        if self._context is None:
            raise RuntimeError("CUDA context is closed")
        self._context.push()
        try:
            yield
        finally:
            self._driver.Context.pop()

    def mem_info(self) -> tuple[int, int]:
        """(free, total) device memory in bytes, as ``nvidia-smi`` counts it (all processes)."""
        with self.active():
            free, total = self._driver.mem_get_info()
        return int(free), int(total)

    def close(self) -> None:
        """Release the primary context (destroyed by CUDA when no one else retains it).
        Idempotent."""
        if self._context is not None:
            self._context.detach()
            self._context = None
