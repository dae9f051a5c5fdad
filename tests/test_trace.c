/* test_trace.c - the event store and the .gst trace format: round trip,
 * truncation at and inside every chunk, single-bit flips, a newer major
 * version, empty files, concurrent reader/writer, and a recording killed
 * with SIGKILL. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../traces/trace_format.h"
#include "../traces/trace_reader.h"
#include "../traces/trace_writer.h"
#include "event_store.h"
#include "tap.h"

static char tmpdir[256];

static void fill_store(gs_event_store *s, int steps)
{
    static const char *ops[] = {"embedding", "norm", "matmul_qkv", "attention", "mlp", "sampling"};
    uint64_t t = 1000000000ULL;
    for (int st = 0; st < steps; st++) {
        uint64_t step_t = t;
        for (int l = 0; l < 2; l++) {
            uint64_t lt = t;
            for (int o = 0; o < 6; o++) {
                gs_event ev = {0};
                ev.kind = GS_EV_RANGE;
                ev.level = 2;
                ev.name = gs_store_intern(s, ops[o]);
                ev.layer = l;
                ev.step = st;
                ev.t_ns = t;
                ev.dur_ns = 1000 + (uint64_t)(o * 37 + st);
                t += ev.dur_ns + 3;
                gs_store_append(s, &ev);
            }
            gs_event ev = {0};
            ev.kind = GS_EV_RANGE;
            ev.level = 1;
            ev.name = gs_store_intern(s, "layer");
            ev.layer = l;
            ev.step = st;
            ev.t_ns = lt;
            ev.dur_ns = t - lt;
            gs_store_append(s, &ev);
        }
        gs_event ev = {0};
        ev.kind = GS_EV_RANGE;
        ev.level = 0;
        ev.name = gs_store_intern(s, "step");
        ev.layer = -1;
        ev.step = st;
        ev.t_ns = step_t;
        ev.dur_ns = t - step_t;
        gs_store_append(s, &ev);
        gs_event c = {0};
        c.kind = GS_EV_COUNTER;
        c.name = gs_store_intern(s, "tokens/s");
        c.layer = -1;
        c.step = st;
        c.t_ns = t;
        c.value = 1234.5 + st * 0.25;
        gs_store_append(s, &c);
        gs_event k = {0};
        k.kind = GS_EV_KERNEL;
        k.name = gs_store_intern(s, "sgemm_kernel");
        k.layer = -1;
        k.track = 1000;
        k.step = st;
        k.t_ns = step_t + 5;
        k.dur_ns = 77;
        k.aux = 0xfeedULL + (uint64_t)st;
        k.range_id = 40 + (uint64_t)st * 3;
        k.u.launch = (gs_event_launch){{(uint32_t)(96 + st), 2, 1}, {256, 1, 1}, 40, 49152};
        gs_store_append(s, &k);
        gs_event cp = k;
        cp.kind = GS_EV_MEMCPY;
        cp.level = GS_COPY_DTOH;
        cp.name = gs_store_intern(s, "memcpy DtoH");
        memset(&cp.u, 0, sizeof cp.u);
        cp.aux = k.aux + 1;
        cp.value = 50257.0 * 4;
        gs_store_append(s, &cp);
        gs_event mt = {0};
        mt.kind = GS_EV_METRIC;
        mt.level = GS_METRIC_KERNEL;
        mt.name = gs_store_intern(s, "dram__bytes_read.sum");
        mt.layer = -1;
        mt.step = st;
        mt.t_ns = k.t_ns;
        mt.aux = k.aux;
        mt.range_id = k.range_id;
        mt.value = 1.5e6 + st;
        gs_store_append(s, &mt);
        gs_event kv = {0};
        kv.kind = GS_EV_KV_BLOCKS;
        kv.name = gs_store_intern(s, "kv");
        kv.layer = -1;
        kv.step = st;
        kv.t_ns = t;
        kv.u.kv = (gs_event_kv){(uint32_t)(st % 61), 3, st % 2 ? -1 : st, 64};
        gs_store_append(s, &kv);
        t += 500;
    }
    gs_store_append_marker(s, "recording started", -1, 5, 1.5);
}

typedef struct { gs_event *ev; size_t n, cap; } evvec;
static int collect(void *ctx, uint64_t i, const gs_event *ev)
{
    evvec *v = ctx;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->ev = realloc(v->ev, v->cap * sizeof *v->ev);
    }
    v->ev[v->n++] = *ev;
    return 0;
}

static int write_trace(gs_event_store *s, const char *path, int flush_events)
{
    gs_trace_meta meta = {"test-1.0", "testhost", "cpu: test device", "seed: 7\nmodel: tiny\n", 42};
    gs_trace_writer *w;
    gs_error err = {0};
    if (gs_trace_writer_open(&w, path, &meta, s, flush_events, &err)) {
        tap_diag("%s", err.msg);
        return -1;
    }
    if (gs_trace_writer_close(w, &err)) {
        tap_diag("%s", err.msg);
        return -1;
    }
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)len + 1);
    *n = fread(d, 1, (size_t)len, f);
    fclose(f);
    return d;
}

static int same_events(gs_event_store *a, gs_event_store *b, size_t *n_out)
{
    evvec va = {0}, vb = {0};
    gs_store_visit(a, 0, gs_store_count(a), collect, &va);
    gs_store_visit(b, 0, gs_store_count(b), collect, &vb);
    int ok = va.n == vb.n;
    for (size_t i = 0; ok && i < va.n; i++) {
        const gs_event *x = &va.ev[i], *y = &vb.ev[i];
        ok = x->kind == y->kind && x->level == y->level && x->layer == y->layer && x->track == y->track &&
             x->step == y->step && x->t_ns == y->t_ns && x->dur_ns == y->dur_ns && x->aux == y->aux &&
             x->range_id == y->range_id && memcmp(&x->value, &y->value, sizeof x->value) == 0 &&
             memcmp(&x->u, &y->u, sizeof x->u) == 0 &&
             strcmp(gs_store_string(a, x->name), gs_store_string(b, y->name)) == 0;
        if (!ok)
            tap_diag("event %zu differs", i);
    }
    *n_out = va.n;
    free(va.ev);
    free(vb.ev);
    return ok;
}

/* Offsets of chunk starts in a well-formed file (after the header). */
static size_t chunk_offsets(const uint8_t *d, size_t n, size_t *offs, size_t max)
{
    size_t off = GS_TRACE_HEADER_FIXED + gs_get_u32(d + 12) + 4, k = 0;
    while (off + GS_CHUNK_HEADER <= n && k < max) {
        offs[k++] = off;
        off += GS_CHUNK_HEADER + gs_get_u32(d + off + 8);
    }
    if (k < max)
        offs[k++] = off; /* == n */
    return k;
}

