/* trace_stats.c - per-name totals over the ranges of a store (CSV, summary). */
#include <stdlib.h>
#include <string.h>

#include "export.h"

static int agg_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_agg *a = ctx;
    a->events++;
    if (a->events == 1 || ev->t_ns < a->t_first)
        a->t_first = ev->t_ns;
    if (ev->t_ns + ev->dur_ns > a->t_last)
        a->t_last = ev->t_ns + ev->dur_ns;
    if (ev->kind == GS_EV_COUNTER) {
        a->counters++;
        return 0;
    }
    if (ev->kind == GS_EV_MARKER) {
        a->markers++;
        return 0;
    }
    if (ev->kind != GS_EV_RANGE)
        return 0;
    if (ev->level == 0) {
        a->steps++;
        a->step_ns += ev->dur_ns;
    }
    for (int i = 0; i < a->n_rows; i++) {
        gs_agg_row *r = &a->rows[i];
        if (r->name == ev->name && r->level == ev->level) {
            r->calls++;
            r->total_ns += ev->dur_ns;
            if (ev->dur_ns < r->min_ns)
                r->min_ns = ev->dur_ns;
            if (ev->dur_ns > r->max_ns)
                r->max_ns = ev->dur_ns;
            return 0;
        }
    }
    if (a->n_rows == a->cap_rows) {
        int cap = a->cap_rows ? a->cap_rows * 2 : 64;
        gs_agg_row *rows = realloc(a->rows, (size_t)cap * sizeof *rows);
        if (!rows)
            return 1;
        a->rows = rows;
        a->cap_rows = cap;
    }
    gs_agg_row r = {ev->name, ev->level, 1, ev->dur_ns, ev->dur_ns, ev->dur_ns};
    a->rows[a->n_rows++] = r;
    return 0;
}

static int tokens_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    const void **c = ctx;
    gs_agg *a = (gs_agg *)c[0];
    const uint32_t *id = c[1];
    if (ev->kind == GS_EV_COUNTER && ev->name == *id)
        a->tokens += ev->value;
    return 0;
}

int gs_agg_build(gs_event_store *s, gs_agg *a)
{
    memset(a, 0, sizeof *a);
    uint64_t count = gs_store_count(s);
    uint64_t seen = gs_store_visit(s, 0, count, agg_visit, a);
    /* Find the id of "step.tokens" without adding it (readers never intern). */
    uint32_t n = gs_store_n_strings(s), id = GS_STORE_NO_ID;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(gs_store_string(s, i), "step.tokens") == 0)
            id = i;
    if (id != GS_STORE_NO_ID) {
        const void *ctx[2] = {a, &id};
        gs_store_visit(s, 0, count, tokens_visit, ctx);
    }
    return seen == count - gs_store_first(s) ? 0 : -1;
}

static int by_total(const void *x, const void *y)
{
    const gs_agg_row *a = x, *b = y;
    if (a->total_ns != b->total_ns)
        return a->total_ns < b->total_ns ? 1 : -1;
    return a->level - b->level;
}

void gs_agg_sort(gs_agg *a)
{
    if (a->n_rows > 1)
        qsort(a->rows, (size_t)a->n_rows, sizeof *a->rows, by_total);
}

void gs_agg_free(gs_agg *a)
{
    free(a->rows);
    memset(a, 0, sizeof *a);
}
