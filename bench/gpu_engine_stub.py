"""Real CUDA kernels standing in for a TensorRT engine on the GPU machine (where TensorRT cannot be
installed), for test/inference/tensorrt/test_gpu_check.py and bench/bench_gpu.py.

``test/fake_tensorrt.py`` provides the TensorRT API surface (8.6 bindings or 10 tensor API); its
executor here launches a CUDA kernel through the driver API (``cuLaunchKernel``) on the raw stream
handle that ``execute_async_v2/v3`` receives, reading and writing the device addresses the backend
bound, exactly as TensorRT's own kernels would. The kernel module is loaded in the current context
on first use and unloaded when the fake engine is destroyed.

Kernels: ``formula`` computes out[b].flat[k] = 2 * in[b].flat[k % in_size] + k // N
(fake_tensorrt's host_executor, so ``fake_tensorrt.expected_output`` is the reference), after
spinning ``spin_cycles`` GPU cycles so that a copy or synchronize on the wrong stream would read
the poisoned output; ``replay`` copies a device buffer (a real YOLOv8n output) into the output;
``NoOpEngine`` launches nothing (benchmarks).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "test"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import fake_tensorrt as fake  # noqa: E402
from yolo_trt_ros.inference.selection import device_tree_model  # noqa: E402
from yolo_trt_ros.inference.tensorrt import engine_cache as ec  # noqa: E402

SOURCE = r"""
#include <cuda_fp16.h>
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(__half* p, float v) { *p = __float2half_rn(v); }

template <typename TI, typename TO>
__device__ void formula(const TI* x, TO* y, long long in_size, long long out_size, long long n,
                        int batch, long long spin) {
    if (spin > 0) { const long long t0 = clock64(); while (clock64() - t0 < spin) {} }
    const long long total = (long long)batch * out_size;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long b = i / out_size, k = i % out_size;
        put(y + i, 2.f * to_f(x[b * in_size + k % in_size]) + (float)(k / n));
    }
}

