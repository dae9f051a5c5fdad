/* events.h - the profiler's event types, shared by the store (src/) and the
 * trace file format (traces/).
 *
 * One fixed-size record serves every kind so the store is a flat array and
 * the trace codec has one path. Names are ids into the store's interned
 * string table; times are nanoseconds on the host monotonic clock (the one
 * clock, until CUPTI timestamps are converted to it). */
#ifndef GS_EVENTS_H
#define GS_EVENTS_H

#include <stdint.h>

typedef enum {
    GS_EV_RANGE = 1,   /* complete range: t_ns = start, dur_ns = length; level step/layer/op */
    GS_EV_COUNTER = 2, /* a sampled value at t_ns (value) */
    GS_EV_MARKER = 3,  /* an instant: toggle changed, recording started (value optional) */
    GS_EV_KERNEL = 4,  /* a device kernel (reserved for CUPTI): aux = correlation id */
    GS_EV_KIND_MAX = 4
} gs_event_kind;

/* Tracks: the host thread is 0; device streams will be 1000 + stream id. */
#define GS_TRACK_HOST 0u

typedef struct gs_event {
    uint8_t kind;      /* gs_event_kind */
    uint8_t level;     /* ranges: gs_range_level (step 0, layer 1, op 2) */
    uint16_t reserved; /* zero; keeps the layout explicit */
    uint32_t name;     /* string id */
    int32_t layer;     /* -1: none */
    uint32_t track;    /* thread / stream track */
    int64_t step;      /* engine step the event belongs to (-1: none) */
    uint64_t t_ns;     /* start (ranges, kernels) or sample time */
    uint64_t dur_ns;   /* ranges and kernels; 0 otherwise */
    uint64_t aux;      /* kernels: correlation id; 0 otherwise */
    double value;      /* counters and markers */
} gs_event;

#endif
