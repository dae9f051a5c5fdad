/* test_prune.c - model transforms: pruning (prune.h) and key/value head
 * merging (kv_heads.h).
 *  - unstructured and 2:4 masks are exact per matrix and per group of four;
 *  - heads and neurons shrink the shape by the right counts, and the smaller
 *    model's logits equal the original's with those heads (wo columns) or
 *    neurons (w_down columns) zeroed, on synthetic presets and stories260K;
 *  - kv heads: the pooled rows are means, a conversion to the model's own
 *    count is a copy, MQA of a model whose KV heads agree changes nothing,
 *    and an MQA model generates;
 *  - impossible requests name the option. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "engine.h"
#include "kv_heads.h"
#include "model_load.h"
#include "presets.h"
#include "prune.h"
#include "tap.h"
#include "test_support.h"

enum { T = 12 };

static int synth(gs_model *m, const char *preset, uint64_t seed)
{
    gs_error err = {0};
    const gs_preset *p = gs_preset_find(preset);
    if (!p || gs_model_alloc(m, &p->shape, &err)) {
        tap_ok(0, "%s: allocates: %s", preset, err.msg);
        return 1;
    }
    gs_model_init_synthetic(m, seed);
    return 0;
}

static int load_stories(gs_model *m)
{
    char path[1024];
    gs_error err = {0};
    snprintf(path, sizeof path, "%s/stories260K.bin", tap_models_dir());
    if (gs_model_load(m, path, GS_FORMAT_AUTO, NULL, &err)) {
        tap_ok(0, "stories260K loads: %s", err.msg);
        return 1;
    }
    return 0;
}

static int same_model(const gs_model *a, const gs_model *b)
{
    return memcmp(&a->shape, &b->shape, sizeof a->shape) == 0 && a->n_floats == b->n_floats &&
           memcmp(a->data, b->data, a->n_floats * sizeof(float)) == 0;
}

/* Logits of a fixed sequence, [T][vocab] (malloc'ed), or NULL. */
static float *logits_of(gs_backend *be, const gs_model *m)
{
    int ids[T];
    for (int i = 0; i < T; i++)
        ids[i] = (i * 37 + 5) % m->shape.vocab;
    float *out = malloc((size_t)T * (size_t)m->shape.vocab * sizeof(float));
    gs_error err = {0};
    if (out && gs_test_forward_all(be, m, GS_ATTN_NAIVE, GS_DTYPE_F32, ids, T, out, &err)) {
        tap_diag("forward: %s", err.msg);
        free(out);
        return NULL;
    }
    return out;
}

static void layer_mats(const gs_model *m, int l, const float **p, int *rows, int *cols, int *n)
{
    const gs_model_shape *s = &m->shape;
    const gs_layer_weights *w = &m->layers[l];
    const float *all[5] = {w->wqkv, w->wo, w->w_up, w->w_gate, w->w_down};
    int r[5] = {gs_shape_qkv_dim(s), s->n_embd, s->n_hidden, s->n_hidden, s->n_embd};
    int c[5] = {s->n_embd, gs_shape_q_dim(s), s->n_embd, s->n_embd, s->n_hidden};
    *n = 0;
    for (int i = 0; i < 5; i++)
        if (all[i]) {
            p[*n] = all[i];
            rows[*n] = r[i];
            cols[*n] = c[i];
            (*n)++;
        }
}

/* ---- unstructured and 2:4 ---- */

