/* test_engine.c - the scheduler: batching, chunked prefill, preemption and
 * recompute must not change what each request generates; nor must greedy
 * ids picked in the forward pass instead of on the host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "engine.h"
#include "model_load.h"
#include "presets.h"
#include "rng.h"
#include "sampler.h"
#include "tap.h"

#define N_REQ 5
#define GEN 12

static int make_model(gs_model *m, const char *preset, uint64_t seed)
{
    gs_error err = {0};
    if (gs_model_alloc(m, &gs_preset_find(preset)->shape, &err))
        return -1;
    gs_model_init_synthetic(m, seed);
    return 0;
}

static const int prompt_lens[N_REQ] = {3, 17, 1, 40, 9};

static void prompt_of(int q, int *out, int vocab)
{
    for (int i = 0; i < prompt_lens[q]; i++)
        out[i] = (q * 31 + i * 7 + 1) % vocab;
}

typedef struct run_result {
    int tokens[N_REQ][GEN];
    long preemptions;
    int invariants_ok;
    int steps;
    int all_free;
} run_result;

/* Runs the N_REQ requests; `staggered` submits one more request every step. */
static int run(gs_backend *be, const gs_model *m, int batch, int budget, int blocks, int staggered,
               run_result *res, gs_error *err)
{
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = batch;
    c.max_tokens_per_step = budget;
    c.kv_blocks = blocks;
    c.kv_block_size = 4;
    int rc = gs_engine_init(&e, be, m, &c, err);
    if (rc)
        return rc;
    memset(res, 0, sizeof *res);
    res->invariants_ok = 1;
    int ids[N_REQ], submitted = 0;
    int prompt[64];
    while (submitted < N_REQ && !staggered) {
        prompt_of(submitted, prompt, m->shape.vocab);
        ids[submitted] = gs_engine_submit(&e, prompt, prompt_lens[submitted], GEN, err);
        submitted++;
    }
    while (rc == GS_OK && (gs_engine_busy(&e) || submitted < N_REQ)) {
        if (staggered && submitted < N_REQ) {
            prompt_of(submitted, prompt, m->shape.vocab);
            ids[submitted] = gs_engine_submit(&e, prompt, prompt_lens[submitted], GEN, err);
            submitted++;
        }
        rc = gs_engine_step(&e, err);
        gs_error cerr = {0};
        if (kv_cache_check(&e.kv, &cerr) != GS_OK)
            res->invariants_ok = 0;
        res->steps++;
    }
    for (int q = 0; rc == GS_OK && q < N_REQ; q++) {
        const gs_request *r = gs_engine_request(&e, ids[q]);
        memcpy(res->tokens[q], r->tokens + r->n_prompt, GEN * sizeof(int));
    }
    res->preemptions = e.kv.preemptions;
    res->all_free = e.kv.n_free == e.kv.n_blocks;
    gs_engine_destroy(&e);
    return rc;
}

static void check_model(gs_backend *be, const char *preset)
{
    gs_model m;
    gs_error err = {0};
    if (make_model(&m, preset, 7)) {
        tap_ok(0, "%s: model", preset);
        return;
    }
    run_result alone, batched, chunked, tight, stagger;
    /* Reference: one request at a time (batch 1, a big budget, plenty of blocks). */
    int rc = run(be, &m, 1, 512, 0, 0, &alone, &err);
    tap_ok(rc == GS_OK && alone.all_free, "%s: one at a time %s", preset, err.msg);
    rc = run(be, &m, N_REQ, 512, 0, 0, &batched, &err);
    tap_ok(rc == GS_OK && memcmp(alone.tokens, batched.tokens, sizeof alone.tokens) == 0,
           "%s: continuous batching of %d requests generates the same tokens", preset, N_REQ);
    rc = run(be, &m, N_REQ, 8, 0, 0, &chunked, &err);
    tap_ok(rc == GS_OK && memcmp(alone.tokens, chunked.tokens, sizeof alone.tokens) == 0,
           "%s: chunked prefill (8-token budget) generates the same tokens", preset);
    /* 16 blocks of 4 tokens hold 64 tokens; the requests need 40+12 alone and far more together. */
    rc = run(be, &m, N_REQ, 512, 16, 0, &tight, &err);
    tap_ok(rc == GS_OK && tight.preemptions > 0, "%s: a 16-block cache forces preemption (%ld) %s", preset,
           tight.preemptions, err.msg);
    tap_ok(rc == GS_OK && memcmp(alone.tokens, tight.tokens, sizeof alone.tokens) == 0,
           "%s: preempted requests are recomputed to the same tokens", preset);
    tap_ok(tight.invariants_ok && tight.all_free, "%s: KV invariants hold every step and all blocks return",
           preset);
    rc = run(be, &m, 3, 512, 0, 1, &stagger, &err);
    tap_ok(rc == GS_OK && memcmp(alone.tokens, stagger.tokens, sizeof alone.tokens) == 0,
           "%s: requests arriving while others decode generate the same tokens", preset);
    gs_model_free(&m);
}

