/* residual.c - the residual stream update x += y.
 *
 * Pure memory traffic: one pass, vectorized by the compiler, split across
 * the pool only when a chunk moves enough bytes (~64 KB each) to repay a
 * dispatch; a decode step's single row runs inline. */
#include "residual.h"

#define RES_MIN_CHUNK 16384

typedef struct res_job {
    float *x;
    const float *y;
    long base;
} res_job;

static void res_range(void *ctx, int b, int e)
{
    const res_job *j = ctx;
    float *restrict x = j->x + j->base;
    const float *restrict y = j->y + j->base;
    for (int i = b; i < e; i++)
        x[i] += y[i];
}

void cpu_residual_add(gs_pool *pool, float *x, const float *y, long count)
{
    /* parallel_for counts in int: very long arrays go in int-sized slices. */
    const long slice = 1L << 30;
    for (long base = 0; base < count; base += slice) {
        res_job j = {x, y, base};
        long len = count - base < slice ? count - base : slice;
        gs_pool_parallel_for(pool, (int)len, RES_MIN_CHUNK, res_range, &j);
    }
}
