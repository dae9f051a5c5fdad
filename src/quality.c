/* quality.c - KL divergence, top-1 agreement and perplexity of a variant
 * against the fp32 baseline, on one teacher-forced token stream.
 *
 * The stream runs through a session's own forward pass (gs_forward_step) in
 * prefill-shaped chunks with logits for every row, on one KV-cache sequence
 * taken from the session's cache, so whatever the variant changes in that
 * pass (weight and KV precision, window, sinks, fusion) is what gets
 * measured. The baseline keeps its raw logits (float, as the pass produced
 * them) and each row's log-sum-exp in double: log-probabilities are then
 * rebuilt exactly, and an unchanged variant gives KL 0 to the last bit. */
#include "quality.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "presets.h"
#include "sampler.h"

struct gs_quality_baseline {
    int vocab, n_ctx;
    int n_tokens;       /* positions scored */
    int *stream;        /* [n_tokens + 1] */
    float *logits;      /* [n_tokens][vocab] the baseline's, as its forward pass gave them */
    double *lse;        /* [n_tokens] log-sum-exp of each row */
    int chunk;          /* tokens per teacher-forced step */
    int illustrative;
};

/* ---- the metrics -------------------------------------------------------- */

double gs_quality_logsumexp(const float *logits, int vocab)
{
    double mx = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    if (!isfinite(mx))
        return mx;
    double s = 0;
    for (int i = 0; i < vocab; i++)
        s += exp((double)logits[i] - mx);
    return mx + log(s);
}

/* sum_i p_i (log p_i - log q_i) with log p = base - lse_b, log q = var - lse_v.
 * Terms with p_i = 0 contribute nothing (and must not: 0 * -inf). A sum that
 * rounding leaves a hair below 0 is 0: KL is never negative. */
static double kl_row(const float *base, double lse_b, const float *var, double lse_v, int vocab)
{
    double kl = 0;
    for (int i = 0; i < vocab; i++) {
        double lp = (double)base[i] - lse_b;
        double p = exp(lp);
        if (p == 0)
            continue;
        kl += p * (lp - ((double)var[i] - lse_v));
    }
    return kl > 0 ? kl : 0;
}

double gs_quality_kl(const float *base_logits, const float *var_logits, int vocab)
{
    return kl_row(base_logits, gs_quality_logsumexp(base_logits, vocab), var_logits,
                  gs_quality_logsumexp(var_logits, vocab), vocab);
}

int gs_quality_top1(const float *base_logits, const float *var_logits, int vocab)
{
    return gs_sample_argmax(base_logits, vocab) == gs_sample_argmax(var_logits, vocab);
}

double gs_quality_nll(const float *logits, int vocab, int target)
{
    return gs_quality_logsumexp(logits, vocab) - (double)logits[target];
}

/* Running sums over positions, turned into a gs_quality at the end. */
typedef struct sums {
    double kl, nll_base, nll_var;
    long agree, n;
} sums;

static void sums_add(sums *s, const float *base, double lse_b, const float *var, int vocab, int target)
{
    double lse_v = gs_quality_logsumexp(var, vocab);
    s->kl += kl_row(base, lse_b, var, lse_v, vocab);
    s->agree += gs_sample_argmax(base, vocab) == gs_sample_argmax(var, vocab);
    s->nll_base += lse_b - (double)base[target];
    s->nll_var += lse_v - (double)var[target];
    s->n++;
}

static void sums_finish(const sums *s, gs_quality *q)
{
    memset(q, 0, sizeof *q);
    q->n_tokens = (int)s->n;
    if (s->n == 0)
        return;
    double n = (double)s->n;
    q->kl = s->kl / n;
    q->top1 = (double)s->agree / n;
    q->perplexity = exp(s->nll_var / n);
    q->base_perplexity = exp(s->nll_base / n);
}

void gs_quality_compare(const float *base_logits, const float *var_logits, const int *targets, int n, int vocab,
                        gs_quality *out)
{
    sums s = {0};
    for (int i = 0; i < n; i++) {
        const float *b = base_logits + (size_t)i * vocab;
        sums_add(&s, b, gs_quality_logsumexp(b, vocab), var_logits + (size_t)i * vocab, vocab, targets[i]);
    }
    sums_finish(&s, out);
}

