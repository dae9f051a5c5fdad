/* export_folded.c - folded stacks ("step;layer 3;attention 12345") for
 * flamegraph.pl, speedscope and inferno, weights rounded to the unit (the
 * CLI writes microseconds).
 *
 * Host side: ranges and syncs nest by time on each track (a range contains
 * those that start inside it); a frame's weight is its self time, duration
 * minus its children's. Device side: each kernel, copy and set is a frame
 * under the range that launched it (range_id), "step;layer 3;attention;
 * flash_decode_kernel", weighted by its device time. So on a GPU trace an
 * op's width is its host time plus its device work: the op's own line is
 * launch overhead, its kernel lines the GPU time. Device records whose range
 * is unknown go under "(no range)". */
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

/* Range id -> its full path, kept for the device records launched from it. */
typedef struct paths {
    uint64_t *keys; /* 0 empty */
    uint32_t *off, *len;
    size_t cap, n;
    char *text;
    size_t used, text_cap;
    int oom;
} paths;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void paths_add(paths *p, uint64_t id, const char *path, size_t len)
{
    if (!id || p->oom)
        return;
    if ((p->n + 1) * 2 > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        uint64_t *k = calloc(cap, sizeof *k);
        uint32_t *o = malloc(cap * sizeof *o), *l = malloc(cap * sizeof *l);
        if (!k || !o || !l) {
            free(k), free(o), free(l);
            p->oom = 1;
            return;
        }
        for (size_t i = 0; i < p->cap; i++) {
            if (!p->keys[i])
                continue;
            size_t j = mix64(p->keys[i]) & (cap - 1);
            while (k[j])
                j = (j + 1) & (cap - 1);
            k[j] = p->keys[i], o[j] = p->off[i], l[j] = p->len[i];
        }
        free(p->keys), free(p->off), free(p->len);
        p->keys = k, p->off = o, p->len = l, p->cap = cap;
    }
    size_t j = mix64(id) & (p->cap - 1);
    while (p->keys[j]) {
        if (p->keys[j] == id)
            return; /* a duplicate id (damaged file): the first wins */
        j = (j + 1) & (p->cap - 1);
    }
    if (p->used + len > p->text_cap) {
        size_t cap = p->text_cap ? p->text_cap : 1 << 16;
        while (cap < p->used + len)
            cap *= 2;
        char *t = cap > UINT32_MAX ? NULL : realloc(p->text, cap);
        if (!t) {
            p->oom = 1;
            return;
        }
        p->text = t, p->text_cap = cap;
    }
    memcpy(p->text + p->used, path, len);
    p->keys[j] = id, p->off[j] = (uint32_t)p->used, p->len[j] = (uint32_t)len;
    p->used += len;
    p->n++;
}

static const char *paths_find(const paths *p, uint64_t id, size_t *len)
{
    if (!id || !p->cap)
        return NULL;
    size_t j = mix64(id) & (p->cap - 1);
    while (p->keys[j]) {
        if (p->keys[j] == id) {
            *len = p->len[j];
            return p->text + p->off[j];
        }
        j = (j + 1) & (p->cap - 1);
    }
    return NULL;
}

static void paths_free(paths *p)
{
    free(p->keys), free(p->off), free(p->len), free(p->text);
}

static int is_device(int kind) { return kind == GS_EV_KERNEL || kind == GS_EV_MEMCPY || kind == GS_EV_MEMSET; }

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
    paths ids = {0};
    frame st[MAX_DEPTH];
    int depth = 0;
    char path[PATH_MAX_LEN] = "";
    uint32_t track = UINT32_MAX;
    for (size_t i = 0; i < l.n; i++) {
        const gs_event *ev = &l.ev[i];
        if (ev->kind != GS_EV_RANGE && ev->kind != GS_EV_SYNC)
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
        if (ev->kind == GS_EV_RANGE)
            paths_add(&ids, ev->aux, path, f.path_len);
    }
    while (depth)
        pop(&t, st, &depth, path);
    /* Device records under the range that launched them. */
    for (size_t i = 0; i < l.n; i++) {
        const gs_event *ev = &l.ev[i];
        if (!is_device(ev->kind))
            continue;
        size_t len = 0;
        const char *p = paths_find(&ids, ev->range_id, &len);
        if (!p) {
            p = "(no range)";
            len = strlen(p);
        }
        if (len >= PATH_MAX_LEN)
            len = PATH_MAX_LEN - 1;
        memcpy(path, p, len);
        path[len] = '\0';
        len = append_frame(path, len, gs_store_string(s, ev->name), 0, 0);
        table_add(&t, path, ev->dur_ns);
    }
    if (ids.oom)
        t.oom = 1;
    paths_free(&ids);
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
        uint64_t unit = (uint64_t)(unit_ns > 0 ? unit_ns : 1);
        uint64_t v = t.e[i].ns / unit + (t.e[i].ns % unit >= (unit + 1) / 2); /* rounded: 1.6 us -> 2 */
        if (!rc && v > 0)
            gs_out_printf(&o, "%s %llu\n", t.e[i].path, (unsigned long long)v);
        free(t.e[i].path);
    }
    free(t.e);
    return rc ? rc : gs_out_close(&o, err);
}
