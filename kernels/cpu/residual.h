/* residual.h - the residual stream update x += y. */
#ifndef GS_CPU_RESIDUAL_H
#define GS_CPU_RESIDUAL_H

#include "thread_pool.h"

void cpu_residual_add(gs_pool *pool, float *x, const float *y, long count);

#endif
