/* cmd_bench.c - `gptscope bench`: a workload run headless, with floors.
 *
 * Prints prefill and decode throughput, ms per decoded token, memory, and the
 * physical floor beside each figure: decode reads every weight once per step,
 * so its floor is weight bytes over the matrix-vector bandwidth measured here;
 * prefill is compute-bound, so its floor is FLOPs over the measured matmul
 * rate. Floors are labelled as derived from measurements, never as measured.
 *
 * --profile records the run into an event store (ranges and the step.*
 * counters) and prints profile_report.h's tables against the device's peaks
 * (peaks.h). Device collectors attach in profile_begin/profile_end.
 *
 * After the timed run (so no figure above pays for it) the variant the run
 * used is compared with its model's fp32 baseline on one token stream
 * (quality.h): KL divergence, top-1 agreement and perplexity; --no-quality
 * skips it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "backend.h"
#include "event_store.h"
#include "profiler.h"
#include "op_report.h"
#include "peaks.h"
#include "profile_report.h"
#include "quant.h"
#include "quant_layout.h"
#include "quality.h"
#include "rng.h"
#include "session.h"
#include "workload_runner.h"

typedef struct bench_result {
    double bw_gbs, gflops;
    long prefill_tokens, decode_tokens, decode_steps;
    long decode_tokens_in_prefill; /* decode tokens that rode along in a step with prefill */
    double prefill_s, decode_s;
    long metrics_steps, metrics_tokens; /* steps replayed for hardware metrics: left out above */
    long metrics_prefill_tokens;        /* prompt tokens among metrics_tokens */
    double metrics_s;
    size_t weight_bytes, kv_bytes, act_bytes;
} bench_result;

/* Best of eight: a read-bound product (n = 1 over a 128 MiB matrix) and a
 * compute-bound one through the backend's own matmul: n = 128 over 1024 x
 * 1024 on the CPU; on a device 1024 over 4096 x 4096 (34 GFLOP), since a
 * smaller one measures launch latency, not the tensor cores (0.27 GFLOP
 * read 10 TFLOP/s on an H100 that does 575). */
static int measure_peaks(gs_backend *be, gs_dtype wdt, bench_result *r, gs_error *err)
{
    const int device = be->threads == 0;
    const int K = 4096, M = 8192, N = device ? 1024 : 128, S = device ? 4096 : 1024;
    /* Each product reads its own matrix in wdt's layout (packed formats have
     * their scales laid out for the matrix's shape). */
    size_t wbytes = gs_weight_bytes(wdt, M, K), sbytes = gs_weight_bytes(wdt, S, S);
    float *host = malloc((size_t)K * M * sizeof(float));
    void *w = be->ops->alloc(be, gs_quant_align(wbytes) + sbytes);
    float *x = be->ops->alloc(be, (size_t)N * K * sizeof(float));
    float *y = be->ops->alloc(be, (size_t)N * M * sizeof(float));
    if (!host || !w || !x || !y) {
        free(host);
        if (w) be->ops->free(be, w);
        if (x) be->ops->free(be, x);
        if (y) be->ops->free(be, y);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory measuring bandwidth (%zu bytes)", wbytes);
    }
    gs_rng rng;
    gs_rng_seed(&rng, 42);
    for (size_t i = 0; i < (size_t)K * M; i++)
        host[i] = gs_rng_uniform(&rng) - 0.5f; /* never time all-zero data */
    int rc = GS_OK;
    void *ws = (char *)w + gs_quant_align(wbytes);
    if (gs_dtype_is_quant(wdt)) {
        void *packed = malloc(wbytes > sbytes ? wbytes : sbytes);
        if (!packed) {
            rc = gs_error_set(err, GS_ERR_RUNTIME, "out of host memory measuring bandwidth");
        } else {
            gs_quantize_matrix(wdt, host, M, K, packed);
            rc = be->ops->upload(be, w, packed, wbytes);
            gs_quantize_matrix(wdt, host, S, S, packed);
            rc |= be->ops->upload(be, ws, packed, sbytes);
            free(packed);
            if (rc)
                rc = gs_error_set(err, GS_ERR_RUNTIME, "uploading the bandwidth probe failed");
        }
    } else {
        rc = be->ops->upload_weights(be, w, host, (size_t)K * M, wdt, err);
        if (!rc)
            rc = be->ops->upload_weights(be, ws, host, (size_t)S * S, wdt, err);
    }
    if (rc) {
        free(host);
        be->ops->free(be, w);
        be->ops->free(be, x);
        be->ops->free(be, y);
        return rc;
    }
    be->ops->upload(be, x, host, (size_t)N * K * sizeof(float));
    double best_bw = 0, best_fl = 0;
    for (int rep = 0; rep < 8; rep++) {
        uint64_t t0 = gs_now_ns();
        be->ops->matmul(be, y, x, w, wdt, NULL, 1, K, M);
        be->ops->synchronize(be);
        double dt = (double)(gs_now_ns() - t0) * 1e-9;
        if (wbytes / dt > best_bw)
            best_bw = (double)wbytes / dt;
        t0 = gs_now_ns();
        be->ops->matmul(be, y, x, ws, wdt, NULL, N, S, S);
        be->ops->synchronize(be);
        dt = (double)(gs_now_ns() - t0) * 1e-9;
        double fl = 2.0 * N * S * S / dt;
        if (fl > best_fl)
            best_fl = fl;
    }
    r->bw_gbs = best_bw * 1e-9;
    r->gflops = best_fl * 1e-9;
    free(host);
    be->ops->free(be, w);
    be->ops->free(be, x);
    be->ops->free(be, y);
    return GS_OK;
}

