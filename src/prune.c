/* prune.c - unstructured, 2:4, head and neuron pruning of a model (prune.h). */
#include "prune.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "optimizations.sparsity"

/* ---- the spelling ---------------------------------------------------------- */

static const struct {
    gs_sparsity_kind kind;
    const char *name;
} kinds[] = {
    {GS_SPARSITY_NONE, "none"},       {GS_SPARSITY_UNSTRUCTURED, "unstructured"},
    {GS_SPARSITY_2_4, "2:4"},         {GS_SPARSITY_HEADS, "heads"},
    {GS_SPARSITY_NEURONS, "neurons"},
};
#define N_KINDS (int)(sizeof kinds / sizeof kinds[0])

int gs_sparsity_parse(const char *text, gs_sparsity *out)
{
    if (strcmp(text, "none") == 0) {
        *out = (gs_sparsity){GS_SPARSITY_NONE, 0.0};
        return 0;
    }
    if (strcmp(text, "2:4") == 0) {
        *out = (gs_sparsity){GS_SPARSITY_2_4, 0.5};
        return 0;
    }
    const char *colon = strchr(text, ':');
    if (!colon)
        return -1;
    size_t len = (size_t)(colon - text);
    for (int i = 0; i < N_KINDS; i++) {
        gs_sparsity_kind k = kinds[i].kind;
        if (k == GS_SPARSITY_NONE || k == GS_SPARSITY_2_4)
            continue;
        if (strlen(kinds[i].name) != len || strncmp(kinds[i].name, text, len) != 0)
            continue;
        const char *num = colon + 1;
        char *end;
        /* strtod would take leading blanks, hex and "inf": a decimal number only. */
        if (!*num || strspn(num, "0123456789.eE+-") != strlen(num) || *num == '+' || *num == '-')
            return -1;
        double r = strtod(num, &end);
        if (end == num || *end || !isfinite(r) || !(r > 0.0 && r < 1.0))
            return -1;
        *out = (gs_sparsity){k, r};
        return 0;
    }
    return -1;
}

int gs_sparsity_format(const gs_sparsity *sp, char *buf, size_t cap)
{
    const char *name = "none";
    for (int i = 0; i < N_KINDS; i++)
        if (kinds[i].kind == sp->kind)
            name = kinds[i].name;
    if (sp->kind == GS_SPARSITY_NONE || sp->kind == GS_SPARSITY_2_4)
        return snprintf(buf, cap, "%s", name);
    char num[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, sp->ratio);
        if (strtod(num, NULL) == sp->ratio)
            break;
    }
    return snprintf(buf, cap, "%s:%s", name, num);
}

long long gs_prune_count(double ratio, long long n)
{
    return (long long)floor(ratio * (double)n + 0.5);
}

static int check_ratio(const char *kind, double ratio, gs_error *err)
{
    if (!(ratio > 0.0 && ratio < 1.0))
        return gs_error_set(err, GS_ERR_INPUT, KEY ": %s:%g: the ratio must be above 0 and below 1", kind,
                            ratio);
    return GS_OK;
}

/* ---- shape-keeping kinds: zeros in the dense matrices ------------------------ */

/* The layer matrices pruning touches (NULL fields are skipped). */
static int layer_matrices(const gs_model *m, int l, float **mat, int *rows, int *cols)
{
    const gs_model_shape *s = &m->shape;
    gs_layer_weights *w = &m->layers[l];
    int C = s->n_embd, H = s->n_hidden, n = 0;
    float *p[5] = {w->wqkv, w->wo, w->w_up, w->w_gate, w->w_down};
    int r[5] = {gs_shape_qkv_dim(s), C, H, H, C};
    int c[5] = {C, gs_shape_q_dim(s), C, C, H};
    for (int i = 0; i < 5; i++) {
        if (!p[i])
            continue;
        mat[n] = p[i];
        rows[n] = r[i];
        cols[n] = c[i];
        n++;
    }
    return n;
}

/* The k-th smallest (0-based) of n distinct keys; reorders a. Quickselect
 * with a median-of-three pivot: linear on average, and weights are far from
 * the sorted inputs that would make it quadratic. */