static void test_unstructured(const char *preset, double ratio)
{
    gs_model m, before, p;
    gs_error err = {0};
    if (synth(&m, preset, 11))
        return;
    gs_model_copy(&before, &m, &err);
    int rc = gs_prune_unstructured(&p, &m, ratio, &err);
    tap_ok(rc == GS_OK, "%s unstructured:%g: prunes %s", preset, ratio, err.msg);
    if (rc) {
        gs_model_free(&m);
        gs_model_free(&before);
        return;
    }
    int exact = 1, smallest = 1, n_mats = 0;
    for (int l = 0; l < m.shape.n_layer; l++) {
        const float *a[5], *b[5];
        int rows[5], cols[5], n;
        layer_mats(&m, l, a, rows, cols, &n);
        layer_mats(&p, l, b, rows, cols, &n);
        for (int i = 0; i < n; i++, n_mats++) {
            size_t cnt = (size_t)rows[i] * cols[i], zeros = 0;
            float max_cut = 0.0f, min_kept = INFINITY;
            for (size_t j = 0; j < cnt; j++) {
                if (b[i][j] == 0.0f) {
                    zeros++;
                    max_cut = fmaxf(max_cut, fabsf(a[i][j]));
                } else {
                    min_kept = fminf(min_kept, fabsf(a[i][j]));
                    if (b[i][j] != a[i][j])
                        smallest = 0;
                }
            }
            if ((long long)zeros != gs_prune_count(ratio, (long long)cnt))
                exact = 0;
            if (max_cut > min_kept)
                smallest = 0;
        }
    }
    tap_ok(exact, "%s unstructured:%g: each of %d matrices has exactly round(R x count) zeros", preset, ratio,
           n_mats);
    tap_ok(smallest, "%s unstructured:%g: the zeros are the smallest |w|, the rest unchanged", preset, ratio);
    /* Embeddings, norms and biases: untouched (compare tensor by tensor). */
    gs_tensor_ref ra[128], rb[128];
    int nt = gs_model_tensors(&m, ra, 128);
    gs_model_tensors(&p, rb, 128);
    int others = nt <= 128;
    for (int i = 0; others && i < nt; i++) {
        const char *dot = strrchr(ra[i].name, '.');
        const char *field = dot ? dot + 1 : ra[i].name;
        int mat = !strcmp(field, "wqkv") || !strcmp(field, "wo") || !strcmp(field, "w_up") ||
                  !strcmp(field, "w_gate") || !strcmp(field, "w_down");
        if (!mat && memcmp(ra[i].data, rb[i].data, (size_t)ra[i].rows * ra[i].cols * sizeof(float)))
            others = 0;
    }
    tap_ok(others, "%s unstructured:%g: embeddings, norms, biases and the head are untouched", preset, ratio);
    tap_ok(same_model(&m, &before), "%s unstructured: the master is not changed", preset);
    gs_model_free(&p);
    gs_model_free(&m);
    gs_model_free(&before);
}

static void test_2_4(const char *preset)
{
    gs_model m, p;
    gs_error err = {0};
    if (synth(&m, preset, 12))
        return;
    int rc = gs_prune_2_4(&p, &m, &err);
    tap_ok(rc == GS_OK, "%s 2:4: prunes %s", preset, err.msg);
    if (rc) {
        gs_model_free(&m);
        return;
    }
    long groups = 0, bad = 0;
    for (int l = 0; l < m.shape.n_layer; l++) {
        const float *a[5], *b[5];
        int rows[5], cols[5], n;
        layer_mats(&m, l, a, rows, cols, &n);
        layer_mats(&p, l, b, rows, cols, &n);
        for (int i = 0; i < n; i++)
            for (int r = 0; r < rows[i]; r++)
                for (int g = 0; g + 4 <= cols[i]; g += 4, groups++) {
                    const float *x = a[i] + (size_t)r * cols[i] + g, *y = b[i] + (size_t)r * cols[i] + g;
                    int zeros = 0;
                    float cut = 0.0f, kept = INFINITY;
                    for (int j = 0; j < 4; j++) {
                        if (y[j] == 0.0f) {
                            zeros++;
                            cut = fmaxf(cut, fabsf(x[j]));
                        } else {
                            kept = fminf(kept, fabsf(x[j]));
                            if (y[j] != x[j])
                                bad++;
                        }
                    }
                    if (zeros != 2 || cut > kept)
                        bad++;
                }
    }
    tap_ok(bad == 0 && groups > 0, "%s 2:4: in all %ld groups of four the two largest stay, two are zero", preset,
           groups);
    gs_model_free(&p);
    gs_model_free(&m);
}

/* ---- heads and neurons: smaller model == zeroed original ---- */

