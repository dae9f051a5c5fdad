/* model.c - shape checks and the layout of the fp32 master weights. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gs_shape_validate(const gs_model_shape *s, gs_error *err)
{
    if (s->arch != GS_ARCH_GPT2 && s->arch != GS_ARCH_LLAMA)
        return gs_error_set(err, GS_ERR_INPUT, "model: unknown architecture %d", (int)s->arch);
    /* Bounds keep every product below in size_t range and every index in int range. */
    if (s->n_layer < 1 || s->n_layer > 512)
        return gs_error_set(err, GS_ERR_INPUT, "model: n_layer %d out of range 1..512", s->n_layer);
    if (s->n_embd < 1 || s->n_embd > 65536)
        return gs_error_set(err, GS_ERR_INPUT, "model: n_embd %d out of range 1..65536", s->n_embd);
    if (s->head_dim == 0) {
        if (s->n_head < 1 || s->n_head > s->n_embd || s->n_embd % s->n_head != 0)
            return gs_error_set(err, GS_ERR_INPUT, "model: n_head %d does not divide n_embd %d",
                                s->n_head, s->n_embd);
    } else {
        /* An explicit head size (heads pruned): q no longer spans C. */
        if (s->head_dim < 1 || s->head_dim > 65536)
            return gs_error_set(err, GS_ERR_INPUT, "model: head_dim %d out of range 1..65536", s->head_dim);
        if (s->n_head < 1 || (long long)s->n_head * s->head_dim > 262144)
            return gs_error_set(err, GS_ERR_INPUT, "model: n_head %d x head_dim %d out of range 1..262144",
                                s->n_head, s->head_dim);
    }
    if (gs_shape_head_dim(s) % 2 != 0 && s->arch == GS_ARCH_LLAMA)
        return gs_error_set(err, GS_ERR_INPUT, "model: head size %d must be even for rotary positions",
                            gs_shape_head_dim(s));
    if (s->n_kv_head < 1 || s->n_kv_head > s->n_head || s->n_head % s->n_kv_head != 0)
        return gs_error_set(err, GS_ERR_INPUT, "model: n_kv_head %d does not divide n_head %d",
                            s->n_kv_head, s->n_head);
    /* GPT-2 checkpoints are MHA (the loaders set n_kv_head = n_head), but a
     * GPT-2 converted to GQA or MQA (kv_heads.h) runs like any other. */
    if (s->n_hidden < 1 || s->n_hidden > 262144)
        return gs_error_set(err, GS_ERR_INPUT, "model: n_hidden %d out of range 1..262144", s->n_hidden);
    if (s->n_ctx < 1 || s->n_ctx > 131072)
        return gs_error_set(err, GS_ERR_INPUT, "model: n_ctx %d out of range 1..131072", s->n_ctx);
    if (s->vocab < 2 || s->vocab > 1048576)
        return gs_error_set(err, GS_ERR_INPUT, "model: vocab %d out of range 2..1048576", s->vocab);
    if (!(s->norm_eps > 0.0f && s->norm_eps < 1.0f))
        return gs_error_set(err, GS_ERR_INPUT, "model: norm_eps %g out of range (0, 1)", s->norm_eps);
    if (s->arch == GS_ARCH_LLAMA && !(s->rope_theta > 1.0f))
        return gs_error_set(err, GS_ERR_INPUT, "model: rope_theta %g must be > 1", s->rope_theta);
    return GS_OK;
}

/* Walks the layout once; with m == NULL it only counts floats. */
static size_t layout(gs_model *m, const gs_model_shape *s, float *base)
{
    size_t C = (size_t)s->n_embd, H = (size_t)s->n_hidden, V = (size_t)s->vocab;
    size_t QKV = (size_t)gs_shape_qkv_dim(s), Q = (size_t)gs_shape_q_dim(s);
    int gpt2 = s->arch == GS_ARCH_GPT2;
    size_t off = 0;
#define TAKE(pp, count)                                   \
    do {                                                  \
        if (m)                                            \
            *(pp) = base + off;                           \
        off += (count);                                   \
    } while (0)
    float *sink = NULL;
    gs_layer_weights scratch;
    TAKE(m ? &m->wte : &sink, V * C);
    if (gpt2)
        TAKE(m ? &m->wpe : &sink, (size_t)s->n_ctx * C);
    for (int l = 0; l < s->n_layer; l++) {
        gs_layer_weights *w = m ? &m->layers[l] : &scratch;
        TAKE(&w->ln1_w, C);
        if (gpt2)
            TAKE(&w->ln1_b, C);
        TAKE(&w->wqkv, QKV * C);
        if (gpt2)
            TAKE(&w->bqkv, QKV);
        TAKE(&w->wo, C * Q);
        if (gpt2)
            TAKE(&w->bo, C);
        TAKE(&w->ln2_w, C);
        if (gpt2)
            TAKE(&w->ln2_b, C);
        TAKE(&w->w_up, H * C);
        if (gpt2)
            TAKE(&w->b_up, H);
        if (!gpt2)
            TAKE(&w->w_gate, H * C);
        TAKE(&w->w_down, C * H);
        if (gpt2)
            TAKE(&w->b_down, C);
    }
    TAKE(m ? &m->lnf_w : &sink, C);
    if (gpt2)
        TAKE(m ? &m->lnf_b : &sink, C);
    if (!s->tied_embedding)
        TAKE(m ? &m->lm_head : &sink, V * C);
    else if (m)
        m->lm_head = m->wte;
#undef TAKE
    return off;
}

