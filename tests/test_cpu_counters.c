/* test_cpu_counters.c - the perf_event_open counters of the CPU backend.
 *
 * Must pass whether or not this machine lets us count (a VM without a PMU,
 * perf_event_paranoid, a container):
 *  - unavailable: open fails with one line that says why, nothing is left
 *    open, and a second try fails the same way;
 *  - available: counts are positive, a window that streams 64 MiB has more
 *    LLC loads than one that touches 4 KiB, and the workers' counts are in
 *    the sum (work run on every thread counts more than on one);
 *  - the same checks on software stand-in events (page faults, task clock),
 *    so the groups, per-thread opening and reads are tested on VMs too.
 * No timing is asserted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_counters.h"
#include "tap.h"
#include "thread_pool.h"

#define BIG_BYTES (64u << 20)
#define TINY_BYTES 4096u

static volatile double g_sink;

/* Reads every byte of buf once (floats, so the loop is not folded away). */
static void stream(const float *buf, size_t bytes)
{
    double s = 0;
    for (size_t i = 0; i < bytes / sizeof *buf; i++)
        s += buf[i];
    g_sink = s;
}

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* The event LLC loads, or the generic cache references where the CPU has no
 * LLC events; -1 when neither was opened. */
static int load_event(unsigned mask)
{
    if (mask & (1u << GS_CPUC_LLC_LOADS))
        return GS_CPUC_LLC_LOADS;
    if (mask & (1u << GS_CPUC_CACHE_REFS))
        return GS_CPUC_CACHE_REFS;
    return -1;
}

static void test_unavailable(const gs_error *first)
{
    tap_diag("CPU counters unavailable here: %s", first->msg);
    tap_ok(first->code == GS_ERR_RUNTIME && one_line(first->msg) &&
               (strstr(first->msg, "perf_event") || strstr(first->msg, "PMU") || strstr(first->msg, "counter")),
           "unavailable: one line saying why (%s)", first->msg);
    gs_pool *pool = gs_pool_create(3);
    gs_cpu_counters *c = (gs_cpu_counters *)1;
    gs_error err = {0};
    int rc = gs_cpu_counters_open(&c, pool, &err);
    tap_ok(rc == GS_ERR_RUNTIME && c == NULL && strcmp(err.msg, first->msg) == 0,
           "unavailable: with a pool too, the same clean failure and no object");
    gs_pool_destroy(pool);
    gs_cpu_counters_close(NULL);
    tap_ok(1, "close(NULL) is harmless");
}

typedef int (*open_fn)(gs_cpu_counters **out, gs_pool *pool, gs_error *err);

/* Fills a fresh buffer and reads it back, all inside the window: the
 * hardware run counts the loads, the software run the first-touch faults. */
static void fill_and_stream(size_t bytes)
{
    float *buf = malloc(bytes);
    for (size_t i = 0; i < bytes / sizeof *buf; i++)
        buf[i] = (float)(i & 7);
    stream(buf, bytes);
    free(buf);
}

static void test_single(gs_cpu_counters *c, const char *kind)
{
    unsigned mask = gs_cpu_counters_events(c);
    tap_ok(mask != 0 && gs_cpu_counters_threads(c) == 1, "%s: open on this thread: events 0x%x, 1 thread", kind,
           mask);
    gs_cpuc_values vb, vt;
    int rc = gs_cpu_counters_start(c);
    fill_and_stream(BIG_BYTES);
    rc |= gs_cpu_counters_stop(c, &vb);
    rc |= gs_cpu_counters_start(c);
    fill_and_stream(TINY_BYTES);
    rc |= gs_cpu_counters_stop(c, &vt);
    tap_ok(rc == 0 && vb.mask == mask && vt.mask == mask, "%s: two windows read (mask 0x%x)", kind, vb.mask);
    int positive = 1;
    for (int e = 0; e < GS_CPUC_COUNT; e++)
        if ((mask & (1u << e)) && e != GS_CPUC_LLC_MISSES && e != GS_CPUC_CACHE_MISSES)
            positive &= vb.v[e] > 0;
    for (int e = 0; e < GS_CPUC_COUNT; e++)
        if (mask & (1u << e))
            tap_diag("%s %-22s 64 MiB stream %.0f, 4 KiB %.0f%s", kind, gs_cpuc_names[e], vb.v[e], vt.v[e],
                     vb.scaled ? " (scaled)" : "");
    tap_ok(positive, "%s: streaming 64 MiB: every access/instruction/cycle count is positive", kind);
    int le = load_event(mask);
    if (le < 0)
        tap_skip("no LLC-load or cache-reference event on this CPU");
    else
        tap_ok(vb.v[le] > vt.v[le], "%s: %s: 64 MiB stream %.0f > 4 KiB %.0f", kind, gs_cpuc_names[le], vb.v[le],
               vt.v[le]);
}

