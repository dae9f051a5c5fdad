/* config.h - one run's configuration: defaults, YAML file, command line.
 *
 * Precedence: built-in defaults < the YAML file (-c) < command-line options.
 * Every command-line option has a YAML key. */
#ifndef GS_CONFIG_H
#define GS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "model_load.h"
#include "prune.h"
#include "status.h"

#define GS_CONFIG_STR 256
#define GS_CONFIG_PATH 1024

/* Shape overrides on top of a preset (fields < 0 are unset; arch -1 unset). */
typedef struct gs_shape_override {
    int arch;
    int n_layer, n_head, n_kv_head, n_embd, n_hidden, n_ctx, vocab;
} gs_shape_override;

typedef struct gs_workload {
    int batch;          /* concurrent sequences (requests in flight) */
    int prompt_len;     /* tokens per prompt */
    int gen_len;        /* tokens generated per request */
    int requests;       /* total requests; 0 = batch */
    double arrival_rate; /* new requests per engine step; 0 = all arrive at once */
} gs_workload;

typedef struct gs_optimizations {
    char weights[GS_CONFIG_STR];   /* fp32 fp16 bf16 int8 int4 */
    int group_size;                /* int4 group size: 32 64 128 */
    char kv[GS_CONFIG_STR];        /* fp32 fp16 int8 fp8 */
    gs_sparsity sparsity;          /* kind and ratio, spelled none, unstructured:R, 2:4, heads:R, neurons:R */
    int kv_heads;                  /* key/value heads to merge down to; 0 = the model's own */
    char attention[GS_CONFIG_STR]; /* naive fused */
    int window;                    /* sliding window, 0 = off */
    int sinks;                     /* sink tokens kept with a window */
    int cuda_graphs;               /* 0/1 */
    int fusion;                    /* 0/1 */
} gs_optimizations;

typedef struct gs_profiler_config {
    int enabled;                   /* 0/1 */
    int metrics_every;             /* collect memory metrics every Nth step, 0 = never */
    int window_steps;              /* steps kept in memory in live mode */
} gs_profiler_config;

typedef struct gs_kv_config {
    int block_size;                /* tokens per block, default 16 */
    int blocks;                    /* 0 = enough for the workload */
} gs_kv_config;

typedef struct gs_config {
    char model[GS_CONFIG_PATH];    /* preset name or checkpoint path */
    gs_model_format format;
    gs_shape_override shape;
    char backend[GS_CONFIG_STR];   /* auto cpu cuda */
    uint64_t seed;
    int threads;                   /* 0 = one per core */
    gs_workload workload;
    gs_optimizations opt;
    gs_profiler_config profiler;
    gs_kv_config kv_cache;
} gs_config;

void gs_config_defaults(gs_config *c);

/* Reads a YAML file over c (keys the file leaves out keep their value).
 * Unknown keys, wrong types, out-of-range values, duplicate keys, aliases and
 * syntax errors are GS_ERR_INPUT with "FILE:LINE:COLUMN: what" (1-based); a
 * missing file is "FILE: No such file or directory". c is changed only when
 * the whole file is good. An empty file changes nothing. */
int gs_config_load_yaml(gs_config *c, const char *path, gs_error *err);

/* Checks ranges and names after all sources are merged ("--threads" etc. are
 * named by their YAML key), then the rules between keys: sinks need a window
 * and are fewer than it. Rules that need the model (kv_heads divides its
 * key/value heads, a window shorter than its context, heads left after
 * pruning) are checked when the session builds it. Shape overrides are checked against
 * each other later, by gs_shape_validate on the merged shape. */
int gs_config_validate(const gs_config *c, gs_error *err);

/* Writes the configuration as YAML (the same keys the loader reads), for
 * trace headers and `--dump-config`. Returns bytes that would be written like
 * snprintf. */
int gs_config_to_yaml(const gs_config *c, char *buf, int cap);

/* ---- The key table ------------------------------------------------------
 * One row per YAML key, named by its path ("seed", "workload.batch"). The
 * YAML loader, gs_config_validate, gs_config_to_yaml and the command line all
 * read this one table, so a key's type, range, choices and help text cannot
 * drift apart. */
typedef enum {
    GS_KEY_INT,    /* int in imin..imax (and one of choices, "32|64|128", when set) */
    GS_KEY_U64,    /* uint64_t, 0..2^64-1 */
    GS_KEY_FLOAT,  /* finite double, fmin <= x <= fmax (x < fmax with GS_KEY_FMAX_OPEN) */
    GS_KEY_BOOL,   /* int 0/1, written yes/no (true/false, on/off, 1/0 accepted) */
    GS_KEY_NAME,   /* char[size] holding one of choices */
    GS_KEY_TEXT,   /* char[size] holding any non-empty text (a preset name or a path) */
    GS_KEY_ENUM,   /* int: index of the value in choices */
    GS_KEY_FORMAT, /* gs_model_format, named as gs_model_format_parse reads it */
    GS_KEY_SPARSITY /* gs_sparsity, spelled as gs_sparsity_parse reads it */
} gs_config_key_type;

enum {
    GS_KEY_UNSET = 1,     /* a negative value means "not set" (shape overrides) */
    GS_KEY_ALIAS = 2,     /* another spelling of a row above; gs_config_to_yaml skips it */
    GS_KEY_FMAX_OPEN = 4  /* GS_KEY_FLOAT: fmax itself is excluded */
};

typedef struct gs_config_key {
    const char *name;        /* YAML path: "seed", "workload.batch" */
    gs_config_key_type type;
    int flags;               /* GS_KEY_UNSET | GS_KEY_ALIAS | GS_KEY_FMAX_OPEN */
    size_t offset;           /* of the field in gs_config, bytes */
    size_t size;             /* of the field, bytes (string capacity incl. the NUL) */
    long long imin, imax;    /* GS_KEY_INT */
    double fmin, fmax;       /* GS_KEY_FLOAT */
    const char *choices;     /* allowed values "fp32|fp16|bf16"; NULL = any in range */
    const char *help;        /* one line, for --help and the docs */
} gs_config_key;

/* All rows, in the order gs_config_to_yaml writes them; *n gets the count. */
const gs_config_key *gs_config_keys(int *n);
/* The row for a YAML path, or NULL. */
const gs_config_key *gs_config_key_find(const char *name);

/* For a key that no longer exists, one line saying what replaced it; NULL
 * for any other name. */
const char *gs_config_key_moved(const char *name);

/* Parses value as the YAML path key expects and stores it in c (c is left
 * unchanged on error). GS_ERR_INPUT "KEY: expected WHAT, got \"VALUE\"" for a
 * bad value, "unknown configuration key ..." for a bad key. The YAML loader
 * and the command line both set keys through here. */
int gs_config_set(gs_config *c, const char *key, const char *value, gs_error *err);

#endif
