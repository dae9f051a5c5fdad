/* cli.c - one option table for every subcommand. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_load.h"

enum {
    OPT_CONFIG = 'c', OPT_TOKENS = 'n', OPT_HELP = 'h', OPT_OUTPUT = 'o',
    OPT_MODEL = 1000, OPT_FORMAT, OPT_BACKEND, OPT_SEED, OPT_THREADS,
    OPT_TEMPERATURE, OPT_TOP_K, OPT_TOP_P, OPT_PROMPT_IDS,
    OPT_BATCH, OPT_PROMPT_LEN, OPT_GEN_LEN, OPT_JSON, OPT_LOGITS_OUT,
    OPT_STEPS, OPT_SECONDS, OPT_PROFILE, OPT_REMEASURE_PEAKS,
    OPT_DEVICE_TRACE, OPT_METRICS_EVERY, OPT_NVTX, OPT_METRICS_SET, OPT_TRACE_EVERY, OPT_CPU_COUNTERS,
    OPT_NO_QUALITY, OPT_QUALITY_TOKENS, OPT_TOKEN_FILE, OPT_REPEAT,
    OPT_KEY = 2000, /* OPT_KEY + i: the optimization option keys[i], set through the config key table */
};

/* The optimizations take the same spelling on the command line as under
 * `optimizations:` in YAML: each option sets its YAML key. */
static const struct {
    const char *option, *key;
} opt_keys[] = {
    {"weights", "optimizations.weights"},   {"group-size", "optimizations.group_size"},
    {"kv", "optimizations.kv"},             {"sparsity", "optimizations.sparsity"},
    {"attention", "optimizations.attention"}, {"kv-heads", "optimizations.kv_heads"},
    {"window", "optimizations.window"},     {"sinks", "optimizations.sinks"},
    {"cuda-graphs", "optimizations.cuda_graphs"}, {"fusion", "optimizations.fusion"},
};

typedef struct opt_doc {
    struct option opt;
    unsigned group;
    const char *arg, *help;
} opt_doc;

