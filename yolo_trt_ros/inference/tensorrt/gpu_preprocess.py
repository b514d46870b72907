"""GPU pre- and post-processing kernels (pycuda): letterbox straight into the engine input, candidate compaction.

``GpuLetterbox``: one kernel reads the raw uint8 HWC frame (bgr8, rgb8, bgra8, rgba8, mono8; any size and row
step) already on the device and writes the letterboxed, RGB, 0..1, CHW float32/float16 tensor into the engine's
input buffer, sampling exactly like cv2.resize INTER_LINEAR with Ultralytics' letterbox geometry
(``preprocess.letterbox_geometry``); only the raw frame crosses PCIe (``FrameUploader``).

``CandidateReducer``: two kernels keep the output columns (anchors) whose best class score is above the
confidence threshold, in anchor order, as a compact (K, 4+nc) float32 array written straight into mapped
(zero-copy) pinned host memory, so only K columns cross PCIe instead of (4+nc) x N and no copy call is needed.
Decoding the compact output gives exactly the detections of decoding the full output (same anchors, same order,
same values).

Kernel arguments are packed once per layout (``_Launch``), so a frame costs one driver call per kernel.
All methods must run with the owning CUDA context current; every launch and copy goes on the given stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from yolo_trt_ros.detection.encodings import ENCODINGS
from yolo_trt_ros.detection.letterbox import LetterboxTransform, letterbox_geometry

PAD_VALUE = 114
_BLOCK_2D = (32, 8, 1)
_BLOCK_1D = 256

KERNEL_SOURCE = r"""
#include <cuda_fp16.h>

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }

// Raw uint8 HWC frame (rows src_step bytes apart; source channel r_c/g_c/b_c feeds R/G/B) -> letterboxed
// RGB CHW tensor scaled to 0..1. The image is resized to res_w x res_h at (pad_x, pad_y) with OpenCV's
// INTER_LINEAR sampling (half-pixel centres, edge clamp); the rest is pad_value.
template <typename T>
__device__ void letterbox(const unsigned char* __restrict__ src, int src_w, int src_h, int src_step, int channels,
                          int r_c, int g_c, int b_c, T* __restrict__ dst, int dst_w, int dst_h, int res_w,
                          int res_h, int pad_x, int pad_y, float scale_x, float scale_y, float pad_value) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    const size_t plane = (size_t)dst_w * dst_h;
    T* out = dst + (size_t)y * dst_w + x;
    const int rx = x - pad_x, ry = y - pad_y;
    if (rx < 0 || ry < 0 || rx >= res_w || ry >= res_h) {
        store(out, pad_value);
        store(out + plane, pad_value);
        store(out + 2 * plane, pad_value);
        return;
    }
    float fx = (rx + 0.5f) * scale_x - 0.5f;
    int sx = (int)floorf(fx);
    fx -= sx;
    if (sx < 0) { sx = 0; fx = 0.f; }
    if (sx >= src_w - 1) { sx = src_w - 1; fx = 0.f; }
    float fy = (ry + 0.5f) * scale_y - 0.5f;
    int sy = (int)floorf(fy);
    fy -= sy;
    if (sy < 0) { sy = 0; fy = 0.f; }
    if (sy >= src_h - 1) { sy = src_h - 1; fy = 0.f; }
    const unsigned char* row0 = src + (size_t)sy * src_step;
    const unsigned char* row1 = src + (size_t)min(sy + 1, src_h - 1) * src_step;
    const int c0 = sx * channels, c1 = min(sx + 1, src_w - 1) * channels;
    const float w00 = (1.f - fx) * (1.f - fy), w01 = fx * (1.f - fy), w10 = (1.f - fx) * fy, w11 = fx * fy;
    const float k = 1.f / 255.f;
#define SAMPLE(c) ((w00 * row0[c0 + (c)] + w01 * row0[c1 + (c)] + w10 * row1[c0 + (c)] + w11 * row1[c1 + (c)]) * k)
    store(out, SAMPLE(r_c));
    store(out + plane, SAMPLE(g_c));
    store(out + 2 * plane, SAMPLE(b_c));
#undef SAMPLE
}