static void test_round_trip(void)
{
    gs_event_store *s = gs_store_create(0);
    fill_store(s, 300);
    char path[300];
    snprintf(path, sizeof path, "%s/rt.gst", tmpdir);
    tap_ok(write_trace(s, path, 500) == 0, "writer writes a trace in chunks of 500 events");
    gs_trace t;
    gs_error err = {0};
    int rc = gs_trace_read_file(path, &t, &err);
    tap_ok(rc == GS_OK && t.n_warnings == 0 && t.clean_end, "reader opens it with no warning and a clean end (%s)", err.msg);
    if (rc)
        return;
    size_t n = 0;
    int same = same_events(s, t.store, &n);
    tap_ok(same && n == gs_store_count(s), "round trip: all %zu events equal in every field", n);
    tap_ok(t.major == GS_TRACE_MAJOR && t.minor == GS_TRACE_MINOR && strcmp(t.program_version, "test-1.0") == 0 &&
               strcmp(t.host, "testhost") == 0 && strcmp(t.device, "cpu: test device") == 0 &&
               strcmp(t.config_yaml, "seed: 7\nmodel: tiny\n") == 0 && t.clock_origin_ns == 42,
           "round trip: header fields equal");
    struct stat sb;
    stat(path, &sb);
    tap_diag("%zu events in %lld bytes (%.2f bytes/event), %ld chunks", n, (long long)sb.st_size,
             (double)sb.st_size / (double)n, t.chunks);
    gs_trace_free(&t);

    /* Truncation at every chunk boundary and inside every chunk. */
    size_t len;
    uint8_t *d = slurp(path, &len);
    size_t offs[4096];
    size_t nc = chunk_offsets(d, len, offs, 4096);
    int ok_bound = 1, ok_inside = 1, monotone = 1;
    uint64_t prev = 0;
    for (size_t k = 0; k < nc; k++) {
        gs_trace tt;
        rc = gs_trace_read_mem(d, offs[k], "cut", &tt, &err);
        if (rc) {
            ok_bound = 0;
            continue;
        }
        uint64_t c = gs_store_count(tt.store);
        if (c < prev)
            monotone = 0;
        prev = c;
        if (k + 1 < nc && (tt.n_warnings != 1 || !strstr(tt.warnings[0], "byte offset")))
            ok_bound = 0;
        gs_trace_free(&tt);
        if (k + 1 < nc) {
            size_t cuts[3] = {offs[k] + 1, offs[k] + GS_CHUNK_HEADER + 1, (offs[k] + offs[k + 1]) / 2};
            for (int j = 0; j < 3; j++) {
                if (cuts[j] >= offs[k + 1])
                    continue;
                rc = gs_trace_read_mem(d, cuts[j], "cut", &tt, &err);
                if (rc || tt.n_warnings < 1 || !strstr(tt.warnings[0], "truncated at byte offset")) {
                    ok_inside = 0;
                    if (!rc)
                        gs_trace_free(&tt);
                    continue;
                }
                if (gs_store_count(tt.store) != c)
                    ok_inside = 0;
                gs_trace_free(&tt);
            }
        }
    }
    tap_ok(ok_bound && monotone, "truncation at each of %zu chunk boundaries: valid prefix, warning names the offset", nc);
    tap_ok(ok_inside, "truncation inside chunks: the prefix up to the last whole chunk, warning names the offset");
    /* Truncation inside the header is an input error naming an offset. */
    int hdr_ok = 1;
    for (size_t cut = 1; cut < offs[0]; cut += 7) {
        rc = gs_trace_read_mem(d, cut, "cut", &t, &err);
        if (rc != GS_ERR_INPUT || !strstr(err.msg, "byte offset"))
            hdr_ok = 0;
    }
    tap_ok(hdr_ok, "a header cut anywhere is refused with a byte offset");

    /* Single-bit flips across the whole file: never crash; a flip in a chunk is reported. */
    uint8_t *m = malloc(len);
    int flips = 0, reported = 0, in_chunks = 0;
    for (size_t bit = 0; bit < len * 8; bit += (len * 8 / 3000) | 1) {
        memcpy(m, d, len);
        m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        gs_trace tt;
        rc = gs_trace_read_mem(m, len, "flip", &tt, &err);
        flips++;
        if (bit / 8 >= offs[0]) {
            in_chunks++;
            if (rc == GS_OK && tt.n_warnings > 0)
                reported++;
        }
        if (rc == GS_OK)
            gs_trace_free(&tt);
    }
    tap_ok(reported == in_chunks, "%d single-bit flips read without a crash; all %d inside chunks reported", flips,
           in_chunks);
    /* A bad CRC in one chunk: that chunk is skipped, the rest is read. */
    memcpy(m, d, len);
    m[offs[1] + GS_CHUNK_HEADER + 2] ^= 0x10;
    rc = gs_trace_read_mem(m, len, "flip", &t, &err);
    tap_ok(rc == GS_OK && t.bad_chunks == 1 && t.clean_end && strstr(t.warnings[0], "CRC mismatch") &&
               gs_store_count(t.store) > 0 && gs_store_count(t.store) < n,
           "one bad chunk is reported and skipped, the chunks after it are read (%s)", rc ? err.msg : t.warnings[0]);
    if (!rc)
        gs_trace_free(&t);
    /* Newer major version. */
    memcpy(m, d, len);
    gs_put_u16(m + 8, GS_TRACE_MAJOR + 1);
    gs_put_u16(m + 10, 3);
    rc = gs_trace_read_mem(m, len, "new.gst", &t, &err);
    char want[64];
    snprintf(want, sizeof want, "%d.3", GS_TRACE_MAJOR + 1);
    char cur[32];
    snprintf(cur, sizeof cur, "(%d.%d)", GS_TRACE_MAJOR, GS_TRACE_MINOR);
    tap_ok(rc == GS_ERR_INPUT && strstr(err.msg, want) && strstr(err.msg, cur), "a newer major is refused naming both versions: %s", err.msg);
    /* A newer minor with an unknown chunk type still opens; the chunk is skipped with a warning. */
    size_t hend = offs[0];
    uint8_t *x = malloc(len + 64);
    memcpy(x, d, hend);
    gs_put_u16(x + 10, GS_TRACE_MINOR + 5);
    gs_put_u32(x + hend - 4, (uint32_t)crc32(0L, x, (uInt)(hend - 4)));
    uint8_t *c = x + hend;
    uLongf clen = 40;
    compress2(c + GS_CHUNK_HEADER, &clen, (const Bytef *)"hello", 5, 6);
    memcpy(c, GS_CHUNK_SYNC, 4);
    c[4] = 9;
    c[5] = c[6] = c[7] = 0;
    gs_put_u32(c + 8, (uint32_t)clen);
    gs_put_u32(c + 12, 5);
    uLong crc = crc32(crc32(0L, c + 4, 12), c + GS_CHUNK_HEADER, (uInt)clen);
    gs_put_u32(c + 16, (uint32_t)crc);
    size_t xl = hend + GS_CHUNK_HEADER + clen;
    memcpy(x + xl, d + hend, len - hend);
    xl += len - hend;
    rc = gs_trace_read_mem(x, xl, "minor.gst", &t, &err);
    tap_ok(rc == GS_OK && t.clean_end && gs_store_count(t.store) == n && t.n_warnings == 1 &&
               strstr(t.warnings[0], "unknown type 9"),
           "a newer minor's unknown chunk type is skipped with a warning (%s)", rc ? err.msg : t.warnings[0]);
    if (!rc)
        gs_trace_free(&t);
    free(x);
    free(m);
    free(d);
    gs_store_destroy(s);
}