/* What --profile keeps during the run: the store and the profiler feeding
 * it (host ranges, step counters, and on CUDA the CUPTI kernel timeline and
 * sampled hardware metrics). */
typedef struct bench_profile {
    gs_event_store *store;
    gs_profiler *profiler;
    gs_profile report;
    int built;
} bench_profile;

/* Before the session: CUPTI must start before the first CUDA call. */
static int profile_create(bench_profile *bp, const gs_cli *cli, const gs_config *cfg, gs_error *err)
{
    memset(bp, 0, sizeof *bp);
    bp->store = gs_store_create(0);
    if (!bp->store)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory for the profile's event store");
    gs_profiler_options po = {.device_timeline = cli->device_trace, .metrics_every = cli->metrics_every,
                             .nvtx = cli->nvtx, .metrics_fast = cli->metrics_fast, .trace_every = cli->trace_every,
                             .cpu_counters = cli->cpu_counters};
    return gs_profiler_create(&bp->profiler, &po, gs_backend_wants_cuda(cfg->backend), bp->store, err);
}

/* After the session opened, before the first step. */
static int profile_begin(bench_profile *bp, gs_session *s, gs_error *err)
{
    int rc = gs_profiler_attach(bp->profiler, &s->engine, err);
    if (rc == GS_OK && gs_profiler_notice(bp->profiler)[0])
        fprintf(stderr, "gptscope bench: %s\n", gs_profiler_notice(bp->profiler));
    return rc;
}

/* After the run: a device collector flushes into bp->store here, before the
 * report is built. Then the peaks (cached per device) and the tables. */
static int profile_end(bench_profile *bp, gs_session *s, int remeasure)
{
    gs_profiler_flush(bp->profiler, &s->engine);
    gs_peaks pk;
    gs_error perr = {0};
    int have_peaks = gs_peaks_get(s->be, remeasure, &pk, &perr) == GS_OK;
    if (!have_peaks)
        fprintf(stderr, "gptscope bench: peak rates unavailable, no roofline: %s\n", perr.msg);
    gs_cost_config cost = {
        .shape = s->model.shape,
        .weight_dtype = s->engine.fwd.w.wdt,
        /* Element bytes of the cache as allocated (the int8 scales, 4/head_dim
         * of a byte per element, are left out of the per-op model). */
        .kv_elem_bytes = (int)gs_kv_elem_size(s->engine.fwd.kv_dtype),
        .attn_variant = s->engine.fwd.attn_variant,
        .fused = s->engine.fwd.fuse && s->be->ops->residual_norm,
    };
    if (gs_profile_build(bp->store, &cost, have_peaks ? &pk : NULL, &bp->report) != 0)
        return -1;
    bp->built = 1;
    return 0;
}

