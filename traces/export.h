/* export.h - exporters from an event store (live or read from a trace file):
 * Chrome trace JSON (Perfetto, chrome://tracing, speedscope), folded stacks
 * (flamegraph.pl, speedscope, inferno) and CSV, plus the per-name aggregate
 * that the CSV file and `replay --summary` share. */
#ifndef GS_EXPORT_H
#define GS_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "event_store.h"
#include "status.h"

typedef enum { GS_EXPORT_CHROME = 0, GS_EXPORT_FOLDED, GS_EXPORT_CSV } gs_export_format;

/* "chrome", "folded", "csv"; -1 otherwise. */
int gs_export_format_parse(const char *s);
/* From a file name: .json/.json.gz chrome, .folded/.txt folded, .csv csv; -1 otherwise. */
int gs_export_format_from_name(const char *path);

typedef struct gs_export_info {
    const char *process_name;  /* "gptscope: gpt2-124m on cpu" */
    const char *device;
    int pid;                   /* Chrome process id; 0: 1 + the source's index */
} gs_export_info;

/* Each writes path (".gz" suffix: gzip for chrome) and returns a status. */
int gs_export_chrome(gs_event_store *s, const gs_export_info *info, const char *path, gs_error *err);
/* Several sources in one file, a process each (two configurations compared
 * in one run): one clock, flow ids unique across the file. */
int gs_export_chrome_multi(gs_event_store *const *stores, const gs_export_info *infos, int n, const char *path,
                           gs_error *err);
/* Folded stacks by self time; unit_ns 1 (ns) or 1000 (us). */
int gs_export_folded(gs_event_store *s, const char *path, int unit_ns, gs_error *err);
int gs_export_csv(gs_event_store *s, const char *path, gs_error *err);

/* ---- aggregate per (level, name): ranges, kernels, copies, sets ---- */
/* Row levels past the range levels (0 step, 1 layer, 2 op). */
enum { GS_AGG_KERNEL = 3, GS_AGG_MEMCPY = 4, GS_AGG_MEMSET = 5 };

typedef struct gs_agg_row {
    uint32_t name;
    int level;                 /* gs_range_level or GS_AGG_* */
    long calls;
    uint64_t total_ns, min_ns, max_ns;
    /* Measured bytes: copies and sets carry theirs; kernels and ops get DRAM
     * bytes from metrics (dram__bytes.sum, or the dram__bytes_*.sum parts)
     * on the calls that were sampled. */
    double bytes;              /* summed over bytes_calls calls */
    long bytes_calls;
    uint64_t bytes_ns;         /* device (or op) time of those calls */
} gs_agg_row;

typedef struct gs_agg {
    gs_agg_row *rows;
    int n_rows, cap_rows;
    uint32_t *hash;            /* row index + 1 by (level, name); 0 empty */
    size_t hash_cap;
    long steps;                /* step ranges */
    long sampled_steps;        /* steps replayed for hardware metrics: left out of every timing */
    uint64_t step_ns;          /* sum of step durations */
    uint64_t t_first, t_last;  /* earliest start, latest end over all events */
    double tokens;             /* sum of the step.tokens counter */
    uint64_t events, counters, markers, metrics;
    uint64_t kernels, kernel_ns;           /* device time in kernels */
    uint64_t copies[GS_COPY_KIND_MAX + 1]; /* by gs_copy_kind */
    double copy_bytes[GS_COPY_KIND_MAX + 1];
    uint64_t copy_ns[GS_COPY_KIND_MAX + 1];
    uint64_t sets, set_ns;
    double set_bytes;
    uint64_t syncs, sync_ns;
} gs_agg;

int gs_agg_build(gs_event_store *s, gs_agg *a);  /* 0 or -1 (out of memory) */
/* Sorts rows by total time, largest first. */
void gs_agg_sort(gs_agg *a);
void gs_agg_free(gs_agg *a);

#endif
