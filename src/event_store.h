/* event_store.h - the profiler's append-only, in-memory event store.
 *
 * One writer (the engine thread through the range sink, or the trace reader)
 * and many readers (views, exporters, the trace writer's thread). Appends are
 * lock-free: the writer fills a slot, then publishes the new count with a
 * release store; a reader loads the count with acquire and sees a consistent
 * prefix. Events live in fixed blocks; the only lock (a rwlock) is taken by
 * the writer when it adds or drops a block, and by readers while they scan,
 * so a block is never freed under a reader.
 *
 * Live mode keeps a window of recent steps (whole blocks older than the
 * window are dropped); window 0 keeps everything (recording, replay).
 * Strings are interned: names are small ids, lookups never lock. */
#ifndef GS_EVENT_STORE_H
#define GS_EVENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "ranges.h"

struct gs_engine;

typedef struct gs_event_store gs_event_store;

#define GS_STORE_NO_ID UINT32_MAX

/* window_steps 0: unbounded. NULL when out of memory. */
gs_event_store *gs_store_create(int window_steps);
void gs_store_destroy(gs_event_store *s);

/* ---- writer side (one thread) ---- */
/* Id of s, adding it when new; GS_STORE_NO_ID when out of memory. */
uint32_t gs_store_intern(gs_event_store *s, const char *str);
/* Like intern but with a length (the string need not be terminated). */
uint32_t gs_store_intern_n(gs_event_store *s, const char *str, size_t len);
/* 0, or -1 when out of memory (the event is then counted as dropped). */
int gs_store_append(gs_event_store *s, const gs_event *ev);

/* ---- reader side (any thread) ---- */
uint32_t gs_store_n_strings(const gs_event_store *s);
/* The string of id; "?" for an id not (yet) in the table. */
const char *gs_store_string(const gs_event_store *s, uint32_t id);
/* Absolute index one past the last published event. */
uint64_t gs_store_count(const gs_event_store *s);
/* Absolute index of the oldest event still kept (> 0 once live mode drops). */
uint64_t gs_store_first(const gs_event_store *s);
uint64_t gs_store_dropped(const gs_event_store *s);  /* appends lost to out-of-memory */

/* Visitors: fn is called for each event in append order; returning nonzero
 * stops the walk. Each returns the number of events visited. */
typedef int (*gs_store_visit_fn)(void *ctx, uint64_t index, const gs_event *ev);
/* Events with absolute index in [from, to) (clamped to what is kept). */
uint64_t gs_store_visit(gs_event_store *s, uint64_t from, uint64_t to, gs_store_visit_fn fn, void *ctx);
/* Events overlapping [t0, t1) in time (whole blocks outside are skipped). */
uint64_t gs_store_query_time(gs_event_store *s, uint64_t t0, uint64_t t1, gs_store_visit_fn fn, void *ctx);
/* Events of steps in [s0, s1]. */
uint64_t gs_store_query_steps(gs_event_store *s, int64_t s0, int64_t s1, gs_store_visit_fn fn, void *ctx);

/* ---- collectors ---- */
/* The range sink: every engine range becomes one complete GS_EV_RANGE event
 * on its end (so the store needs no open-range bookkeeping). Step numbers
 * count step ranges from first_step. */
typedef struct gs_store_ranges {
    gs_event_store *store;
    uint32_t track;
    int64_t step;          /* current step (first_step - 1 before the first) */
    int depth;
    uint64_t open_ns[GS_RANGES_MAX_DEPTH];
    struct { const char *ptr; uint32_t id; } name_cache[32]; /* names are literals */
} gs_store_ranges;

void gs_store_ranges_init(gs_store_ranges *r, gs_event_store *store, int64_t first_step);
gs_range_sink gs_store_ranges_sink(gs_store_ranges *r);

/* Appends the engine's counters after a step (at t_ns, for step `step`):
 * tokens/s, step.tokens, the batch composition (step.seqs,
 * step.prefill_tokens, step.decode_tokens, step.logits, step.ids,
 * step.attn_pairs, step.attn_ctx: see gs_step_shape in op_cost.h), kv.blocks_used,
 * kv.blocks_free, kv.fragmentation, engine.running, engine.waiting.
 * Returns 0 or -1 (out of memory). */
int gs_store_append_engine_counters(gs_event_store *s, const struct gs_engine *e, int64_t step, uint64_t t_ns);

/* Appends a KV-cache snapshot: one GS_EV_KV_BLOCKS event per run of
 * consecutive physical blocks with the same owner (free runs included), so
 * the runs of one step cover the cache exactly once. 0 or -1. */
struct gs_kv_cache;
int gs_store_append_kv_snapshot(gs_event_store *s, const struct gs_kv_cache *kv, int64_t step, uint64_t t_ns);

/* Appends a marker (e.g. "recording started"). */
int gs_store_append_marker(gs_event_store *s, const char *name, int64_t step, uint64_t t_ns, double value);

#endif
