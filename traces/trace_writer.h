/* trace_writer.h - writes an event store to a .gst file as it fills.
 *
 * The writer is one more reader of the store: it drains new strings and
 * events into a pending chunk and writes the chunk (write(2), no stdio
 * buffer) when it holds flush_events events or 250 ms have passed, so a
 * recording killed with SIGKILL keeps everything up to its last chunk. Run it
 * from the recording loop (gs_trace_writer_poll) or on its own thread. */
#ifndef GS_TRACE_WRITER_H
#define GS_TRACE_WRITER_H

#include <stdint.h>

#include "event_store.h"
#include "status.h"

typedef struct gs_trace_meta {
    const char *program_version;
    const char *host;
    const char *device;
    const char *config_yaml;
    uint64_t clock_origin_ns;
} gs_trace_meta;

#define GS_TRACE_FLUSH_MS 250
#define GS_TRACE_FLUSH_EVENTS 16384

typedef struct gs_trace_writer gs_trace_writer;

/* Creates path (truncating it) and writes the header. flush_events 0: default. */
int gs_trace_writer_open(gs_trace_writer **w, const char *path, const gs_trace_meta *meta,
                         gs_event_store *store, int flush_events, gs_error *err);
/* Drains the store; writes a chunk if due (or always when force). */
int gs_trace_writer_poll(gs_trace_writer *w, int force, gs_error *err);
/* Polls every 50 ms on a thread of its own until close. */
int gs_trace_writer_start_thread(gs_trace_writer *w, gs_error *err);
/* Stops the thread, drains everything, writes the END chunk, closes; frees w. */
int gs_trace_writer_close(gs_trace_writer *w, gs_error *err);
/* Chunks and bytes written so far (for progress lines and tests). */
uint64_t gs_trace_writer_bytes(const gs_trace_writer *w);

/* Fills host with "hostname (Linux 6.1 x86_64)". */
void gs_trace_host_description(char *host, int cap);

#endif
