/* op_cost.h - the analytic model: FLOPs and minimum bytes of every op.
 *
 * For each op of forward.c, from the model shape, the weight and KV-cache
 * precisions, the attention variant and fusion, and the step's batch
 * composition: the floating-point operations it performs and the bytes it
 * must move at the least (weights read once per step, activations read and
 * written once, KV rows read once per sequence, logits). These are modeled
 * figures, never measured ones; the roofline (peaks.h) and the profile report
 * compare them with measured times and, on CUDA, measured DRAM bytes.
 *
 * Names: n tokens this step, R rows that get logits (I of them read back as
 * greedy ids only), C n_embd, H n_hidden, V vocab, KV kv_dim (n_kv_head *
 * head_dim), Q3 qkv_dim (C + 2 KV). */
#ifndef GS_OP_COST_H
#define GS_OP_COST_H

#include <stdint.h>

#include "dtype.h"
#include "model.h"

/* What the model needs to know about the run (not the step). */
typedef struct gs_cost_config {
    gs_model_shape shape;
    gs_dtype weight_dtype; /* the matrices (lm_head included); norms, biases, embeddings are fp32 */
    int kv_elem_bytes;     /* bytes per K or V element in the cache (4 today: the cache is fp32) */
    int attn_variant;      /* GS_ATTN_NAIVE (scores materialized) or GS_ATTN_FUSED */
    int fused;             /* residual add folded into the next norm (residual_norm_* ops) */
} gs_cost_config;

/* The batch composition of one step, summed over its sequences. Built with
 * gs_step_shape_add_seq (the engine does, per step) or read back from a
 * trace's step counters. */
typedef struct gs_step_shape {
    int64_t n_tokens;   /* new tokens: rows through every per-token op */
    int64_t n_seqs;     /* sequences with tokens this step */
    int64_t n_logits;   /* rows that get logits (gather_last, norm_final, matmul_logits) */
    int64_t n_ids;      /* of those, rows whose greedy id is picked in the pass (sample_argmax)
                         * and read back instead of the row's logits (download_ids) */
    int64_t attn_pairs; /* sum over new tokens of the positions each attends (window, sinks applied) */
    int64_t attn_keys;  /* sum over sequences of the distinct cache positions their tokens read */
} gs_step_shape;

/* Adds one sequence with n_new tokens at positions n_cached .. n_cached +
 * n_new - 1. window 0: causal over the whole history; else each token sees
 * its last `window` positions plus the first n_sink (kernels/cpu/attention.c). */
void gs_step_shape_add_seq(gs_step_shape *st, int n_cached, int n_new, int window, int n_sink);

/* Modeled cost of one op instance (one layer's op, or a per-step op). */
typedef struct gs_op_cost {
    double flops;
    double weight_bytes; /* parameters read: matrices, biases, norm gains, gathered embedding rows */
    double act_bytes;    /* activations read and written (logits and step inputs included) */
    double kv_bytes;     /* KV cache read and written */
    double score_bytes;  /* attention scores written and read (naive attention only) */
    double bytes;        /* the sum of the four: minimum bytes moved */
} gs_op_cost;

/* Cost of op `name` (a forward.c op name) for the step. 0, or -1 for a name
 * the model does not know (out is then zero). */
int gs_op_cost_of(const gs_cost_config *c, const char *name, const gs_step_shape *st, gs_op_cost *out);

/* The whole step: every op instance forward.c runs for this configuration
 * (per-layer ops times n_layer, the fused or unfused residual/norm chain,
 * the logits ops only when n_logits > 0: sample_argmax and download_ids
 * for the n_ids rows, download_logits for the others). */
void gs_step_cost(const gs_cost_config *c, const gs_step_shape *st, gs_op_cost *total);

/* Arithmetic intensity, FLOPs per byte (0 when no bytes). */
double gs_op_cost_intensity(const gs_op_cost *oc);

#endif
