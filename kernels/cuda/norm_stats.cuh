// norm_stats.cuh - the statistics of one LayerNorm / RMSNorm row, for norm.cu
// and for kernels that fold the norm into their reading of the row
// (norm_fold.h). One order of float operations per shape (the shifted
// two-pass LayerNorm, K = x[0]; strided float4 partial sums combined by xor
// shuffles; 1.0f / sqrtf), shared by the norm kernels and the folded ones, so
// a folded norm gives the bits the separate norm kernel writes.
//
// gs_block_row_stats: the whole block on one row (decode: a few rows of up to
// a few thousand floats). One warp on a row is a chain of dependent loads and
// adds: 5.3 us for a 1600-wide row on an H100, most of an 8 us GEMV; a block
// loads the row in one round trip (a float4 or two a thread) and reduces it
// through shared memory: two short reductions instead.
// gs_warp_row_stats: one warp on a row (prefill-sized n, and the fallbacks).
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "norm_fold.h"

// y = (r * ((x - K) - dm)) * w + b (LayerNorm) or w * (r * x) (RMSNorm).
struct gs_row_stats {
    float K, dm, r;
};

static __device__ __forceinline__ float gs_warp_sum_all(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Every lane of the warp calls it and gets the statistics of row x (C wide).
// float4 reads when C % 4 == 0 and x is 16-byte aligned (norm_reg_kernel's
// order), else one float per lane per step (norm_kernel<.., false>'s).
static __device__ __forceinline__ gs_row_stats gs_warp_row_stats(const float *x, int C, int kind, float eps)
{
    const int lane = threadIdx.x % 32;
    const bool vec = C % 4 == 0 && ((uintptr_t)x & 15) == 0;
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    gs_row_stats st = {0.0f, 0.0f, 1.0f};
    if (kind == GS_NORM_FOLD_RMS) {
        float ss = 0.0f;
        if (vec) {
            for (int c = lane; c < C / 4; c += 32) {
                const float4 v = x4[c];
                ss += (v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w);
            }
        } else {
            for (int c = lane; c < C; c += 32)
                ss += x[c] * x[c];
        }
        st.r = 1.0f / sqrtf(gs_warp_sum_all(ss) / (float)C + eps);
        return st;
    }
    const float K = x[0];
    float s = 0.0f;
    if (vec) {
        for (int c = lane; c < C / 4; c += 32) {
            const float4 v = x4[c];
            s += ((v.x - K) + (v.y - K)) + ((v.z - K) + (v.w - K));
        }
    } else {
        for (int c = lane; c < C; c += 32)
            s += x[c] - K;
    }
    const float dm = gs_warp_sum_all(s) / (float)C;
    float ss = 0.0f;
    if (vec) {
        for (int c = lane; c < C / 4; c += 32) {
            const float4 v = x4[c];
            const float a = (v.x - K) - dm, b = (v.y - K) - dm, cc = (v.z - K) - dm, d = (v.w - K) - dm;
            ss += (a * a + b * b) + (cc * cc + d * d);
        }
    } else {
        for (int c = lane; c < C; c += 32) {
            const float d = (x[c] - K) - dm;
            ss += d * d;
        }
    }
    st.K = K;
    st.dm = dm;
    st.r = 1.0f / sqrtf(gs_warp_sum_all(ss) / (float)C + eps);
    return st;
}

// One element of the normalized row: x at column c, w[c] and b[c] given.
static __device__ __forceinline__ float gs_norm_apply(float x, gs_row_stats st, float w, float b, int kind)
{
    if (kind == GS_NORM_FOLD_RMS)
        return w * (st.r * x);
    return (st.r * ((x - st.K) - st.dm)) * w + b;
}

// Four consecutive elements (float4 staging and the decode norm kernel).
static __device__ __forceinline__ float4 gs_norm_apply4(float4 x, gs_row_stats st, float4 w, float4 b, int kind)
{
    return make_float4(gs_norm_apply(x.x, st, w.x, b.x, kind), gs_norm_apply(x.y, st, w.y, b.y, kind),
                       gs_norm_apply(x.z, st, w.z, b.z, kind), gs_norm_apply(x.w, st, w.w, b.w, kind));
}

// The block's sum of v (blockDim.x a multiple of 32, at most 1024); every
// thread gets it. red: 32 floats of shared memory, free again on return.
static __device__ __forceinline__ float gs_block_sum_all(float v, float *red)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = gs_warp_sum_all(v);
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < nw; i++)
        t += red[i];
    __syncthreads();
    return t;
}

