/* rope.h - rotary position embedding, in place on the q and k parts of qkv rows.
 * Pairs are adjacent elements (2i, 2i+1) within each head, rotated by
 * pos * theta^(-2i/head_dim) (llama2.c's convention). */
#ifndef GS_CPU_ROPE_H
#define GS_CPU_ROPE_H

#include "thread_pool.h"

void cpu_rope_ref(float *qkv, const int *pos, int n, int qkv_stride, int n_head, int n_kv_head,
                  int head_dim, float theta);
void cpu_rope(gs_pool *pool, float *qkv, const int *pos, int n, int qkv_stride, int n_head,
              int n_kv_head, int head_dim, float theta);

#endif
