// norm_stats.cuh - the statistics of one LayerNorm / RMSNorm row computed by
// one warp, for kernels that fold the norm into their reading of the row
// (norm_fold.h). Same order of float operations as norm.cu's kernels (the
// shifted two-pass LayerNorm, K = x[0]; lane-strided float4 partial sums
// combined by xor shuffles; 1.0f / sqrtf), so a folded norm gives the bits
// the separate norm kernel writes.
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
