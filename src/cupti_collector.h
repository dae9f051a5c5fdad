/* cupti_collector.h - the device timeline through CUPTI's Activity API.
 *
 * Kernels (concurrent kernel records), memory copies and sets, and
 * synchronizations, each tied to the gptscope range that launched it
 * through CUPTI external correlation ids (the range id is pushed while the
 * range is open). CUPTI fills buffers on its own thread; the collector parses
 * them there into a pending list, and the engine thread - the event store's
 * one writer - moves them into the store with gs_cupti_drain.
 *
 * Timestamps: CUPTI is handed gs_now_ns as its timestamp source, so device
 * records arrive on the same monotonic clock as the host ranges.
 *
 * Graph launches carry no per-node API record: a graph's kernels carry the
 * graph launch's correlation id and belong to the range that launched the
 * graph (CUPTI creates a graph's nodes when the capture ends, outside any
 * op, so per-op attribution inside a graph is not available).
 *
 * Only in CUDA builds (HAVE_CUDA); gs_cupti_start answers GS_ERR_RUNTIME
 * elsewhere. One collector per process (CUPTI allows one subscriber). */
#ifndef GS_CUPTI_COLLECTOR_H
#define GS_CUPTI_COLLECTOR_H

#include <stdint.h>

#include "event_store.h"
#include "status.h"

typedef struct gs_cupti gs_cupti;

/* What the collector needs to know about a range id to place a record. */
typedef struct gs_range_place {
    int64_t step;
    int32_t layer;
    int found;
} gs_range_place;
typedef gs_range_place (*gs_range_lookup_fn)(void *ctx, uint64_t range_id);

/* Call before the process's first CUDA call (CUPTI instruments modules as
 * they load). Fails with a clear message when CUPTI cannot start (for example
 * another CUPTI client such as Nsight Systems is attached). */
int gs_cupti_start(gs_cupti **out, gs_error *err);

/* Between steps (nothing in flight): turn the device records on or off, to
 * trace only sampled steps. */
int gs_cupti_set_tracing(gs_cupti *c, int on);

/* Around a range: device work launched meanwhile is attributed to id. */
void gs_cupti_push(gs_cupti *c, uint64_t range_id);
void gs_cupti_pop(gs_cupti *c);

/* Moves the records CUPTI has delivered into the store. force: first make
 * CUPTI deliver everything it holds (call after a device synchronize, e.g.
 * before a report). Returns the number of events appended. */
long gs_cupti_drain(gs_cupti *c, gs_event_store *store, gs_range_lookup_fn lookup, void *lookup_ctx, int force);

typedef struct gs_cupti_stats {
    uint64_t kernels, copies, sets, syncs;
    uint64_t dropped;        /* records CUPTI reported dropped (buffers full) */
    uint64_t unattributed;   /* device records with no launching range found */
    uint64_t buffers;        /* activity buffers completed */
    uint64_t graph_kernels;  /* kernel records launched by a graph */
} gs_cupti_stats;
void gs_cupti_get_stats(const gs_cupti *c, gs_cupti_stats *st);

/* Flushes and stops collection; frees the collector. */
void gs_cupti_stop(gs_cupti *c);

#endif
