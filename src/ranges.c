/* ranges.c - range bookkeeping and the host-timer op table. */
#include "ranges.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static _Atomic uint64_t next_range_id;

uint64_t gs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void gs_ranges_init(gs_ranges *r) { memset(r, 0, sizeof *r); }

int gs_ranges_add_sink(gs_ranges *r, gs_range_sink sink)
{
    if (r->n_sinks >= GS_RANGES_MAX_SINKS)
        return -1;
    r->sinks[r->n_sinks++] = sink;
    return 0;
}

void gs_range_begin(gs_ranges *r, gs_range_level level, const char *name, int layer)
{
    if (r->depth >= GS_RANGES_MAX_DEPTH) {
        r->nesting_errors++;
        return;
    }
    r->stack[r->depth].level = level;
    r->stack[r->depth].name = name;
    r->stack[r->depth].layer = layer;
    /* Unique in the process, not just in this gs_ranges: several engines may
     * feed one profiler, and device records find their range by id. */
    uint64_t id = atomic_fetch_add_explicit(&next_range_id, 1, memory_order_relaxed) + 1;
    r->next_id++;
    r->stack[r->depth].id = id;
    r->depth++;
    if (r->n_sinks == 0)
        return;
    uint64_t t = gs_now_ns();
    for (int i = 0; i < r->n_sinks; i++)
        if (r->sinks[i].begin)
            r->sinks[i].begin(r->sinks[i].ctx, level, name, layer, id, t);
}

void gs_range_end(gs_ranges *r, gs_range_level level, const char *name)
{
    if (r->depth == 0 || r->stack[r->depth - 1].level != level ||
        strcmp(r->stack[r->depth - 1].name, name) != 0) {
        r->nesting_errors++;
        return;
    }
    r->depth--;
    if (r->n_sinks == 0)
        return;
    uint64_t t = gs_now_ns();
    int layer = r->stack[r->depth].layer;
    uint64_t id = r->stack[r->depth].id;
    for (int i = r->n_sinks - 1; i >= 0; i--)
        if (r->sinks[i].end)
            r->sinks[i].end(r->sinks[i].ctx, level, name, layer, id, t);
}

uint64_t gs_range_current_id(const gs_ranges *r) { return r->depth > 0 ? r->stack[r->depth - 1].id : 0; }

void gs_op_table_init(gs_op_table *t) { memset(t, 0, sizeof *t); }

static void op_table_begin(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    gs_op_table *t = ctx;
    if (t->depth < GS_RANGES_MAX_DEPTH)
        t->open_ns[t->depth] = t_ns;
    t->depth++;
}

static void op_table_end(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    gs_op_table *t = ctx;
    t->depth--;
    if (t->depth < 0 || t->depth >= GS_RANGES_MAX_DEPTH) {
        t->depth = t->depth < 0 ? 0 : t->depth;
        return;
    }
    uint64_t dt = t_ns - t->open_ns[t->depth];
    /* Names are literals: pointer equality finds the row in the common case. */
    for (int i = 0; i < t->n_rows; i++) {
        gs_op_table_row *row = &t->rows[i];
        if (row->level == level && (row->name == name || strcmp(row->name, name) == 0)) {
            row->count++;
            row->total_ns += dt;
            return;
        }
    }
    if (t->n_rows < GS_OP_TABLE_MAX) {
        gs_op_table_row *row = &t->rows[t->n_rows++];
        row->name = name;
        row->level = level;
        row->count = 1;
        row->total_ns = dt;
    }
}

gs_range_sink gs_op_table_sink(gs_op_table *t)
{
    gs_range_sink s = {op_table_begin, op_table_end, t};
    return s;
}
