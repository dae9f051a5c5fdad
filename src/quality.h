/* quality.h - what an optimization costs in output quality.
 *
 * A variant (fp16 weights, a sliding window, a smaller KV precision, ...) is
 * measured against the fp32 baseline of the same model on the same token
 * stream, both teacher-forced through their own forward pass: at every
 * position of the stream each gives a next-token distribution, and we report
 *   kl          mean KL(p_baseline || p_variant), nats
 *   top1        fraction of positions where the two argmaxes agree
 *   perplexity  exp(mean negative log-likelihood of the stream's next token)
 * for the variant, and the baseline's perplexity beside it.
 *
 * The stream: the ids of a token file when one is given, else n_tokens ids
 * sampled from the baseline at temperature 1 with a fixed seed, from BOS (so
 * the same model always gives the same stream). Models with synthetic
 * weights (presets) produce figures that illustrate the method only; they
 * are marked illustrative. */
#ifndef GS_QUALITY_H
#define GS_QUALITY_H

#include "backend.h"
#include "config.h"
#include "session.h"
#include "status.h"

/* The sampled stream's seed: fixed, so every run of a model sees one stream. */
#define GS_QUALITY_SEED 0x9a11e7ULL
/* Default stream lengths (positions scored): big vocabularies cost 4 bytes x
 * vocab per position kept, so they get fewer. Both are capped by the context. */
#define GS_QUALITY_TOKENS_SMALL_VOCAB 256
#define GS_QUALITY_TOKENS_BIG_VOCAB 128
#define GS_QUALITY_BIG_VOCAB 4096
/* Most tokens per teacher-forced step (every row of a step needs logits). */
#define GS_QUALITY_CHUNK 32

typedef struct gs_quality {
    double kl;              /* mean KL(baseline || variant) over the stream's positions, nats */
    double top1;            /* fraction of positions where the argmaxes agree, 0..1 */
    double perplexity;      /* variant's perplexity on the stream */
    double base_perplexity; /* the baseline's */
    int n_tokens;           /* positions scored */
    int illustrative;       /* 1: synthetic weights, the figures illustrate the method only */
} gs_quality;

/* The stream and the baseline's logits at each of its positions. */
typedef struct gs_quality_baseline gs_quality_baseline;

/* Opens the fp32 baseline of cfg's model on be (every optimization reset:
 * weights fp32, kv fp32, no sparsity, the preset's own KV heads, no window or
 * sinks, naive attention, graphs and fusion off), makes the token stream
 * (token_file NULL: n_tokens sampled from the baseline, n_tokens <= 0 the
 * default length; else the file's ids, at most n_tokens + 1 of them when
 * n_tokens > 0, at most the context), runs it teacher-forced, keeps the
 * baseline's logits and closes the baseline session. Teacher-forced steps
 * take min(GS_QUALITY_CHUNK, cfg's workload.batch) tokens, the size a
 * session opened from cfg can take, so a variant identical to the baseline
 * computes bit-identical logits. Errors: GS_ERR_INPUT for a bad token file
 * ("FILE:LINE: ...") or a stream longer than the context. */
int gs_quality_baseline_create(gs_quality_baseline **out, const gs_config *cfg, gs_backend *be, int n_tokens,
                               const char *token_file, gs_error *err);
void gs_quality_baseline_free(gs_quality_baseline *b);
/* The stream: n_tokens + 1 ids (position i predicts id i + 1). */
const int *gs_quality_baseline_stream(const gs_quality_baseline *b, int *n_ids);
/* Positions the baseline scores. */
int gs_quality_baseline_tokens(const gs_quality_baseline *b);

/* Runs the stream teacher-forced through the variant's own forward pass (its
 * weights, KV cache, window and sinks apply) and compares with the baseline.
 * The variant's engine must be idle (no request waiting or running); its
 * range sinks see nothing of the quality pass, and its KV cache is left as
 * it was found. GS_ERR_INPUT when the variant's vocabulary or context does
 * not fit the stream; GS_ERR_RUNTIME when its KV cache cannot hold it. */
int gs_quality_measure(const gs_quality_baseline *b, gs_session *variant, gs_quality *out, gs_error *err);

/* ---- the pure metrics, for rows of logits -------------------------------
 * All sums run in double with the row's maximum taken out first (log-sum-exp),
 * so logits of any magnitude give finite results. */

/* log(sum(exp(logits))) of one row. */
double gs_quality_logsumexp(const float *logits, int vocab);
/* KL(softmax(base) || softmax(var)) of one position, nats; >= 0, and exactly 0
 * for identical rows. */
double gs_quality_kl(const float *base_logits, const float *var_logits, int vocab);
/* 1 when the rows' argmaxes (ties to the lowest id) agree, else 0. */
int gs_quality_top1(const float *base_logits, const float *var_logits, int vocab);
/* -log softmax(logits)[target]. */
double gs_quality_nll(const float *logits, int vocab, int target);
/* All of gs_quality over rows [n][vocab]: targets[i] is the id row i should
 * predict. illustrative is left 0. */
void gs_quality_compare(const float *base_logits, const float *var_logits, const int *targets, int n, int vocab,
                        gs_quality *out);

/* Reads a token file: ids separated by white space, '#' to the end of a line
 * is a comment. Each id must lie in 0..vocab-1; at least two ids (one
 * position to score). *ids is malloc'd. GS_ERR_INPUT "FILE:LINE: what". */
int gs_quality_read_tokens(const char *path, int vocab, int **ids, int *n_ids, gs_error *err);

#endif
