/* test_config.c - the configuration: defaults, the example files, every key
 * from YAML, the YAML writer's round trip, bad files with the exact
 * line:column of the mistake, and random mutations of a good file (run under
 * ASan: none may crash, each gives GS_OK or GS_ERR_INPUT). */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    /* xorshift64*: enough for picking values and mutations */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static int rnd_int(int lo, int hi)
{
    return (int)(lo + (long long)(rnd() % (uint64_t)((long long)hi - lo + 1)));
}

/* Writes len bytes to a fresh temporary file; path gets its name. */
static int write_tmp(const char *text, size_t len, char *path, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/gs_config_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        off += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Loads text over defaults; returns the status, fills c and err. */
static int load_text(const char *text, size_t len, gs_config *c, gs_error *err, char *path,
                     size_t cap)
{
    gs_config_defaults(c);
    memset(err, 0, sizeof *err);
    if (write_tmp(text, len, path, cap) != 0) {
        snprintf(err->msg, sizeof err->msg, "cannot write a temporary file");
        return -1;
    }
    int rc = gs_config_load_yaml(c, path, err);
    unlink(path);
    return rc;
}

/* Field by field, so differing bytes after a string's NUL do not count. */
static int cfg_equal(const gs_config *a, const gs_config *b)
{
    const gs_shape_override *x = &a->shape, *y = &b->shape;
    const gs_optimizations *o = &a->opt, *p = &b->opt;
    return strcmp(a->model, b->model) == 0 && a->format == b->format && x->arch == y->arch &&
           x->n_layer == y->n_layer && x->n_head == y->n_head && x->n_kv_head == y->n_kv_head &&
           x->n_embd == y->n_embd && x->n_hidden == y->n_hidden && x->n_ctx == y->n_ctx &&
           x->vocab == y->vocab && strcmp(a->backend, b->backend) == 0 && a->seed == b->seed &&
           a->threads == b->threads && a->workload.batch == b->workload.batch &&
           a->workload.prompt_len == b->workload.prompt_len &&
           a->workload.gen_len == b->workload.gen_len &&
           a->workload.requests == b->workload.requests &&
           a->workload.arrival_rate == b->workload.arrival_rate &&
           strcmp(o->weights, p->weights) == 0 && o->group_size == p->group_size &&
           strcmp(o->kv, p->kv) == 0 && o->sparsity.kind == p->sparsity.kind &&
           o->sparsity.ratio == p->sparsity.ratio && o->kv_heads == p->kv_heads &&
           strcmp(o->attention, p->attention) == 0 && o->window == p->window &&
           o->sinks == p->sinks && o->cuda_graphs == p->cuda_graphs && o->fusion == p->fusion &&
           a->profiler.enabled == b->profiler.enabled &&
           a->profiler.metrics_every == b->profiler.metrics_every &&
           a->profiler.window_steps == b->profiler.window_steps &&
           a->kv_cache.block_size == b->kv_cache.block_size &&
           a->kv_cache.blocks == b->kv_cache.blocks;
}

/* to_yaml, then load that text over defaults: must give c back. */
static int round_trip(const gs_config *c, char *why, size_t cap)
{
    int n = gs_config_to_yaml(c, NULL, 0);
    char *yaml = malloc((size_t)n + 1);
    if (!yaml)
        return 0;
    int m = gs_config_to_yaml(c, yaml, n + 1);
    gs_config back;
    gs_error err;
    char path[512];
    int rc = load_text(yaml, (size_t)m, &back, &err, path, sizeof path);
    int ok = m == n && rc == GS_OK && cfg_equal(c, &back);
    if (!ok)
        snprintf(why, cap, "len %d/%d rc %d %s\n%s", n, m, rc, rc ? err.msg : "(differs)", yaml);
    free(yaml);
    return ok;
}

/* A bad file: GS_ERR_INPUT, the message starts "PATH:LINE:COL: " and
 * contains want, and the configuration is left as it was. */
static void expect_bad(const char *name, const char *text, const char *linecol, const char *want)
{
    gs_config c, d;
    gs_error err;
    char path[512], prefix[600];
    int rc = load_text(text, strlen(text), &c, &err, path, sizeof path);
    gs_config_defaults(&d);
    snprintf(prefix, sizeof prefix, "%s:%s: ", path, linecol);
    int ok = rc == GS_ERR_INPUT && err.code == GS_ERR_INPUT &&
             strncmp(err.msg, prefix, strlen(prefix)) == 0 && strstr(err.msg, want) &&
             cfg_equal(&c, &d);
    tap_ok(ok, "bad YAML: %s -> %s", name, linecol);
    if (!ok)
        tap_diag("rc %d, message: %s", rc, err.msg);
    else
        tap_diag("%s", err.msg + strlen(path) + 1);
}

/* ---- tests --------------------------------------------------------------- */

static void test_defaults(void)
{
    gs_config c;
    gs_error err;
    gs_config_defaults(&c);
    tap_ok(strcmp(c.model, "gpt2-124m") == 0 && c.format == GS_FORMAT_AUTO, "defaults: model");
    tap_ok(c.shape.arch == -1 && c.shape.n_layer == -1 && c.shape.n_head == -1 &&
               c.shape.n_kv_head == -1 && c.shape.n_embd == -1 && c.shape.n_hidden == -1 &&
               c.shape.n_ctx == -1 && c.shape.vocab == -1,
           "defaults: no shape override");
    tap_ok(strcmp(c.backend, "auto") == 0 && c.seed == 1234 && c.threads == 0,
           "defaults: backend, seed, threads");
    tap_ok(c.workload.batch == 1 && c.workload.prompt_len == 16 && c.workload.gen_len == 32 &&
               c.workload.requests == 0 && c.workload.arrival_rate == 0.0,
           "defaults: workload");
    tap_ok(strcmp(c.opt.weights, "fp32") == 0 && c.opt.group_size == 128 &&
               strcmp(c.opt.kv, "fp32") == 0 && c.opt.sparsity.kind == GS_SPARSITY_NONE &&
               c.opt.sparsity.ratio == 0.0 && c.opt.kv_heads == 0 && strcmp(c.opt.attention, "naive") == 0 &&
               c.opt.window == 0 && c.opt.sinks == 0 && c.opt.cuda_graphs == 0 && c.opt.fusion == 0,
           "defaults: optimizations");
    tap_ok(c.profiler.enabled == 1 && c.profiler.metrics_every == 0 &&
               c.profiler.window_steps == 256 && c.kv_cache.block_size == 16 &&
               c.kv_cache.blocks == 0,
           "defaults: profiler, kv_cache");
    tap_ok(gs_config_validate(&c, &err) == GS_OK, "defaults validate");
}

static int load_example(const char *dir, const char *name, gs_config *c, gs_error *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gs_config_defaults(c);
    int rc = gs_config_load_yaml(c, path, err);
    if (rc == GS_OK)
        rc = gs_config_validate(c, err);
    return rc;
}

static void test_examples(void)
{
    const char *dir = getenv("GS_EXAMPLES");
    if (!dir || !*dir)
        dir = "examples";
    DIR *d = opendir(dir);
    if (!d) {
        tap_ok(0, "examples: open %s", dir);
        return;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        gs_config c;
        gs_error err = { 0 };
        int rc = load_example(dir, e->d_name, &c, &err);
        tap_ok(rc == GS_OK, "example %s loads and validates", e->d_name);
        if (rc)
            tap_diag("%s", err.msg);
        else {
            char why[8192];
            int ok = round_trip(&c, why, sizeof why);
            tap_ok(ok, "example %s round-trips through gs_config_to_yaml", e->d_name);
            if (!ok)
                tap_diag("%s", why);
        }
        n++;
    }
    closedir(d);
    tap_ok(n >= 4, "found %d example files in %s", n, dir);

    gs_config c, def;
    gs_error err;
    gs_config_defaults(&def);
    tap_ok(load_example(dir, "default.yaml", &c, &err) == GS_OK && cfg_equal(&c, &def),
           "default.yaml equals the built-in defaults");
    tap_ok(load_example(dir, "gpt2-batch16.yaml", &c, &err) == GS_OK && c.workload.batch == 16 &&
               strcmp(c.model, "gpt2-124m") == 0,
           "gpt2-batch16.yaml: batch 16 of gpt2-124m");
    tap_ok(load_example(dir, "llama-custom-shape.yaml", &c, &err) == GS_OK &&
               c.shape.arch == GS_ARCH_LLAMA && c.shape.n_kv_head == 2 && c.shape.n_layer == 6,
           "llama-custom-shape.yaml: Llama shape overrides");
    tap_ok(load_example(dir, "stories260K.yaml", &c, &err) == GS_OK &&
               strcmp(c.model, "../shared/models/stories260K.bin") == 0 &&
               c.format == GS_FORMAT_LLAMA2C,
           "stories260K.yaml: the shared checkpoint, llama2c");
}

/* Every key with a value other than its default. */
static const char *all_keys_yaml =
    "model:\n"
    "  preset: llama-110m\n"
    "  format: safetensors\n"
    "  arch: llama\n"
    "  n_layer: 3\n"
    "  n_head: 6\n"
    "  n_kv_head: 2\n"
    "  n_embd: 96\n"
    "  n_hidden: 256\n"
    "  n_ctx: 300\n"
    "  vocab: 1000\n"
    "backend: cuda\n"
    "seed: 18446744073709551615\n"
    "threads: 7\n"
    "workload: {batch: 9, prompt_len: 33, gen_len: 0, requests: 100, arrival_rate: 0.125}\n"
    "optimizations:\n"
    "  weights: int4\n"
    "  group_size: 64\n"
    "  kv: fp8\n"
    "  sparsity: heads:0.25\n"
    "  kv_heads: 2\n"
    "  attention: fused\n"
    "  window: 128\n"
    "  sinks: 4\n"
    "  cuda_graphs: yes\n"
    "  fusion: TRUE\n"
    "profiler:\n"
    "  enabled: off\n"
    "  metrics_every: 5\n"
    "  window_steps: 1000000\n"
    "kv_cache:\n"
    "  block_size: 3\n"
    "  blocks: 4096\n";

static void test_all_keys(void)
{
    gs_config c;
    gs_error err;
    char path[512];
    int rc = load_text(all_keys_yaml, strlen(all_keys_yaml), &c, &err, path, sizeof path);
    tap_ok(rc == GS_OK, "all keys: loads");
    if (rc)
        tap_diag("%s", err.msg);
    tap_ok(strcmp(c.model, "llama-110m") == 0 && c.format == GS_FORMAT_SAFETENSORS,
           "all keys: model.preset, model.format");
    tap_ok(c.shape.arch == GS_ARCH_LLAMA && c.shape.n_layer == 3 && c.shape.n_head == 6 &&
               c.shape.n_kv_head == 2 && c.shape.n_embd == 96 && c.shape.n_hidden == 256 &&
               c.shape.n_ctx == 300 && c.shape.vocab == 1000,
           "all keys: shape overrides");
    tap_ok(strcmp(c.backend, "cuda") == 0 && c.seed == UINT64_MAX && c.threads == 7,
           "all keys: backend, seed 2^64-1, threads");
    tap_ok(c.workload.batch == 9 && c.workload.prompt_len == 33 && c.workload.gen_len == 0 &&
               c.workload.requests == 100 && c.workload.arrival_rate == 0.125,
           "all keys: workload (flow mapping)");
    tap_ok(strcmp(c.opt.weights, "int4") == 0 && c.opt.group_size == 64 &&
               strcmp(c.opt.kv, "fp8") == 0 && c.opt.sparsity.kind == GS_SPARSITY_HEADS &&
               c.opt.sparsity.ratio == 0.25 && c.opt.kv_heads == 2 && strcmp(c.opt.attention, "fused") == 0 &&
               c.opt.window == 128 && c.opt.sinks == 4 && c.opt.cuda_graphs == 1 &&
               c.opt.fusion == 1,
           "all keys: optimizations");
    tap_ok(c.profiler.enabled == 0 && c.profiler.metrics_every == 5 &&
               c.profiler.window_steps == 1000000 && c.kv_cache.block_size == 3 &&
               c.kv_cache.blocks == 4096,
           "all keys: profiler, kv_cache");
    tap_ok(gs_config_validate(&c, &err) == GS_OK, "all keys: validates");

    /* The other spellings: model as a scalar, top-level format, model.path. */
    const char *alt = "model: /some/dir/model.bin\nformat: llmc\n";
    rc = load_text(alt, strlen(alt), &c, &err, path, sizeof path);
    tap_ok(rc == GS_OK && strcmp(c.model, "/some/dir/model.bin") == 0 && c.format == GS_FORMAT_LLMC &&
               c.shape.arch == -1,
           "model as a scalar, top-level format");
    alt = "model: {path: \"a dir/m.bin\"}\n";
    rc = load_text(alt, strlen(alt), &c, &err, path, sizeof path);
    tap_ok(rc == GS_OK && strcmp(c.model, "a dir/m.bin") == 0, "model.path");

    /* Empty and comment-only files change nothing. */
    gs_config def;
    gs_config_defaults(&def);
    const char *empties[] = { "", "# only a comment\n\n   # another\n", "---\n", "---\n...\n", "~\n" };
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        rc = load_text(empties[i], strlen(empties[i]), &c, &err, path, sizeof path);
        tap_ok(rc == GS_OK && cfg_equal(&c, &def), "empty config #%zu changes nothing", i);
        if (rc)
            tap_diag("%s", err.msg);
    }
    /* Loading goes over what is there: keys left out keep their value. */
    gs_config_defaults(&c);
    c.threads = 3;
    alt = "seed: 5\n";
    if (write_tmp(alt, strlen(alt), path, sizeof path) == 0) {
        rc = gs_config_load_yaml(&c, path, &err);
        unlink(path);
        tap_ok(rc == GS_OK && c.threads == 3 && c.seed == 5, "loads over an existing configuration");
    } else {
        tap_ok(0, "temporary file");
    }
}

