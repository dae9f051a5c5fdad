/* quant.c - host quantizer and dequantizer for the weight formats. */
#include "quant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant_layout.h"

static void quantize_q8(const float *src, long rows, long cols, uint8_t *dst)
{
    int8_t *q = (int8_t *)dst;
    float *scale = (float *)(dst + gs_q8_scale_offset(rows, cols));
    for (long r = 0; r < rows; r++) {
        const float *w = src + r * cols;
        float amax = 0.0f;
        for (long c = 0; c < cols; c++)
            amax = fmaxf(amax, fabsf(w[c]));
        float s = amax / 127.0f;
        float inv = s > 0.0f ? 1.0f / s : 0.0f;
        for (long c = 0; c < cols; c++) {
            float v = nearbyintf(w[c] * inv);
            q[r * cols + c] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
        }
        scale[r] = s;
    }
}

static void quantize_q4(const float *src, long rows, long cols, int group, uint8_t *dst)
{
    size_t rb = gs_q4_row_bytes(cols);
    long ng = gs_q4_groups(cols, group);
    uint16_t *sz = (uint16_t *)(dst + gs_q4_sz_offset(rows, cols));
    for (long r = 0; r < rows; r++) {
        const float *w = src + r * cols;
        uint8_t *q = dst + (size_t)r * rb;
        for (long g = 0; g < ng; g++) {
            long c0 = g * group, c1 = c0 + group < cols ? c0 + group : cols;
            float lo = 0.0f, hi = 0.0f; /* the range always holds 0 */
            for (long c = c0; c < c1; c++) {
                lo = fminf(lo, w[c]);
                hi = fmaxf(hi, w[c]);
            }
            /* The scale the kernels will use is the fp16 one: quantize with it. */
            float s = gs_f16_to_f32(gs_f32_to_f16((hi - lo) / 15.0f));
            float z = 0.0f;
            if (s > 0.0f) {
                z = nearbyintf(-lo / s);
                z = z < 0.0f ? 0.0f : z > 15.0f ? 15.0f : z;
            }
            float inv = s > 0.0f ? 1.0f / s : 0.0f;
            for (long c = c0; c < c1; c++) {
                float v = s > 0.0f ? nearbyintf(w[c] * inv) + z : z;
                unsigned qv = (unsigned)(v < 0.0f ? 0 : v > 15.0f ? 15 : v);
                if (c & 1)
                    q[c / 2] = (uint8_t)((q[c / 2] & 0x0f) | qv << 4);
                else
                    q[c / 2] = (uint8_t)((q[c / 2] & 0xf0) | qv);
            }
            sz[(r * ng + g) * 2] = gs_f32_to_f16(s);
            sz[(r * ng + g) * 2 + 1] = gs_f32_to_f16(z);
        }
    }
}

void gs_quantize_matrix(gs_dtype dt, const float *src, long rows, long cols, void *dst)
{
    size_t bytes = gs_weight_bytes(dt, rows, cols);
    memset(dst, 0, bytes);
    size_t n = (size_t)rows * (size_t)cols;
    if (dt == GS_DTYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else if (dt == GS_DTYPE_F16 || dt == GS_DTYPE_BF16) {
        uint16_t *h = dst;
        for (size_t i = 0; i < n; i++)
            h[i] = dt == GS_DTYPE_F16 ? gs_f32_to_f16(src[i]) : gs_f32_to_bf16(src[i]);
    } else if (dt == GS_DTYPE_I8) {
        quantize_q8(src, rows, cols, dst);
    } else if (gs_dtype_is_q4(dt)) {
        quantize_q4(src, rows, cols, gs_dtype_group(dt), dst);
    }
}

void gs_dequantize_span(gs_dtype dt, const void *blk, long rows, long cols, long r, long c0, long len, float *out)
{
    const uint8_t *b = blk;
    if (dt == GS_DTYPE_F32) {
        memcpy(out, (const float *)blk + r * cols + c0, (size_t)len * sizeof(float));
    } else if (dt == GS_DTYPE_F16 || dt == GS_DTYPE_BF16) {
        const uint16_t *h = (const uint16_t *)blk + r * cols + c0;
        for (long i = 0; i < len; i++)
            out[i] = dt == GS_DTYPE_F16 ? gs_f16_to_f32(h[i]) : gs_bf16_to_f32(h[i]);
    } else if (dt == GS_DTYPE_I8) {
        const int8_t *q = (const int8_t *)b + r * cols + c0;
        float s = ((const float *)(b + gs_q8_scale_offset(rows, cols)))[r];
        for (long i = 0; i < len; i++)
            out[i] = (float)q[i] * s;
    } else if (gs_dtype_is_q4(dt)) {
        int group = gs_dtype_group(dt);
        long ng = gs_q4_groups(cols, group);
        const uint8_t *q = b + (size_t)r * gs_q4_row_bytes(cols);
        const uint16_t *sz = (const uint16_t *)(b + gs_q4_sz_offset(rows, cols)) + r * ng * 2;
        for (long i = 0; i < len; i++) {
            long c = c0 + i, g = c / group;
            unsigned v = (q[c / 2] >> ((c & 1) * 4)) & 0xf;
            out[i] = ((float)v - gs_f16_to_f32(sz[2 * g + 1])) * gs_f16_to_f32(sz[2 * g]);
        }
    }
}

void gs_dequantize_row(gs_dtype dt, const void *blk, long rows, long cols, long r, float *out)
{
    gs_dequantize_span(dt, blk, rows, cols, r, 0, cols, out);
}
