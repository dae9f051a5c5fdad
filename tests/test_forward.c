/* test_forward.c - the whole forward pass against independent references:
 *  - stories260K (a real trained llama2.c model): greedy ids from BOS equal
 *    what llama2.c's run.c prints for the same file (tests/bench/llama2c_reference.md);
 *  - tiny GPT-2 and Llama models made and evaluated by Hugging Face
 *    transformers (tests/data/README.md): logits at every position agree;
 *  - the paged, batched forward agrees with a plain per-sequence forward
 *    built from the reference kernels (contiguous cache, no batching);
 *  - a step asked for greedy ids returns the argmax of the logits it would
 *    have read back, under ops of its own, and a backend without
 *    argmax_rows refuses the request. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "attention.h"
#include "backend.h"
#include "embedding.h"
#include "engine.h"
#include "forward.h"
#include "kv_cache.h"
#include "matmul.h"
#include "model_load.h"
#include "norm.h"
#include "presets.h"
#include "residual.h"
#include "rope.h"
#include "sampler.h"
#include "tap.h"
#include "test_support.h"

/* run.c (llama2.c 350e04f, gcc -O3), stories260K.bin, BOS then 256 greedy steps. */
static const int stories_ref[256] = {
    461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264,
    283, 452, 288, 13, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431,
    431, 293, 430, 417, 363, 416, 315, 342, 418, 424, 400, 442, 402, 303, 266, 299,
    374, 466, 396, 303, 271, 362, 390, 469, 306, 469, 423, 314, 347, 305, 356, 333,
    333, 333, 333, 425, 377, 354, 304, 304, 304, 304, 304, 330, 341, 382, 468, 473,
    473, 402, 402, 299, 299, 483, 456, 473, 456, 473, 465, 465, 465, 341, 317, 436,
    363, 454, 315, 377, 360, 408, 472, 453, 327, 316, 266, 417, 277, 299, 369, 283,
    266, 417, 264, 277, 277, 277, 439, 456, 407, 407, 309, 341, 436, 330, 466, 377,
    422, 436, 472, 465, 466, 407, 407, 407, 407, 407, 465, 466, 473, 330, 330, 386,
    431, 304, 304, 472, 453, 380, 299, 299, 483, 475, 452, 477, 295, 412, 302, 330,
    275, 377, 271, 341, 438, 452, 287, 302, 341, 438, 303, 303, 303, 283, 266, 417,
    277, 277, 277, 409, 281, 303, 303, 462, 402, 402, 402, 402, 299, 299, 277, 333,
    333, 333, 333, 333, 299, 299, 299, 292, 325, 329, 382, 374, 458, 465, 465, 466,
    465, 466, 465, 442, 456, 407, 465, 465, 473, 473, 473, 473, 473, 407, 465, 465,
    473, 473, 473, 407, 465, 465, 465, 466, 465, 465, 465, 466, 465, 465, 465, 465,
    473, 465, 465, 465, 465, 473, 330, 327, 435, 445, 435, 396, 454, 388, 369, 367,
};


static void test_stories(gs_backend *be)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.bin", tap_models_dir());
    gs_model m;
    gs_error err = {0};
    if (gs_model_load(&m, path, GS_FORMAT_AUTO, NULL, &err) != GS_OK) {
        tap_ok(0, "stories260K loads: %s", err.msg);
        return;
    }
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 1;
    int rc = gs_engine_init(&e, be, &m, &c, &err);
    int bos = 1;
    int id = rc ? -1 : gs_engine_submit(&e, &bos, 1, 256, &err);
    rc = id < 0 ? 1 : gs_engine_run(&e, &err);
    const gs_request *r = gs_engine_request(&e, id);
    int first_diff = -1;
    for (int i = 0; rc == GS_OK && i < 256; i++)
        if (r->tokens[1 + i] != stories_ref[i]) {
            first_diff = i;
            break;
        }
    tap_ok(rc == GS_OK && first_diff < 0, "stories260K greedy from BOS: 256 ids equal llama2.c run.c%s",
           first_diff >= 0 ? " (first difference below)" : "");
    if (first_diff >= 0)
        tap_diag("first difference at %d: got %d, run.c %d", first_diff, r->tokens[1 + first_diff],
                 stories_ref[first_diff]);
    gs_engine_destroy(&e);
    gs_model_free(&m);
}


