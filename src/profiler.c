/* profiler.c - the collectors behind one object (see profiler.h). */
#include "profiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "build_config.h"
#include "cpu_counters.h"
#include "cupti_collector.h"
#include "engine.h"
#include "metrics_collector.h"

#ifdef HAVE_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

#define METRIC_RANGES 4096   /* kernels measured in one sampled step */
#define PLACE_RING (1u << 16) /* recent ranges by id: device records arrive a few steps late at most */

struct gs_profiler {
    gs_profiler_options o;
    gs_event_store *store;
    gs_store_ranges store_sink;
    gs_cupti *cupti;
    gs_metrics *metrics;
    int metrics_now;          /* the current step collects metrics */
    double *metric_values;    /* [METRIC_RANGES][gs_metric_count] */
    long last_metric_ranges, last_metric_kernels;
    long steps;
    int attached;
    uint64_t metric_steps;
    int pushed[GS_RANGES_MAX_DEPTH];
    int depth;
    struct { uint64_t id; int64_t step; int32_t layer; const char *name; } place[PLACE_RING];
    uint64_t metric_steps_unmatched;
    /* CPU counters: opened at the first step after attach, on the engine
     * thread (live runs steps on a thread other than the one attaching). */
    gs_cpu_counters *cpuc;
    struct gs_pool *cpuc_pool;
    int cpuc_pending;         /* open at the next step range */
    int cpuc_window;          /* an op's counting window is open */
    uint32_t cpuc_name[GS_CPUC_COUNT]; /* interned metric names */
    uint64_t cpuc_ops;
    char notice[512];
};

static void note(gs_profiler *p, const char *fmt, const char *what)
{
    size_t n = strlen(p->notice);
    if (n) {
        snprintf(p->notice + n, sizeof p->notice - n, "; ");
        n = strlen(p->notice);
    }
    snprintf(p->notice + n, sizeof p->notice - n, fmt, what);
}

int gs_profiler_create(gs_profiler **out, const gs_profiler_options *o, int cuda, gs_event_store *store,
                       gs_error *err)
{
    *out = NULL;
    gs_profiler *p = calloc(1, sizeof *p);
    if (!p)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    p->o = *o;
    p->store = store;
    if (!cuda) {
        if (o->metrics_every > 0)
            note(p, "%s", "hardware metrics need the CUDA backend; memory traffic is modeled");
        p->o.device_timeline = 0;
        p->o.metrics_every = 0;
        p->o.nvtx = 0;
    } else {
        p->o.cpu_counters = 0; /* ops run on the device: CPU counters would see only the launches */
    }
    if (p->o.device_timeline) {
        gs_error cerr = {0};
        if (gs_cupti_start(&p->cupti, &cerr)) {
            note(p, "no device timeline: %s", cerr.msg);
            p->o.device_timeline = 0;
        }
    }
    if (p->o.metrics_every > 0) {
        gs_error merr = {0};
        p->metric_values = malloc((size_t)METRIC_RANGES * gs_metric_count * sizeof(double));
        if (gs_metrics_create(&p->metrics, p->o.metrics_fast, &merr)) {
            note(p, "no hardware metrics: %s", merr.msg);
            p->o.metrics_every = 0;
        }
    }
#ifndef HAVE_CUDA
    p->o.nvtx = 0;
#endif
    *out = p;
    return GS_OK;
}

/* Opens the CPU counters on the engine thread and the pool's workers. */
static void cpuc_open(gs_profiler *p)
{
    p->cpuc_pending = 0;
    gs_error cerr = {0};
    if (gs_cpu_counters_open(&p->cpuc, p->cpuc_pool, &cerr)) {
        note(p, "no CPU counters: %s", cerr.msg);
        p->o.cpu_counters = 0;
        return;
    }
    for (int e = 0; e < GS_CPUC_COUNT; e++)
        p->cpuc_name[e] = gs_store_intern(p->store, gs_cpuc_names[e]);
}

/* An op's counts, one metric event per counted event. Appended at once: the
 * sink runs on the engine thread, the store's one writer. */
static void cpuc_store(gs_profiler *p, int layer, uint64_t id, uint64_t t_ns)
{
    gs_cpuc_values v;
    if (gs_cpu_counters_stop(p->cpuc, &v))
        return;
    gs_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = GS_EV_METRIC;
    ev.level = GS_METRIC_OP;
    ev.layer = layer;
    ev.track = GS_TRACK_HOST;
    ev.step = p->store_sink.step;
    ev.t_ns = t_ns;
    ev.range_id = id;
    for (int e = 0; e < GS_CPUC_COUNT; e++) {
        if (!(v.mask & (1u << e)) || p->cpuc_name[e] == GS_STORE_NO_ID)
            continue;
        ev.name = p->cpuc_name[e];
        ev.value = v.v[e];
        gs_store_append(p->store, &ev);
    }
    p->cpuc_ops++;
}

