/* events.h - the profiler's event types, shared by the store (src/) and the
 * trace file format (traces/).
 *
 * One fixed-size record serves every kind so the store is a flat array and
 * the trace codec has one path. Names are ids into the store's interned
 * string table. Times are nanoseconds on one clock, the host monotonic clock
 * (gs_now_ns); the CUPTI collector hands CUPTI that clock as its timestamp
 * source, so device records arrive already converted to it.
 *
 * Attribution: every range gets an id (aux) from gs_ranges; a device record
 * (kernel, copy, set, metric) names the innermost range that launched it in
 * range_id, so "which op ran this kernel" is one field, also in trace files. */
#ifndef GS_EVENTS_H
#define GS_EVENTS_H

#include <stdint.h>

typedef enum {
    GS_EV_RANGE = 1,     /* host range: t_ns start, dur_ns length, level step/layer/op, aux = range id */
    GS_EV_COUNTER = 2,   /* a sampled value at t_ns (value) */
    GS_EV_MARKER = 3,    /* an instant: toggle changed, recording started (value optional) */
    GS_EV_KERNEL = 4,    /* device kernel: aux = CUPTI correlation id, launch = its configuration */
    GS_EV_MEMCPY = 5,    /* device copy: level = gs_copy_kind, value = bytes, aux = correlation id */
    GS_EV_MEMSET = 6,    /* device set: value = bytes, aux = correlation id */
    GS_EV_SYNC = 7,      /* the host waiting on the device: level = gs_sync_kind, on the host track */
    GS_EV_METRIC = 8,    /* a measured hardware metric: name = metric, value, level = gs_metric_scope,
                            aux = kernel correlation id (scope kernel) or 0 (scope op) */
    GS_EV_KV_BLOCKS = 9, /* KV-cache snapshot: one run of consecutive physical blocks, see kv */
    GS_EV_KIND_MAX = 9
} gs_event_kind;

typedef enum { GS_COPY_OTHER = 0, GS_COPY_HTOD = 1, GS_COPY_DTOH = 2, GS_COPY_DTOD = 3, GS_COPY_KIND_MAX = 3 } gs_copy_kind;
typedef enum { GS_SYNC_OTHER = 0, GS_SYNC_EVENT = 1, GS_SYNC_STREAM = 2, GS_SYNC_CONTEXT = 3, GS_SYNC_KIND_MAX = 3 } gs_sync_kind;
typedef enum { GS_METRIC_KERNEL = 0, GS_METRIC_OP = 1 } gs_metric_scope;

/* Tracks: the host thread is 0; device streams are GS_TRACK_STREAM0 + stream id. */
#define GS_TRACK_HOST 0u
#define GS_TRACK_STREAM0 1000u

typedef struct gs_event_launch {
    uint32_t grid[3];
    uint16_t block[3];
    uint16_t registers;     /* per thread */
    uint32_t shared_bytes;  /* static + dynamic per block */
} gs_event_launch;

/* A KV-cache snapshot at a step is a sequence of runs covering every block
 * once: blocks [first_block, first_block + n_blocks) owned by seq (-1 free). */
typedef struct gs_event_kv {
    uint32_t first_block;
    uint32_t n_blocks;
    int32_t seq;
    uint32_t total_blocks;  /* blocks in the cache, so a reader knows when a snapshot is whole */
} gs_event_kv;

typedef struct gs_event {
    uint8_t kind;      /* gs_event_kind */
    uint8_t level;     /* ranges: gs_range_level; copies: gs_copy_kind; syncs: gs_sync_kind; metrics: scope */
    uint16_t reserved; /* zero; keeps the layout explicit */
    uint32_t name;     /* string id */
    int32_t layer;     /* -1: none */
    uint32_t track;    /* thread / stream track */
    int64_t step;      /* engine step the event belongs to (-1: none) */
    uint64_t t_ns;     /* start (ranges, device records, syncs) or sample time */
    uint64_t dur_ns;   /* ranges, device records, syncs; 0 otherwise */
    uint64_t aux;      /* ranges: range id; device records: correlation id */
    uint64_t range_id; /* device records and metrics: id of the launching range; 0 unknown */
    double value;      /* counters, markers, metrics; copies and sets: bytes */
    union {
        gs_event_launch launch; /* kernels */
        gs_event_kv kv;         /* KV blocks */
    } u;
} gs_event;

#endif
