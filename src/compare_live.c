/* compare_live.c - per-variant samples for the live A/B comparison (see the header). */
#include "compare_live.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_prefix[GS_CMP_NKIND] = {"cmp.step", "cmp.tps", "cmp.prefill", "cmp.layer", "cmp.op:",
                                                      "cmp.kernel:"};

const char *gs_cmp_kind_prefix(int kind) { return kind >= 0 && kind < GS_CMP_NKIND ? kind_prefix[kind] : "?"; }

int gs_cmp_parse_name(const char *c, const char **name)
{
    if (!c || strncmp(c, GS_CMP_PREFIX, 4))
        return -1;
    for (int k = 0; k < GS_CMP_NKIND; k++) {
        size_t n = strlen(kind_prefix[k]);
        int named = kind_prefix[k][n - 1] == ':';
        if (named ? !strncmp(c, kind_prefix[k], n) && c[n] : !strcmp(c, kind_prefix[k])) {
            if (name)
                *name = named ? c + n : c + 4;
            return k;
        }
    }
    return -1;
}

int gs_cmp_samples_init(gs_cmp_samples *s, int variant)
{
    memset(s, 0, sizeof *s);
    s->variant = variant;
    s->kstep = -1;
    s->nodes = calloc(GS_CMP_MAX_NODES, sizeof *s->nodes);
    s->hash = calloc(GS_CMP_HASH, sizeof *s->hash);
    if (!s->nodes || !s->hash) {
        gs_cmp_samples_free(s);
        return -1;
    }
    /* The fixed nodes first, in a known order. */
    static const int fixed[] = {GS_CMP_STEP, GS_CMP_TPS, GS_CMP_PREFILL};
    for (int i = 0; i < 3; i++) {
        gs_cmp_node *n = &s->nodes[s->n_nodes++];
        n->kind = (uint8_t)fixed[i];
        n->layer = -1;
        n->sid = GS_STORE_NO_ID;
        snprintf(n->name, sizeof n->name, "%s", kind_prefix[fixed[i]] + 4);
    }
    return 0;
}

void gs_cmp_samples_free(gs_cmp_samples *s)
{
    free(s->nodes);
    free(s->hash);
    memset(s, 0, sizeof *s);
    s->kstep = -1;
}

void gs_cmp_samples_move(gs_cmp_samples *dst, gs_cmp_samples *src)
{
    if (dst == src)
        return;
    gs_cmp_samples_free(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
    src->kstep = -1;
}

static uint32_t node_hash(int kind, const char *key, uint32_t kid, int layer)
{
    uint64_t h = (uint64_t)(uintptr_t)key ^ ((uint64_t)kid << 20) ^ ((uint64_t)(uint32_t)layer << 40) ^ (uint64_t)kind;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & (GS_CMP_HASH - 1);
}

static int node_find(gs_cmp_samples *s, int kind, const char *key, const char *name, uint32_t kid, int layer)
{
    /* Every range of every step looks its node up: a hash on the name's
     * pointer (a literal), the layer and the kind. */
    uint32_t h = node_hash(kind, key, kid, layer);
    for (;;) {
        int i = s->hash[h] - 1;
        if (i < 0)
            break;
        gs_cmp_node *n = &s->nodes[i];
        if (n->kind == kind && n->layer == layer && n->key == key && n->kernel_id == kid)
            return i;
        h = (h + 1) & (GS_CMP_HASH - 1);
    }
    if (s->n_nodes >= GS_CMP_MAX_NODES)
        return -1;
    gs_cmp_node *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->layer = layer;
    n->key = key;
    n->kernel_id = kid;
    n->sid = GS_STORE_NO_ID;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "?");
    s->hash[h] = s->n_nodes + 1;
    return s->n_nodes++;
}

static void add(gs_cmp_samples *s, int kind, const char *key, const char *name, uint32_t kid, int layer, double v)
{
    int i = node_find(s, kind, key, name, kid, layer);
    if (i < 0)
        return;
    s->nodes[i].acc += v;
    s->nodes[i].touched = 1;
}

