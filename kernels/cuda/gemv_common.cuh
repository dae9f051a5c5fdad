// gemv_common.cuh - device pieces the decode GEMVs share: half-precision
// weights (gemv.cu) and the quantized formats (gemv_quant.cu).
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "activation.cuh"
#include "gemv_cuda.h"

// 16 bytes of w, bypassing L1 (read once, by one warp) and through the
// non-coherent read-only path.
static __device__ __forceinline__ uint4 ld_w16(const void *p)
{
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

// ---- the reduce-scatter butterfly ----

// Step ST of 5 (xor distance 16 >> ST). While a lane holds more than one
// value, it keeps one half (the upper if its lane bit is set) and adds its
// partner's copy of that half; after that the step is a plain xor add. All
// widths are compile-time, so acc stays in registers.
template <int NV, int ST>
static __device__ __forceinline__ void reduce_scatter(float (&acc)[NV], int lane, int &idx)
{
    if constexpr (ST < 5) {
        constexpr int o = 16 >> ST;
        constexpr int width = (NV >> ST) > 1 ? (NV >> ST) : 1;
        if constexpr (width > 1) {
            constexpr int h = width / 2;
            const bool upper = (lane & o) != 0;
#pragma unroll
            for (int i = 0; i < h; i++) {
                const float send = upper ? acc[i] : acc[i + h];
                const float keep = upper ? acc[i + h] : acc[i];
                acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
            }
            if (upper)
                idx += h;
        } else {
            acc[0] += __shfl_xor_sync(0xffffffffu, acc[0], o);
        }
        reduce_scatter<NV, ST + 1>(acc, lane, idx);
    }
}

// The kernels' tail. A lane's acc holds NV = R * NB partial sums, rows row0 ..
// row0 + R - 1 for each of the NB token rows, over the lane's slice of k; the
// warps of a row group are its S slices of k (warps g * S .. g * S + S - 1 of
// the block's G groups). The warp reduce-scatters; with S == 1 each total's
// holder stores it, else the holders leave the warp's totals in part and one
// thread per (row group, partial) adds the S slices in slice order.
// store(j, row, total) runs once for each token row j < n and row < m.
template <int R, int NV, typename Store>
static __device__ __forceinline__ void gemv_reduce_store(float (&acc)[NV], float (*part)[NV], int lane, int warp,
                                                         int S, int G, long row0, int n, int m, Store store)
{
    constexpr int HOLD = NV >= 32 ? NV / 32 : 1;  // totals per lane after the reduce-scatter
    constexpr int COPIES = NV >= 32 ? 1 : 32 / NV;
    int idx = 0;
    reduce_scatter<NV, 0>(acc, lane, idx);
    const bool holder = lane % COPIES == 0;

    if (S == 1) {
        if (holder) {
#pragma unroll
            for (int i = 0; i < HOLD; i++) {
                const int q = idx + i, j = q / R;
                const long row = row0 + q % R;
                if (j < n && row < m)
                    store(j, row, acc[i]);
            }
        }
        return;
    }
    if (holder) {
#pragma unroll
        for (int i = 0; i < HOLD; i++)
            part[warp][idx + i] = acc[i];
    }
    __syncthreads();
    const int t = threadIdx.x;
    if (t < G * NV) {
        const int g = t / NV, q = t % NV, j = q / R;
        const long row = ((long)blockIdx.x * G + g) * R + q % R;
        if (j < n && row < m) {
            float sum = part[g * S][q];
            for (int i = 1; i < S; i++)
                sum += part[g * S + i][q];
            store(j, row, sum);
        }
    }
}

// The epilogue (a uniform branch): plain, GELU of the result, or added to
// what out holds (the residual stream: x += W h + b). Each output element is
// written by exactly one thread, so the read-modify-write needs no atomics.
static __device__ __forceinline__ void store_out(float *o, float v, int epi)
{
    if (epi == GS_GEMV_EPI_GELU)
        v = gelu1(v);
    else if (epi == GS_GEMV_EPI_ACCUMULATE)
        v += *o;
    *o = v;
}