static uint64_t kth_smallest(uint64_t *a, long long n, long long k)
{
    long long lo = 0, hi = n - 1;
    while (lo < hi) {
        uint64_t x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        uint64_t p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        long long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p)
                i++;
            while (a[j] > p)
                j--;
            if (i <= j) {
                uint64_t t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* |w| as its IEEE bits (monotonic for non-negative floats) above the index:
 * distinct keys, so equal magnitudes go lower index first. */
static uint64_t mag_key(float v, uint64_t i)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return (uint64_t)(b & 0x7fffffffu) << 32 | i;
}

int gs_prune_unstructured(gs_model *out, const gs_model *in, double ratio, gs_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_ratio("unstructured", ratio, err);
    if (rc || (rc = gs_model_copy(out, in, err)))
        return rc;
    size_t cap = 0;
    uint64_t *keys = NULL;
    for (int l = 0; l < out->shape.n_layer; l++) {
        float *mat[5];
        int rows[5], cols[5];
        int nm = layer_matrices(out, l, mat, rows, cols);
        for (int i = 0; i < nm; i++) {
            long long n = (long long)rows[i] * cols[i];
            long long k = gs_prune_count(ratio, n);
            if (k == 0)
                continue;
            if (n > (long long)UINT32_MAX) {
                free(keys);
                gs_model_free(out);
                return gs_error_set(err, GS_ERR_INPUT, KEY ": a %d x %d matrix is too large to prune",
                                    rows[i], cols[i]);
            }
            if ((size_t)n > cap) {
                free(keys);
                cap = (size_t)n;
                keys = malloc(cap * sizeof *keys);
                if (!keys) {
                    gs_model_free(out);
                    return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory: pruning needs %zu bytes",
                                        cap * sizeof *keys);
                }
            }
            float *w = mat[i];
            for (long long j = 0; j < n; j++)
                keys[j] = mag_key(w[j], (uint64_t)j);
            uint64_t t = kth_smallest(keys, n, k - 1);
            /* Exactly k keys are <= t: the k smallest. */
            for (long long j = 0; j < n; j++)
                if (mag_key(w[j], (uint64_t)j) <= t)
                    w[j] = 0.0f;
        }
    }
    free(keys);
    return GS_OK;
}

int gs_prune_2_4(gs_model *out, const gs_model *in, gs_error *err)
{
    int rc = gs_model_copy(out, in, err);
    if (rc)
        return rc;
    for (int l = 0; l < out->shape.n_layer; l++) {
        float *mat[5];
        int rows[5], cols[5];
        int nm = layer_matrices(out, l, mat, rows, cols);
        for (int i = 0; i < nm; i++) {
            /* A row's last cols % 4 inputs form no group of four and stay
             * dense (no shipped shape has any: C, H and Q are multiples of 4
             * in every preset and in stories260K). */
            int groups = cols[i] / 4;
            for (int r = 0; r < rows[i]; r++) {
                float *row = mat[i] + (size_t)r * cols[i];
                for (int g = 0; g < groups; g++) {
                    float *v = row + 4 * g;
                    /* Rank the four: the two with the smallest keys go
                     * (equal magnitudes: the later input goes first). */
                    uint64_t k[4];
                    for (int j = 0; j < 4; j++)
                        k[j] = mag_key(v[j], (uint64_t)(3 - j));
                    for (int j = 0; j < 4; j++) {
                        int below = 0;
                        for (int o = 0; o < 4; o++)
                            below += k[o] < k[j];
                        if (below < 2)
                            v[j] = 0.0f;
                    }
                }
            }
        }
    }
    return GS_OK;
}

/* ---- structured kinds: smaller matrices -------------------------------------- */

typedef struct scored {
    double score;
    int index;
} scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static double sumsq(const float *p, size_t n, size_t stride)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)p[i * stride] * p[i * stride];
    return s;
}

/* Groups the heads of a layer share KV by: MHA removes a head with its K and
 * V, so all heads form one group; GQA and MQA keep their KV heads and lose
 * the same number of query heads from each. */
static int head_groups(const gs_model_shape *s)
{
    return s->n_kv_head == s->n_head ? 1 : s->n_kv_head;
}