typedef struct per_thread_fresh {
    size_t bytes;
} per_thread_fresh;

static void fresh_on_thread(void *ctx, int thread)
{
    (void)thread;
    fill_and_stream(((per_thread_fresh *)ctx)->bytes);
}

static void test_pool_threads(open_fn open, const char *kind)
{
    enum { THREADS = 3 };
    gs_pool *pool = gs_pool_create(THREADS);
    gs_cpu_counters *c = NULL;
    gs_error err = {0};
    int rc = open(&c, pool, &err);
    tap_ok(rc == GS_OK && gs_cpu_counters_threads(c) == THREADS,
           "%s: open with a pool: one group per thread (%d) %s", kind, gs_cpu_counters_threads(c), err.msg);
    if (rc) {
        gs_pool_destroy(pool);
        return;
    }
    per_thread_fresh pt = {8u << 20};
    unsigned mask = gs_cpu_counters_events(c);
    /* Instructions are the steadiest measure of "work happened"; else loads
     * (page faults in the software run, where every buffer is fresh). */
    int e = (mask & (1u << GS_CPUC_INSTRUCTIONS)) ? GS_CPUC_INSTRUCTIONS : load_event(mask);
    gs_cpuc_values one, all;
    rc = gs_cpu_counters_start(c);
    fill_and_stream(pt.bytes);
    rc |= gs_cpu_counters_stop(c, &one);
    rc |= gs_cpu_counters_start(c);
    int ran = gs_pool_run_on_each(pool, fresh_on_thread, &pt);
    rc |= gs_cpu_counters_stop(c, &all);
    if (e < 0) {
        tap_skip("no instruction or load event to compare");
    } else {
        /* The same work on 3 threads: the sum must hold the workers' share. */
        tap_ok(rc == 0 && ran == THREADS && all.v[e] > 2 * one.v[e],
               "%s: workers counted: %s on %d threads %.0f > 2 x one thread %.0f", kind, gs_cpuc_names[e], ran,
               all.v[e], one.v[e]);
    }
    gs_cpu_counters_close(c);
    gs_pool_destroy(pool);
}

/* Opening from inside a job cannot reach the other threads: a clean error. */
typedef struct nested {
    gs_pool *pool;
    int rc;
    char msg[512];
} nested;

static void open_in_job(void *ctx, int b, int e)
{
    nested *n = ctx;
    if (b != 0)
        return;
    (void)e;
    gs_cpu_counters *c = NULL;
    gs_error err = {0};
    n->rc = gs_cpu_counters_open(&c, n->pool, &err);
    snprintf(n->msg, sizeof n->msg, "%s", err.msg);
    gs_cpu_counters_close(c);
}

int main(void)
{
    gs_cpu_counters *c = NULL;
    gs_error err = {0};
    if (gs_cpu_counters_open(&c, NULL, &err) != GS_OK) {
        test_unavailable(&err);
    } else {
        test_single(c, "hardware");
        gs_cpu_counters_close(c);
        test_pool_threads(gs_cpu_counters_open, "hardware");
    }
    /* The same machinery on software events, which VMs without a PMU have. */
    if (gs_cpu_counters_open_software(&c, NULL, &err) != GS_OK) {
        tap_skip("software events not permitted either (perf_event_paranoid 3?)");
        tap_diag("%s", err.msg);
    } else {
        test_single(c, "software");
        gs_cpu_counters_close(c);
        test_pool_threads(gs_cpu_counters_open_software, "software");
    }
    gs_pool *pool = gs_pool_create(2);
    nested n = {pool, 0, ""};
    gs_pool_parallel_for(pool, 2, 1, open_in_job, &n);
    tap_ok(n.rc == GS_ERR_RUNTIME && one_line(n.msg), "open from inside a pool job: a clean error (%s)", n.msg);
    gs_pool_destroy(pool);
    return tap_done();
}
