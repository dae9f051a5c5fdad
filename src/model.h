/* model.h - the built-in GPT: its shape and its fp32 master weights.
 *
 * One family with switches. GPT-2 style: LayerNorm with bias, GELU (tanh
 * form), learned positions, biases on every projection, tied embedding.
 * Llama style: RMSNorm, SwiGLU, rotary positions (adjacent pairs within a
 * head, as llama2.c), grouped-query attention, no biases.
 *
 * The master copy lives on the host in one allocation and is never mutated
 * once loaded: backends and optimizations derive their variants from it.
 * All matrices are row-major [out][in] (names: C = n_embd, H = n_hidden,
 * V = vocab, Q = n_head * head_dim, KV = n_kv_head * head_dim). Q == C
 * unless attention heads were pruned away (prune.h). */
#ifndef GS_MODEL_H
#define GS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum { GS_ARCH_GPT2 = 0, GS_ARCH_LLAMA = 1 } gs_arch;

typedef struct gs_model_shape {
    gs_arch arch;
    int n_layer;
    int n_head;
    int n_kv_head;      /* == n_head for GPT-2 (MHA); divides n_head */
    int n_embd;         /* C; n_head divides it unless head_dim is given */
    int n_hidden;       /* H: MLP width (4C for GPT-2) */
    int n_ctx;          /* maximum positions */
    int vocab;          /* V */
    int tied_embedding; /* 1: logits use wte, no separate lm_head */
    float norm_eps;     /* 1e-5 for both families */
    float rope_theta;   /* Llama only; 10000 */
    int head_dim;       /* 0: n_embd / n_head (every trained model); set when
                         * heads were pruned, so Q = n_head * head_dim < C */
} gs_model_shape;

typedef struct gs_layer_weights {
    float *ln1_w, *ln1_b;   /* [C]; ln1_b NULL for RMSNorm */
    float *wqkv, *bqkv;     /* [Q + 2*KV][C] rows q, then k, then v; bqkv [Q+2KV] or NULL */
    float *wo, *bo;         /* [C][Q], [C] or NULL */
    float *ln2_w, *ln2_b;   /* [C]; ln2_b NULL for RMSNorm */
    float *w_up, *b_up;     /* [H][C]: GPT-2 c_fc, Llama w1 (gate input of silu); b_up or NULL */
    float *w_gate;          /* [H][C]: Llama w3 (multiplies silu(w1 x)); NULL for GPT-2 */
    float *w_down, *b_down; /* [C][H]: GPT-2 c_proj, Llama w2; b_down or NULL */
} gs_layer_weights;

typedef struct gs_model {
    gs_model_shape shape;
    float *data;            /* the one allocation every pointer below points into */
    size_t n_floats;
    float *wte;             /* [V][C] */
    float *wpe;             /* [n_ctx][C], GPT-2 only, else NULL */
    gs_layer_weights *layers; /* [n_layer] */
    float *lnf_w, *lnf_b;   /* [C]; lnf_b NULL for RMSNorm */
    float *lm_head;         /* [V][C]; == wte when tied */
} gs_model;

/* Checks the shape is one we can run; GS_ERR_INPUT with a clear line if not. */
int gs_shape_validate(const gs_model_shape *s, gs_error *err);
static inline int gs_shape_head_dim(const gs_model_shape *s)
{
    return s->head_dim > 0 ? s->head_dim : s->n_embd / s->n_head;
}
/* Q: width of the attention's queries and output (wo's input). */
static inline int gs_shape_q_dim(const gs_model_shape *s) { return s->n_head * gs_shape_head_dim(s); }
static inline int gs_shape_kv_dim(const gs_model_shape *s) { return s->n_kv_head * gs_shape_head_dim(s); }
static inline int gs_shape_qkv_dim(const gs_model_shape *s)
{
    return gs_shape_q_dim(s) + 2 * gs_shape_kv_dim(s);
}
/* Number of parameters (tied embedding counted once). */
size_t gs_shape_param_count(const gs_model_shape *s);

/* Allocates zeroed weights for the shape and points every tensor into them.
 * GS_ERR_RUNTIME (with the bytes asked for) when memory runs out. */
int gs_model_alloc(gs_model *m, const gs_model_shape *s, gs_error *err);
void gs_model_free(gs_model *m);
/* dst = a fresh copy of src (same shape, own allocation). */
int gs_model_copy(gs_model *dst, const gs_model *src, gs_error *err);
/* Copies every tensor whose rows and columns are the same in src and dst
 * (dst already allocated for a changed shape of the same architecture, so
 * gs_model_tensors lists both in the same order); the transforms fill the
 * tensors that changed. GS_ERR_RUNTIME when out of host memory. */
int gs_model_copy_matching(gs_model *dst, const gs_model *src, gs_error *err);

/* Every tensor of the model in a fixed order, for loaders, writers and tests. */
typedef struct gs_tensor_ref {
    char name[64];      /* e.g. "layers.3.wqkv" */
    float *data;
    int rows, cols;     /* cols == 1 for vectors */
} gs_tensor_ref;
/* Fills up to cap refs, returns the total number of tensors. */
int gs_model_tensors(const gs_model *m, gs_tensor_ref *refs, int cap);

/* Synthetic weights drawn from seed at the scale of a trained model of the
 * shape, with a few large-magnitude outlier channels in the residual path. */
void gs_model_init_synthetic(gs_model *m, uint64_t seed);

#endif