static void sink_begin(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    gs_cmp_samples *s = ctx;
    (void)level, (void)name, (void)layer, (void)id;
    if (s->depth < GS_RANGES_MAX_DEPTH)
        s->open_ns[s->depth] = t_ns;
    s->depth++;
}

static void sink_end(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    gs_cmp_samples *s = ctx;
    (void)id;
    if (s->depth <= 0)
        return;
    s->depth--;
    if (s->depth >= GS_RANGES_MAX_DEPTH || !s->nodes)
        return;
    double ns = (double)(t_ns - s->open_ns[s->depth]);
    if (level == GS_RANGE_LAYER) {
        add(s, GS_CMP_LAYER, name, name, 0, layer, ns);
    } else if (level == GS_RANGE_OP) {
        add(s, GS_CMP_OP, name, name, 0, layer, ns);
        add(s, GS_CMP_OP, name, name, 0, GS_CMP_ALL_LAYERS, ns);
    }
}

gs_range_sink gs_cmp_samples_sink(gs_cmp_samples *s)
{
    gs_range_sink k = {sink_begin, sink_end, s};
    return k;
}

static void push(gs_cmp_node *n, double v)
{
    n->ring[n->at] = v;
    n->at = (n->at + 1) % GS_CMP_RING;
    if (n->n < GS_CMP_RING)
        n->n++;
}

void gs_cmp_samples_step_end(gs_cmp_samples *s, int64_t step, uint64_t step_ns, int keep, int prefill,
                             int decode_tokens)
{
    if (!s->nodes)
        return;
    s->depth = 0;
    if (keep && prefill) {
        push(&s->nodes[GS_CMP_PREFILL], (double)step_ns);
    } else if (keep && step_ns > 0) {
        push(&s->nodes[GS_CMP_STEP], (double)step_ns);
        push(&s->nodes[GS_CMP_TPS], decode_tokens / ((double)step_ns * 1e-9));
        for (int i = 0; i < s->n_nodes; i++) {
            gs_cmp_node *n = &s->nodes[i];
            if (n->touched && (n->kind == GS_CMP_LAYER || n->kind == GS_CMP_OP))
                push(n, n->acc);
        }
        s->kept[s->at_kept] = step;
        s->at_kept = (s->at_kept + 1) % (GS_CMP_RING * 2);
        if (s->n_kept < GS_CMP_RING * 2)
            s->n_kept++;
    }
    for (int i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].kind != GS_CMP_KERNEL) {
            s->nodes[i].acc = 0;
            s->nodes[i].touched = 0;
        }
}

static int step_kept(const gs_cmp_samples *s, int64_t step)
{
    for (int i = 0; i < s->n_kept; i++)
        if (s->kept[i] == step)
            return 1;
    return 0;
}

static void kernels_commit(gs_cmp_samples *s)
{
    for (int i = 0; i < s->n_nodes; i++) {
        gs_cmp_node *n = &s->nodes[i];
        if (n->kind != GS_CMP_KERNEL)
            continue;
        if (n->touched && s->kstep >= 0 && step_kept(s, s->kstep))
            push(n, n->acc);
        n->acc = 0;
        n->touched = 0;
    }
}

typedef struct scan_ctx {
    gs_cmp_samples *s;
    gs_event_store *store;
} scan_ctx;

static int scan_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    scan_ctx *c = ctx;
    gs_cmp_samples *s = c->s;
    (void)index;
    if (ev->kind != GS_EV_KERNEL || ev->step < 0 || ev->step < s->kstep)
        return 0; /* late records of a step already committed are left out */
    if (ev->step > s->kstep) {
        kernels_commit(s);
        s->kstep = ev->step;
    }
    if (!step_kept(s, ev->step))
        return 0;
    int i = node_find(s, GS_CMP_KERNEL, NULL, gs_store_string(c->store, ev->name), ev->name, GS_CMP_ALL_LAYERS);
    if (i >= 0) {
        s->nodes[i].acc += (double)ev->dur_ns;
        s->nodes[i].touched = 1;
    }
    return 0;
}

