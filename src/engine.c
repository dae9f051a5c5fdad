/* engine.c - the continuous-batching scheduler over the paged KV cache. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

void gs_engine_config_defaults(gs_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_batch = 16;
    c->max_tokens_per_step = 512;
    c->kv_blocks = 0;
    c->kv_block_size = 16;
    c->sampler.temperature = 0.0f;
    c->sampler.top_k = 0;
    c->sampler.top_p = 1.0f;
    c->seed = 1234;
}

int gs_engine_init(gs_engine *e, gs_backend *be, const gs_model *m, const gs_engine_config *cfg,
                   gs_error *err)
{
    memset(e, 0, sizeof *e);
    e->be = be;
    e->shape = m->shape;
    e->cfg = *cfg;
    const gs_model_shape *s = &m->shape;
    if (cfg->max_batch < 1 || cfg->max_tokens_per_step < 1 || cfg->kv_block_size < 1 || cfg->kv_blocks < 0)
        return gs_error_set(err, GS_ERR_INPUT, "engine: batch, step budget and KV block size must be positive");
    int per_seq = (s->n_ctx + cfg->kv_block_size - 1) / cfg->kv_block_size;
    int n_blocks = cfg->kv_blocks ? cfg->kv_blocks : per_seq * cfg->max_batch;
    int max_tokens = cfg->max_tokens_per_step;
    if (max_tokens < cfg->max_batch)
        max_tokens = cfg->max_batch; /* every running sequence gets its decode token */
    e->cfg.max_tokens_per_step = max_tokens;
    e->cfg.kv_blocks = n_blocks;
    gs_ranges_init(&e->ranges);
    int rc = kv_cache_init(&e->kv, n_blocks, cfg->kv_block_size, cfg->max_batch, per_seq, err);
    if (rc)
        return rc;
    /* Logit rows: at least GS_ENGINE_MIN_LOGIT_ROWS, so a teacher-forced
     * pass (quality.h) scores a chunk of positions per step even when the
     * workload runs one sequence; a few MB of device memory at most. */
    int max_rows = cfg->max_batch > GS_ENGINE_MIN_LOGIT_ROWS ? cfg->max_batch : GS_ENGINE_MIN_LOGIT_ROWS;
    if (max_rows > max_tokens)
        max_rows = max_tokens;
    rc = gs_forward_init_kv(&e->fwd, be, m, cfg->weight_dtype, cfg->kv_dtype, &e->ranges, max_tokens, max_rows,
                            n_blocks, cfg->kv_block_size, err);
    if (rc) {
        kv_cache_destroy(&e->kv);
        return rc;
    }
    size_t T = (size_t)max_tokens, B = (size_t)cfg->max_batch;
    e->running = malloc(B * sizeof(int));
    e->h_tokens = malloc(T * sizeof(int));
    e->h_pos = malloc(T * sizeof(int));
    e->h_seq = malloc(T * sizeof(int));
    e->h_slot = malloc(T * sizeof(int));
    e->h_logit_rows = malloc(B * sizeof(int));
    e->h_logit_req = malloc(B * sizeof(int));
    e->h_ids = malloc(B * sizeof(int));
    e->h_logits = malloc(B * (size_t)s->vocab * sizeof(float));
    e->h_scratch = malloc(2 * (size_t)s->vocab * sizeof(float));
    if (!e->running || !e->h_tokens || !e->h_pos || !e->h_seq || !e->h_slot || !e->h_logit_rows ||
        !e->h_logit_req || !e->h_ids || !e->h_logits || !e->h_scratch) {
        gs_engine_destroy(e);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the engine's step buffers");
    }
    return GS_OK;
}

void gs_engine_destroy(gs_engine *e)
{
    for (int i = 0; i < e->n_reqs; i++)
        free(e->reqs[i].tokens);
    free(e->reqs);
    free(e->running);
    free(e->waiting);
    free(e->h_tokens);
    free(e->h_pos);
    free(e->h_seq);
    free(e->h_slot);
    free(e->h_logit_rows);
    free(e->h_logit_req);
    free(e->h_ids);
    free(e->h_logits);
    free(e->h_scratch);
    gs_forward_destroy(&e->fwd);
    kv_cache_destroy(&e->kv);
    memset(e, 0, sizeof *e);
}

