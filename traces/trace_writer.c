/* trace_writer.c - header, STRINGS/EVENTS chunks (zlib), END chunk. */
#include "trace_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "trace_format.h"

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} buf;

static int buf_reserve(buf *b, size_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put_bytes(buf *b, const void *src, size_t n)
{
    if (buf_reserve(b, n))
        return;
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v)
{
    if (buf_reserve(b, 10))
        return;
    while (v >= 0x80) {
        b->p[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->n++] = (uint8_t)v;
}

struct gs_trace_writer {
    int fd;
    char *path;
    gs_event_store *store;
    int flush_events;
    uint64_t drained;           /* events taken from the store */
    uint32_t strings_written;
    buf events;                 /* pending encoded events */
    uint64_t pending;           /* events in `events` */
    uint64_t prev_t;
    int64_t prev_step;
    uint64_t prev_aux[GS_EV_KIND_MAX + 1]; /* per kind: range ids and correlation ids climb by small steps */
    uint64_t prev_range;
    uint64_t last_flush_ns;
    uint64_t total_events;
    _Atomic uint64_t bytes;
    buf chunk;                  /* scratch for compression */
    pthread_t thread;
    int thread_running;
    atomic_int stop;
    int thread_rc;
    gs_error thread_err;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int write_all(gs_trace_writer *w, const uint8_t *p, size_t n, gs_error *err)
{
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return gs_error_set(err, GS_ERR_RUNTIME, "%s: write failed: %s", w->path, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
        atomic_fetch_add(&w->bytes, (uint64_t)k);
    }
    return GS_OK;
}

static int write_chunk(gs_trace_writer *w, int type, const uint8_t *payload, size_t n, gs_error *err)
{
    uLongf bound = compressBound((uLong)n);
    w->chunk.n = 0;
    if (buf_reserve(&w->chunk, GS_CHUNK_HEADER + bound))
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory writing %s", w->path);
    uint8_t *h = w->chunk.p;
    uLongf clen = bound;
    if (compress2(h + GS_CHUNK_HEADER, &clen, payload, (uLong)n, 6) != Z_OK)
        return gs_error_set(err, GS_ERR_RUNTIME, "zlib failed compressing a chunk of %s", w->path);
    memcpy(h, GS_CHUNK_SYNC, 4);
    h[4] = (uint8_t)type;
    h[5] = h[6] = h[7] = 0;
    gs_put_u32(h + 8, (uint32_t)clen);
    gs_put_u32(h + 12, (uint32_t)n);
    uLong crc = crc32(0L, h + 4, 12);
    crc = crc32(crc, h + GS_CHUNK_HEADER, (uInt)clen);
    gs_put_u32(h + 16, (uint32_t)crc);
    return write_all(w, h, GS_CHUNK_HEADER + clen, err);
}

int gs_trace_writer_open(gs_trace_writer **out, const char *path, const gs_trace_meta *meta,
                         gs_event_store *store, int flush_events, gs_error *err)
{
    *out = NULL;
    gs_trace_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    }
    w->store = store;
    w->flush_events = flush_events > 0 ? flush_events : GS_TRACE_FLUSH_EVENTS;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = gs_error_set(err, GS_ERR_INPUT, "%s: cannot create: %s", path, strerror(errno));
        free(w->path);
        free(w);
        return rc;
    }
    buf hb = {0};
    uint8_t fixed[GS_TRACE_HEADER_FIXED] = {0};
    put_bytes(&hb, fixed, sizeof fixed);
    const char *fields[4] = {meta->program_version, meta->host, meta->device, meta->config_yaml};
    for (int i = 0; i < 4; i++) {
        const char *f = fields[i] ? fields[i] : "";
        put_varint(&hb, strlen(f));
        put_bytes(&hb, f, strlen(f));
    }
    uint8_t origin[8];
    gs_put_u64(origin, meta->clock_origin_ns);
    put_bytes(&hb, origin, 8);
    uint8_t crcb[4] = {0};
    put_bytes(&hb, crcb, 4);
    int rc = GS_OK;
    if (hb.oom || hb.n - 4 - GS_TRACE_HEADER_FIXED > GS_TRACE_MAX_HEADER) {
        rc = gs_error_set(err, GS_ERR_RUNTIME, "%s: header too large or out of memory", path);
    } else {
        memcpy(hb.p, GS_TRACE_MAGIC, GS_TRACE_MAGIC_LEN);
        gs_put_u16(hb.p + 8, GS_TRACE_MAJOR);
        gs_put_u16(hb.p + 10, GS_TRACE_MINOR);
        gs_put_u32(hb.p + 12, (uint32_t)(hb.n - 4 - GS_TRACE_HEADER_FIXED));
        gs_put_u32(hb.p + hb.n - 4, (uint32_t)crc32(0L, hb.p, (uInt)(hb.n - 4)));
        rc = write_all(w, hb.p, hb.n, err);
    }
    free(hb.p);
    if (rc) {
        close(w->fd);
        free(w->path);
        free(w);
        return rc;
    }
    w->last_flush_ns = mono_ns();
    *out = w;
    return GS_OK;
}

static int encode_event(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_trace_writer *w = ctx;
    buf *b = &w->events;
    uint8_t head[2] = {ev->kind, ev->level};
    put_bytes(b, head, 2);
    put_varint(b, ev->name);
    put_varint(b, gs_zigzag(ev->layer));
    put_varint(b, ev->track);
    put_varint(b, gs_zigzag(ev->step - w->prev_step));
    put_varint(b, gs_zigzag((int64_t)(ev->t_ns - w->prev_t)));
    put_varint(b, ev->dur_ns);
    unsigned k = ev->kind <= GS_EV_KIND_MAX ? ev->kind : 0;
    put_varint(b, gs_zigzag((int64_t)(ev->aux - w->prev_aux[k])));
    w->prev_aux[k] = ev->aux;
    switch (ev->kind) {
    case GS_EV_KERNEL:
    case GS_EV_MEMCPY:
    case GS_EV_MEMSET:
    case GS_EV_SYNC:
    case GS_EV_METRIC:
        put_varint(b, gs_zigzag((int64_t)(ev->range_id - w->prev_range)));
        w->prev_range = ev->range_id;
        break;
    default:
        break;
    }
    switch (ev->kind) {
    case GS_EV_COUNTER:
    case GS_EV_MARKER:
    case GS_EV_METRIC: {
        uint64_t bits;
        memcpy(&bits, &ev->value, 8);
        uint8_t v[8];
        gs_put_u64(v, bits);
        put_bytes(b, v, 8);
        break;
    }
    case GS_EV_MEMCPY:
    case GS_EV_MEMSET:
        put_varint(b, ev->value > 0 ? (uint64_t)ev->value : 0);
        break;
    case GS_EV_KERNEL: {
        const gs_event_launch *l = &ev->u.launch;
        for (int i = 0; i < 3; i++)
            put_varint(b, l->grid[i]);
        for (int i = 0; i < 3; i++)
            put_varint(b, l->block[i]);
        put_varint(b, l->registers);
        put_varint(b, l->shared_bytes);
        break;
    }
    case GS_EV_KV_BLOCKS:
        put_varint(b, ev->u.kv.first_block);
        put_varint(b, ev->u.kv.n_blocks);
        put_varint(b, gs_zigzag(ev->u.kv.seq));
        put_varint(b, ev->u.kv.total_blocks);
        break;
    default:
        break;
    }
    w->prev_t = ev->t_ns;
    w->prev_step = ev->step;
    w->pending++;
    w->drained = index + 1;
    return w->pending >= (uint64_t)w->flush_events; /* stop: flush before taking more */
}

static int flush_strings(gs_trace_writer *w, uint32_t upto, gs_error *err)
{
    if (upto <= w->strings_written)
        return GS_OK;
    buf b = {0};
    put_varint(&b, w->strings_written);
    put_varint(&b, upto - w->strings_written);
    for (uint32_t id = w->strings_written; id < upto; id++) {
        const char *s = gs_store_string(w->store, id);
        put_varint(&b, strlen(s));
        put_bytes(&b, s, strlen(s));
    }
    int rc = b.oom ? gs_error_set(err, GS_ERR_RUNTIME, "out of memory") : write_chunk(w, GS_CHUNK_STRINGS, b.p, b.n, err);
    free(b.p);
    if (!rc)
        w->strings_written = upto;
    return rc;
}

static int flush_events(gs_trace_writer *w, gs_error *err)
{
    if (!w->pending)
        return GS_OK;
    buf b = {0};
    put_varint(&b, w->pending);
    put_bytes(&b, w->events.p, w->events.n);
    int rc = (b.oom || w->events.oom) ? gs_error_set(err, GS_ERR_RUNTIME, "out of memory")
                                      : write_chunk(w, GS_CHUNK_EVENTS, b.p, b.n, err);
    free(b.p);
    w->total_events += w->pending;
    w->pending = 0;
    w->events.n = 0;
    w->prev_t = 0;
    w->prev_step = 0;
    memset(w->prev_aux, 0, sizeof w->prev_aux);
    w->prev_range = 0;
    return rc;
}

int gs_trace_writer_poll(gs_trace_writer *w, int force, gs_error *err)
{
    for (;;) {
        /* Count first, then strings: every string an event below count names
         * was published before that event was. */
        uint64_t count = gs_store_count(w->store);
        uint32_t nstr = gs_store_n_strings(w->store);
        if (w->drained < gs_store_first(w->store))
            w->drained = gs_store_first(w->store); /* live-mode store dropped some: not a recording */
        if (w->drained < count)
            gs_store_visit(w->store, w->drained, count, encode_event, w);
        uint64_t now = mono_ns();
        int full = w->pending >= (uint64_t)w->flush_events;
        int due = force || full || now - w->last_flush_ns >= (uint64_t)GS_TRACE_FLUSH_MS * 1000000ULL;
        if (!due)
            return GS_OK;
        int rc = flush_strings(w, nstr, err);
        if (!rc)
            rc = flush_events(w, err);
        if (rc)
            return rc;
        w->last_flush_ns = now;
        if (!full || w->drained >= count)
            return GS_OK;
    }
}

static void *writer_thread(void *arg)
{
    gs_trace_writer *w = arg;
    while (!atomic_load(&w->stop)) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        if (!w->thread_rc)
            w->thread_rc = gs_trace_writer_poll(w, 0, &w->thread_err);
    }
    return NULL;
}

