/* test_compare_live.c - the live comparison's samples and encoding: a
 * synthetic engine (range begin/end with made-up clocks) feeds the sink,
 * the summaries go into a store as cmp.* counters and are read back by
 * name; shades follow the verdicts (noise inside the spread); rows sort by
 * |delta|. No model, no clock. */
#include <math.h>
#include <string.h>

#include "compare_live.h"
#include "tap.h"

/* One decode step: step > layer 0..1 > (matmul_qkv, attention), then lm_head
 * outside the layers; attention takes attn_ns. */
static void fake_step(gs_cmp_samples *s, int64_t step, uint64_t attn_ns)
{
    static const char *const qkv = "matmul_qkv", *const attn = "attention", *const head = "matmul_logits",
                             *const layer = "layer", *const stp = "step";
    gs_range_sink k = gs_cmp_samples_sink(s);
    uint64_t t = 1000;
    k.begin(k.ctx, GS_RANGE_STEP, stp, -1, 1, t);
    uint64_t t0 = t;
    for (int l = 0; l < 2; l++) {
        k.begin(k.ctx, GS_RANGE_LAYER, layer, l, 2, t);
        k.begin(k.ctx, GS_RANGE_OP, qkv, l, 3, t);
        t += 100;
        k.end(k.ctx, GS_RANGE_OP, qkv, l, 3, t);
        k.begin(k.ctx, GS_RANGE_OP, attn, l, 4, t);
        t += attn_ns;
        k.end(k.ctx, GS_RANGE_OP, attn, l, 4, t);
        k.end(k.ctx, GS_RANGE_LAYER, layer, l, 2, t);
    }
    k.begin(k.ctx, GS_RANGE_OP, head, -1, 5, t);
    t += 50;
    k.end(k.ctx, GS_RANGE_OP, head, -1, 5, t);
    k.end(k.ctx, GS_RANGE_STEP, stp, -1, 1, t);
    gs_cmp_samples_step_end(s, step, t - t0, 1, 0, 1);
}

static int find(const gs_cmp_samples *s, int kind, const char *name, int layer)
{
    for (int i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].kind == kind && s->nodes[i].layer == layer && !strcmp(s->nodes[i].name, name))
            return i;
    return -1;
}

typedef struct readback {
    gs_event_store *st;
    double attn_all_median[8];
    long n_cmp, n_pin;
    double pin;
} readback;

static int visit(void *ctx, uint64_t index, const gs_event *ev)
{
    readback *r = ctx;
    (void)index;
    if (ev->kind != GS_EV_COUNTER)
        return 0;
    const char *nm = gs_store_string(r->st, ev->name);
    if (!strcmp(nm, GS_CMP_PIN)) {
        r->n_pin++;
        r->pin = ev->value;
        return 0;
    }
    const char *op = NULL;
    int k = gs_cmp_parse_name(nm, &op);
    if (k < 0)
        return 0;
    r->n_cmp++;
    if (k == GS_CMP_OP && !strcmp(op, "attention") && ev->layer == GS_CMP_ALL_LAYERS && ev->level == GS_CMP_MEDIAN &&
        ev->aux < 8)
        r->attn_all_median[ev->aux] = ev->value;
    return 0;
}