/* The range sink: remembers where each range sits (for device records that
 * arrive later), pushes step and op ids as CUPTI external correlation ids,
 * and mirrors ranges to NVTX. Registered after the store's sink, so the
 * store has already counted the step when begin runs. */
static void sink_begin(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    (void)t_ns;
    gs_profiler *p = ctx;
    if (level == GS_RANGE_STEP && p->cpuc_pending)
        cpuc_open(p);
    if (level == GS_RANGE_OP && p->cpuc)
        p->cpuc_window = gs_cpu_counters_start(p->cpuc) == 0;
    size_t k = id % PLACE_RING;
    p->place[k].id = id;
    p->place[k].step = p->store_sink.step;
    p->place[k].layer = layer;
    p->place[k].name = name; /* range names are literals */
    int push = p->cupti && level != GS_RANGE_LAYER; /* kernels always sit inside an op or a step */
    if (p->depth < GS_RANGES_MAX_DEPTH)
        p->pushed[p->depth] = push;
    p->depth++;
    if (push)
        gs_cupti_push(p->cupti, id);
#ifdef HAVE_CUDA
    if (p->o.nvtx) {
        if (level == GS_RANGE_LAYER) {
            char buf[48];
            snprintf(buf, sizeof buf, "layer %d", layer);
            nvtxRangePushA(buf);
        } else {
            nvtxRangePushA(name);
        }
    }
#else
    (void)name;
#endif
}

static void sink_end(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    (void)name;
    gs_profiler *p = ctx;
    if (level == GS_RANGE_OP && p->cpuc_window) {
        cpuc_store(p, layer, id, t_ns);
        p->cpuc_window = 0;
    }
    if (p->depth <= 0)
        return;
    p->depth--;
    if (p->depth < GS_RANGES_MAX_DEPTH && p->pushed[p->depth])
        gs_cupti_pop(p->cupti);
#ifdef HAVE_CUDA
    if (p->o.nvtx)
        nvtxRangePop();
#endif
}

static gs_range_place lookup_place(void *ctx, uint64_t id)
{
    gs_profiler *p = ctx;
    size_t k = id % PLACE_RING;
    gs_range_place where = {-1, -1, 0};
    if (p->place[k].id == id) {
        where.step = p->place[k].step;
        where.layer = p->place[k].layer;
        where.found = 1;
    }
    return where;
}

/* The range of the same op (name and layer) one step later. */
static uint64_t remap_next_step(void *ctx, uint64_t prev_id)
{
    gs_profiler *p = ctx;
    size_t k = prev_id % PLACE_RING;
    if (p->place[k].id != prev_id)
        return 0;
    const char *name = p->place[k].name;
    int32_t layer = p->place[k].layer;
    int64_t step = p->place[k].step + 1;
    /* Ids climb: the step's ranges sit just after prev_id in the ring. */
    for (uint64_t id = prev_id + 1; id < prev_id + PLACE_RING; id++) {
        size_t j = id % PLACE_RING;
        if (p->place[j].id != id)
            break;
        if (p->place[j].step == step && p->place[j].layer == layer && p->place[j].name == name)
            return id;
        if (p->place[j].step > step)
            break;
    }
    return 0;
}

int gs_profiler_attach(gs_profiler *p, gs_engine *e, gs_error *err)
{
    /* A later engine (a rebuilt variant) continues the step numbering. */
    gs_store_ranges_init(&p->store_sink, p->store, p->attached ? p->store_sink.step + 1 : 0);
    p->attached = 1;
    p->depth = 0;
    gs_range_sink mine = {sink_begin, sink_end, p};
    if (gs_ranges_add_sink(&e->ranges, gs_store_ranges_sink(&p->store_sink)) ||
        gs_ranges_add_sink(&e->ranges, mine))
        return gs_error_set(err, GS_ERR_RUNTIME, "too many range collectors on one engine");
    gs_cpu_counters_close(p->cpuc); /* a new engine may bring a new pool */
    p->cpuc = NULL;
    p->cpuc_window = 0;
    p->cpuc_pending = 0;
    if (p->o.cpu_counters) {
        /* Say at once whether counting is allowed (this thread only); the
         * real groups are opened on the engine thread at its first step. */
        gs_cpu_counters *probe = NULL;
        gs_error cerr = {0};
        if (gs_cpu_counters_open(&probe, NULL, &cerr)) {
            note(p, "no CPU counters: %s", cerr.msg);
            p->o.cpu_counters = 0;
        } else {
            p->cpuc_pool = gs_backend_cpu_pool(e->be);
            p->cpuc_pending = 1;
        }
        gs_cpu_counters_close(probe);
    }
    if (p->metrics) {
        /* Now that the device context exists: say at once if counters are off limits. */
        gs_error merr = {0};
        if (gs_metrics_prepare(p->metrics, &merr)) {
            note(p, "no hardware metrics: %s", merr.msg);
            p->o.metrics_every = 0;
            gs_metrics_destroy(p->metrics);
            p->metrics = NULL;
        }
    }
    return GS_OK;
}