static void test_empty(void)
{
    gs_trace t;
    gs_error err = {0};
    int rc = gs_trace_read_mem((const uint8_t *)"", 0, "empty.gst", &t, &err);
    tap_ok(rc == GS_ERR_INPUT && strstr(err.msg, "empty.gst") && strstr(err.msg, "byte offset 0"), "zero-length file: %s", err.msg);
    char path[300];
    snprintf(path, sizeof path, "%s/none.gst", tmpdir);
    gs_event_store *s = gs_store_create(0);
    write_trace(s, path, 0);
    rc = gs_trace_read_file(path, &t, &err);
    tap_ok(rc == GS_OK && t.clean_end && gs_store_count(t.store) == 0 && t.n_warnings == 0, "a trace with no events opens empty");
    if (!rc)
        gs_trace_free(&t);
    gs_store_destroy(s);
    rc = gs_trace_read_file("/nonexistent/x.gst", &t, &err);
    tap_ok(rc == GS_ERR_INPUT, "a missing file is an input error: %s", err.msg);
}

/* ---- store: concurrent reader sees a consistent prefix; queries; window ---- */
typedef struct { gs_event_store *s; atomic_int done; long bad, reads; } rctx;
static int check_prefix(void *ctx, uint64_t i, const gs_event *ev)
{
    long *bad = ctx;
    if (ev->t_ns != i * 10 || ev->dur_ns != i || ev->step != (int64_t)(i / 100))
        (*bad)++;
    return 0;
}
static void *reader_thread(void *arg)
{
    rctx *c = arg;
    while (!atomic_load(&c->done)) {
        uint64_t n = gs_store_count(c->s);
        gs_store_visit(c->s, 0, n, check_prefix, &c->bad);
        c->reads++;
    }
    return NULL;
}

