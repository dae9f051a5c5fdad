/* gemv_mma_cuda.h - C interface to the tensor-core decode GEMV (gemv_mma.cu):
 * the product of gemv_cuda.h's cuda_gemv_half_ex for a few token rows, with
 * the activations rounded to the weights' half type and multiplied on the
 * tensor cores (mma.sync, fp32 accumulation), and optionally a LayerNorm /
 * RMSNorm folded into its reading of the rows (norm_fold.h).
 *
 * Pointers are in device memory; each function enqueues on `stream` and
 * returns 0 or the cudaError_t of a failed launch. */
#ifndef GS_GEMV_MMA_CUDA_H
#define GS_GEMV_MMA_CUDA_H

#include <cuda_runtime_api.h>

#include "gemv_cuda.h" /* GS_GEMV_EPI_* */
#include "norm_fold.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[i][j] = epi(sum_c x[i][c] * w[j][c] + bias[j]) for i < n, j < m, c < k,
 * where x = in (norm.kind == GS_NORM_FOLD_NONE) or x = norm(in) row by row
 * (in then holds the raw residual rows; norm.w / norm.b / norm.eps as in
 * norm_fold.h, the statistics bit for bit those of norm.cu). in: n x k fp32;
 * w: m x k row-major, fp16 (is_bf16 = 0) or bf16 (is_bf16 = 1); bias: m fp32
 * or NULL; out: n x m fp32; epilogue: GS_GEMV_EPI_NONE / GELU / ACCUMULATE as
 * cuda_gemv_half_ex. x is rounded to fp16 / bf16 (the weights' type) before
 * the products, so the result is within ~1e-3 (fp16) / ~3e-3 (bf16) of the
 * exact product by the norm; with fp16 weights |x| must stay under 65504.
 * Sums in fp32, in an order fixed by (n, k, m): the same call gives the same
 * bits every time. Any n (16 rows per pass), any k and m; 16-byte weight
 * loads when k % 8 == 0 and w is 16-byte aligned, scalar loads otherwise.
 * out must not overlap in. */
int cuda_gemv_mma(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k, int m,
                  int epilogue, gs_norm_fold norm, cudaStream_t stream);

/* The launch shape, for tests and tuning sweeps; 0 in a field lets the
 * launcher choose it (cuda_gemv_mma is this with every field 0). Results
 * differ between shapes only in fp32 summation order. */
typedef struct gs_gemv_mma_cfg {
    int split;  /* warps of a block on one 16-row tile, splitting its k range: 1, 2, 4 or 8 */
    int ksplit; /* blocks of a thread-block cluster splitting k, their totals added through
                   distributed shared memory (sm_90): 1, 2, 4 or 8 */
    int grid;   /* blocks along the rows; each walks the row blocks grid apart */
    int kchunk; /* k columns staged in shared memory at a time: a multiple of 32 up to the cap (~3200 at n > 8) */
} gs_gemv_mma_cfg;

/* cuda_gemv_mma with a chosen shape; a field out of range (or ksplit > 1
 * before sm_90) returns cudaErrorInvalidValue. */
int cuda_gemv_mma_cfg(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k,
                      int m, int epilogue, gs_norm_fold norm, const gs_gemv_mma_cfg *cfg, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
