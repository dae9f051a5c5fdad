/* test_cuda_profiler.c - the profiler on the GPU (GPU machine only).
 *  - CUPTI sees every kernel gptscope launched: per decode step, the kernel
 *    records equal the launches counted by the launchers (fp16 GEMV path,
 *    so no cuBLAS kernels hide among them);
 *  - every kernel belongs to exactly one op range of its own step, and lies
 *    inside that step in time (one clock for host and device);
 *  - copies are attributed to the upload and download ops (greedy: one id
 *    per step comes back, not the logits);
 *  - with CUDA graphs, kernels are still attributed to their ops;
 *  - hardware metrics: a conversion kernel's measured DRAM bytes are within
 *    5% of what it must move; sampled steps carry metrics for each kernel
 *    and a "metrics step" marker; without counter access, a clear reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda/device.h"
#include "cuda/gemv_cuda.h"
#include "engine.h"
#include "event_store.h"
#include "metrics_collector.h"
#include "presets.h"
#include "profiler.h"
#include "tap.h"

typedef struct evvec {
    gs_event *ev;
    size_t n, cap;
} evvec;

static int collect(void *ctx, uint64_t i, const gs_event *ev)
{
    (void)i;
    evvec *v = ctx;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4096;
        v->ev = realloc(v->ev, v->cap * sizeof *v->ev);
    }
    v->ev[v->n++] = *ev;
    return 0;
}

static const gs_event *find_range(const evvec *v, uint64_t id)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].kind == GS_EV_RANGE && v->ev[i].aux == id)
            return &v->ev[i];
    return NULL;
}

static const gs_event *find_step(const evvec *v, int64_t step)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].kind == GS_EV_RANGE && v->ev[i].level == GS_RANGE_STEP && v->ev[i].step == step)
            return &v->ev[i];
    return NULL;
}

#define MAX_STEPS 64

typedef struct run_result {
    int64_t first_step, last_step;
    unsigned long long launches[MAX_STEPS];
    int decode[MAX_STEPS];
} run_result;

static int run_engine(gs_profiler *prof, gs_backend *be, const gs_model *m, int graphs, int steps, run_result *rr,
                      gs_error *err)
{
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 1;
    c.weight_dtype = GS_DTYPE_F16;
    int rc = gs_engine_init(&e, be, m, &c, err);
    if (rc)
        return rc;
    e.fwd.attn_variant = GS_ATTN_FUSED;
    e.fwd.use_graphs = graphs;
    if ((rc = gs_profiler_attach(prof, &e, err))) {
        gs_engine_destroy(&e);
        return rc;
    }
    int prompt[8] = {1, 5, 9, 13, 17, 21, 25, 29};
    int id = gs_engine_submit(&e, prompt, 8, steps, err);
    if (id < 0) {
        gs_engine_destroy(&e);
        return -id;
    }
    rr->first_step = gs_profiler_next_step(prof);
    for (int s = 0; s < steps && gs_engine_busy(&e) && rc == GS_OK; s++) {
        int64_t step = gs_profiler_next_step(prof);
        unsigned long long before = gs_cuda_launches();
        gs_profiler_step_begin(prof);
        rc = gs_engine_step(&e, err);
        unsigned long long after = gs_cuda_launches();
        gs_profiler_step_end(prof, &e);
        size_t k = (size_t)(step - rr->first_step);
        if (k < MAX_STEPS) {
            rr->launches[k] = after - before;
            rr->decode[k] = e.last.n_prefill_tokens == 0;
        }
        rr->last_step = step;
    }
    gs_profiler_flush(prof, &e);
    gs_engine_destroy(&e);
    return rc;
}

/* Kernels per decode step equal launches; each kernel inside one op of its step. */
static int is_metrics_step(const evvec *v, gs_event_store *store, int64_t step)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].kind == GS_EV_MARKER && v->ev[i].step == step &&
            strcmp(gs_store_string(store, v->ev[i].name), "metrics step") == 0)
            return 1;
    return 0;
}

