// fused.cu - the residual update fused with the next norm, twins of
// kernels/cpu/fused.c: for each of n rows of width C, x += y (the residual
// stream, in place), then out = LayerNorm(x) or RMSNorm(x). Unfused, the pair
// residual_add + norm moves x three times (read, write, read again) and y
// once; fused, x and y are read once and x and out written once.
//
// Same shape as norm.cu: one warp per row (8 rows per 256-thread block), xor
// shuffles for the row sums, statistics on x - K with K = x[0] (the shifted
// two-pass LayerNorm; see norm.cu for why), float sums, 1.0f / sqrtf per row.
//
// fused_reg_kernel<RMS, NV> (C % 4 == 0, C <= 128 * NV, 16-byte aligned): each
// lane loads its NV float4s of x and y, adds them in registers and stores the
// sum to x at once; the norm passes then run over registers.
// fused_kernel<RMS, VEC> (anything else; VEC = float4 steps when C % 4 == 0
// and aligned): the simple multi-pass version. Pass one adds and writes x;
// later passes read x back. Each lane reads back only the elements it wrote
// itself (same stride in every pass), so no warp sync is needed there.
//
// x, y and out do not overlap (the caller's contract), so all are __restrict__.
#include <stdint.h>

#include "check_cuda.cuh"
#include "fused_cuda.h"

#define FUSED_THREADS 256
#define FUSED_ROWS_PER_BLOCK (FUSED_THREADS / 32)

static __device__ __forceinline__ float fwarp_sum(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

static __device__ __forceinline__ float4 fadd4(float4 a, float4 b)
{
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

static __device__ __forceinline__ float4 fsub4(float4 v, float k)
{
    return make_float4(v.x - k, v.y - k, v.z - k, v.w - k);
}

static __device__ __forceinline__ float fsum4(float4 v) { return (v.x + v.y) + (v.z + v.w); }
static __device__ __forceinline__ float fsumsq4(float4 v) { return (v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w); }

static __device__ __forceinline__ float4 fln_out4(float4 d, float rstd, float4 w, float4 b)
{
    return make_float4((rstd * d.x) * w.x + b.x, (rstd * d.y) * w.y + b.y, (rstd * d.z) * w.z + b.z,
                       (rstd * d.w) * w.w + b.w);
}

static __device__ __forceinline__ float4 frms_out4(float4 x, float r, float4 w)
{
    return make_float4(w.x * (r * x.x), w.y * (r * x.y), w.z * (r * x.z), w.w * (r * x.w));
}

// ---- the general kernel: any C, x written in pass one and read back after ----

template <bool RMS, bool VEC>
__global__ void __launch_bounds__(FUSED_THREADS)
    fused_kernel(float *__restrict__ xs, const float *__restrict__ ys, float *__restrict__ outs,
                 const float *__restrict__ w, const float *__restrict__ b, int n, int C, float eps)
{
    const int lane = threadIdx.x % 32;
    const long row = (long)blockIdx.x * FUSED_ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= n)
        return;  // the whole warp leaves together
    float *x = xs + (size_t)row * C;
    const float *y = ys + (size_t)row * C;
    float *o = outs + (size_t)row * C;
    float4 *x4 = reinterpret_cast<float4 *>(x);
    const float4 *y4 = reinterpret_cast<const float4 *>(y);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    float4 *o4 = reinterpret_cast<float4 *>(o);

    // K = the updated x[0], computed by lane 0 only and broadcast, so no lane
    // reads x[0] while lane 0 may be writing it.
    const float K = RMS ? 0.0f : __shfl_sync(0xffffffffu, lane == 0 ? x[0] + y[0] : 0.0f, 0);

    // Pass one: the add, the store to x, and the first sum (of x^2 or x - K).
    float s = 0.0f;
    if constexpr (VEC)
        for (int c = lane; c < C / 4; c += 32) {
            const float4 v = fadd4(x4[c], y4[c]);
            x4[c] = v;
            s += RMS ? fsumsq4(v) : fsum4(fsub4(v, K));
        }
    else
        for (int c = lane; c < C; c += 32) {
            const float v = x[c] + y[c];
            x[c] = v;
            s += RMS ? v * v : v - K;
        }

    if constexpr (RMS) {
        const float r = 1.0f / sqrtf(fwarp_sum(s) / (float)C + eps);
        if constexpr (VEC)
            for (int c = lane; c < C / 4; c += 32)
                o4[c] = frms_out4(x4[c], r, __ldg(w4 + c));
        else
            for (int c = lane; c < C; c += 32)
                o[c] = __ldg(w + c) * (r * x[c]);
    } else {
        const float dm = fwarp_sum(s) / (float)C;  // mean - K
        float ss = 0.0f;
        if constexpr (VEC)
            for (int c = lane; c < C / 4; c += 32)
                ss += fsumsq4(fsub4(fsub4(x4[c], K), dm));
        else
            for (int c = lane; c < C; c += 32) {
                const float d = (x[c] - K) - dm;
                ss += d * d;
            }
        const float rstd = 1.0f / sqrtf(fwarp_sum(ss) / (float)C + eps);
        if constexpr (VEC) {
            const float4 *b4 = reinterpret_cast<const float4 *>(b);
            for (int c = lane; c < C / 4; c += 32)
                o4[c] = fln_out4(fsub4(fsub4(x4[c], K), dm), rstd, __ldg(w4 + c), __ldg(b4 + c));
        } else {
            for (int c = lane; c < C; c += 32)
                o[c] = (rstd * ((x[c] - K) - dm)) * __ldg(w + c) + __ldg(b + c);
        }
    }
}

// ---- the fast kernel: the summed row held in registers ----

template <bool RMS, int NV>
__global__ void __launch_bounds__(FUSED_THREADS)
    fused_reg_kernel(float *__restrict__ xs, const float *__restrict__ ys, float *__restrict__ outs,
                     const float *__restrict__ w, const float *__restrict__ b, int n, int C, float eps)
{
    const int lane = threadIdx.x % 32;
    const long row = (long)blockIdx.x * FUSED_ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= n)
        return;  // the whole warp leaves together
    const int C4 = C / 4;
    float4 *x4 = reinterpret_cast<float4 *>(xs + (size_t)row * C);
    const float4 *y4 = reinterpret_cast<const float4 *>(ys + (size_t)row * C);
    float4 *o4 = reinterpret_cast<float4 *>(outs + (size_t)row * C);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);

    // Lane l holds float4s l, l + 32, ...: coalesced 512-byte segments per
    // warp load. All loads issue before any use; slots past the row are zero.
    float4 v[NV];
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int c = lane + 32 * k;
        v[k] = c < C4 ? fadd4(x4[c], __ldg(y4 + c)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    // The residual stream's new value goes out now; the norm needs only registers.
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int c = lane + 32 * k;
        if (c < C4)
            x4[c] = v[k];
    }

    if constexpr (RMS) {
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++)
            ss += fsumsq4(v[k]);  // zero slots add nothing
        const float r = 1.0f / sqrtf(fwarp_sum(ss) / (float)C + eps);
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int c = lane + 32 * k;
            if (c < C4)
                o4[c] = frms_out4(v[k], r, __ldg(w4 + c));
        }
    } else {
        const float K = __shfl_sync(0xffffffffu, v[0].x, 0);  // C >= 4: lane 0's slot 0 is real
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++)
            if (lane + 32 * k < C4)
                s += fsum4(fsub4(v[k], K));
        const float dm = fwarp_sum(s) / (float)C;
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            v[k] = fsub4(fsub4(v[k], K), dm);  // v now holds x - mean
            if (lane + 32 * k < C4)
                ss += fsumsq4(v[k]);
        }
        const float rstd = 1.0f / sqrtf(fwarp_sum(ss) / (float)C + eps);
        const float4 *b4 = reinterpret_cast<const float4 *>(b);
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int c = lane + 32 * k;
            if (c < C4)
                o4[c] = fln_out4(v[k], rstd, __ldg(w4 + c), __ldg(b4 + c));
        }
    }
}

