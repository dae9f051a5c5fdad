/* test_profiler.c - the profiler on the CPU backend, and the metrics matcher.
 *  - ranges nest step > layer > op with unique ids, every op inside its
 *    layer or step in time, layer and step numbering continuous across two
 *    engines attached in turn;
 *  - counters and KV snapshots per step, the snapshot covering every block once;
 *  - metrics asked of a CPU run: one clear notice, the run goes on;
 *  - sampled metrics matched to kernels in launch order, also when the step's
 *    own kernel records are missing (borrowed from the step before). */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
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
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->ev = realloc(v->ev, v->cap * sizeof *v->ev);
    }
    v->ev[v->n++] = *ev;
    return 0;
}

static int run(gs_profiler *prof, gs_backend *be, const gs_model *m, int steps, gs_error *err)
{
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 2;
    int rc = gs_engine_init(&e, be, m, &c, err);
    if (rc)
        return rc;
    if ((rc = gs_profiler_attach(prof, &e, err)) == GS_OK) {
        int prompt[5] = {1, 2, 3, 4, 5};
        gs_engine_submit(&e, prompt, 5, steps, err);
        gs_engine_submit(&e, prompt, 3, steps, err);
        for (int s = 0; s < steps && rc == GS_OK; s++) {
            gs_profiler_step_begin(prof);
            rc = gs_engine_step(&e, err);
            gs_profiler_step_end(prof, &e);
        }
        gs_profiler_flush(prof, &e);
    }
    gs_engine_destroy(&e);
    return rc;
}

/* CPU counters asked of a CPU run: either a notice saying why there are
 * none (and no cpu.* metrics), or op-scope metrics on every op instance,
 * each naming an op range of the store. */
static void check_cpu_counters(gs_profiler *prof, gs_event_store *store, const evvec *v, long ops)
{
    const char *notice = gs_profiler_notice(prof);
    gs_profiler_stats st;
    gs_profiler_get_stats(prof, &st);
    long metrics = 0, on_ops = 0, positive = 0;
    for (size_t i = 0; i < v->n; i++) {
        const gs_event *m = &v->ev[i];
        if (m->kind != GS_EV_METRIC || strncmp(gs_store_string(store, m->name), "cpu.", 4) != 0)
            continue;
        metrics++;
        positive += m->value > 0;
        for (size_t j = 0; j < v->n; j++)
            if (v->ev[j].kind == GS_EV_RANGE && v->ev[j].level == GS_RANGE_OP && v->ev[j].aux == m->range_id) {
                on_ops += m->level == GS_METRIC_OP && v->ev[j].step == m->step;
                break;
            }
    }
    if (strstr(notice, "no CPU counters")) {
        tap_diag("CPU counters unavailable: %s", notice);
        tap_ok(metrics == 0 && st.cpu_counter_threads == 0 && st.cpu_counter_ops == 0,
               "no CPU counters: the notice says why, no cpu.* metrics, the run went on");
    } else {
        tap_ok(metrics > 0 && on_ops == metrics && (long)st.cpu_counter_ops == ops && st.cpu_counter_threads == 1,
               "CPU counters: %ld op-scope metrics on %llu of %ld op instances, each naming its op range "
               "(%ld on ops), %ld positive", metrics, (unsigned long long)st.cpu_counter_ops, ops, on_ops,
               positive);
    }
}

static void test_cpu_profiler(void)
{
    gs_event_store *store = gs_store_create(0);
    gs_profiler *prof = NULL;
    gs_error err = {0};
    gs_profiler_options po = {.device_timeline = 1, .metrics_every = 5, .nvtx = 1, .cpu_counters = 1};
    int rc = gs_profiler_create(&prof, &po, 0, store, &err);
    tap_ok(rc == GS_OK && strstr(gs_profiler_notice(prof), "CUDA"),
           "metrics asked of a CPU run: the run goes on with one notice (%s)", gs_profiler_notice(prof));
    gs_backend *be = NULL;
    gs_backend_cpu_create(&be, 1, &err);
    gs_model m;
    gs_model_alloc(&m, &gs_preset_find("gpt2-tiny")->shape, &err);
    gs_model_init_synthetic(&m, 3);
    rc = run(prof, be, &m, 6, &err);
    rc |= run(prof, be, &m, 4, &err);
    tap_ok(rc == GS_OK, "two engines, one after the other, feed one profiler");

    evvec v = {0};
    gs_store_visit(store, 0, gs_store_count(store), collect, &v);
    int64_t max_step = -1;
    int ids_unique = 1, nested = 1, steps_ok = 1;
    long ops = 0;
    for (size_t i = 0; i < v.n; i++) {
        const gs_event *a = &v.ev[i];
        if (a->kind != GS_EV_RANGE)
            continue;
        max_step = a->step > max_step ? a->step : max_step;
        for (size_t j = i + 1; j < v.n; j++)
            if (v.ev[j].kind == GS_EV_RANGE && v.ev[j].aux == a->aux)
                ids_unique = 0;
        if (a->level != GS_RANGE_OP)
            continue;
        ops++;
        /* Its step range contains it. */
        int inside = 0;
        for (size_t j = 0; j < v.n && !inside; j++) {
            const gs_event *s = &v.ev[j];
            inside = s->kind == GS_EV_RANGE && s->level == GS_RANGE_STEP && s->step == a->step &&
                     s->t_ns <= a->t_ns && a->t_ns + a->dur_ns <= s->t_ns + s->dur_ns;
        }
        nested &= inside;
    }
    for (int64_t s = 0; s <= max_step; s++) {
        int found = 0;
        for (size_t j = 0; j < v.n; j++)
            found += v.ev[j].kind == GS_EV_RANGE && v.ev[j].level == GS_RANGE_STEP && v.ev[j].step == s;
        steps_ok &= found == 1;
    }
    tap_ok(ids_unique && ops > 0, "every range has its own id (%ld ops)", ops);
    tap_ok(nested, "every op lies inside its step");
    tap_ok(steps_ok && max_step == 9, "steps are numbered 0..9 across both engines (last %lld)", (long long)max_step);
    /* KV snapshots: per step, runs covering every block exactly once. */
    int covered = 1;
    long snaps = 0;
    for (int64_t s = 0; s <= max_step; s++) {
        long blocks = 0, total = -1;
        for (size_t j = 0; j < v.n; j++)
            if (v.ev[j].kind == GS_EV_KV_BLOCKS && v.ev[j].step == s) {
                blocks += v.ev[j].u.kv.n_blocks;
                total = v.ev[j].u.kv.total_blocks;
            }
        covered &= total > 0 && blocks == total;
        snaps += total > 0;
    }
    tap_ok(covered && snaps == 10, "a KV snapshot per step covers every block once (%ld steps)", snaps);
    long tps = 0;
    for (size_t j = 0; j < v.n; j++)
        tps += v.ev[j].kind == GS_EV_COUNTER && strcmp(gs_store_string(store, v.ev[j].name), "tokens/s") == 0;
    tap_ok(tps == 10, "a tokens/s counter per step (%ld)", tps);
    check_cpu_counters(prof, store, &v, ops);
    free(v.ev);
    gs_profiler_destroy(prof);
    gs_store_destroy(store);
    gs_model_free(&m);
    gs_backend_destroy(be);
}