static void test_hf_fixture(gs_backend *be, const char *name)
{
    enum { T = 24 };
    gs_model m;
    gs_error err = {0};
    int ids[T];
    float *want = NULL;
    if (gs_test_load_hf_fixture(name, T, &m, ids, &want, &err)) {
        tap_ok(0, "%s: fixture loads: %s", name, err.msg);
        return;
    }
    size_t nl = (size_t)T * (size_t)m.shape.vocab;
    float *got = malloc(nl * sizeof(float));
    for (size_t i = 0; i < nl; i++)
        got[i] = NAN; /* poison: every logit must be written */
    int rc = gs_test_forward_all(be, &m, GS_ATTN_NAIVE, GS_DTYPE_F32, ids, T, got, &err);
    double e = rc ? 1.0 : gs_test_rel_err(got, want, nl);
    tap_ok(rc == GS_OK && e < 1e-4, "%s: logits at all %d positions match transformers (rel err %.2e) %s", name, T,
           e, err.msg);
    free(want);
    free(got);
    gs_model_free(&m);
}

/* ---- a plain forward from the reference kernels: one sequence, contiguous cache ---- */
static void ref_norm(const gs_model_shape *s, float *out, const float *in, const float *w, const float *b)
{
    if (s->arch == GS_ARCH_GPT2)
        cpu_layernorm_ref(out, in, w, b, 1, s->n_embd, s->norm_eps);
    else
        cpu_rmsnorm_ref(out, in, w, 1, s->n_embd, s->norm_eps);
}

static void ref_forward_last(const gs_model *m, const int *ids, int n, float *logits)
{
    const gs_model_shape *s = &m->shape;
    int C = s->n_embd, H = s->n_hidden, QKV = gs_shape_qkv_dim(s), KV = gs_shape_kv_dim(s);
    int hd = gs_shape_head_dim(s);
    float *kc = calloc((size_t)s->n_layer * n * KV, sizeof(float)), *vc = calloc((size_t)s->n_layer * n * KV, sizeof(float));
    float *x = malloc(C * sizeof(float)), *xn = malloc(C * sizeof(float)), *qkv = malloc(QKV * sizeof(float));
    float *att = malloc(C * sizeof(float)), *h1 = malloc(H * sizeof(float)), *h3 = malloc(H * sizeof(float));
    int table = 0;
    for (int t = 0; t < n; t++) {
        cpu_embed(x, &ids[t], &t, m->wte, m->wpe, 1, C);
        for (int l = 0; l < s->n_layer; l++) {
            const gs_layer_weights *w = &m->layers[l];
            float *kl = kc + (size_t)l * n * KV, *vl = vc + (size_t)l * n * KV;
            ref_norm(s, xn, x, w->ln1_w, w->ln1_b);
            cpu_matmul_ref(qkv, xn, w->wqkv, w->bqkv, 1, C, QKV);
            if (s->arch == GS_ARCH_LLAMA)
                cpu_rope_ref(qkv, &t, 1, QKV, s->n_head, s->n_kv_head, hd, s->rope_theta);
            memcpy(kl + (size_t)t * KV, qkv + C, KV * sizeof(float));
            memcpy(vl + (size_t)t * KV, qkv + C + KV, KV * sizeof(float));
            int seq = 0;
            gs_attn_args a = {1, s->n_head, s->n_kv_head, hd, QKV, n, 1, t + 1, &seq, &t, &table, 0, 0, GS_ATTN_NAIVE,
                              GS_KV_F32, NULL, NULL, 0, NULL};
            cpu_attention_ref(att, qkv, kl, vl, &a);
            cpu_matmul_ref(xn, att, w->wo, w->bo, 1, C, C);
            for (int i = 0; i < C; i++)
                x[i] += xn[i];
            ref_norm(s, xn, x, w->ln2_w, w->ln2_b);
            cpu_matmul_ref(h1, xn, w->w_up, w->b_up, 1, C, H);
            if (s->arch == GS_ARCH_GPT2) {
                cpu_gelu_ref(h1, H);
            } else {
                cpu_matmul_ref(h3, xn, w->w_gate, NULL, 1, C, H);
                cpu_swiglu_ref(h1, h3, H);
            }
            cpu_matmul_ref(xn, h1, w->w_down, w->b_down, 1, H, C);
            for (int i = 0; i < C; i++)
                x[i] += xn[i];
        }
    }
    ref_norm(s, xn, x, m->lnf_w, m->lnf_b);
    cpu_matmul_ref(logits, xn, m->lm_head, NULL, 1, C, s->vocab);
    free(kc); free(vc); free(x); free(xn); free(qkv); free(att); free(h1); free(h3);
}