/* A configuration with every field random but in range. */
static void random_config(gs_config *c)
{
    static const char *weights[] = { "fp32", "fp16", "bf16", "int8", "int4" };
    static const char *kvs[] = { "fp32", "fp16", "int8", "fp8" };
    static const char *odd = "ab:# \"\\'-_./{}[]&*!|>%@`,?\t\x01\x7f\xc3\xa9";
    gs_config_defaults(c);
    int len = rnd_int(1, 60);
    for (int i = 0; i < len; i++)
        c->model[i] = (rnd() & 1) ? odd[rnd() % strlen(odd)] : (char)('a' + rnd() % 26);
    c->model[len] = '\0';
    /* keep UTF-8 valid: the two-byte é only as a pair */
    for (int i = 0; i < len; i++)
        if ((unsigned char)c->model[i] >= 0x80)
            c->model[i] = 'e';
    c->format = (gs_model_format)rnd_int(0, 3);
    if (rnd() & 1) {
        c->shape.arch = rnd_int(-1, 1);
        c->shape.n_layer = (rnd() & 1) ? -1 : rnd_int(1, 512);
        c->shape.n_head = (rnd() & 1) ? -1 : rnd_int(1, 65536);
        c->shape.n_kv_head = (rnd() & 1) ? -1 : rnd_int(1, 65536);
        c->shape.n_embd = (rnd() & 1) ? -1 : rnd_int(1, 65536);
        c->shape.n_hidden = (rnd() & 1) ? -1 : rnd_int(1, 262144);
        c->shape.n_ctx = (rnd() & 1) ? -1 : rnd_int(1, 131072);
        c->shape.vocab = (rnd() & 1) ? -1 : rnd_int(2, 1048576);
    }
    strcpy(c->backend, (const char *[]){ "auto", "cpu", "cuda" }[rnd() % 3]);
    c->seed = rnd();
    c->threads = rnd_int(0, 1024);
    c->workload.batch = rnd_int(1, 4096);
    c->workload.prompt_len = rnd_int(1, 1048576);
    c->workload.gen_len = rnd_int(0, 1048576);
    c->workload.requests = rnd_int(0, 1000000);
    c->workload.arrival_rate = (double)rnd() / 3e10 * ((rnd() & 1) ? 1e-200 : 1.0);
    strcpy(c->opt.weights, weights[rnd() % 5]);
    c->opt.group_size = 32 << rnd_int(0, 2);
    strcpy(c->opt.kv, kvs[rnd() % 4]);
    c->opt.sparsity.kind = (gs_sparsity_kind)rnd_int(GS_SPARSITY_NONE, GS_SPARSITY_NEURONS);
    c->opt.sparsity.ratio = c->opt.sparsity.kind == GS_SPARSITY_NONE ? 0.0
                            : c->opt.sparsity.kind == GS_SPARSITY_2_4 ? 0.5
                            : ((double)(rnd() >> 11) + 1.0) / 9007199254740994.0; /* (0, 1) */
    c->opt.kv_heads = rnd_int(0, 65536);
    strcpy(c->opt.attention, (rnd() & 1) ? "fused" : "naive");
    c->opt.window = rnd_int(0, 0x7fffffff);
    c->opt.sinks = rnd_int(0, 0x7fffffff);
    c->opt.cuda_graphs = rnd_int(0, 1);
    c->opt.fusion = rnd_int(0, 1);
    c->profiler.enabled = rnd_int(0, 1);
    c->profiler.metrics_every = rnd_int(0, 0x7fffffff);
    c->profiler.window_steps = rnd_int(1, 1000000);
    c->kv_cache.block_size = rnd_int(1, 1024);
    c->kv_cache.blocks = rnd_int(0, 0x7fffffff);
}