static const opt_doc table[] = {
    {{"config", required_argument, NULL, OPT_CONFIG}, GS_OPTS_COMMON, "FILE.yaml", "read the run's configuration from a YAML file"},
    {{"model", required_argument, NULL, OPT_MODEL}, GS_OPTS_COMMON, "NAME|PATH", "a preset (gptscope info lists them) or a checkpoint file"},
    {{"format", required_argument, NULL, OPT_FORMAT}, GS_OPTS_COMMON, "FMT", "checkpoint format: auto, llama2c, llmc, safetensors"},
    {{"backend", required_argument, NULL, OPT_BACKEND}, GS_OPTS_COMMON, "NAME", "auto, cpu or cuda"},
    {{"seed", required_argument, NULL, OPT_SEED}, GS_OPTS_COMMON, "N", "seed for synthetic weights and sampling"},
    {{"threads", required_argument, NULL, OPT_THREADS}, GS_OPTS_COMMON, "N", "CPU worker threads (0: one per core)"},
    {{"tokens", required_argument, NULL, OPT_TOKENS}, GS_OPTS_SAMPLING, "N", "tokens to generate"},
    {{"temperature", required_argument, NULL, OPT_TEMPERATURE}, GS_OPTS_SAMPLING, "T", "0 = greedy argmax (default)"},
    {{"top-k", required_argument, NULL, OPT_TOP_K}, GS_OPTS_SAMPLING, "K", "sample among the K most likely ids (0: off)"},
    {{"top-p", required_argument, NULL, OPT_TOP_P}, GS_OPTS_SAMPLING, "P", "nucleus sampling threshold (1: off)"},
    {{"prompt-ids", required_argument, NULL, OPT_PROMPT_IDS}, GS_OPTS_SAMPLING, "1,2,3", "prompt token ids (default: the BOS id 1)"},
    {{"logits-out", required_argument, NULL, OPT_LOGITS_OUT}, GS_OPTS_SAMPLING, "FILE", "write each step's logits (float32, vocab per row) to FILE"},
    {{"batch", required_argument, NULL, OPT_BATCH}, GS_OPTS_WORKLOAD, "N", "sequences in flight (workload.batch)"},
    {{"prompt-len", required_argument, NULL, OPT_PROMPT_LEN}, GS_OPTS_WORKLOAD, "N", "prompt tokens per request (workload.prompt_len)"},
    {{"gen-len", required_argument, NULL, OPT_GEN_LEN}, GS_OPTS_WORKLOAD, "N", "tokens generated per request (workload.gen_len)"},
    {{"json", no_argument, NULL, OPT_JSON}, GS_OPTS_OUTPUT, NULL, "print the result as JSON"},
    {{"profile", no_argument, NULL, OPT_PROFILE}, GS_OPTS_PROFILE, NULL, "per-op and per-kernel profile with the roofline (measured and modeled, labelled)"},
    {{"remeasure-peaks", no_argument, NULL, OPT_REMEASURE_PEAKS}, GS_OPTS_PROFILE, NULL, "measure the device's peak rates again instead of reading the cache"},
    {{"output", required_argument, NULL, OPT_OUTPUT}, GS_OPTS_RECORD, "FILE.gst", "the trace file to write"},
    {{"steps", required_argument, NULL, OPT_STEPS}, GS_OPTS_RECORD, "N", "stop after N engine steps (the workload repeats to fill them)"},
    {{"seconds", required_argument, NULL, OPT_SECONDS}, GS_OPTS_RECORD, "S", "stop after S seconds (the workload repeats to fill them)"},
    {{"device-trace", required_argument, NULL, OPT_DEVICE_TRACE}, GS_OPTS_COLLECT, "on|off", "CUPTI kernel timeline (CUDA; off when another profiler such as Nsight is attached)"},
    {{"metrics-every", required_argument, NULL, OPT_METRICS_EVERY}, GS_OPTS_COLLECT, "N", "hardware counters (DRAM, L2, L1 traffic) on every Nth step; those steps are replayed and excluded from timings (0: off)"},
    {{"trace-every", required_argument, NULL, OPT_TRACE_EVERY}, GS_OPTS_COLLECT, "N", "CUPTI kernel timeline on every Nth step only (1: every step), to keep its cost low"},
    {{"metrics-set", required_argument, NULL, OPT_METRICS_SET}, GS_OPTS_COLLECT, "full|fast", "full: with the L2 hit rate (two passes); fast: one pass, sampled steps far cheaper"},
    {{"cpu-counters", required_argument, NULL, OPT_CPU_COUNTERS}, GS_OPTS_COLLECT, "on|off", "per-op LLC and cache counters through perf_event_open (CPU backend, where the kernel exposes a PMU)"},
    {{"nvtx", required_argument, NULL, OPT_NVTX}, GS_OPTS_COLLECT, "on|off", "NVTX ranges for Nsight Systems (CUDA)"},
    {{"weights", required_argument, NULL, OPT_KEY + 0}, GS_OPTS_COMMON, "fp32|fp16|bf16|int8|int4", "weight precision (optimizations.weights)"},
    {{"group-size", required_argument, NULL, OPT_KEY + 1}, GS_OPTS_COMMON, "32|64|128", "int4 group size"},
    {{"kv", required_argument, NULL, OPT_KEY + 2}, GS_OPTS_COMMON, "fp32|fp16|int8|fp8", "KV-cache precision"},
    {{"sparsity", required_argument, NULL, OPT_KEY + 3}, GS_OPTS_COMMON, "KIND[:R]", "none, unstructured:R, 2:4, heads:R, neurons:R"},
    {{"attention", required_argument, NULL, OPT_KEY + 4}, GS_OPTS_COMMON, "naive|fused", "attention kernels"},
    {{"kv-heads", required_argument, NULL, OPT_KEY + 5}, GS_OPTS_COMMON, "N", "KV heads: fewer than the model's makes GQA/MQA by mean-pooling (0: the model's)"},
    {{"window", required_argument, NULL, OPT_KEY + 6}, GS_OPTS_COMMON, "W", "sliding attention window in tokens (0: off)"},
    {{"sinks", required_argument, NULL, OPT_KEY + 7}, GS_OPTS_COMMON, "S", "sink tokens kept visible with a window"},
    {{"cuda-graphs", required_argument, NULL, OPT_KEY + 8}, GS_OPTS_COMMON, "on|off", "replay decode steps as CUDA graphs"},
    {{"fusion", required_argument, NULL, OPT_KEY + 9}, GS_OPTS_COMMON, "on|off", "fused kernels where the backend has them"},
    {{"no-quality", no_argument, NULL, OPT_NO_QUALITY}, GS_OPTS_QUALITY, NULL, "skip the output-quality comparison with the fp32 baseline (KL, top-1, perplexity)"},
    {{"quality-tokens", required_argument, NULL, OPT_QUALITY_TOKENS}, GS_OPTS_QUALITY, "N", "positions the quality comparison scores (default 256, 128 for vocabularies over 4096; at most the context)"},
    {{"token-file", required_argument, NULL, OPT_TOKEN_FILE}, GS_OPTS_QUALITY, "FILE", "score the quality comparison on these token ids (white-space separated, # comments) instead of a stream sampled from the baseline"},
    {{"repeat", required_argument, NULL, OPT_REPEAT}, GS_OPTS_TIMING, "N", "time the workload N times and report each phase's fastest run (default 1)"},
    {{"help", no_argument, NULL, OPT_HELP}, 0, NULL, "show this help"},
};
#define N_OPTS (int)(sizeof table / sizeof table[0])