/* ---- the token file ----------------------------------------------------- */

int gs_quality_read_tokens(const char *path, int vocab, int **ids, int *n_ids, gs_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    FILE *fp = fopen(path, "r");
    if (!fp)
        return gs_error_set(err, GS_ERR_INPUT, "%s: %s", path, strerror(errno));
    int cap = 256, n = 0, line = 1, rc = GS_OK;
    int *v = malloc((size_t)cap * sizeof *v);
    if (!v) {
        fclose(fp);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory reading %s", path);
    }
    int c = fgetc(fp);
    while (c != EOF && rc == GS_OK) {
        if (c == '\n') {
            line++;
            c = fgetc(fp);
        } else if (isspace(c)) {
            c = fgetc(fp);
        } else if (c == '#') {
            while (c != EOF && c != '\n')
                c = fgetc(fp);
        } else {
            /* One word: up to the next space or comment. */
            char word[32];
            int len = 0, too_long = 0;
            while (c != EOF && !isspace(c) && c != '#') {
                if (len < (int)sizeof word - 1)
                    word[len++] = (char)c;
                else
                    too_long = 1;
                c = fgetc(fp);
            }
            word[len] = '\0';
            char *end;
            errno = 0;
            long id = strtol(word, &end, 10);
            if (too_long || errno || *end || !isdigit((unsigned char)word[0]))
                rc = gs_error_set(err, GS_ERR_INPUT, "%s:%d: expected a token id (a non-negative integer), got '%s%s'",
                                  path, line, word, too_long ? "..." : "");
            else if (id >= vocab)
                rc = gs_error_set(err, GS_ERR_INPUT, "%s:%d: token id %ld is outside the vocabulary 0..%d", path,
                                  line, id, vocab - 1);
            else {
                if (n == cap) {
                    int *nv = cap < (1 << 26) ? realloc(v, (size_t)cap * 2 * sizeof *v) : NULL;
                    if (!nv) {
                        rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory reading %s", path);
                        break;
                    }
                    v = nv;
                    cap *= 2;
                }
                v[n++] = (int)id;
            }
        }
    }
    if (rc == GS_OK && ferror(fp))
        rc = gs_error_set(err, GS_ERR_INPUT, "%s: read error", path);
    fclose(fp);
    if (rc == GS_OK && n < 2)
        rc = gs_error_set(err, GS_ERR_INPUT, "%s:%d: needs at least 2 token ids (one position to score), has %d", path,
                          line, n);
    if (rc) {
        free(v);
        return rc;
    }
    *ids = v;
    *n_ids = n;
    return GS_OK;
}

/* ---- teacher forcing through a session's forward pass ------------------- */

/* One KV-cache sequence of the session's engine, held for a quality pass. */
typedef struct tf_pass {
    gs_engine *e;
    int seq, chunk;
    gs_ranges *saved_ranges;
    gs_ranges quiet;    /* no sinks: the pass is not part of what the profiler records */
    int *tokens, *pos, *seq_row, *slot, *rows;
} tf_pass;

static void tf_close(tf_pass *t)
{
    if (t->e) {
        t->e->fwd.ranges = t->saved_ranges;
        if (t->seq >= 0)
            kv_cache_seq_close(&t->e->kv, t->seq);
    }
    free(t->tokens);
    free(t->pos);
    free(t->seq_row);
    free(t->slot);
    free(t->rows);
    memset(t, 0, sizeof *t);
    t->seq = -1;
}