void gs_prune_head_order(const gs_model *m, int l, int *order)
{
    const gs_model_shape *s = &m->shape;
    const gs_layer_weights *w = &m->layers[l];
    int nh = s->n_head, hd = gs_shape_head_dim(s), C = s->n_embd, Q = gs_shape_q_dim(s);
    int ng = head_groups(s), gsz = nh / ng;
    scored *sc = malloc((size_t)nh * sizeof *sc);
    if (!sc) {
        for (int h = 0; h < nh; h++)
            order[h] = h;
        return;
    }
    for (int h = 0; h < nh; h++) {
        double v = sumsq(w->wqkv + (size_t)h * hd * C, (size_t)hd * C, 1);
        if (w->bqkv)
            v += sumsq(w->bqkv + (size_t)h * hd, (size_t)hd, 1);
        for (int r = 0; r < C; r++)
            v += sumsq(w->wo + (size_t)r * Q + (size_t)h * hd, (size_t)hd, 1);
        sc[h] = (scored){v, h};
    }
    for (int g = 0; g < ng; g++) {
        qsort(sc + g * gsz, (size_t)gsz, sizeof *sc, by_score);
        for (int i = 0; i < gsz; i++)
            order[g * gsz + i] = sc[g * gsz + i].index;
    }
    free(sc);
}

int gs_prune_heads(gs_model *out, const gs_model *in, double ratio, gs_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_ratio("heads", ratio, err);
    if (rc)
        return rc;
    const gs_model_shape *s = &in->shape;
    int nh = s->n_head, hd = gs_shape_head_dim(s), C = s->n_embd;
    int ng = head_groups(s), gsz = nh / ng, mha = s->n_kv_head == nh;
    int per_group = (int)gs_prune_count(ratio, gsz);
    if (per_group == 0)
        return gs_error_set(err, GS_ERR_INPUT,
                            KEY ": heads:%g removes no head (round(%g x %d)%s is 0)", ratio, ratio, gsz,
                            ng > 1 ? " per key/value group" : "");
    if (per_group >= gsz)
        return gs_error_set(err, GS_ERR_INPUT, KEY ": heads:%g would leave no heads%s", ratio,
                            ng > 1 ? " in a key/value group" : "");
    gs_model_shape ns = *s;
    ns.n_head = nh - ng * per_group;
    ns.n_kv_head = mha ? ns.n_head : s->n_kv_head;
    ns.head_dim = hd;
    if ((rc = gs_model_alloc(out, &ns, err)))
        return rc;
    int *order = malloc((size_t)nh * sizeof *order);
    char *keep = malloc((size_t)nh);
    if (!order || !keep || (rc = gs_model_copy_matching(out, in, err))) {
        free(order);
        free(keep);
        gs_model_free(out);
        return rc ? rc : gs_error_set(err, GS_ERR_RUNTIME, "out of host memory");
    }
    int Q = gs_shape_q_dim(s), nQ = gs_shape_q_dim(&ns), KV = gs_shape_kv_dim(s), nKV = gs_shape_kv_dim(&ns);
    size_t row = (size_t)hd * C * sizeof(float);
    for (int l = 0; l < s->n_layer; l++) {
        const gs_layer_weights *a = &in->layers[l];
        gs_layer_weights *b = &out->layers[l];
        gs_prune_head_order(in, l, order);
        memset(keep, 1, (size_t)nh);
        for (int g = 0; g < ng; g++)
            for (int i = 0; i < per_group; i++)
                keep[order[g * gsz + i]] = 0;
        /* Kept heads stay in their order, so group g's survivors are new
         * heads g*(gsz - per_group) ..: query head j still reads KV head
         * j / new group size. */
        int j = 0;
        for (int h = 0; h < nh; h++) {
            if (!keep[h])
                continue;
            memcpy(b->wqkv + (size_t)j * hd * C, a->wqkv + (size_t)h * hd * C, row);
            if (a->bqkv)
                memcpy(b->bqkv + (size_t)j * hd, a->bqkv + (size_t)h * hd, (size_t)hd * sizeof(float));
            if (mha)
                for (int kv = 0; kv < 2; kv++) {
                    memcpy(b->wqkv + ((size_t)nQ + (size_t)kv * nKV + (size_t)j * hd) * C,
                           a->wqkv + ((size_t)Q + (size_t)kv * KV + (size_t)h * hd) * C, row);
                    if (a->bqkv)
                        memcpy(b->bqkv + nQ + (size_t)kv * nKV + (size_t)j * hd,
                               a->bqkv + Q + (size_t)kv * KV + (size_t)h * hd, (size_t)hd * sizeof(float));
                }
            for (int r = 0; r < C; r++)
                memcpy(b->wo + (size_t)r * nQ + (size_t)j * hd, a->wo + (size_t)r * Q + (size_t)h * hd,
                       (size_t)hd * sizeof(float));
            j++;
        }
        if (!mha) {
            /* Every KV head stays: k and v rows (and biases) as they were. */
            memcpy(b->wqkv + (size_t)nQ * C, a->wqkv + (size_t)Q * C, (size_t)2 * KV * C * sizeof(float));
            if (a->bqkv)
                memcpy(b->bqkv + nQ, a->bqkv + Q, (size_t)2 * KV * sizeof(float));
        }
    }
    free(order);
    free(keep);
    return GS_OK;
}