static void check_attribution(gs_event_store *store, const run_result *rr, const char *what)
{
    evvec v = {0};
    gs_store_query_steps(store, rr->first_step, rr->last_step, collect, &v);
    int counts_ok = 1, decode_steps = 0, attributed = 1, in_time = 1, copies_ok = 1;
    long kernels = 0, htod = 0, dtoh = 0;
    for (int64_t s = rr->first_step; s <= rr->last_step; s++) {
        size_t k = (size_t)(s - rr->first_step);
        unsigned long long n = 0;
        for (size_t i = 0; i < v.n; i++)
            n += v.ev[i].kind == GS_EV_KERNEL && v.ev[i].step == s;
        if (is_metrics_step(&v, store, s))
            tap_diag("%s step %lld (metrics): %llu kernel records, %llu launches", what, (long long)s, n,
                     k < MAX_STEPS ? rr->launches[k] : 0ULL);
        if (k < MAX_STEPS && rr->decode[k] && !is_metrics_step(&v, store, s)) {
            decode_steps++;
            if (n != rr->launches[k]) {
                counts_ok = 0;
                tap_diag("%s step %lld: %llu kernel records, %llu launches", what, (long long)s, n, rr->launches[k]);
            }
        }
    }
    for (size_t i = 0; i < v.n; i++) {
        const gs_event *ev = &v.ev[i];
        if (ev->kind != GS_EV_KERNEL && ev->kind != GS_EV_MEMCPY)
            continue;
        const gs_event *op = find_range(&v, ev->range_id);
        const gs_event *st = find_step(&v, ev->step);
        if (!op || op->level != GS_RANGE_OP || op->step != ev->step || !st) {
            if (attributed)
                tap_diag("%s: %s (step %lld) has no op range (range id %llu)", what,
                         gs_store_string(store, ev->name), (long long)ev->step, (unsigned long long)ev->range_id);
            attributed = 0;
            continue;
        }
        /* Device work starts after its op began and ends before its step ends
         * (the step ends by waiting for the logits). 20 us of slack for the
         * linear interpolation CUPTI does between GPU and CPU time. */
        if (ev->t_ns + 20000 < op->t_ns || ev->t_ns + ev->dur_ns > st->t_ns + st->dur_ns + 20000) {
            if (in_time)
                tap_diag("%s: %s at %llu..%llu outside op %llu / step ..%llu", what, gs_store_string(store, ev->name),
                         (unsigned long long)ev->t_ns, (unsigned long long)(ev->t_ns + ev->dur_ns),
                         (unsigned long long)op->t_ns, (unsigned long long)(st->t_ns + st->dur_ns));
            in_time = 0;
        }
        const char *opname = gs_store_string(store, op->name);
        if (ev->kind == GS_EV_KERNEL) {
            kernels++;
        } else if (ev->level == GS_COPY_HTOD) {
            htod++;
            copies_ok &= strcmp(opname, "upload_inputs") == 0;
        } else if (ev->level == GS_COPY_DTOH) {
            dtoh++;
            /* Greedy at batch 1: each step reads back its one id, not the logits. */
            copies_ok &= strcmp(opname, "download_ids") == 0 && ev->value == sizeof(int);
        }
    }
    tap_ok(decode_steps > 0 && counts_ok, "%s: kernel records per decode step equal the launches made (%d steps, %ld kernels)",
           what, decode_steps, kernels);
    tap_ok(kernels > 0 && attributed, "%s: every kernel and copy belongs to one op range of its step", what);
    tap_ok(in_time, "%s: device records lie inside their op and step on the one clock", what);
    tap_ok(copies_ok && htod > 0 && dtoh > 0,
           "%s: copies belong to upload_inputs (%ld HtoD) and download_ids (%ld DtoH of one id each)", what, htod, dtoh);
    free(v.ev);
}

static void check_metrics_steps(gs_event_store *store, const run_result *rr)
{
    evvec v = {0};
    gs_store_query_steps(store, rr->first_step, rr->last_step, collect, &v);
    int marked = 0, complete = 1;
    long metric_events = 0;
    for (size_t i = 0; i < v.n; i++) {
        const gs_event *ev = &v.ev[i];
        if (ev->kind == GS_EV_METRIC)
            metric_events++;
        if (ev->kind != GS_EV_MARKER || strcmp(gs_store_string(store, ev->name), "metrics step") != 0)
            continue;
        marked++;
        /* Every kernel of a marked step has its DRAM read metric. */
        for (size_t j = 0; j < v.n; j++) {
            const gs_event *k = &v.ev[j];
            if (k->kind != GS_EV_KERNEL || k->step != ev->step)
                continue;
            int found = 0;
            for (size_t q = 0; q < v.n && !found; q++)
                found = v.ev[q].kind == GS_EV_METRIC && v.ev[q].aux == k->aux &&
                        strcmp(gs_store_string(store, v.ev[q].name), "dram__bytes_read.sum") == 0;
            complete &= found;
        }
    }
    tap_ok(marked > 0 && complete && metric_events > 0,
           "sampled steps are marked and every kernel in them has metrics (%d steps, %ld metric events)", marked,
           metric_events);
    free(v.ev);
}

