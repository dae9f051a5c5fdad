/* cli.h - command-line parsing shared by the subcommands.
 *
 * Every running command takes the common options (-c, --model, --format,
 * --backend, --seed, --threads); each command adds its own from the same
 * table, so help text and parsing cannot drift apart. Precedence: defaults <
 * YAML file (-c) < command-line options. */
#ifndef GS_CLI_H
#define GS_CLI_H

#include "config.h"
#include "sampler.h"
#include "status.h"

/* Which option groups a command accepts. */
enum {
    GS_OPTS_COMMON = 1 << 0,   /* -c --model --format --backend --seed --threads --sparsity --kv-heads */
    GS_OPTS_SAMPLING = 1 << 1, /* -n --temperature --top-k --top-p --prompt-ids --logits-out */
    GS_OPTS_WORKLOAD = 1 << 2, /* --batch --prompt-len --gen-len */
    GS_OPTS_OUTPUT = 1 << 3,   /* --json */
    GS_OPTS_RECORD = 1 << 4,   /* -o --steps --seconds */
    GS_OPTS_PROFILE = 1 << 5,  /* --profile --remeasure-peaks */
    GS_OPTS_COLLECT = 1 << 6,  /* --device-trace --trace-every --metrics-every --metrics-set --nvtx */
    GS_OPTS_QUALITY = 1 << 7,  /* --no-quality --quality-tokens --tokens FILE */
    GS_OPTS_TIMING = 1 << 8,   /* --repeat */
};

typedef struct gs_cli {
    const char *command;      /* "generate" */
    unsigned groups;
    gs_config cfg;
    gs_sampler sampler;
    int n_tokens;             /* -n; -1 unset */
    int *prompt_ids;          /* --prompt-ids, owned */
    int n_prompt_ids;
    int json;
    int profile;              /* bench --profile */
    int remeasure_peaks;      /* bench --remeasure-peaks: ignore the cached peak rates */
    const char *logits_out;   /* generate --logits-out FILE */
    const char *output;       /* record -o FILE */
    long steps;               /* record --steps; 0 unset */
    double seconds;           /* record --seconds; 0 unset */
    int device_trace;         /* --device-trace on|off (default on) */
    int metrics_every;        /* --metrics-every N (default 0: off) */
    int nvtx;                 /* --nvtx on|off (default on) */
    int metrics_fast;         /* --metrics-set fast (default full) */
    int trace_every;          /* --trace-every N (default 1) */
    int cpu_counters;         /* --cpu-counters on|off (default on) */
    int no_quality;           /* bench --no-quality: skip the comparison with the fp32 baseline */
    int quality_tokens;       /* bench --quality-tokens N; 0: the default length */
    const char *token_file;   /* bench --tokens FILE: the quality stream's ids */
    int repeat;               /* bench --repeat N: timed runs of the workload (default 1) */
    int help;
    char **args;              /* positional arguments left over */
    int n_args;
} gs_cli;

/* Parses argv (argv[0] is the command name). GS_ERR_INPUT with a one-line
 * message on bad usage; cli->help set when --help was asked. */
int gs_cli_parse(gs_cli *cli, const char *command, unsigned groups, int argc, char **argv,
                 gs_error *err);
void gs_cli_free(gs_cli *cli);
/* Prints the option lines of the given groups. */
void gs_cli_print_options(unsigned groups);

#endif
