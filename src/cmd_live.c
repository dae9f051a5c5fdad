/* cmd_live.c - `gptscope` / `gptscope live`.
 *
 * On a terminal: the model runs continuously on an engine thread (the
 * configured workload, repeated) with a profiler feeding an event store that
 * keeps a window of recent steps, and the terminal UI (views/) draws from
 * that store on the main thread. Neither waits for the other: the UI reads
 * the store lock-free, and asks for pause and recording through flags the
 * engine thread reads between steps (the store has one writer, so markers
 * and the trace writer's start and stop happen on the engine thread).
 *
 * Toggles: the UI hands a new configuration to apply(); a builder thread
 * opens it as a session of its own (its own backend: on CUDA its own stream
 * and cuBLAS handle in the same context, on the CPU its own pool) while the
 * engine thread keeps running the old variant. When it is ready the engine
 * thread swaps sessions between steps, re-attaches the profiler, restarts
 * the workload and writes a "toggle ..." marker; each variant's figures
 * (median decode and prefill times, bytes, quality when measured) go into
 * the store as variant.* counters, so the cost table and traces read them.
 *
 * Without a terminal on stdout (scripts, tests), or with --headless, it is
 * the short headless demo: generation step by step, then the per-op table. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "cli.h"
#include "commands.h"
#include "compare_live.h"
#include "event_store.h"
#include "op_report.h"
#include "profiler.h"
#include "rng.h"
#include "session.h"
#include "toggles.h"
#include "variant_quality.h"
#include "workload_runner.h"
#include "../traces/trace_writer.h"
#include "../views/ui.h"

/* One variant's figures, kept by the engine thread. */
#define VS_DECODE_RING 64
#define VS_PREFILL_RING 16
typedef struct variant_stats {
    int id;                      /* 1 = the baseline; 0 = none */
    char summary[512];
    double v[GS_VS_COUNT];
    int have[GS_VS_COUNT];
    double dec_ms[VS_DECODE_RING], dec_tps[VS_DECODE_RING];
    int n_dec, at_dec;
    double pre_ms[VS_PREFILL_RING];
    int n_pre, at_pre;
    uint64_t emitted_ns;       /* when its figures last went into the store */
} variant_stats;

enum { BUILD_IDLE = 0, BUILD_RUNNING, BUILD_READY, BUILD_DONE };

typedef struct live_run {
    gs_config cfg;             /* the running variant's (written by the engine thread under mu) */
    gs_sampler sampler;
    gs_session *s;             /* on the heap: an engine holds pointers into itself, so it never moves */
    gs_event_store *store;
    gs_profiler *prof;
    gs_workload_runner wr;
    pthread_t thread;
    atomic_int stop, paused, failed;
    char failure[512];
    pthread_mutex_t mu;        /* guards the recording fields and the pause wait */
    pthread_cond_t wake;
    int rec_request;           /* 1 start (rec_want), 2 stop */
    char rec_want[256];
    char rec_path[256];        /* being recorded ("" none) */
    char rec_msg[512];         /* why the last recording failed */
    char ui_rec[256];          /* the copy handed to the UI */
    gs_trace_writer *writer;
    char host[512], device[256];
    /* Decode steps (no prefill token) while the UI was open, for the line
     * printed at exit: the UI's cost shows against `gptscope bench`. */
    uint64_t decode_ns;
    long decode_tokens, decode_steps;
    /* Variant builds: state, want, next and the ui-facing fields under mu. */
    int build;                 /* BUILD_* */
    int builder_started;       /* a builder thread to join */
    pthread_t builder;
    gs_config want;
    gs_session *next;          /* built, waiting for the engine thread to swap it in */
    gs_variant_quality next_q;
    gs_ui_build bstat;
    int n_head;
    gs_variant_quality_ref *qref; /* made and used by the builder thread only */
    int qref_failed;
    /* engine thread only */
    variant_stats base, prev, cur;
    /* The comparison: per-op samples of the running variant (its engine's
     * range sink) and of the pinned one (A) once another runs. */
    atomic_int pin_request;
    int pinned;                /* A's variant number, 0 none */
    variant_stats pin_vs;      /* A's figures, written again with the others */
    gs_cmp_samples cmp_cur, cmp_pin;
    uint64_t cmp_emitted_ns;
} live_run;

