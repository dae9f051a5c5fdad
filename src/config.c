/* config.c - the configuration's keys: defaults, parsing one value, validation
 * and writing YAML.
 *
 * Everything here is driven by one table (keys[] below) with a row per YAML
 * key. The YAML loader (config_yaml.c) only walks the document's structure and
 * hands each scalar to gs_config_set; the command line does the same with its
 * option values. So a key's type, range and choices are written down once. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the table ------------------------------------------------------------ */

#define FIELD(member) offsetof(gs_config, member), sizeof(((gs_config *)0)->member)
#define INT(name, member, lo, hi, help) \
    { name, GS_KEY_INT, 0, FIELD(member), lo, hi, 0, 0, NULL, help }
#define SHAPE(name, member, lo, hi, help) \
    { name, GS_KEY_INT, GS_KEY_UNSET, FIELD(member), lo, hi, 0, 0, NULL, help }
#define BOOL(name, member, help) \
    { name, GS_KEY_BOOL, 0, FIELD(member), 0, 1, 0, 0, NULL, help }
#define NAME(name, member, choices, help) \
    { name, GS_KEY_NAME, 0, FIELD(member), 0, 0, 0, 0, choices, help }
#define FLOAT(name, member, flags, lo, hi, help) \
    { name, GS_KEY_FLOAT, flags, FIELD(member), 0, 0, lo, hi, NULL, help }

#define FORMATS "auto|llama2c|llmc|safetensors"