/* After the session closed. */
static void profile_free(bench_profile *bp)
{
    if (bp->built)
        gs_profile_free(&bp->report);
    gs_profiler_destroy(bp->profiler);
    bp->profiler = NULL;
    gs_store_destroy(bp->store);
    bp->store = NULL;
}

/* The output-quality comparison: measured, skipped, or failed with a reason. */
typedef struct bench_quality {
    int state;               /* 0 skipped (--no-quality), 1 measured, -1 failed */
    gs_quality q;
    char why[512];           /* state -1 */
} bench_quality;

/* Runs after the timed part on the idle engine. A failure here (say, no room
 * for the fp32 baseline beside the variant on the device) costs the quality
 * figures, not the timings: it is reported, and the figures are null. */
static void measure_quality(bench_quality *bq, const gs_cli *cli, gs_session *s)
{
    memset(bq, 0, sizeof *bq);
    if (cli->no_quality)
        return;
    gs_error err = {0};
    gs_quality_baseline *b = NULL;
    int rc = gs_quality_baseline_create(&b, &cli->cfg, s->be, cli->quality_tokens, cli->token_file, &err);
    if (rc == GS_OK)
        rc = gs_quality_measure(b, s, &bq->q, &err);
    gs_quality_baseline_free(b);
    bq->state = rc == GS_OK ? 1 : -1;
    if (rc) {
        snprintf(bq->why, sizeof bq->why, "%s", err.msg);
        fprintf(stderr, "gptscope bench: output quality not measured: %s\n", err.msg);
    }
}

/* JSON numbers cannot be inf or nan: those are null. */
static void json_num(const char *key, double v, int measured)
{
    if (measured && isfinite(v))
        printf(",\"%s\":%.9g", key, v);
    else
        printf(",\"%s\":null", key);
}

static void quality_json(const bench_quality *bq)
{
    int m = bq->state == 1;
    json_num("kl", bq->q.kl, m);
    json_num("top1", bq->q.top1, m);
    json_num("perplexity", bq->q.perplexity, m);
    json_num("base_perplexity", bq->q.base_perplexity, m);
    printf(",\"quality_tokens\":%d,\"quality_illustrative\":%s", m ? bq->q.n_tokens : 0,
           m ? (bq->q.illustrative ? "true" : "false") : "null");
}

static void quality_print(const bench_quality *bq, const gs_cli *cli)
{
    if (bq->state == 0) {
        printf("quality  not measured (--no-quality)\n\n");
        return;
    }
    if (bq->state < 0) {
        printf("quality  not measured: %s\n\n", bq->why);
        return;
    }
    const gs_quality *q = &bq->q;
    char src[GS_CONFIG_PATH + 32];
    if (cli->token_file)
        snprintf(src, sizeof src, "of %s", cli->token_file);
    else
        snprintf(src, sizeof src, "sampled by the baseline");
    printf("quality  vs fp32 baseline, %d tokens %s: KL %.4g nats, top-1 %.1f%%, perplexity %.3f (baseline %.3f)%s\n\n",
           q->n_tokens, src, q->kl, 100.0 * q->top1, q->perplexity, q->base_perplexity,
           q->illustrative ? "; illustrative only: synthetic weights" : "");
}

/* --repeat: whether a run's phase (s seconds over n tokens) beats the best so
 * far, per token (sampled steps can leave runs with different counts); a
 * phase with no tokens never does, and any beats an empty best. */
static int phase_faster(double s, long n, double best_s, long best_n)
{
    return n > 0 && (best_n == 0 || s / n < best_s / best_n);
}

