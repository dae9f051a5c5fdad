/* cpu_counters.c - perf_event_open counter groups, one per CPU-backend
 * thread (see cpu_counters.h).
 *
 * Opening happens in two passes: on the calling thread, find the events this
 * machine has and the largest group of them the PMU can schedule at once;
 * then every thread of the pool opens that same group for itself. */
#include "cpu_counters.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "thread_pool.h"

const char *const gs_cpuc_names[GS_CPUC_COUNT] = {
    "cpu.llc_loads", "cpu.llc_misses", "cpu.cache_misses", "cpu.cache_references", "cpu.instructions", "cpu.cycles",
};

/* read() layout with PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING:
 * nr, time_enabled, time_running, then one value per event in group order. */
enum { R_NR, R_ENABLED, R_RUNNING, R_VALUES, R_WORDS = R_VALUES + GS_CPUC_COUNT };

typedef struct group {
    int fd[GS_CPUC_COUNT]; /* fd[0] leads; -1 where not open */
    int err;               /* errno of a failed open on this thread, 0 when open */
    uint64_t start[R_WORDS];
} group;

struct gs_cpu_counters {
    int software;          /* the test stand-ins (gs_cpu_counters_open_software) */
    int n_threads;
    group *g;              /* one per thread that works */
    int ev[GS_CPUC_COUNT]; /* gs_cpuc_event of each group member, in group order */
    int n_ev;
    unsigned mask;
};

/* The attributes of event e; 0, or -1 when the software stand-ins have none
 * for it. */
static int attr_of(int e, int software, struct perf_event_attr *a)
{
    memset(a, 0, sizeof *a);
    a->size = sizeof *a;
    if (software) {
        /* Minor page faults where the LLC loads go, task clock (ns) where
         * the cycles go; the other slots stay empty. */
        if (e != GS_CPUC_LLC_LOADS && e != GS_CPUC_CYCLES)
            return -1;
        a->type = PERF_TYPE_SOFTWARE;
        a->config = e == GS_CPUC_LLC_LOADS ? PERF_COUNT_SW_PAGE_FAULTS_MIN : PERF_COUNT_SW_TASK_CLOCK;
    } else {
        switch (e) {
        case GS_CPUC_LLC_LOADS:
        case GS_CPUC_LLC_MISSES:
            a->type = PERF_TYPE_HW_CACHE;
            a->config = PERF_COUNT_HW_CACHE_LL | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                        ((uint64_t)(e == GS_CPUC_LLC_LOADS ? PERF_COUNT_HW_CACHE_RESULT_ACCESS
                                                           : PERF_COUNT_HW_CACHE_RESULT_MISS) << 16);
            break;
        case GS_CPUC_CACHE_MISSES: a->type = PERF_TYPE_HARDWARE; a->config = PERF_COUNT_HW_CACHE_MISSES; break;
        case GS_CPUC_CACHE_REFS: a->type = PERF_TYPE_HARDWARE; a->config = PERF_COUNT_HW_CACHE_REFERENCES; break;
        case GS_CPUC_INSTRUCTIONS: a->type = PERF_TYPE_HARDWARE; a->config = PERF_COUNT_HW_INSTRUCTIONS; break;
        default: a->type = PERF_TYPE_HARDWARE; a->config = PERF_COUNT_HW_CPU_CYCLES; break;
        }
    }
    a->read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    /* User space only: the kernels run there, and paranoid=2 allows no more. */
    a->exclude_kernel = 1;
    a->exclude_hv = 1;
    return 0;
}

/* This thread (pid 0), any CPU it runs on (-1). */
static int open_event(int e, int software, int leader)
{
    struct perf_event_attr a;
    if (attr_of(e, software, &a)) {
        errno = ENOENT;
        return -1;
    }
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, leader, PERF_FLAG_FD_CLOEXEC);
}

static void close_group(group *g, int n)
{
    for (int i = 0; i < n; i++)
        if (g->fd[i] >= 0) {
            close(g->fd[i]);
            g->fd[i] = -1;
        }
}

