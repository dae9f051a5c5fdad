/* matmul_quant.h - the CPU matrix product with weights stored compactly:
 * fp16, bf16, int8 per row, int4 per group (formats: kernels/quant_layout.h).
 * out[n][m] = in[n][k] . W[m][k]^T (+ bias[m]), W dequantized on the fly in
 * small tiles that stay in L1, never as a whole fp32 copy. */
#ifndef GS_CPU_MATMUL_QUANT_H
#define GS_CPU_MATMUL_QUANT_H

#include "dtype.h"
#include "thread_pool.h"

void cpu_matmul_packed(gs_pool *pool, float *out, const float *in, const void *w, gs_dtype wdt, const float *bias,
                       int n, int k, int m);

#endif
