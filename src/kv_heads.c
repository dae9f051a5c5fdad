/* kv_heads.c - key/value heads merged by mean pooling (kv_heads.h). */
#include "kv_heads.h"

#include <stdlib.h>
#include <string.h>

#define KEY "optimizations.kv_heads"

/* dst[i] = mean over the f blocks src + b * stride, i < n. */
static void mean_of(float *dst, const float *src, size_t n, int f, size_t stride)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int b = 0; b < f; b++)
            s += src[(size_t)b * stride + i];
        dst[i] = (float)(s / f);
    }
}

int gs_convert_kv_heads(gs_model *out, const gs_model *in, int n_kv_head, gs_error *err)
{
    memset(out, 0, sizeof *out);
    const gs_model_shape *s = &in->shape;
    int old = s->n_kv_head;
    if (n_kv_head < 1)
        return gs_error_set(err, GS_ERR_INPUT, KEY ": %d: need at least one key/value head", n_kv_head);
    if (n_kv_head > old)
        return gs_error_set(err, GS_ERR_INPUT,
                            KEY ": %d is more than the model's %d key/value heads (heads can only be merged)",
                            n_kv_head, old);
    if (old % n_kv_head != 0)
        return gs_error_set(err, GS_ERR_INPUT,
                            KEY ": %d does not divide the model's %d key/value heads (%d heads)", n_kv_head,
                            old, s->n_head);
    if (n_kv_head == old)
        return gs_model_copy(out, in, err);
    gs_model_shape ns = *s;
    ns.n_kv_head = n_kv_head;
    ns.head_dim = s->head_dim; /* unchanged: explicit only if it was */
    int rc = gs_model_alloc(out, &ns, err);
    if (rc)
        return rc;
    /* Only wqkv and bqkv change size; the other tensors copy across. */
    if ((rc = gs_model_copy_matching(out, in, err))) {
        gs_model_free(out);
        return rc;
    }
    size_t C = (size_t)s->n_embd, hd = (size_t)gs_shape_head_dim(s), Q = (size_t)gs_shape_q_dim(s);
    size_t KV = (size_t)gs_shape_kv_dim(s), nKV = (size_t)gs_shape_kv_dim(&ns);
    int f = old / n_kv_head;
    for (int l = 0; l < s->n_layer; l++) {
        const gs_layer_weights *x = &in->layers[l];
        gs_layer_weights *y = &out->layers[l];
        memcpy(y->wqkv, x->wqkv, Q * C * sizeof(float));
        if (x->bqkv)
            memcpy(y->bqkv, x->bqkv, Q * sizeof(float));
        for (int kv = 0; kv < 2; kv++) /* k, then v */
            for (int j = 0; j < n_kv_head; j++) {
                size_t src = Q + (size_t)kv * KV + (size_t)j * f * hd, dst = Q + (size_t)kv * nKV + (size_t)j * hd;
                mean_of(y->wqkv + dst * C, x->wqkv + src * C, hd * C, f, hd * C);
                if (x->bqkv)
                    mean_of(y->bqkv + dst, x->bqkv + src, hd, f, hd);
            }
    }
    return GS_OK;
}
