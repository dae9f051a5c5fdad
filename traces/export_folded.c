/* export_folded.c - folded stacks ("step;layer 3;attention 12345") by self
 * time, for flamegraph.pl, speedscope and inferno. Nesting is recovered from
 * the ranges' times on each track: a range contains those that start inside
 * it. Self time = duration minus the children's. */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "export_common.h"

#define MAX_DEPTH 16
#define PATH_MAX_LEN 1024

typedef struct entry { char *path; uint64_t ns; } entry;
typedef struct table {
    entry *e;
    size_t n, cap;   /* cap: power of two; open addressing on path */
    int oom;
} table;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void table_add(table *t, const char *path, uint64_t ns)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        entry *e = calloc(cap, sizeof *e);
        if (!e) {
            t->oom = 1;
            return;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->e[i].path)
                continue;
            size_t j = hash_str(t->e[i].path) & (cap - 1);
            while (e[j].path)
                j = (j + 1) & (cap - 1);
            e[j] = t->e[i];
        }
        free(t->e);
        t->e = e;
        t->cap = cap;
    }
    size_t j = hash_str(path) & (t->cap - 1);
    while (t->e[j].path) {
        if (strcmp(t->e[j].path, path) == 0) {
            t->e[j].ns += ns;
            return;
        }
        j = (j + 1) & (t->cap - 1);
    }
    if (!(t->e[j].path = strdup(path))) {
        t->oom = 1;
        return;
    }
    t->e[j].ns = ns;
    t->n++;
}

static int by_path(const void *x, const void *y)
{
    return strcmp(((const entry *)x)->path, ((const entry *)y)->path);
}

typedef struct frame {
    uint64_t end, dur, child;
    size_t path_len; /* path length including this frame */
} frame;

/* Frame text: semicolons and spaces would split the line; names never carry them, but files are untrusted. */
static size_t append_frame(char *path, size_t len, const char *name, int layer, int with_layer)
{
    char tmp[300];
    if (with_layer)
        snprintf(tmp, sizeof tmp, "%s %d", name, layer);
    else
        snprintf(tmp, sizeof tmp, "%s", name);
    if (len && len + 1 < PATH_MAX_LEN)
        path[len++] = ';';
    for (const char *p = tmp; *p && len + 1 < PATH_MAX_LEN; p++)
        path[len++] = (*p == ';' || *p == '\n' || *p == '\r') ? '_' : *p;
    path[len] = '\0';
    return len;
}

static void pop(table *t, frame *st, int *depth, char *path)
{
    frame *f = &st[--*depth];
    path[f->path_len] = '\0';
    table_add(t, path, f->dur > f->child ? f->dur - f->child : 0);
    path[*depth ? st[*depth - 1].path_len : 0] = '\0';
}

int gs_export_folded(gs_event_store *s, const char *path_out, int unit_ns, gs_error *err)
{
    gs_evlist l;
    if (gs_evlist_load(s, &l))
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path_out);
    table t = {0};
    frame st[MAX_DEPTH];
    int depth = 0;
    char path[PATH_MAX_LEN] = "";
    uint32_t track = UINT32_MAX;
    for (size_t i = 0; i < l.n; i++) {
        const gs_event *ev = &l.ev[i];
        if (ev->kind != GS_EV_RANGE && ev->kind != GS_EV_KERNEL)
            continue;
        if (ev->track != track) {
            while (depth)
                pop(&t, st, &depth, path);
            track = ev->track;
        }
        while (depth && ev->t_ns >= st[depth - 1].end)
            pop(&t, st, &depth, path);
        if (depth == MAX_DEPTH)
            pop(&t, st, &depth, path);
        if (depth)
            st[depth - 1].child += ev->dur_ns;
        size_t len = depth ? st[depth - 1].path_len : 0;
        path[len] = '\0';
        int with_layer = ev->kind == GS_EV_RANGE && ev->level == 1 && ev->layer >= 0;
        frame f = {ev->t_ns + ev->dur_ns, ev->dur_ns, 0, 0};
        f.path_len = append_frame(path, len, gs_store_string(s, ev->name), ev->layer, with_layer);
        st[depth++] = f;
    }
    while (depth)
        pop(&t, st, &depth, path);
    gs_evlist_free(&l);
    if (t.oom) {
        for (size_t i = 0; i < t.cap; i++)
            free(t.e[i].path);
        free(t.e);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path_out);
    }
    /* Compact and sort so the output is deterministic. */
    size_t n = 0;
    for (size_t i = 0; i < t.cap; i++)
        if (t.e[i].path)
            t.e[n++] = t.e[i];
    if (n > 1)
        qsort(t.e, n, sizeof *t.e, by_path);
    gs_outfile o;
    int rc = gs_out_open(&o, path_out, 0, err);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = t.e[i].ns / (uint64_t)(unit_ns > 0 ? unit_ns : 1);
        if (!rc && v > 0)
            gs_out_printf(&o, "%s %llu\n", t.e[i].path, (unsigned long long)v);
        free(t.e[i].path);
    }
    free(t.e);
    return rc ? rc : gs_out_close(&o, err);
}