/* Two sequences of different lengths in one step against the plain forward. */
static void test_against_plain(gs_backend *be, const char *preset)
{
    gs_model m;
    gs_error err = {0};
    gs_model_alloc(&m, &gs_preset_find(preset)->shape, &err);
    gs_model_init_synthetic(&m, 11);
    int V = m.shape.vocab;
    enum { NA = 19, NB = 6 };
    int a[NA], b[NB];
    for (int i = 0; i < NA; i++)
        a[i] = (i * 37 + 5) % V;
    for (int i = 0; i < NB; i++)
        b[i] = (i * 11 + 2) % V;
    float *ra = malloc(V * sizeof(float)), *rb = malloc(V * sizeof(float));
    ref_forward_last(&m, a, NA, ra);
    ref_forward_last(&m, b, NB, rb);

    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 2;
    c.kv_block_size = 4;
    c.keep_logits = 1; /* the test reads h_logits */
    gs_engine_init(&e, be, &m, &c, &err);
    /* n_gen 1: the only sampled token comes from the prefill logits; compare those. */
    gs_engine_submit(&e, a, NA, 1, &err);
    gs_engine_submit(&e, b, NB, 1, &err);
    /* Run the single prefill step by hand to see its logits. */
    int rc = gs_engine_step(&e, &err);
    double ea = gs_test_rel_err(e.h_logits, ra, V), eb = gs_test_rel_err(e.h_logits + V, rb, V);
    tap_ok(rc == GS_OK && e.last.n_tokens == NA + NB && ea < 1e-5 && eb < 1e-5,
           "%s: batched paged prefill of 2 sequences equals the plain forward (rel err %.1e, %.1e)", preset, ea, eb);
    gs_engine_destroy(&e);

    /* The same with each residual add fused into the norm after it. */
    gs_engine_init(&e, be, &m, &c, &err);
    e.fwd.fuse = 1;
    gs_engine_submit(&e, a, NA, 1, &err);
    gs_engine_submit(&e, b, NB, 1, &err);
    rc = gs_engine_step(&e, &err);
    ea = gs_test_rel_err(e.h_logits, ra, V);
    eb = gs_test_rel_err(e.h_logits + V, rb, V);
    tap_ok(rc == GS_OK && ea < 1e-5 && eb < 1e-5,
           "%s: with residual+norm fused, the prefill still equals the plain forward (rel err %.1e, %.1e)", preset, ea,
           eb);
    gs_engine_destroy(&e);

    /* Decode path: feed a token by token through the engine, compare the last logits. */
    float *last = malloc(V * sizeof(float));
    gs_ranges ranges;
    gs_ranges_init(&ranges);
    gs_forward f;
    gs_kv_cache kv;
    int per_seq = (m.shape.n_ctx + 3) / 4;
    kv_cache_init(&kv, per_seq, 4, 1, per_seq, &err);
    gs_forward_init(&f, be, &m, GS_DTYPE_F32, &ranges, 1, 1, per_seq, 4, &err);
    int seq = kv_cache_seq_open(&kv);
    rc = GS_OK;
    for (int t = 0; t < NA && rc == GS_OK; t++) {
        kv_cache_seq_grow(&kv, seq, 1);
        int slot = kv_cache_slot(&kv, seq, t), zero = 0;
        gs_step_batch sb = {.n = 1, .tokens = &a[t], .pos = &t, .seq_row = &seq, .slot = &slot,
                            .block_tables = kv.tables, .n_rows = 1, .table_stride = kv.max_blocks_per_seq,
                            .n_logits = 1, .logit_rows = &zero};
        rc = gs_forward_step(&f, &sb, last, &err);
    }
    double ed = gs_test_rel_err(last, ra, V);
    tap_ok(rc == GS_OK && ed < 1e-5, "%s: token-by-token decode equals the plain forward (rel err %.1e)", preset, ed);
    tap_ok(ranges.nesting_errors == 0, "%s: ranges nest step > layer > op without errors", preset);
    gs_forward_destroy(&f);
    kv_cache_destroy(&kv);
    free(last);
    free(ra);
    free(rb);
    gs_model_free(&m);
}