static void check_bad_requests(gs_backend *be)
{
    gs_model m;
    gs_error err = {0};
    make_model(&m, "gpt2-tiny", 3);
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 2;
    gs_engine_init(&e, be, &m, &c, &err);
    int bad_tok[2] = {1, 256};
    tap_ok(gs_engine_submit(&e, bad_tok, 2, 4, &err) == -GS_ERR_INPUT, "a token id outside the vocabulary is refused: %s",
           err.msg);
    int ok_tok[1] = {5};
    tap_ok(gs_engine_submit(&e, ok_tok, 1, 200, &err) == -GS_ERR_INPUT, "a request longer than the context is refused");
    tap_ok(gs_engine_submit(&e, ok_tok, 0, 4, &err) == -GS_ERR_INPUT, "an empty prompt is refused");
    int id = gs_engine_submit(&e, ok_tok, 1, 0, &err);
    tap_ok(id >= 0 && gs_engine_request(&e, id)->state == GS_REQ_DONE && !gs_engine_busy(&e),
           "zero tokens to generate is done at once");
    gs_engine_destroy(&e);

    /* A cache smaller than one sequence: a clear runtime error, not a hang. */
    c.kv_blocks = 2;
    c.kv_block_size = 4;
    c.max_tokens_per_step = 4;
    gs_engine_init(&e, be, &m, &c, &err);
    int prompt[3] = {1, 2, 3};
    gs_engine_submit(&e, prompt, 3, 20, &err);
    int rc = GS_OK;
    for (int i = 0; i < 50 && rc == GS_OK && gs_engine_busy(&e); i++)
        rc = gs_engine_step(&e, &err);
    tap_ok(rc == GS_ERR_RUNTIME, "a cache too small for one sequence says so: %s", err.msg);
    gs_engine_destroy(&e);
    gs_model_free(&m);
}

/* The batch composition the analytic model reads: a chunked prefill, then
 * decode steps, with a window and sinks applied as the kernels apply them. */
static void check_batch_shape(gs_backend *be)
{
    gs_model m;
    gs_error err = {0};
    make_model(&m, "gpt2-tiny", 4);
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 2;
    c.max_tokens_per_step = 6;
    gs_engine_init(&e, be, &m, &c, &err);
    e.fwd.window = 4;
    e.fwd.n_sink = 1;
    int p1[5] = {1, 2, 3, 4, 5}, p2[3] = {6, 7, 8};
    gs_engine_submit(&e, p1, 5, 2, &err);
    gs_engine_submit(&e, p2, 3, 2, &err);
    /* Step 0: budget 6: p1's 5 tokens (positions 0..4) and 1 of p2 (position 0).
     * p1: window 4 + sink 1 sees 1,2,3,4,5 positions (p=4: 1..4 and sink 0): 15 pairs, 5 keys;
     * p2: 1 pair, 1 key. Only p1 is complete, so 1 logit row. */
    int rc = gs_engine_step(&e, &err);
    const gs_step_shape *b = &e.last.batch;
    tap_ok(rc == GS_OK && b->n_tokens == 6 && b->n_seqs == 2 && b->n_logits == 1 && b->attn_pairs == 16 &&
               b->attn_keys == 6 && b->n_ids == 1,
           "step 0: 6 tokens of 2 sequences, 1 logit row, 16 pairs, 6 keys (got %lld %lld %lld %lld %lld)",
           (long long)b->n_tokens, (long long)b->n_seqs, (long long)b->n_logits, (long long)b->attn_pairs,
           (long long)b->attn_keys);
    /* Step 1: p1 decodes at position 5 (window 2..5 + sink 0: 5), p2 finishes
     * its prompt at positions 1, 2 (2 + 3): 10 pairs; keys 5 + 3. */
    rc = gs_engine_step(&e, &err);
    tap_ok(rc == GS_OK && b->n_tokens == 3 && b->n_seqs == 2 && b->n_logits == 2 && b->attn_pairs == 10 &&
               b->attn_keys == 8,
           "step 1: 3 tokens, 2 logit rows, 10 pairs, 8 keys (got %lld %lld %lld %lld)", (long long)b->n_tokens,
           (long long)b->n_logits, (long long)b->attn_pairs, (long long)b->attn_keys);
    gs_engine_destroy(&e);
    gs_model_free(&m);
}

