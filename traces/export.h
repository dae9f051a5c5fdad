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

/* ---- aggregate per (level, name) over ranges ---- */
typedef struct gs_agg_row {
    uint32_t name;
    int level;
    long calls;
    uint64_t total_ns, min_ns, max_ns;
} gs_agg_row;

typedef struct gs_agg {
    gs_agg_row *rows;
    int n_rows, cap_rows;
    long steps;                /* step ranges */
    uint64_t step_ns;          /* sum of step durations */
    uint64_t t_first, t_last;  /* earliest start, latest end over all events */
    double tokens;             /* sum of the step.tokens counter */
    uint64_t events, counters, markers;
} gs_agg;

int gs_agg_build(gs_event_store *s, gs_agg *a);  /* 0 or -1 (out of memory) */
/* Sorts rows by total time, largest first. */
void gs_agg_sort(gs_agg *a);
void gs_agg_free(gs_agg *a);

#endif