void gs_prune_neuron_order(const gs_model *m, int l, int *order)
{
    const gs_model_shape *s = &m->shape;
    const gs_layer_weights *w = &m->layers[l];
    int H = s->n_hidden, C = s->n_embd;
    scored *sc = malloc((size_t)H * sizeof *sc);
    if (!sc) {
        for (int i = 0; i < H; i++)
            order[i] = i;
        return;
    }
    for (int i = 0; i < H; i++) {
        double v = sumsq(w->w_up + (size_t)i * C, (size_t)C, 1);
        if (w->b_up)
            v += (double)w->b_up[i] * w->b_up[i];
        if (w->w_gate)
            v += sumsq(w->w_gate + (size_t)i * C, (size_t)C, 1);
        v += sumsq(w->w_down + i, (size_t)C, (size_t)H);
        sc[i] = (scored){v, i};
    }
    qsort(sc, (size_t)H, sizeof *sc, by_score);
    for (int i = 0; i < H; i++)
        order[i] = sc[i].index;
    free(sc);
}

int gs_prune_neurons(gs_model *out, const gs_model *in, double ratio, gs_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_ratio("neurons", ratio, err);
    if (rc)
        return rc;
    const gs_model_shape *s = &in->shape;
    int H = s->n_hidden, C = s->n_embd;
    int drop = (int)gs_prune_count(ratio, H);
    if (drop == 0)
        return gs_error_set(err, GS_ERR_INPUT, KEY ": neurons:%g removes no neuron (round(%g x %d) is 0)", ratio,
                            ratio, H);
    if (drop >= H)
        return gs_error_set(err, GS_ERR_INPUT, KEY ": neurons:%g would leave no MLP neurons", ratio);
    gs_model_shape ns = *s;
    ns.n_hidden = H - drop;
    if ((rc = gs_model_alloc(out, &ns, err)))
        return rc;
    int nH = ns.n_hidden;
    int *order = malloc((size_t)H * sizeof *order);
    char *keep = malloc((size_t)H);
    if (!order || !keep || (rc = gs_model_copy_matching(out, in, err))) {
        free(order);
        free(keep);
        gs_model_free(out);
        return rc ? rc : gs_error_set(err, GS_ERR_RUNTIME, "out of host memory");
    }
    for (int l = 0; l < s->n_layer; l++) {
        const gs_layer_weights *a = &in->layers[l];
        gs_layer_weights *b = &out->layers[l];
        gs_prune_neuron_order(in, l, order);
        memset(keep, 1, (size_t)H);
        for (int i = 0; i < drop; i++)
            keep[order[i]] = 0;
        int j = 0;
        for (int i = 0; i < H; i++) {
            if (!keep[i])
                continue;
            memcpy(b->w_up + (size_t)j * C, a->w_up + (size_t)i * C, (size_t)C * sizeof(float));
            if (a->b_up)
                b->b_up[j] = a->b_up[i];
            if (a->w_gate)
                memcpy(b->w_gate + (size_t)j * C, a->w_gate + (size_t)i * C, (size_t)C * sizeof(float));
            for (int r = 0; r < C; r++)
                b->w_down[(size_t)r * nH + j] = a->w_down[(size_t)r * H + i];
            j++;
        }
    }
    free(order);
    free(keep);
    return GS_OK;
}

int gs_prune(gs_model *out, const gs_model *in, const gs_sparsity *sp, gs_error *err)
{
    switch (sp->kind) {
    case GS_SPARSITY_NONE:
        return gs_model_copy(out, in, err);
    case GS_SPARSITY_UNSTRUCTURED:
        return gs_prune_unstructured(out, in, sp->ratio, err);
    case GS_SPARSITY_2_4:
        return gs_prune_2_4(out, in, err);
    case GS_SPARSITY_HEADS:
        return gs_prune_heads(out, in, sp->ratio, err);
    case GS_SPARSITY_NEURONS:
        return gs_prune_neurons(out, in, sp->ratio, err);
    }
    memset(out, 0, sizeof *out);
    return gs_error_set(err, GS_ERR_INPUT, KEY ": unknown kind %d", (int)sp->kind);
}