/* Opens ev[0..n) as one group for the calling thread; 0 or an errno. */
static int open_group(group *g, const int *ev, int n, int software)
{
    for (int i = 0; i < GS_CPUC_COUNT; i++)
        g->fd[i] = -1;
    for (int i = 0; i < n; i++) {
        g->fd[i] = open_event(ev[i], software, i ? g->fd[0] : -1);
        if (g->fd[i] < 0) {
            int e = errno;
            close_group(g, i);
            return e ? e : EINVAL;
        }
    }
    return 0;
}

static int read_group(const group *g, int n, uint64_t *w)
{
    ssize_t want = (ssize_t)((R_VALUES + n) * sizeof *w);
    return read(g->fd[0], w, (size_t)want) == want && w[R_NR] == (uint64_t)n ? 0 : -1;
}

/* Where group_runs' touches land, so they cannot be optimized away. */
static volatile char g_touched;

/* Whether the PMU actually schedules the group: one it cannot fit may open
 * and then never run. Touches some memory and looks at the running time. */
static int group_runs(const group *g, int n)
{
    char *buf = malloc(1 << 18);
    if (buf) {
        for (int i = 0; i < (1 << 18); i += 64)
            buf[i] = (char)i;
        g_touched = buf[4096];
        free(buf);
    }
    uint64_t w[R_WORDS];
    return read_group(g, n, w) == 0 && w[R_RUNNING] > 0;
}

static int paranoid_level(void)
{
    int level = -99;
    FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
    if (f) {
        if (fscanf(f, "%d", &level) != 1)
            level = -99;
        fclose(f);
    }
    return level;
}

/* One line: why counting failed, and how to allow it. */
static int fail(gs_error *err, int e)
{
    int level = paranoid_level();
    switch (e) {
    case EACCES:
    case EPERM:
        if (level > 2)
            return gs_error_set(err, GS_ERR_RUNTIME,
                                "perf_event_open not permitted (kernel.perf_event_paranoid=%d); allow user-space "
                                "counting with `sysctl kernel.perf_event_paranoid=2` or CAP_PERFMON",
                                level);
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "perf_event_open not permitted (%s) although kernel.perf_event_paranoid=%d: a container "
                            "or seccomp policy blocks it; allow perf_event_open there or grant CAP_PERFMON",
                            strerror(e), level);
    case ENOENT:
    case EOPNOTSUPP:
    case ENODEV:
    case EINVAL:
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "no hardware cache counters (perf_event_open: %s): %s", strerror(e),
                            access("/sys/bus/event_source/devices/cpu", F_OK) != 0
                                ? "the kernel exposes no CPU PMU (a VM without a virtual PMU?); enable the VM's "
                                  "vPMU or run on bare metal"
                                : "this CPU's PMU offers none of the LLC or cache events");
    case ENOSYS:
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "perf_event_open is missing (kernel built without perf events, or seccomp hides it)");
    case EMFILE:
    case ENFILE:
        return gs_error_set(err, GS_ERR_RUNTIME, "perf_event_open: out of file descriptors; raise `ulimit -n`");
    default:
        return gs_error_set(err, GS_ERR_RUNTIME, "perf_event_open: %s", strerror(e));
    }
}

/* Errors that no other choice of events would avoid. */
static int fatal_errno(int e)
{
    return e == EACCES || e == EPERM || e == ENOSYS || e == EMFILE || e == ENFILE;
}

static void open_on_thread(void *ctx, int thread)
{
    gs_cpu_counters *c = ctx;
    if (thread >= c->n_threads)
        return; /* cannot happen: run_on_each hands out n_threads ordinals */
    c->g[thread].err = open_group(&c->g[thread], c->ev, c->n_ev, c->software);
}

