/* matmul_quant_cuda.h - C interface to the products with quantized weights
 * (gemv_quant.cu): out = in . dequant(w)^T (+ bias), w one packed block in
 * the layout of kernels/quant_layout.h (int8 per output row, or int4 with
 * fp16 {scale, zero} per group of 32, 64 or 128 inputs), dequantized in
 * registers / shared memory as it is read: no dequantized copy is made.
 *
 * Pointers are in device memory; each function enqueues on `stream` and
 * returns 0 or the cudaError_t of a failed launch (cudaErrorInvalidValue for
 * a group size other than 0, 32, 64, 128). Activations are fp32.
 *
 *   group   0 for int8 (GS_DTYPE_I8), 32 / 64 / 128 for int4 (GS_DTYPE_Q4_G*)
 *   in      n x k fp32, row-major; must not overlap out
 *   w       the block of an m x k matrix (m outputs, k inputs), as written by
 *           gs_quantize_matrix (src/quant.c); 256-byte aligned (cudaMalloc is)
 *   bias    m fp32 or NULL
 *   out     n x m fp32
 *   epilogue GS_GEMV_EPI_NONE, GS_GEMV_EPI_GELU (out = gelu(v)) or
 *           GS_GEMV_EPI_ACCUMULATE (out += v), v = in . w^T + bias */
#ifndef GS_MATMUL_QUANT_CUDA_H
#define GS_MATMUL_QUANT_CUDA_H

#include <cuda_runtime_api.h>

#include "norm_fold.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The product for any n: the decode GEMV for n <= 16 (CUDA_QUANT_GEMV_MAX_ROWS),
 * the tiled tensor-core kernel above. Sums in fp32 either way. */
int cuda_matmul_quant(float *out, const float *in, const void *w, int group, const float *bias, int n, int k, int m,
                      int epilogue, cudaStream_t stream);

#define CUDA_QUANT_GEMV_MAX_ROWS 16

/* The decode GEMV: bandwidth-bound on w, fp32 math on exactly dequantized
 * weights (the host twin's values; int4 at n <= 4 sums 0.5 + q / 256 and
 * takes the zero off per 32 weights, ~3e-6 of the norm); any n works, 16 rows
 * per pass. 16-byte
 * loads of w when k % 16 == 0 (int8) or k % 32 == 0 (int4) and in is 16-byte
 * aligned; byte loads otherwise. norm.kind != GS_NORM_FOLD_NONE: the product
 * reads norm(in) (norm_fold.h), as cuda_gemv_half_ex. */
int cuda_gemv_quant(float *out, const float *in, const void *w, int group, const float *bias, int n, int k, int m,
                    int epilogue, gs_norm_fold norm, cudaStream_t stream);

/* The prefill kernel: 64 x 64 output tiles, w dequantized tile by tile into
 * shared memory and multiplied on tensor cores (bf16 in, fp32 accumulate).
 * Both operands are split into bf16 hi + lo parts and three products are
 * summed (hi.hi + hi.lo + lo.hi), so the result carries ~16 bits of each
 * operand: agreement with fp32 math is ~1e-5 relative, fp32 range kept. */
int cuda_gemm_quant(float *out, const float *in, const void *w, int group, const float *bias, int n, int k, int m,
                    int epilogue, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