/* Opens a sequence of n_pos positions; chunk: the most tokens a step takes. */
static int tf_open(tf_pass *t, gs_engine *e, int n_pos, int chunk, gs_error *err)
{
    memset(t, 0, sizeof *t);
    t->seq = -1;
    if (gs_engine_busy(e))
        return gs_error_set(err, GS_ERR_RUNTIME, "quality: the engine still has requests; measure when it is idle");
    if (chunk > e->fwd.max_rows)
        chunk = e->fwd.max_rows;
    if (chunk > e->fwd.max_tokens)
        chunk = e->fwd.max_tokens;
    if (chunk < 1)
        chunk = 1;
    t->chunk = chunk;
    t->seq = kv_cache_seq_open(&e->kv);
    if (t->seq < 0)
        return gs_error_set(err, GS_ERR_RUNTIME, "quality: no free KV-cache sequence slot");
    t->e = e;
    t->saved_ranges = e->fwd.ranges;
    if (kv_cache_seq_grow(&e->kv, t->seq, n_pos) != 0) {
        int blocks = e->kv.n_blocks, bs = e->kv.block_size;
        tf_close(t);
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "quality: the KV cache (%d blocks of %d tokens) cannot hold the %d-token stream", blocks, bs,
                            n_pos);
    }
    gs_ranges_init(&t->quiet);
    e->fwd.ranges = &t->quiet;
    size_t sz = (size_t)chunk * sizeof(int);
    t->tokens = malloc(sz);
    t->pos = malloc(sz);
    t->seq_row = malloc(sz);
    t->slot = malloc(sz);
    t->rows = malloc(sz);
    if (!t->tokens || !t->pos || !t->seq_row || !t->slot || !t->rows) {
        tf_close(t);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the quality pass");
    }
    return GS_OK;
}

/* Positions start .. start+count-1 of stream (count <= chunk) in one step;
 * logits receives [count][vocab]. */
static int tf_step(tf_pass *t, const int *stream, int start, int count, float *logits, gs_error *err)
{
    gs_engine *e = t->e;
    for (int i = 0; i < count; i++) {
        t->tokens[i] = stream[start + i];
        t->pos[i] = start + i;
        t->seq_row[i] = t->seq;
        t->slot[i] = kv_cache_slot(&e->kv, t->seq, start + i);
        t->rows[i] = i;
    }
    gs_step_batch b = {
        .n = count, .tokens = t->tokens, .pos = t->pos, .seq_row = t->seq_row, .slot = t->slot,
        .block_tables = e->kv.tables, .n_rows = e->kv.max_seqs, .table_stride = e->kv.max_blocks_per_seq,
        .n_logits = count, .logit_rows = t->rows,
    };
    return gs_forward_step(&e->fwd, &b, logits, err);
}

/* ---- the baseline ------------------------------------------------------- */

/* The id a sampled stream starts from: GPT-2's <|endoftext|> for a GPT-2
 * vocabulary, else llama2.c's BOS (1), as `gptscope generate` uses. */
static int stream_bos(const gs_model_shape *s)
{
    if (s->arch == GS_ARCH_GPT2 && s->vocab == 50257)
        return 50256;
    return s->vocab > 1 ? 1 : 0;
}

static void baseline_config(gs_config *bc, const gs_config *cfg, int chunk)
{
    *bc = *cfg;
    gs_optimizations *o = &bc->opt;
    snprintf(o->weights, sizeof o->weights, "fp32");
    snprintf(o->kv, sizeof o->kv, "fp32");
    o->sparsity = (gs_sparsity){GS_SPARSITY_NONE, 0.0};
    o->kv_heads = 0;
    snprintf(o->attention, sizeof o->attention, "naive");
    o->window = 0;
    o->sinks = 0;
    o->cuda_graphs = 0;
    o->fusion = 0;
    /* A preset's own KV heads; a checkpoint's n_kv_head hint describes the file. */
    if (gs_preset_find(cfg->model))
        bc->shape.n_kv_head = -1;
    /* One sequence in flight, steps of chunk tokens with logits on every row
     * (the engine keeps GS_ENGINE_MIN_LOGIT_ROWS of them whatever the batch). */
    (void)chunk;
    bc->workload.batch = 1;
    bc->workload.prompt_len = 1;
    bc->workload.requests = 0;
    bc->workload.arrival_rate = 0;
    bc->kv_cache.blocks = 0; /* set once the context is known (one sequence's worth) */
}