static int open_counters(gs_cpu_counters **out, gs_pool *pool, int software, gs_error *err)
{
    *out = NULL;
    /* Pass 1, on this thread: which events exist, alone. */
    int cand[GS_CPUC_COUNT], n_cand = 0, first_err = 0;
    for (int e = 0; e < GS_CPUC_COUNT; e++) {
        int fd = open_event(e, software, -1);
        if (fd >= 0) {
            close(fd);
            cand[n_cand++] = e;
            continue;
        }
        int code = errno;
        if (!first_err)
            first_err = code;
        if (fatal_errno(code))
            return fail(err, code);
    }
    if (n_cand == 0)
        return fail(err, first_err);
    /* The largest group the PMU takes at once: drop from the end (cycles,
     * instructions, then the generic cache events) until it opens and runs. */
    group probe;
    int n = n_cand, code = 0;
    for (; n > 0; n--) {
        code = open_group(&probe, cand, n, software);
        if (code == 0) {
            int runs = group_runs(&probe, n);
            close_group(&probe, n);
            if (runs)
                break;
            code = EINVAL;
        } else if (fatal_errno(code)) {
            return fail(err, code);
        }
    }
    if (n == 0)
        return fail(err, code);

    gs_cpu_counters *c = calloc(1, sizeof *c);
    int threads = gs_pool_threads(pool);
    if (!c || !(c->g = calloc((size_t)threads, sizeof *c->g))) {
        free(c);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory for CPU counters");
    }
    c->software = software;
    c->n_threads = threads;
    c->n_ev = n;
    for (int i = 0; i < n; i++) {
        c->ev[i] = cand[i];
        c->mask |= 1u << cand[i];
    }
    for (int t = 0; t < threads; t++) {
        c->g[t].err = -1; /* a thread that never ran open_on_thread */
        for (int i = 0; i < GS_CPUC_COUNT; i++)
            c->g[t].fd[i] = -1;
    }
    /* Pass 2: every thread opens its own group (pid 0 means "this thread"). */
    if (gs_pool_run_on_each(pool, open_on_thread, c) < 0) {
        gs_cpu_counters_close(c);
        return gs_error_set(err, GS_ERR_RUNTIME, "CPU counters: the thread pool is busy; open them between steps");
    }
    for (int t = 0; t < threads; t++) {
        if (c->g[t].err) {
            int e = c->g[t].err > 0 ? c->g[t].err : EINVAL;
            gs_cpu_counters_close(c);
            return fail(err, e);
        }
    }
    *out = c;
    return GS_OK;
}

int gs_cpu_counters_open(gs_cpu_counters **out, gs_pool *pool, gs_error *err)
{
    return open_counters(out, pool, 0, err);
}

int gs_cpu_counters_open_software(gs_cpu_counters **out, gs_pool *pool, gs_error *err)
{
    return open_counters(out, pool, 1, err);
}

unsigned gs_cpu_counters_events(const gs_cpu_counters *c) { return c ? c->mask : 0; }
int gs_cpu_counters_threads(const gs_cpu_counters *c) { return c ? c->n_threads : 0; }

int gs_cpu_counters_start(gs_cpu_counters *c)
{
    for (int t = 0; t < c->n_threads; t++)
        if (read_group(&c->g[t], c->n_ev, c->g[t].start))
            return -1;
    return 0;
}

int gs_cpu_counters_stop(gs_cpu_counters *c, gs_cpuc_values *out)
{
    memset(out, 0, sizeof *out);
    for (int t = 0; t < c->n_threads; t++) {
        uint64_t w[R_WORDS];
        const uint64_t *s = c->g[t].start;
        if (read_group(&c->g[t], c->n_ev, w))
            return -1;
        uint64_t enabled = w[R_ENABLED] - s[R_ENABLED], running = w[R_RUNNING] - s[R_RUNNING];
        /* Multiplexed: the group counted for part of the window only. */
        double scale = running > 0 && running < enabled ? (double)enabled / (double)running : 1.0;
        out->scaled |= scale != 1.0;
        for (int i = 0; i < c->n_ev; i++)
            out->v[c->ev[i]] += (double)(w[R_VALUES + i] - s[R_VALUES + i]) * scale;
    }
    out->mask = c->mask;
    return 0;
}

void gs_cpu_counters_close(gs_cpu_counters *c)
{
    if (!c)
        return;
    for (int t = 0; t < c->n_threads; t++)
        close_group(&c->g[t], GS_CPUC_COUNT);
    free(c->g);
    free(c);
}
