/* attention.h - causal attention reading the paged KV cache (CPU).
 *
 * kv_store writes each token's k and v (taken from its qkv row) into the cache
 * slot slot[i] = block * block_size + offset; a negative slot (a padding
 * token) stores nothing. attention computes, per token
 * and head, scores over the visible positions, softmax, and the weighted sum
 * of v, with grouped-query sharing (query head h reads KV head
 * h / (n_head / n_kv_head)). out is [n_tokens][n_head * head_dim]. */
#ifndef GS_CPU_ATTENTION_H
#define GS_CPU_ATTENTION_H

#include "../attention_args.h"
#include "thread_pool.h"

/* The caches hold kv_dtype elements (kv_format.h); k_scale/v_scale
 * [slots][kv_dim / head_dim] are written for GS_KV_I8 only (NULL otherwise). */
void cpu_kv_store(void *k_cache, void *v_cache, float *k_scale, float *v_scale, int kv_dtype,
                  const float *qkv, const int *slot, int n, int qkv_stride, int q_dim, int kv_dim,
                  int head_dim);
/* Materializes every score row, then softmax, then the weighted sum: the reference.
 * Both read a->kv_dtype elements (and a->k_scale/v_scale) and dequantize on load. */
void cpu_attention_ref(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                       const gs_attn_args *a);
void cpu_attention(gs_pool *pool, float *out, const float *qkv, const void *k_cache,
                   const void *v_cache, const gs_attn_args *a);

#endif