/* ---- the matcher on a synthetic store ---- */

static void add(gs_event_store *s, int kind, int level, const char *name, int64_t step, uint64_t aux,
                uint64_t range_id)
{
    gs_event ev = {0};
    ev.kind = (uint8_t)kind;
    ev.level = (uint8_t)level;
    ev.name = gs_store_intern(s, name);
    ev.layer = 0;
    ev.step = step;
    ev.t_ns = 1000 * (uint64_t)step + aux;
    ev.dur_ns = 10;
    ev.aux = aux;
    ev.range_id = range_id;
    gs_store_append(s, &ev);
}

static uint64_t plus_ten(void *ctx, uint64_t prev) { (void)ctx; return prev + 10; }

static void test_matcher(void)
{
    gs_event_store *s = gs_store_create(0);
    /* Step 0: op ranges 1, 2 and three kernels (launched in order 7, 8, 9,
     * appended out of order); step 1: op ranges 11, 12, no kernel records. */
    add(s, GS_EV_RANGE, GS_RANGE_OP, "norm", 0, 1, 0);
    add(s, GS_EV_RANGE, GS_RANGE_OP, "matmul", 0, 2, 0);
    add(s, GS_EV_KERNEL, 0, "k_matmul_b", 0, 9, 2);
    add(s, GS_EV_KERNEL, 0, "k_norm", 0, 7, 1);
    add(s, GS_EV_KERNEL, 0, "k_matmul_a", 0, 8, 2);
    add(s, GS_EV_RANGE, GS_RANGE_OP, "norm", 1, 11, 0);
    add(s, GS_EV_RANGE, GS_RANGE_OP, "matmul", 1, 12, 0);
    double *values = calloc(3 * gs_metric_count, sizeof(double));
    for (int r = 0; r < 3; r++)
        values[r * gs_metric_count] = 100.0 * (r + 1); /* DRAM read: 100, 200, 300 in launch order */
    int borrowed = 0;
    long n = gs_metrics_store_values(s, 0, values, 3, plus_ten, NULL, &borrowed);
    evvec v = {0};
    gs_store_visit(s, 0, gs_store_count(s), collect, &v);
    int ok = n == 3 && !borrowed;
    for (size_t i = 0; i < v.n; i++)
        if (v.ev[i].kind == GS_EV_METRIC && strcmp(gs_store_string(s, v.ev[i].name), gs_metric_names[0]) == 0)
            ok &= v.ev[i].value == 100.0 * (double)(v.ev[i].aux - 6) && v.ev[i].step == 0;
    tap_ok(ok, "metrics go to the step's kernels in launch order");
    size_t before = v.n;
    free(v.ev);
    v = (evvec){0};
    n = gs_metrics_store_values(s, 1, values, 3, plus_ten, NULL, &borrowed);
    gs_store_visit(s, before, gs_store_count(s), collect, &v);
    ok = n == 3 && borrowed && v.n == 3 * gs_metric_count;
    for (size_t i = 0; i < v.n; i++)
        ok &= v.ev[i].step == 1 && v.ev[i].range_id == (v.ev[i].aux == 7 ? 11u : 12u);
    tap_ok(ok, "without its own kernel records, a step borrows the sequence of the step before, moved onto its ops");
    free(v.ev);
    n = gs_metrics_store_values(s, 1, values, 2, plus_ten, NULL, &borrowed);
    tap_ok(n == -1, "a kernel sequence of another length is not matched");
    free(values);
    gs_store_destroy(s);
}

int main(void)
{
    test_cpu_profiler();
    test_matcher();
    return tap_done();
}