int main(void)
{
    const char *n = NULL;
    tap_ok(gs_cmp_parse_name("cmp.op:matmul_qkv", &n) == GS_CMP_OP && !strcmp(n, "matmul_qkv"),
           "cmp.op:matmul_qkv parses as an op named matmul_qkv");
    tap_ok(gs_cmp_parse_name("cmp.kernel:gemv_f16", &n) == GS_CMP_KERNEL && !strcmp(n, "gemv_f16"),
           "cmp.kernel:... parses as a kernel");
    tap_ok(gs_cmp_parse_name("cmp.step", &n) == GS_CMP_STEP && gs_cmp_parse_name("cmp.tps", NULL) == GS_CMP_TPS &&
               gs_cmp_parse_name("cmp.layer", NULL) == GS_CMP_LAYER,
           "the fixed names parse");
    tap_ok(gs_cmp_parse_name("cmp.op:", NULL) < 0 && gs_cmp_parse_name("cmp.pin", NULL) < 0 &&
               gs_cmp_parse_name("variant.decode_ms", NULL) < 0 && gs_cmp_parse_name("cmp.steps", NULL) < 0,
           "an empty op name, the pin, other counters and near misses are not nodes");

    gs_cmp_samples a, b;
    tap_ok(gs_cmp_samples_init(&a, 1) == 0 && gs_cmp_samples_init(&b, 2) == 0, "samples for variants 1 and 2");
    /* A: attention 1000 ns +- a little; B: 600 ns. 80 steps: the ring keeps 64. */
    for (int i = 0; i < 80; i++) {
        fake_step(&a, i, 1000 + (uint64_t)(i % 7));
        fake_step(&b, 100 + i, 600 + (uint64_t)(i % 5));
    }
    /* a prefill step and an untimed (metrics) step change nothing but the prefill node */
    gs_cmp_samples_step_end(&a, 200, 5000000, 1, 1, 0);
    gs_cmp_samples_step_end(&a, 201, 123, 0, 0, 1);
    int ia = find(&a, GS_CMP_OP, "attention", GS_CMP_ALL_LAYERS), il = find(&a, GS_CMP_OP, "attention", 1);
    int ih = find(&a, GS_CMP_OP, "matmul_logits", -1), ly = find(&a, GS_CMP_LAYER, "layer", 0);
    tap_ok(ia >= 0 && il >= 0 && ih >= 0 && ly >= 0, "nodes: op summed over layers, op in layer 1, op outside layers, a layer");
    gs_stat_summary sa, sb, sl, ss;
    gs_cmp_samples_summary(&a, ia, &sa);
    gs_cmp_samples_summary(&a, il, &sl);
    gs_cmp_samples_summary(&a, GS_CMP_STEP, &ss);
    tap_ok(sa.n == GS_CMP_RING, "the ring keeps the last %d steps (got %ld)", GS_CMP_RING, sa.n);
    tap_ok(fabs(sa.median - 2 * sl.median) < 8, "summed over 2 layers: twice one layer's median (%g vs %g)",
           sa.median, sl.median);
    tap_ok(ss.n == GS_CMP_RING && ss.median >= 2250 && ss.median < 2250 + 20,
           "decode step time: 2 x (100 + ~1000) + 50 ns, about 2256 (got %g)", ss.median);
    gs_cmp_samples_summary(&a, GS_CMP_PREFILL, &sb);
    tap_ok(sb.n == 1 && sb.median == 5000000, "the prefill step went to the prefill node only");
    int ib = find(&b, GS_CMP_OP, "attention", GS_CMP_ALL_LAYERS);
    gs_cmp_samples_summary(&b, ib, &sb);
    tap_ok(gs_cmp_shade_of(&sa, &sb, 0) == GS_CMP_FASTER, "attention 2000 -> 1200 ns: B faster");
    tap_ok(gs_cmp_shade_of(&sb, &sa, 0) == GS_CMP_SLOWER, "the other way round: slower");
    gs_stat_summary ta, tb;
    gs_cmp_samples_summary(&a, GS_CMP_TPS, &ta);
    gs_cmp_samples_summary(&b, GS_CMP_TPS, &tb);
    tap_ok(gs_cmp_shade_of(&ta, &tb, 1) == GS_CMP_FASTER, "tokens/s up: faster (higher is better)");
    int qa = find(&a, GS_CMP_OP, "matmul_qkv", GS_CMP_ALL_LAYERS), qb = find(&b, GS_CMP_OP, "matmul_qkv", GS_CMP_ALL_LAYERS);
    gs_cmp_samples_summary(&a, qa, &sa);
    gs_cmp_samples_summary(&b, qb, &sb);
    tap_ok(gs_cmp_shade_of(&sa, &sb, 0) == GS_CMP_SAME && !strcmp(gs_cmp_shade_name(GS_CMP_SAME), "noise"),
           "matmul_qkv unchanged: noise");
    /* Within the spread: A 1000..1100, B 1010..1110, overlapping. */
    double xa[20], xb[20];
    for (int i = 0; i < 20; i++) {
        xa[i] = 1000 + 5 * i;
        xb[i] = 1010 + 5 * ((i * 7) % 20);
    }
    gs_stats_summarize(xa, 20, &sa);
    gs_stats_summarize(xb, 20, &sb);
    tap_ok(gs_cmp_shade_of(&sa, &sb, 0) == GS_CMP_SAME, "a shift smaller than the spread is noise");
    gs_stats_summarize(xa, 2, &sa);
    gs_stats_summarize(xb, 2, &sb);
    tap_ok(gs_cmp_shade_of(&sa, &sb, 0) == GS_CMP_SAME, "two samples: never a winner");

    /* Into a store and back. */
    gs_event_store *st = gs_store_create(0);
    gs_cmp_emit_pin(st, 1, 10, 1);
    gs_cmp_samples_emit(&a, st, 10, 2);
    gs_cmp_samples_emit(&b, st, 10, 3);
    readback r = {st, {0}, 0, 0, 0};
    gs_store_visit(st, 0, gs_store_count(st), visit, &r);
    gs_cmp_samples_summary(&a, ia, &sa);
    gs_cmp_samples_summary(&b, ib, &sb);
    tap_ok(r.n_pin == 1 && r.pin == 1, "cmp.pin carries the pinned variant");
    tap_ok(r.attn_all_median[1] == sa.median && r.attn_all_median[2] == sb.median,
           "attention medians read back per variant (%g, %g)", r.attn_all_median[1], r.attn_all_median[2]);
    tap_ok(r.n_cmp % GS_CMP_NSTAT == 0 && r.n_cmp > 0, "each node carries %d statistics (%ld counters)", GS_CMP_NSTAT,
           r.n_cmp);
    gs_store_destroy(st);

    /* kernels: none in a CPU store; with fake kernel records, summed per step */
    st = gs_store_create(0);
    uint32_t kn = gs_store_intern(st, "gemv_kernel");
    for (int s = 100; s < 110; s++)
        for (int j = 0; j < 3; j++) {
            gs_event ev = {0};
            ev.kind = GS_EV_KERNEL;
            ev.name = kn;
            ev.step = s;
            ev.layer = -1;
            ev.dur_ns = 10;
            gs_store_append(st, &ev);
        }
    gs_cmp_samples_scan_kernels(&b, st);
    int ik = find(&b, GS_CMP_KERNEL, "gemv_kernel", GS_CMP_ALL_LAYERS);
    gs_cmp_samples_summary(&b, ik, &sb);
    tap_ok(ik >= 0 && sb.n == 9 && sb.median == 30, "kernels: 3 x 10 ns per kept step, complete steps only (n %ld, median %g)",
           sb.n, sb.median);
    gs_store_destroy(st);

    int idx[4] = {0, 1, 2, 3};
    double d[4] = {1, -5, 3, -5};
    gs_cmp_sort_by_delta(idx, 4, d);
    tap_ok(idx[0] == 1 && idx[1] == 3 && idx[2] == 2 && idx[3] == 0, "rows by |delta|, ties in model order");

    gs_cmp_samples_move(&a, &b);
    tap_ok(a.variant == 2 && b.nodes == NULL && b.variant == 0, "move hands the samples over");
    gs_cmp_samples_free(&a);
    gs_cmp_samples_free(&b);
    return tap_done();
}
