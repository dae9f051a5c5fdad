/* norm.h - LayerNorm (GPT-2) and RMSNorm (Llama) over rows of width C. */
#ifndef GS_CPU_NORM_H
#define GS_CPU_NORM_H

#include "thread_pool.h"

void cpu_layernorm_ref(float *out, const float *in, const float *w, const float *b, int n, int C, float eps);
void cpu_layernorm(gs_pool *pool, float *out, const float *in, const float *w, const float *b,
                   int n, int C, float eps);
void cpu_rmsnorm_ref(float *out, const float *in, const float *w, int n, int C, float eps);
void cpu_rmsnorm(gs_pool *pool, float *out, const float *in, const float *w, int n, int C, float eps);

#endif
