/* cmd_compare.c - `gptscope compare`: two configurations measured side by
 * side in one run, or two recordings compared.
 *
 * Live: both configurations run in this process on the same backend, each
 * in its own session (model, engine), store and profiler. Steps alternate
 * A, B, A, B ... so drift (clocks, heat, other load) hits both alike; each
 * side's workload runner gets the same workload, seed and vocabulary, so
 * both see the same requests, arriving on the same steps, and run the same
 * number of steps. Both profilers record host ranges only: CUPTI can serve
 * one profiler per process, and a device timeline on one side would make
 * the two sides unequal, so on CUDA the per-op times are host wall times
 * and the step times (which wait for the device) carry the comparison.
 *
 * A configuration B that cannot be built (or fails mid-run) does not stop A:
 * the reason goes to stderr, A runs alone and is reported, and the exit
 * status is 1 so scripts notice that no comparison was made. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "commands.h"
#include "compare_report.h"
#include "event_store.h"
#include "profiler.h"
#include "quality.h"
#include "session.h"
#include "workload_runner.h"
#include "../traces/export.h"
#include "../traces/trace_reader.h"

#define DEFAULT_STEPS 40
#define BAR_WIDTH 12

typedef struct cmp_opts {
    long steps;
    const char *report, *json;
    const char *files[2];
    int n_files;
    int no_quality;     /* --no-quality: skip KL / top-1 / perplexity against the fp32 baseline */
    char **pass;        /* the common options, handed to gs_cli_parse for each side */
    int n_pass;
} cmp_opts;

static void usage(void)
{
    printf("usage: gptscope compare A.yaml B.yaml [--steps N] [--report OUT.md|OUT.csv] [-o OUT.json] [options]\n"
           "       gptscope compare A.gst B.gst [--report OUT.md|OUT.csv] [-o OUT.json]\n\n"
           "Runs two configurations in one process on the same backend, alternating steps\n"
           "A, B, A, B ... over the same requests (same seed, prompts and arrivals; the\n"
           "workload comes from A), N steps each. Prints tokens/s, ms/token and memory,\n"
           "then per-op times with A, B, delta and ratio sorted by |delta|: each figure is\n"
           "the median over the steps with its 95%% interval, and a side is called faster\n"
           "only when the intervals do not overlap (otherwise: noise). Host ranges only\n"
           "(no device timeline): CUPTI serves one profiler per process.\n"
           "With two .gst recordings, compares them the same way (warns when their\n"
           "models or devices differ). When B cannot be built, A runs alone, the reason\n"
           "is printed and the exit status is 1.\n\n"
           "options:\n"
           "  --steps N                      engine steps per configuration (default %d)\n"
           "  --no-quality                   skip KL, top-1 and perplexity against the fp32 baseline\n"
           "  --report OUT.md|OUT.csv        write the tables as Markdown or CSV\n"
           "  -o, --output OUT.json          one Chrome trace, a process per configuration\n",
           DEFAULT_STEPS);
    gs_cli_print_options(GS_OPTS_COMMON | GS_OPTS_WORKLOAD);
}

/* Takes out compare's own options and the two files; everything else is
 * passed to each side's configuration parse. */
static int parse_opts(int argc, char **argv, cmp_opts *o, int *help)
{
    memset(o, 0, sizeof *o);
    o->steps = DEFAULT_STEPS;
    o->pass = calloc((size_t)argc + 3, sizeof *o->pass);
    if (!o->pass) {
        fprintf(stderr, "gptscope compare: out of memory\n");
        return GS_ERR_RUNTIME;
    }
    o->pass[o->n_pass++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int needs = strcmp(a, "--steps") == 0 || strcmp(a, "--report") == 0 || strcmp(a, "-o") == 0 ||
                    strcmp(a, "--output") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            return GS_OK;
        }
        if (needs && i + 1 >= argc) {
            fprintf(stderr, "gptscope compare: option '%s' needs a value\n", a);
            return GS_ERR_INPUT;
        }
        if (strcmp(a, "--steps") == 0) {
            char *end;
            o->steps = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || o->steps < 1 || o->steps > 1000000) {
                fprintf(stderr, "gptscope compare: --steps: expected an integer 1..1000000, got '%s'\n", argv[i]);
                return GS_ERR_INPUT;
            }
        } else if (strcmp(a, "--report") == 0) {
            o->report = argv[++i];
            if (!gs_cmp_report_format(o->report)) {
                fprintf(stderr, "gptscope compare: --report %s: the name must end in .md or .csv\n", o->report);
                return GS_ERR_INPUT;
            }
        } else if (strcmp(a, "--no-quality") == 0) {
            o->no_quality = 1;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            o->json = argv[++i];
        } else if (a[0] != '-' && (i == 1 || argv[i - 1][0] != '-' || strchr(argv[i - 1], '=') ||
                                   strcmp(argv[i - 1], "--json") == 0)) {
            /* A positional file (a value of a common option follows its option). */
            if (o->n_files == 2) {
                fprintf(stderr, "gptscope compare: unexpected argument '%s' (two files: A and B)\n", a);
                return GS_ERR_INPUT;
            }
            o->files[o->n_files++] = a;
        } else {
            o->pass[o->n_pass++] = argv[i];
        }
    }
    if (o->n_files != 2) {
        fprintf(stderr, "gptscope compare: two files are needed, A and B (see gptscope compare --help)\n");
        return GS_ERR_INPUT;
    }
    return GS_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* One side's configuration: defaults < its YAML file < the common options. */