// Whether gs_block_row_stats<QMAX> takes row x: float4s, at most QMAX a thread.
template <int QMAX> static __device__ __forceinline__ bool gs_block_stats_fit(const float *x, int C)
{
    return C % 4 == 0 && ((uintptr_t)x & 15) == 0 && C / 4 <= QMAX * (int)blockDim.x;
}

// Every thread of the block calls it (uniform control flow: it synchronizes)
// and gets the statistics of row x; only where gs_block_stats_fit says so.
template <int QMAX>
static __device__ __forceinline__ gs_row_stats gs_block_row_stats(const float *x, int C, int kind, float eps,
                                                                  float *red)
{
    const int t = threadIdx.x, nt = blockDim.x, C4 = C / 4;
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    float4 v[QMAX];
#pragma unroll
    for (int q = 0; q < QMAX; q++) {
        const int c = t + nt * q;
        v[q] = c < C4 ? x4[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    gs_row_stats st = {0.0f, 0.0f, 1.0f};
    if (kind == GS_NORM_FOLD_RMS) {
        float ss = 0.0f;
#pragma unroll
        for (int q = 0; q < QMAX; q++)
            ss += (v[q].x * v[q].x + v[q].y * v[q].y) + (v[q].z * v[q].z + v[q].w * v[q].w);
        st.r = 1.0f / sqrtf(gs_block_sum_all(ss, red) / (float)C + eps);
        return st;
    }
    const float K = x[0];
    float s = 0.0f;
#pragma unroll
    for (int q = 0; q < QMAX; q++)
        if (t + nt * q < C4)
            s += ((v[q].x - K) + (v[q].y - K)) + ((v[q].z - K) + (v[q].w - K));
    const float dm = gs_block_sum_all(s, red) / (float)C;
    float ss = 0.0f;
#pragma unroll
    for (int q = 0; q < QMAX; q++)
        if (t + nt * q < C4) {
            const float a = (v[q].x - K) - dm, b = (v[q].y - K) - dm, cc = (v[q].z - K) - dm, d = (v[q].w - K) - dm;
            ss += (a * a + b * b) + (cc * cc + d * d);
        }
    st.K = K;
    st.dm = dm;
    st.r = 1.0f / sqrtf(gs_block_sum_all(ss, red) / (float)C + eps);
    return st;
}

// The statistics of rows 0..n-1 of in (row stride C) into st[]: the block on
// each row in turn where it fits, else one warp a row. Uniform control flow;
// ends with a barrier, after which st[] is readable by the whole block.
#define GS_BLOCK_STATS_QMAX 4
static __device__ __forceinline__ void gs_rows_stats(const float *in, int n, int C, int kind, float eps,
                                                     gs_row_stats *st, float *red)
{
    if (gs_block_stats_fit<GS_BLOCK_STATS_QMAX>(in, C)) { /* row 0 aligned and C % 4 == 0: every row is */
        for (int j = 0; j < n; j++) {
            const gs_row_stats r = gs_block_row_stats<GS_BLOCK_STATS_QMAX>(in + (long)j * C, C, kind, eps, red);
            if (threadIdx.x == 0)
                st[j] = r;
        }
    } else {
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
        for (int j = warp; j < n; j += nw) {
            const gs_row_stats r = gs_warp_row_stats(in + (long)j * C, C, kind, eps);
            if (lane == 0)
                st[j] = r;
        }
    }
    __syncthreads();
}