static void test_round_trip(void)
{
    gs_config c;
    gs_error err;
    char path[512], why[8192];
    gs_config_defaults(&c);
    int ok = round_trip(&c, why, sizeof why);
    tap_ok(ok, "round trip: defaults");
    if (!ok)
        tap_diag("%s", why);
    int rc = load_text(all_keys_yaml, strlen(all_keys_yaml), &c, &err, path, sizeof path);
    ok = rc == GS_OK && round_trip(&c, why, sizeof why);
    tap_ok(ok, "round trip: every key set");
    if (!ok)
        tap_diag("%s", why);

    /* Only a shape override makes model a mapping. */
    char buf[4096];
    gs_config_defaults(&c);
    gs_config_to_yaml(&c, buf, sizeof buf);
    tap_ok(strstr(buf, "model: \"gpt2-124m\"\n") != NULL && !strstr(buf, "preset"),
           "to_yaml: model is a scalar without overrides");
    c.shape.n_ctx = 77;
    gs_config_to_yaml(&c, buf, sizeof buf);
    tap_ok(strstr(buf, "model:\n  preset: \"gpt2-124m\"\n  n_ctx: 77\nformat: auto\n") != NULL,
           "to_yaml: model is a mapping with an override");

    /* snprintf semantics */
    int n = gs_config_to_yaml(&c, NULL, 0);
    char small[10];
    memset(small, 'x', sizeof small);
    int m = gs_config_to_yaml(&c, small, sizeof small);
    tap_ok(n > 100 && m == n && strlen(small) == sizeof small - 1 &&
               strncmp(small, buf, sizeof small - 1) == 0,
           "to_yaml: returns the full length and truncates like snprintf (%d bytes)", n);

    int bad = 0;
    for (int i = 0; i < 300; i++) {
        random_config(&c);
        if (!round_trip(&c, why, sizeof why)) {
            if (!bad)
                tap_diag("random config %d: %s", i, why);
            bad++;
        }
    }
    tap_ok(bad == 0, "round trip: 300 random configurations (%d failed)", bad);
}

