/* kv_format.h - the element types of the KV cache and their exact
 * conversions. Shared by the CPU kernels, the CUDA kernels (the functions
 * are __host__ __device__ under nvcc) and src/dtype.c, so every side encodes
 * and decodes bit for bit alike; plain C, no host-only calls but rintf.
 *
 * A layer's cache is K[slots][kv_dim] and V[slots][kv_dim] in one of:
 *   GS_KV_F32  float
 *   GS_KV_F16  IEEE half (round to nearest even)
 *   GS_KV_I8   int8, symmetric, one fp32 scale per (slot, KV head):
 *              scale = max |x| over the head_dim values / 127,
 *              q = rint(x / scale) in [-127, 127], x ~ q * scale
 *              (an all-zero head gets scale 0 and q 0). The scales live in
 *              k_scale/v_scale [slots][n_kv_head]: one float per head_dim
 *              bytes, 4/head_dim of the cache (6% at head_dim 64).
 *   GS_KV_FP8  OCP e4m3 (bias 7, no infinities, S.1111.111 is NaN), finite
 *              and saturating: |x| >= 448 -> +-448, round to nearest even,
 *              subnormals kept, NaN -> 0x7f. No scale: activations' K/V
 *              values sit well inside e4m3's range, and a per-token scale
 *              would cost the 4-byte float that int8 pays for. */
#ifndef GS_KV_FORMAT_H
#define GS_KV_FORMAT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { GS_KV_F32 = 0, GS_KV_F16 = 1, GS_KV_I8 = 2, GS_KV_FP8 = 3, GS_KV_N_DTYPES = 4 };

#ifdef __CUDACC__
#define GS_KV_FN static __host__ __device__ __forceinline__
#else
#define GS_KV_FN static inline
#endif

/* Bytes of one K or V element (the int8 scales come on top: gs_kv_token_head_bytes). */
GS_KV_FN size_t gs_kv_elem_size(int dt) { return dt == GS_KV_F32 ? 4 : dt == GS_KV_F16 ? 2 : 1; }
/* Bytes one token's K (or V) of one KV head takes, scale included. */
GS_KV_FN size_t gs_kv_token_head_bytes(int dt, int head_dim)
{
    return (size_t)head_dim * gs_kv_elem_size(dt) + (dt == GS_KV_I8 ? sizeof(float) : 0);
}

GS_KV_FN uint32_t gs_kv_bits(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

GS_KV_FN float gs_kv_float(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

/* ---- fp16 ---- */

/* Exact: the 15 magnitude bits placed under fp32's exponent and scaled by
 * 2^112 (rebias 15 -> 127), which also turns fp16 subnormals (fp32
 * subnormals here) into the right normal numbers; exponent 31 is inf/NaN. */
GS_KV_FN float gs_kv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    if ((h & 0x7c00) == 0x7c00)
        return gs_kv_float(sign | 0x7f800000u | (uint32_t)(h & 0x3ff) << 13);
    return gs_kv_float(sign | (uint32_t)(h & 0x7fff) << 13) * 0x1p112f;
}

/* Round to nearest even; overflow to infinity; NaN stays NaN (quiet). */
GS_KV_FN uint16_t gs_kv_f32_to_f16(float f)
{
    uint32_t x = gs_kv_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* 65520 and up round to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: subnormal, value * 2^24 rounded */
        if (ax < 0x33000000u) /* below 2^-25: rounds to zero */
            return sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax - (112u << 23), q = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1)))
        q++; /* a carry into the exponent is the right answer */
    return (uint16_t)(sign | q);
}

/* ---- fp8 e4m3 ---- */

/* Exact, the same trick as fp16: 7 magnitude bits at fp32 bit 20, times 2^120. */
GS_KV_FN float gs_kv_e4m3_to_f32(uint8_t b)
{
    if ((b & 0x7f) == 0x7f)
        return gs_kv_float(0x7fc00000u); /* NaN */
    return gs_kv_float((uint32_t)(b & 0x80) << 24 | (uint32_t)(b & 0x7f) << 20) * 0x1p120f;
}

GS_KV_FN uint8_t gs_kv_f32_to_e4m3(float f)
{
    uint32_t x = gs_kv_bits(f);
    uint8_t sign = (uint8_t)((x >> 24) & 0x80);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return 0x7f;
    if (ax >= 0x43e00000u) /* 448 and up, infinity included: saturate */
        return (uint8_t)(sign | 0x7e);
    if (ax < 0x3c800000u) { /* below 2^-6: subnormal, m * 2^-9; 8 * 2^-9 is the smallest normal */
        float m = rintf(gs_kv_float(ax) * 512.0f); /* exact scaling, then round to nearest even */
        return (uint8_t)(sign | (uint8_t)m);
    }
    uint32_t r = ax - (120u << 23), q = r >> 20, rem = r & 0xfffffu; /* rebias 127 -> 7 */
    if (rem > 0x80000u || (rem == 0x80000u && (q & 1)))
        q++; /* below 448 this never reaches 0x7f */
    return (uint8_t)(sign | q);
}

/* ---- int8 ---- */

/* The scale of one head's hd values (max |x| / 127, 0 for an all-zero head). */
GS_KV_FN float gs_kv_i8_scale(float amax) { return amax / 127.0f; }

GS_KV_FN int8_t gs_kv_i8_quant(float x, float scale)
{
    if (scale == 0.0f)
        return 0;
    float q = rintf(x / scale); /* a true division on both sides: the same float */
    return (int8_t)(q > 127.0f ? 127 : q < -127.0f ? -127 : q);
}

/* ---- element loads (CPU kernels, tests; the CUDA kernels have vector twins) ---- */

/* Element i of a cache of type dt, dequantized; scale: that element's (slot, head) scale for int8. */
GS_KV_FN float gs_kv_load(const void *cache, int dt, size_t i, float scale)
{
    switch (dt) {
    case GS_KV_F16: return gs_kv_f16_to_f32(((const uint16_t *)cache)[i]);
    case GS_KV_I8: return (float)((const int8_t *)cache)[i] * scale;
    case GS_KV_FP8: return gs_kv_e4m3_to_f32(((const uint8_t *)cache)[i]);
    default: return ((const float *)cache)[i];
    }
}

#endif
