/* export_common.h - what the exporters share: a sorted copy of the store's
 * events and an output that is a plain file or a gzip stream. */
#ifndef GS_EXPORT_COMMON_H
#define GS_EXPORT_COMMON_H

#include <stddef.h>
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
void gs_out_write(gs_outfile *o, const char *p, size_t n);
void gs_out_printf(gs_outfile *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes s as a JSON string (with quotes). */
void gs_out_json_string(gs_outfile *o, const char *s);
/* Flushes and closes; GS_ERR_RUNTIME naming the path if anything failed. */
int gs_out_close(gs_outfile *o, gs_error *err);

#endif
