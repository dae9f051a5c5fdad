/* test_quality.c - the quality metrics on distributions with known answers,
 * then the baseline and a variant through real forward passes:
 *  - KL of identical rows is 0; KL of two hand-made distributions equals
 *    its closed form; top-1 on crafted rows; perplexity of a uniform
 *    distribution is the vocabulary size; logits of +-1e4 stay finite;
 *  - stories260K: the baseline measured against itself gives KL 0 and
 *    top-1 1 exactly; the sampled stream is the same twice; a sliding
 *    window (still fp32) gives KL > 0;
 *  - token files: good ones are read, bad ones fail with FILE:LINE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "quality.h"
#include "session.h"
#include "tap.h"

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1.0 + fabs(b)); }

static void test_metrics(void)
{
    /* Identical rows: 0 exactly, whatever the values. */
    float a[5] = {0.3f, -1.2f, 2.5f, 0.0f, 7.0f};
    tap_ok(gs_quality_kl(a, a, 5) == 0.0, "KL of identical distributions is 0 exactly");
    float shifted[5];
    for (int i = 0; i < 5; i++)
        shifted[i] = a[i] + 3.0f; /* softmax does not see a constant shift */
    tap_ok(close_to(gs_quality_kl(a, shifted, 5), 0.0, 1e-12), "KL ignores a constant shift of the logits");

    /* p = (1/2, 1/4, 1/4), q = (1/4, 1/2, 1/4): logits are log-probabilities.
     * KL(p||q) = 1/2 ln 2 + 1/4 ln(1/2) + 0 = ln(2)/4. */
    float lp[3] = {logf(0.5f), logf(0.25f), logf(0.25f)};
    float lq[3] = {logf(0.25f), logf(0.5f), logf(0.25f)};
    double kl = gs_quality_kl(lp, lq, 3);
    tap_ok(close_to(kl, log(2.0) / 4.0, 1e-6), "KL of (1/2,1/4,1/4) || (1/4,1/2,1/4) = ln2/4 (got %.9f)", kl);
    /* p = (0.9, 0.1), q = (0.5, 0.5): 0.9 ln 1.8 + 0.1 ln 0.2. */
    float lp2[2] = {logf(0.9f), logf(0.1f)}, lq2[2] = {0.0f, 0.0f};
    double want2 = 0.9 * log(1.8) + 0.1 * log(0.2);
    tap_ok(close_to(gs_quality_kl(lp2, lq2, 2), want2, 1e-6), "KL of (0.9,0.1) || uniform = %.6f", want2);
    tap_ok(gs_quality_kl(lq, lp, 3) > 0 && gs_quality_kl(lp2, lq2, 2) > 0, "KL is positive for different rows");

    /* Top-1 on crafted rows; ties go to the lowest id on both sides. */
    float t1[4] = {0, 5, 1, 2}, t2[4] = {9, 10, -3, 0}, t3[4] = {0, 1, 7, 2};
    float tie_a[4] = {3, 3, 1, 0}, tie_b[4] = {2, 2, 0, 0};
    tap_ok(gs_quality_top1(t1, t2, 4) == 1 && gs_quality_top1(t1, t3, 4) == 0 && gs_quality_top1(tie_a, tie_b, 4) == 1,
           "top-1 agreement on crafted rows (agree, disagree, ties)");

    /* A uniform distribution over V ids has perplexity V on any stream. */
    enum { V = 100, N = 7 };
    float *uni = calloc((size_t)N * V, sizeof(float));
    int targets[N] = {0, 5, 99, 42, 42, 17, 3};
    gs_quality q;
    gs_quality_compare(uni, uni, targets, N, V, &q);
    tap_ok(close_to(q.perplexity, V, 1e-12) && close_to(q.base_perplexity, V, 1e-12) && q.kl == 0 && q.top1 == 1 &&
               q.n_tokens == N,
           "uniform over %d ids: perplexity %d, KL 0, top-1 1 (got %.9f)", V, V, q.perplexity);
    /* One position certain of the target (logit 50 above the rest): nll ~ 0. */
    uni[3] = 50.0f;
    tap_ok(gs_quality_nll(uni, V, 3) < 1e-18 && close_to(gs_quality_nll(uni, V, 0), 50.0, 1e-9),
           "NLL of a confident row: ~0 on its argmax, ~50 off it");
    free(uni);

    /* +-1e4: exp would overflow without the maximum taken out. */
    float big_a[4] = {1e4f, -1e4f, 0.0f, 1e4f - 1.0f}, big_b[4] = {1e4f - 1.0f, 1e4f, -1e4f, 0.0f};
    double kb = gs_quality_kl(big_a, big_b, 4);
    double lse = gs_quality_logsumexp(big_a, 4);
    double want_lse = 1e4 + log(1.0 + exp(-1.0));
    /* p ~ (1/(1+e^-1), 0, 0, e^-1/(1+e^-1)); q ~ (e^-1, 1, 0, 0)/(1+e^-1). */
    double z = 1.0 + exp(-1.0);
    double p0 = 1.0 / z, p3 = exp(-1.0) / z;
    /* log q0 = 9999 - 1e4 - ln z; log q3 = 0 - 1e4 - ln z. */
    double want_kb = p0 * (log(p0) - (-1.0 - log(z))) + p3 * (log(p3) - (-1e4 - log(z)));
    tap_ok(isfinite(kb) && isfinite(lse) && close_to(lse, want_lse, 1e-12) && close_to(kb, want_kb, 1e-6),
           "logits of +-1e4: log-sum-exp %.6f and KL %.6f finite and right (want %.6f)", lse, kb, want_kb);
    float inf_row[3] = {1e4f, 1e4f, 1e4f};
    gs_quality_compare(inf_row, big_a, targets, 1, 3, &q);
    tap_ok(isfinite(q.kl) && isfinite(q.perplexity) && close_to(q.base_perplexity, 3.0, 1e-12),
           "equal logits of 1e4: baseline perplexity 3, all figures finite");
}

