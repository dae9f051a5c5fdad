/* norm.c - LayerNorm (GPT-2) and RMSNorm (Llama) over rows of width C.
 *
 * The _ref twins accumulate in double and are what the tests compare to.
 * The fast versions sum in float with eight independent accumulators (so
 * the adds pipeline and the compiler can vectorize them without fast-math),
 * and split rows across the pool when there are enough of them (prefill);
 * a decode step's single row stays on the calling thread. The final
 * expressions follow llm.c (layernorm) and llama2.c (rmsnorm). */
#include "norm.h"

#include <math.h>
#include <stddef.h>

void cpu_layernorm_ref(float *out, const float *in, const float *w, const float *b, int n, int C, float eps)
{
    for (int i = 0; i < n; i++) {
        const float *x = in + (size_t)i * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++)
            mean += x[c];
        mean /= C;
        for (int c = 0; c < C; c++)
            var += (x[c] - mean) * (x[c] - mean);
        var /= C;
        double rstd = 1.0 / sqrt(var + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)i * C + c] = (float)((x[c] - mean) * rstd * w[c] + b[c]);
    }
}

void cpu_rmsnorm_ref(float *out, const float *in, const float *w, int n, int C, float eps)
{
    for (int i = 0; i < n; i++) {
        const float *x = in + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)i * C + c] = (float)(x[c] * r * w[c]);
    }
}

/* Sum of x[c] - shift (squared when sq) over a row, eight lanes at a time. */
static float row_sum(const float *x, int C, float shift, int sq)
{
    float acc[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) {
            float d = x[c + l] - shift;
            acc[l] += sq ? d * d : d;
        }
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < C; c++) {
        float d = x[c] - shift;
        s += sq ? d * d : d;
    }
    return s;
}

typedef struct norm_job {
    float *out;
    const float *in, *w, *b;
    int C;
    float eps;
} norm_job;

static void layernorm_rows(void *ctx, int r0, int r1)
{
    const norm_job *j = ctx;
    const int C = j->C;
    for (int i = r0; i < r1; i++) {
        const float *x = j->in + (size_t)i * C;
        float *o = j->out + (size_t)i * C;
        float mean = row_sum(x, C, 0.0f, 0) / C;
        /* Two passes (sum of squared deviations) rather than E[x^2] - mean^2:
         * no cancellation when the mean is large against the spread. */
        float var = row_sum(x, C, mean, 1) / C;
        float rstd = 1.0f / sqrtf(var + j->eps);
        for (int c = 0; c < C; c++)
            o[c] = (rstd * (x[c] - mean)) * j->w[c] + j->b[c];
    }
}

static void rmsnorm_rows(void *ctx, int r0, int r1)
{
    const norm_job *j = ctx;
    const int C = j->C;
    for (int i = r0; i < r1; i++) {
        const float *x = j->in + (size_t)i * C;
        float *o = j->out + (size_t)i * C;
        float ss = row_sum(x, C, 0.0f, 1) / C + j->eps;
        ss = 1.0f / sqrtf(ss);
        for (int c = 0; c < C; c++)
            o[c] = j->w[c] * (ss * x[c]);
    }
}

/* Rows per chunk: ~8K elements each, about one dispatch worth of work. */
static int rows_per_chunk(int C) { return C >= 8192 ? 1 : 8192 / (C > 0 ? C : 1); }

void cpu_layernorm(gs_pool *pool, float *out, const float *in, const float *w, const float *b,
                   int n, int C, float eps)
{
    norm_job j = {out, in, w, b, C, eps};
    gs_pool_parallel_for(pool, n, rows_per_chunk(C), layernorm_rows, &j);
}

void cpu_rmsnorm(gs_pool *pool, float *out, const float *in, const float *w, int n, int C, float eps)
{
    norm_job j = {out, in, w, NULL, C, eps};
    gs_pool_parallel_for(pool, n, rows_per_chunk(C), rmsnorm_rows, &j);
}
