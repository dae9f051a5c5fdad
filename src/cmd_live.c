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
#include "event_store.h"
#include "op_report.h"
#include "profiler.h"
#include "rng.h"
#include "session.h"
#include "workload_runner.h"
#include "../traces/trace_writer.h"
#include "../views/ui.h"

typedef struct live_run {
    gs_config cfg;
    gs_session s;
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
        if (!rc)
            gs_store_append_marker(r->store, "recording started", step, now_ns(), 0);
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
            if (atomic_load(&r->paused) && !r->rec_request && !atomic_load(&r->stop))
                pthread_cond_timedwait(&r->wake, &r->mu, &ts);
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        int done = 0;
        if ((rc = gs_workload_runner_feed(&r->wr, &done, &err)) || done)
            break;
        gs_profiler_step_begin(r->prof);
        if ((rc = gs_engine_step(&r->s.engine, &err)))
            break;
        gs_profiler_step_end(r->prof, &r->s.engine);
        const gs_step_info *st = &r->s.engine.last;
        if (st->n_tokens && !st->n_prefill_tokens) {
            r->decode_ns += st->ns;
            r->decode_tokens += st->n_decode_tokens;
            r->decode_steps++;
        }
    }
    gs_profiler_flush(r->prof, &r->s.engine);
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
    if (!rc && !(rc = gs_session_open(&r->s, &r->cfg, &cli->sampler, &err)))
        opened = 1;
    if (!rc)
        rc = gs_profiler_attach(r->prof, &r->s.engine, &err);
    if (!rc)
        rc = gs_workload_runner_init(&r->wr, &r->s.engine, &r->cfg.workload, r->s.model.shape.vocab, r->cfg.seed, 1,
                                     &err);
    if (!rc) {
        gs_trace_host_description(r->host, sizeof r->host);
        snprintf(r->device, sizeof r->device, "%s: %s", r->s.be->ops->name, r->s.be->device_name);
        char mem[64];
        const gs_forward *f = &r->s.engine.fwd;
        snprintf(mem, sizeof mem, "%.1f MiB", (double)(f->weight_bytes + f->activation_bytes + f->kv_bytes) / (1 << 20));
        char *yaml = NULL;
        int ylen = gs_config_to_yaml(&r->cfg, NULL, 0);
        if (ylen >= 0 && (yaml = malloc((size_t)ylen + 1)))
            gs_config_to_yaml(&r->cfg, yaml, ylen + 1);
        gs_ui_live live = {r, live_set_paused, live_paused, live_record, live_recording, live_failure};
        gs_ui_info info = {"live", r->cfg.model, r->device, mem, yaml, gs_profiler_notice(r->prof), ascii, &live};
        /* The engine thread ignores SIGINT/SIGTERM: the UI's handler sees them. */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGWINCH);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        int trc = pthread_create(&r->thread, NULL, engine_thread, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (trc) {
            rc = gs_error_set(&err, GS_ERR_RUNTIME, "cannot start the engine thread");
        } else {
            rc = gs_ui_run(r->store, &info, &err);
            atomic_store(&r->stop, 1);
            live_set_paused(r, 0);
            pthread_join(r->thread, NULL);
            if (r->decode_ns)
                fprintf(stderr, "gptscope: live decode %.1f tokens/s over %ld tokens (%ld decode steps, UI open)\n",
                        (double)r->decode_tokens / ((double)r->decode_ns * 1e-9), r->decode_tokens, r->decode_steps);
            if (!rc && atomic_load(&r->failed))
                rc = gs_error_set(&err, GS_ERR_RUNTIME, "%s", r->failure);
        }
        free(yaml);
    }
    gs_workload_runner_free(&r->wr);
    if (opened)
        gs_session_close(&r->s);
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
