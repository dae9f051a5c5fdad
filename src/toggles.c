/* toggles.c - stepping through the optimization toggles (see toggles.h). */
#include "toggles.h"

#include "prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const gs_toggle toggles[GS_TG_COUNT] = {
    {"weights", "optimizations.weights", "precision of the weight matrices"},
    {"group_size", "optimizations.group_size", "int4 group size"},
    {"kv", "optimizations.kv", "KV cache precision"},
    {"sparsity", "optimizations.sparsity", "pruning: kind and ratio"},
    {"attention", "optimizations.attention", "attention kernel"},
    {"kv_heads", "optimizations.kv_heads", "KV heads after conversion (divisors of n_head)"},
    {"window", "optimizations.window", "sliding attention window, 0 = off"},
    {"sinks", "optimizations.sinks", "sink tokens kept beside the window"},
    {"cuda_graphs", "optimizations.cuda_graphs", "decode steps as CUDA graphs"},
    {"fusion", "optimizations.fusion", "fused kernels"},
};

/* The numeric toggles' steps (window and sinks; kv_heads uses divisors). */
static const int window_steps[] = {0, 64, 128, 256, 512, 1024, 2048, 4096};
static const int sink_steps[] = {0, 1, 2, 4, 8, 16, 32};
/* Sparsity as one list: kind and ratio together. */
static const char *const sparsity_steps[] = {
    "none", "unstructured:0.25", "unstructured:0.5", "unstructured:0.75", "2:4",
    "heads:0.25", "heads:0.5", "heads:0.75", "neurons:0.25", "neurons:0.5", "neurons:0.75",
};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

const gs_toggle *gs_toggle_at(int i) { return i >= 0 && i < GS_TG_COUNT ? &toggles[i] : NULL; }

int gs_toggle_available(int i)
{
    return i >= 0 && i < GS_TG_COUNT && gs_config_key_find(toggles[i].key) != NULL;
}

/* Any key's value as text, through the key table. */
static void key_text(const gs_config *c, const gs_config_key *k, char *buf, int cap)
{
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case GS_KEY_INT:
    case GS_KEY_ENUM:
        snprintf(buf, (size_t)cap, "%d", *(const int *)field);
        break;
    case GS_KEY_BOOL:
        snprintf(buf, (size_t)cap, "%s", *(const int *)field ? "on" : "off");
        break;
    case GS_KEY_FLOAT:
        snprintf(buf, (size_t)cap, "%g", *(const double *)field);
        break;
    case GS_KEY_U64:
        snprintf(buf, (size_t)cap, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case GS_KEY_NAME:
    case GS_KEY_TEXT:
        snprintf(buf, (size_t)cap, "%s", field);
        break;
    case GS_KEY_SPARSITY:
        gs_sparsity_format((const gs_sparsity *)field, buf, (size_t)cap);
        break;
    default:
        snprintf(buf, (size_t)cap, "?");
        break;
    }
}

void gs_toggle_value(const gs_config *c, int i, char *buf, int cap)
{
    if (cap <= 0)
        return;
    if (!gs_toggle_available(i)) {
        snprintf(buf, (size_t)cap, "n/a");
        return;
    }
    key_text(c, gs_config_key_find(toggles[i].key), buf, cap);
}

static int set_sparsity(gs_config *c, const char *v, gs_error *err)
{
    return gs_config_set(c, "optimizations.sparsity", v, err);
}

/* Position of the first step >= v (dir > 0: the next one after v). */
static int next_int(const int *steps, int n, int v, int dir)
{
    if (dir > 0) {
        for (int i = 0; i < n; i++)
            if (steps[i] > v)
                return steps[i];
        return steps[0];
    }
    for (int i = n - 1; i >= 0; i--)
        if (steps[i] < v)
            return steps[i];
    return steps[n - 1];
}

/* The next entry of a '|'-separated choice list after cur (wrapping). */
static void next_choice(const char *choices, const char *cur, int dir, char *out, int cap)
{
    char items[16][32];
    int n = 0;
    for (const char *p = choices; *p && n < 16;) {
        const char *e = strchr(p, '|');
        int len = e ? (int)(e - p) : (int)strlen(p);
        snprintf(items[n++], sizeof items[0], "%.*s", len, p);
        p = e ? e + 1 : p + len;
    }
    int at = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(items[i], cur))
            at = i;
    if (!n) {
        snprintf(out, (size_t)cap, "%.*s", cap - 1, cur);
        return;
    }
    int nx = at < 0 ? 0 : (at + (dir > 0 ? 1 : n - 1)) % n;
    snprintf(out, (size_t)cap, "%.31s", items[nx]);
}