void gs_cli_print_options(unsigned groups)
{
    for (int i = 0; i < N_OPTS; i++) {
        if (table[i].group && !(table[i].group & groups))
            continue;
        char lhs[64];
        int shortopt = table[i].opt.val < 256;
        snprintf(lhs, sizeof lhs, "%s%c%s--%s%s%s", shortopt ? "-" : "", shortopt ? table[i].opt.val : ' ',
                 shortopt ? ", " : "  ", table[i].opt.name, table[i].arg ? " " : "",
                 table[i].arg ? table[i].arg : "");
        printf("  %-30s %s\n", shortopt ? lhs : lhs + 2, table[i].help);
    }
}

static int parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out,
                      gs_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --%s: expected an integer %ld..%ld, got '%s'",
                            cmd, opt, lo, hi, s);
    *out = v;
    return GS_OK;
}

static int parse_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out,
                       gs_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --%s: expected a number %g..%g, got '%s'", cmd,
                            opt, lo, hi, s);
    *out = v;
    return GS_OK;
}

static int parse_ids(gs_cli *cli, const char *s, gs_error *err)
{
    int cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    cli->prompt_ids = malloc((size_t)cap * sizeof(int));
    if (!cli->prompt_ids)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    const char *p = s;
    int n = 0;
    while (1) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT_MAX || (*end != ',' && *end != '\0'))
            return gs_error_set(err, GS_ERR_INPUT,
                                "gptscope %s: --prompt-ids: expected comma-separated token ids, bad item %d at column %d of '%s'",
                                cli->command, n + 1, (int)(p - s) + 1, s);
        cli->prompt_ids[n++] = (int)v;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    cli->n_prompt_ids = n;
    return GS_OK;
}

static int set_str(char *dst, size_t cap, const char *cmd, const char *opt, const char *v, gs_error *err)
{
    if (strlen(v) >= cap)
        return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --%s: value too long", cmd, opt);
    memcpy(dst, v, strlen(v) + 1);
    return GS_OK;
}

/* Sets a configuration key through the key table, so the option reads its
 * value exactly as the YAML file does; the message names the option. */
