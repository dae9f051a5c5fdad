/* trace_reader.c - bounds-checked decoding of the .gst format. */
#include "trace_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "trace_format.h"

#define MAX_STRINGS (1u << 22)
#define MAX_STRING_LEN (1u << 16)

typedef struct cursor {
    const uint8_t *p;
    size_t n, off;
    int bad;
} cursor;

static uint64_t get_varint(cursor *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->off >= c->n) {
            c->bad = 1;
            return 0;
        }
        uint8_t b = c->p[c->off++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

static const uint8_t *get_bytes(cursor *c, size_t n)
{
    if (c->bad || n > c->n - c->off) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

static char *get_string(cursor *c, size_t max)
{
    uint64_t len = get_varint(c);
    if (c->bad || len > max) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = get_bytes(c, (size_t)len);
    if (!p)
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (!s) {
        c->bad = 1;
        return NULL;
    }
    memcpy(s, p, (size_t)len);
    s[len] = '\0';
    return s;
}

static void warn(gs_trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(gs_trace *t, const char *fmt, ...)
{
    t->warnings_total++;
    if (t->n_warnings >= GS_TRACE_MAX_WARNINGS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->warnings[t->n_warnings++], sizeof t->warnings[0], fmt, ap);
    va_end(ap);
}

typedef struct reader {
    gs_trace *t;
    uint32_t *idmap;   /* file string id -> store id */
    uint32_t n_ids, cap_ids;
    uint32_t unknown;  /* store id of "?" */
} reader;

static int map_push(reader *r, uint32_t store_id)
{
    if (r->n_ids == r->cap_ids) {
        uint32_t cap = r->cap_ids ? r->cap_ids * 2 : 256;
        uint32_t *m = realloc(r->idmap, cap * sizeof *m);
        if (!m)
            return -1;
        r->idmap = m;
        r->cap_ids = cap;
    }
    r->idmap[r->n_ids++] = store_id;
    return 0;
}

/* Returns 0, -1 malformed, -2 out of memory. */
static int decode_strings(reader *r, cursor *c)
{
    uint64_t first = get_varint(c), n = get_varint(c);
    if (c->bad || first > MAX_STRINGS || n > MAX_STRINGS || first + n > MAX_STRINGS)
        return -1;
    while (r->n_ids < first) /* a lost STRINGS chunk: its names read as "?" */
        if (map_push(r, r->unknown))
            return -2;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t len = get_varint(c);
        if (c->bad || len > MAX_STRING_LEN)
            return -1;
        const uint8_t *p = get_bytes(c, (size_t)len);
        if (!p)
            return -1;
        if (first + k < r->n_ids)
            continue; /* already known */
        uint32_t id = gs_store_intern_n(r->t->store, (const char *)p, (size_t)len);
        if (id == GS_STORE_NO_ID || map_push(r, id))
            return -2;
    }
    return c->off == c->n ? 0 : -1;
}

static int decode_events(reader *r, cursor *c)
{
    uint64_t n = get_varint(c);
    /* Every event takes at least 10 bytes: a count beyond that is a lie. */
    if (c->bad || n > c->n / 10 + 1)
        return -1;
    uint64_t prev_t = 0;
    int64_t prev_step = 0;
    uint64_t prev_aux[GS_EV_KIND_MAX + 1] = {0};
    uint64_t prev_range = 0;
    for (uint64_t k = 0; k < n; k++) {
        const uint8_t *h = get_bytes(c, 2);
        if (!h)
            return -1;
        gs_event ev = {0};
        ev.kind = h[0];
        ev.level = h[1];
        uint64_t name = get_varint(c);
        int64_t layer = gs_unzigzag(get_varint(c));
        uint64_t track = get_varint(c);
        int64_t dstep = gs_unzigzag(get_varint(c));
        int64_t dt = gs_unzigzag(get_varint(c));
        ev.dur_ns = get_varint(c);
        int64_t daux = gs_unzigzag(get_varint(c));
        if (c->bad || ev.kind < 1 || ev.kind > GS_EV_KIND_MAX || (ev.kind == GS_EV_RANGE && ev.level > 2) ||
            (ev.kind == GS_EV_MEMCPY && ev.level > GS_COPY_KIND_MAX) ||
            (ev.kind == GS_EV_SYNC && ev.level > GS_SYNC_KIND_MAX) ||
            (ev.kind == GS_EV_METRIC && ev.level > GS_METRIC_OP) ||
            layer < INT32_MIN || layer > INT32_MAX || track > UINT32_MAX)
            return -1;
        ev.aux = prev_aux[ev.kind] + (uint64_t)daux;
        prev_aux[ev.kind] = ev.aux;
        if (ev.kind == GS_EV_KERNEL || ev.kind == GS_EV_MEMCPY || ev.kind == GS_EV_MEMSET ||
            ev.kind == GS_EV_SYNC || ev.kind == GS_EV_METRIC) {
            ev.range_id = prev_range + (uint64_t)gs_unzigzag(get_varint(c));
            prev_range = ev.range_id;
        }
        if (ev.kind == GS_EV_COUNTER || ev.kind == GS_EV_MARKER || ev.kind == GS_EV_METRIC) {
            const uint8_t *v = get_bytes(c, 8);
            if (!v)
                return -1;
            uint64_t bits = gs_get_u64(v);
            memcpy(&ev.value, &bits, 8);
        } else if (ev.kind == GS_EV_MEMCPY || ev.kind == GS_EV_MEMSET) {
            ev.value = (double)get_varint(c);
        } else if (ev.kind == GS_EV_KERNEL) {
            uint64_t v[8];
            for (int i = 0; i < 8; i++)
                v[i] = get_varint(c);
            if (c->bad || v[0] > UINT32_MAX || v[1] > UINT32_MAX || v[2] > UINT32_MAX || v[3] > UINT16_MAX ||
                v[4] > UINT16_MAX || v[5] > UINT16_MAX || v[6] > UINT16_MAX || v[7] > UINT32_MAX)
                return -1;
            for (int i = 0; i < 3; i++) {
                ev.u.launch.grid[i] = (uint32_t)v[i];
                ev.u.launch.block[i] = (uint16_t)v[3 + i];
            }
            ev.u.launch.registers = (uint16_t)v[6];
            ev.u.launch.shared_bytes = (uint32_t)v[7];
        } else if (ev.kind == GS_EV_KV_BLOCKS) {
            uint64_t first = get_varint(c);
            uint64_t nb = get_varint(c);
            int64_t seq = gs_unzigzag(get_varint(c));
            uint64_t total = get_varint(c);
            /* A run must lie inside the cache it describes. */
            if (c->bad || total > UINT32_MAX || first > total || nb > total - first || seq < -1 || seq > INT32_MAX)
                return -1;
            ev.u.kv.first_block = (uint32_t)first;
            ev.u.kv.n_blocks = (uint32_t)nb;
            ev.u.kv.seq = (int32_t)seq;
            ev.u.kv.total_blocks = (uint32_t)total;
        }
        if (c->bad)
            return -1;
        ev.name = name < r->n_ids ? r->idmap[name] : r->unknown;
        ev.layer = (int32_t)layer;
        ev.track = (uint32_t)track;
        /* Wrapping arithmetic on purpose: deltas are exact modulo 2^64. */
        ev.step = (int64_t)((uint64_t)prev_step + (uint64_t)dstep);
        ev.t_ns = prev_t + (uint64_t)dt;
        prev_step = ev.step;
        prev_t = ev.t_ns;
        if (gs_store_append(r->t->store, &ev))
            return -2;
    }
    return c->off == c->n ? 0 : -1;
}

static long find_sync(const uint8_t *d, size_t n, size_t from)
{
    for (size_t i = from; i + 4 <= n; i++)
        if (memcmp(d + i, GS_CHUNK_SYNC, 4) == 0)
            return (long)i;
    return -1;
}

void gs_trace_free(gs_trace *t)
{
    free(t->program_version);
    free(t->host);
    free(t->device);
    free(t->config_yaml);
    gs_store_destroy(t->store);
    memset(t, 0, sizeof *t);
}

int gs_trace_read_mem(const uint8_t *d, size_t n, const char *name, gs_trace *t, gs_error *err)
{
    memset(t, 0, sizeof *t);
    if (n == 0)
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset 0: empty file, not a gptscope trace", name);
    if (n < GS_TRACE_MAGIC_LEN || memcmp(d, GS_TRACE_MAGIC, GS_TRACE_MAGIC_LEN) != 0)
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset 0: not a gptscope trace (bad magic)", name);
    if (n < GS_TRACE_HEADER_FIXED)
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset %zu: truncated header", name, n);
    t->major = gs_get_u16(d + 8);
    t->minor = gs_get_u16(d + 10);
    if (t->major > GS_TRACE_MAJOR)
        return gs_error_set(err, GS_ERR_INPUT,
                            "%s: byte offset 8: trace format version %u.%u is newer than this gptscope reads (%d.%d); "
                            "open it with a newer gptscope",
                            name, t->major, t->minor, GS_TRACE_MAJOR, GS_TRACE_MINOR);
    if (t->major < GS_TRACE_MAJOR)
        return gs_error_set(err, GS_ERR_INPUT,
                            "%s: byte offset 8: trace format version %u.%u is older than this gptscope reads (%d.%d); "
                            "record it again",
                            name, t->major, t->minor, GS_TRACE_MAJOR, GS_TRACE_MINOR);
    uint32_t body = gs_get_u32(d + 12);
    if (body > GS_TRACE_MAX_HEADER)
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset 12: header length %u is too large", name, body);
    size_t hend = GS_TRACE_HEADER_FIXED + (size_t)body + 4;
    if (hend > n)
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset %zu: truncated header (needs %zu bytes)", name, n, hend);
    if ((uint32_t)crc32(0L, d, (uInt)(hend - 4)) != gs_get_u32(d + hend - 4))
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset %zu: header CRC mismatch", name, hend - 4);
    cursor c = {d + GS_TRACE_HEADER_FIXED, body, 0, 0};
    t->program_version = get_string(&c, body);
    t->host = get_string(&c, body);
    t->device = get_string(&c, body);
    t->config_yaml = get_string(&c, body);
    const uint8_t *origin = get_bytes(&c, 8);
    if (c.bad || !origin) {
        gs_trace_free(t);
        return gs_error_set(err, GS_ERR_INPUT, "%s: byte offset %zu: malformed header field", name,
                            GS_TRACE_HEADER_FIXED + c.off);
    }
    t->clock_origin_ns = gs_get_u64(origin);
    t->store = gs_store_create(0);
    reader r = {t, NULL, 0, 0, 0};
    if (!t->store || (r.unknown = gs_store_intern(t->store, "?")) == GS_STORE_NO_ID) {
        gs_trace_free(t);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory reading %s", name);
    }
    uint8_t *raw = NULL;
    size_t off = hend;
    t->valid_bytes = off;
    int rc = GS_OK;
    while (off < n && !t->clean_end) {
        if (n - off < GS_CHUNK_HEADER) {
            warn(t, "truncated at byte offset %zu: incomplete chunk header (file ends at %zu); kept the prefix", off, n);
            break;
        }
        const uint8_t *h = d + off;
        uint32_t clen = gs_get_u32(h + 8), ulen = gs_get_u32(h + 12);
        int sync_ok = memcmp(h, GS_CHUNK_SYNC, 4) == 0;
        if (!sync_ok || clen > GS_TRACE_MAX_CHUNK || ulen > GS_TRACE_MAX_CHUNK) {
            long next = find_sync(d, n, off + 1);
            warn(t, "bad chunk header at byte offset %zu; skipped to %s", off, next < 0 ? "the end" : "the next chunk");
            t->bad_chunks++;
            if (next < 0)
                break;
            off = (size_t)next;
            continue;
        }
        if (clen > n - off - GS_CHUNK_HEADER) {
            warn(t, "truncated at byte offset %zu: chunk needs %zu bytes, file ends at %zu; kept the prefix", off,
                 (size_t)GS_CHUNK_HEADER + clen, n);
            break;
        }
        uLong crc = crc32(0L, h + 4, 12);
        crc = crc32(crc, h + GS_CHUNK_HEADER, clen);
        size_t end = off + GS_CHUNK_HEADER + clen;
        if ((uint32_t)crc != gs_get_u32(h + 16)) {
            /* The length itself may be the damaged field: trust it only when a chunk follows. */
            long next = (end == n || (n - end >= 4 && memcmp(d + end, GS_CHUNK_SYNC, 4) == 0)) ? (long)end
                                                                                             : find_sync(d, n, off + 1);
            warn(t, "CRC mismatch in chunk at byte offset %zu; chunk skipped", off);
            t->bad_chunks++;
            if (next < 0)
                break;
            off = (size_t)next;
            continue;
        }
        uint8_t *nraw = realloc(raw, ulen ? ulen : 1);
        if (!nraw) {
            rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory reading %s", name);
            break;
        }
        raw = nraw;
        uLongf got = ulen;
        int zr = uncompress(raw, &got, h + GS_CHUNK_HEADER, clen);
        int dr = -1;
        if (zr == Z_OK && got == ulen) {
            cursor pc = {raw, ulen, 0, 0};
            if (h[4] == GS_CHUNK_STRINGS)
                dr = decode_strings(&r, &pc);
            else if (h[4] == GS_CHUNK_EVENTS)
                dr = decode_events(&r, &pc);
            else if (h[4] == GS_CHUNK_END) {
                dr = 0;
                t->clean_end = 1;
            } else {
                dr = 0; /* an unknown chunk type from a newer minor version: skip it */
                warn(t, "chunk of unknown type %u at byte offset %zu skipped", h[4], off);
            }
        }
        if (dr == -2) {
            rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory reading %s", name);
            break;
        }
        if (dr) {
            warn(t, "malformed chunk at byte offset %zu; %s", off, zr == Z_OK ? "decoding stopped there" : "zlib rejected it");
            t->bad_chunks++;
        } else {
            t->chunks++;
        }
        off = end;
        t->valid_bytes = off;
    }
    if (!rc && !t->clean_end && t->n_warnings == 0)
        warn(t, "no end chunk after byte offset %zu: the recording was interrupted; kept everything before it",
             (size_t)t->valid_bytes);
    if (!rc && t->clean_end && off < n)
        warn(t, "%zu bytes after the end chunk at byte offset %zu ignored", n - off, off);
    free(raw);
    free(r.idmap);
    if (rc)
        gs_trace_free(t);
    return rc;
}

int gs_trace_read_file(const char *path, gs_trace *t, gs_error *err)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return gs_error_set(err, GS_ERR_INPUT, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *d = malloc(cap);
    while (d) {
        if (n == cap) {
            uint8_t *nd = cap > ((size_t)1 << 40) ? NULL : realloc(d, cap * 2);
            if (!nd) {
                free(d);
                d = NULL;
                break;
            }
            d = nd;
            cap *= 2;
        }
        size_t k = fread(d + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    int ferr = ferror(f);
    fclose(f);
    if (!d)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory reading %s", path);
    if (ferr) {
        free(d);
        return gs_error_set(err, GS_ERR_INPUT, "%s: read error at byte offset %zu", path, n);
    }
    int rc = gs_trace_read_mem(d, n, path, t, err);
    free(d);
    return rc;
}