size_t gs_shape_param_count(const gs_model_shape *s)
{
    return layout(NULL, s, NULL);
}

int gs_model_alloc(gs_model *m, const gs_model_shape *s, gs_error *err)
{
    memset(m, 0, sizeof *m);
    int rc = gs_shape_validate(s, err);
    if (rc)
        return rc;
    size_t n = gs_shape_param_count(s);
    m->shape = *s;
    m->layers = calloc((size_t)s->n_layer, sizeof *m->layers);
    m->data = calloc(n, sizeof(float));
    if (!m->layers || !m->data) {
        gs_model_free(m);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory: the model needs %zu bytes",
                            n * sizeof(float));
    }
    m->n_floats = n;
    layout(m, s, m->data);
    return GS_OK;
}

int gs_model_copy(gs_model *dst, const gs_model *src, gs_error *err)
{
    int rc = gs_model_alloc(dst, &src->shape, err);
    if (rc)
        return rc;
    /* Same shape, same layout: every tensor sits at the same offset. */
    memcpy(dst->data, src->data, src->n_floats * sizeof(float));
    return GS_OK;
}

int gs_model_copy_matching(gs_model *dst, const gs_model *src, gs_error *err)
{
    int n = gs_model_tensors(src, NULL, 0);
    gs_tensor_ref *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory");
    }
    gs_model_tensors(src, a, n);
    gs_model_tensors(dst, b, n);
    for (int i = 0; i < n; i++)
        if (a[i].rows == b[i].rows && a[i].cols == b[i].cols)
            memcpy(b[i].data, a[i].data, (size_t)a[i].rows * (size_t)a[i].cols * sizeof(float));
    free(a);
    free(b);
    return GS_OK;
}

void gs_model_free(gs_model *m)
{
    free(m->data);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

int gs_model_tensors(const gs_model *m, gs_tensor_ref *refs, int cap)
{
    const gs_model_shape *s = &m->shape;
    int C = s->n_embd, H = s->n_hidden, V = s->vocab, QKV = gs_shape_qkv_dim(s), Q = gs_shape_q_dim(s);
    int n = 0;
#define REF(nm, ptr, r, c)                                                   \
    do {                                                                     \
        if ((ptr) != NULL) {                                                 \
            if (n < cap) {                                                   \
                snprintf(refs[n].name, sizeof refs[n].name, "%s", (nm));     \
                refs[n].data = (ptr);                                        \
                refs[n].rows = (r);                                          \
                refs[n].cols = (c);                                          \
            }                                                                \
            n++;                                                             \
        }                                                                    \
    } while (0)
    REF("wte", m->wte, V, C);
    REF("wpe", m->wpe, s->n_ctx, C);
    for (int l = 0; l < s->n_layer; l++) {
        const gs_layer_weights *w = &m->layers[l];
        char nm[64];
#define LREF(field, r, c)                                                    \
    do {                                                                     \
        snprintf(nm, sizeof nm, "layers.%d." #field, l);                     \
        REF(nm, w->field, r, c);                                             \
    } while (0)
        LREF(ln1_w, C, 1);
        LREF(ln1_b, C, 1);
        LREF(wqkv, QKV, C);
        LREF(bqkv, QKV, 1);
        LREF(wo, C, Q);
        LREF(bo, C, 1);
        LREF(ln2_w, C, 1);
        LREF(ln2_b, C, 1);
        LREF(w_up, H, C);
        LREF(b_up, H, 1);
        LREF(w_gate, H, C);
        LREF(w_down, C, H);
        LREF(b_down, C, 1);
#undef LREF
    }
    REF("lnf_w", m->lnf_w, C, 1);
    REF("lnf_b", m->lnf_b, C, 1);
    if (!s->tied_embedding)
        REF("lm_head", m->lm_head, V, C);
#undef REF
    return n;
}
