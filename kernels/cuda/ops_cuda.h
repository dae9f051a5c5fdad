/* ops_cuda.h - C interface to the CUDA kernels except attention (attention_cuda.h).
 *
 * Each function mirrors its CPU twin in kernels/cpu (same arguments, same
 * meaning, pointers in device memory), enqueues on `stream` and returns 0 or
 * the cudaError_t of a failed launch. Activations are fp32. One .cu file per
 * family: embedding.cu, norm.cu, activation.cu, rope.cu, residual.cu,
 * gather.cu, sampling.cu. */
#ifndef GS_OPS_CUDA_H
#define GS_OPS_CUDA_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int cuda_embed(float *out, const int *tokens, const int *pos, const float *wte, const float *wpe, int n, int C,
               cudaStream_t stream);
int cuda_layernorm(float *out, const float *in, const float *w, const float *b, int n, int C, float eps,
                   cudaStream_t stream);
int cuda_rmsnorm(float *out, const float *in, const float *w, int n, int C, float eps, cudaStream_t stream);
/* LayerNorm (rms = 0, with b) or RMSNorm (rms = 1) of n rows written as fp16
 * (is_bf16 = 0) or bf16: the fp32 norm rounded as cuda_convert_to_half rounds
 * it, bit for bit when both outputs are aligned alike (the kernel is picked by
 * alignment: float4 rows or scalar ones; the input rows of a half-precision
 * product). out must not overlap in. */
int cuda_norm_half(void *out, const float *in, const float *w, const float *b, int rms, int n, int C, float eps,
                   int is_bf16, cudaStream_t stream);
int cuda_gelu(float *x, long count, cudaStream_t stream);
/* out[i] = gelu(x[i]) as fp16 (is_bf16 = 0) or bf16, rounded as
 * cuda_convert_to_half rounds cuda_gelu's result; x is unchanged and must
 * not overlap out. */
int cuda_gelu_half(void *out, const float *x, long count, int is_bf16, cudaStream_t stream);
int cuda_swiglu(float *up, const float *gate, long count, cudaStream_t stream);
/* x[i][j] += bias[j] over n rows of m (the epilogue of a cuBLAS product). */
int cuda_add_bias(float *x, const float *bias, int n, int m, cudaStream_t stream);
int cuda_rope(float *qkv, const int *pos, int n, int qkv_stride, int n_head, int n_kv_head, int head_dim,
              float theta, cudaStream_t stream);
int cuda_residual_add(float *x, const float *y, long count, cudaStream_t stream);
int cuda_gather_rows(float *out, const float *in, const int *rows, int n, int C, cudaStream_t stream);
/* out[i] = argmax of logits row i (ties to the lowest id), n rows of vocab. */
int cuda_argmax(int *out, const float *logits, int n, int vocab, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
