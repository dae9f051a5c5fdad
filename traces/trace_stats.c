/* trace_stats.c - per-name totals over a store (CSV, replay --summary):
 * ranges by level, kernels, copies and sets, with DRAM bytes from metrics
 * joined to the kernel (or op) they measured. Rows are found through a hash,
 * so a file with millions of distinct names costs linear time, not quadratic. */
#include <stdlib.h>
#include <string.h>

#include "export.h"

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t row_key(int level, uint32_t name) { return (uint64_t)name << 3 | (uint64_t)level; }

/* Index of the row (level, name), added when new; -1 out of memory. */
static int row_get(gs_agg *a, int level, uint32_t name)
{
    if ((size_t)(a->n_rows + 1) * 2 > a->hash_cap) {
        size_t cap = a->hash_cap ? a->hash_cap * 2 : 128;
        uint32_t *h = calloc(cap, sizeof *h);
        if (!h)
            return -1;
        for (int i = 0; i < a->n_rows; i++) {
            size_t j = mix64(row_key(a->rows[i].level, a->rows[i].name)) & (cap - 1);
            while (h[j])
                j = (j + 1) & (cap - 1);
            h[j] = (uint32_t)i + 1;
        }
        free(a->hash);
        a->hash = h;
        a->hash_cap = cap;
    }
    uint64_t key = row_key(level, name);
    size_t j = mix64(key) & (a->hash_cap - 1);
    while (a->hash[j]) {
        gs_agg_row *r = &a->rows[a->hash[j] - 1];
        if (r->name == name && r->level == level)
            return (int)a->hash[j] - 1;
        j = (j + 1) & (a->hash_cap - 1);
    }
    if (a->n_rows == a->cap_rows) {
        if (a->cap_rows > (1 << 29))
            return -1;
        int cap = a->cap_rows ? a->cap_rows * 2 : 64;
        gs_agg_row *rows = realloc(a->rows, (size_t)cap * sizeof *rows);
        if (!rows)
            return -1;
        a->rows = rows;
        a->cap_rows = cap;
    }
    gs_agg_row r = {name, level, 0, 0, UINT64_MAX, 0, 0, 0, 0};
    a->rows[a->n_rows] = r;
    a->hash[j] = (uint32_t)a->n_rows + 1;
    return a->n_rows++;
}

typedef struct agg_ctx {
    gs_agg *a;
    uint32_t tokens_id;
    uint32_t sampled_id;   /* the "metrics step" marker's name */
    int64_t *sampled;      /* steps carrying that marker */
    size_t n_sampled, cap_sampled;
    int oom;
} agg_ctx;

static int find_sampled(void *ctx, uint64_t index, const gs_event *ev)
{
    (void)index;
    agg_ctx *c = ctx;
    if (ev->kind != GS_EV_MARKER || ev->name != c->sampled_id)
        return 0;
    if (c->n_sampled == c->cap_sampled) {
        size_t cap = c->cap_sampled ? c->cap_sampled * 2 : 16;
        int64_t *p = realloc(c->sampled, cap * sizeof *p);
        if (!p) {
            c->oom = 1;
            return 1;
        }
        c->sampled = p;
        c->cap_sampled = cap;
    }
    c->sampled[c->n_sampled++] = ev->step;
    return 0;
}

static int is_sampled(const agg_ctx *c, int64_t step)
{
    for (size_t i = 0; i < c->n_sampled; i++)
        if (c->sampled[i] == step)
            return 1;
    return 0;
}

