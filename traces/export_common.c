/* export_common.c - sorted event copies and buffered (optionally gzip) output. */
#include "export_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct { gs_evlist *l; size_t cap; int oom; } collect;

static int collect_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    collect *c = ctx;
    if (c->l->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        gs_event *e = realloc(c->l->ev, cap * sizeof *e);
        if (!e) {
            c->oom = 1;
            return 1;
        }
        c->l->ev = e;
        c->cap = cap;
    }
    c->l->ev[c->l->n++] = *ev;
    if (c->l->n == 1 || ev->t_ns < c->l->t0)
        c->l->t0 = ev->t_ns;
    return 0;
}

static int by_track_time(const void *x, const void *y)
{
    const gs_event *a = x, *b = y;
    if (a->track != b->track)
        return a->track < b->track ? -1 : 1;
    if (a->t_ns != b->t_ns)
        return a->t_ns < b->t_ns ? -1 : 1;
    if (a->dur_ns != b->dur_ns)
        return a->dur_ns > b->dur_ns ? -1 : 1;
    return (int)a->level - (int)b->level;
}

int gs_evlist_load(gs_event_store *s, gs_evlist *l)
{
    memset(l, 0, sizeof *l);
    collect c = {l, 0, 0};
    gs_store_visit(s, 0, gs_store_count(s), collect_visit, &c);
    if (c.oom) {
        gs_evlist_free(l);
        return -1;
    }
    if (l->n > 1)
        qsort(l->ev, l->n, sizeof *l->ev, by_track_time);
    return 0;
}

void gs_evlist_free(gs_evlist *l)
{
    free(l->ev);
    memset(l, 0, sizeof *l);
}

int gs_out_open(gs_outfile *o, const char *path, int gzip, gs_error *err)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    if (gzip)
        o->gz = gzopen(path, "wb6");
    else
        o->f = fopen(path, "wb");
    if (!o->f && !o->gz)
        return gs_error_set(err, GS_ERR_INPUT, "%s: cannot create: %s", path, strerror(errno));
    return GS_OK;
}

void gs_out_flush(gs_outfile *o)
{
    if (!o->n)
        return;
    if (o->gz) {
        if (gzwrite(o->gz, o->buf, (unsigned)o->n) != (int)o->n)
            o->failed = 1;
    } else if (fwrite(o->buf, 1, o->n, o->f) != o->n) {
        o->failed = 1;
    }
    o->n = 0;
}

void gs_out_write(gs_outfile *o, const char *p, size_t n)
{
    if (o->n + n > sizeof o->buf)
        gs_out_flush(o);
    if (n > sizeof o->buf) {
        if (o->gz ? gzwrite(o->gz, p, (unsigned)n) != (int)n : fwrite(p, 1, n, o->f) != n)
            o->failed = 1;
        return;
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
}

void gs_out_printf(gs_outfile *o, const char *fmt, ...)
{
    if (sizeof o->buf - o->n < 1024)
        gs_out_flush(o);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->n, sizeof o->buf - o->n, fmt, ap);
    va_end(ap);
    if (k < 0) {
        o->failed = 1;
        return;
    }
    if ((size_t)k < sizeof o->buf - o->n) {
        o->n += (size_t)k;
        return;
    }
    char *tmp = malloc((size_t)k + 1);
    if (!tmp) {
        o->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)k + 1, fmt, ap);
    va_end(ap);
    gs_out_write(o, tmp, (size_t)k);
    free(tmp);
}

void gs_out_json_string(gs_outfile *o, const char *s)
{
    gs_out_write(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            gs_out_write(o, e, 2);
        } else if (*p >= 0x7f) {
            gs_out_write(o, "?", 1); /* untrusted names: never emit invalid UTF-8 */
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            gs_out_write(o, e, 6);
        } else {
            gs_out_write(o, (const char *)p, 1);
        }
    }
    gs_out_write(o, "\"", 1);
}

int gs_out_close(gs_outfile *o, gs_error *err)
{
    gs_out_flush(o);
    if (o->gz) {
        if (gzclose(o->gz) != Z_OK)
            o->failed = 1;
    } else if (o->f && fclose(o->f)) {
        o->failed = 1;
    }
    o->f = NULL;
    o->gz = NULL;
    if (o->failed)
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: write failed", o->path);
    return GS_OK;
}

void gs_out_us(gs_outfile *o, uint64_t ns)
{
    gs_out_u64(o, ns / 1000);
    unsigned frac = (unsigned)(ns % 1000);
    if (!frac)
        return;
    char *p = gs_out_room(o);
    p[0] = '.';
    p[1] = (char)('0' + frac / 100);
    p[2] = (char)('0' + frac / 10 % 10);
    p[3] = (char)('0' + frac % 10);
    o->n += frac % 100 == 0 ? 2 : frac % 10 == 0 ? 3 : 4;
}

void gs_out_num(gs_outfile *o, double v)
{
    if (!(v == v) || v > 1e300 || v < -1e300) {
        gs_out_lit(o, "0");
        return;
    }
    if (v > -9e15 && v < 9e15 && v == (double)(int64_t)v) {
        gs_out_i64(o, (int64_t)v);
        return;
    }
    char *p = gs_out_room(o);
    int k = snprintf(p, 32, "%.9g", v);
    if (k > 0 && k < 32)
        o->n += (size_t)k;
}

void gs_out_fixed3(gs_outfile *o, double v)
{
    if (!(v > -9e12 && v < 9e12)) {
        gs_out_num(o, v);
        return;
    }
    int neg = v < 0;
    uint64_t m = (uint64_t)((neg ? -v : v) * 1000.0 + 0.5);
    if (neg && m)
        gs_out_lit(o, "-");
    gs_out_us(o, m); /* the same digits: thousandths with trailing zeros dropped */
}