// Pass 1 of the candidate compaction: bit i of masks[b] = best class score (rows 4..rows-1) of anchor 32 * b + i
// > conf. Block (32, 8): 32 anchors, the class rows split over 8 thread rows, reduced in shared memory.
template <typename T>
__device__ void flag_candidates(const T* __restrict__ out, int rows, int n, float conf,
                                unsigned* __restrict__ masks) {
    __shared__ float best[8][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    float m = -INFINITY;
    if (j < n) {
        for (int r = 4 + threadIdx.y; r < rows; r += 8) m = fmaxf(m, load(out + (size_t)r * n + j));
    }
    best[threadIdx.y][threadIdx.x] = m;
    __syncthreads();
    if (threadIdx.y == 0) {
        for (int y = 1; y < 8; ++y) m = fmaxf(m, best[y][threadIdx.x]);
        const unsigned mask = __ballot_sync(0xffffffffu, m > conf);  // -inf beyond n: never set
        if (threadIdx.x == 0) masks[blockIdx.x] = mask;
    }
}

// Pass 2: copy each flagged anchor's column to slot 1 + rank of compact (rows floats per slot; rank = its index
// among flagged anchors, so anchor order is kept) and write the total count as an int in slot 0. Warp w of block
// b owns mask word b * warps + w. Each block counts the flags before its words itself from the popcounts of the
// mask words (a few loads per thread, no grid-wide scan), then its threads copy its candidates together, one
// element each in turn, so the writes are contiguous (compact may be mapped host memory, written across PCIe).
// blockDim.x: a multiple of 32, at most 1024.
template <typename T>
__device__ void gather_candidates(const T* __restrict__ out, int rows, int n, const unsigned* __restrict__ masks,
                                  float* __restrict__ compact) {
    __shared__ int warp_before[32], warp_total[32], warp_offsets[32];
    __shared__ int anchors[1024];
    __shared__ int block_offset, block_count;
    const unsigned full = 0xffffffffu;
    const int words = (n + 31) >> 5, warps = blockDim.x >> 5;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int first = blockIdx.x * warps;
    int before = 0, total = 0;
    for (int i = threadIdx.x; i < words; i += blockDim.x) {
        const int c = __popc(masks[i]);
        total += c;
        before += i < first ? c : 0;
    }
    for (int o = 16; o > 0; o >>= 1) {
        before += __shfl_down_sync(full, before, o);
        total += __shfl_down_sync(full, total, o);
    }
    const int word = first + warp;
    const unsigned mask = word < words ? masks[word] : 0u;
    if (lane == 0) {
        warp_before[warp] = before;
        warp_total[warp] = total;
        warp_offsets[warp] = __popc(mask);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int b = 0, t = 0, run = 0;
        for (int w = 0; w < warps; ++w) {
            b += warp_before[w];
            t += warp_total[w];
            const int c = warp_offsets[w];
            warp_offsets[w] = run;
            run += c;
        }
        block_offset = b;
        block_count = run;
        if (blockIdx.x == 0) reinterpret_cast<int*>(compact)[0] = t;
    }
    __syncthreads();
    if ((mask >> lane) & 1u) anchors[warp_offsets[warp] + __popc(mask & ((1u << lane) - 1u))] = word * 32 + lane;
    __syncthreads();
    float* dst = compact + (size_t)(block_offset + 1) * rows;
    const int count = block_count * rows;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        const int c = i / rows;
        dst[i] = load(out + (size_t)(i - c * rows) * n + anchors[c]);
    }
}

#define LETTERBOX_ARGS const unsigned char* src, int src_w, int src_h, int src_step, int channels, int r_c, \
    int g_c, int b_c
#define LETTERBOX_REST int dst_w, int dst_h, int res_w, int res_h, int pad_x, int pad_y, float scale_x, \
    float scale_y, float pad_value
#define LETTERBOX_CALL src, src_w, src_h, src_step, channels, r_c, g_c, b_c, dst, dst_w, dst_h, res_w, res_h, \
    pad_x, pad_y, scale_x, scale_y, pad_value