void gs_quality_baseline_free(gs_quality_baseline *b)
{
    if (!b)
        return;
    free(b->stream);
    free(b->logits);
    free(b->lse);
    free(b);
}

const int *gs_quality_baseline_stream(const gs_quality_baseline *b, int *n_ids)
{
    if (n_ids)
        *n_ids = b->n_tokens + 1;
    return b->stream;
}

int gs_quality_baseline_tokens(const gs_quality_baseline *b) { return b->n_tokens; }

/* Samples stream[1..n] from the baseline at temperature 1, one decode step
 * per id; logits of each step land in b->logits (they are the teacher-forced
 * logits when steps of one token are the chunk size). */
static int sample_stream(gs_quality_baseline *b, tf_pass *t, gs_error *err)
{
    gs_sampler smp = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f};
    gs_rng rng;
    gs_rng_seed(&rng, GS_QUALITY_SEED);
    float *scratch = malloc(2 * (size_t)b->vocab * sizeof(float));
    if (!scratch)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory sampling the quality stream");
    int rc = GS_OK;
    for (int i = 0; i < b->n_tokens && rc == GS_OK; i++) {
        float *row = b->logits + (size_t)i * b->vocab;
        rc = tf_step(t, b->stream, i, 1, row, err);
        if (rc == GS_OK)
            b->stream[i + 1] = gs_sample(&smp, row, b->vocab, &rng, scratch);
    }
    free(scratch);
    return rc;
}

/* Positions the stream will have: n_tokens or the default length, the
 * file's when there is one, at most the context. */
static int stream_positions(const gs_model_shape *sh, int n_tokens, int n_file)
{
    int n = n_tokens > 0 ? n_tokens
                         : sh->vocab > GS_QUALITY_BIG_VOCAB ? GS_QUALITY_TOKENS_BIG_VOCAB : GS_QUALITY_TOKENS_SMALL_VOCAB;
    if (n_file > 0)
        n = n_tokens > 0 && n_tokens < n_file - 1 ? n_tokens : n_file - 1;
    return n < sh->n_ctx ? n : sh->n_ctx;
}

