/* activation.c - GELU (GPT-2's tanh approximation) and SwiGLU (Llama), in place.
 *
 * The _ref twins evaluate the formulas in double. The fast versions are the
 * same formulas in float with expf/tanhf, written the way llm.c (GELU) and
 * llama2.c (SwiGLU) write them so logits can be compared with those programs,
 * and split across the pool: tanhf/expf cost ~10-20 ns each, so a decode
 * step's 3072-wide MLP is already worth two threads. */
#include "activation.h"

#include <math.h>
#include <stddef.h>

/* Elements per chunk: ~1024 transcendental calls, several microseconds. */
#define ACT_MIN_CHUNK 1024

void cpu_gelu_ref(float *x, long count)
{
    const double s = sqrt(2.0 / M_PI);
    for (long i = 0; i < count; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + tanh(s * (v + 0.044715 * v * v * v))));
    }
}

void cpu_swiglu_ref(float *up, const float *gate, long count)
{
    for (long i = 0; i < count; i++) {
        double v = up[i];
        up[i] = (float)(v / (1.0 + exp(-v)) * gate[i]);
    }
}

typedef struct act_job {
    float *x;
    const float *gate;
    long base; /* chunk indices are int: long arrays are walked in blocks */
} act_job;

static void gelu_range(void *ctx, int b, int e)
{
    const act_job *j = ctx;
    /* As llm.c writes it: the quotient in double, the root in float. */
    const float s = sqrtf(2.0f / M_PI);
    float *x = j->x + j->base;
    for (int i = b; i < e; i++) {
        float v = x[i];
        float cube = 0.044715f * v * v * v;
        x[i] = 0.5f * v * (1.0f + tanhf(s * (v + cube)));
    }
}

static void swiglu_range(void *ctx, int b, int e)
{
    const act_job *j = ctx;
    float *up = j->x + j->base;
    const float *gate = j->gate + j->base;
    for (int i = b; i < e; i++) {
        float v = up[i];
        v *= 1.0f / (1.0f + expf(-v));
        up[i] = v * gate[i];
    }
}

/* parallel_for counts in int; a count past INT_MAX goes in int-sized slices. */
static void act_run(gs_pool *pool, float *x, const float *gate, long count, gs_pool_fn fn)
{
    const long slice = 1L << 30;
    for (long base = 0; base < count; base += slice) {
        act_job j = {x, gate, base};
        long len = count - base < slice ? count - base : slice;
        gs_pool_parallel_for(pool, (int)len, ACT_MIN_CHUNK, fn, &j);
    }
}

void cpu_gelu(gs_pool *pool, float *x, long count) { act_run(pool, x, NULL, count, gelu_range); }

void cpu_swiglu(gs_pool *pool, float *up, const float *gate, long count)
{
    act_run(pool, up, gate, count, swiglu_range);
}
