/* compare_report.h - two event stores (two configurations, or two trace
 * files) side by side: step-level throughput and latency, memory, and per-op
 * time, each timing summarized over the steps (compare_stats.h) with a
 * verdict that names a winner only outside the noise.
 *
 * Everything comes from the stores, so a live comparison and one of two
 * recordings take the same path: step ranges give step times, the
 * step.prefill_tokens / step.decode_tokens counters the phase of each step,
 * op ranges the per-op samples (an op's time summed over the layers of one
 * step). Steps marked as replayed for hardware metrics are left out. */
#ifndef GS_COMPARE_REPORT_H
#define GS_COMPARE_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "compare_stats.h"
#include "event_store.h"
#include "status.h"

typedef struct gs_cmp_source {
    const char *label;          /* "examples/compare-naive.yaml" */
    gs_event_store *store;
    int have_memory;            /* 0: the memory figures are unavailable (traces) */
    double weight_bytes, kv_bytes, kv_bytes_per_token;
    /* Output quality against the fp32 baseline (quality.h), measured after
     * the timed steps; have_quality 0: not measured (traces, --no-quality). */
    int have_quality, quality_tokens, quality_illustrative;
    double kl, top1, perplexity, base_perplexity;
} gs_cmp_source;

typedef struct gs_cmp_row {
    char name[48];
    const char *unit;           /* "tokens/s", "ms", "us" */
    int higher_better;
    gs_stat_summary a, b;       /* b.n 0: B has no samples (or there is no B) */
    gs_stat_compare c;
} gs_cmp_row;

enum { GS_CMP_DECODE_TPS = 0, GS_CMP_PREFILL_TPS, GS_CMP_MS_PER_TOKEN, GS_CMP_N_SUMMARY };

typedef struct gs_cmp_report {
    gs_cmp_source a, b;
    int have_b;
    long steps_a, steps_b;      /* timed steps */
    gs_cmp_row summary[GS_CMP_N_SUMMARY];
    gs_cmp_row *ops;            /* by |delta| (by A's time when there is no B), largest first */
    int n_ops;
    const char *op_basis;       /* "decode step" or "step": what one op sample is */
} gs_cmp_report;

/* b NULL: A alone (B could not be built); its columns say "-". 0 or -1 (out of memory). */
int gs_cmp_build(const gs_cmp_source *a, const gs_cmp_source *b, gs_cmp_report *out);
void gs_cmp_free(gs_cmp_report *r);

/* The terminal report; bar_width columns for each half of the delta bar. */
void gs_cmp_print(FILE *f, const gs_cmp_report *r, int bar_width);
/* path ending in .md: Markdown tables; .csv: one row per figure. */
int gs_cmp_write(const gs_cmp_report *r, const char *path, gs_error *err);
/* 0 unknown extension, 1 Markdown, 2 CSV. */
int gs_cmp_report_format(const char *path);

#endif