int gs_engine_submit(gs_engine *e, const int *prompt, int n_prompt, int n_gen, gs_error *err)
{
    const gs_model_shape *s = &e->shape;
    if (n_prompt < 1)
        return -gs_error_set(err, GS_ERR_INPUT, "a request needs at least one prompt token");
    if (n_gen < 0 || (long)n_prompt + n_gen - 1 > s->n_ctx)
        return -gs_error_set(err, GS_ERR_INPUT,
                             "a request of %d prompt + %d generated tokens exceeds the context of %d",
                             n_prompt, n_gen, s->n_ctx);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->vocab)
            return -gs_error_set(err, GS_ERR_INPUT, "prompt token %d (id %d) is outside the vocabulary 0..%d",
                                 i, prompt[i], s->vocab - 1);
    if (e->n_reqs == e->cap_reqs) {
        int cap = e->cap_reqs ? 2 * e->cap_reqs : 16;
        gs_request *r = realloc(e->reqs, (size_t)cap * sizeof *r);
        int *w = realloc(e->waiting, (size_t)cap * sizeof *w);
        if (r)
            e->reqs = r;
        if (w)
            e->waiting = w;
        if (!r || !w)
            return -gs_error_set(err, GS_ERR_RUNTIME, "out of host memory queueing a request");
        e->cap_reqs = cap;
    }
    gs_request *r = &e->reqs[e->n_reqs];
    memset(r, 0, sizeof *r);
    r->tokens = malloc(((size_t)n_prompt + (size_t)n_gen) * sizeof(int));
    if (!r->tokens)
        return -gs_error_set(err, GS_ERR_RUNTIME, "out of host memory queueing a request");
    memcpy(r->tokens, prompt, (size_t)n_prompt * sizeof(int));
    r->id = e->n_reqs;
    r->n_prompt = n_prompt;
    r->n_gen = n_gen;
    r->seq = -1;
    r->admitted_step = r->first_token_step = r->done_step = -1;
    r->submit_ns = gs_now_ns();
    /* One stream per request: sampling does not depend on how requests are batched. */
    gs_rng_seed(&r->rng, e->cfg.seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(r->id + 1));
    if (n_gen == 0) {
        r->state = GS_REQ_DONE;
        r->done_ns = r->submit_ns;
    } else {
        r->state = GS_REQ_WAITING;
        e->waiting[e->n_waiting++] = r->id;
    }
    e->n_reqs++;
    return r->id;
}

int gs_engine_busy(const gs_engine *e) { return e->n_running > 0 || e->n_waiting > 0; }

const gs_request *gs_engine_request(const gs_engine *e, int id)
{
    return id >= 0 && id < e->n_reqs ? &e->reqs[id] : NULL;
}

static int req_len(const gs_request *r) { return r->n_prompt + r->n_generated; }

/* Sends running[idx] back to the front of the queue; its KV is recomputed later. */
static void preempt(gs_engine *e, int idx)
{
    gs_request *r = &e->reqs[e->running[idx]];
    kv_cache_seq_close(&e->kv, r->seq);
    r->seq = -1;
    r->n_cached = 0;
    r->state = GS_REQ_WAITING;
    r->preemptions++;
    e->kv.preemptions++;
    e->last.preempted++;
    memmove(e->waiting + 1, e->waiting, (size_t)e->n_waiting * sizeof(int));
    e->waiting[0] = r->id;
    e->n_waiting++;
    memmove(e->running + idx, e->running + idx + 1, (size_t)(e->n_running - idx - 1) * sizeof(int));
    e->n_running--;
}

/* Appends take tokens of r (from its n_cached on) to the step's arrays. */
static void stage_tokens(gs_engine *e, gs_request *r, int take, int *n)
{
    for (int i = 0; i < take; i++) {
        int p = r->n_cached + i;
        e->h_tokens[*n] = r->tokens[p];
        e->h_pos[*n] = p;
        e->h_seq[*n] = r->seq;
        e->h_slot[*n] = kv_cache_slot(&e->kv, r->seq, p);
        (*n)++;
    }
}