static int side_config(const cmp_opts *o, const char *file, gs_config *cfg, gs_error *err)
{
    char **argv = calloc((size_t)o->n_pass + 3, sizeof *argv);
    if (!argv)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    int n = 0;
    argv[n++] = o->pass[0];
    argv[n++] = (char *)"-c";
    argv[n++] = (char *)file;
    for (int i = 1; i < o->n_pass; i++)
        argv[n++] = o->pass[i];
    gs_cli cli;
    int rc = gs_cli_parse(&cli, "compare", GS_OPTS_COMMON | GS_OPTS_WORKLOAD, n, argv, err);
    if (rc == GS_OK && cli.n_args)
        rc = gs_error_set(err, GS_ERR_INPUT, "gptscope compare: unexpected argument '%s'", cli.args[0]);
    if (rc == GS_OK)
        *cfg = cli.cfg;
    gs_cli_free(&cli);
    free(argv);
    return rc;
}

/* One configuration being run: its session, store, profiler and requests. */
typedef struct variant {
    const char *file;
    gs_config cfg;
    gs_event_store *store;
    gs_profiler *prof;
    gs_session s;
    int open, runner_ready, ok;
    gs_workload_runner runner;
    long steps;
    uint64_t fingerprint;   /* of every request's prompt, in submission order */
    long requests;
    char label[512], pname[256];
} variant;

/* Both sides' output quality against the fp32 baseline of A's model, after
 * the timed steps (so timings are untouched), on the shared backend. The
 * requests still running finish first with the range sinks detached: those
 * steps are neither timed nor stored. A failure leaves quality unmeasured. */
static void measure_quality(variant *v, int n, gs_cmp_source *src)
{
    gs_error qerr = {0};
    gs_quality_baseline *qb = NULL;
    for (int k = 0; k < n; k++) {
        gs_ranges *rg = &v[k].s.engine.ranges;
        int saved = rg->n_sinks;
        rg->n_sinks = 0;
        int rc = gs_engine_run(&v[k].s.engine, &qerr);
        rg->n_sinks = saved;
        if (rc) {
            fprintf(stderr, "gptscope compare: quality not measured: %s\n", qerr.msg);
            return;
        }
    }
    if (gs_quality_baseline_create(&qb, &v[0].cfg, v[0].s.be, 0, NULL, &qerr)) {
        fprintf(stderr, "gptscope compare: quality not measured: %s\n", qerr.msg);
        return;
    }
    for (int k = 0; k < n; k++) {
        gs_quality q;
        if (gs_quality_measure(qb, &v[k].s, &q, &qerr)) {
            fprintf(stderr, "gptscope compare: quality of %s not measured: %s\n", k ? "B" : "A", qerr.msg);
            continue;
        }
        src[k].have_quality = 1;
        src[k].kl = q.kl;
        src[k].top1 = q.top1;
        src[k].perplexity = q.perplexity;
        src[k].base_perplexity = q.base_perplexity;
        src[k].quality_tokens = q.n_tokens;
        src[k].quality_illustrative = q.illustrative;
    }
    gs_quality_baseline_free(qb);
}

