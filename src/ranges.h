/* ranges.h - named, nested time ranges: step > layer > op.
 *
 * The engine brackets every piece of work with gs_range_begin/end; sinks
 * (collectors) registered on a gs_ranges receive them. The engine knows no
 * collector and no view: the host-timer table below is one sink, the
 * profiler's event store another. Nesting is checked: an end that does not
 * match its begin is a programming error and aborts in debug builds. */
#ifndef GS_RANGES_H
#define GS_RANGES_H

#include <stdint.h>

typedef enum { GS_RANGE_STEP = 0, GS_RANGE_LAYER = 1, GS_RANGE_OP = 2 } gs_range_level;

typedef struct gs_range_sink {
    /* id: unique per range in the process (never 0), the same at begin
     * and end, so a collector can tie device work to the range that launched it. */
    void (*begin)(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns);
    void (*end)(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns);
    void *ctx;
} gs_range_sink;

#define GS_RANGES_MAX_SINKS 4
#define GS_RANGES_MAX_DEPTH 8

typedef struct gs_ranges {
    gs_range_sink sinks[GS_RANGES_MAX_SINKS];
    int n_sinks;
    int depth;
    struct {
        gs_range_level level;
        const char *name;
        int layer;
        uint64_t id;
    } stack[GS_RANGES_MAX_DEPTH];
    uint64_t next_id;     /* ranges begun so far */
    long nesting_errors;  /* ends without a matching begin, or too deep */
} gs_ranges;

/* Monotonic host clock in nanoseconds. */
uint64_t gs_now_ns(void);

void gs_ranges_init(gs_ranges *r);
int gs_ranges_add_sink(gs_ranges *r, gs_range_sink sink);
/* name must outlive the range (string literals in practice). layer -1: none. */
void gs_range_begin(gs_ranges *r, gs_range_level level, const char *name, int layer);
void gs_range_end(gs_ranges *r, gs_range_level level, const char *name);
/* Id of the innermost open range; 0 when none is open. */
uint64_t gs_range_current_id(const gs_ranges *r);

/* ---- a sink: per-op host wall time, aggregated by op name ---- */
#define GS_OP_TABLE_MAX 64
typedef struct gs_op_table_row {
    const char *name;
    gs_range_level level;
    long count;
    uint64_t total_ns;
} gs_op_table_row;

typedef struct gs_op_table {
    gs_op_table_row rows[GS_OP_TABLE_MAX];
    int n_rows;
    uint64_t open_ns[GS_RANGES_MAX_DEPTH];
    int depth;
} gs_op_table;

void gs_op_table_init(gs_op_table *t);
gs_range_sink gs_op_table_sink(gs_op_table *t);

#endif
