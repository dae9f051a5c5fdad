/* synth_trace.c - see synth_trace.h. The shapes are gpt2-124m's at batch 1
 * decode on a GPU: about 300 events per step, 360 on a metrics step. */
#include "synth_trace.h"

#include <string.h>

typedef struct kdef {
    const char *name;
    uint32_t grid[3];
    uint16_t block[3];
    uint16_t registers;
    uint32_t shared_bytes;
    uint32_t dur_ns;      /* typical device time */
    uint32_t dram_bytes;  /* typical DRAM bytes read */
    int side_stream;      /* 1: runs on the second stream when there is one */
} kdef;

typedef struct opdef {
    const char *name;
    kdef k[2];
    int n_k;
} opdef;

static const opdef layer_ops[] = {
    {"ln_1", {{"layernorm_kernel", {1, 1, 1}, {256, 1, 1}, 32, 0, 3000, 6144, 0}}, 1},
    {"qkv", {{"gemv_f16_kernel", {576, 1, 1}, {128, 1, 1}, 40, 0, 9000, 3538944, 0}}, 1},
    {"attention",
     {{"flash_decode_kernel", {12, 1, 8}, {128, 1, 1}, 96, 16384, 12000, 1572864, 0},
      {"kv_append_kernel", {12, 1, 1}, {64, 1, 1}, 24, 0, 2000, 6144, 1}},
     2},
    {"attn_proj", {{"gemv_f16_kernel", {192, 1, 1}, {128, 1, 1}, 40, 0, 4000, 1179648, 0}}, 1},
    {"residual_1", {{"residual_add_kernel", {3, 1, 1}, {256, 1, 1}, 16, 0, 2000, 6144, 0}}, 1},
    {"ln_2", {{"layernorm_kernel", {1, 1, 1}, {256, 1, 1}, 32, 0, 3000, 6144, 0}}, 1},
    {"mlp_fc", {{"gemv_f16_kernel", {768, 1, 1}, {128, 1, 1}, 40, 0, 14000, 4718592, 0}}, 1},
    {"gelu", {{"gelu_kernel", {12, 1, 1}, {256, 1, 1}, 18, 0, 2000, 12288, 0}}, 1},
    {"mlp_proj", {{"gemv_f16_kernel", {192, 1, 1}, {128, 1, 1}, 40, 0, 13000, 4718592, 0}}, 1},
    {"residual_2", {{"residual_add_kernel", {3, 1, 1}, {256, 1, 1}, 16, 0, 2000, 6144, 0}}, 1},
};
#define N_LAYER_OPS (int)(sizeof layer_ops / sizeof layer_ops[0])

static const kdef k_embed = {"embedding_kernel", {3, 1, 1}, {256, 1, 1}, 20, 0, 2000, 6144, 0};
static const kdef k_head = {"sgemm_128x64_nn", {393, 1, 1}, {256, 1, 1}, 128, 33280, 60000, 77070336, 0};
static const kdef k_argmax = {"argmax_kernel", {1, 1, 1}, {1024, 1, 1}, 30, 8192, 8000, 201028, 0};
static const uint32_t stream_ids[4] = {7, 13, 14, 15};

typedef struct gen {
    gs_event_store *s;
    const gs_synth_opts *o;
    uint64_t rng;
    uint64_t t;               /* host clock */
    uint64_t dev[4];          /* per stream: when its last record ends */
    uint64_t next_range, next_corr;
    int64_t step;
    int metrics;              /* this step samples metrics */
    gs_event pending[1024];   /* device records of the step, appended after it */
    int n_pending;
    int failed;
} gen;

static uint32_t rnd(gen *g, uint32_t n)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return (uint32_t)(g->rng % n);
}

/* d scaled by a factor in [0.85, 1.35): timings are never exactly periodic. */
static uint64_t jitter(gen *g, uint64_t d) { return d * (850 + rnd(g, 500)) / 1000; }

static void append(gen *g, const gs_event *ev)
{
    if (gs_store_append(g->s, ev))
        g->failed = 1;
}

static uint32_t name(gen *g, const char *str)
{
    uint32_t id = gs_store_intern(g->s, str);
    if (id == GS_STORE_NO_ID)
        g->failed = 1;
    return id;
}

static void range(gen *g, int level, const char *nm, int layer, uint64_t id, uint64_t t0)
{
    gs_event ev = {0};
    ev.kind = GS_EV_RANGE;
    ev.level = (uint8_t)level;
    ev.name = name(g, nm);
    ev.layer = layer;
    ev.track = GS_TRACK_HOST;
    ev.step = g->step;
    ev.t_ns = t0;
    ev.dur_ns = g->t - t0;
    ev.aux = id;
    append(g, &ev);
    /* The host clock always moves between two ranges: no range ends exactly
     * where the next begins (a consumer adding ts + dur in floating point
     * would see them overlap). */
    g->t += 100;
}

