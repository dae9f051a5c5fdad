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
