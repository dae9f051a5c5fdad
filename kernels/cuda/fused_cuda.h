/* fused_cuda.h - C interface to kernels/cuda/fused.cu: the residual update
 * fused with the next norm. For each of n rows of width C: x += y (in place),
 * out = norm(x). Twins of kernels/cpu/fused.c; pointers in device memory;
 * x, y, out must not overlap. Enqueues on `stream`, returns 0 or the
 * cudaError_t of a failed launch. */
#ifndef GS_FUSED_CUDA_H
#define GS_FUSED_CUDA_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int cuda_residual_layernorm(float *x, const float *y, float *out, const float *w, const float *b, int n, int C,
                            float eps, cudaStream_t stream);
int cuda_residual_rmsnorm(float *x, const float *y, float *out, const float *w, int n, int C, float eps,
                          cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
