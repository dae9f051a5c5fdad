/* attention_args.h - the shape of one attention call over the paged KV cache.
 * Shared by the CPU kernels and the CUDA kernels' C interface.
 *
 * Tokens of one step are flattened (prefill and decode tokens of several
 * sequences side by side). Token i belongs to block-table row token_seq[i],
 * sits at position token_pos[i], and attends to cache positions
 * [0, token_pos[i]] of its sequence (causal), optionally limited to a sliding
 * window of the last `window` positions plus the first `n_sink` positions.
 * The KV cache of one layer is [n_blocks][block_size][kv_dim]; position p of a
 * sequence lives in block block_tables[row][p / block_size], offset
 * p % block_size. All index arrays live where the backend's memory lives.
 * The cache elements are kv_dtype (kv_format.h): fp32, fp16, int8 with a
 * scale per (slot, KV head) in k_scale/v_scale, or fp8 e4m3; kernels
 * dequantize on load, the arithmetic stays fp32 (except half_ok, below). */
#ifndef GS_ATTENTION_ARGS_H
#define GS_ATTENTION_ARGS_H

#include "kv_format.h"

typedef struct gs_attn_args {
    int n_tokens;
    int n_head, n_kv_head, head_dim; /* n_kv_head divides n_head (MHA/GQA/MQA) */
    int qkv_stride;          /* floats per token row of qkv: q at 0, k at n_head*head_dim, v after k */
    int block_size;
    int max_blocks_per_seq;  /* row length of block_tables */
    int max_pos;             /* largest token_pos + 1 in this call: scratch sizing */
    const int *token_seq;    /* [n_tokens] */
    const int *token_pos;    /* [n_tokens] */
    const int *block_tables; /* [rows][max_blocks_per_seq] */
    int window;              /* 0: attend to every earlier position */
    int n_sink;              /* with a window: the first n_sink positions stay visible */
    int variant;             /* GS_ATTN_NAIVE or GS_ATTN_FUSED (backends without a fused path run naive) */
    int kv_dtype;            /* GS_KV_F32 (0, what a zeroed struct means), F16, I8 or FP8 */
    const float *k_scale, *v_scale; /* GS_KV_I8 only: [slots][n_kv_head] */
    int half_ok;             /* 1: the run computes in half precision (fp16/bf16/quantized weights),
                              * so attention may use fp16 operands (the CUDA fused prefill then runs
                              * on tensor cores); 0 (a zeroed struct): fp32 arithmetic throughout.
                              * The CPU backend ignores it. */
    const int *token_seq_host; /* NULL, or token_seq's host copy: lets a backend look at the rows
                                * before it launches (the CUDA hybrid then skips a kernel that no
                                * row needs). Leave NULL where the launches are recorded and
                                * replayed for other rows (a CUDA graph). */
} gs_attn_args;

enum { GS_ATTN_NAIVE = 0, GS_ATTN_FUSED = 1 };

#endif
