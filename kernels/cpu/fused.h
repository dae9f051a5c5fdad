/* fused.h - the residual update fused with the next norm: for each of n rows
 * of width C, x += y (the residual stream, in place), then out = norm(x).
 * The reference twins of kernels/cuda/fused.cu; same result as
 * cpu_residual_add followed by cpu_layernorm_ref / cpu_rmsnorm_ref. */
#ifndef GS_CPU_FUSED_H
#define GS_CPU_FUSED_H

void cpu_residual_layernorm(float *x, const float *y, float *out, const float *w, const float *b, int n, int C,
                            float eps);
void cpu_residual_rmsnorm(float *x, const float *y, float *out, const float *w, int n, int C, float eps);

#endif