static void test_set_and_validate(void)
{
    gs_config c, d;
    gs_error err;
    gs_config_defaults(&c);
    tap_ok(gs_config_set(&c, "workload.batch", "64", &err) == GS_OK && c.workload.batch == 64,
           "gs_config_set: workload.batch 64");
    tap_ok(gs_config_set(&c, "workload.batch", "0", &err) == GS_ERR_INPUT &&
               strcmp(err.msg, "workload.batch: expected an integer 1..4096, got \"0\"") == 0 &&
               c.workload.batch == 64,
           "gs_config_set: batch 0 refused, value kept");
    tap_ok(gs_config_set(&c, "threds", "1", &err) == GS_ERR_INPUT && strstr(err.msg, "threds"),
           "gs_config_set: unknown key");
    tap_ok(gs_config_set(&c, "optimizations.group_size", "48", &err) == GS_ERR_INPUT &&
               strstr(err.msg, "one of 32|64|128"),
           "gs_config_set: group_size 48 refused");
    tap_ok(gs_config_set(&c, "workload.batch", "010", &err) == GS_OK && c.workload.batch == 10 &&
               gs_config_set(&c, "workload.batch", "0x10", &err) == GS_ERR_INPUT,
           "gs_config_set: integers are decimal");
    tap_ok(gs_config_set(&c, "seed", "-1", &err) == GS_ERR_INPUT &&
               gs_config_set(&c, "seed", "18446744073709551616", &err) == GS_ERR_INPUT &&
               gs_config_set(&c, "seed", "+7", &err) == GS_OK && c.seed == 7,
           "gs_config_set: seed range");
    tap_ok(gs_config_set(&c, "optimizations.sparsity", "0.5", &err) == GS_ERR_INPUT &&
               gs_config_set(&c, "optimizations.sparsity", "heads:1", &err) == GS_ERR_INPUT &&
               gs_config_set(&c, "optimizations.sparsity", "unstructured:inf", &err) == GS_ERR_INPUT &&
               gs_config_set(&c, "optimizations.sparsity", "2:4:0.5", &err) == GS_ERR_INPUT &&
               gs_config_set(&c, "optimizations.sparsity", "neurons:0.999", &err) == GS_OK &&
               c.opt.sparsity.kind == GS_SPARSITY_NEURONS && c.opt.sparsity.ratio == 0.999 &&
               gs_config_set(&c, "optimizations.sparsity", "2:4", &err) == GS_OK &&
               c.opt.sparsity.kind == GS_SPARSITY_2_4 && c.opt.sparsity.ratio == 0.5 &&
               gs_config_set(&c, "optimizations.sparsity", "none", &err) == GS_OK &&
               c.opt.sparsity.kind == GS_SPARSITY_NONE,
           "gs_config_set: sparsity none, unstructured:R, 2:4, heads:R, neurons:R with 0 < R < 1");
    tap_ok(gs_config_set(&c, "optimizations.sparsity", "heads", &err) == GS_ERR_INPUT &&
               strcmp(err.msg, "optimizations.sparsity: expected none, unstructured:R, 2:4, heads:R or "
                               "neurons:R with 0 < R < 1, got \"heads\"") == 0,
           "gs_config_set: a bad sparsity says what is expected: %s", err.msg);
    tap_ok(gs_config_set(&c, "optimizations.sparsity_kind", "heads", &err) == GS_ERR_INPUT &&
               strstr(err.msg, "optimizations.sparsity_kind is gone") && strstr(err.msg, "heads:R"),
           "gs_config_set: the old sparsity_kind says where the kind went");
    tap_ok(gs_config_set(&c, "optimizations.kv_heads", "4", &err) == GS_OK && c.opt.kv_heads == 4 &&
               gs_config_set(&c, "optimizations.kv_heads", "-1", &err) == GS_ERR_INPUT,
           "gs_config_set: kv_heads >= 0");
    int nkeys;
    const gs_config_key *keys = gs_config_keys(&nkeys);
    int named = 1;
    for (int i = 0; i < nkeys; i++)
        named &= keys[i].help && *keys[i].help && gs_config_key_find(keys[i].name) == &keys[i];
    tap_ok(nkeys == 36 && named, "key table: %d keys, each found by name, each with help", nkeys);

    /* Cross-field and range checks name the YAML key, without a position. */
    struct {
        const char *what, *key, *value, *want;
    } cases[] = {
        { "sinks without a window", "optimizations.sinks", "4",
          "optimizations.sinks needs optimizations.window > 0" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gs_config_defaults(&c);
        gs_config_set(&c, cases[i].key, cases[i].value, &err);
        int rc = gs_config_validate(&c, &err);
        tap_ok(rc == GS_ERR_INPUT && strncmp(err.msg, cases[i].want, strlen(cases[i].want)) == 0,
               "validate: %s", cases[i].what);
        if (rc != GS_ERR_INPUT || strncmp(err.msg, cases[i].want, strlen(cases[i].want)))
            tap_diag("%s", err.msg);
    }
    gs_config_defaults(&c);
    c.opt.window = 8;
    c.opt.sinks = 8;
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "less than"),
           "validate: sinks must be fewer than the window");
    c.opt.sinks = 2;
    tap_ok(gs_config_validate(&c, &err) == GS_OK, "validate: window 8 with 2 sinks");
    gs_config_defaults(&c);
    c.opt.sparsity = (gs_sparsity){ GS_SPARSITY_2_4, 0.25 };
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "optimizations.sparsity"),
           "validate: 2:4 with a ratio other than 0.5 is refused");
    c.opt.sparsity = (gs_sparsity){ GS_SPARSITY_HEADS, 1.0 };
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "optimizations.sparsity"),
           "validate: heads with ratio 1 is refused");
    /* Values written into the struct directly (as the command line may). */
    gs_config_defaults(&c);
    c.opt.group_size = 48;
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT &&
               strcmp(err.msg, "optimizations.group_size: expected one of 32|64|128, got \"48\"") == 0,
           "validate: group_size 48");
    gs_config_defaults(&c);
    strcpy(c.opt.weights, "fp64");
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "optimizations.weights"),
           "validate: weights fp64");
    gs_config_defaults(&c);
    memset(c.backend, 'a', sizeof c.backend);
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "backend"),
           "validate: unterminated backend");
    gs_config_defaults(&c);
    c.workload.arrival_rate = NAN;
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "workload.arrival_rate"),
           "validate: NaN arrival_rate");
    gs_config_defaults(&c);
    c.shape.n_head = 0;
    c.shape.n_layer = -5; /* any negative is "unset" */
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "model.n_head"),
           "validate: n_head 0");
    gs_config_defaults(&c);
    c.model[0] = '\0';
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT && strstr(err.msg, "model: must not be empty"),
           "validate: empty model");
    gs_config_defaults(&c);
    d = c;
    c.threads = 2000;
    tap_ok(gs_config_validate(&c, &err) == GS_ERR_INPUT &&
               strcmp(err.msg, "threads: expected an integer 0..1024, got \"2000\"") == 0 &&
               gs_config_validate(&d, &err) == GS_OK,
           "validate: threads 2000");
}