static int count_visit(void *ctx, uint64_t i, const gs_event *ev)
{
    (*(uint64_t *)ctx)++;
    return 0;
}

static void test_store(void)
{
    gs_event_store *s = gs_store_create(0);
    rctx c = {s, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, reader_thread, &c);
    uint32_t name = gs_store_intern(s, "op");
    for (uint64_t i = 0; i < 200000; i++) {
        gs_event ev = {0};
        ev.kind = GS_EV_RANGE;
        ev.level = 2;
        ev.name = name;
        ev.t_ns = i * 10;
        ev.dur_ns = i;
        ev.step = (int64_t)(i / 100);
        gs_store_append(s, &ev);
    }
    atomic_store(&c.done, 1);
    pthread_join(th, NULL);
    tap_ok(c.bad == 0 && gs_store_count(s) == 200000, "a concurrent reader saw only complete events (%ld passes)", c.reads);
    uint64_t k = 0;
    gs_store_query_steps(s, 10, 19, count_visit, &k);
    tap_ok(k == 1000, "query by steps 10..19: %llu events", (unsigned long long)k);
    k = 0;
    gs_store_query_time(s, 1000000, 1000100, count_visit, &k);
    /* events i with 10 i < t1 and 11 i >= t0 */
    uint64_t want = 0;
    for (uint64_t i = 0; i < 200000; i++)
        want += i * 10 < 1000100 && i * 11 >= 1000000;
    tap_ok(k == want, "query by time: %llu events (want %llu)", (unsigned long long)k, (unsigned long long)want);
    gs_store_destroy(s);

    s = gs_store_create(50);
    for (uint64_t i = 0; i < 100000; i++) {
        gs_event ev = {0};
        ev.kind = GS_EV_COUNTER;
        ev.step = (int64_t)(i / 100);
        ev.t_ns = i;
        gs_store_append(s, &ev);
    }
    uint64_t kept = gs_store_count(s) - gs_store_first(s);
    tap_ok(gs_store_first(s) > 0 && kept >= 50 * 100 && kept <= 50 * 100 + 2 * 4096,
           "live window of 50 steps keeps %llu of 100000 events", (unsigned long long)kept);
    gs_store_destroy(s);
    s = gs_store_create(0);
    uint32_t a = gs_store_intern(s, "alpha"), b = gs_store_intern(s, "beta");
    tap_ok(a != b && gs_store_intern(s, "alpha") == a && strcmp(gs_store_string(s, b), "beta") == 0 &&
               strcmp(gs_store_string(s, 999), "?") == 0,
           "strings are interned, unknown ids read as ?");
    gs_store_destroy(s);
}