int gs_quality_baseline_create(gs_quality_baseline **out, const gs_config *cfg, gs_backend *be, int n_tokens,
                               const char *token_file, gs_error *err)
{
    *out = NULL;
    int chunk = GS_QUALITY_CHUNK; /* every engine has this many logit rows (engine.h) */
    gs_config bc;
    baseline_config(&bc, cfg, chunk);
    /* The file's syntax first, before any weights load; its ids are checked
     * against the vocabulary once the model is known. */
    int *ids = NULL, n_file = 0;
    int rc = token_file ? gs_quality_read_tokens(token_file, 1 << 30, &ids, &n_file, err) : GS_OK;
    if (rc)
        return rc;
    free(ids);
    ids = NULL;
    /* The KV cache holds one sequence of the stream: its length bounded
     * before the model loads (the context is known then only for presets). */
    long bound = n_tokens > 0 ? n_tokens : GS_QUALITY_TOKENS_SMALL_VOCAB;
    if (token_file)
        bound = n_tokens > 0 && n_tokens < n_file - 1 ? n_tokens : n_file - 1;
    const gs_preset *preset = gs_preset_find(cfg->model);
    if (preset) {
        int ctx = cfg->shape.n_ctx > 0 ? cfg->shape.n_ctx : preset->shape.n_ctx;
        if (bound > ctx)
            bound = ctx;
    }
    int bs = bc.kv_cache.block_size > 0 ? bc.kv_cache.block_size : 16;
    bc.kv_cache.blocks = (int)((bound + bs - 1) / bs);

    gs_session s;
    rc = gs_session_open_on(&s, &bc, NULL, be, err);
    if (rc)
        return rc;
    const gs_model_shape *sh = &s.model.shape;
    if (token_file)
        rc = gs_quality_read_tokens(token_file, sh->vocab, &ids, &n_file, err);
    if (rc == GS_OK && n_tokens > sh->n_ctx)
        rc = gs_error_set(err, GS_ERR_INPUT, "quality: a stream of %d tokens exceeds the context of %d", n_tokens,
                          sh->n_ctx);
    if (rc) {
        free(ids);
        gs_session_close(&s);
        return rc;
    }
    int n_pos = stream_positions(sh, n_tokens, n_file);
    gs_quality_baseline *b = calloc(1, sizeof *b);
    if (b) {
        b->vocab = sh->vocab;
        b->n_ctx = sh->n_ctx;
        b->n_tokens = n_pos;
        b->chunk = chunk;
        b->illustrative = preset != NULL;
        b->stream = malloc(((size_t)n_pos + 1) * sizeof(int));
        b->logits = malloc((size_t)n_pos * (size_t)sh->vocab * sizeof(float));
        b->lse = malloc((size_t)n_pos * sizeof(double));
    }
    if (!b || !b->stream || !b->logits || !b->lse) {
        rc = gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the quality baseline (%zu bytes of logits)",
                          (size_t)n_pos * (size_t)sh->vocab * sizeof(float));
        free(ids);
        gs_quality_baseline_free(b);
        gs_session_close(&s);
        return rc;
    }
    if (ids)
        memcpy(b->stream, ids, ((size_t)n_pos + 1) * sizeof(int));
    else
        b->stream[0] = stream_bos(sh);
    free(ids);

    tf_pass t;
    rc = tf_open(&t, &s.engine, n_pos, chunk, err);
    if (rc == GS_OK && !token_file)
        rc = sample_stream(b, &t, err);
    /* Teacher-forced in the chunks a variant will use (a sampled stream with
     * one-token chunks already has them: its sampling steps were those). */
    if (rc == GS_OK && (token_file || t.chunk > 1)) {
        for (int i = 0; i < n_pos && rc == GS_OK; i += t.chunk) {
            int cnt = n_pos - i < t.chunk ? n_pos - i : t.chunk;
            rc = tf_step(&t, b->stream, i, cnt, b->logits + (size_t)i * b->vocab, err);
        }
    }
    tf_close(&t);
    gs_session_close(&s);
    if (rc) {
        gs_quality_baseline_free(b);
        return rc;
    }
    for (int i = 0; i < n_pos; i++)
        b->lse[i] = gs_quality_logsumexp(b->logits + (size_t)i * b->vocab, b->vocab);
    *out = b;
    return GS_OK;
}

/* ---- the variant -------------------------------------------------------- */

int gs_quality_measure(const gs_quality_baseline *b, gs_session *variant, gs_quality *out, gs_error *err)
{
    memset(out, 0, sizeof *out);
    const gs_model_shape *sh = &variant->model.shape;
    if (sh->vocab != b->vocab)
        return gs_error_set(err, GS_ERR_INPUT, "quality: the variant's vocabulary (%d) is not the baseline's (%d)",
                            sh->vocab, b->vocab);
    if (sh->n_ctx < b->n_tokens)
        return gs_error_set(err, GS_ERR_INPUT, "quality: the %d-token stream exceeds the variant's context of %d",
                            b->n_tokens, sh->n_ctx);
    tf_pass t;
    int rc = tf_open(&t, &variant->engine, b->n_tokens, b->chunk, err);
    if (rc)
        return rc;
    float *logits = malloc((size_t)t.chunk * (size_t)b->vocab * sizeof(float));
    if (!logits) {
        tf_close(&t);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the quality pass");
    }
    sums s = {0};
    for (int i = 0; i < b->n_tokens && rc == GS_OK; i += t.chunk) {
        int cnt = b->n_tokens - i < t.chunk ? b->n_tokens - i : t.chunk;
        rc = tf_step(&t, b->stream, i, cnt, logits, err);
        for (int j = 0; j < cnt && rc == GS_OK; j++)
            sums_add(&s, b->logits + (size_t)(i + j) * b->vocab, b->lse[i + j], logits + (size_t)j * b->vocab,
                     b->vocab, b->stream[i + j + 1]);
    }
    free(logits);
    tf_close(&t);
    if (rc)
        return rc;
    sums_finish(&s, out);
    out->illustrative = b->illustrative;
    return GS_OK;
}
