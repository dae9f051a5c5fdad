// half_out.cuh - writing fp32 results as the 16-bit rows a half-precision
// product reads: one rounding, shared by cuda_convert_to_half (gemv.cu) and
// the kernels that write such rows directly (norm.cu, activation.cu), so a
// norm or GELU written as halves equals the fp32 one converted, bit for bit.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

// Output element types of the kernels templated on them.
enum { GS_OUT_F32 = 0, GS_OUT_F16 = 1, GS_OUT_BF16 = 2 };

// x rounded to nearest even in fp16 (BF16 = false) or bf16; every NaN becomes
// 0x7FFF, so the bits do not depend on the cvt's NaN rule.
template <bool BF16>
static __device__ __forceinline__ uint16_t half_bits(float x)
{
    if (isnan(x))
        return 0x7fff;
    if constexpr (BF16)
        return __bfloat16_as_ushort(__float2bfloat16_rn(x));
    else
        return __half_as_ushort(__float2half_rn(x));
}

// Element i of an OT array.
template <int OT>
static __device__ __forceinline__ void out_store1(void *out, size_t i, float v)
{
    if constexpr (OT == GS_OUT_F32)
        static_cast<float *>(out)[i] = v;
    else
        static_cast<uint16_t *>(out)[i] = half_bits<OT == GS_OUT_BF16>(v);
}

// Elements 4 i .. 4 i + 3 of an OT array, in one 16-byte (fp32) or 8-byte store.
template <int OT>
static __device__ __forceinline__ void out_store4(void *out, size_t i, float4 v)
{
    if constexpr (OT == GS_OUT_F32) {
        static_cast<float4 *>(out)[i] = v;
    } else {
        constexpr bool B = OT == GS_OUT_BF16;
        const uint2 h = make_uint2((uint32_t)half_bits<B>(v.x) | (uint32_t)half_bits<B>(v.y) << 16,
                                   (uint32_t)half_bits<B>(v.z) | (uint32_t)half_bits<B>(v.w) << 16);
        static_cast<uint2 *>(out)[i] = h;
    }
}
