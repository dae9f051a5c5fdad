/* cmd_trace.c - the trace-file commands: `record` runs the engine headless
 * into a crash-safe trace file, `replay --summary` reads one back, `export`
 * writes Chrome-trace JSON (optionally gzip), folded stacks or CSV. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "cli.h"
#include "commands.h"
#include "backend.h"
#include "event_store.h"
#include "profiler.h"
#include "workload_runner.h"
#include "session.h"
#include "../traces/export.h"
#include "../traces/trace_reader.h"
#include "../traces/trace_writer.h"
#include "../views/ui.h"

/* ---- record, replay, export: the trace file commands ---- */

static volatile sig_atomic_t stop_requested;
static void on_stop_signal(int sig) { stop_requested = sig; }

static uint64_t clock_ns(void) { return gs_now_ns(); }

int cmd_record(int argc, char **argv)
{
    gs_cli cli;
    gs_error err = {0};
    unsigned groups = GS_OPTS_COMMON | GS_OPTS_WORKLOAD | GS_OPTS_RECORD | GS_OPTS_COLLECT;
    int rc = gs_cli_parse(&cli, "record", groups, argc, argv, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if (cli.help) {
        printf("usage: gptscope record -o FILE.gst [-c CONFIG] [--steps N | --seconds S]\n\n"
               "Runs the configured workload headless and records every step, layer and op\n"
               "range and the engine's counters to a crash-safe trace file (a chunk at least\n"
               "every %d ms; SIGINT/SIGTERM finish the file cleanly).\n\noptions:\n",
               GS_TRACE_FLUSH_MS);
        gs_cli_print_options(groups);
        gs_cli_free(&cli);
        return 0;
    }
    if (!cli.output || cli.n_args) {
        fprintf(stderr, "gptscope record: %s (see gptscope record --help)\n",
                cli.n_args ? "unexpected argument" : "-o FILE.gst is required");
        gs_cli_free(&cli);
        return GS_ERR_INPUT;
    }
    gs_config cfg = cli.cfg;
    const gs_workload *wl = &cfg.workload;
    gs_event_store *store = gs_store_create(0);
    gs_profiler *prof = NULL;
    gs_profiler_options po = {.device_timeline = cli.device_trace, .metrics_every = cli.metrics_every,
                             .nvtx = cli.nvtx, .metrics_fast = cli.metrics_fast, .trace_every = cli.trace_every,
                             .cpu_counters = cli.cpu_counters};
    /* Before the session: CUPTI must see the CUDA modules load. */
    if (!store || (rc = gs_profiler_create(&prof, &po, gs_backend_wants_cuda(cfg.backend), store, &err))) {
        gs_store_destroy(store);
        gs_cli_free(&cli);
        return store ? gs_report(&err) : (fprintf(stderr, "gptscope record: out of memory\n"), GS_ERR_RUNTIME);
    }
    gs_session s;
    if ((rc = gs_session_open(&s, &cfg, NULL, &err))) {
        gs_profiler_destroy(prof);
        gs_store_destroy(store);
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if ((rc = gs_profiler_attach(prof, &s.engine, &err))) {
        gs_session_close(&s);
        gs_profiler_destroy(prof);
        gs_store_destroy(store);
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if (gs_profiler_notice(prof)[0])
        fprintf(stderr, "gptscope record: %s\n", gs_profiler_notice(prof));
    char *yaml = NULL;
    int ylen = gs_config_to_yaml(&cfg, NULL, 0);
    if (ylen >= 0 && (yaml = malloc((size_t)ylen + 1)))
        gs_config_to_yaml(&cfg, yaml, ylen + 1);
    if (!yaml) {
        gs_session_close(&s);
        gs_profiler_destroy(prof);
        gs_store_destroy(store);
        gs_cli_free(&cli);
        fprintf(stderr, "gptscope record: out of memory\n");
        return GS_ERR_RUNTIME;
    }
    char host[512], device[256];
    gs_trace_host_description(host, sizeof host);
    snprintf(device, sizeof device, "%s: %s", s.be->ops->name, s.be->device_name);
    uint64_t origin = clock_ns();
    gs_trace_meta meta = {PACKAGE_VERSION, host, device, yaml, origin};
    gs_trace_writer *w = NULL;
    rc = gs_trace_writer_open(&w, cli.output, &meta, store, 0, &err);
    free(yaml);
    if (!rc)
        rc = gs_trace_writer_start_thread(w, &err);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;
    if (!rc)
        gs_store_append_marker(store, "recording started", 0, clock_ns(), 0);
    int tty = isatty(STDERR_FILENO);
    long steps = 0;
    uint64_t deadline = cli.seconds > 0 ? origin + (uint64_t)(cli.seconds * 1e9) : UINT64_MAX;
    /* --steps / --seconds repeat the workload to fill them. */
    gs_workload_runner runner;
    int have_runner = 0;
    if (!rc) {
        rc = gs_workload_runner_init(&runner, &s.engine, wl, s.model.shape.vocab, cfg.seed,
                                     cli.steps > 0 || cli.seconds > 0, &err);
        have_runner = rc == GS_OK;
    }
    while (rc == GS_OK && !stop_requested) {
        if (cli.steps > 0 && steps >= cli.steps)
            break;
        if (clock_ns() >= deadline)
            break;
        int done = 0;
        if ((rc = gs_workload_runner_feed(&runner, &done, &err)) || done)
            break;
        gs_profiler_step_begin(prof);
        if ((rc = gs_engine_step(&s.engine, &err)))
            break;
        gs_profiler_step_end(prof, &s.engine);
        if (s.engine.last.n_tokens == 0)
            continue;
        steps++;
        if (tty && steps % 8 == 0) {
            fprintf(stderr, "\rrecording %s: %ld steps, %llu events, %.1f KiB ", cli.output, steps,
                    (unsigned long long)gs_store_count(store), gs_trace_writer_bytes(w) / 1024.0);
            fflush(stderr);
        }
    }
    if (have_runner)
        gs_workload_runner_free(&runner);
    gs_profiler_flush(prof, &s.engine);
    if (stop_requested)
        gs_store_append_marker(store, "recording stopped by signal", gs_profiler_next_step(prof) - 1, clock_ns(),
                               stop_requested);
    gs_error cerr = {0};
    int crc = w ? gs_trace_writer_close(w, &cerr) : GS_OK;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (tty)
        fprintf(stderr, "\r\033[K");
    if (!rc && !crc)
        fprintf(stderr, "gptscope record: %ld steps, %llu events (%llu dropped) written to %s%s\n", steps,
                (unsigned long long)gs_store_count(store), (unsigned long long)gs_store_dropped(store), cli.output,
                stop_requested ? " (stopped by signal)" : "");
    gs_profiler_stats ps;
    gs_profiler_get_stats(prof, &ps);
    if (!rc && !crc && (ps.kernels || ps.dropped))
        fprintf(stderr, "gptscope record: %llu kernels, %llu copies, %llu syncs, %llu metric steps, %llu device records "
                "dropped, %llu unattributed\n", (unsigned long long)ps.kernels, (unsigned long long)ps.copies,
                (unsigned long long)ps.syncs, (unsigned long long)ps.metric_steps, (unsigned long long)ps.dropped,
                (unsigned long long)ps.unattributed);
    gs_session_close(&s);
    gs_profiler_destroy(prof);
    gs_store_destroy(store);
    gs_cli_free(&cli);
    if (rc)
        return gs_report(&err);
    if (crc)
        return gs_report(&cerr);
    return 0;
}

static int open_trace(const char *cmd, const char *path, gs_trace *t)
{
    gs_error err = {0};
    int rc = gs_trace_read_file(path, t, &err);
    if (rc) {
        fprintf(stderr, "gptscope %s: %s\n", cmd, err.msg);
        return rc;
    }
    for (int i = 0; i < t->n_warnings; i++)
        fprintf(stderr, "gptscope %s: warning: %s: %s\n", cmd, path, t->warnings[i]);
    if (t->warnings_total > t->n_warnings)
        fprintf(stderr, "gptscope %s: warning: %s: %ld more warnings\n", cmd, path,
                t->warnings_total - t->n_warnings);
    return GS_OK;
}

/* The model's name from the header's configuration ("model: \"gpt2-tiny\""). */
static void yaml_model(const char *yaml, char *out, int cap)
{
    snprintf(out, (size_t)cap, "?");
    const char *p = yaml ? strstr(yaml, "model:") : NULL;
    if (!p || (p != yaml && p[-1] != '\n'))
        return;
    p += 6;
    while (*p == ' ' || *p == '"')
        p++;
    int n = 0;
    while (p[n] && p[n] != '"' && p[n] != '\n')
        n++;
    snprintf(out, (size_t)cap, "%.*s", n, p);
}

static int replay_ui(const char *path, gs_trace *t, int ascii)
{
    char model[128];
    yaml_model(t->config_yaml, model, sizeof model);
    gs_ui_info info = {path, model, t->device, NULL, t->config_yaml, NULL, ascii, NULL};
    gs_error err = {0};
    int rc = gs_ui_run(t->store, &info, &err);
    if (rc)
        fprintf(stderr, "gptscope replay: %s\n", err.msg);
    return rc;
}

int cmd_replay(int argc, char **argv)
{
    const char *path = NULL;
    int summary = 0, ascii = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: gptscope replay [--summary] [--ascii] FILE.gst\n\n"
                   "Opens a recorded trace in the terminal UI (timeline, flame, memory, KV cache)\n"
                   "with a time cursor to scrub through it ([ and ] step, F1 lists the keys).\n"
                   "--summary prints duration, steps, tokens/s, the top ops and kernels by time instead;\n"
                   "so does replay when stdout is not a terminal. --ascii: no Unicode glyphs.\n");
            return 0;
        } else if (strcmp(argv[i], "--summary") == 0) {
            summary = 1;
        } else if (strcmp(argv[i], "--ascii") == 0) {
            ascii = 1;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "gptscope replay: unexpected argument '%s' (see gptscope replay --help)\n", argv[i]);
            return GS_ERR_INPUT;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "gptscope replay: a trace file is required (see gptscope replay --help)\n");
        return GS_ERR_INPUT;
    }
    gs_trace t;
    int rc = open_trace("replay", path, &t);
    if (rc)
        return rc;
    if (!summary && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        rc = replay_ui(path, &t, ascii);
        gs_trace_free(&t);
        return rc;
    }
    gs_agg a;
    if (gs_agg_build(t.store, &a)) {
        gs_agg_free(&a);
        gs_trace_free(&t);
        fprintf(stderr, "gptscope replay: out of memory\n");
        return GS_ERR_RUNTIME;
    }
    gs_agg_sort(&a);
    double dur = a.t_last > a.t_first ? (double)(a.t_last - a.t_first) * 1e-9 : 0.0;
    printf("trace    %s (format %u.%u, gptscope %s%s)\n", path, t.major, t.minor, t.program_version,
           t.clean_end ? "" : ", interrupted");
    printf("host     %s\ndevice   %s\n", t.host, t.device);
    printf("events   %llu (%llu counters, %llu markers), %ld chunks%s\n", (unsigned long long)a.events,
           (unsigned long long)a.counters, (unsigned long long)a.markers, t.chunks,
           t.bad_chunks ? " (some skipped: see warnings)" : "");
    printf("duration %.3f s, %ld steps (%.3f s inside steps)\n", dur, a.steps, (double)a.step_ns * 1e-9);
    if (a.sampled_steps)
        printf("sampled  %ld steps replayed for hardware metrics are left out of the times below\n", a.sampled_steps);
    printf("tokens   %.0f, %.1f tokens/s over step time\n\n", a.tokens,
           a.step_ns ? a.tokens / ((double)a.step_ns * 1e-9) : 0.0);
    printf("%-24s %10s %12s %12s %8s\n", "top ops by time", "calls", "total ms", "mean us", "share");
    int shown = 0;
    for (int i = 0; i < a.n_rows && shown < 10; i++) {
        const gs_agg_row *r = &a.rows[i];
        if (r->level != GS_RANGE_OP)
            continue;
        printf("%-24.24s %10ld %12.3f %12.3f %7.1f%%\n", gs_store_string(t.store, r->name), r->calls,
               (double)r->total_ns * 1e-6, (double)r->total_ns * 1e-3 / (double)r->calls,
               a.step_ns ? 100.0 * (double)r->total_ns / (double)a.step_ns : 0.0);
        shown++;
    }
    if (!shown)
        printf("(no op ranges in this trace)\n");
    if (a.kernels) {
        /* Share of device time in kernels: kernels overlap host ranges, so not of step time. */
        printf("\n%-40s %10s %12s %12s %8s\n", "top kernels by device time", "calls", "total ms", "mean us", "share");
        shown = 0;
        for (int i = 0; i < a.n_rows && shown < 10; i++) {
            const gs_agg_row *r = &a.rows[i];
            if (r->level != GS_AGG_KERNEL)
                continue;
            printf("%-40.40s %10ld %12.3f %12.3f %7.1f%%\n", gs_store_string(t.store, r->name), r->calls,
                   (double)r->total_ns * 1e-6, (double)r->total_ns * 1e-3 / (double)r->calls,
                   100.0 * (double)r->total_ns / (double)a.kernel_ns);
            shown++;
        }
        printf("kernels  %llu, %.3f ms of device time\n", (unsigned long long)a.kernels, (double)a.kernel_ns * 1e-6);
    }
    static const char *copy_names[GS_COPY_KIND_MAX + 1] = {"other", "HtoD", "DtoH", "DtoD"};
    for (int k = 0; k <= GS_COPY_KIND_MAX; k++)
        if (a.copies[k])
            printf("copies   %-5s %8llu, %12.0f bytes, %10.3f ms, %8.2f GB/s\n", copy_names[k],
                   (unsigned long long)a.copies[k], a.copy_bytes[k], (double)a.copy_ns[k] * 1e-6,
                   a.copy_ns[k] ? a.copy_bytes[k] / (double)a.copy_ns[k] : 0.0);
    if (a.sets)
        printf("sets           %8llu, %12.0f bytes, %10.3f ms\n", (unsigned long long)a.sets, a.set_bytes,
               (double)a.set_ns * 1e-6);
    if (a.syncs)
        printf("syncs          %8llu, %10.3f ms waiting on the device\n", (unsigned long long)a.syncs,
               (double)a.sync_ns * 1e-6);
    gs_agg_free(&a);
    gs_trace_free(&t);
    return 0;
}

