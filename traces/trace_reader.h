/* trace_reader.h - opens a .gst file into an event store.
 *
 * The file is untrusted: every length, count and index is checked before it
 * is used. A truncated file yields its valid prefix and a warning naming the
 * byte offset; a chunk with a bad CRC is reported and skipped (the reader
 * resynchronizes on the next chunk's sync bytes); a newer major version is
 * refused naming both versions. Only an unusable header is an error. */
#ifndef GS_TRACE_READER_H
#define GS_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "event_store.h"
#include "status.h"

#define GS_TRACE_MAX_WARNINGS 16

typedef struct gs_trace {
    unsigned major, minor;
    char *program_version, *host, *device, *config_yaml; /* owned, NUL-terminated */
    uint64_t clock_origin_ns;
    gs_event_store *store;     /* unbounded; owned */
    int clean_end;             /* the END chunk was read */
    long chunks, bad_chunks;   /* chunks read, chunks skipped */
    uint64_t valid_bytes;      /* offset just past the last good chunk */
    char warnings[GS_TRACE_MAX_WARNINGS][256];
    int n_warnings;            /* stored (at most GS_TRACE_MAX_WARNINGS) */
    long warnings_total;
} gs_trace;

/* name is used in messages ("FILE: ..."). GS_OK with t filled (check
 * n_warnings), or GS_ERR_INPUT / GS_ERR_RUNTIME with one line in err; t is
 * then empty and needs no gs_trace_free. */
int gs_trace_read_mem(const uint8_t *data, size_t n, const char *name, gs_trace *t, gs_error *err);
int gs_trace_read_file(const char *path, gs_trace *t, gs_error *err);
void gs_trace_free(gs_trace *t);

#endif