extern "C" {
__global__ void formula_f32(const float* x, float* y, long long in_size, long long out_size,
                            long long n, int batch, long long spin) {
    formula<float, float>(x, y, in_size, out_size, n, batch, spin);
}
__global__ void formula_f16(const __half* x, __half* y, long long in_size, long long out_size,
                            long long n, int batch, long long spin) {
    formula<__half, __half>(x, y, in_size, out_size, n, batch, spin);
}
__global__ void replay_f32(const float* src, float* y, long long count) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) y[i] = src[i];
}
}
"""


class DriverKernels:
    """The kernels above, loaded with cuModuleLoadData and launched with cuLaunchKernel on raw
    stream handles."""

    def __init__(self) -> None:
        from pycuda.compiler import compile as nvcc_compile

        self._lib = ctypes.CDLL("libcuda.so.1")
        self._lib.cuLaunchKernel.argtypes = (
            [ctypes.c_void_p]
            + [ctypes.c_uint] * 7
            + [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        )
        self._lib.cuModuleGetFunction.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_void_p,
            ctypes.c_char_p,
        ]
        self._lib.cuModuleLoadData.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
        self._lib.cuModuleUnload.argtypes = [ctypes.c_void_p]
        self._cubin = nvcc_compile(SOURCE, no_extern_c=True, options=["-O3"])
        self._module: ctypes.c_void_p | None = None
        self._functions: dict[str, ctypes.c_void_p] = {}
        self.loads = 0

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            raise RuntimeError(f"{what} failed with CUresult {result}")

    def launch(self, name: str, total: int, stream_handle: int, args: list[Any]) -> None:
        if self._module is None:
            module = ctypes.c_void_p()
            self._check(
                self._lib.cuModuleLoadData(ctypes.byref(module), self._cubin), "cuModuleLoadData"
            )
            self._module = module
            self.loads += 1
        if name not in self._functions:
            function = ctypes.c_void_p()
            self._check(
                self._lib.cuModuleGetFunction(ctypes.byref(function), self._module, name.encode()),
                "cuModuleGetFunction",
            )
            self._functions[name] = function
        params = (ctypes.c_void_p * len(args))(
            *[ctypes.cast(ctypes.pointer(a), ctypes.c_void_p) for a in args]
        )
        blocks = max(1, min((total + 255) // 256, 4096))
        self._check(
            self._lib.cuLaunchKernel(
                self._functions[name],
                blocks,
                1,
                1,
                256,
                1,
                1,
                0,
                ctypes.c_void_p(stream_handle),
                params,
                None,
            ),
            "cuLaunchKernel",
        )

    def release(self) -> None:
        if self._module is not None:
            self._functions.clear()
            self._check(self._lib.cuModuleUnload(self._module), "cuModuleUnload")
            self._module = None


class FormulaEngine:
    """Executor: the ``formula`` kernel; records the stream handles it was launched on."""

    def __init__(self, kernels: DriverKernels, spin_cycles: int = 0):
        self.kernels = kernels
        self.spin_cycles = spin_cycles
        self.streams: list[int] = []

    def __call__(self, inputs: list[fake.Bound], outputs: list[fake.Bound], stream: int) -> None:
        (x, x_shape, x_dtype), (y, y_shape, y_dtype) = inputs[0], outputs[0]
        assert x_dtype == y_dtype, "formula kernels have one dtype for input and output"
        self.streams.append(stream)
        batch = int(y_shape[0])
        in_size, out_size = int(np.prod(x_shape[1:])), int(np.prod(y_shape[1:]))
        name = "formula_f16" if x_dtype == np.float16 else "formula_f32"
        self.kernels.launch(
            name,
            batch * out_size,
            stream,
            [
                ctypes.c_uint64(x),
                ctypes.c_uint64(y),
                ctypes.c_int64(in_size),
                ctypes.c_int64(out_size),
                ctypes.c_int64(int(y_shape[-1])),
                ctypes.c_int32(batch),
                ctypes.c_int64(self.spin_cycles),
            ],
        )

    def release(self) -> None:
        self.kernels.release()


class ReplayEngine:
    """Executor: copies ``source`` (a device address of a float32 output tensor) into the
    output."""

    def __init__(self, kernels: DriverKernels):
        self.kernels = kernels
        self.source = 0

    def __call__(self, inputs: list[fake.Bound], outputs: list[fake.Bound], stream: int) -> None:
        y, y_shape, _ = outputs[0]
        count = int(np.prod(y_shape))
        self.kernels.launch(
            "replay_f32",
            count,
            stream,
            [ctypes.c_uint64(self.source), ctypes.c_uint64(y), ctypes.c_int64(count)],
        )

    def release(self) -> None:
        self.kernels.release()


class NoOpEngine:
    """Executor that enqueues nothing: the output buffer keeps what was put there (benchmarks
    without an engine)."""

    def __call__(self, inputs: list[fake.Bound], outputs: list[fake.Bound], stream: int) -> None:
        pass


def write_engine(
    path: Path,
    version: str,
    gpu_name: str,
    compute_capability: str,
    input_shape: list[int],
    output_shape: list[int],
    dtype: str = "FLOAT",
    profile: list[list[int]] | None = None,
    onnx_path: Path | None = None,
) -> Path:
    """A fake plan plus the sidecar that makes the backend accept it on this machine's GPU 0
    (``onnx_path``: where output dims that follow dynamic input dims come from)."""
    import pycuda.driver as cuda

    plan = fake.make_plan(
        version, input_shape, output_shape, profile, dtype, dtype, onnx_path=onnx_path
    )
    path.write_bytes(plan)
    low, opt, high = profile or [input_shape] * 3
    device = cuda.Device(0)
    platform = ec.Platform(
        version,
        gpu_name,
        compute_capability,
        device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT),
        round(device.total_memory() / 2**30),
        device_tree_model(),
    )
    profiles = {"images": {"min": low, "opt": opt, "max": high}}
    spec = ec.EngineSpec.for_platform(platform, "", "fp32", profiles)
    ec.write_sidecar(path, spec, {"metadata": {"imgsz": repr(high[2:])}})
    return path


def install_fake_tensorrt(version: str, executor: Any) -> Any:
    """Put a fake ``tensorrt`` of ``version`` whose engines run ``executor`` into sys.modules."""
    module = fake.make_fake_tensorrt(version, executor=executor)
    sys.modules["tensorrt"] = module
    return module