static const char *tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static int write_file(char *path, size_t cap, const char *name, const char *text)
{
    snprintf(path, cap, "%s/gs_quality_%d_%s", tmpdir(), (int)getpid(), name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static void test_token_files(void)
{
    char path[512];
    gs_error err = {0};
    int *ids = NULL, n = 0;
    write_file(path, sizeof path, "good.txt", "# a comment line\n1 2 3\n\t4   5 # trailing comment 99999\n6\n");
    int rc = gs_quality_read_tokens(path, 512, &ids, &n, &err);
    tap_ok(rc == GS_OK && n == 6 && ids[0] == 1 && ids[5] == 6, "token file: ids across lines, comments skipped (%s)",
           rc ? err.msg : "ok");
    free(ids);
    unlink(path);

    struct {
        const char *name, *text, *want;
    } bad[] = {
        {"word.txt", "1 2\n3 x4 5\n", ":2: expected a token id"},
        {"neg.txt", "1\n\n-3\n", ":3: expected a token id"},
        {"vocab.txt", "1 2 512\n", ":1: token id 512 is outside the vocabulary 0..511"},
        {"huge.txt", "1 99999999999999999999999\n", ":1: expected a token id"},
        {"short.txt", "# nothing but\n7\n", "needs at least 2 token ids"},
        {"empty.txt", "", "needs at least 2 token ids"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, sizeof path, bad[i].name, bad[i].text);
        memset(&err, 0, sizeof err);
        rc = gs_quality_read_tokens(path, 512, &ids, &n, &err);
        tap_ok(rc == GS_ERR_INPUT && strstr(err.msg, path) && strstr(err.msg, bad[i].want) && !ids,
               "bad token file %s: %s", bad[i].name, err.msg);
        unlink(path);
    }
    memset(&err, 0, sizeof err);
    rc = gs_quality_read_tokens("/nonexistent/tokens.txt", 512, &ids, &n, &err);
    tap_ok(rc == GS_ERR_INPUT && strstr(err.msg, "/nonexistent/tokens.txt"), "missing token file: %s", err.msg);
}

static void stories_config(gs_config *c, const char *path)
{
    gs_config_defaults(c);
    snprintf(c->model, sizeof c->model, "%s", path);
    snprintf(c->backend, sizeof c->backend, "cpu");
    c->threads = 2;
}

static void test_stories(gs_backend *be)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.bin", tap_models_dir());
    if (access(path, R_OK) != 0) {
        tap_skip("stories260K.bin not found (GS_MODELS_DIR)");
        return;
    }
    gs_config cfg;
    stories_config(&cfg, path);
    cfg.workload.batch = 4; /* teacher-forced steps of 4 tokens */
    gs_error err = {0};
    gs_quality_baseline *b1 = NULL, *b2 = NULL;
    int rc = gs_quality_baseline_create(&b1, &cfg, be, 0, NULL, &err);
    tap_ok(rc == GS_OK, "stories260K baseline: %s", rc ? err.msg : "made");
    if (rc)
        return;
    int n1 = 0, n2 = 0;
    const int *s1 = gs_quality_baseline_stream(b1, &n1);
    tap_ok(gs_quality_baseline_tokens(b1) == GS_QUALITY_TOKENS_SMALL_VOCAB && n1 == GS_QUALITY_TOKENS_SMALL_VOCAB + 1 &&
               s1[0] == 1,
           "default stream: %d positions from BOS (got %d)", GS_QUALITY_TOKENS_SMALL_VOCAB,
           gs_quality_baseline_tokens(b1));
    rc = gs_quality_baseline_create(&b2, &cfg, be, 0, NULL, &err);
    const int *s2 = rc == GS_OK ? gs_quality_baseline_stream(b2, &n2) : NULL;
    tap_ok(rc == GS_OK && n1 == n2 && memcmp(s1, s2, (size_t)n1 * sizeof(int)) == 0,
           "the same seed samples the same stream twice");
    int distinct = 0;
    for (int i = 1; i < n1 && !distinct; i++)
        distinct = s1[i] != s1[1];
    tap_ok(distinct, "the sampled stream is not one repeated id");
    gs_quality_baseline_free(b2);

    /* The baseline's own configuration, measured: bit-identical logits. */
    gs_session v;
    rc = gs_session_open_on(&v, &cfg, NULL, be, &err);
    gs_quality q;
    if (rc == GS_OK)
        rc = gs_quality_measure(b1, &v, &q, &err);
    tap_ok(rc == GS_OK && q.kl == 0.0 && q.top1 == 1.0 && q.perplexity == q.base_perplexity &&
               q.n_tokens == GS_QUALITY_TOKENS_SMALL_VOCAB && !q.illustrative,
           "baseline against itself: KL %.3g, top-1 %.3f, perplexity %.4f = %.4f, not illustrative (%s)", q.kl, q.top1,
           q.perplexity, q.base_perplexity, rc ? err.msg : "ok");
    tap_ok(rc == GS_OK && q.base_perplexity > 1.0 && q.base_perplexity < 512.0,
           "stories260K perplexity on its own samples lies between 1 and the vocabulary: %.3f", q.base_perplexity);
    /* Measuring leaves the engine idle and its cache as it was: again, the same. */
    gs_quality q2;
    if (rc == GS_OK)
        rc = gs_quality_measure(b1, &v, &q2, &err);
    tap_ok(rc == GS_OK && q2.kl == 0.0 && q2.perplexity == q.perplexity && v.engine.kv.n_free == v.engine.kv.n_blocks,
           "a second measurement gives the same figures and frees its KV blocks");
    if (v.engine_ready)
        gs_session_close(&v);

    /* A sliding window (fp32 everything else): the distributions move. */
    gs_config wcfg = cfg;
    wcfg.opt.window = 32;
    wcfg.opt.sinks = 4;
    rc = gs_session_open_on(&v, &wcfg, NULL, be, &err);
    if (rc == GS_OK) {
        rc = gs_quality_measure(b1, &v, &q, &err);
        gs_session_close(&v);
    }
    tap_ok(rc == GS_OK && q.kl > 0 && q.top1 <= 1.0 && q.top1 > 0.2 && isfinite(q.perplexity),
           "window 32 + 4 sinks: KL %.5f > 0, top-1 %.3f, perplexity %.3f vs %.3f (%s)", q.kl, q.top1, q.perplexity,
           q.base_perplexity, rc ? err.msg : "ok");

    /* A variant taking one token a step instead of four: the same numbers up to rounding. */
    gs_config ocfg = cfg;
    ocfg.workload.batch = 1;
    rc = gs_session_open_on(&v, &ocfg, NULL, be, &err);
    if (rc == GS_OK) {
        rc = gs_quality_measure(b1, &v, &q, &err);
        gs_session_close(&v);
    }
    tap_ok(rc == GS_OK && q.kl < 1e-9 && q.top1 > 0.99, "fp32 variant in one-token steps: KL %.3g, top-1 %.3f",
           q.kl, q.top1);

    /* A token file: its ids are the stream; more than n_tokens are cut. */
    char tf[512];
    char text[4096] = "";
    for (int i = 0; i < 40; i++) {
        char w[16];
        snprintf(w, sizeof w, "%d%s", s1[i], i % 10 == 9 ? "\n" : " ");
        strcat(text, w);
    }
    write_file(tf, sizeof tf, "stream.txt", text);
    rc = gs_quality_baseline_create(&b2, &cfg, be, 20, tf, &err);
    const int *fs = rc == GS_OK ? gs_quality_baseline_stream(b2, &n2) : NULL;
    tap_ok(rc == GS_OK && gs_quality_baseline_tokens(b2) == 20 && n2 == 21 && memcmp(fs, s1, 21 * sizeof(int)) == 0,
           "token file: its first 21 ids are the stream of 20 positions (%s)", rc ? err.msg : "ok");
    if (rc == GS_OK) {
        rc = gs_session_open_on(&v, &cfg, NULL, be, &err);
        if (rc == GS_OK) {
            rc = gs_quality_measure(b2, &v, &q, &err);
            gs_session_close(&v);
        }
        tap_ok(rc == GS_OK && q.kl == 0.0 && q.n_tokens == 20, "token-file baseline against itself: KL 0 on 20 positions");
    }
    gs_quality_baseline_free(b2);
    unlink(tf);
    write_file(tf, sizeof tf, "oov.txt", "1 2 3\n4 600\n");
    memset(&err, 0, sizeof err);
    rc = gs_quality_baseline_create(&b2, &cfg, be, 0, tf, &err);
    tap_ok(rc == GS_ERR_INPUT && strstr(err.msg, ":2: token id 600 is outside the vocabulary 0..511"),
           "a token file with an id beyond stories260K's vocabulary: %s", err.msg);
    unlink(tf);
    memset(&err, 0, sizeof err);
    rc = gs_quality_baseline_create(&b2, &cfg, be, 100000, NULL, &err);
    tap_ok(rc == GS_ERR_INPUT && strstr(err.msg, "exceeds the context"), "a stream longer than the context: %s", err.msg);
    gs_quality_baseline_free(b1);
}

/* A preset: synthetic weights, so the figures are illustrative; the
 * stream is capped by the preset's context of 128. */
static void test_preset(gs_backend *be)
{
    gs_config cfg;
    gs_config_defaults(&cfg);
    snprintf(cfg.model, sizeof cfg.model, "gpt2-tiny");
    snprintf(cfg.backend, sizeof cfg.backend, "cpu");
    cfg.workload.batch = 2;
    cfg.opt.window = 16;
    gs_error err = {0};
    gs_quality_baseline *b = NULL;
    int rc = gs_quality_baseline_create(&b, &cfg, be, 0, NULL, &err);
    gs_session v;
    gs_quality q;
    memset(&q, 0, sizeof q);
    if (rc == GS_OK && (rc = gs_session_open_on(&v, &cfg, NULL, be, &err)) == GS_OK) {
        rc = gs_quality_measure(b, &v, &q, &err);
        gs_session_close(&v);
    }
    tap_ok(rc == GS_OK && q.illustrative && q.n_tokens == 128 && q.kl > 0 && isfinite(q.perplexity),
           "gpt2-tiny, window 16: illustrative, %d positions (the context), KL %.3g, top-1 %.3f (%s)", q.n_tokens,
           q.kl, q.top1, rc ? err.msg : "ok");
    gs_quality_baseline_free(b);
}

int main(void)
{
    test_metrics();
    test_token_files();
    gs_backend *be = NULL;
    gs_error err = {0};
    if (gs_backend_create(&be, "cpu", 2, &err) != GS_OK) {
        tap_ok(0, "CPU backend: %s", err.msg);
        return tap_done();
    }
    test_stories(be);
    test_preset(be);
    gs_backend_destroy(be);
    return tap_done();
}
