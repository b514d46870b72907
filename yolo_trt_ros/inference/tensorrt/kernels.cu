// CUDA kernels of the TensorRT backend's GPU path. tools/make_ptx.py compiles them to kernels.ptx, which
// gpu_preprocess.py loads (rerun it after any change here); nvcc and NVRTC must both accept this file.
#include <cuda_fp16.h>
#include <math_constants.h>

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
    float m = -CUDART_INF_F;
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
