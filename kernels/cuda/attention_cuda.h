/* attention_cuda.h - C interface to the CUDA attention kernels over the paged
 * KV cache (the twins of kernels/cpu/attention.c).
 *
 * a->variant picks the path: GS_ATTN_NAIVE materializes the scores in
 * `scratch` (scores, softmax and weighted sum as separate kernels), GS_ATTN_FUSED
 * runs flash-style tiles with an online softmax (no score matrix in device
 * memory) and, for decode-shaped calls, split-K flash-decoding. The index
 * arrays in `a` point to device memory. */
#ifndef GS_ATTENTION_CUDA_H
#define GS_ATTENTION_CUDA_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "../attention_args.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Caches of kv_dtype elements (kv_format.h), encoded exactly as cpu_kv_store
 * does; k_scale/v_scale [slots][kv_dim / head_dim] for GS_KV_I8, else NULL. */
int cuda_kv_store(void *k_cache, void *v_cache, float *k_scale, float *v_scale, int kv_dtype, const float *qkv,
                  const int *slot, int n, int qkv_stride, int q_dim, int kv_dim, int head_dim, cudaStream_t stream);
/* Device scratch bytes cuda_attention needs for a (both variants). */
size_t cuda_attention_scratch_bytes(const gs_attn_args *a);
/* 1 when cuda_attention(a) on these caches runs the tensor-core prefill
 * (fp16 operands, fp32 accumulation): a->half_ok, the fused variant, more than
 * 64 tokens, head_dim 32, 64 or 128, 16-byte aligned caches. Its rows that
 * share their 16-row tile with fewer than 4 rows of their sequence still go to
 * the fp32 decode kernel. For tests and benchmarks: the routing, made visible. */
int cuda_attention_tensor_cores(const gs_attn_args *a, const void *k_cache, const void *v_cache);
/* Reads a->kv_dtype elements (a->k_scale/v_scale for int8), dequantized in registers. */
int cuda_attention(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                   const gs_attn_args *a, void *scratch, size_t scratch_bytes, cudaStream_t stream);

/* The attention output written as the 16-bit rows (fp16, or bf16 with
 * out_bf16) that the output projection reads, each element rounded as
 * cuda_convert_to_half rounds it: the same bits as cuda_attention's fp32
 * output converted, without the conversion pass. Only where
 * cuda_attention_half_fits(a) says so: the tensor-core prefill takes every
 * row (judged on a->token_seq_host, which must be set); out_half 4-byte
 * aligned; scratch as for cuda_attention. */
int cuda_attention_half_fits(const gs_attn_args *a, const void *k_cache, const void *v_cache);
int cuda_attention_half(void *out_half, int out_bf16, const float *qkv, const void *k_cache, const void *v_cache,
                        const gs_attn_args *a, void *scratch, size_t scratch_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