// ---- launcher ----

static bool faligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <bool RMS, int NV>
static void freg_launch(int blocks, cudaStream_t stream, float *x, const float *y, float *out, const float *w,
                        const float *b, int n, int C, float eps)
{
    fused_reg_kernel<RMS, NV><<<blocks, FUSED_THREADS, 0, stream>>>(x, y, out, w, b, n, C, eps);
}

template <bool RMS>
static int fused_launch(float *x, const float *y, float *out, const float *w, const float *b, int n, int C,
                        float eps, cudaStream_t stream)
{
    if (n <= 0 || C <= 0)
        return 0;
    const int blocks = gs_ceil_div(n, FUSED_ROWS_PER_BLOCK);
    const bool vec = C % 4 == 0 && faligned16(x) && faligned16(y) && faligned16(out) && faligned16(w) &&
                     (RMS || faligned16(b));
    const int per_lane = (C / 4 + 31) / 32;  // float4s per lane; same list as norm.cu
    if (!vec)
        fused_kernel<RMS, false><<<blocks, FUSED_THREADS, 0, stream>>>(x, y, out, w, b, n, C, eps);
    else if (per_lane <= 1)
        freg_launch<RMS, 1>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 2)
        freg_launch<RMS, 2>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 4)
        freg_launch<RMS, 4>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 6)
        freg_launch<RMS, 6>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 8)
        freg_launch<RMS, 8>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 12)
        freg_launch<RMS, 12>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 16)
        freg_launch<RMS, 16>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 24)
        freg_launch<RMS, 24>(blocks, stream, x, y, out, w, b, n, C, eps);
    else if (per_lane <= 32)
        freg_launch<RMS, 32>(blocks, stream, x, y, out, w, b, n, C, eps);
    else
        fused_kernel<RMS, true><<<blocks, FUSED_THREADS, 0, stream>>>(x, y, out, w, b, n, C, eps);
    CUDA_LAUNCHED();
    return 0;
}

extern "C" int cuda_residual_layernorm(float *x, const float *y, float *out, const float *w, const float *b, int n,
                                       int C, float eps, cudaStream_t stream)
{
    return fused_launch<false>(x, y, out, w, b, n, C, eps, stream);
}

extern "C" int cuda_residual_rmsnorm(float *x, const float *y, float *out, const float *w, int n, int C, float eps,
                                     cudaStream_t stream)
{
    return fused_launch<true>(x, y, out, w, NULL, n, C, eps, stream);
}
