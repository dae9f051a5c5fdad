/* prune.h - pruning: a sparser (or smaller) model derived from a master.
 *
 * Four kinds, as `optimizations.sparsity` spells them:
 *   unstructured:R  each layer matrix (wqkv, wo, w_up, w_gate, w_down) gets
 *                   exactly round(R * rows * cols) of its smallest-|w| entries
 *                   zeroed. Embeddings, norms, biases and lm_head stay dense.
 *   2:4             in every group of 4 consecutive inputs of a row of those
 *                   matrices, the two largest |w| stay and two are zeroed.
 *   heads:R         whole attention heads removed, lowest norm first: the
 *                   model shrinks (n_head and wqkv/wo get smaller).
 *   neurons:R       whole MLP neurons removed, lowest norm first: n_hidden
 *                   and w_up/w_gate/w_down get smaller.
 * Unstructured and 2:4 keep the shape: the dense kernels multiply the zeros
 * (the memory and quality effect show, not a speed-up). heads and neurons
 * shrink the matrices, which is a real speed-up.
 *
 * Every function reads a const model and fills a new one (the master is
 * never mutated); *out is left zeroed on error. Impossible requests are
 * GS_ERR_INPUT with one line naming optimizations.sparsity. */
#ifndef GS_PRUNE_H
#define GS_PRUNE_H

#include <stddef.h>

#include "model.h"
#include "status.h"

typedef enum {
    GS_SPARSITY_NONE = 0,
    GS_SPARSITY_UNSTRUCTURED,
    GS_SPARSITY_2_4,
    GS_SPARSITY_HEADS,
    GS_SPARSITY_NEURONS
} gs_sparsity_kind;

typedef struct gs_sparsity {
    gs_sparsity_kind kind;
    double ratio; /* 0 < ratio < 1 for unstructured, heads, neurons; 0.5 for 2:4; 0 for none */
} gs_sparsity;

/* Reads "none", "unstructured:R", "2:4", "heads:R" or "neurons:R" (R a
 * number with 0 < R < 1). Returns 0, or -1 when text is none of those. */
int gs_sparsity_parse(const char *text, gs_sparsity *out);
/* Writes the same spelling back (the shortest R that reads back equal);
 * returns what snprintf returns. */
int gs_sparsity_format(const gs_sparsity *sp, char *buf, size_t cap);

/* round(ratio * n), halves away from zero: the count a ratio removes. */
long long gs_prune_count(double ratio, long long n);

/* Dispatches on sp->kind; GS_SPARSITY_NONE copies the model. */
int gs_prune(gs_model *out, const gs_model *in, const gs_sparsity *sp, gs_error *err);

int gs_prune_unstructured(gs_model *out, const gs_model *in, double ratio, gs_error *err);
int gs_prune_2_4(gs_model *out, const gs_model *in, gs_error *err);

/* Heads. A head's norm is the L2 norm of its q rows (and q bias) together
 * with its columns of wo: what it reads and what it writes. MHA (n_kv_head
 * == n_head): round(R * n_head) heads go, each with its own k and v rows.
 * GQA and MQA: every KV group loses round(R * group) query heads, the
 * lowest-norm of that group, so groups stay uniform and every KV head stays;
 * the count removed is then n_kv_head * round(R * group). Each layer picks
 * its own heads; every layer loses the same number. The new shape carries an
 * explicit head_dim (the head size does not change; q no longer spans C). */
int gs_prune_heads(gs_model *out, const gs_model *in, double ratio, gs_error *err);
/* Heads of layer l in removal order (order[0] goes first), each KV group's
 * heads listed group by group for GQA: order[g * group + i], i-th of group g.
 * order has n_head entries. For tests and for showing which heads went. */
void gs_prune_head_order(const gs_model *m, int l, int *order);

/* Neurons. A neuron's norm is the L2 norm of its w_up row (and b_up), its
 * w_gate row (Llama) and its w_down column. round(R * n_hidden) go. */
int gs_prune_neurons(gs_model *out, const gs_model *in, double ratio, gs_error *err);
/* Neurons of layer l in removal order (n_hidden entries). */
void gs_prune_neuron_order(const gs_model *m, int l, int *order);

#endif