static int set_key(gs_config *cfg, const char *cmd, const char *opt, const char *key, const char *v, gs_error *err)
{
    gs_error e = {0};
    int rc = gs_config_set(cfg, key, v, &e);
    if (rc == GS_OK)
        return GS_OK;
    const char *msg = e.msg;
    size_t kl = strlen(key);
    if (strncmp(msg, key, kl) == 0 && msg[kl] == ':')
        msg += kl + (msg[kl + 1] == ' ' ? 2 : 1);
    return gs_error_set(err, rc, "gptscope %s: --%s: %s", cmd, opt, msg);
}

static int parse_on_off(const char *command, const char *name, const char *v, int *out, gs_error *err)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
        *out = v[1] == 'n';
        return GS_OK;
    }
    return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --%s takes on or off, not '%s'", command, name, v);
}

int gs_cli_parse(gs_cli *cli, const char *command, unsigned groups, int argc, char **argv, gs_error *err)
{
    memset(cli, 0, sizeof *cli);
    cli->device_trace = 1;
    cli->nvtx = 1;
    cli->cpu_counters = 1;
    cli->command = command;
    cli->groups = groups;
    cli->n_tokens = -1;
    cli->sampler.temperature = 0.0f;
    cli->sampler.top_p = 1.0f;
    gs_config_defaults(&cli->cfg);

    struct option longopts[N_OPTS + 1];
    char shortopts[32] = ":";
    int n = 0;
    for (int i = 0; i < N_OPTS; i++) {
        if (table[i].group && !(table[i].group & groups))
            continue;
        longopts[n++] = table[i].opt;
        if (table[i].opt.val < 256) {
            size_t len = strlen(shortopts);
            shortopts[len] = (char)table[i].opt.val;
            shortopts[len + 1] = table[i].opt.has_arg ? ':' : '\0';
            shortopts[len + 2] = '\0';
        }
    }
    memset(&longopts[n], 0, sizeof longopts[n]);

    /* Pass 1: the YAML file, so that every other option overrides it. */
    opterr = 0;
    optind = 1;
    int c, rc;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == OPT_HELP) {
            cli->help = 1;
            return GS_OK;
        }
        if (c == '?')
            return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: unknown option '%s' (see gptscope %s --help)",
                                command, argv[optind - 1], command);
        if (c == ':')
            return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: option '%s' needs a value", command,
                                argv[optind - 1]);
        if (c == OPT_CONFIG && (rc = gs_config_load_yaml(&cli->cfg, optarg, err)))
            return rc;
    }
    /* Pass 2: everything else, in order. */
    optind = 1;
    long lv;
    double dv;
    gs_config *cfg = &cli->cfg;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        rc = GS_OK;
        switch (c) {
        case OPT_MODEL:
            rc = set_str(cfg->model, sizeof cfg->model, command, "model", optarg, err);
            break;
        case OPT_FORMAT: {
            int f = gs_model_format_parse(optarg);
            if (f < 0)
                return gs_error_set(err, GS_ERR_INPUT,
                                    "gptscope %s: --format: expected auto, llama2c, llmc or safetensors, got '%s'",
                                    command, optarg);
            cfg->format = (gs_model_format)f;
            break;
        }
        case OPT_BACKEND:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --backend: expected auto, cpu or cuda, got '%s'",
                                    command, optarg);
            rc = set_str(cfg->backend, sizeof cfg->backend, command, "backend", optarg, err);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --seed: expected a non-negative integer, got '%s'",
                                    command, optarg);
            cfg->seed = v;
            break;
        }
        case OPT_THREADS:
            if (!(rc = parse_long(command, "threads", optarg, 0, 1024, &lv, err)))
                cfg->threads = (int)lv;
            break;
        case OPT_TOKENS:
            if (!(rc = parse_long(command, "tokens", optarg, 0, 1 << 20, &lv, err)))
                cli->n_tokens = (int)lv;
            break;
        case OPT_TEMPERATURE:
            if (!(rc = parse_float(command, "temperature", optarg, 0.0, 100.0, &dv, err)))
                cli->sampler.temperature = (float)dv;
            break;
        case OPT_TOP_K:
            if (!(rc = parse_long(command, "top-k", optarg, 0, 1 << 24, &lv, err)))
                cli->sampler.top_k = (int)lv;
            break;
        case OPT_TOP_P:
            if (!(rc = parse_float(command, "top-p", optarg, 0.0, 1.0, &dv, err)))
                cli->sampler.top_p = (float)dv;
            break;
        case OPT_PROMPT_IDS:
            free(cli->prompt_ids);
            cli->prompt_ids = NULL;
            rc = parse_ids(cli, optarg, err);
            break;
        case OPT_BATCH:
            if (!(rc = parse_long(command, "batch", optarg, 1, 4096, &lv, err)))
                cfg->workload.batch = (int)lv;
            break;
        case OPT_PROMPT_LEN:
            if (!(rc = parse_long(command, "prompt-len", optarg, 1, 1 << 20, &lv, err)))
                cfg->workload.prompt_len = (int)lv;
            break;
        case OPT_GEN_LEN:
            if (!(rc = parse_long(command, "gen-len", optarg, 0, 1 << 20, &lv, err)))
                cfg->workload.gen_len = (int)lv;
            break;
        case OPT_JSON:
            cli->json = 1;
            break;
        case OPT_PROFILE:
            cli->profile = 1;
            break;
        case OPT_REMEASURE_PEAKS:
            cli->remeasure_peaks = 1;
            break;
        case OPT_LOGITS_OUT:
            cli->logits_out = optarg;
            break;
        case OPT_OUTPUT:
            cli->output = optarg;
            break;
        case OPT_STEPS:
            rc = parse_long(command, "steps", optarg, 1, 1L << 40, &cli->steps, err);
            break;
        case OPT_SECONDS:
            rc = parse_float(command, "seconds", optarg, 0.001, 1e7, &cli->seconds, err);
            break;
        case OPT_DEVICE_TRACE:
            rc = parse_on_off(command, "device-trace", optarg, &cli->device_trace, err);
            break;
        case OPT_NVTX:
            rc = parse_on_off(command, "nvtx", optarg, &cli->nvtx, err);
            break;
        case OPT_CPU_COUNTERS:
            rc = parse_on_off(command, "cpu-counters", optarg, &cli->cpu_counters, err);
            break;
        case OPT_TRACE_EVERY:
            rc = parse_long(command, "trace-every", optarg, 1, 1L << 30, &lv, err);
            cli->trace_every = (int)lv;
            break;
        case OPT_METRICS_SET:
            if (strcmp(optarg, "full") == 0 || strcmp(optarg, "fast") == 0)
                cli->metrics_fast = optarg[1] == 'a';
            else
                rc = gs_error_set(err, GS_ERR_INPUT, "gptscope %s: --metrics-set takes full or fast, not '%s'",
                                  command, optarg);
            break;
        case OPT_METRICS_EVERY:
            rc = parse_long(command, "metrics-every", optarg, 0, 1L << 30, &lv, err);
            cli->metrics_every = (int)lv;
            break;
        case OPT_NO_QUALITY:
            cli->no_quality = 1;
            break;
        case OPT_QUALITY_TOKENS:
            if (!(rc = parse_long(command, "quality-tokens", optarg, 1, 1 << 20, &lv, err)))
                cli->quality_tokens = (int)lv;
            break;
        case OPT_TOKEN_FILE:
            cli->token_file = optarg;
            break;
        case OPT_REPEAT:
            if (!(rc = parse_long(command, "repeat", optarg, 1, 1000, &lv, err)))
                cli->repeat = (int)lv;
            break;
        default:
            if (c >= OPT_KEY && c < OPT_KEY + (int)(sizeof opt_keys / sizeof opt_keys[0]))
                rc = set_key(cfg, command, opt_keys[c - OPT_KEY].option, opt_keys[c - OPT_KEY].key, optarg, err);
            break;
        }
        if (rc)
            return rc;
    }
    cli->args = argv + optind;
    cli->n_args = argc - optind;
    return gs_config_validate(cfg, err);
}

void gs_cli_free(gs_cli *cli)
{
    free(cli->prompt_ids);
    cli->prompt_ids = NULL;
}