static void variant_close(variant *v)
{
    if (v->runner_ready)
        gs_workload_runner_free(&v->runner);
    if (v->open)
        gs_session_close(&v->s);
    gs_profiler_destroy(v->prof);
    gs_store_destroy(v->store);
    v->runner_ready = v->open = 0;
    v->prof = NULL;
    v->store = NULL;
}

/* Store and profiler (before any CUDA call), then the session. */
static int variant_open(variant *v, gs_backend *shared, gs_error *err)
{
    v->store = gs_store_create(0);
    if (!v->store)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory for the event store");
    gs_profiler_options po = {.device_timeline = 0, .metrics_every = 0, .nvtx = 1};
    int rc = gs_profiler_create(&v->prof, &po, gs_backend_wants_cuda(v->cfg.backend), v->store, err);
    if (rc)
        return rc;
    if ((rc = gs_session_open_on(&v->s, &v->cfg, NULL, shared, err)))
        return rc;
    v->open = 1;
    if ((rc = gs_profiler_attach(v->prof, &v->s.engine, err)))
        return rc;
    snprintf(v->label, sizeof v->label, "%s (%s, %s weights, attention %s%s; %s: %s)", v->file, v->cfg.model,
             gs_dtype_name(v->s.engine.fwd.w.wdt), v->cfg.opt.attention, v->cfg.opt.fusion ? ", fusion" : "",
             v->s.be->ops->name, v->s.be->device_name);
    v->ok = 1;
    return GS_OK;
}

static int variant_step(variant *v, gs_error *err)
{
    int done;
    int rc = gs_workload_runner_feed(&v->runner, &done, err);
    if (rc)
        return rc;
    gs_profiler_step_begin(v->prof);
    if ((rc = gs_engine_step(&v->s.engine, err)))
        return rc;
    gs_profiler_step_end(v->prof, &v->s.engine);
    v->steps++;
    return GS_OK;
}

/* FNV-1a over every request's prompt: equal on both sides means the same requests. */
static void variant_fingerprint(variant *v)
{
    uint64_t h = 1469598103934665603ull;
    const gs_engine *e = &v->s.engine;
    for (int i = 0; i < e->n_reqs; i++) {
        const gs_request *r = &e->reqs[i];
        for (int k = -1; k < r->n_prompt; k++) {
            uint32_t t = k < 0 ? (uint32_t)r->n_prompt : (uint32_t)r->tokens[k];
            for (int b = 0; b < 4; b++) {
                h ^= (t >> (8 * b)) & 0xff;
                h *= 1099511628211ull;
            }
        }
    }
    v->fingerprint = h;
    v->requests = e->n_reqs;
}

static int write_outputs(const cmp_opts *o, const gs_cmp_report *rep, gs_event_store *const *stores,
                         const gs_export_info *infos, int n)
{
    gs_error err = {0};
    int rc = GS_OK;
    if (o->report && (rc = gs_cmp_write(rep, o->report, &err)) == GS_OK)
        printf("\nreport   %s\n", o->report);
    if (rc == GS_OK && o->json && (rc = gs_export_chrome_multi(stores, infos, n, o->json, &err)) == GS_OK)
        printf("trace    %s (a process per configuration)\n", o->json);
    if (rc)
        fprintf(stderr, "gptscope compare: %s\n", err.msg);
    return rc;
}

