/* export_common.h - what the exporters share: a sorted copy of the store's
 * events and an output that is a plain file or a gzip stream. */
#ifndef GS_EXPORT_COMMON_H
#define GS_EXPORT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

#include "event_store.h"
#include "status.h"

typedef struct gs_evlist {
    gs_event *ev;
    size_t n;
    uint64_t t0; /* earliest timestamp: exports count time from here */
} gs_evlist;

/* Copies every kept event, sorted by track, start time, then longest first
 * (so a parent precedes the children it contains). 0 or -1 (out of memory). */
int gs_evlist_load(gs_event_store *s, gs_evlist *l);
void gs_evlist_free(gs_evlist *l);

typedef struct gs_outfile {
    FILE *f;
    gzFile gz;
    const char *path;
    char buf[1 << 16];
    size_t n;
    int failed;
} gs_outfile;

int gs_out_open(gs_outfile *o, const char *path, int gzip, gs_error *err);
void gs_out_flush(gs_outfile *o);
void gs_out_write(gs_outfile *o, const char *p, size_t n);
void gs_out_printf(gs_outfile *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes s as a JSON string (with quotes). */
void gs_out_json_string(gs_outfile *o, const char *s);
/* Formatting without printf, for the exporters' hot loops: each writes
 * straight into the buffer (flushing first when fewer than 64 bytes remain). */
static inline char *gs_out_room(gs_outfile *o)
{
    if (sizeof o->buf - o->n < 64)
        gs_out_flush(o);
    return o->buf + o->n;
}
/* A string literal: gs_out_lit(o, "abc"). */
#define gs_out_lit(o, s) gs_out_write((o), (s), sizeof(s) - 1)
static inline void gs_out_u64(gs_outfile *o, uint64_t v)
{
    char tmp[20];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char *p = gs_out_room(o);
    for (int i = 0; i < k; i++)
        p[i] = tmp[k - 1 - i];
    o->n += (size_t)k;
}
static inline void gs_out_i64(gs_outfile *o, int64_t v)
{
    if (v < 0) {
        gs_out_room(o)[0] = '-';
        o->n++;
        gs_out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        gs_out_u64(o, (uint64_t)v);
    }
}
/* Nanoseconds as microseconds, exact: 12345 -> "12.345", 12300 -> "12.3", 12000 -> "12". */
void gs_out_us(gs_outfile *o, uint64_t ns);
/* A JSON number: integers exactly, others with 9 significant digits; not
 * finite (JSON has no NaN or infinity) -> 0. */
void gs_out_num(gs_outfile *o, double v);
/* A JSON number with at most 3 decimals (rates such as GB/s). */
void gs_out_fixed3(gs_outfile *o, double v);

/* Flushes and closes; GS_ERR_RUNTIME naming the path if anything failed. */
int gs_out_close(gs_outfile *o, gs_error *err);

#endif