static void metric(gen *g, const char *nm, int scope, uint64_t corr, uint64_t range_id, uint64_t t, double v)
{
    gs_event ev = {0};
    ev.kind = GS_EV_METRIC;
    ev.level = (uint8_t)scope;
    ev.name = name(g, nm);
    ev.layer = -1;
    ev.track = GS_TRACK_HOST;
    ev.step = g->step;
    ev.t_ns = t;
    ev.aux = corr;
    ev.range_id = range_id;
    ev.value = v;
    if (g->n_pending < (int)(sizeof g->pending / sizeof g->pending[0]))
        g->pending[g->n_pending++] = ev;
}

/* A device record launched now from range op_id: starts after the launch
 * latency once its stream is free. */
static void device(gen *g, int kind, int level, const char *nm, const kdef *k, int layer, uint64_t op_id,
                   uint64_t dur, double bytes)
{
    int si = k && k->side_stream && g->o->streams > 1 ? 1 : 0;
    gs_event ev = {0};
    ev.kind = (uint8_t)kind;
    ev.level = (uint8_t)level;
    ev.name = name(g, k ? k->name : nm);
    ev.layer = layer;
    ev.track = GS_TRACK_STREAM0 + stream_ids[si];
    ev.step = g->step;
    uint64_t start = g->t + 2500 + rnd(g, 1500);
    if (start < g->dev[si] + 300)
        start = g->dev[si] + 300 + rnd(g, 200);
    ev.t_ns = start;
    ev.dur_ns = jitter(g, dur);
    g->dev[si] = start + ev.dur_ns;
    ev.aux = ++g->next_corr;
    ev.range_id = op_id;
    ev.value = bytes;
    if (k)
        ev.u.launch = (gs_event_launch){{k->grid[0], k->grid[1], k->grid[2]},
                                        {k->block[0], k->block[1], k->block[2]},
                                        k->registers,
                                        k->shared_bytes};
    if (g->n_pending < (int)(sizeof g->pending / sizeof g->pending[0]))
        g->pending[g->n_pending++] = ev;
    if (k && g->metrics) {
        double rd = (double)jitter(g, k->dram_bytes);
        metric(g, "dram__bytes_read.sum", GS_METRIC_KERNEL, ev.aux, op_id, start, rd);
        metric(g, "dram__bytes_write.sum", GS_METRIC_KERNEL, ev.aux, op_id, start, (double)(k->dram_bytes / 64));
    }
    g->t += jitter(g, 3500); /* the launch call's host cost */
}

static void kernel(gen *g, const kdef *k, int layer, uint64_t op_id)
{
    device(g, GS_EV_KERNEL, 0, NULL, k, layer, op_id, k->dur_ns, 0);
}

static void counter(gen *g, const char *nm, double v)
{
    gs_event ev = {0};
    ev.kind = GS_EV_COUNTER;
    ev.name = name(g, nm);
    ev.layer = -1;
    ev.track = GS_TRACK_HOST;
    ev.step = g->step;
    ev.t_ns = g->t;
    ev.value = v;
    append(g, &ev);
}

static void marker(gen *g, const char *nm, double v)
{
    gs_event ev = {0};
    ev.kind = GS_EV_MARKER;
    ev.name = name(g, nm);
    ev.layer = -1;
    ev.track = GS_TRACK_HOST;
    ev.step = g->step;
    ev.t_ns = g->t;
    ev.value = v;
    append(g, &ev);
}

static void kv_snapshot(gen *g)
{
    uint32_t total = (uint32_t)(g->o->kv_blocks > 4 ? g->o->kv_blocks : 4);
    uint32_t per_seq = 1 + (uint32_t)(g->step % 64) * (total / 4 - 1) / 64; /* sequences grow, then restart */
    gs_event ev = {0};
    ev.kind = GS_EV_KV_BLOCKS;
    ev.name = name(g, "kv.blocks");
    ev.layer = -1;
    ev.track = GS_TRACK_HOST;
    ev.step = g->step;
    ev.t_ns = g->t;
    uint32_t b = 0;
    for (int q = 0; q < 4; q++) {
        ev.u.kv = (gs_event_kv){b, per_seq, (int32_t)(g->step / 64 * 4 + q), total};
        append(g, &ev);
        b += per_seq;
    }
    if (b < total) {
        ev.u.kv = (gs_event_kv){b, total - b, -1, total};
        append(g, &ev);
    }
}

