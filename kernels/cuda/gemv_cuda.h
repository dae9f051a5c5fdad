/* gemv_cuda.h - C interface to the half-precision-weight matrix-vector kernels
 * (gemv.cu) for decode: a few token rows against a weight matrix that is read
 * once per call, so the time is the weight's bytes over memory bandwidth.
 *
 * Pointers are in device memory; each function enqueues on `stream` and
 * returns 0 or the cudaError_t of a failed launch. Activations are fp32,
 * weights fp16 (__half) or bf16 (__nv_bfloat16) passed as raw 16-bit words. */
#ifndef GS_GEMV_CUDA_H
#define GS_GEMV_CUDA_H

#include <cuda_runtime_api.h>

#include "norm_fold.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[i][j] = sum_c in[i][c] * w[j][c] (+ bias[j]) for i < n, j < m, c < k.
 * in: n x k fp32; w: m x k row-major, fp16 (is_bf16 = 0) or bf16 (is_bf16 = 1);
 * bias: m fp32 or NULL; out: n x m fp32. Sums in fp32. Fast for n <= 16 (any n
 * works, 16 rows per pass; 5 to 16 rows run on the tensor-core GEMV of
 * gemv_mma_cuda.h, inputs rounded to half, unless GS_GEMV_MMA=0); 16-byte loads of w when k % 8 == 0 and w and in
 * are 16-byte aligned, scalar loads otherwise. out must not overlap in. */
int cuda_gemv_half(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k, int m,
                   cudaStream_t stream);

/* Epilogues of cuda_gemv_half_ex, applied to each result v = in . w + bias. */
enum { GS_GEMV_EPI_NONE = 0, GS_GEMV_EPI_GELU = 1, GS_GEMV_EPI_ACCUMULATE = 2 };
/* As cuda_gemv_half, then out = gelu(v) (GELU, the tanh form of the gelu
 * kernel) or out += v (the residual stream takes the product in place).
 * norm.kind != GS_NORM_FOLD_NONE: the product reads norm(in) (norm_fold.h),
 * bit for bit what the norm kernel would have written. */
int cuda_gemv_half_ex(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k, int m,
                      int epilogue, gs_norm_fold norm, cudaStream_t stream);

/* The KV-cache store folded into the qkv product (decode): after the product,
 * columns q_dim .. q_dim + kv_dim - 1 of each result row i are also written
 * to k_cache[slot[i]][.] and the next kv_dim columns to v_cache[slot[i]][.]
 * (fp32 caches, kv_dim floats a slot; slot < 0: not stored), the values and
 * places kv_store (cuda_kv_store, GS_KV_F32) would write. */
typedef struct gs_gemv_kv {
    float *k_cache, *v_cache;
    const int *slot;
    int q_dim, kv_dim;
} gs_gemv_kv;

/* cuda_gemv_half_ex with no epilogue and the KV store folded in (above);
 * cudaErrorInvalidValue when kv is incomplete or its columns pass m. */
int cuda_gemv_half_kv(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k, int m,
                      gs_norm_fold norm, gs_gemv_kv kv, cudaStream_t stream);

/* out[i] = in[i] rounded to nearest even in fp16 (is_bf16 = 0) or bf16
 * (is_bf16 = 1), for i < count. Overflow gives +-inf, subnormals are kept,
 * every NaN becomes the canonical 0x7FFF. */
int cuda_convert_to_half(void *out, const float *in, long count, int is_bf16, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
