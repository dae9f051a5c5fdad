/* matmul.h - dense fp32 matrix product for the CPU backend.
 * out[n][m] = in[n][k] . w[m][k]^T (+ bias[m]); w is row-major [out][in]. */
#ifndef GS_CPU_MATMUL_H
#define GS_CPU_MATMUL_H

#include "thread_pool.h"

/* The obvious triple loop, double accumulation: the reference twin. */
void cpu_matmul_ref(float *out, const float *in, const float *w, const float *bias, int n, int k, int m);
/* Vectorized and threaded over output columns (decode) or rows (prefill).
 * Built for the baseline ISA and for AVX2+FMA, chosen once per process from
 * the CPU; the environment variable GS_CPU_ISA=generic forces the baseline. */
void cpu_matmul(gs_pool *pool, float *out, const float *in, const float *w, const float *bias,
                int n, int k, int m);

#endif