/* ---- greedy ids picked in the pass vs logits sampled on the host ---- */
#define IDS_REQ 4
#define IDS_GEN 24

typedef struct ids_run {
    int tokens[IDS_REQ][IDS_GEN];
    long id_rows, logit_rows;                          /* summed over the steps */
    long sample_argmax, download_ids, download_logits; /* op instances */
} ids_run;

static long ops_named(const gs_op_table *t, const char *name)
{
    for (int i = 0; i < t->n_rows; i++)
        if (t->rows[i].level == GS_RANGE_OP && strcmp(t->rows[i].name, name) == 0)
            return t->rows[i].count;
    return 0;
}

/* IDS_REQ requests of different prompt lengths through one engine. */
static int run_ids(gs_backend *be, const gs_model *m, int batch, int keep_logits, float temperature, ids_run *out,
                   gs_error *err)
{
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = batch;
    c.keep_logits = keep_logits;
    c.sampler.temperature = temperature;
    int rc = gs_engine_init(&e, be, m, &c, err);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    gs_op_table ops;
    gs_op_table_init(&ops);
    gs_ranges_add_sink(&e.ranges, gs_op_table_sink(&ops));
    int ids[IDS_REQ], prompt[16];
    for (int q = 0; q < IDS_REQ; q++) {
        prompt[0] = 1; /* BOS, then a few ids of the 512 */
        for (int i = 1; i < 1 + 3 * q; i++)
            prompt[i] = (q * 37 + i * 11 + 5) % m->shape.vocab;
        ids[q] = gs_engine_submit(&e, prompt, 1 + 3 * q, IDS_GEN, err);
    }
    while (rc == GS_OK && gs_engine_busy(&e)) {
        rc = gs_engine_step(&e, err);
        out->id_rows += e.last.batch.n_ids;
        out->logit_rows += e.last.batch.n_logits;
    }
    for (int q = 0; rc == GS_OK && q < IDS_REQ; q++) {
        const gs_request *r = gs_engine_request(&e, ids[q]);
        memcpy(out->tokens[q], r->tokens + r->n_prompt, sizeof out->tokens[q]);
    }
    out->sample_argmax = ops_named(&ops, "sample_argmax");
    out->download_ids = ops_named(&ops, "download_ids");
    out->download_logits = ops_named(&ops, "download_logits");
    gs_engine_destroy(&e);
    return rc;
}

/* stories260K, a trained model (its logits have the near ties a different
 * rule would break differently): the same tokens from ids picked in the pass
 * (the CPU backend's argmax_rows), from logits read back (keep_logits) and
 * from a backend without the op (the engine falls back to the logits). */