/* A child records with the writer thread and is killed with SIGKILL. */
static void test_sigkill(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/killed.gst", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        gs_event_store *s = gs_store_create(0);
        gs_trace_meta meta = {"test", "h", "d", "", 0};
        gs_trace_writer *w;
        gs_error err;
        if (gs_trace_writer_open(&w, path, &meta, s, 0, &err) || gs_trace_writer_start_thread(w, &err))
            _exit(3);
        uint32_t name = gs_store_intern(s, "op");
        for (uint64_t i = 0;; i++) {
            gs_event ev = {0};
            ev.kind = GS_EV_RANGE;
            ev.level = 2;
            ev.name = name;
            ev.t_ns = i * 1000;
            ev.dur_ns = 900;
            ev.step = (int64_t)(i / 50);
            gs_store_append(s, &ev);
            if (i % 50 == 0) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    struct timespec ts = {0, 900 * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    gs_trace t;
    gs_error err = {0};
    int rc = gs_trace_read_file(path, &t, &err);
    tap_ok(WIFSIGNALED(status) && rc == GS_OK && gs_store_count(t.store) > 0 && !t.clean_end && t.n_warnings >= 1,
           "a recording killed with SIGKILL opens: %llu events, warning: %s",
           rc ? 0ULL : (unsigned long long)gs_store_count(t.store), rc ? err.msg : t.warnings[0]);
    if (rc)
        return;
    evvec v = {0};
    gs_store_visit(t.store, 0, gs_store_count(t.store), collect, &v);
    int ok = 1;
    for (size_t i = 0; i < v.n; i++)
        ok &= v.ev[i].t_ns == i * 1000 && v.ev[i].dur_ns == 900;
    tap_ok(ok, "the killed recording's prefix is exact");
    free(v.ev);
    gs_trace_free(&t);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gs_test_trace.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_empty();
    test_store();
    test_sigkill();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    return tap_done();
}