static const gs_config_key keys[] = {
    { "model", GS_KEY_TEXT, 0, FIELD(model), 0, 0, 0, 0, NULL,
      "preset name (gpt2-124m, ...) or checkpoint path" },
    { "model.preset", GS_KEY_TEXT, GS_KEY_ALIAS, FIELD(model), 0, 0, 0, 0, NULL,
      "preset name or checkpoint path (with shape overrides)" },
    { "model.path", GS_KEY_TEXT, GS_KEY_ALIAS, FIELD(model), 0, 0, 0, 0, NULL,
      "checkpoint path (same as model.preset)" },
    { "model.format", GS_KEY_FORMAT, GS_KEY_ALIAS, FIELD(format), 0, 0, 0, 0, FORMATS,
      "checkpoint format (same as format)" },
    /* Shape overrides: ranges match gs_shape_validate so a bad number is
     * reported at its line in the file rather than later without a position. */
    { "model.arch", GS_KEY_ENUM, GS_KEY_UNSET, FIELD(shape.arch), 0, 0, 0, 0, "gpt2|llama",
      "architecture family" },
    SHAPE("model.n_layer", shape.n_layer, 1, 512, "transformer blocks"),
    SHAPE("model.n_head", shape.n_head, 1, 65536, "query heads"),
    SHAPE("model.n_kv_head", shape.n_kv_head, 1, 65536, "key/value heads (divides n_head)"),
    SHAPE("model.n_embd", shape.n_embd, 1, 65536, "residual width C"),
    SHAPE("model.n_hidden", shape.n_hidden, 1, 262144, "MLP width H"),
    SHAPE("model.n_ctx", shape.n_ctx, 1, 131072, "maximum positions"),
    SHAPE("model.vocab", shape.vocab, 2, 1048576, "vocabulary size V"),
    { "format", GS_KEY_FORMAT, 0, FIELD(format), 0, 0, 0, 0, FORMATS,
      "checkpoint format; auto detects it from the file" },
    NAME("backend", backend, "auto|cpu|cuda", "where the model runs"),
    { "seed", GS_KEY_U64, 0, FIELD(seed), 0, 0, 0, 0, NULL,
      "seed for synthetic weights and sampling" },
    INT("threads", threads, 0, 1024, "CPU threads, 0 = one per core"),
    INT("workload.batch", workload.batch, 1, 4096, "sequences in flight"),
    INT("workload.prompt_len", workload.prompt_len, 1, 1048576, "tokens per prompt"),
    INT("workload.gen_len", workload.gen_len, 0, 1048576, "tokens generated per request"),
    INT("workload.requests", workload.requests, 0, 1000000, "total requests, 0 = batch"),
    FLOAT("workload.arrival_rate", workload.arrival_rate, 0, 0.0, HUGE_VAL,
          "new requests per engine step, 0 = all at once"),
    NAME("optimizations.weights", opt.weights, "fp32|fp16|bf16|int8|int4", "weight precision"),
    { "optimizations.group_size", GS_KEY_INT, 0, FIELD(opt.group_size), 32, 128, 0, 0, "32|64|128",
      "int4 quantization group size" },
    NAME("optimizations.kv", opt.kv, "fp32|fp16|int8|fp8", "KV cache precision"),
    { "optimizations.sparsity", GS_KEY_SPARSITY, 0, FIELD(opt.sparsity), 0, 0, 0, 0,
      "none|unstructured:R|2:4|heads:R|neurons:R",
      "pruning: smallest weights, 2 of every 4, whole heads or MLP neurons (0 < R < 1)" },
    INT("optimizations.kv_heads", opt.kv_heads, 0, 65536,
        "key/value heads, merged by mean pooling (GQA, MQA); 0 = the model's own"),
    NAME("optimizations.attention", opt.attention, "naive|fused", "attention kernel"),
    INT("optimizations.window", opt.window, 0, 0x7fffffff, "sliding attention window, 0 = off"),
    INT("optimizations.sinks", opt.sinks, 0, 0x7fffffff, "sink tokens kept with a window"),
    BOOL("optimizations.cuda_graphs", opt.cuda_graphs, "capture decode steps as CUDA graphs"),
    BOOL("optimizations.fusion", opt.fusion, "fused kernels where available"),
    BOOL("profiler.enabled", profiler.enabled, "collect timings"),
    INT("profiler.metrics_every", profiler.metrics_every, 0, 0x7fffffff,
        "memory metrics every Nth step, 0 = never"),
    INT("profiler.window_steps", profiler.window_steps, 1, 1000000, "steps kept in live mode"),
    INT("kv_cache.block_size", kv_cache.block_size, 1, 1024, "tokens per KV block"),
    INT("kv_cache.blocks", kv_cache.blocks, 0, 0x7fffffff, "KV blocks, 0 = enough for the workload"),
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

const gs_config_key *gs_config_keys(int *n)
{
    if (n)
        *n = N_KEYS;
    return keys;
}

const gs_config_key *gs_config_key_find(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

const char *gs_config_key_moved(const char *name)
{
    if (strcmp(name, "optimizations.sparsity_kind") == 0)
        return "optimizations.sparsity_kind is gone: write the kind in optimizations.sparsity "
               "(none, unstructured:R, 2:4, heads:R, neurons:R)";
    return NULL;
}

/* ---- defaults ------------------------------------------------------------- */

void gs_config_defaults(gs_config *c)
{
    /* Zero first so unused string bytes are zero too: two configurations
     * built the same way compare equal byte for byte. */
    memset(c, 0, sizeof *c);
    strcpy(c->model, "gpt2-124m");
    c->format = GS_FORMAT_AUTO;
    c->shape.arch = -1;
    c->shape.n_layer = c->shape.n_head = c->shape.n_kv_head = -1;
    c->shape.n_embd = c->shape.n_hidden = c->shape.n_ctx = c->shape.vocab = -1;
    strcpy(c->backend, "auto");
    c->seed = 1234;
    c->threads = 0;
    c->workload = (gs_workload){ .batch = 1, .prompt_len = 16, .gen_len = 32, .requests = 0,
                                 .arrival_rate = 0.0 };
    strcpy(c->opt.weights, "fp32");
    c->opt.group_size = 128;
    strcpy(c->opt.kv, "fp32");
    c->opt.sparsity = (gs_sparsity){ GS_SPARSITY_NONE, 0.0 };
    c->opt.kv_heads = 0;
    strcpy(c->opt.attention, "naive");
    c->opt.window = 0;
    c->opt.sinks = 0;
    c->opt.cuda_graphs = 0;
    c->opt.fusion = 0;
    c->profiler = (gs_profiler_config){ .enabled = 1, .metrics_every = 0, .window_steps = 256 };
    c->kv_cache = (gs_kv_config){ .block_size = 16, .blocks = 0 };
}

/* ---- describing and checking one value ------------------------------------ */

/* "an integer 1..4096" etc.: what a key accepts, for messages. */
static void describe(const gs_config_key *k, char *buf, size_t cap)
{
    switch (k->type) {
    case GS_KEY_INT:
        if (k->choices)
            snprintf(buf, cap, "one of %s", k->choices);
        else if (k->imax == 0x7fffffff)
            snprintf(buf, cap, "an integer >= %lld", k->imin);
        else
            snprintf(buf, cap, "an integer %lld..%lld", k->imin, k->imax);
        break;
    case GS_KEY_U64:
        snprintf(buf, cap, "a non-negative integer below 2^64");
        break;
    case GS_KEY_FLOAT:
        if (isinf(k->fmax))
            snprintf(buf, cap, "a number >= %g", k->fmin);
        else
            snprintf(buf, cap, "a number %g <= x %s %g", k->fmin,
                     (k->flags & GS_KEY_FMAX_OPEN) ? "<" : "<=", k->fmax);
        break;
    case GS_KEY_BOOL:
        snprintf(buf, cap, "yes or no (true/false, on/off, 1/0)");
        break;
    case GS_KEY_NAME:
    case GS_KEY_ENUM:
    case GS_KEY_FORMAT:
        snprintf(buf, cap, "one of %s", k->choices);
        break;
    case GS_KEY_TEXT:
        snprintf(buf, cap, "a non-empty string of at most %zu bytes", k->size - 1);
        break;
    case GS_KEY_SPARSITY:
        snprintf(buf, cap, "none, unstructured:R, 2:4, heads:R or neurons:R with 0 < R < 1");
        break;
    }
}

/* Copies s into out as a double-quoted, escaped, shortened string: user input
 * echoed in a message must not be able to garble the terminal or the line. */
static void quote_for_msg(const char *s, char *out, size_t cap)
{
    size_t o = 0, shown = 0;
    out[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (shown++ == 48) {
            o += (size_t)snprintf(out + o, cap - o, "...");
            break;
        }
        if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o++] = '"';
    out[o] = '\0';
}

static int bad_value(const gs_config_key *k, const char *given, gs_error *err)
{
    char what[128], q[256];
    describe(k, what, sizeof what);
    if (!*given) /* "key:" with nothing after it */
        return gs_error_set(err, GS_ERR_INPUT, "%s: expected %s, got nothing", k->name, what);
    quote_for_msg(given, q, sizeof q);
    return gs_error_set(err, GS_ERR_INPUT, "%s: expected %s, got %s", k->name, what, q);
}

/* Index of name in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *name)
{
    size_t n = strlen(name);
    int i = 0;
    for (const char *p = choices;; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return i;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

/* The i-th name of "a|b|c" into buf (empty when out of range). */
static void choice_name(const char *choices, int i, char *buf, size_t cap)
{
    const char *p = choices;
    for (; i > 0 && p; i--) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (i < 0 || !p) {
        buf[0] = '\0';
        return;
    }
    size_t len = strcspn(p, "|");
    snprintf(buf, cap, "%.*s", (int)len, p);
}

static int int_ok(const gs_config_key *k, long long v)
{
    if (v < k->imin || v > k->imax)
        return 0;
    if (k->choices) {
        char num[32];
        snprintf(num, sizeof num, "%lld", v);
        return choice_index(k->choices, num) >= 0;
    }
    return 1;
}

static int float_ok(const gs_config_key *k, double v)
{
    if (!isfinite(v) || v < k->fmin)
        return 0;
    return (k->flags & GS_KEY_FMAX_OPEN) ? v < k->fmax : v <= k->fmax;
}

/* ---- setting a key from text ---------------------------------------------- */

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = { "yes", "true", "on", "1" }, *no[] = { "no", "false", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 1;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 1;
    }
    return 0;
}

int gs_config_set(gs_config *c, const char *key, const char *value, gs_error *err)
{
    const gs_config_key *k = gs_config_key_find(key);
    if (!k) {
        char q[256];
        quote_for_msg(key, q, sizeof q);
        const char *moved = gs_config_key_moved(key);
        if (moved)
            return gs_error_set(err, GS_ERR_INPUT, "%s", moved);
        return gs_error_set(err, GS_ERR_INPUT, "unknown configuration key %s", q);
    }
    void *field = (char *)c + k->offset;
    char *end;
    switch (k->type) {
    case GS_KEY_INT: {
        /* Base 10 only: "010" is ten, not eight, and "0x10" is an error. */
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno == ERANGE || !int_ok(k, v))
            return bad_value(k, value, err);
        *(int *)field = (int)v;
        return GS_OK;
    }
    case GS_KEY_U64: {
        /* strtoull would quietly turn "-1" into 2^64-1. */
        const char *p = value;
        if (*p == '+')
            p++;
        if (*p < '0' || *p > '9')
            return bad_value(k, value, err);
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (*end || errno == ERANGE)
            return bad_value(k, value, err);
        *(uint64_t *)field = (uint64_t)v;
        return GS_OK;
    }
    case GS_KEY_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end || !float_ok(k, v))
            return bad_value(k, value, err);
        *(double *)field = v;
        return GS_OK;
    }
    case GS_KEY_BOOL: {
        int v;
        if (!parse_bool(value, &v))
            return bad_value(k, value, err);
        *(int *)field = v;
        return GS_OK;
    }
    case GS_KEY_NAME:
        if (choice_index(k->choices, value) < 0)
            return bad_value(k, value, err);
        /* Clear the whole buffer: equal settings are then equal bytes. */
        memset(field, 0, k->size);
        memcpy(field, value, strlen(value));
        return GS_OK;
    case GS_KEY_TEXT: {
        size_t n = strlen(value);
        if (n == 0)
            return gs_error_set(err, GS_ERR_INPUT, "%s: must not be empty", k->name);
        if (n >= k->size)
            return gs_error_set(err, GS_ERR_INPUT, "%s: %zu bytes long, at most %zu allowed",
                                k->name, n, k->size - 1);
        memset(field, 0, k->size);
        memcpy(field, value, n);
        return GS_OK;
    }
    case GS_KEY_ENUM: {
        int i = choice_index(k->choices, value);
        if (i < 0)
            return bad_value(k, value, err);
        *(int *)field = i;
        return GS_OK;
    }
    case GS_KEY_FORMAT: {
        int f = gs_model_format_parse(value);
        if (f < 0)
            return bad_value(k, value, err);
        *(gs_model_format *)field = (gs_model_format)f;
        return GS_OK;
    }
    case GS_KEY_SPARSITY: {
        gs_sparsity sp;
        if (gs_sparsity_parse(value, &sp))
            return bad_value(k, value, err);
        *(gs_sparsity *)field = sp;
        return GS_OK;
    }
    }
    return gs_error_set(err, GS_ERR_RUNTIME, "%s: key of unknown type", k->name);
}