static void test_heads(gs_backend *be, const char *name, gs_model *m, double ratio, int want_heads,
                       int want_kv)
{
    gs_model p, z;
    gs_error err = {0};
    int rc = gs_prune_heads(&p, m, ratio, &err);
    tap_ok(rc == GS_OK, "%s heads:%g: prunes %s", name, ratio, err.msg);
    if (rc)
        return;
    const gs_model_shape *s = &m->shape;
    tap_ok(p.shape.n_head == want_heads && p.shape.n_kv_head == want_kv &&
               gs_shape_head_dim(&p.shape) == gs_shape_head_dim(s) && p.shape.n_embd == s->n_embd &&
               p.n_floats < m->n_floats,
           "%s heads:%g: %d heads, %d KV heads -> %d, %d (head size %d kept)", name, ratio, s->n_head,
           s->n_kv_head, p.shape.n_head, p.shape.n_kv_head, gs_shape_head_dim(&p.shape));
    /* The original with the removed heads' wo columns zeroed: those heads
     * then add nothing, which is what removing them does. */
    gs_model_copy(&z, m, &err);
    int nh = s->n_head, hd = gs_shape_head_dim(s), Q = gs_shape_q_dim(s);
    int groups = s->n_kv_head == nh ? 1 : s->n_kv_head, gsz = nh / groups;
    int per_group = (nh - want_heads) / groups;
    int *order = malloc((size_t)nh * sizeof *order);
    for (int l = 0; l < s->n_layer; l++) {
        gs_prune_head_order(m, l, order);
        for (int g = 0; g < groups; g++)
            for (int i = 0; i < per_group; i++) {
                int h = order[g * gsz + i];
                for (int r = 0; r < s->n_embd; r++)
                    memset(z.layers[l].wo + (size_t)r * Q + (size_t)h * hd, 0, (size_t)hd * sizeof(float));
            }
    }
    free(order);
    float *a = logits_of(be, &p), *b = logits_of(be, &z);
    size_t n = (size_t)T * s->vocab;
    double e = a && b ? gs_test_rel_err(a, b, n) : 1.0;
    tap_ok(a && b && e < 1e-5, "%s heads:%g: logits equal the original's with those heads zeroed (rel err %.1e)",
           name, ratio, e);
    free(a);
    free(b);
    gs_model_free(&z);
    gs_model_free(&p);
}

static void test_neurons(gs_backend *be, const char *name, gs_model *m, double ratio)
{
    gs_model p, z;
    gs_error err = {0};
    int rc = gs_prune_neurons(&p, m, ratio, &err);
    tap_ok(rc == GS_OK, "%s neurons:%g: prunes %s", name, ratio, err.msg);
    if (rc)
        return;
    const gs_model_shape *s = &m->shape;
    int H = s->n_hidden, drop = (int)gs_prune_count(ratio, H);
    tap_ok(p.shape.n_hidden == H - drop && p.shape.n_head == s->n_head,
           "%s neurons:%g: n_hidden %d -> %d", name, ratio, H, p.shape.n_hidden);
    gs_model_copy(&z, m, &err);
    int *order = malloc((size_t)H * sizeof *order);
    for (int l = 0; l < s->n_layer; l++) {
        gs_prune_neuron_order(m, l, order);
        for (int i = 0; i < drop; i++)
            for (int r = 0; r < s->n_embd; r++)
                z.layers[l].w_down[(size_t)r * H + order[i]] = 0.0f;
    }
    free(order);
    float *a = logits_of(be, &p), *b = logits_of(be, &z);
    double e = a && b ? gs_test_rel_err(a, b, (size_t)T * s->vocab) : 1.0;
    tap_ok(a && b && e < 1e-5,
           "%s neurons:%g: logits equal the original's with those neurons zeroed (rel err %.1e)", name, ratio, e);
    free(a);
    free(b);
    gs_model_free(&z);
    gs_model_free(&p);
}

/* ---- kv heads ---- */