static void test_bad_files(void)
{
    expect_bad("unknown top-level key", "model: gpt2-124m\nworkloads:\n  batch: 2\n", "2:1",
               "unknown key \"workloads\" (top-level keys: model, format, backend, seed, threads, "
               "workload, optimizations, profiler, kv_cache)");
    expect_bad("unknown nested key", "workload:\n  batch: 2\n  bacth: 3\n", "3:3",
               "unknown key \"workload.bacth\" (keys of workload: batch, prompt_len");
    expect_bad("unknown key in model", "model:\n  preset: gpt2-tiny\n  layers: 3\n", "3:3",
               "unknown key \"model.layers\"");
    expect_bad("int as a word", "seed: 3\nworkload:\n  batch: many\n", "3:10",
               "workload.batch: expected an integer 1..4096, got \"many\"");
    expect_bad("int in quotes", "workload:\n  batch: \"16\"\n", "2:10",
               "workload.batch: write 16 without quotes");
    expect_bad("int as a decimal", "threads: 2.5\n", "1:10", "threads: expected an integer 0..1024");
    expect_bad("int out of range", "workload: {batch: 5000}\n", "1:19",
               "workload.batch: expected an integer 1..4096, got \"5000\"");
    expect_bad("sparsity ratio out of range", "optimizations:\n  sparsity: heads:1.5\n", "2:13",
               "optimizations.sparsity: expected none, unstructured:R, 2:4, heads:R or neurons:R with "
               "0 < R < 1, got \"heads:1.5\"");
    expect_bad("old sparsity number", "optimizations:\n  sparsity: 0.5\n", "2:13",
               "optimizations.sparsity: expected none");
    expect_bad("old sparsity_kind", "optimizations:\n  sparsity_kind: none\n", "2:3",
               "optimizations.sparsity_kind is gone");
    expect_bad("negative float", "workload:\n  arrival_rate: -0.5\n", "2:17",
               "workload.arrival_rate: expected a number >= 0");
    expect_bad("negative seed", "seed: -1\n", "1:7",
               "seed: expected a non-negative integer below 2^64, got \"-1\"");
    expect_bad("bool garbage", "profiler:\n  enabled: maybe\n", "2:12",
               "profiler.enabled: expected yes or no");
    expect_bad("name not in the list", "optimizations:\n  weights: fp64\n", "2:12",
               "optimizations.weights: expected one of fp32|fp16|bf16|int8|int4, got \"fp64\"");
    expect_bad("bad format", "model: {preset: x, format: gguf}\n", "1:28",
               "model.format: expected one of auto|llama2c|llmc|safetensors");
    expect_bad("bad arch", "model:\n  arch: mamba\n", "2:9", "model.arch: expected one of gpt2|llama");
    expect_bad("sequence instead of mapping", "workload:\n  - batch: 2\n", "2:3",
               "workload: expected a mapping (batch, prompt_len, gen_len, requests, arrival_rate), "
               "got a sequence");
    expect_bad("sequence instead of scalar", "seed: [1, 2]\n", "1:7",
               "seed: expected a single value, got a sequence");
    expect_bad("mapping instead of scalar", "workload:\n  batch: {a: 1}\n", "2:10",
               "workload.batch: expected a single value, got a mapping");
    expect_bad("scalar instead of mapping", "profiler: on\n", "1:11",
               "profiler: expected a mapping (enabled, metrics_every, window_steps)");
    expect_bad("top level is a sequence", "- seed: 1\n", "1:1", "expected a mapping of keys");
    expect_bad("top level is a word", "hello\n", "1:1", "expected a mapping of keys");
    expect_bad("duplicate key", "seed: 1\nthreads: 2\nseed: 3\n", "3:1",
               "duplicate key \"seed\" (first given at line 1)");
    expect_bad("duplicate nested key", "kv_cache:\n  blocks: 1\n  blocks: 2\n", "3:3",
               "duplicate key \"kv_cache.blocks\"");
    expect_bad("duplicate section", "workload: {batch: 2}\nworkload: {gen_len: 2}\n", "2:1",
               "duplicate key \"workload\"");
    expect_bad("model.path and model.preset", "model:\n  preset: a\n  path: b\n", "3:3",
               "model.path sets the same thing as model.preset at line 2");
    expect_bad("format and model.format", "model: {path: m.bin, format: llmc}\nseed: 1\nformat: auto\n",
               "3:1", "format sets the same thing as model.format at line 1; give only one");
    expect_bad("model and model.preset", "model: m.bin\nmodel:\n  n_ctx: 64\n", "2:1",
               "duplicate key \"model\"");
    expect_bad("alias", "seed: &s 5\nthreads: *s\n", "2:10", "aliases (*s) are not supported");
    expect_bad("alias as a key", "&k seed: 1\n*k : 5\n", "2:1", "aliases (*k) are not supported");
    expect_bad("merge key", "workload: &b {batch: 2}\noptimizations:\n  <<: *b\n", "3:3",
               "unknown key \"optimizations.<<\"");
    expect_bad("alias of a mapping", "workload: &w {batch: 2}\noptimizations: *w\n", "2:16",
               "aliases (*w)");
    expect_bad("tag", "seed: !!int 5\n", "1:7", "tags (tag:yaml.org,2002:int) are not supported");
    expect_bad("unclosed quote", "model: \"gpt2-124m\nseed: 1\n", "3:1",
               "found unexpected end of stream (while scanning a quoted scalar that starts at 1:8)");
    expect_bad("bad indentation", "workload:\n  batch: 2\n    gen_len: 3\n", "3:12",
               "mapping values are not allowed in this context");
    expect_bad("dedent into nothing", "workload:\n    batch: 2\n  gen_len: 3\n", "3:3",
               "did not find expected key");
    expect_bad("unclosed flow mapping", "workload: {batch: 2\nseed: 1\n", "2:5",
               "did not find expected ',' or '}'");
    expect_bad("tab indentation", "workload:\n\tbatch: 2\n", "2:1",
               "found character that cannot start any token; indent with spaces");
    char longer[GS_CONFIG_PATH + 64];
    snprintf(longer, sizeof longer, "threads: 1\nmodel: %0*d\n", GS_CONFIG_PATH, 0);
    expect_bad("over-long model path", longer, "2:8", "model: 1024 bytes long, at most 1023 allowed");
    char longname[GS_CONFIG_STR + 64];
    snprintf(longname, sizeof longname, "backend: %0*d\n", GS_CONFIG_STR + 10, 0);
    expect_bad("over-long backend", longname, "1:10", "backend: expected one of auto|cpu|cuda, got \"000");
    expect_bad("over-long key", "workload:\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 1\n",
               "2:3", "unknown key \"workload.aaaaaaaa");
    expect_bad("two documents", "seed: 1\n---\nseed: 2\n", "2:1", "a second document");
    expect_bad("two documents after ...", "seed: 1\n...\nseed: 2\n", "3:1",
               "did not find expected <document start>");
    expect_bad("two documents, both bad", "seed: x\n---\nseed: y\n", "1:7", "seed: expected");
    expect_bad("NaN float", "workload:\n  arrival_rate: nan\n", "2:17",
               "workload.arrival_rate: expected a number >= 0, got \"nan\"");
    expect_bad("YAML .nan", "optimizations: {sparsity: .nan}\n", "1:27", "optimizations.sparsity");
    expect_bad("infinite float", "workload:\n  arrival_rate: 1e999\n", "2:17", "got \"1e999\"");
    expect_bad("integer overflow", "threads: 99999999999999999999\n", "1:10",
               "threads: expected an integer 0..1024, got \"99999999999999999999\"");
    expect_bad("seed overflow", "seed: 99999999999999999999\n", "1:7", "seed: expected a non-negative");
    expect_bad("key without a value", "seed:\nthreads: 1\n", "1:6",
               "seed: expected a non-negative integer below 2^64, got nothing");
    expect_bad("empty model", "model: \"\"\n", "1:8", "model: must not be empty");
    expect_bad("null model", "model: ~\n", "1:8", "model: must not be empty");
    expect_bad("NUL in a string", "model: \"a\\0b\"\n", "1:8", "contains a NUL");
    expect_bad("shape 0", "model:\n  n_layer: 0\n", "2:12", "model.n_layer: expected an integer 1..512");
    expect_bad("bad UTF-8", "seed: 1\nmodel: ab\xff\n", "2:10", "invalid");
    expect_bad("bad key after good ones leaves c unchanged", "seed: 99\nthreads: 4\nbogus: 1\n", "3:1",
               "unknown key");

    /* A missing file. */
    gs_config c;
    gs_error err;
    gs_config_defaults(&c);
    int rc = gs_config_load_yaml(&c, "/nonexistent/dir/cfg.yaml", &err);
    tap_ok(rc == GS_ERR_INPUT &&
               strcmp(err.msg, "/nonexistent/dir/cfg.yaml: No such file or directory") == 0,
           "missing file: %s", err.msg);
    rc = gs_config_load_yaml(&c, "/", &err);
    tap_ok(rc == GS_ERR_INPUT && strcmp(err.msg, "/: Is a directory") == 0, "a directory: %s",
           err.msg);
}