int gs_engine_step(gs_engine *e, gs_error *err)
{
    uint64_t t0 = gs_now_ns();
    memset(&e->last, 0, sizeof e->last);
    e->last.index = e->steps;
    int budget = e->cfg.max_tokens_per_step;
    int takes[e->cfg.max_batch > 0 ? e->cfg.max_batch : 1];

    /* 1. Running requests first, in admission order; preempt from the back. */
    for (int i = 0; i < e->n_running; i++) {
        gs_request *r = &e->reqs[e->running[i]];
        int want = req_len(r) - r->n_cached;
        int take = want < budget ? want : budget;
        while (take > 0 && kv_cache_seq_grow(&e->kv, r->seq, take) != 0) {
            if (e->n_running - 1 == i) {
                if (i == 0)
                    return gs_error_set(err, GS_ERR_RUNTIME,
                                        "the KV cache (%d blocks of %d tokens) cannot hold one sequence of %d tokens",
                                        e->kv.n_blocks, e->kv.block_size, req_len(r));
                preempt(e, i); /* the newest is this one: it waits for room */
                take = 0;
                i--;
                break;
            }
            preempt(e, e->n_running - 1);
        }
        if (take > 0) {
            takes[i] = take;
            budget -= take;
        }
    }
    int n_kept = e->n_running;

    /* 2. Admit waiting requests while slots, budget and blocks allow. */
    while (e->n_waiting > 0 && e->n_running < e->cfg.max_batch && budget > 0) {
        gs_request *r = &e->reqs[e->waiting[0]];
        int want = req_len(r);
        int take = want < budget ? want : budget;
        if (kv_cache_blocks_needed(&e->kv, 0, take) > e->kv.n_free)
            break;
        int seq = kv_cache_seq_open(&e->kv);
        if (seq < 0)
            break;
        if (kv_cache_seq_grow(&e->kv, seq, take) != 0) {
            kv_cache_seq_close(&e->kv, seq);
            break;
        }
        r->seq = seq;
        r->n_cached = 0;
        r->state = GS_REQ_RUNNING;
        if (r->admitted_step < 0)
            r->admitted_step = e->steps;
        memmove(e->waiting, e->waiting + 1, (size_t)(e->n_waiting - 1) * sizeof(int));
        e->n_waiting--;
        takes[e->n_running] = take;
        e->running[e->n_running++] = r->id;
        budget -= take;
    }
    (void)n_kept;

    /* 3. Stage the batch: tokens, slots, and which rows need logits. */
    int n = 0, n_logits = 0;
    for (int i = 0; i < e->n_running; i++) {
        gs_request *r = &e->reqs[e->running[i]];
        int take = takes[i];
        gs_step_shape_add_seq(&e->last.batch, r->n_cached, take, e->fwd.window, e->fwd.n_sink);
        stage_tokens(e, r, take, &n);
        if (r->n_cached + take == req_len(r)) {
            e->h_logit_rows[n_logits] = n - 1;
            e->h_logit_req[n_logits++] = i;
        }
        if (take == 1 && r->n_generated > 0)
            e->last.n_decode_tokens++;
        else
            e->last.n_prefill_tokens += take;
    }
    e->last.batch.n_logits = n_logits;
    if (n == 0) {
        e->last.ns = gs_now_ns() - t0;
        return GS_OK;
    }
    /* Greedy sampling needs only each row's argmax: when nobody else reads
     * the logits, the backend picks it where they are and only the ids cross
     * back (the same gs_sample_argmax rules, so the same tokens). */
    int want_ids = gs_sampler_is_greedy(&e->cfg.sampler) && !e->cfg.keep_logits && gs_forward_picks_ids(&e->fwd);
    e->last.batch.n_ids = want_ids ? n_logits : 0;
    gs_step_batch b = {
        .n = n, .tokens = e->h_tokens, .pos = e->h_pos, .seq_row = e->h_seq, .slot = e->h_slot,
        .block_tables = e->kv.tables, .n_rows = e->kv.max_seqs,
        .table_stride = e->kv.max_blocks_per_seq,
        .n_logits = n_logits, .logit_rows = e->h_logit_rows,
        .ids_out = want_ids ? e->h_ids : NULL,
    };
    gs_range_begin(&e->ranges, GS_RANGE_STEP, "step", -1);
    int rc = gs_forward_step(&e->fwd, &b, e->h_logits, err);
    gs_range_end(&e->ranges, GS_RANGE_STEP, "step");
    if (rc)
        return rc;

    /* 4. Account the cached tokens, sample, retire finished requests. */
    for (int i = 0; i < e->n_running; i++)
        e->reqs[e->running[i]].n_cached += takes[i];
    uint64_t now = gs_now_ns();
    for (int j = 0; j < n_logits; j++) {
        gs_request *r = &e->reqs[e->running[e->h_logit_req[j]]];
        int tok = want_ids ? e->h_ids[j]
                           : gs_sample(&e->cfg.sampler, e->h_logits + (size_t)j * e->shape.vocab, e->shape.vocab,
                                       &r->rng, e->h_scratch);
        r->tokens[req_len(r)] = tok;
        r->n_generated++;
        if (r->n_generated == 1) {
            r->first_token_step = e->steps;
            r->first_token_ns = now;
        }
    }
    int kept = 0;
    for (int i = 0; i < e->n_running; i++) {
        gs_request *r = &e->reqs[e->running[i]];
        if (r->n_generated == r->n_gen) {
            r->state = GS_REQ_DONE;
            r->done_step = e->steps;
            r->done_ns = now;
            kv_cache_seq_close(&e->kv, r->seq);
            r->seq = -1;
        } else {
            e->running[kept++] = e->running[i];
        }
    }
    e->n_running = kept;
    e->last.n_tokens = n;
    e->last.n_seqs = n_logits;
    e->last.n_sampled = n_logits;
    e->last.ns = gs_now_ns() - t0;
    e->total_prefill_tokens += e->last.n_prefill_tokens;
    e->total_decode_tokens += e->last.n_decode_tokens;
    e->steps++;
    return GS_OK;
}

int gs_engine_run(gs_engine *e, gs_error *err)
{
    while (gs_engine_busy(e)) {
        int rc = gs_engine_step(e, err);
        if (rc)
            return rc;
    }
    return GS_OK;
}