static void check_greedy_ids(gs_backend *be)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.bin", tap_models_dir());
    gs_model m;
    gs_error err = {0};
    if (gs_model_load(&m, path, GS_FORMAT_AUTO, NULL, &err) != GS_OK) {
        tap_ok(0, "stories260K loads: %s", err.msg);
        return;
    }
    gs_backend_ops no_argmax = *be->ops;
    no_argmax.argmax_rows = NULL;
    const gs_backend_ops *own = be->ops;
    ids_run first;
    for (int batch = 1; batch <= IDS_REQ; batch += IDS_REQ - 1) {
        ids_run logits, ids, fallback;
        int rc = run_ids(be, &m, batch, 1, 0.0f, &logits, &err);
        rc = rc ? rc : run_ids(be, &m, batch, 0, 0.0f, &ids, &err);
        be->ops = &no_argmax;
        int rc2 = rc ? rc : run_ids(be, &m, batch, 0, 0.0f, &fallback, &err);
        be->ops = own;
        tap_ok(rc == GS_OK && memcmp(logits.tokens, ids.tokens, sizeof ids.tokens) == 0,
               "stories260K batch %d: greedy ids picked in the pass generate the tokens of logits sampled on the host %s",
               batch, err.msg);
        tap_ok(rc == GS_OK && ids.id_rows == ids.logit_rows && ids.id_rows > 0 && ids.sample_argmax > 0 &&
                   ids.download_ids == ids.sample_argmax && ids.download_logits == 0 && logits.id_rows == 0 &&
                   logits.sample_argmax == 0 && logits.download_ids == 0 && logits.download_logits > 0,
               "stories260K batch %d: %ld rows read back as ids (sample_argmax %ld, download_ids %ld, no "
               "download_logits); with keep_logits none (download_logits %ld)",
               batch, ids.id_rows, ids.sample_argmax, ids.download_ids, logits.download_logits);
        tap_ok(rc2 == GS_OK && memcmp(logits.tokens, fallback.tokens, sizeof ids.tokens) == 0 &&
                   fallback.id_rows == 0 && fallback.sample_argmax == 0 && fallback.download_logits > 0,
               "stories260K batch %d: a backend without argmax_rows reads the logits back, the same tokens %s", batch,
               err.msg);
        if (batch == 1)
            first = ids;
        else
            tap_ok(rc == GS_OK && memcmp(first.tokens, ids.tokens, sizeof ids.tokens) == 0,
                   "stories260K: ids picked in the pass, batch %d generates batch 1's tokens", batch);
    }
    /* Not greedy: the logits are needed on the host whatever keep_logits says. */
    ids_run hot, hot_keep;
    int rc = run_ids(be, &m, IDS_REQ, 0, 0.8f, &hot, &err);
    rc = rc ? rc : run_ids(be, &m, IDS_REQ, 1, 0.8f, &hot_keep, &err);
    tap_ok(rc == GS_OK && hot.id_rows == 0 && hot.sample_argmax == 0 &&
               memcmp(hot.tokens, hot_keep.tokens, sizeof hot.tokens) == 0,
           "stories260K at temperature 0.8: logits read back and sampled on the host, as with keep_logits %s", err.msg);
    gs_model_free(&m);
}

/* The vectorized argmax against the obvious loop: random rows (odd lengths,
 * so the scalar tail runs), ties (the first wins), -inf, NaNs. */
static int argmax_obvious(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void check_argmax(void)
{
    enum { V = 50257 };
    float *x = malloc(V * sizeof *x);
    gs_rng r;
    gs_rng_seed(&r, 7);
    int same = 1;
    for (int t = 0; t < 200 && x; t++) {
        int n = 1 + (int)(gs_rng_next(&r) % V);
        for (int i = 0; i < n; i++)
            x[i] = (float)(int)(gs_rng_uniform(&r) * (t % 3 ? 1000.0f : 4.0f)); /* coarse values: many ties */
        if (t % 5 == 1)
            x[gs_rng_next(&r) % (unsigned)n] = NAN;
        if (t % 7 == 2)
            for (int i = 0; i < n; i++)
                x[i] = -INFINITY;
        same &= gs_sample_argmax(x, n) == argmax_obvious(x, n);
    }
    tap_ok(same, "argmax: the vectorized two-pass scan picks what the obvious loop picks (ties, NaN, -inf)");
    free(x);
}

int main(void)
{
    check_argmax();
    gs_backend *be1 = NULL, *be2 = NULL;
    gs_error err = {0};
    gs_backend_cpu_create(&be1, 1, &err);
    gs_backend_cpu_create(&be2, 2, &err);
    check_model(be1, "gpt2-tiny");
    check_model(be2, "llama-tiny");
    check_bad_requests(be2);
    check_batch_shape(be2);
    check_greedy_ids(be2);
    gs_backend_destroy(be1);
    gs_backend_destroy(be2);
    return tap_done();
}