static void test_kv_pool(gs_backend *be)
{
    gs_model m, p, q;
    gs_error err = {0};
    if (synth(&m, "llama-tiny", 5)) /* 8 heads, 4 KV heads */
        return;
    int rc = gs_convert_kv_heads(&p, &m, 2, &err);
    tap_ok(rc == GS_OK && p.shape.n_kv_head == 2 && p.shape.n_head == 8, "llama-tiny kv_heads 4 -> 2 %s", err.msg);
    if (rc) {
        gs_model_free(&m);
        return;
    }
    const gs_model_shape *s = &m.shape;
    size_t C = (size_t)s->n_embd, hd = (size_t)gs_shape_head_dim(s), Q = (size_t)gs_shape_q_dim(s);
    size_t KV = (size_t)gs_shape_kv_dim(s), nKV = (size_t)gs_shape_kv_dim(&p.shape);
    int exact = 1;
    for (int l = 0; l < s->n_layer; l++) {
        const float *a = m.layers[l].wqkv, *b = p.layers[l].wqkv;
        if (memcmp(a, b, Q * C * sizeof(float)))
            exact = 0; /* q rows unchanged */
        for (int kv = 0; kv < 2; kv++)
            for (size_t j = 0; j < 2; j++)
                for (size_t i = 0; i < hd * C; i++) {
                    double x = a[(Q + kv * KV + 2 * j * hd) * C + i], y = a[(Q + kv * KV + (2 * j + 1) * hd) * C + i];
                    if (b[(Q + kv * nKV + j * hd) * C + i] != (float)((x + y) / 2))
                        exact = 0;
                }
    }
    tap_ok(exact, "kv_heads: each new K and V row is the mean of the rows it replaces, q rows unchanged");
    rc = gs_convert_kv_heads(&q, &m, 4, &err);
    tap_ok(rc == GS_OK && same_model(&q, &m), "kv_heads equal to the model's own: a plain copy");
    if (!rc)
        gs_model_free(&q);
    gs_model_free(&p);

    /* KV heads that agree: merging them changes nothing the model computes. */
    for (int l = 0; l < s->n_layer; l++)
        for (int kv = 0; kv < 2; kv++)
            for (int j = 1; j < s->n_kv_head; j++)
                memcpy(m.layers[l].wqkv + (Q + kv * KV + j * hd) * C, m.layers[l].wqkv + (Q + kv * KV) * C,
                       hd * C * sizeof(float));
    rc = gs_convert_kv_heads(&p, &m, 1, &err);
    float *a = rc ? NULL : logits_of(be, &p), *b = logits_of(be, &m);
    double e = a && b ? gs_test_rel_err(a, b, (size_t)T * s->vocab) : 1.0;
    tap_ok(a && b && e < 1e-5, "kv_heads 1 (MQA) of a model whose KV heads agree: same logits (rel err %.1e)", e);
    free(a);
    free(b);
    if (!rc)
        gs_model_free(&p);
    gs_model_free(&m);
}

/* GPT-2 (MHA) to MQA, then heads pruned on top: the engine generates. */
static void test_mqa_generates(gs_backend *be)
{
    gs_model m, mq, pr;
    gs_error err = {0};
    if (synth(&m, "gpt2-tiny", 3))
        return;
    int rc = gs_convert_kv_heads(&mq, &m, 1, &err);
    if (!rc)
        rc = gs_prune_heads(&pr, &mq, 0.25, &err);
    tap_ok(rc == GS_OK && pr.shape.n_kv_head == 1 && pr.shape.n_head == 3,
           "gpt2-tiny: MHA -> MQA -> heads:0.25 gives 3 heads on 1 KV head %s", err.msg);
    if (rc) {
        gs_model_free(&m);
        return;
    }
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 2;
    int ok = gs_engine_init(&e, be, &pr, &c, &err) == GS_OK;
    int prompt[3] = {1, 2, 3};
    int id0 = ok ? gs_engine_submit(&e, prompt, 3, 8, &err) : -1;
    int id1 = ok ? gs_engine_submit(&e, prompt, 2, 8, &err) : -1;
    ok = ok && id0 >= 0 && id1 >= 0 && gs_engine_run(&e, &err) == GS_OK;
    const gs_request *r = ok ? gs_engine_request(&e, id0) : NULL;
    ok = ok && r && r->n_generated == 8;
    tap_ok(ok, "the MQA, head-pruned model generates (2 requests, 8 tokens each) %s", err.msg);
    char path[] = "/tmp/gs_prune_save_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    gs_error e2 = {0};
    int rs = gs_model_save(&pr, path, GS_FORMAT_LLMC, &e2);
    tap_ok(rs == GS_ERR_INPUT && strstr(e2.msg, "pruned heads"), "a head-pruned model is not saved: %s", e2.msg);
    if (fd >= 0)
        unlink(path);
    gs_engine_destroy(&e);
    gs_model_free(&pr);
    gs_model_free(&mq);
    gs_model_free(&m);
}

/* ---- refusals and spelling ---- */

static void expect_err(int rc, const gs_error *err, const char *want, const char *what)
{
    tap_ok(rc == GS_ERR_INPUT && strstr(err->msg, want) && !strchr(err->msg, '\n'), "%s: \"%s\"", what, err->msg);
}