static int compare_live(const cmp_opts *o)
{
    variant v[2];
    memset(v, 0, sizeof v);
    v[0].file = o->files[0];
    v[1].file = o->files[1];
    gs_error err = {0}, berr = {0};
    int rc = side_config(o, v[0].file, &v[0].cfg, &err);
    if (rc)
        return gs_report(&err);
    int b_rc = side_config(o, v[1].file, &v[1].cfg, &berr);
    /* The same requests on both sides: A's workload, A's seed for the prompts, and
     * ids both vocabularies hold. The backend is A's, so both run on one device. */
    const gs_workload *wl = &v[0].cfg.workload;
    if (b_rc == GS_OK) {
        if (memcmp(&v[1].cfg.workload, wl, sizeof *wl) != 0)
            fprintf(stderr, "gptscope compare: %s: its workload is replaced by A's, so both run the same requests\n",
                    v[1].file);
        if (strcmp(v[1].cfg.backend, v[0].cfg.backend) != 0)
            fprintf(stderr, "gptscope compare: %s: backend %s replaced by A's (%s): one device for both\n",
                    v[1].file, v[1].cfg.backend, v[0].cfg.backend);
        v[1].cfg.workload = *wl;
        memcpy(v[1].cfg.backend, v[0].cfg.backend, sizeof v[1].cfg.backend);
    }
    rc = variant_open(&v[0], NULL, &err);
    if (rc) {
        variant_close(&v[0]);
        return gs_report(&err);
    }
    if (b_rc == GS_OK)
        b_rc = variant_open(&v[1], v[0].s.be, &berr); /* one backend: one device, one thread pool */
    /* Prompt ids that both vocabularies hold, drawn from A's seed on both sides. */
    int vocab = v[0].s.model.shape.vocab;
    if (b_rc == GS_OK && v[1].s.model.shape.vocab < vocab)
        vocab = v[1].s.model.shape.vocab;
    for (int k = 0; k < 2 && rc == GS_OK; k++) {
        if (k == 1 && b_rc)
            break;
        gs_error *e = k ? &berr : &err;
        int r = gs_workload_runner_init(&v[k].runner, &v[k].s.engine, wl, vocab, v[0].cfg.seed, 1, e);
        v[k].runner_ready = r == GS_OK;
        if (k)
            b_rc = r;
        else
            rc = r;
    }
    if (rc) {
        variant_close(&v[1]); /* B first: it runs on A's backend */
        variant_close(&v[0]);
        return gs_report(&err);
    }
    if (b_rc) {
        fprintf(stderr, "gptscope compare: B (%s) cannot be built, running A alone: %s\n", v[1].file, berr.msg);
        variant_close(&v[1]);
        v[1].ok = 0;
    }
    /* A, B, A, B ...: the same step count each unless B fails on the way. */
    for (long i = 0; rc == GS_OK && i < o->steps; i++) {
        rc = variant_step(&v[0], &err);
        if (rc == GS_OK && v[1].ok && (b_rc = variant_step(&v[1], &berr))) {
            fprintf(stderr, "gptscope compare: B (%s) failed at its step %ld, A goes on alone: %s\n", v[1].file,
                    v[1].steps, berr.msg);
            v[1].ok = 0;
        }
    }
    if (rc) {
        variant_close(&v[1]); /* B first: it runs on A's backend */
        variant_close(&v[0]);
        return gs_report(&err);
    }
    int n = v[1].ok ? 2 : 1;
    gs_cmp_source src[2];
    gs_event_store *stores[2];
    gs_export_info infos[2];
    for (int k = 0; k < n; k++) {
        gs_profiler_flush(v[k].prof, &v[k].s.engine);
        variant_fingerprint(&v[k]);
        const gs_forward *fw = &v[k].s.engine.fwd;
        src[k] = (gs_cmp_source){v[k].label, v[k].store, 1, (double)fw->weight_bytes, (double)fw->kv_bytes,
                                 (double)gs_forward_kv_bytes_per_token(&v[k].s.model.shape, fw->kv_dtype), 0, 0, 0,
                                 0, 0, 0, 0};
        stores[k] = v[k].store;
        snprintf(v[k].pname, sizeof v[k].pname, "%s: %s", k ? "B" : "A", v[k].file);
        infos[k] = (gs_export_info){v[k].pname, v[k].s.be->device_name, k + 1};
    }
    if (!o->no_quality)
        measure_quality(v, n, src);
    gs_cmp_report rep;
    if (gs_cmp_build(&src[0], n == 2 ? &src[1] : NULL, &rep)) {
        variant_close(&v[1]); /* B first: it runs on A's backend */
        variant_close(&v[0]);
        fprintf(stderr, "gptscope compare: out of memory building the report\n");
        return GS_ERR_RUNTIME;
    }
    gs_cmp_print(stdout, &rep, BAR_WIDTH);
    printf("\nworkload %d request(s) a round, batch %d, prompt %d, generate %d, seed %llu; alternating A, B\n",
           wl->requests > 0 ? wl->requests : wl->batch, wl->batch, wl->prompt_len, wl->gen_len,
           (unsigned long long)v[0].cfg.seed);
    if (n == 2)
        printf("requests A %ld steps, %ld requests, prompts %016llx; B %ld steps, %ld requests, prompts %016llx%s\n",
               v[0].steps, v[0].requests, (unsigned long long)v[0].fingerprint, v[1].steps, v[1].requests,
               (unsigned long long)v[1].fingerprint,
               v[0].steps == v[1].steps && v[0].requests == v[1].requests && v[0].fingerprint == v[1].fingerprint
                   ? " (the same)"
                   : " (NOT the same)");
    else
        printf("requests A %ld steps, %ld requests, prompts %016llx; B not run\n", v[0].steps, v[0].requests,
               (unsigned long long)v[0].fingerprint);
    printf("timing   host wall time of each step and op range (no device timeline in compare)\n");
    rc = write_outputs(o, &rep, stores, infos, n);
    gs_cmp_free(&rep);
    variant_close(&v[1]); /* B first: it runs on A's backend */
    variant_close(&v[0]);
    if (rc)
        return rc;
    return n == 2 ? 0 : GS_ERR_RUNTIME;
}