/* ---- validation ----------------------------------------------------------- */

/* Checks one stored value against its row. */
static int check_key(const gs_config *c, const gs_config_key *k, gs_error *err)
{
    const void *field = (const char *)c + k->offset;
    char num[64];
    switch (k->type) {
    case GS_KEY_INT:
    case GS_KEY_BOOL: {
        int v = *(const int *)field;
        if ((k->flags & GS_KEY_UNSET) && v < 0)
            return GS_OK;
        if (k->type == GS_KEY_BOOL ? (v != 0 && v != 1) : !int_ok(k, v)) {
            snprintf(num, sizeof num, "%d", v);
            return bad_value(k, num, err);
        }
        return GS_OK;
    }
    case GS_KEY_U64:
        return GS_OK;
    case GS_KEY_FLOAT: {
        double v = *(const double *)field;
        if (!float_ok(k, v)) {
            snprintf(num, sizeof num, "%g", v);
            return bad_value(k, num, err);
        }
        return GS_OK;
    }
    case GS_KEY_NAME:
    case GS_KEY_TEXT: {
        const char *s = field;
        /* The command line may have filled the buffer: it must hold a string. */
        if (!memchr(s, '\0', k->size))
            return gs_error_set(err, GS_ERR_INPUT, "%s: longer than %zu bytes", k->name,
                                k->size - 1);
        if (k->type == GS_KEY_TEXT && !*s)
            return gs_error_set(err, GS_ERR_INPUT, "%s: must not be empty", k->name);
        if (k->type == GS_KEY_NAME && choice_index(k->choices, s) < 0)
            return bad_value(k, s, err);
        return GS_OK;
    }
    case GS_KEY_ENUM: {
        int v = *(const int *)field, n = 1;
        for (const char *p = k->choices; *p; p++)
            n += *p == '|';
        if ((k->flags & GS_KEY_UNSET) && v < 0)
            return GS_OK;
        if (v < 0 || v >= n) {
            snprintf(num, sizeof num, "%d", v);
            return bad_value(k, num, err);
        }
        return GS_OK;
    }
    case GS_KEY_FORMAT: {
        int v = (int)*(const gs_model_format *)field;
        if (v < GS_FORMAT_AUTO || v > GS_FORMAT_SAFETENSORS) {
            snprintf(num, sizeof num, "%d", v);
            return bad_value(k, num, err);
        }
        return GS_OK;
    }
    case GS_KEY_SPARSITY: {
        /* Written into the struct directly: it must read back as it is. */
        const gs_sparsity *sp = field;
        gs_sparsity back;
        char text[96];
        gs_sparsity_format(sp, text, sizeof text);
        if (gs_sparsity_parse(text, &back) || back.kind != sp->kind || back.ratio != sp->ratio)
            return bad_value(k, text, err);
        return GS_OK;
    }
    }
    return GS_OK;
}