static void test_copy_traffic(void)
{
    gs_metrics *m = NULL;
    gs_error err = {0};
    if (gs_metrics_create(&m, 0, &err) || gs_metrics_prepare(m, &err)) {
        /* The fallback path: one clear reason, no crash. */
        tap_ok(err.msg[0] != '\0', "without counter access the reason is clear: %s", err.msg);
        tap_skip("no counter access here");
        gs_metrics_destroy(m);
        return;
    }
    tap_ok(gs_metrics_passes(m) >= 1, "the metric set needs %d pass(es)", gs_metrics_passes(m));
    const long n = 64L << 20; /* 256 MiB in, 128 MiB out: far beyond L2 */
    float *in = NULL;
    void *out = NULL;
    cudaMalloc((void **)&in, (size_t)n * sizeof(float));
    cudaMalloc(&out, (size_t)n * 2);
    cudaMemset(in, 0, (size_t)n * sizeof(float));
    cudaDeviceSynchronize();
    double values[8 * 32];
    long ranges = -1;
    if (gs_metrics_begin(m, &err) == GS_OK) {
        cuda_convert_to_half(out, in, n, 0, 0);
        ranges = gs_metrics_end_values(m, values, 8, &err);
    }
    if (ranges < 1) {
        tap_ok(0, "a conversion kernel is measured: %s", err.msg);
        tap_skip("no measurement");
    } else {
        double rd = values[0], wr = values[1];
        double want_rd = (double)n * 4, want_wr = (double)n * 2;
        tap_ok(rd > want_rd * 0.95 && rd < want_rd * 1.05,
               "conversion kernel: DRAM read %.1f MiB, must move %.1f MiB (within 5%%)", rd / 1048576, want_rd / 1048576);
        /* Writes also carry dirty L2 lines left by earlier work (the memset
         * of the input), so the whole traffic is what is bounded. */
        tap_ok(rd + wr > (want_rd + want_wr) * 0.95 && rd + wr < (want_rd + want_wr) * 1.05,
               "conversion kernel: DRAM read+write %.1f MiB (write %.1f), must move %.1f MiB (within 5%%)",
               (rd + wr) / 1048576, wr / 1048576, (want_rd + want_wr) / 1048576);
        tap_diag("L2 %.1f MiB (hit %.1f%%), L1 %.1f MiB, time %.1f us", values[2] / 1048576, values[9],
                 values[3] / 1048576, values[8] / 1e3);
    }
    cudaFree(in);
    cudaFree(out);
    gs_metrics_destroy(m);
}

int main(void)
{
    gs_event_store *store = gs_store_create(0);
    gs_profiler *prof = NULL;
    gs_error err = {0};
    gs_profiler_options po = {.device_timeline = 1, .metrics_every = 5, .nvtx = 1, .cpu_counters = 0}; /* metrics on every 5th step */
    int rc = gs_profiler_create(&prof, &po, 1, store, &err);
    tap_ok(rc == GS_OK && !strstr(gs_profiler_notice(prof), "timeline"), "the profiler starts CUPTI (%s)",
           rc ? err.msg : gs_profiler_notice(prof));
    gs_backend *be = NULL;
    if (gs_backend_cuda_create(&be, &err)) {
        tap_ok(0, "no CUDA device: %s", err.msg);
        return tap_done();
    }
    test_copy_traffic(); /* its own metrics session, closed before the profiler opens one */
    gs_model m;
    if (gs_model_alloc(&m, &gs_preset_find("gpt2-tiny")->shape, &err)) {
        tap_ok(0, "%s", err.msg);
        return tap_done();
    }
    gs_model_init_synthetic(&m, 7);
    run_result rr;
    memset(&rr, 0, sizeof rr);
    rc = run_engine(prof, be, &m, 0, 12, &rr, &err);
    tap_ok(rc == GS_OK, "12 steps with the timeline on: %s", rc ? err.msg : "ok");
    check_attribution(store, &rr, "eager");
    {
        gs_profiler_stats ps;
        gs_profiler_get_stats(prof, &ps);
        tap_diag("last sampled step: %ld ranges measured, %ld kernels matched", ps.last_metric_ranges,
                 ps.last_metric_kernels);
    }
    if (strstr(gs_profiler_notice(prof), "metrics"))
        tap_ok(1, "sampled metrics unavailable, said once: %s", gs_profiler_notice(prof));
    else
        check_metrics_steps(store, &rr);
    memset(&rr, 0, sizeof rr);
    rc = run_engine(prof, be, &m, 1, 12, &rr, &err);
    evvec v = {0};
    gs_store_query_steps(store, rr.first_step, rr.last_step, collect, &v);
    long graph_kernels = 0, graph_attr = 0, graph_op = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.ev[i].kind != GS_EV_KERNEL)
            continue;
        graph_kernels++;
        const gs_event *r = find_range(&v, v.ev[i].range_id);
        graph_attr += r && r->step == v.ev[i].step;
        graph_op += r && r->level == GS_RANGE_OP;
    }
    free(v.ev);
    /* A graph's kernels belong to the range that launched the graph: the
     * graph_replay op, or the step when the graph was just recorded. */
    tap_ok(rc == GS_OK && graph_kernels > 0 && graph_attr == graph_kernels,
           "CUDA graphs: all %ld kernels attributed to a range of their step (%ld to the graph_replay op)",
           graph_kernels, graph_op);
    gs_profiler_stats ps;
    gs_profiler_get_stats(prof, &ps);
    tap_diag("graphs: %llu graph kernels", (unsigned long long)ps.graph_kernels);
    tap_ok(ps.dropped == 0, "no device records dropped (%llu kernels, %llu copies, %llu unattributed)",
           (unsigned long long)ps.kernels, (unsigned long long)ps.copies, (unsigned long long)ps.unattributed);
    gs_profiler_destroy(prof);
    gs_store_destroy(store);
    gs_model_free(&m);
    gs_backend_destroy(be);
    return tap_done();
}