int cmd_bench(int argc, char **argv)
{
    gs_cli cli;
    gs_error err = {0};
    unsigned groups = GS_OPTS_COMMON | GS_OPTS_WORKLOAD | GS_OPTS_OUTPUT | GS_OPTS_PROFILE | GS_OPTS_COLLECT |
                      GS_OPTS_QUALITY | GS_OPTS_TIMING;
    int rc = gs_cli_parse(&cli, "bench", groups, argc, argv, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if (cli.help) {
        printf("usage: gptscope bench [-c CONFIG] [--model M] [--batch B] [--prompt-len P] [--gen-len G] [--repeat N] [--json] [--profile]\n\n"
               "Runs B requests of P prompt tokens generating G tokens each, and prints\n"
               "prefill and decode throughput, ms/token and memory next to their floors\n"
               "(--repeat N: the workload timed N times, each phase from its fastest run).\n"
               "--profile adds per-op and per-kernel tables and the roofline: times measured,\n"
               "FLOPs modeled, bytes measured (m) where the device gives counters, else modeled.\n"
               "After the timed run, the run's variant is compared with the model's fp32 baseline\n"
               "on one token stream: KL divergence, top-1 agreement and perplexity.\n\noptions:\n");
        gs_cli_print_options(groups);
        gs_cli_free(&cli);
        return 0;
    }
    gs_config cfg = cli.cfg;
    const gs_workload *wl = &cfg.workload;
    bench_profile prof;
    memset(&prof, 0, sizeof prof);
    /* --metrics-every alone also runs the collectors (for overhead figures). */
    int profiling = cli.profile || cli.metrics_every > 0;
    if (profiling && (rc = profile_create(&prof, &cli, &cfg, &err))) {
        profile_free(&prof);
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    gs_session s;
    rc = gs_session_open(&s, &cfg, NULL, &err);
    if (rc) {
        profile_free(&prof);
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    /* The quality options are checked now, not after the timed run. */
    if (!cli.no_quality && cli.quality_tokens > s.model.shape.n_ctx)
        rc = gs_error_set(&err, GS_ERR_INPUT, "gptscope bench: --quality-tokens %d exceeds the model's context of %d",
                          cli.quality_tokens, s.model.shape.n_ctx);
    if (rc == GS_OK && !cli.no_quality && cli.token_file) {
        int *ids = NULL, n_ids = 0;
        rc = gs_quality_read_tokens(cli.token_file, s.model.shape.vocab, &ids, &n_ids, &err);
        free(ids);
    }
    if (rc) {
        gs_session_close(&s);
        profile_free(&prof);
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    bench_result r;
    memset(&r, 0, sizeof r);
    rc = measure_peaks(s.be, s.engine.fwd.w.wdt, &r, &err);
    /* Warm-up, not timed: one request of the workload's prompt length and two
     * tokens, so the first timed step does not pay for loading kernels, the
     * library's first-call setup or recording graphs (transformers gets the
     * same courtesy in tests/bench/bench_vs_hf.py). With CUDA graphs on, the
     * whole workload runs once untimed instead: a graph is recorded per step
     * shape (tokens, logit rows, context rounded up to a power of two), and a
     * recording (milliseconds) inside the timed run would be counted as
     * decode time, at 128 tokens 0.1-0.2 ms a step. */
    int graph_warmup = s.engine.fwd.use_graphs && s.be->ops->graph_begin;
    if (rc == GS_OK && graph_warmup) {
        gs_workload_runner wr;
        rc = gs_workload_runner_init(&wr, &s.engine, wl, s.model.shape.vocab, cfg.seed + 1, 0, &err);
        int inited = rc == GS_OK;
        while (rc == GS_OK) {
            int done = 0;
            if ((rc = gs_workload_runner_feed(&wr, &done, &err)) || done)
                break;
            rc = gs_engine_step(&s.engine, &err);
        }
        if (inited)
            gs_workload_runner_free(&wr);
    } else if (rc == GS_OK) {
        int wlen = wl->prompt_len < 1 ? 1 : wl->prompt_len;
        int *wp = calloc((size_t)wlen, sizeof(int));
        if (!wp) {
            rc = gs_error_set(&err, GS_ERR_RUNTIME, "out of memory");
        } else {
            for (int i = 0; i < wlen; i++)
                wp[i] = (i * 7 + 1) % s.model.shape.vocab;
            int id = gs_engine_submit(&s.engine, wp, wlen, wl->gen_len >= 2 ? 2 : 1, &err);
            rc = id < 0 ? -id : gs_engine_run(&s.engine, &err);
            free(wp);
        }
    }
    gs_op_table ops;
    gs_op_table_init(&ops);
    gs_ranges_add_sink(&s.engine.ranges, gs_op_table_sink(&ops));
    if (rc == GS_OK && profiling)
        rc = profile_begin(&prof, &s, &err);
    int n_req = wl->requests > 0 ? wl->requests : wl->batch;
    /* --repeat N: the same workload (same seed) timed N times; each phase
     * reports its fastest run, as the transformers side of
     * tests/bench/bench_vs_hf.py takes the best of its runs. One prefill of a
     * millisecond is one sample, and host and clock jitter move it by a few
     * percent. The metrics steps of every run are counted. */
    const int n_runs = cli.repeat > 0 ? cli.repeat : 1;
    for (int run = 0; rc == GS_OK && run < n_runs; run++) {
        bench_result one;
        memset(&one, 0, sizeof one);
        /* Arrivals: all at once, or arrival_rate new requests per engine step. */
        gs_workload_runner runner;
        rc = gs_workload_runner_init(&runner, &s.engine, wl, s.model.shape.vocab, cfg.seed, 0, &err);
        int have_runner = rc == GS_OK;
        while (rc == GS_OK) {
            int done = 0;
            if ((rc = gs_workload_runner_feed(&runner, &done, &err)) || done)
                break;
            int sampled = prof.profiler ? gs_profiler_step_begin(prof.profiler) : 0;
            rc = gs_engine_step(&s.engine, &err);
            if (rc == GS_OK && prof.profiler)
                gs_profiler_step_end(prof.profiler, &s.engine);
            const gs_step_info *st = &s.engine.last;
            if (sampled) {
                /* Replayed for hardware counters: its time says nothing about speed. */
                r.metrics_steps++;
                r.metrics_tokens += st->n_tokens;
                r.metrics_prefill_tokens += st->n_prefill_tokens;
                r.metrics_s += (double)st->ns * 1e-9;
            } else if (st->n_prefill_tokens > 0) {
                one.prefill_tokens += st->n_prefill_tokens;
                one.decode_tokens_in_prefill += st->n_decode_tokens;
                one.prefill_s += (double)st->ns * 1e-9;
            } else if (st->n_decode_tokens > 0) {
                one.decode_tokens += st->n_decode_tokens;
                one.decode_steps++;
                one.decode_s += (double)st->ns * 1e-9;
            }
        }
        if (have_runner)
            gs_workload_runner_free(&runner);
        if (run == 0 || phase_faster(one.prefill_s, one.prefill_tokens, r.prefill_s, r.prefill_tokens)) {
            r.prefill_tokens = one.prefill_tokens;
            r.decode_tokens_in_prefill = one.decode_tokens_in_prefill;
            r.prefill_s = one.prefill_s;
        }
        if (run == 0 || phase_faster(one.decode_s, one.decode_tokens, r.decode_s, r.decode_tokens)) {
            r.decode_tokens = one.decode_tokens;
            r.decode_steps = one.decode_steps;
            r.decode_s = one.decode_s;
        }
    }
    if (rc == GS_OK && cli.profile && profile_end(&prof, &s, cli.remeasure_peaks) != 0)
        rc = gs_error_set(&err, GS_ERR_RUNTIME, "out of memory building the profile");
    if (rc) {
        gs_session_close(&s);
        profile_free(&prof);
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    /* The collector's counts before the quality pass adds device work. */
    gs_profiler_stats ps;
    memset(&ps, 0, sizeof ps);
    if (prof.profiler)
        gs_profiler_get_stats(prof.profiler, &ps);
    bench_quality bq;
    measure_quality(&bq, &cli, &s);
    r.weight_bytes = s.engine.fwd.weight_bytes;
    r.kv_bytes = s.engine.fwd.kv_bytes;
    r.act_bytes = s.engine.fwd.activation_bytes;
    size_t mem_free = 0, mem_total = 0, mem_used = 0;
    if (s.be->ops->mem_info(s.be, &mem_free, &mem_total) == GS_OK && mem_total >= mem_free)
        mem_used = mem_total - mem_free;
    const gs_model_shape *sh = &s.model.shape;
    double params = (double)gs_shape_param_count(sh);
    double prefill_tps = r.prefill_s > 0 ? r.prefill_tokens / r.prefill_s : 0;
    double decode_tps = r.decode_s > 0 ? r.decode_tokens / r.decode_s : 0;
    double ms_per_step = r.decode_steps ? 1e3 * r.decode_s / r.decode_steps : 0;
    /* Floors: decode streams the weights once per step; prefill does 2 FLOPs per parameter per token. */
    double decode_floor_ms = r.bw_gbs > 0 ? 1e3 * (double)r.weight_bytes / (r.bw_gbs * 1e9) : 0;
    double prefill_floor_tps = r.gflops > 0 ? r.gflops * 1e9 / (2.0 * params) : 0;
    if (cli.json) {
        printf("{\"model\":\"%s\",\"weights\":\"%s\",\"backend\":\"%s\",\"device\":\"%s\",\"params\":%.0f,"
               "\"batch\":%d,\"prompt_len\":%d,\"gen_len\":%d,\"requests\":%d,"
               "\"prefill_tokens\":%ld,\"prefill_s\":%.6f,\"prefill_tokens_per_s\":%.3f,"
               "\"decode_tokens\":%ld,\"decode_s\":%.6f,\"decode_tokens_per_s\":%.3f,\"ms_per_decode_step\":%.4f,"
               "\"weight_bytes\":%zu,\"kv_cache_bytes\":%zu,\"activation_bytes\":%zu,"
               "\"measured_matvec_gb_per_s\":%.3f,\"measured_matmul_gflops\":%.3f,"
               "\"decode_floor_ms_per_step\":%.4f,\"prefill_floor_tokens_per_s\":%.3f,"
               "\"metrics_steps\":%ld,\"metrics_step_tokens\":%ld,\"metrics_step_s\":%.6f,\"timed_runs\":%d",
               cfg.model, gs_dtype_name(s.engine.fwd.w.wdt), s.be->ops->name, s.be->device_name, params, wl->batch, wl->prompt_len, wl->gen_len,
               n_req, r.prefill_tokens, r.prefill_s, prefill_tps, r.decode_tokens, r.decode_s, decode_tps,
               ms_per_step, r.weight_bytes, r.kv_bytes, r.act_bytes, r.bw_gbs, r.gflops, decode_floor_ms,
               prefill_floor_tps, r.metrics_steps, r.metrics_tokens, r.metrics_s, n_runs);
        /* The KV precision and what a token costs in it (int8 scales included). */
        printf(",\"kv\":\"%s\",\"kv_bytes_per_token\":%zu", gs_kv_dtype_name(s.engine.fwd.kv_dtype),
               gs_forward_kv_bytes_per_token(sh, s.engine.fwd.kv_dtype));
        /* Measured memory traffic per token: the DRAM bytes (read + write)
         * of every kernel of the metrics steps, over their tokens; given only
         * when those steps were pure decode steps, so it means "per decoded
         * token". Peak memory: what the engine allocated (weights, KV cache,
         * activations), and on a device the memory in use after the run as
         * the driver reports it (contexts and library workspaces included). */
        double dram = 0;
        long dram_calls = 0;
        for (int i = 0; prof.built && i < prof.report.n_ops; i++)
            if (prof.report.ops[i].measured_calls > 0) {
                dram += prof.report.ops[i].bytes_measured * (double)prof.report.ops[i].measured_calls;
                dram_calls += prof.report.ops[i].measured_calls;
            }
        if (dram_calls > 0 && r.metrics_tokens > 0 && r.metrics_prefill_tokens == 0)
            printf(",\"dram_bytes_per_token\":%.0f", dram / (double)r.metrics_tokens);
        else
            printf(",\"dram_bytes_per_token\":null");
        printf(",\"peak_memory_bytes\":%zu", r.weight_bytes + r.kv_bytes + r.act_bytes);
        if (s.be->threads == 0 && mem_used > 0)
            printf(",\"device_memory_used_bytes\":%zu", mem_used);
        quality_json(&bq);
        if (prof.built) {
            printf(",\"profile\":");
            gs_profile_report_json(stdout, &prof.report);
        }
        if (prof.profiler) {
            printf(",\"collector\":{\"kernels\":%llu,\"copies\":%llu,\"syncs\":%llu,\"dropped\":%llu,"
                   "\"unattributed\":%llu,\"metrics_steps\":%llu,\"cpu_counter_ops\":%llu,"
                   "\"cpu_counter_threads\":%d}",
                   (unsigned long long)ps.kernels, (unsigned long long)ps.copies, (unsigned long long)ps.syncs,
                   (unsigned long long)ps.dropped, (unsigned long long)ps.unattributed,
                   (unsigned long long)ps.metric_steps, (unsigned long long)ps.cpu_counter_ops,
                   ps.cpu_counter_threads);
        }
        printf("}\n");
    } else {
        printf("model    %s (%s, %.1fM params, %s weights)\n", cfg.model,
               sh->arch == GS_ARCH_GPT2 ? "GPT-2 style" : "Llama style", params / 1e6,
               gs_dtype_name(s.engine.fwd.w.wdt));
        printf("backend  %s: %s\n", s.be->ops->name, s.be->device_name);
        printf("workload %d request(s), batch %d, prompt %d, generate %d, %s\n", n_req, wl->batch,
               wl->prompt_len, wl->gen_len, wl->arrival_rate > 0 ? "arriving over time" : "all at once");
        if (n_runs > 1)
            printf("timing   %d timed runs of the workload; prefill and decode each from its fastest run\n",
                   n_runs);
        printf("\n");
        if (r.decode_tokens_in_prefill)
            printf("(%ld decode tokens ran inside mixed prefill steps and are counted with prefill)\n\n",
                   r.decode_tokens_in_prefill);
        printf("machine  matrix-vector read %.1f GB/s, matmul %.1f GFLOP/s (%s weights, measured now, best of 8)\n\n",
               r.bw_gbs, r.gflops, gs_dtype_name(s.engine.fwd.w.wdt));
        printf("%-10s %10s %10s %14s %14s\n", "phase", "tokens", "ms", "tokens/s", "floor");
        printf("%-10s %10ld %10.3f %14.1f %11.1f t/s  (FLOPs / matmul rate)\n", "prefill", r.prefill_tokens,
               r.prefill_s * 1e3, prefill_tps, prefill_floor_tps);
        printf("%-10s %10ld %10.3f %14.1f %11.3f ms   (weight bytes / read bandwidth, per step)\n", "decode",
               r.decode_tokens, r.decode_s * 1e3, decode_tps, decode_floor_ms);
        printf("decode step %.3f ms (%.1f%% of the bandwidth floor's speed)\n", ms_per_step,
               ms_per_step > 0 ? 100.0 * decode_floor_ms / ms_per_step : 0.0);
        if (r.metrics_steps)
            printf("(%ld steps replayed for hardware metrics are left out above: %.1f ms each)\n", r.metrics_steps,
                   1e3 * r.metrics_s / (double)r.metrics_steps);
        printf("\n");
        printf("memory   weights %.1f MiB, KV cache %.1f MiB (%zu bytes/token), activations %.1f MiB\n\n",
               (double)r.weight_bytes / (1 << 20), (double)r.kv_bytes / (1 << 20),
               gs_forward_kv_bytes_per_token(sh, s.engine.fwd.kv_dtype), (double)r.act_bytes / (1 << 20));
        quality_print(&bq, &cli);
        if (prof.built)
            gs_profile_report_print(stdout, &prof.report);
        else
            gs_op_report_print(stdout, &ops, s.engine.steps);
        if (prof.profiler) {
            printf("\ncollector %llu kernels, %llu copies/sets, %llu syncs recorded; %llu device records dropped; "
                   "%llu outside any op (weight uploads, peak probes); %llu metrics steps",
                   (unsigned long long)ps.kernels, (unsigned long long)ps.copies, (unsigned long long)ps.syncs,
                   (unsigned long long)ps.dropped, (unsigned long long)ps.unattributed,
                   (unsigned long long)ps.metric_steps);
            if (ps.cpu_counter_threads)
                printf("; CPU counters on %d threads, %llu ops counted", ps.cpu_counter_threads,
                       (unsigned long long)ps.cpu_counter_ops);
            printf("%s%s\n", gs_profiler_notice(prof.profiler)[0] ? "\nnote     " : "",
                   gs_profiler_notice(prof.profiler));
        }
    }
    gs_session_close(&s);
    profile_free(&prof);
    gs_cli_free(&cli);
    return 0;
}