static int agg_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    agg_ctx *c = ctx;
    gs_agg *a = c->a;
    a->events++;
    if (a->events == 1 || ev->t_ns < a->t_first)
        a->t_first = ev->t_ns;
    if (ev->t_ns + ev->dur_ns > a->t_last)
        a->t_last = ev->t_ns + ev->dur_ns;
    int level;
    /* A step replayed for hardware counters ran serialized and slow: its
     * times and tokens would mislead every figure below. */
    if (c->n_sampled && ev->kind != GS_EV_MARKER && ev->kind != GS_EV_METRIC && is_sampled(c, ev->step)) {
        if (ev->kind == GS_EV_RANGE && ev->level == GS_RANGE_STEP)
            a->sampled_steps++;
        return 0;
    }
    switch (ev->kind) {
    case GS_EV_COUNTER:
        a->counters++;
        if (ev->name == c->tokens_id && ev->value == ev->value)
            a->tokens += ev->value;
        return 0;
    case GS_EV_MARKER:
        a->markers++;
        return 0;
    case GS_EV_METRIC:
        a->metrics++;
        return 0;
    case GS_EV_SYNC:
        a->syncs++;
        a->sync_ns += ev->dur_ns;
        return 0;
    case GS_EV_RANGE:
        if (ev->level == GS_RANGE_STEP) {
            a->steps++;
            a->step_ns += ev->dur_ns;
        }
        level = ev->level;
        break;
    case GS_EV_KERNEL:
        a->kernels++;
        a->kernel_ns += ev->dur_ns;
        level = GS_AGG_KERNEL;
        break;
    case GS_EV_MEMCPY:
        if (ev->level <= GS_COPY_KIND_MAX) {
            a->copies[ev->level]++;
            a->copy_bytes[ev->level] += ev->value;
            a->copy_ns[ev->level] += ev->dur_ns;
        }
        level = GS_AGG_MEMCPY;
        break;
    case GS_EV_MEMSET:
        a->sets++;
        a->set_bytes += ev->value;
        a->set_ns += ev->dur_ns;
        level = GS_AGG_MEMSET;
        break;
    default:
        return 0;
    }
    int i = row_get(a, level, ev->name);
    if (i < 0) {
        c->oom = 1;
        return 1;
    }
    gs_agg_row *r = &a->rows[i];
    r->calls++;
    r->total_ns += ev->dur_ns;
    if (ev->dur_ns < r->min_ns)
        r->min_ns = ev->dur_ns;
    if (ev->dur_ns > r->max_ns)
        r->max_ns = ev->dur_ns;
    if (ev->kind == GS_EV_MEMCPY || ev->kind == GS_EV_MEMSET) {
        r->bytes += ev->value;
        r->bytes_calls++;
        r->bytes_ns += ev->dur_ns;
    }
    return 0;
}

/* ---- DRAM bytes from metrics, joined to their kernel or op ---- */

/* What a metric measured: (correlation id, launching range, kernel scope) or
 * (0, the op's range id, op scope), with the DRAM bytes seen for it. */
typedef struct subject {
    uint64_t aux, range_id;
    int scope;      /* -1: empty slot */
    int used;       /* already credited to a row (a duplicate kernel record gets nothing) */
    double total;   /* dram__bytes.sum, < 0 none */
    double parts;   /* dram__bytes_*.sum */
    int have_parts;
} subject;

typedef struct join {
    subject *s;
    size_t cap;
    gs_event_store *store;
    uint32_t last_name;
    int last_class;
    int oom;
    gs_agg *a;
} join;

static size_t subject_slot(const join *j, uint64_t aux, uint64_t range_id, int scope)
{
    size_t k = mix64(aux * 0x9e3779b97f4a7c15ULL ^ range_id ^ (uint64_t)scope << 62) & (j->cap - 1);
    while (j->s[k].scope >= 0 && !(j->s[k].aux == aux && j->s[k].range_id == range_id && j->s[k].scope == scope))
        k = (k + 1) & (j->cap - 1);
    return k;
}

/* 0 not DRAM bytes, 1 the total, 2 a part (read, write). */
static int dram_class(join *j, uint32_t name)
{
    if (name != j->last_name) {
        const char *s = gs_store_string(j->store, name);
        size_t n = strlen(s);
        int sum = n > 4 && strcmp(s + n - 4, ".sum") == 0;
        j->last_class = !sum ? 0 : strcmp(s, "dram__bytes.sum") == 0 ? 1 : strncmp(s, "dram__bytes_", 12) == 0 ? 2 : 0;
        j->last_name = name;
    }
    return j->last_class;
}