/* Random byte mutations of a good file: never a crash, only OK or INPUT, and
 * whatever loads still round-trips. */
static void test_fuzz(void)
{
    static const char base[] =
        "model:\n  preset: gpt2-tiny\n  n_layer: 2\n  arch: gpt2\n"
        "backend: cpu\nseed: 7\nthreads: 2\n"
        "workload: {batch: 4, prompt_len: 8, gen_len: 8, arrival_rate: 0.5}\n"
        "optimizations:\n  weights: int4\n  group_size: 32\n  sparsity: \"2:4\"\n"
        "  kv_heads: 2\n  window: 16\n  sinks: 2\n  cuda_graphs: no\n"
        "profiler:\n  enabled: yes\n  window_steps: 10\n"
        "kv_cache:\n  block_size: 16\n";
    static const char interesting[] = ":-{}[],#&*!|>'\"\t\n \\%@`?~.0123456789e";
    int bad_status = 0, bad_msg = 0, bad_trip = 0, n_ok = 0;
    char text[sizeof base + 64], path[512], why[8192];
    for (int iter = 0; iter < 1000; iter++) {
        size_t len = sizeof base - 1;
        memcpy(text, base, len);
        int muts = rnd_int(1, 3);
        for (int m = 0; m < muts && len > 0; m++) {
            size_t pos = (size_t)(rnd() % len);
            int op = rnd_int(0, 3);
            char ch = (rnd() & 3) ? interesting[rnd() % (sizeof interesting - 1)] : (char)rnd();
            if (op == 0) {
                text[pos] = ch;
            } else if (op == 1 && len + 1 < sizeof text) {
                memmove(text + pos + 1, text + pos, len - pos);
                text[pos] = ch;
                len++;
            } else if (op == 2 && len > 1) {
                memmove(text + pos, text + pos + 1, len - pos - 1);
                len--;
            } else {
                len = pos; /* truncate */
            }
        }
        gs_config c;
        gs_error err;
        int rc = load_text(text, len, &c, &err, path, sizeof path);
        if (rc != GS_OK && rc != GS_ERR_INPUT) {
            bad_status++;
            tap_diag("mutation %d: status %d: %s", iter, rc, err.msg);
            continue;
        }
        if (rc == GS_ERR_INPUT) {
            /* "PATH:" then either "L:C: " or a message about the file */
            size_t pl = strlen(path);
            if (strncmp(err.msg, path, pl) != 0 || err.msg[pl] != ':')
                bad_msg++;
            continue;
        }
        n_ok++;
        gs_config_validate(&c, &err); /* must not crash whatever it says */
        if (!round_trip(&c, why, sizeof why)) {
            if (!bad_trip)
                tap_diag("mutation %d does not round-trip: %s", iter, why);
            bad_trip++;
        }
    }
    tap_ok(bad_status == 0, "fuzz: 1000 mutations give GS_OK or GS_ERR_INPUT (%d loaded)", n_ok);
    tap_ok(bad_msg == 0, "fuzz: every error names the file (%d did not)", bad_msg);
    tap_ok(bad_trip == 0, "fuzz: every mutation that loads round-trips (%d did not)", bad_trip);
}

int main(void)
{
    /* GS_FUZZ_SEED varies the random configurations and mutations. */
    const char *seed = getenv("GS_FUZZ_SEED");
    if (seed && strtoull(seed, NULL, 10))
        rng_state = strtoull(seed, NULL, 10);
    test_defaults();
    test_examples();
    test_all_keys();
    test_round_trip();
    test_set_and_validate();
    test_bad_files();
    test_fuzz();
    return tap_done();
}