static void one_step(gen *g)
{
    g->step++;
    g->metrics = g->o->metrics_every > 0 && g->step % g->o->metrics_every == 0;
    g->n_pending = 0;
    uint64_t step_t = g->t, step_id = ++g->next_range;

    uint64_t op_t = g->t, op_id = ++g->next_range;
    device(g, GS_EV_MEMCPY, GS_COPY_HTOD, "memcpy HtoD", NULL, -1, op_id, 1500, 4);
    if (g->step % 16 == 0)
        device(g, GS_EV_MEMSET, 0, "memset", NULL, -1, op_id, 1200, 65536);
    kernel(g, &k_embed, -1, op_id);
    range(g, GS_RANGE_OP, "embedding", -1, op_id, op_t);

    for (int l = 0; l < g->o->layers; l++) {
        uint64_t layer_t = g->t, layer_id = ++g->next_range;
        for (int o = 0; o < N_LAYER_OPS; o++) {
            op_t = g->t;
            op_id = ++g->next_range;
            g->t += jitter(g, 800);
            for (int k = 0; k < layer_ops[o].n_k; k++)
                kernel(g, &layer_ops[o].k[k], l, op_id);
            g->t += jitter(g, 400);
            range(g, GS_RANGE_OP, layer_ops[o].name, l, op_id, op_t);
            g->t += 200;
        }
        range(g, GS_RANGE_LAYER, "layer", l, layer_id, layer_t);
    }

    op_t = g->t;
    op_id = ++g->next_range;
    kernel(g, &k_head, -1, op_id);
    range(g, GS_RANGE_OP, "lm_head", -1, op_id, op_t);
    if (g->metrics)
        metric(g, "dram__bytes_read.sum", GS_METRIC_OP, 0, op_id, op_t, (double)jitter(g, k_head.dram_bytes));

    op_t = g->t;
    op_id = ++g->next_range;
    kernel(g, &k_argmax, -1, op_id);
    device(g, GS_EV_MEMCPY, GS_COPY_DTOH, "memcpy DtoH", NULL, -1, op_id, 2500, 4);
    /* The host waits for the logits: the sync lasts until stream 0 drains. */
    gs_event sy = {0};
    sy.kind = GS_EV_SYNC;
    sy.level = GS_SYNC_STREAM;
    sy.name = name(g, "cudaStreamSynchronize");
    sy.layer = -1;
    sy.track = GS_TRACK_HOST;
    sy.step = g->step;
    sy.t_ns = g->t;
    sy.range_id = op_id;
    uint64_t drained = g->dev[0] > g->t ? g->dev[0] : g->t;
    sy.dur_ns = drained + 800 - g->t;
    g->t = drained + 800;
    sy.aux = 0;
    g->t += jitter(g, 1000);
    range(g, GS_RANGE_OP, "sampling", -1, op_id, op_t);
    append(g, &sy);
    g->t += 300;
    range(g, GS_RANGE_STEP, "step", -1, step_id, step_t);

    for (int i = 0; i < g->n_pending; i++)
        append(g, &g->pending[i]);
    uint64_t step_ns = g->t - step_t;
    counter(g, "tokens/s", 1e9 / (double)step_ns);
    counter(g, "step.tokens", 1);
    uint32_t total = (uint32_t)(g->o->kv_blocks > 4 ? g->o->kv_blocks : 4);
    uint32_t used = 4 * (1 + (uint32_t)(g->step % 64) * (total / 4 - 1) / 64);
    counter(g, "kv.blocks_used", used);
    counter(g, "kv.blocks_free", total - used);
    counter(g, "kv.fragmentation", 0.125 * (double)(g->step % 5));
    counter(g, "engine.running", 4);
    counter(g, "engine.waiting", (double)(g->step % 3));
    if (g->metrics)
        counter(g, "dram.throughput_gbps", 1500.0 + rnd(g, 300));
    kv_snapshot(g);
    if (g->step % 1000 == 500)
        marker(g, "toggle attention=fused", 1);
    g->t += jitter(g, 20000); /* scheduler work between steps */
}

void gs_synth_defaults(gs_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->layers = 12;
    o->streams = 2;
    o->metrics_every = 8;
    o->kv_blocks = 64;
    o->seed = 0x9e3779b97f4a7c15ULL;
}

long gs_synth_fill(gs_event_store *s, const gs_synth_opts *o, uint64_t min_events)
{
    static gen g; /* 100 KB of pending records: kept off the stack */
    memset(&g, 0, sizeof g);
    g.s = s;
    g.o = o;
    g.rng = o->seed ? o->seed : 1;
    g.t = 5000000000000ULL; /* a monotonic clock some hours after boot */
    g.step = -1;
    marker(&g, "recording started", 0);
    long steps = 0;
    do {
        one_step(&g);
        steps++;
    } while (!g.failed && gs_store_count(s) < min_events);
    return g.failed ? -1 : steps;
}