/* The model a trace ran: "model: NAME" or a mapping with "preset: NAME". */
static void trace_model(const char *yaml, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    const char *p = yaml;
    while (p && (p = strstr(p, "model:")) && p != yaml && p[-1] != '\n')
        p += 6;
    if (!p)
        return;
    p += 6;
    while (*p == ' ' || *p == '"')
        p++;
    if (*p == '\n' || *p == '\0') {
        const char *q = strstr(p, "preset:");
        if (!q)
            return;
        p = q + 7;
        while (*p == ' ' || *p == '"')
            p++;
    }
    size_t n = strcspn(p, "\"\n #");
    snprintf(out, cap, "%.*s", (int)n, p);
}

static int compare_traces(const cmp_opts *o)
{
    gs_trace t[2];
    gs_error err = {0};
    int rc = gs_trace_read_file(o->files[0], &t[0], &err);
    if (rc)
        return gs_report(&err);
    if ((rc = gs_trace_read_file(o->files[1], &t[1], &err))) {
        gs_trace_free(&t[0]);
        return gs_report(&err);
    }
    char model[2][128], label[2][512], pname[2][256];
    gs_cmp_source src[2];
    gs_event_store *stores[2];
    gs_export_info infos[2];
    for (int k = 0; k < 2; k++) {
        for (int w = 0; w < t[k].n_warnings; w++)
            fprintf(stderr, "gptscope compare: %s\n", t[k].warnings[w]);
        trace_model(t[k].config_yaml, model[k], sizeof model[k]);
        snprintf(label[k], sizeof label[k], "%s (%s; %s)", o->files[k], model[k], t[k].device ? t[k].device : "?");
        src[k] = (gs_cmp_source){label[k], t[k].store, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        stores[k] = t[k].store;
        snprintf(pname[k], sizeof pname[k], "%s: %s", k ? "B" : "A", o->files[k]);
        infos[k] = (gs_export_info){pname[k], t[k].device, k + 1};
    }
    /* Different models or devices still compare, but the reader is told first. */
    if (strcmp(model[0], model[1]) != 0)
        printf("warning: the traces ran different models (A %s, B %s): differences are not only the configuration\n",
               model[0], model[1]);
    if (strcmp(t[0].device ? t[0].device : "", t[1].device ? t[1].device : "") != 0)
        printf("warning: the traces ran on different devices (A %s, B %s)\n", t[0].device, t[1].device);
    gs_cmp_report rep;
    if (gs_cmp_build(&src[0], &src[1], &rep)) {
        gs_trace_free(&t[0]);
        gs_trace_free(&t[1]);
        fprintf(stderr, "gptscope compare: out of memory building the report\n");
        return GS_ERR_RUNTIME;
    }
    gs_cmp_print(stdout, &rep, BAR_WIDTH);
    printf("timing   as recorded (recorded separately: drift between the runs is not cancelled)\n");
    rc = write_outputs(o, &rep, stores, infos, 2);
    gs_cmp_free(&rep);
    gs_trace_free(&t[0]);
    gs_trace_free(&t[1]);
    return rc;
}

int cmd_compare(int argc, char **argv)
{
    cmp_opts o;
    int help = 0;
    int rc = parse_opts(argc, argv, &o, &help);
    if (rc == GS_OK && help)
        usage();
    else if (rc == GS_OK) {
        int gst = ends_with(o.files[0], ".gst") + ends_with(o.files[1], ".gst");
        if (gst == 1) {
            fprintf(stderr, "gptscope compare: compare two configurations (.yaml) or two recordings (.gst), not one of each\n");
            rc = GS_ERR_INPUT;
        } else {
            rc = gst ? compare_traces(&o) : compare_live(&o);
        }
    }
    free(o.pass);
    return rc;
}
