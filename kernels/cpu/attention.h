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

void cpu_kv_store(float *k_cache, float *v_cache, const float *qkv, const int *slot, int n,
                  int qkv_stride, int q_dim, int kv_dim);
/* Materializes every score row, then softmax, then the weighted sum: the reference. */
void cpu_attention_ref(float *out, const float *qkv, const float *k_cache, const float *v_cache,
                       const gs_attn_args *a);
void cpu_attention(gs_pool *pool, float *out, const float *qkv, const float *k_cache,
                   const float *v_cache, const gs_attn_args *a);

#endif