int gs_trace_writer_start_thread(gs_trace_writer *w, gs_error *err)
{
    if (pthread_create(&w->thread, NULL, writer_thread, w))
        return gs_error_set(err, GS_ERR_RUNTIME, "cannot start the trace writer thread");
    w->thread_running = 1;
    return GS_OK;
}

uint64_t gs_trace_writer_bytes(const gs_trace_writer *w) { return atomic_load(&((gs_trace_writer *)w)->bytes); }

int gs_trace_writer_close(gs_trace_writer *w, gs_error *err)
{
    if (!w)
        return GS_OK;
    int rc = GS_OK;
    if (w->thread_running) {
        atomic_store(&w->stop, 1);
        pthread_join(w->thread, NULL);
        if (w->thread_rc) {
            rc = w->thread_rc;
            if (err)
                *err = w->thread_err;
        }
    }
    if (!rc)
        rc = gs_trace_writer_poll(w, 1, err);
    if (!rc) {
        buf b = {0};
        put_varint(&b, w->total_events);
        put_varint(&b, w->strings_written);
        rc = b.oom ? gs_error_set(err, GS_ERR_RUNTIME, "out of memory") : write_chunk(w, GS_CHUNK_END, b.p, b.n, err);
        free(b.p);
    }
    if (close(w->fd) && !rc)
        rc = gs_error_set(err, GS_ERR_RUNTIME, "%s: close failed: %s", w->path, strerror(errno));
    free(w->events.p);
    free(w->chunk.p);
    free(w->path);
    free(w);
    return rc;
}

void gs_trace_host_description(char *host, int cap)
{
    char name[256] = "unknown";
    gethostname(name, sizeof name - 1);
    name[sizeof name - 1] = '\0';
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(host, (size_t)cap, "%s (%s %s %s)", name, u.sysname, u.release, u.machine);
    else
        snprintf(host, (size_t)cap, "%s", name);
}
