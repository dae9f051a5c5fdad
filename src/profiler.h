/* profiler.h - one object that turns an engine's steps into events.
 *
 * It owns the collectors and feeds one event store: host ranges (step >
 * layer > op, both backends), engine counters and KV-cache snapshots after
 * each step, the CUPTI device timeline (kernels, copies, sets, syncs tied
 * to the op that launched them), hardware metrics on sampled steps, and
 * NVTX ranges so Nsight Systems shows the same structure. On the CPU
 * backend: per-op hardware cache counters (cpu_counters.h), read at each
 * op's begin and end on every thread of the backend's pool and stored as
 * GS_EV_METRIC events of scope GS_METRIC_OP named "cpu.llc_loads", ...;
 * the begin read (one read() per thread) falls inside the op's wall time.
 *
 * All appends happen on the engine thread (the store has one writer):
 * range callbacks run inside gs_engine_step, device records are moved in by
 * gs_profiler_step_end and gs_profiler_flush. Views and exporters read the
 * store from any thread. */
#ifndef GS_PROFILER_H
#define GS_PROFILER_H

#include <stdint.h>

#include "event_store.h"
#include "status.h"

struct gs_engine;

typedef struct gs_profiler_options {
    int device_timeline; /* CUPTI kernels, copies, syncs (CUDA backend) */
    int metrics_every;   /* hardware metrics on every Nth step (CUDA backend); 0 never */
    int nvtx;            /* NVTX ranges (CUDA builds) */
    int metrics_fast;    /* one-pass metric set: no L2 hit rate, far cheaper sampled steps */
    int trace_every;     /* device timeline on every Nth step only (0 or 1: every step) */
    int cpu_counters;    /* per-op perf_event_open cache counters (CPU backend) */
} gs_profiler_options;

typedef struct gs_profiler gs_profiler;

/* cuda: the CUDA backend will run, so start CUPTI now - before the
 * process's first CUDA call. A collector that cannot start is not an error:
 * the profiler keeps host ranges and says why in gs_profiler_notice. */
int gs_profiler_create(gs_profiler **out, const gs_profiler_options *o, int cuda, gs_event_store *store,
                       gs_error *err);
/* Adds the profiler's range sinks to the engine (call once, before its first step). */
int gs_profiler_attach(gs_profiler *p, struct gs_engine *e, gs_error *err);
/* Around each engine step. step_begin answers 1 when this step collects
 * hardware metrics (its timing is distorted; it is marked in the store). */
int gs_profiler_step_begin(gs_profiler *p);
void gs_profiler_step_end(gs_profiler *p, const struct gs_engine *e);
/* Waits for the device and moves every outstanding record into the store. */
void gs_profiler_flush(gs_profiler *p, struct gs_engine *e);
/* The step number the next step will get (the store's numbering). */
int64_t gs_profiler_next_step(const gs_profiler *p);
/* What is collected and what is not, and why; "" when everything asked for runs. */
const char *gs_profiler_notice(const gs_profiler *p);

typedef struct gs_profiler_stats {
    uint64_t kernels, copies, syncs, metric_steps;
    uint64_t dropped;       /* device records lost (CUPTI buffers) or store appends lost */
    uint64_t unattributed;  /* device records with no launching range */
    uint64_t graph_kernels;
    long last_metric_ranges, last_metric_kernels; /* the last sampled step: ranges measured, kernels matched */
    uint64_t metric_steps_unmatched;               /* sampled steps whose kernels could not be matched */
    uint64_t cpu_counter_ops;    /* op instances with CPU counter values */
    int cpu_counter_threads;     /* threads the CPU counters cover; 0 when off */
} gs_profiler_stats;
void gs_profiler_get_stats(const gs_profiler *p, gs_profiler_stats *st);
void gs_profiler_destroy(gs_profiler *p);

#endif