static long op_count(const gs_op_table *t, const char *name)
{
    for (int i = 0; i < t->n_rows; i++)
        if (t->rows[i].level == GS_RANGE_OP && strcmp(t->rows[i].name, name) == 0)
            return t->rows[i].count;
    return 0;
}

/* A prefill step of T tokens with every row scored, run twice on the same
 * cache slots (the second recomputes the first exactly): once reading back
 * logits, once asking for ids. */
static void test_ids(gs_backend *be, const char *preset)
{
    enum { T = 12, BS = 4 };
    gs_model m;
    gs_error err = {0};
    gs_model_alloc(&m, &gs_preset_find(preset)->shape, &err);
    gs_model_init_synthetic(&m, 11);
    int V = m.shape.vocab, per_seq = (m.shape.n_ctx + BS - 1) / BS;
    gs_kv_cache kv;
    kv_cache_init(&kv, per_seq, BS, 1, per_seq, &err);
    gs_ranges ranges;
    gs_ranges_init(&ranges);
    gs_op_table ops;
    gs_op_table_init(&ops);
    gs_ranges_add_sink(&ranges, gs_op_table_sink(&ops));
    gs_forward f;
    int rc = gs_forward_init(&f, be, &m, GS_DTYPE_F32, &ranges, T, T, per_seq, BS, &err);
    int seq = kv_cache_seq_open(&kv);
    kv_cache_seq_grow(&kv, seq, T);
    int tok[T], pos[T], row[T], slot[T], lr[T], want[T], got[T];
    for (int i = 0; i < T; i++) {
        tok[i] = (i * 29 + 3) % V;
        pos[i] = i;
        row[i] = seq;
        slot[i] = kv_cache_slot(&kv, seq, i);
        lr[i] = i;
        got[i] = -1;
    }
    float *logits = malloc((size_t)T * V * sizeof(float));
    gs_step_batch b = {.n = T, .tokens = tok, .pos = pos, .seq_row = row, .slot = slot, .block_tables = kv.tables,
                       .n_rows = kv.max_seqs, .table_stride = kv.max_blocks_per_seq, .n_logits = T, .logit_rows = lr};
    if (rc == GS_OK)
        rc = gs_forward_step(&f, &b, logits, &err);
    for (int i = 0; i < T; i++)
        want[i] = gs_sample_argmax(logits + (size_t)i * V, V);
    b.ids_out = got;
    /* No logits buffer: the ids path must not touch it. */
    int rc2 = rc ? rc : gs_forward_step(&f, &b, NULL, &err);
    tap_ok(rc == GS_OK && rc2 == GS_OK && gs_forward_picks_ids(&f) && memcmp(want, got, sizeof want) == 0,
           "%s: a step asked for ids returns the argmax of each of its %d logit rows %s", preset, T, err.msg);
    tap_ok(op_count(&ops, "sample_argmax") == 1 && op_count(&ops, "download_ids") == 1 &&
               op_count(&ops, "download_logits") == 1 && ranges.nesting_errors == 0,
           "%s: the ids step runs sample_argmax and download_ids instead of download_logits", preset);

    /* The same backend without the op: refused, not answered with logits. */
    gs_backend_ops no_argmax = *be->ops;
    no_argmax.argmax_rows = NULL;
    const gs_backend_ops *saved = be->ops;
    be->ops = &no_argmax;
    gs_error e2 = {0};
    int rc3 = gs_forward_step(&f, &b, logits, &e2);
    int picks = gs_forward_picks_ids(&f);
    be->ops = saved;
    tap_ok(rc3 == GS_ERR_RUNTIME && !picks && strstr(e2.msg, "argmax_rows") != NULL,
           "%s: without argmax_rows, asking for ids fails clearly: %s", preset, e2.msg);
    free(logits);
    gs_forward_destroy(&f);
    kv_cache_destroy(&kv);
    gs_model_free(&m);
}

int main(void)
{
    gs_backend *be = NULL;
    gs_error err = {0};
    if (gs_backend_cpu_create(&be, 2, &err)) {
        tap_ok(0, "cpu backend: %s", err.msg);
        return tap_done();
    }
    test_stories(be);
    test_hf_fixture(be, "gpt2_tiny");
    test_hf_fixture(be, "llama_tiny");
    test_against_plain(be, "gpt2-tiny");
    test_against_plain(be, "llama-tiny");
    test_ids(be, "gpt2-tiny");
    test_ids(be, "llama-tiny");
    gs_backend_destroy(be);
    return tap_done();
}
