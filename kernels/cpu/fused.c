/* fused.c - residual add + LayerNorm / RMSNorm, one row at a time.
 *
 * Single-threaded and obvious on purpose: the twin the CUDA kernels are
 * checked against. The add is float (as cpu_residual_add), the statistics
 * are double, in the same order as cpu_layernorm_ref / cpu_rmsnorm_ref, so
 * the result is bit-identical to the unfused pair. */
#include <math.h>
#include <stddef.h>

#include "fused.h"

/* x += y over one row, then return the row. */
static const float *add_row(float *x, const float *y, int C)
{
    for (int c = 0; c < C; c++)
        x[c] += y[c];
    return x;
}

void cpu_residual_layernorm(float *x, const float *y, float *out, const float *w, const float *b, int n, int C,
                            float eps)
{
    for (int i = 0; i < n; i++) {
        const float *r = add_row(x + (size_t)i * C, y + (size_t)i * C, C);
        float *o = out + (size_t)i * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++)
            mean += r[c];
        mean /= C;
        for (int c = 0; c < C; c++)
            var += (r[c] - mean) * (r[c] - mean);
        var /= C;
        double rstd = 1.0 / sqrt(var + eps);
        for (int c = 0; c < C; c++)
            o[c] = (float)((r[c] - mean) * rstd * w[c] + b[c]);
    }
}

void cpu_residual_rmsnorm(float *x, const float *y, float *out, const float *w, int n, int C, float eps)
{
    for (int i = 0; i < n; i++) {
        const float *r = add_row(x + (size_t)i * C, y + (size_t)i * C, C);
        float *o = out + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++)
            ss += (double)r[c] * r[c];
        double rs = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++)
            o[c] = (float)(r[c] * rs * w[c]);
    }
}
