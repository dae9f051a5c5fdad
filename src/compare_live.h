/* compare_live.h - the live A/B comparison's data: samples kept by the
 * engine thread, summaries written into the event store, and the pure
 * logic the compare view shares with them.
 *
 * The engine thread keeps, per variant, the last GS_CMP_RING timed decode
 * steps of every node of the step's tree (step > layer > op, from a range
 * sink; kernels from the store's device records when there are any), plus
 * the step's tokens/s and the prefill steps' times. For the pinned variant
 * (A) and the running one (B) it writes each node's summary (median, the
 * 95% interval of the median from compare_stats.h, and the sample count)
 * into the store as COUNTER events:
 *
 *   name   "cmp.step" | "cmp.tps" | "cmp.prefill" | "cmp.layer"
 *          | "cmp.op:<op>" | "cmp.kernel:<kernel>"
 *   layer  the layer of a layer or op node; -1 outside layers;
 *          GS_CMP_ALL_LAYERS for an op summed over every layer of a step
 *          (the per-op rows) and for kernels
 *   aux    the variant's number (as variant.* counters, toggles.h)
 *   level  the statistic (gs_cmp_stat)
 *   value  nanoseconds (tokens/s for cmp.tps; the count for GS_CMP_N)
 *
 * and "cmp.pin" (value = the pinned variant's number, 0 = none) whenever
 * the pin changes and with every refresh, pinned or not. The store keeps only recent steps
 * in a live run, so they are written again every GS_CMP_EMIT_NS; a trace
 * recorded while pinned carries them, so a replay shows the comparison. */
#ifndef GS_COMPARE_LIVE_H
#define GS_COMPARE_LIVE_H

#include <stdint.h>

#include "compare_stats.h"
#include "event_store.h"
#include "ranges.h"

#define GS_CMP_RING 64          /* decode steps kept per variant */
#define GS_CMP_MAX_NODES 1024
#define GS_CMP_HASH 4096         /* > 2 x GS_CMP_MAX_NODES, a power of two */
#define GS_CMP_ALL_LAYERS (-2)
#define GS_CMP_EMIT_NS 200000000ull

#define GS_CMP_PIN "cmp.pin"
#define GS_CMP_PREFIX "cmp."

typedef enum {
    GS_CMP_STEP = 0,  /* a decode step's wall time */
    GS_CMP_TPS,       /* a decode step's tokens/s (higher is better) */
    GS_CMP_PREFILL,   /* a prefill step's wall time */
    GS_CMP_LAYER,     /* one layer's range in a decode step */
    GS_CMP_OP,        /* one op's time in a decode step (one layer, or summed) */
    GS_CMP_KERNEL,    /* one kernel's device time in a decode step, summed */
    GS_CMP_NKIND
} gs_cmp_kind;

typedef enum { GS_CMP_MEDIAN = 0, GS_CMP_LO, GS_CMP_HI, GS_CMP_N, GS_CMP_NSTAT } gs_cmp_stat;

typedef struct gs_cmp_node {
    uint8_t kind;             /* gs_cmp_kind */
    int layer;
    const char *key;          /* ranges: the literal name pointer (fast match); NULL for kernels */
    uint32_t kernel_id;       /* kernels: store string id of the kernel's name */
    char name[64];
    uint32_t sid;             /* store id of the counter name, GS_STORE_NO_ID until interned */
    double ring[GS_CMP_RING];
    int n, at;
    double acc;               /* this step so far */
    int touched;
} gs_cmp_node;

typedef struct gs_cmp_samples {
    int variant;              /* its number; 0 none */
    gs_cmp_node *nodes;
    int n_nodes;
    int *hash;                /* GS_CMP_HASH slots: node index + 1, 0 empty */
    int depth;
    uint64_t open_ns[GS_RANGES_MAX_DEPTH];
    int64_t kept[GS_CMP_RING * 2]; /* step numbers of the kept decode steps (kernels look them up) */
    int n_kept, at_kept;
    int64_t kstep;            /* the step whose kernels are being summed (-1 none) */
    uint64_t kscan;           /* store index the kernel scan has reached */
} gs_cmp_samples;

/* 0, or -1 when out of memory. */
int gs_cmp_samples_init(gs_cmp_samples *s, int variant);
void gs_cmp_samples_free(gs_cmp_samples *s);
/* Moves src into dst (dst freed first); src is left empty. */
void gs_cmp_samples_move(gs_cmp_samples *dst, gs_cmp_samples *src);
/* A range sink adding each layer and op range to the step's accumulators. */
gs_range_sink gs_cmp_samples_sink(gs_cmp_samples *s);
/* After an engine step (numbered step). keep: a timed step (not a metrics
 * step, not empty). prefill: the step had prefill tokens (its time goes to
 * the prefill node only). decode_tokens: for tokens/s. */
void gs_cmp_samples_step_end(gs_cmp_samples *s, int64_t step, uint64_t step_ns, int keep, int prefill,
                             int decode_tokens);
/* Device records of store events [kscan, count): kernels of kept steps are
 * summed per kernel name per step (a step is complete when a later step's
 * kernel arrives). */
void gs_cmp_samples_scan_kernels(gs_cmp_samples *s, gs_event_store *store);
/* The summary of node i. 0 or -1. */
int gs_cmp_samples_summary(const gs_cmp_samples *s, int i, gs_stat_summary *out);
/* Writes every node's summary as counters (see the head of this file). */
void gs_cmp_samples_emit(gs_cmp_samples *s, gs_event_store *store, int64_t step, uint64_t t_ns);
/* Writes "cmp.pin". */
void gs_cmp_emit_pin(gs_event_store *store, int pinned, int64_t step, uint64_t t_ns);

/* ---- reading them back (the UI, tests) ---- */
/* The node kind of a counter name ("cmp.op:matmul_qkv" -> GS_CMP_OP and
 * "matmul_qkv" in *name), or -1 when it is not a cmp node name. */
int gs_cmp_parse_name(const char *counter, const char **name);
/* "cmp.op:" etc. */
const char *gs_cmp_kind_prefix(int kind);

/* The color of a B-against-A cell: faster (B better), slower, or within the
 * noise (gs_stats_compare's verdict; higher_better for rates). */
typedef enum { GS_CMP_SAME = 0, GS_CMP_FASTER = 1, GS_CMP_SLOWER = 2 } gs_cmp_shade;
gs_cmp_shade gs_cmp_shade_of(const gs_stat_summary *a, const gs_stat_summary *b, int higher_better);
/* "faster", "slower", "noise" (for a B against A). */
const char *gs_cmp_shade_name(gs_cmp_shade s);

/* Orders idx[0..n) by |delta[idx]| descending, ties by idx (stable, model
 * order). */
void gs_cmp_sort_by_delta(int *idx, int n, const double *delta);

#endif