static void test_refusals(void)
{
    gs_model m, p;
    gs_error err = {0};
    if (synth(&m, "llama-tiny", 9)) /* 8 heads, 4 KV heads, 172 neurons */
        return;
    expect_err(gs_convert_kv_heads(&p, &m, 3, &err), &err, "optimizations.kv_heads: 3 does not divide",
               "kv_heads 3 of 4");
    expect_err(gs_convert_kv_heads(&p, &m, 8, &err), &err, "optimizations.kv_heads: 8 is more than",
               "kv_heads 8 of 4");
    expect_err(gs_convert_kv_heads(&p, &m, 0, &err), &err, "optimizations.kv_heads: 0", "kv_heads 0");
    expect_err(gs_prune_heads(&p, &m, 0.99, &err), &err, "optimizations.sparsity: heads:0.99 would leave no heads",
               "heads:0.99");
    expect_err(gs_prune_heads(&p, &m, 0.1, &err), &err, "optimizations.sparsity: heads:0.1 removes no head",
               "heads:0.1 of groups of 2");
    expect_err(gs_prune_neurons(&p, &m, 0.999, &err), &err,
               "optimizations.sparsity: neurons:0.999 would leave no MLP neurons", "neurons:0.999");
    expect_err(gs_prune_unstructured(&p, &m, 1.0, &err), &err, "optimizations.sparsity: unstructured:1",
               "unstructured:1");
    gs_model_free(&m);

    static const char *good[] = {"none", "2:4", "unstructured:0.5", "heads:0.25", "neurons:0.125",
                                 "unstructured:0.3333333333333333"};
    int rt = 1;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        gs_sparsity sp;
        char buf[64];
        if (gs_sparsity_parse(good[i], &sp) || (gs_sparsity_format(&sp, buf, sizeof buf), strcmp(buf, good[i])))
            rt = 0;
    }
    tap_ok(rt, "sparsity spellings read and write back the same");
    static const char *bad[] = {"", "0.5", "heads", "heads:", "heads:0", "heads:1", "heads:-0.5", "heads: 0.5",
                                "heads:0.5x", "2:4:0.5", "unstructured:inf", "unstructured:nan", "rows:0.5",
                                "none:0.5", "heads:0x0.8"};
    int refused = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_sparsity sp;
        if (gs_sparsity_parse(bad[i], &sp) == 0) {
            tap_diag("accepted \"%s\"", bad[i]);
            refused = 0;
        }
    }
    tap_ok(refused, "bad sparsity spellings are refused");
}

int main(void)
{
    gs_backend *be = NULL;
    gs_error err = {0};
    if (gs_backend_cpu_create(&be, 2, &err)) {
        tap_ok(0, "cpu backend: %s", err.msg);
        return tap_done();
    }
    test_unstructured("gpt2-tiny", 0.3);
    test_unstructured("llama-tiny", 0.7);
    test_2_4("gpt2-tiny");
    test_2_4("llama-tiny");

    gs_model m;
    if (!synth(&m, "gpt2-tiny", 21)) { /* 4 heads, MHA, 256 neurons */
        test_heads(be, "gpt2-tiny", &m, 0.25, 3, 3);
        test_heads(be, "gpt2-tiny", &m, 0.5, 2, 2);
        test_neurons(be, "gpt2-tiny", &m, 0.3);
        gs_model_free(&m);
    }
    if (!synth(&m, "llama-tiny", 22)) { /* 8 heads in 4 groups of 2 */
        test_heads(be, "llama-tiny", &m, 0.5, 4, 4);
        test_neurons(be, "llama-tiny", &m, 0.25);
        gs_model_free(&m);
    }
    if (!load_stories(&m)) { /* 8 heads, 4 KV heads */
        test_heads(be, "stories260K", &m, 0.5, 4, 4);
        test_neurons(be, "stories260K", &m, 0.5);
        gs_model mq;
        if (gs_convert_kv_heads(&mq, &m, 1, &err) == GS_OK) {
            test_heads(be, "stories260K MQA", &mq, 0.25, 6, 1);
            gs_model_free(&mq);
        } else {
            tap_ok(0, "stories260K to MQA: %s", err.msg);
        }
        gs_model_free(&m);
    }
    test_kv_pool(be);
    test_mqa_generates(be);
    test_refusals();
    gs_backend_destroy(be);
    return tap_done();
}