int64_t gs_profiler_next_step(const gs_profiler *p) { return p->store_sink.step + 1; }

int gs_profiler_step_begin(gs_profiler *p)
{
    p->metrics_now = 0;
    if (p->cupti && p->o.trace_every > 1) {
        /* Trace a sampled step, and the step before a metrics step (whose
         * kernel sequence the metrics are matched to). */
        long me = p->o.metrics_every;
        int on = p->steps % p->o.trace_every == 0 || (me > 0 && (p->steps % me == me - 1 || p->steps % me == me - 2));
        if (gs_cupti_set_tracing(p->cupti, on)) {
            note(p, "%s", "switching the device timeline per step failed; it stays on");
            gs_cupti_set_tracing(p->cupti, 1);
            p->o.trace_every = 1;
        }
    }
    if (p->metrics && p->o.metrics_every > 0 && p->steps % p->o.metrics_every == p->o.metrics_every - 1) {
        gs_error merr = {0};
        if (gs_metrics_begin(p->metrics, &merr) == GS_OK) {
            p->metrics_now = 1;
        } else {
            note(p, "hardware metrics stopped: %s", merr.msg);
            p->o.metrics_every = 0;
        }
    }
    return p->metrics_now;
}

void gs_profiler_step_end(gs_profiler *p, const gs_engine *e)
{
    int64_t step = p->store_sink.step;
    uint64_t t = gs_now_ns();
    gs_store_append_engine_counters(p->store, e, step, t);
    gs_store_append_kv_snapshot(p->store, &e->kv, step, t);
    p->steps++;
    if (p->metrics_now) {
        /* Stop the session first: CUPTI delivers the step's kernel records
         * after it, and they must be in the store to carry the values. */
        e->be->ops->synchronize(e->be);
        gs_error merr = {0};
        long n = p->metric_values ? gs_metrics_end_values(p->metrics, p->metric_values, METRIC_RANGES, &merr)
                                  : -gs_error_set(&merr, GS_ERR_RUNTIME, "out of memory");
        gs_cupti_drain(p->cupti, p->store, lookup_place, p, 1);
        if (n >= 0) {
            int borrowed = 0;
            p->last_metric_ranges = n;
            p->last_metric_kernels =
                gs_metrics_store_values(p->store, step, p->metric_values, n, remap_next_step, p, &borrowed);
            if (p->last_metric_kernels < 0)
                p->metric_steps_unmatched++;
            p->metric_steps++;
            /* Marked either way: the step was replayed, its timing is not representative. */
            gs_store_append_marker(p->store, "metrics step", step, gs_now_ns(), (double)step);
        } else {
            note(p, "hardware metrics stopped: %s", merr.msg);
            p->o.metrics_every = 0;
        }
        p->metrics_now = 0;
        return;
    }
    if (p->cupti)
        gs_cupti_drain(p->cupti, p->store, lookup_place, p, 0);
}

void gs_profiler_flush(gs_profiler *p, gs_engine *e)
{
    if (!p->cupti)
        return;
    e->be->ops->synchronize(e->be);
    gs_cupti_drain(p->cupti, p->store, lookup_place, p, 1);
}

const char *gs_profiler_notice(const gs_profiler *p) { return p->notice; }

void gs_profiler_get_stats(const gs_profiler *p, gs_profiler_stats *st)
{
    gs_cupti_stats cs;
    gs_cupti_get_stats(p->cupti, &cs);
    st->kernels = cs.kernels;
    st->copies = cs.copies + cs.sets;
    st->syncs = cs.syncs;
    st->metric_steps = p->metric_steps;
    st->dropped = cs.dropped + gs_store_dropped(p->store);
    st->unattributed = cs.unattributed;
    st->graph_kernels = cs.graph_kernels;
    st->last_metric_ranges = p->last_metric_ranges;
    st->last_metric_kernels = p->last_metric_kernels;
    st->metric_steps_unmatched = p->metric_steps_unmatched;
    st->cpu_counter_ops = p->cpuc_ops;
    st->cpu_counter_threads = gs_cpu_counters_threads(p->cpuc);
}

void gs_profiler_destroy(gs_profiler *p)
{
    if (!p)
        return;
    gs_metrics_destroy(p->metrics);
    gs_cpu_counters_close(p->cpuc);
    gs_cupti_stop(p->cupti);
    free(p->metric_values);
    free(p);
}