static void live_set_paused(void *ctx, int p)
{
    live_run *r = ctx;
    atomic_store(&r->paused, p);
    pthread_mutex_lock(&r->mu);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

static int live_paused(void *ctx) { return atomic_load(&((live_run *)ctx)->paused); }

static void live_record(void *ctx, const char *path)
{
    live_run *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->rec_request = path ? 1 : 2;
    if (path)
        snprintf(r->rec_want, sizeof r->rec_want, "%s", path);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

static const char *live_recording(void *ctx, char *msg, int cap)
{
    live_run *r = ctx;
    pthread_mutex_lock(&r->mu);
    snprintf(r->ui_rec, sizeof r->ui_rec, "%s", r->rec_path);
    if (msg && cap > 0)
        snprintf(msg, (size_t)cap, "%s", r->rec_msg);
    pthread_mutex_unlock(&r->mu);
    return r->ui_rec[0] ? r->ui_rec : NULL;
}

static const char *live_failure(void *ctx)
{
    live_run *r = ctx;
    return atomic_load(&r->failed) ? r->failure : NULL;
}

static uint64_t now_ns(void) { return gs_now_ns(); }

/* ---- variants: figures into the store ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double t[VS_DECODE_RING];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void variant_begin(variant_stats *v, int id, const gs_session *s, const gs_variant_quality *q,
                          int64_t first_step)
{
    memset(v, 0, sizeof *v);
    v->id = id;
    v->v[GS_VS_FIRST_STEP] = (double)first_step;
    v->have[GS_VS_FIRST_STEP] = 1;
    gs_toggle_summary(&s->cfg, v->summary, sizeof v->summary);
    const gs_forward *f = &s->engine.fwd;
    long slots = (long)s->engine.kv.n_blocks * s->engine.kv.block_size;
    v->v[GS_VS_WEIGHT_BYTES] = (double)f->weight_bytes;
    v->v[GS_VS_KV_BYTES_TOKEN] = slots > 0 ? (double)f->kv_bytes / (double)slots : 0;
    v->v[GS_VS_PEAK_BYTES] = (double)(f->weight_bytes + f->activation_bytes + f->kv_bytes);
    v->have[GS_VS_WEIGHT_BYTES] = v->have[GS_VS_KV_BYTES_TOKEN] = v->have[GS_VS_PEAK_BYTES] = 1;
    if (q && q->measured) {
        v->v[GS_VS_KL] = q->kl;
        v->v[GS_VS_TOP1] = q->top1;
        v->v[GS_VS_PPL] = q->perplexity;
        v->have[GS_VS_KL] = v->have[GS_VS_TOP1] = v->have[GS_VS_PPL] = 1;
    }
}

/* A step of the running variant (not a metrics step: its time is distorted). */
static void variant_step(variant_stats *v, const gs_step_info *st)
{
    double ms = (double)st->ns * 1e-6;
    if (st->n_prefill_tokens > 0) {
        v->pre_ms[v->at_pre] = ms;
        v->at_pre = (v->at_pre + 1) % VS_PREFILL_RING;
        if (v->n_pre < VS_PREFILL_RING)
            v->n_pre++;
        v->v[GS_VS_PREFILL_MS] = median(v->pre_ms, v->n_pre);
        v->have[GS_VS_PREFILL_MS] = 1;
    } else if (st->n_decode_tokens > 0 && st->ns > 0) {
        v->dec_ms[v->at_dec] = ms;
        v->dec_tps[v->at_dec] = st->n_decode_tokens / (ms * 1e-3);
        v->at_dec = (v->at_dec + 1) % VS_DECODE_RING;
        if (v->n_dec < VS_DECODE_RING)
            v->n_dec++;
        v->v[GS_VS_DECODE_MS] = median(v->dec_ms, v->n_dec);
        v->v[GS_VS_DECODE_TPS] = median(v->dec_tps, v->n_dec);
        v->have[GS_VS_DECODE_MS] = v->have[GS_VS_DECODE_TPS] = 1;
    }
}

/* The variant's figures as counters (aux = its number). */
static void variant_emit(gs_event_store *store, variant_stats *v, int64_t step)
{
    uint64_t t = gs_now_ns();
    for (int i = 0; i < GS_VS_COUNT; i++) {
        if (!v->have[i])
            continue;
        gs_event ev = {0};
        ev.kind = GS_EV_COUNTER;
        ev.name = gs_store_intern(store, gs_vstat_name(i));
        ev.layer = -1;
        ev.step = step;
        ev.t_ns = t;
        ev.aux = (uint64_t)v->id;
        ev.value = v->v[i];
        if (ev.name != GS_STORE_NO_ID)
            gs_store_append(store, &ev);
    }
    v->emitted_ns = t;
}

static void variant_mark(gs_event_store *store, variant_stats *v, const char *prefix, int64_t step)
{
    char name[600];
    snprintf(name, sizeof name, "%s%s", prefix, v->summary);
    gs_store_append_marker(store, name, step, gs_now_ns(), v->id);
    variant_emit(store, v, step);
}

/* A recording starting, or the periodic refresh: every variant the cost
 * table needs, so a reader that missed the first markers still has them. */
static void variant_mark_all(live_run *r, int64_t step)
{
    if (r->base.id && r->base.id != r->cur.id)
        variant_mark(r->store, &r->base, GS_VARIANT_HISTORY, step);
    if (r->prev.id && r->prev.id != r->base.id)
        variant_mark(r->store, &r->prev, GS_VARIANT_HISTORY, step);
    if (r->pinned && r->pin_vs.id == r->pinned && r->pinned != r->cur.id && r->pinned != r->base.id &&
        r->pinned != r->prev.id)
        variant_mark(r->store, &r->pin_vs, GS_VARIANT_HISTORY, step);
    variant_mark(r->store, &r->cur, GS_VARIANT_RUNNING, step);
}

/* ---- the comparison: A pinned, B running ---- */

static void live_pin(void *ctx)
{
    live_run *r = ctx;
    atomic_store(&r->pin_request, 1);
    pthread_mutex_lock(&r->mu);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

/* Engine thread: A's and B's summaries into the store (a refresh: the live
 * window forgets them, and a recording needs them). */
static void cmp_emit(live_run *r, int64_t step)
{
    uint64_t t = gs_now_ns();
    gs_cmp_samples_scan_kernels(&r->cmp_cur, r->store);
    gs_cmp_emit_pin(r->store, r->pinned, step, t);
    if (r->pinned && r->cmp_pin.variant == r->pinned && r->pinned != r->cur.id)
        gs_cmp_samples_emit(&r->cmp_pin, r->store, step, t);
    if (r->pinned)
        gs_cmp_samples_emit(&r->cmp_cur, r->store, step, t);
    r->cmp_emitted_ns = t;
}

/* Engine thread, between steps: p pressed. */
static void handle_pin(live_run *r)
{
    if (!atomic_exchange(&r->pin_request, 0))
        return;
    int64_t step = gs_profiler_next_step(r->prof) - 1;
    if (r->pinned) {
        r->pinned = 0;
        gs_cmp_samples_free(&r->cmp_pin);
        cmp_emit(r, step);
        return;
    }
    r->pinned = r->cur.id;
    r->pin_vs = r->cur;
    cmp_emit(r, step);
}

/* ---- variant builds ---- */

static int build_progress(void *ctx, const char *stage, double frac)
{
    live_run *r = ctx;
    pthread_mutex_lock(&r->mu);
    snprintf(r->bstat.stage, sizeof r->bstat.stage, "%s", stage);
    r->bstat.frac = frac;
    pthread_mutex_unlock(&r->mu);
    return atomic_load(&r->stop); /* quitting: stop at the next stage */
}

/* Starts a worker with SIGINT, SIGTERM and SIGWINCH blocked in it (the
 * mask is inherited), so the UI thread's handlers see them. 0 or errno. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void *builder_thread(void *arg)
{
    live_run *r = arg;
    gs_error err = {0};
    pthread_mutex_lock(&r->mu);
    gs_config want = r->want;
    pthread_mutex_unlock(&r->mu);
    gs_variant_quality q = {0};
    gs_session *s = calloc(1, sizeof *s);
    int rc = s ? gs_session_open_progress(s, &want, &r->sampler, NULL, build_progress, r, &err)
               : gs_error_set(&err, GS_ERR_RUNTIME, "out of memory");
    /* The fp32 baseline is made on the first toggle, not at start-up (it runs
     * the model over a few hundred positions), by this thread only. */
    if (!rc && !r->qref && !r->qref_failed) {
        build_progress(r, "making the fp32 quality baseline", 0.8);
        gs_error qerr = {0};
        if (gs_variant_quality_ref_create(&r->qref, &r->cfg, &qerr) || !r->qref)
            r->qref_failed = 1;
    }
    if (!rc && r->qref) {
        build_progress(r, "measuring quality", 0.9);
        gs_error qerr = {0};
        if (gs_variant_quality_measure(r->qref, s, &q, &qerr))
            q.measured = 0;
    }
    if (rc) {
        free(s);
        s = NULL;
    }
    pthread_mutex_lock(&r->mu);
    if (!rc) {
        r->next = s;
        r->next_q = q;
        r->build = BUILD_READY;
        snprintf(r->bstat.stage, sizeof r->bstat.stage, "ready: swapping in between steps");
        r->bstat.frac = 1.0;
    } else {
        r->build = BUILD_DONE;
        r->bstat.building = 0;
        r->bstat.failed = 1;
        snprintf(r->bstat.msg, sizeof r->bstat.msg, "refused, the running variant stays: %.200s", err.msg);
        r->bstat.seq++;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void live_config(void *ctx, gs_config *out, int *n_head)
{
    live_run *r = ctx;
    pthread_mutex_lock(&r->mu);
    *out = r->cfg;
    *n_head = r->n_head;
    pthread_mutex_unlock(&r->mu);
}

static int live_apply(void *ctx, const gs_config *want, char *msg, int cap)
{
    live_run *r = ctx;
    gs_error err = {0};
    if (gs_toggle_validate(want, r->n_head, &err)) {
        snprintf(msg, (size_t)cap, "%s", err.msg);
        return GS_ERR_INPUT;
    }
    pthread_mutex_lock(&r->mu);
    int busy = r->build == BUILD_RUNNING || r->build == BUILD_READY;
    pthread_mutex_unlock(&r->mu);
    if (busy) {
        snprintf(msg, (size_t)cap, "a variant is being built: apply again when it is running");
        return GS_ERR_INPUT;
    }
    if (r->builder_started) { /* the last builder has finished: reap it */
        pthread_join(r->builder, NULL);
        r->builder_started = 0;
    }
    pthread_mutex_lock(&r->mu);
    r->want = *want;
    /* The workload and the run's own settings stay; only the toggles change. */
    r->want.workload = r->cfg.workload;
    r->build = BUILD_RUNNING;
    r->bstat.building = 1;
    r->bstat.failed = 0;
    r->bstat.frac = 0;
    snprintf(r->bstat.stage, sizeof r->bstat.stage, "starting");
    pthread_mutex_unlock(&r->mu);
    int trc = start_thread(&r->builder, builder_thread, r);
    if (trc) {
        pthread_mutex_lock(&r->mu);
        r->build = BUILD_DONE;
        r->bstat.building = 0;
        pthread_mutex_unlock(&r->mu);
        snprintf(msg, (size_t)cap, "cannot start a builder thread");
        return GS_ERR_RUNTIME;
    }
    r->builder_started = 1;
    return GS_OK;
}

static void live_build_state(void *ctx, gs_ui_build *out)
{
    live_run *r = ctx;
    pthread_mutex_lock(&r->mu);
    *out = r->bstat;
    pthread_mutex_unlock(&r->mu);
}

/* Engine thread, between steps: a built variant takes over. */
static void handle_swap(live_run *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->build != BUILD_READY) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    gs_session *next = r->next;
    gs_variant_quality q = r->next_q;
    r->next = NULL;
    pthread_mutex_unlock(&r->mu);
    gs_error err = {0};
    gs_profiler_flush(r->prof, &r->s->engine); /* the old engine's device records first */
    gs_workload_runner wr;
    int rc = gs_profiler_attach(r->prof, &next->engine, &err);
    if (!rc)
        rc = gs_workload_runner_init(&wr, &next->engine, &next->cfg.workload, next->model.shape.vocab,
                                     next->cfg.seed, 1, &err);
    if (rc) {
        gs_session_close(next);
        free(next);
        /* attach failed before the step numbering moved on: the old engine's sinks are intact */
        pthread_mutex_lock(&r->mu);
        r->build = BUILD_DONE;
        r->bstat.building = 0;
        r->bstat.failed = 1;
        snprintf(r->bstat.msg, sizeof r->bstat.msg, "refused, the running variant stays: %.200s", err.msg);
        r->bstat.seq++;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    /* The comparison's samples follow the variants: the old one's become
     * A's when it is pinned (its last kernels are in the store: flushed above). */
    gs_cmp_samples_scan_kernels(&r->cmp_cur, r->store);
    if (r->pinned && r->pinned == r->cur.id)
        gs_cmp_samples_move(&r->cmp_pin, &r->cmp_cur);
    gs_cmp_samples_free(&r->cmp_cur);
    if (gs_cmp_samples_init(&r->cmp_cur, r->cur.id + 1) == 0)
        gs_ranges_add_sink(&next->engine.ranges, gs_cmp_samples_sink(&r->cmp_cur));
    char diff[256];
    gs_toggle_diff(&r->s->cfg, &next->cfg, diff, sizeof diff);
    gs_workload_runner_free(&r->wr);
    gs_session_close(r->s);
    free(r->s);
    r->s = next;
    r->wr = wr;
    r->prev = r->cur;
    int64_t step = gs_profiler_next_step(r->prof) - 1;
    variant_begin(&r->cur, r->prev.id + 1, r->s, &q, step + 1);
    variant_mark(r->store, &r->cur, GS_VARIANT_TOGGLE, step);
    pthread_mutex_lock(&r->mu);
    r->cfg = r->s->cfg;
    r->build = BUILD_DONE;
    r->bstat.building = 0;
    r->bstat.failed = 0;
    snprintf(r->bstat.msg, sizeof r->bstat.msg, "variant %d running: %.200s", r->cur.id, diff[0] ? diff : "(no change)");
    r->bstat.seq++;
    pthread_mutex_unlock(&r->mu);
}

/* Engine thread, between steps: start or stop the trace writer. */
static void handle_record_request(live_run *r)
{
    pthread_mutex_lock(&r->mu);
    int req = r->rec_request;
    if (!req) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    char want[256];
    snprintf(want, sizeof want, "%s", r->rec_want);
    r->rec_request = 0;
    pthread_mutex_unlock(&r->mu);
    int64_t step = gs_profiler_next_step(r->prof) - 1;
    gs_error err = {0};
    if (req == 1 && !r->writer) {
        char *yaml = NULL;
        int ylen = gs_config_to_yaml(&r->cfg, NULL, 0);
        if (ylen >= 0 && (yaml = malloc((size_t)ylen + 1)))
            gs_config_to_yaml(&r->cfg, yaml, ylen + 1);
        gs_trace_meta meta = {PACKAGE_VERSION, r->host, r->device, yaml ? yaml : "", now_ns()};
        int rc = gs_trace_writer_open(&r->writer, want, &meta, r->store, 0, &err);
        free(yaml);
        if (!rc && (rc = gs_trace_writer_start_thread(r->writer, &err))) {
            gs_error e2 = {0};
            gs_trace_writer_close(r->writer, &e2);
        }
        pthread_mutex_lock(&r->mu);
        if (rc) {
            r->writer = NULL;
            snprintf(r->rec_msg, sizeof r->rec_msg, "%s", err.msg);
        } else {
            snprintf(r->rec_path, sizeof r->rec_path, "%s", want);
            r->rec_msg[0] = 0;
        }
        pthread_mutex_unlock(&r->mu);
        if (!rc) {
            gs_store_append_marker(r->store, "recording started", step, now_ns(), 0);
            variant_mark_all(r, step);
            if (r->pinned)
                cmp_emit(r, step);
        }
    } else if (req == 2 && r->writer) {
        gs_store_append_marker(r->store, "recording stopped", step, now_ns(), 0);
        int rc = gs_trace_writer_close(r->writer, &err);
        r->writer = NULL;
        pthread_mutex_lock(&r->mu);
        r->rec_path[0] = 0;
        if (rc)
            snprintf(r->rec_msg, sizeof r->rec_msg, "%s", err.msg);
        pthread_mutex_unlock(&r->mu);
    }
}

static void *engine_thread(void *arg)
{
    live_run *r = arg;
    gs_error err = {0};
    int rc = GS_OK;
    while (!atomic_load(&r->stop)) {
        handle_record_request(r);
        handle_swap(r);
        handle_pin(r);
        if (atomic_load(&r->paused)) {
            /* Paused: sleep until resumed, asked to record, or stopped. */
            pthread_mutex_lock(&r->mu);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (atomic_load(&r->paused) && !r->rec_request && !atomic_load(&r->stop) &&
                !atomic_load(&r->pin_request))
                pthread_cond_timedwait(&r->wake, &r->mu, &ts);
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        int done = 0;
        if ((rc = gs_workload_runner_feed(&r->wr, &done, &err)) || done)
            break;
        int sampled = gs_profiler_step_begin(r->prof);
        if ((rc = gs_engine_step(&r->s->engine, &err)))
            break;
        gs_profiler_step_end(r->prof, &r->s->engine);
        const gs_step_info *st = &r->s->engine.last;
        gs_cmp_samples_step_end(&r->cmp_cur, gs_profiler_next_step(r->prof) - 1, st->ns, !sampled && st->n_tokens,
                                st->n_prefill_tokens > 0, st->n_decode_tokens);
        /* The pin (0 too) every time: the live window may drop an event
         * before the UI reads it, so a one-off unpin could be missed. */
        if (gs_now_ns() - r->cmp_emitted_ns > GS_CMP_EMIT_NS)
            cmp_emit(r, gs_profiler_next_step(r->prof) - 1);
        if (!sampled && st->n_tokens) {
            variant_step(&r->cur, st);
            if (r->cur.id == r->base.id)
                r->base = r->cur;
            if (r->cur.id == r->pinned)
                r->pin_vs = r->cur;
            /* Five times a second (and at a variant's first steps, so its
             * column fills at once): the live window forgets older events. */
            uint64_t t = gs_now_ns();
            if (r->cur.n_dec + r->cur.n_pre <= 2)
                variant_emit(r->store, &r->cur, gs_profiler_next_step(r->prof) - 1);
            else if (t - r->cur.emitted_ns > 200000000ull)
                variant_mark_all(r, gs_profiler_next_step(r->prof) - 1);
        }
        if (st->n_tokens && !st->n_prefill_tokens) {
            r->decode_ns += st->ns;
            r->decode_tokens += st->n_decode_tokens;
            r->decode_steps++;
        }
    }
    gs_profiler_flush(r->prof, &r->s->engine);
    if (r->writer) {
        gs_error e2 = {0};
        gs_trace_writer_close(r->writer, &e2);
        r->writer = NULL;
    }
    if (rc) {
        snprintf(r->failure, sizeof r->failure, "%s", err.msg);
        atomic_store(&r->failed, 1);
    }
    return NULL;
}

static int run_live_ui(gs_cli *cli, int ascii)
{
    live_run *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "gptscope: out of memory\n");
        return GS_ERR_RUNTIME;
    }
    gs_error err = {0};
    r->cfg = cli->cfg;
    r->sampler = cli->sampler;
    if (cli->n_tokens >= 0)
        r->cfg.workload.gen_len = cli->n_tokens;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    int window = r->cfg.profiler.window_steps > 0 ? r->cfg.profiler.window_steps : 256;
    r->store = gs_store_create(window);
    gs_profiler_options po = {
        .device_timeline = cli->device_trace,
        .metrics_every = cli->metrics_every ? cli->metrics_every : r->cfg.profiler.metrics_every,
        .nvtx = 0, /* the UI is the view; Nsight users run record or bench */
        .metrics_fast = cli->metrics_fast,
        .trace_every = cli->trace_every,
        .cpu_counters = cli->cpu_counters,
    };
    int rc = GS_OK;
    int opened = 0;
    fprintf(stderr, "gptscope: loading %s ...\n", r->cfg.model);
    if (!r->store)
        rc = gs_error_set(&err, GS_ERR_RUNTIME, "out of memory");
    if (!rc)
        rc = gs_profiler_create(&r->prof, &po, gs_backend_wants_cuda(r->cfg.backend), r->store, &err);
    if (!rc && !(r->s = calloc(1, sizeof *r->s)))
        rc = gs_error_set(&err, GS_ERR_RUNTIME, "out of memory");
    if (!rc && !(rc = gs_session_open(r->s, &r->cfg, &cli->sampler, &err)))
        opened = 1;
    if (!rc)
        rc = gs_profiler_attach(r->prof, &r->s->engine, &err);
    if (!rc)
        rc = gs_workload_runner_init(&r->wr, &r->s->engine, &r->cfg.workload, r->s->model.shape.vocab, r->cfg.seed, 1,
                                     &err);
    if (!rc && gs_cmp_samples_init(&r->cmp_cur, 1) == 0)
        gs_ranges_add_sink(&r->s->engine.ranges, gs_cmp_samples_sink(&r->cmp_cur));
    if (!rc) {
        r->n_head = r->s->model.shape.n_head;
        variant_begin(&r->cur, 1, r->s, NULL, gs_profiler_next_step(r->prof));
        r->base = r->cur;
        variant_mark(r->store, &r->cur, GS_VARIANT_RUNNING, gs_profiler_next_step(r->prof) - 1);
        gs_trace_host_description(r->host, sizeof r->host);
        snprintf(r->device, sizeof r->device, "%s: %s", r->s->be->ops->name, r->s->be->device_name);
        char mem[64];
        const gs_forward *f = &r->s->engine.fwd;
        snprintf(mem, sizeof mem, "%.1f MiB", (double)(f->weight_bytes + f->activation_bytes + f->kv_bytes) / (1 << 20));
        char *yaml = NULL;
        int ylen = gs_config_to_yaml(&r->cfg, NULL, 0);
        if (ylen >= 0 && (yaml = malloc((size_t)ylen + 1)))
            gs_config_to_yaml(&r->cfg, yaml, ylen + 1);
        gs_ui_live live = {r,           live_set_paused, live_paused, live_record, live_recording, live_failure,
                           live_config, live_apply,  live_build_state, live_pin};
        gs_ui_info info = {"live", r->cfg.model, r->device, mem, yaml, gs_profiler_notice(r->prof), ascii, &live};
        /* The engine thread ignores SIGINT/SIGTERM: the UI's handler sees them. */
        int trc = start_thread(&r->thread, engine_thread, r);
        if (trc) {
            rc = gs_error_set(&err, GS_ERR_RUNTIME, "cannot start the engine thread");
        } else {
            rc = gs_ui_run(r->store, &info, &err);
            atomic_store(&r->stop, 1);
            live_set_paused(r, 0);
            pthread_join(r->thread, NULL);
            /* A build under way stops at its next stage (build_progress sees stop). */
            if (r->builder_started)
                pthread_join(r->builder, NULL);
            if (r->next) {
                gs_session_close(r->next);
                free(r->next);
            }
            if (r->decode_ns)
                fprintf(stderr, "gptscope: live decode %.1f tokens/s over %ld tokens (%ld decode steps, UI open)\n",
                        (double)r->decode_tokens / ((double)r->decode_ns * 1e-9), r->decode_tokens, r->decode_steps);
            if (!rc && atomic_load(&r->failed))
                rc = gs_error_set(&err, GS_ERR_RUNTIME, "%s", r->failure);
        }
        free(yaml);
    }
    gs_workload_runner_free(&r->wr);
    gs_cmp_samples_free(&r->cmp_cur);
    gs_cmp_samples_free(&r->cmp_pin);
    gs_variant_quality_ref_destroy(r->qref);
    if (opened)
        gs_session_close(r->s);
    free(r->s);
    if (r->prof)
        gs_profiler_destroy(r->prof);
    gs_store_destroy(r->store);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    free(r);
    return rc ? gs_report(&err) : 0;
}

/* Takes the UI's own flags out of argv (the shared option table does not
 * know them); returns the new argc. */
static int take_ui_flags(int argc, char **argv, int *ascii, int *headless)
{
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--ascii") == 0)
            *ascii = 1;
        else if (i > 0 && strcmp(argv[i], "--headless") == 0)
            *headless = 1;
        else
            argv[n++] = argv[i];
    }
    argv[n] = NULL;
    return n;
}

int cmd_live(int argc, char **argv)
{
    gs_cli cli;
    gs_error err = {0};
    int ascii = 0, headless = 0;
    argc = take_ui_flags(argc, argv, &ascii, &headless);
    unsigned groups = GS_OPTS_COMMON | GS_OPTS_WORKLOAD | GS_OPTS_SAMPLING | GS_OPTS_COLLECT;
    int rc = gs_cli_parse(&cli, "live", groups, argc, argv, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if (cli.help) {
        printf("usage: gptscope [live] [-c CONFIG] [--model M] [--batch B] [-n N] [--ascii] [--headless]\n\n"
               "Runs the model continuously and shows where the time goes in the terminal UI:\n"
               "timeline, flame graph, memory traffic, KV cache (F1 lists the keys; Space\n"
               "pauses, r records a trace, q quits). The workload repeats until you quit.\n"
               "When stdout is not a terminal, or with --headless, it prints a short demo\n"
               "instead: generation step by step, then the per-op timing table.\n\noptions:\n");
        gs_cli_print_options(groups);
        printf("  %-30s %s\n  %-30s %s\n", "--ascii", "no Unicode glyphs (also automatic outside a UTF-8 locale)",
               "--headless", "the printed demo even on a terminal");
        gs_cli_free(&cli);
        return 0;
    }
    if (!headless && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        rc = run_live_ui(&cli, ascii);
        gs_cli_free(&cli);
        return rc;
    }
    gs_config cfg = cli.cfg;
    if (cli.n_tokens >= 0)
        cfg.workload.gen_len = cli.n_tokens;
    printf("gptscope: loading %s ...\n", cfg.model);
    fflush(stdout);
    gs_session s;
    rc = gs_session_open(&s, &cfg, &cli.sampler, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    const gs_model_shape *sh = &s.model.shape;
    printf("model   %s: %s, %d layers, %d heads (%d KV), width %d, vocab %d, %.1fM params (ready in %.2f s)\n",
           cfg.model, sh->arch == GS_ARCH_GPT2 ? "GPT-2 style" : "Llama style", sh->n_layer, sh->n_head,
           sh->n_kv_head, sh->n_embd, sh->vocab, (double)gs_shape_param_count(sh) / 1e6, s.load_seconds);
    printf("backend %s: %s\n", s.be->ops->name, s.be->device_name);
    printf("KV      %d blocks of %d tokens, %.1f MiB\n\n", s.engine.kv.n_blocks, s.engine.kv.block_size,
           (double)s.engine.fwd.kv_bytes / (1 << 20));
    gs_op_table ops;
    gs_op_table_init(&ops);
    gs_ranges_add_sink(&s.engine.ranges, gs_op_table_sink(&ops));
    const gs_workload *wl = &cfg.workload;
    int *prompt = malloc((size_t)wl->prompt_len * sizeof(int));
    gs_rng rng;
    gs_rng_seed(&rng, cfg.seed);
    prompt[0] = 1;
    for (int i = 1; i < wl->prompt_len; i++)
        prompt[i] = (int)(gs_rng_next(&rng) % (uint64_t)sh->vocab);
    for (int q = 0; rc == GS_OK && q < wl->batch; q++) {
        int id = gs_engine_submit(&s.engine, prompt, wl->prompt_len, wl->gen_len, &err);
        if (id < 0)
            rc = -id;
    }
    free(prompt);
    uint64_t decode_ns = 0;
    long decode_tokens = 0;
    while (rc == GS_OK && gs_engine_busy(&s.engine)) {
        rc = gs_engine_step(&s.engine, &err);
        const gs_step_info *st = &s.engine.last;
        if (rc || st->n_tokens == 0)
            continue;
        gs_kv_stats kvs;
        kv_cache_stats(&s.engine.kv, &kvs);
        const gs_request *r0 = gs_engine_request(&s.engine, 0);
        printf("step %3ld  %-7s %4d tokens %8.2f ms   KV %3d/%d blocks   seq0 -> %d\n", st->index,
               st->n_prefill_tokens ? "prefill" : "decode", st->n_tokens, (double)st->ns * 1e-6,
               kvs.blocks_used, s.engine.kv.n_blocks, r0->tokens[r0->n_prompt + r0->n_generated - 1]);
        if (!st->n_prefill_tokens) {
            decode_ns += st->ns;
            decode_tokens += st->n_decode_tokens;
        }
    }
    if (rc == GS_OK) {
        printf("\ndecode: %.1f tokens/s over %ld tokens\n\n",
               decode_ns ? (double)decode_tokens / ((double)decode_ns * 1e-9) : 0.0, decode_tokens);
        gs_op_report_print(stdout, &ops, s.engine.steps);
        printf("\n(in a terminal, gptscope opens the interactive timeline, flame, memory and KV-cache views)\n");
    }
    gs_session_close(&s);
    gs_cli_free(&cli);
    return rc ? gs_report(&err) : 0;
}