void gs_cmp_samples_scan_kernels(gs_cmp_samples *s, gs_event_store *store)
{
    if (!s->nodes)
        return;
    uint64_t count = gs_store_count(store), first = gs_store_first(store);
    if (s->kscan < first)
        s->kscan = first;
    if (s->kscan < count) {
        scan_ctx c = {s, store};
        gs_store_visit(store, s->kscan, count, scan_visit, &c);
    }
    s->kscan = count;
}

int gs_cmp_samples_summary(const gs_cmp_samples *s, int i, gs_stat_summary *out)
{
    if (i < 0 || i >= s->n_nodes) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    const gs_cmp_node *n = &s->nodes[i];
    return gs_stats_summarize(n->ring, n->n, out);
}

static void put(gs_event_store *store, uint32_t name, int layer, int variant, int stat, double v, int64_t step,
                uint64_t t)
{
    gs_event ev = {0};
    ev.kind = GS_EV_COUNTER;
    ev.level = (uint8_t)stat;
    ev.name = name;
    ev.layer = layer;
    ev.step = step;
    ev.t_ns = t;
    ev.aux = (uint64_t)variant;
    ev.value = v;
    gs_store_append(store, &ev);
}

void gs_cmp_samples_emit(gs_cmp_samples *s, gs_event_store *store, int64_t step, uint64_t t_ns)
{
    if (!s->nodes || !s->variant)
        return;
    for (int i = 0; i < s->n_nodes; i++) {
        gs_cmp_node *n = &s->nodes[i];
        if (!n->n)
            continue;
        if (n->sid == GS_STORE_NO_ID) {
            char name[96];
            if (kind_prefix[n->kind][strlen(kind_prefix[n->kind]) - 1] == ':')
                snprintf(name, sizeof name, "%s%s", kind_prefix[n->kind], n->name);
            else
                snprintf(name, sizeof name, "%s", kind_prefix[n->kind]);
            n->sid = gs_store_intern(store, name);
            if (n->sid == GS_STORE_NO_ID)
                continue;
        }
        gs_stat_summary st;
        if (gs_stats_summarize(n->ring, n->n, &st))
            continue;
        put(store, n->sid, n->layer, s->variant, GS_CMP_MEDIAN, st.median, step, t_ns);
        put(store, n->sid, n->layer, s->variant, GS_CMP_LO, st.lo, step, t_ns);
        put(store, n->sid, n->layer, s->variant, GS_CMP_HI, st.hi, step, t_ns);
        put(store, n->sid, n->layer, s->variant, GS_CMP_N, (double)st.n, step, t_ns);
    }
}

void gs_cmp_emit_pin(gs_event_store *store, int pinned, int64_t step, uint64_t t_ns)
{
    uint32_t id = gs_store_intern(store, GS_CMP_PIN);
    if (id != GS_STORE_NO_ID)
        put(store, id, -1, 0, 0, pinned, step, t_ns);
}

gs_cmp_shade gs_cmp_shade_of(const gs_stat_summary *a, const gs_stat_summary *b, int higher_better)
{
    gs_stat_compare c;
    gs_stats_compare(a, b, higher_better, &c);
    return c.verdict == GS_VERDICT_B ? GS_CMP_FASTER : c.verdict == GS_VERDICT_A ? GS_CMP_SLOWER : GS_CMP_SAME;
}

const char *gs_cmp_shade_name(gs_cmp_shade s)
{
    return s == GS_CMP_FASTER ? "faster" : s == GS_CMP_SLOWER ? "slower" : "noise";
}

void gs_cmp_sort_by_delta(int *idx, int n, const double *delta)
{
    /* insertion sort: a few hundred rows at most, and stable */
    for (int a = 1; a < n; a++) {
        int v = idx[a], b = a;
        while (b > 0 && fabs(delta[idx[b - 1]]) < fabs(delta[v])) {
            idx[b] = idx[b - 1];
            b--;
        }
        idx[b] = v;
    }
}
