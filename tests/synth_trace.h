/* synth_trace.h - a synthetic but realistic profiler event store for the
 * exporter tests, the trace benchmark and fuzz seeds: GPT-2-like steps with
 * ranges step > layer > op (appended at their end, as the range sink does),
 * kernels with launch configurations on several streams (appended after the
 * step, as a CUPTI collector would), copies, a set, a sync per step, DRAM
 * metrics on sampled steps, the engine counters, a KV-cache snapshot and
 * markers. Deterministic: the same options give the same events. */
#ifndef GS_SYNTH_TRACE_H
#define GS_SYNTH_TRACE_H

#include <stdint.h>

#include "event_store.h"

typedef struct gs_synth_opts {
    int layers;         /* layers per step (12 for gpt2-124m) */
    int streams;        /* CUDA streams used (>= 1); stream 0 gets most kernels */
    int metrics_every;  /* DRAM metrics on every Nth step (0: never) */
    int kv_blocks;      /* blocks in the KV cache snapshot */
    uint64_t seed;
} gs_synth_opts;

/* Defaults: 12 layers, 2 streams, metrics every 8th step, 64 KV blocks. */
void gs_synth_defaults(gs_synth_opts *o);

/* Appends whole steps until the store holds at least min_events events (at
 * least one step). Returns the number of steps appended, -1 out of memory. */
long gs_synth_fill(gs_event_store *s, const gs_synth_opts *o, uint64_t min_events);

#endif