int cmd_export(int argc, char **argv)
{
    const char *path = NULL, *out = NULL, *fmt = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: gptscope export FILE.gst -o OUT [--format chrome|folded|csv]\n\n"
                   "Writes Chrome-trace JSON for Perfetto (.json, or .json.gz gzip-compressed),\n"
                   "folded stacks for flame-graph tools (.folded, microseconds: host self time\n"
                   "of ranges, device time of kernels under their op) or CSV (.csv, one row per\n"
                   "range, kernel, copy and set name with time and measured bytes). The format comes from OUT's name unless given.\n");
            return 0;
        } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            fmt = argv[++i];
        } else if (strncmp(argv[i], "--format=", 9) == 0) {
            fmt = argv[i] + 9;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "gptscope export: unexpected argument '%s' (see gptscope export --help)\n", argv[i]);
            return GS_ERR_INPUT;
        } else {
            path = argv[i];
        }
    }
    if (!path || !out) {
        fprintf(stderr, "gptscope export: %s is required (see gptscope export --help)\n",
                path ? "-o OUT" : "a trace file");
        return GS_ERR_INPUT;
    }
    int f = fmt ? gs_export_format_parse(fmt) : gs_export_format_from_name(out);
    if (f < 0) {
        if (fmt)
            fprintf(stderr, "gptscope export: --format: expected chrome, folded or csv, got '%s'\n", fmt);
        else
            fprintf(stderr, "gptscope export: %s: cannot tell the format from the name (.json, .json.gz, "
                            ".folded, .csv); give --format\n", out);
        return GS_ERR_INPUT;
    }
    gs_trace t;
    int rc = open_trace("export", path, &t);
    if (rc)
        return rc;
    gs_error err = {0};
    char pname[300];
    snprintf(pname, sizeof pname, "gptscope: %s", t.device);
    gs_export_info info = {pname, t.device, 1};
    if (f == GS_EXPORT_CHROME)
        rc = gs_export_chrome(t.store, &info, out, &err);
    else if (f == GS_EXPORT_FOLDED)
        rc = gs_export_folded(t.store, out, 1000, &err);
    else
        rc = gs_export_csv(t.store, out, &err);
    gs_trace_free(&t);
    if (rc) {
        fprintf(stderr, "gptscope export: %s\n", err.msg);
        return rc;
    }
    return 0;
}
