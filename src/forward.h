/* forward.h - the GPT forward pass over one engine step, through a backend.
 *
 * A step is a flat list of tokens from one or more sequences (prefill chunks
 * and decode tokens side by side). Each token carries its position, its
 * block-table row and its KV-cache slot. Logits are produced only for the
 * rows the engine asks for (the last token of each sequence, usually), so a
 * long prefill does not pay for a vocabulary-wide product per token; a
 * greedy engine asks for those rows' argmax ids instead, so only ids cross
 * back from a device.
 * Every op runs inside a named range: step > layer > op. */
#ifndef GS_FORWARD_H
#define GS_FORWARD_H

#include "backend.h"
#include "model.h"
#include "ranges.h"

/* Steps of at most this many tokens (decode-shaped) may be replayed as a graph. */
#define GS_GRAPH_MAX_TOKENS 16

typedef struct gs_step_batch {
    int n;                   /* tokens this step */
    const int *tokens;       /* [n] */
    const int *pos;          /* [n] */
    const int *seq_row;      /* [n] block-table row */
    const int *slot;         /* [n] KV-cache slot */
    const int *block_tables; /* [n_rows][table_stride] host copy */
    int n_rows;              /* block-table rows to upload */
    int table_stride;        /* row length: must equal the forward's max_blocks_per_seq */
    int n_logits;            /* rows that need logits */
    const int *logit_rows;   /* [n_logits] indices into the n tokens */
    int *ids_out;            /* NULL: the logits are read back; else (host) [n_logits]: each row's
                              * greedy id, picked in the pass so only the ids are read back */
} gs_step_batch;

/* The weights as the backend holds them: vectors (norm gains, biases) and
 * the embeddings in fp32, the matrices in wdt. */
typedef struct gs_fw_layer {
    const float *ln1_w, *ln1_b, *bqkv, *bo, *ln2_w, *ln2_b, *b_up, *b_down;
    const void *wqkv, *wo, *w_up, *w_gate, *w_down;
} gs_fw_layer;

typedef struct gs_fw_weights {
    gs_dtype wdt;
    const float *wte, *wpe, *lnf_w, *lnf_b;
    const void *lm_head;
    gs_fw_layer *layers;
} gs_fw_weights;

typedef struct gs_forward {
    gs_backend *be;
    gs_model_shape shape;
    gs_ranges *ranges;
    int max_tokens, max_rows, max_blocks_per_seq, n_blocks, block_size;
    int window, n_sink;      /* attention variant: sliding window and sinks */
    int attn_variant;        /* GS_ATTN_NAIVE or GS_ATTN_FUSED */
    int use_graphs;          /* record decode-shaped steps as CUDA graphs where the backend can */
    int fuse;                /* residual add fused into the following norm where the backend can */
    uint64_t graph_salt;     /* unique per forward pass ever made: its kept graphs are its own */
    /* weights in backend memory: an fp32 arena and a matrix arena (in wdt) */
    void *w_f32, *w_mat;
    gs_fw_weights w;
    /* activations */
    float *x, *xn, *qkv, *att, *h_up, *h_gate, *gathered, *logits;
    /* [max_tokens][max(n_embd, n_hidden)] in wdt, or NULL: the norms' and
     * GELU's rows for products that take half-precision rows (half_in_fits) */
    void *act_half;
    int *d_tokens, *d_pos, *d_seq, *d_slot, *d_tables, *d_logit_rows, *d_ids;
    /* The step's inputs travel as one upload: d_inputs holds tokens, pos,
     * seq and slot (max_tokens each), logit_rows (max_rows) and tables, the
     * d_ pointers above are its slices; h_inputs is its host twin
     * (alloc_host's memory where the backend has it). inputs_in_flight: an
     * upload from h_inputs may still be reading it (no sync since). */
    int *d_inputs, *h_inputs;
    int h_inputs_pinned, inputs_in_flight;
    /* [n_layer] each [n_blocks*block_size][kv_dim] of kv_dtype elements
     * (kernels/kv_format.h); for GS_KV_I8 also k_scale/v_scale [n_layer] each
     * [n_blocks*block_size][n_kv_head] floats, else NULL. Fixed at init. */
    int kv_dtype;
    void **k_cache, **v_cache;
    float **k_scale, **v_scale;
    size_t weight_bytes, activation_bytes, kv_bytes;
} gs_forward;

/* Uploads the weights and allocates activations for steps of up to max_tokens
 * tokens and max_rows sequences, and a KV cache of n_blocks blocks.
 * Out of memory: GS_ERR_RUNTIME naming the bytes needed and free. */
int gs_forward_init(gs_forward *f, gs_backend *be, const gs_model *m, gs_dtype wdt, gs_ranges *ranges,
                    int max_tokens, int max_rows, int n_blocks, int block_size, gs_error *err);
/* The same with a KV cache of kv_dtype elements (GS_KV_F32/F16/I8/FP8);
 * gs_forward_init is this with GS_KV_F32. */
int gs_forward_init_kv(gs_forward *f, gs_backend *be, const gs_model *m, gs_dtype wdt, int kv_dtype,
                       gs_ranges *ranges, int max_tokens, int max_rows, int n_blocks, int block_size,
                       gs_error *err);
void gs_forward_destroy(gs_forward *f);

/* Progress of placing weights (conversion, quantization, upload) in the
 * gs_forward_init calls this thread makes: fn(ctx, tensors done, tensors in
 * all) after each tensor; a nonzero return cancels (init fails). Per thread,
 * so a builder thread re-deriving weights for the UI reports only its own
 * work. NULL clears it. */
typedef int (*gs_forward_progress_fn)(void *ctx, int done, int total);
void gs_forward_set_progress(gs_forward_progress_fn fn, void *ctx);

/* Runs one step. Without b->ids_out, logits_out (host) receives
 * [n_logits][vocab]. With it, the backend's argmax_rows picks each row's
 * greedy id (gs_sample_argmax's rules) inside the step, b->ids_out receives
 * the n_logits ids and logits_out is not touched (may be NULL); asking a
 * backend without argmax_rows is GS_ERR_RUNTIME (gs_forward_picks_ids). */
int gs_forward_step(gs_forward *f, const gs_step_batch *b, float *logits_out, gs_error *err);
/* Whether gs_forward_step can return greedy ids instead of logits. */
int gs_forward_picks_ids(const gs_forward *f);

/* KV-cache bytes per token (all layers, K and V) in kv_dtype, int8 scales included. */
size_t gs_forward_kv_bytes_per_token(const gs_model_shape *s, int kv_dtype);

#endif