int gs_toggle_step(gs_config *c, int i, int dir, int n_head, gs_error *err)
{
    if (i < 0 || i >= GS_TG_COUNT)
        return gs_error_set(err, GS_ERR_INPUT, "no such toggle");
    if (!gs_toggle_available(i))
        return gs_error_set(err, GS_ERR_INPUT, "%s: not available in this build", toggles[i].key);
    const gs_config_key *k = gs_config_key_find(toggles[i].key);
    char cur[64], nx[64];
    gs_toggle_value(c, i, cur, sizeof cur);
    switch (i) {
    case GS_TG_SPARSITY: {
        int at = -1;
        for (int j = 0; j < N_OF(sparsity_steps); j++)
            if (!strcmp(sparsity_steps[j], cur))
                at = j;
        int nn = N_OF(sparsity_steps);
        int j = at < 0 ? 0 : (at + (dir > 0 ? 1 : nn - 1)) % nn;
        return set_sparsity(c, sparsity_steps[j], err);
    }
    case GS_TG_WINDOW:
        snprintf(nx, sizeof nx, "%d", next_int(window_steps, N_OF(window_steps), atoi(cur), dir));
        break;
    case GS_TG_SINKS:
        snprintf(nx, sizeof nx, "%d", next_int(sink_steps, N_OF(sink_steps), atoi(cur), dir));
        break;
    case GS_TG_KV_HEADS: {
        /* The divisors of n_head, and 0 ("as the model") when the key allows it. */
        int steps[64], n = 0;
        if (k->type == GS_KEY_INT && k->imin <= 0)
            steps[n++] = 0;
        for (int d = 1; d <= n_head && n < 64; d++)
            if (n_head % d == 0)
                steps[n++] = d;
        if (!n)
            return gs_error_set(err, GS_ERR_INPUT, "%s: the model's head count is unknown", toggles[i].key);
        snprintf(nx, sizeof nx, "%d", next_int(steps, n, atoi(cur), dir));
        break;
    }
    default:
        if (k->type == GS_KEY_BOOL)
            snprintf(nx, sizeof nx, "%s", strcmp(cur, "on") ? "on" : "off");
        else if (k->choices)
            next_choice(k->choices, cur, dir, nx, sizeof nx);
        else
            return gs_error_set(err, GS_ERR_INPUT, "%s: no steps defined", toggles[i].key);
        break;
    }
    return gs_config_set(c, toggles[i].key, nx, err);
}

int gs_toggle_validate(const gs_config *c, int n_head, gs_error *err)
{
    int rc = gs_config_validate(c, err);
    if (rc)
        return rc;
    if (gs_toggle_available(GS_TG_KV_HEADS) && n_head > 0) {
        char v[32];
        gs_toggle_value(c, GS_TG_KV_HEADS, v, sizeof v);
        int kvh = atoi(v);
        if (kvh > 0 && (kvh > n_head || n_head % kvh))
            return gs_error_set(err, GS_ERR_INPUT, "optimizations.kv_heads %d must divide the model's %d heads", kvh,
                                n_head);
    }
    return GS_OK;
}

void gs_toggle_summary(const gs_config *c, char *buf, int cap)
{
    if (cap <= 0)
        return;
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < GS_TG_COUNT && n < cap; i++) {
        if (!gs_toggle_available(i))
            continue;
        char v[64];
        gs_toggle_value(c, i, v, sizeof v);
        n += snprintf(buf + n, (size_t)(cap - n), "%s%s=%s", n ? " " : "", toggles[i].label, v);
    }
}

void gs_toggle_diff(const gs_config *from, const gs_config *to, char *buf, int cap)
{
    if (cap <= 0)
        return;
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < GS_TG_COUNT && n < cap; i++) {
        if (!gs_toggle_available(i))
            continue;
        char a[64], b[64];
        gs_toggle_value(from, i, a, sizeof a);
        gs_toggle_value(to, i, b, sizeof b);
        if (strcmp(a, b))
            n += snprintf(buf + n, (size_t)(cap - n), "%s%s=%s", n ? " " : "", toggles[i].label, b);
    }
}

static const char *const vstat_names[GS_VS_COUNT] = {
    "variant.decode_ms", "variant.decode_tokens_per_s", "variant.prefill_ms", "variant.weight_bytes",
    "variant.kv_bytes_per_token", "variant.peak_bytes", "variant.kl", "variant.top1", "variant.perplexity",
    "variant.first_step",
};

const char *gs_vstat_name(int i) { return i >= 0 && i < GS_VS_COUNT ? vstat_names[i] : "?"; }

int gs_vstat_find(const char *name)
{
    for (int i = 0; i < GS_VS_COUNT; i++)
        if (!strcmp(vstat_names[i], name))
            return i;
    return -1;
}