static int metric_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    join *j = ctx;
    if (ev->kind != GS_EV_METRIC || !(ev->value == ev->value))
        return 0;
    int cls = dram_class(j, ev->name);
    if (!cls)
        return 0;
    size_t k = subject_slot(j, ev->aux, ev->range_id, ev->level);
    subject *s = &j->s[k];
    if (s->scope < 0) {
        subject fresh = {ev->aux, ev->range_id, ev->level, 0, -1, 0, 0};
        *s = fresh;
    }
    if (cls == 1)
        s->total = ev->value;
    else {
        s->parts += ev->value;
        s->have_parts = 1;
    }
    return 0;
}

static int subject_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    join *j = ctx;
    size_t k;
    int level;
    if (ev->kind == GS_EV_KERNEL) {
        k = subject_slot(j, ev->aux, ev->range_id, GS_METRIC_KERNEL);
        level = GS_AGG_KERNEL;
    } else if (ev->kind == GS_EV_RANGE && ev->level == GS_RANGE_OP) {
        k = subject_slot(j, 0, ev->aux, GS_METRIC_OP);
        level = GS_RANGE_OP;
    } else {
        return 0;
    }
    subject *s = &j->s[k];
    if (s->scope < 0 || s->used || (s->total < 0 && !s->have_parts))
        return 0;
    s->used = 1;
    int i = row_get(j->a, level, ev->name);
    if (i < 0) {
        j->oom = 1;
        return 1;
    }
    gs_agg_row *r = &j->a->rows[i];
    r->bytes += s->total >= 0 ? s->total : s->parts;
    r->bytes_calls++;
    r->bytes_ns += ev->dur_ns;
    return 0;
}

static int join_metrics(gs_event_store *st, gs_agg *a, uint64_t count)
{
    join j = {0};
    j.store = st;
    j.a = a;
    j.last_name = GS_STORE_NO_ID;
    j.cap = 64;
    while (j.cap < a->metrics * 2)
        j.cap *= 2;
    j.s = malloc(j.cap * sizeof *j.s);
    if (!j.s)
        return -1;
    for (size_t k = 0; k < j.cap; k++)
        j.s[k].scope = -1;
    gs_store_visit(st, 0, count, metric_visit, &j);
    gs_store_visit(st, 0, count, subject_visit, &j);
    free(j.s);
    return j.oom ? -1 : 0;
}

int gs_agg_build(gs_event_store *s, gs_agg *a)
{
    memset(a, 0, sizeof *a);
    uint64_t count = gs_store_count(s);
    /* Find the id of "step.tokens" without adding it (readers never intern). */
    agg_ctx c = {a, GS_STORE_NO_ID, GS_STORE_NO_ID, NULL, 0, 0, 0};
    uint32_t n = gs_store_n_strings(s);
    for (uint32_t i = 0; i < n; i++) {
        const char *str = gs_store_string(s, i);
        if (strcmp(str, "step.tokens") == 0)
            c.tokens_id = i;
        else if (strcmp(str, "metrics step") == 0)
            c.sampled_id = i;
    }
    if (c.sampled_id != GS_STORE_NO_ID)
        gs_store_visit(s, 0, count, find_sampled, &c);
    uint64_t seen = c.oom ? 0 : gs_store_visit(s, 0, count, agg_visit, &c);
    free(c.sampled);
    if (c.oom || seen != count - gs_store_first(s))
        return -1;
    if (a->metrics && join_metrics(s, a, count))
        return -1;
    return 0;
}

static int by_total(const void *x, const void *y)
{
    const gs_agg_row *a = x, *b = y;
    if (a->total_ns != b->total_ns)
        return a->total_ns < b->total_ns ? 1 : -1;
    if (a->level != b->level)
        return a->level - b->level;
    return a->name < b->name ? -1 : a->name > b->name;
}

void gs_agg_sort(gs_agg *a)
{
    if (a->n_rows > 1)
        qsort(a->rows, (size_t)a->n_rows, sizeof *a->rows, by_total);
    /* The hash indexes rows by position: after sorting it is stale. */
    free(a->hash);
    a->hash = NULL;
    a->hash_cap = 0;
}

void gs_agg_free(gs_agg *a)
{
    free(a->rows);
    free(a->hash);
    memset(a, 0, sizeof *a);
}