extern "C" {
__global__ void letterbox_f32(LETTERBOX_ARGS, float* dst, LETTERBOX_REST) { letterbox<float>(LETTERBOX_CALL); }
__global__ void letterbox_f16(LETTERBOX_ARGS, __half* dst, LETTERBOX_REST) { letterbox<__half>(LETTERBOX_CALL); }

__global__ void flag_candidates_f32(const float* out, int rows, int n, float conf, unsigned* masks) {
    flag_candidates<float>(out, rows, n, conf, masks);
}
__global__ void flag_candidates_f16(const __half* out, int rows, int n, float conf, unsigned* masks) {
    flag_candidates<__half>(out, rows, n, conf, masks);
}
__global__ void gather_candidates_f32(const float* out, int rows, int n, const unsigned* masks, float* compact) {
    gather_candidates<float>(out, rows, n, masks, compact);
}
__global__ void gather_candidates_f16(const __half* out, int rows, int n, const unsigned* masks, float* compact) {
    gather_candidates<__half>(out, rows, n, masks, compact);
}
}
"""

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}


def _suffix(dtype: np.dtype) -> str:
    suffix = _SUFFIX.get(np.dtype(dtype))
    if suffix is None:
        raise ValueError(f"GPU kernels handle float32 and float16 tensors, not {dtype}")
    return suffix


class _Launch:
    """One kernel launch with its arguments packed once. ``prepared_async_call`` packs the arguments and sets
    the block shape on every call (about 9 us of Python per launch on an H100 host); this calls pycuda's
    underlying ``_launch_kernel`` (cuLaunchKernel) with the packed buffer (about 5 us)."""

    def __init__(
        self,
        function: Any,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        args: tuple[Any, ...],
    ):
        from pycuda._pvt_struct import pack

        self._function, self._grid, self._block = function, grid, block
        self._params = pack(function.arg_format, *args)

    def __call__(self, stream: Any) -> None:
        self._function._launch_kernel(self._grid, self._block, self._params, 0, stream)


def free_pinned(array: np.ndarray) -> None:
    """Free the page-locked memory behind an array from ``pycuda.driver.pagelocked_empty``."""
    allocation: Any = array.base
    allocation.free()


class GpuKernels:
    """The kernels above, compiled once by pycuda (nvcc, cached by pycuda) in the current CUDA context."""

    def __init__(self) -> None:
        from pycuda.compiler import SourceModule

        self._module: Any = SourceModule(KERNEL_SOURCE, no_extern_c=True, options=["-O3"])
        self._functions: dict[str, Any] = {}
        signatures = {
            "letterbox": "PiiiiiiiPiiiiiifff",
            "flag_candidates": "PiifP",
            "gather_candidates": "PiiPP",
        }
        for base, signature in signatures.items():
            for suffix in _SUFFIX.values():
                function = self._module.get_function(f"{base}_{suffix}")
                function.prepare(signature)
                self._functions[f"{base}_{suffix}"] = function

    def get(self, name: str) -> Any:
        if self._module is None:
            raise RuntimeError("GPU kernels were released")
        return self._functions[name]

    def close(self) -> None:
        """Drop the functions and the module (pycuda unloads it from the device)."""
        self._functions.clear()
        self._module = None


class FrameUploader:
    """Copies raw frames into one device buffer (grown to the largest frame).

    A C-contiguous frame is copied straight from its own (pageable) memory: the driver stages and pipelines it.
    On an H100 host that was as fast as or faster than every alternative measured (bench/gpu_upload_variants.py):
    staging into pinned memory whole or in chunks overlapping their DMA, the letterbox kernel reading mapped
    memory (zero-copy), a two-thread copy, and page-locking the frame itself per call (about 0.3 ms). Other
    views (row padding, crops) are first packed into one pinned buffer.
    """

    def __init__(self) -> None:
        import pycuda.driver as cuda

        self._cuda: Any = cuda
        self._host: np.ndarray | None = None
        self._device: Any = None
        self.capacity = 0

    def upload(self, image: np.ndarray, stream: Any) -> int:
        """Enqueue the host-to-device copy of ``image`` as packed HWC rows; returns the device pointer. The
        frame may be reused once this returns."""
        nbytes = image.size
        if nbytes > self.capacity:
            self._release()
            self._device = self._cuda.mem_alloc(nbytes)
            self.capacity = nbytes
        if image.flags.c_contiguous:
            self._cuda.memcpy_htod_async(self._device, image, stream)
        else:
            if self._host is None or self._host.size < nbytes:
                if self._host is not None:
                    free_pinned(self._host)
                self._host = self._cuda.pagelocked_empty(self.capacity, np.uint8)
            staged = self._host[:nbytes].reshape(image.shape)
            np.copyto(staged, image)
            self._cuda.memcpy_htod_async(self._device, staged, stream)
        return int(self._device)

    def _release(self) -> None:
        if self._device is not None:
            self._device.free()
        self._device, self.capacity = None, 0

    def close(self) -> None:
        self._release()
        if self._host is not None:
            free_pinned(self._host)
            self._host = None


class GpuLetterbox:
    """Letterbox device frames into a (1, 3, H, W) RGB 0..1 tensor of ``dtype`` at a device address."""

    def __init__(
        self,
        kernels: GpuKernels,
        input_hw: tuple[int, int],
        dtype: np.dtype,
        pad_value: int = PAD_VALUE,
    ):
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self._function = kernels.get(f"letterbox_{_suffix(dtype)}")
        self._pad = np.float32(pad_value / 255)
        self._key: tuple[Any, ...] = ()
        self._launch: tuple[_Launch, LetterboxTransform] | None = None

    def __call__(
        self,
        src: int,
        src_hw: tuple[int, int],
        encoding: str,
        dst: int,
        stream: Any,
        src_step: int | None = None,
    ) -> LetterboxTransform:
        """Enqueue the kernel for a packed (or ``src_step``-strided) HWC frame of ``src_hw`` at ``src``."""
        key = (src, tuple(src_hw), encoding, dst, src_step)
        if (
            key != self._key or self._launch is None
        ):  # geometry and kernel arguments, computed once per layout
            self._launch = self._prepare(
                src, (int(src_hw[0]), int(src_hw[1])), encoding, dst, src_step
            )
            self._key = key
        launch, transform = self._launch
        launch(stream)
        return transform

    def _prepare(
        self, src: int, src_hw: tuple[int, int], encoding: str, dst: int, src_step: int | None
    ) -> tuple[_Launch, LetterboxTransform]:
        channels = ENCODINGS[encoding].channels
        t = letterbox_geometry(src_hw, self.input_hw)
        h, w = self.input_hw
        res_h, res_w = t.resized_hw
        r_c, g_c, b_c = ENCODINGS[encoding].rgb
        grid = ((w + _BLOCK_2D[0] - 1) // _BLOCK_2D[0], (h + _BLOCK_2D[1] - 1) // _BLOCK_2D[1], 1)
        step = src_step if src_step is not None else src_hw[1] * channels
        i32 = np.int32
        args = (
            np.uintp(src),
            i32(src_hw[1]),
            i32(src_hw[0]),
            i32(step),
            i32(channels),
            i32(r_c),
            i32(g_c),
            i32(b_c),
            np.uintp(dst),
            i32(w),
            i32(h),
            i32(res_w),
            i32(res_h),
            i32(t.pad_x),
            i32(t.pad_y),
            np.float32(src_hw[1] / res_w),
            np.float32(src_hw[0] / res_h),
            self._pad,
        )
        return _Launch(self._function, grid, _BLOCK_2D, args), t


class CandidateReducer:
    """Compacts a (1, rows, n) YOLOv8 output on the device to the columns whose best score exceeds a threshold.

    ``enqueue`` launches the two kernels; the second writes the count (an int32 in a header slot) and the
    candidates straight into mapped pinned host memory, so nothing else is queued. After the stream
    synchronizes, ``result`` returns the (1, rows, K) float32 view (valid until the next ``enqueue``).
    """

    def __init__(self, kernels: GpuKernels, rows: int, n: int, dtype: np.dtype):
        import pycuda.driver as cuda

        suffix = _suffix(dtype)
        self._flag = kernels.get(f"flag_candidates_{suffix}")
        self._gather = kernels.get(f"gather_candidates_{suffix}")
        self.rows, self.n = rows, n
        self._words = (n + 31) // 32  # one 32-bit candidate mask per 32 anchors
        self._masks = cuda.mem_alloc(4 * self._words)
        self._compact: np.ndarray = cuda.pagelocked_empty(
            (n + 1, rows), np.float32, mem_flags=cuda.host_alloc_flags.DEVICEMAP
        )
        self._compact_device = int(self._compact.base.get_device_pointer())
        self._key: tuple[int, float] | None = None
        self._launches: tuple[_Launch, ...] = ()

    def enqueue(self, output: int, conf_threshold: float, stream: Any) -> None:
        if self._key != (output, conf_threshold):
            i32, ptr = np.int32, np.uintp
            rows, n, masks = i32(self.rows), i32(self.n), ptr(int(self._masks))
            warps = _BLOCK_1D // 32
            self._launches = (
                _Launch(
                    self._flag,
                    (self._words, 1, 1),
                    (32, 8, 1),
                    (ptr(output), rows, n, np.float32(conf_threshold), masks),
                ),
                _Launch(
                    self._gather,
                    ((self._words + warps - 1) // warps, 1, 1),
                    (_BLOCK_1D, 1, 1),
                    (ptr(output), rows, n, masks, ptr(self._compact_device)),
                ),
            )
            self._key = (output, conf_threshold)
        for launch in self._launches:
            launch(stream)

    def result(self) -> np.ndarray:
        """(1, rows, K) float32 view of the candidates; call after the stream synchronized."""
        k = int(self._compact[0].view(np.int32)[0])
        return self._compact[1 : 1 + k].T[None]

    def close(self) -> None:
        self._masks.free()
        free_pinned(self._compact)