int gs_config_validate(const gs_config *c, gs_error *err)
{
    for (int i = 0; i < N_KEYS; i++) {
        if (keys[i].flags & GS_KEY_ALIAS)
            continue;
        int rc = check_key(c, &keys[i], err);
        if (rc)
            return rc;
    }
    /* Cross-field rules: the names are the YAML keys, which the command line
     * options mirror. */
    const gs_optimizations *o = &c->opt;
    if (o->sinks > 0 && o->window == 0)
        return gs_error_set(err, GS_ERR_INPUT,
                            "optimizations.sinks needs optimizations.window > 0 "
                            "(sink tokens are kept beside a sliding window)");
    if (o->window > 0 && o->sinks >= o->window)
        return gs_error_set(err, GS_ERR_INPUT,
                            "optimizations.sinks (%d) must be less than optimizations.window (%d)",
                            o->sinks, o->window);
    return GS_OK;
}

/* ---- writing YAML --------------------------------------------------------- */

/* An snprintf-like sink: counts every byte, stores what fits. */
typedef struct out_buf {
    char *buf;
    int cap;
    int len;
} out_buf;

static void out_printf(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(out_buf *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, (size_t)room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += n;
}

/* A YAML double-quoted scalar: safe for any path (colons, '#', leading
 * spaces, quotes). Bytes >= 0x80 pass through: the loader takes UTF-8. */
static void out_quoted(out_buf *o, const char *s)
{
    out_printf(o, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            out_printf(o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            out_printf(o, "\\x%02x", ch);
        else
            out_printf(o, "%c", ch);
    }
    out_printf(o, "\"");
}

/* The shortest %g form that reads back to the same double. */
static void out_double(out_buf *o, double v)
{
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    out_printf(o, "%s", tmp);
}

static void out_value(out_buf *o, const gs_config *c, const gs_config_key *k)
{
    const void *field = (const char *)c + k->offset;
    char name[GS_CONFIG_STR];
    switch (k->type) {
    case GS_KEY_INT:
        out_printf(o, "%d", *(const int *)field);
        break;
    case GS_KEY_U64:
        out_printf(o, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case GS_KEY_FLOAT:
        out_double(o, *(const double *)field);
        break;
    case GS_KEY_BOOL:
        out_printf(o, "%s", *(const int *)field ? "yes" : "no");
        break;
    case GS_KEY_NAME: {
        /* Plain when it is a simple word, quoted otherwise ("2:4"). */
        const char *s = field;
        size_t n = strnlen(s, k->size);
        if (n > 0 && n < k->size && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n)
            out_printf(o, "%s", s);
        else {
            snprintf(name, sizeof name, "%.*s", (int)(n < k->size ? n : k->size - 1), s);
            out_quoted(o, name);
        }
        break;
    }
    case GS_KEY_TEXT: {
        /* Bounded copy: the field may not be terminated if validation was skipped. */
        char text[GS_CONFIG_PATH];
        size_t n = strnlen(field, k->size);
        if (n >= sizeof text)
            n = sizeof text - 1;
        memcpy(text, field, n);
        text[n] = '\0';
        out_quoted(o, text);
        break;
    }
    case GS_KEY_ENUM:
        choice_name(k->choices, *(const int *)field, name, sizeof name);
        out_printf(o, "%s", name);
        break;
    case GS_KEY_FORMAT:
        out_printf(o, "%s", gs_model_format_name(*(const gs_model_format *)field));
        break;
    case GS_KEY_SPARSITY: {
        /* Quoted unless none: "2:4" and "heads:0.25" read as text everywhere. */
        const gs_sparsity *sp = field;
        gs_sparsity_format(sp, name, sizeof name);
        if (sp->kind == GS_SPARSITY_NONE)
            out_printf(o, "%s", name);
        else
            out_quoted(o, name);
        break;
    }
    }
}

static int is_set(const gs_config *c, const gs_config_key *k)
{
    return !(k->flags & GS_KEY_UNSET) || *(const int *)((const char *)c + k->offset) >= 0;
}

int gs_config_to_yaml(const gs_config *c, char *buf, int cap)
{
    out_buf o = { buf, cap > 0 ? cap : 0, 0 };
    if (o.cap > 0)
        buf[0] = '\0';
    int shape_set = 0;
    for (int i = 0; i < N_KEYS; i++)
        if ((keys[i].flags & GS_KEY_UNSET) && is_set(c, &keys[i]))
            shape_set = 1;

    char section[64] = "";
    for (int i = 0; i < N_KEYS; i++) {
        const gs_config_key *k = &keys[i];
        if (k->flags & GS_KEY_ALIAS)
            continue;
        const char *dot = strchr(k->name, '.');
        if (strcmp(k->name, "model") == 0) {
            /* "model" is the one key that is a scalar or a mapping: a mapping
             * only when a shape override needs one. */
            if (shape_set)
                out_printf(&o, "model:\n  preset: ");
            else
                out_printf(&o, "model: ");
            out_value(&o, c, k);
            out_printf(&o, "\n");
            strcpy(section, "model");
            continue;
        }
        if (!dot) {
            section[0] = '\0';
            out_printf(&o, "%s: ", k->name);
            out_value(&o, c, k);
            out_printf(&o, "\n");
            continue;
        }
        if (!is_set(c, k))
            continue;
        size_t slen = (size_t)(dot - k->name);
        if (strlen(section) != slen || strncmp(section, k->name, slen) != 0) {
            snprintf(section, sizeof section, "%.*s", (int)slen, k->name);
            out_printf(&o, "%s:\n", section);
        }
        out_printf(&o, "  %s: ", dot + 1);
        out_value(&o, c, k);
        out_printf(&o, "\n");
    }
    return o.len;
}
