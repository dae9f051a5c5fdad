/* dtype.c - element types and exact fp16/bf16 conversions (round to nearest
 * even, NaN stays NaN, subnormals kept), used by the loaders and by backends
 * that store weights in half precision. */
#include "dtype.h"

#include <string.h>

#include "kv_format.h"
#include "quant_layout.h"

size_t gs_dtype_size(gs_dtype dt)
{
    switch (dt) {
    case GS_DTYPE_F32: return 4;
    case GS_DTYPE_F16:
    case GS_DTYPE_BF16: return 2;
    case GS_DTYPE_I8: return 1;
    default: return 0;
    }
}

const char *gs_dtype_name(gs_dtype dt)
{
    static const char *const names[] = {"fp32", "fp16", "bf16", "int8", "int4-g32", "int4-g64", "int4-g128"};
    return (unsigned)dt < sizeof names / sizeof names[0] ? names[dt] : "?";
}

int gs_dtype_q4(int group)
{
    return group == 32 ? GS_DTYPE_Q4_G32 : group == 64 ? GS_DTYPE_Q4_G64 : group == 128 ? GS_DTYPE_Q4_G128 : -1;
}

size_t gs_weight_bytes(gs_dtype dt, long rows, long cols)
{
    if (dt == GS_DTYPE_I8)
        return gs_q8_bytes(rows, cols);
    if (gs_dtype_is_q4(dt))
        return gs_q4_bytes(rows, cols, gs_dtype_group(dt));
    return (size_t)rows * (size_t)cols * gs_dtype_size(dt);
}

float gs_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | man << 13; /* inf, or NaN with its payload */
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | man << 13; /* rebias 15 -> 127 */
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal: man * 2^-24. Shift the leading one up to bit 10 so the
         * value becomes a normal fp32 number. */
        int e = 113; /* biased exponent of 2^-14 */
        while (!(man & 0x400)) {
            man <<= 1;
            e--;
        }
        bits = sign | (uint32_t)e << 23 | (man & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float gs_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t gs_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40); /* NaN: keep it NaN, quiet */
    x += 0x7fff + ((x >> 16) & 1);           /* round to nearest even */
    return (uint16_t)(x >> 16);
}

uint16_t gs_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) {
        uint16_t m = (uint16_t)((ax >> 13) & 0x3ff);
        return sign | 0x7c00 | 0x200 | m; /* NaN stays NaN, quiet */
    }
    if (ax >= 0x477ff000) /* 65520 and up round to infinity */
        return sign | 0x7c00;
    if (ax < 0x38800000) { /* below 2^-14: fp16 subnormal or zero */
        if (ax < 0x33000000) /* below 2^-25: rounds to zero */
            return sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* value * 2^24 = m * 2^(e-126) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax - (112u << 23); /* rebias 127 -> 15 */
    uint32_t q = r >> 13, rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
        q++; /* a carry into the exponent is the right answer */
    return (uint16_t)(sign | q);
}

/* The KV-cache formats: the kernels' own inline conversions (kv_format.h),
 * so host, CPU kernels and CUDA kernels encode alike. */
const char *gs_kv_dtype_name(int kv_dtype)
{
    static const char *const names[GS_KV_N_DTYPES] = {"fp32", "fp16", "int8", "fp8"};
    return (unsigned)kv_dtype < GS_KV_N_DTYPES ? names[kv_dtype] : "?";
}

uint8_t gs_f32_to_e4m3(float f) { return gs_kv_f32_to_e4m3(f); }
float gs_e4m3_to_f32(uint8_t b) { return gs_kv_e4m3_to_f32(b); }
