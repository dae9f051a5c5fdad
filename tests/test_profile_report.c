/* test_profile_report.c - the profile tables from synthetic stores with
 * known numbers (ranges, kernels, metrics, a metrics step to leave out), a
 * host-only store as the CPU backend makes, and a real engine run whose
 * per-op model must add up to the whole-step model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_args.h"
#include "backend.h"
#include "engine.h"
#include "event_store.h"
#include "json.h"
#include "presets.h"
#include "profile_report.h"
#include "tap.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fabs(b) + 1e-9; }

/* The GPT-2 shape of test_op_cost.c: per call at 4 tokens, 1 logit row, 10
 * pairs, 4 keys, naive: matmul_qkv 1632 FLOPs / 1376 B, attention 420 / 672. */
static gs_cost_config small_cost(void)
{
    gs_cost_config c = {.shape = {.arch = GS_ARCH_GPT2, .n_layer = 2, .n_head = 2, .n_kv_head = 2, .n_embd = 8,
                                  .n_hidden = 32, .n_ctx = 16, .vocab = 10, .tied_embedding = 1},
                        .weight_dtype = GS_DTYPE_F32, .kv_elem_bytes = 4, .attn_variant = GS_ATTN_NAIVE};
    return c;
}

static void range(gs_event_store *s, gs_range_level lvl, const char *name, int64_t step, uint64_t t, uint64_t dur,
                  uint64_t id)
{
    gs_event ev = {0};
    ev.kind = GS_EV_RANGE;
    ev.level = (uint8_t)lvl;
    ev.name = gs_store_intern(s, name);
    ev.layer = -1;
    ev.step = step;
    ev.t_ns = t;
    ev.dur_ns = dur;
    ev.aux = id;
    gs_store_append(s, &ev);
}

static void counter(gs_event_store *s, const char *name, int64_t step, double v)
{
    gs_event ev = {0};
    ev.kind = GS_EV_COUNTER;
    ev.name = gs_store_intern(s, name);
    ev.layer = -1;
    ev.step = step;
    ev.value = v;
    gs_store_append(s, &ev);
}

static void kernel(gs_event_store *s, const char *name, uint64_t corr, uint64_t range_id, uint64_t dur, uint32_t gx)
{
    gs_event ev = {0};
    ev.kind = GS_EV_KERNEL;
    ev.name = gs_store_intern(s, name);
    ev.layer = -1;
    ev.track = GS_TRACK_STREAM0;
    ev.step = -1; /* the report finds the step through the op range */
    ev.dur_ns = dur;
    ev.aux = corr;
    ev.range_id = range_id;
    ev.u.launch.grid[0] = gx;
    ev.u.launch.grid[1] = ev.u.launch.grid[2] = 1;
    ev.u.launch.block[0] = 128;
    ev.u.launch.block[1] = ev.u.launch.block[2] = 1;
    gs_store_append(s, &ev);
}

static void metric(gs_event_store *s, const char *name, uint64_t corr, uint64_t range_id, double v)
{
    gs_event ev = {0};
    ev.kind = GS_EV_METRIC;
    ev.level = GS_METRIC_KERNEL;
    ev.name = gs_store_intern(s, name);
    ev.layer = -1;
    ev.aux = corr;
    ev.range_id = range_id;
    ev.value = v;
    gs_store_append(s, &ev);
}

static void step_counters(gs_event_store *s, int64_t step)
{
    counter(s, "step.tokens", step, 4);
    counter(s, "step.seqs", step, 1);
    counter(s, "step.logits", step, 1);
    counter(s, "step.attn_pairs", step, 10);
    counter(s, "step.attn_ctx", step, 4);
}

static const gs_profile_op_row *op_row(const gs_profile *p, const char *name)
{
    for (int i = 0; i < p->n_ops; i++)
        if (strcmp(p->ops[i].name, name) == 0)
            return &p->ops[i];
    return NULL;
}

static const gs_profile_kernel_row *kernel_row(const gs_profile *p, const char *name)
{
    for (int i = 0; i < p->n_kernels; i++)
        if (strcmp(p->kernels[i].name, name) == 0)
            return &p->kernels[i];
    return NULL;
}

/* Three steps; step 1 is a metrics step (replayed, slow) with the metrics.
 *   step 0: qkv range 1000 ns (kernel gemm_k 800), attention 2000 (attn_k 1500), step 10000
 *   step 1: qkv 50000 (gemm_k 90000), attention 60000 (attn_k 80000), step 500000  <- left out
 *   step 2: qkv 3000 (gemm_k 1200), attention 4000 (attn_k 2500, softmax_k 500), step 20000
 * Metrics of step 1: gemm_k DRAM 1000 + 376, L2 5000 B at 80 %; attn_k DRAM 300 + 200. */
static gs_event_store *synthetic_store(int with_kernels)
{
    gs_event_store *s = gs_store_create(0);
    uint64_t id = 0;
    const uint64_t qkv_ns[3] = {1000, 50000, 3000}, att_ns[3] = {2000, 60000, 4000}, step_ns[3] = {10000, 500000, 20000};
    const uint64_t gemm_ns[3] = {800, 90000, 1200}, attk_ns[3] = {1500, 80000, 2500};
    for (int st = 0; st < 3; st++) {
        uint64_t t = 1000000 * (uint64_t)st;
        uint64_t qkv_id = ++id, att_id = ++id, step_id = ++id;
        if (st == 1)
            gs_store_append_marker(s, GS_PROFILE_MARKER_METRICS_STEP, st, t, 1);
        range(s, GS_RANGE_OP, "matmul_qkv", st, t + 10, qkv_ns[st], qkv_id);
        range(s, GS_RANGE_OP, "attention", st, t + 20000, att_ns[st], att_id);
        range(s, GS_RANGE_STEP, "step", st, t, step_ns[st], step_id);
        step_counters(s, st);
        if (!with_kernels)
            continue;
        /* Device records arrive after the step, as the collector drains them. */
        kernel(s, "gemm_k", 100 + 10 * (uint64_t)st, qkv_id, gemm_ns[st], 10 + (uint32_t)st);
        kernel(s, "attn_k", 101 + 10 * (uint64_t)st, att_id, attk_ns[st], 20 + (uint32_t)st);
        if (st == 2)
            kernel(s, "softmax_k", 102 + 10 * (uint64_t)st, att_id, 500, 30);
        if (st == 1) {
            metric(s, "dram__bytes_read.sum", 110, qkv_id, 1000);
            metric(s, "dram__bytes_write.sum", 110, qkv_id, 376);
            metric(s, "lts__t_bytes.sum", 110, qkv_id, 5000);
            metric(s, "lts__t_sector_hit_rate.pct", 110, qkv_id, 80);
            metric(s, "dram__bytes_read.sum", 111, att_id, 300);
            metric(s, "dram__bytes_write.sum", 111, att_id, 200);
            metric(s, "some.other.metric", 111, att_id, 1e9); /* unknown names are ignored */
        }
    }
    return s;
}

static void test_device_store(void)
{
    gs_event_store *s = synthetic_store(1);
    gs_cost_config c = small_cost();
    gs_peaks pk = {.bw_bytes_per_s = 1e9, .flops_per_s = 1e10, .precision = "fp16", .backend = "cuda",
                   .device = "Test GPU"};
    gs_profile p;
    tap_ok(gs_profile_build(s, &c, &pk, &p) == 0, "build from a store with kernels and metrics");
    tap_ok(p.steps == 2 && p.metrics_steps == 1 && p.step_ns == 30000,
           "2 steps timed (10000 + 20000 ns), the metrics step left out (got %ld, %ld, %llu)", p.steps,
           p.metrics_steps, (unsigned long long)p.step_ns);
    tap_ok(p.have_kernels && p.have_metrics && p.n_ops == 2 && p.n_kernels == 3, "2 op rows, 3 kernel rows");
    const gs_profile_op_row *q = op_row(&p, "matmul_qkv"), *a = op_row(&p, "attention");
    /* qkv: device time 800 + 1200 = 2000 ns over 30000: 6.667 % */
    tap_ok(q && q->calls == 2 && q->device_time && q->total_ns == 2000 && near(q->share_pct, 100.0 * 2000 / 30000),
           "matmul_qkv: 2 calls, 2000 ns of kernel time, 6.67%% of the steps");
    tap_ok(q && q->modeled && q->flops_model == 1632 && q->bytes_model == 1376 && q->measured_calls == 1 &&
               q->bytes_measured == 1376,
           "matmul_qkv: 1632 FLOP and 1376 B per call (model), 1000 + 376 B measured");
    /* Roofline on measured bytes: 2 * 1376 B and 2 * 1632 FLOP in 2 us:
     * 1.376 GB/s, 1.632 GFLOP/s, AI 1632/1376; floor max(3264/1e10, 2752/1e9) = 2.752 us > 2 us: 137.6 %. */
    tap_ok(q && near(q->roof.bytes_per_s, 1.376e9) && near(q->roof.flops_per_s, 1.632e9) &&
               near(q->roof.intensity, 1632.0 / 1376) && near(q->roof.pct_of_roofline, 137.6) &&
               !q->roof.compute_bound,
           "matmul_qkv roofline: 1.376 GB/s, 1.632 GFLOP/s, 137.6%% (pct %.2f)", q ? q->roof.pct_of_roofline : 0);
    /* attention: 1500 + 2500 + 500 = 4500 ns; measured 300 + 200 B per call */
    tap_ok(a && a->calls == 2 && a->total_ns == 4500 && a->flops_model == 420 && a->bytes_model == 672 &&
               a->bytes_measured == 500,
           "attention: 4500 ns over 3 kernels, 420 FLOP / 672 B model, 500 B measured");
    tap_ok(p.n_ops == 2 && p.ops[0].total_ns >= p.ops[1].total_ns, "op rows by time, largest first");
    const gs_profile_kernel_row *g = kernel_row(&p, "gemm_k"), *k = kernel_row(&p, "attn_k"),
                                *sm = kernel_row(&p, "softmax_k");
    tap_ok(g && g->calls == 2 && g->total_ns == 2000 && near(g->share_pct, 100.0 * 2000 / 6500) &&
               g->grid[0] == 12 && g->block[0] == 128 && strcmp(g->op, "matmul_qkv") == 0,
           "gemm_k: 2 timed calls, 2000 ns, 30.8%% of kernel time, last grid 12, op matmul_qkv");
    tap_ok(g && g->m.launches == 1 && g->m.dram_bytes == 1376 && g->m.l2_bytes == 5000 && g->m.l2_hit_pct == 80 &&
               isnan(g->m.l1_bytes) && isnan(g->m.tensor_pct),
           "gemm_k metrics: DRAM 1376 B, L2 5000 B at 80%%, L1 absent");
    tap_ok(k && k->calls == 2 && k->total_ns == 4000 && k->m.dram_bytes == 500, "attn_k: 4000 ns, 500 DRAM B");
    tap_ok(sm && sm->calls == 1 && sm->total_ns == 500 && isnan(sm->m.dram_bytes) && sm->m.launches == 0,
           "softmax_k: no metrics");
    /* The step model counts every op of the configuration, twice (two timed steps). */
    gs_step_shape sh = {.n_tokens = 4, .n_seqs = 1, .n_logits = 1, .attn_pairs = 10, .attn_keys = 4};
    gs_op_cost one;
    gs_step_cost(&c, &sh, &one);
    tap_ok(near(p.step_model.flops, 2 * one.flops) && near(p.step_model.bytes, 2 * one.bytes),
           "step model: two timed steps of %.0f FLOP", one.flops);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gs_profile_report_print(f, &p);
    fclose(f);
    tap_ok(strstr(buf, "matmul_qkv") && strstr(buf, "(model)") && strstr(buf, "(m)") && strstr(buf, "gemm_k") &&
               strstr(buf, "roofline") && strstr(buf, "1 metrics steps left out"),
           "the text names ops, kernels, measured and modeled columns");
    free(buf);
    f = open_memstream(&buf, &len);
    gs_profile_report_json(f, &p);
    fclose(f);
    gs_json_doc doc;
    int rc = gs_json_parse(&doc, buf, len, 8);
    const gs_json_value *root = rc == 0 ? gs_json_root(&doc) : NULL;
    const gs_json_value *ops = root ? gs_json_get(&doc, root, "ops") : NULL;
    const gs_json_value *kern = root ? gs_json_get(&doc, root, "kernels") : NULL;
    const gs_json_value *o0 = ops ? gs_json_child(&doc, ops) : NULL;
    const gs_json_value *src = o0 ? gs_json_get(&doc, o0, "roofline_bytes_source") : NULL;
    tap_ok(rc == 0 && ops && ops->len == 2 && kern && kern->len == 3 && src && strcmp(src->str, "measured") == 0,
           "the JSON parses: 2 ops, 3 kernels, bytes sourced as measured (%s)", rc ? doc.error : "");
    gs_json_free(&doc);
    free(buf);
    gs_profile_free(&p);
    gs_store_destroy(s);
}

static void test_host_store(void)
{
    gs_event_store *s = synthetic_store(0);
    gs_cost_config c = small_cost();
    gs_profile p;
    gs_profile_build(s, &c, NULL, &p);
    const gs_profile_op_row *q = op_row(&p, "matmul_qkv");
    /* Host range time: 1000 + 3000, the 50000 of the metrics step left out. */
    tap_ok(q && !q->device_time && q->total_ns == 4000 && q->calls == 2 && q->measured_calls == 0 &&
               !p.have_kernels && !p.have_peaks,
           "host-only store: op time from ranges (4000 ns), no kernels, no measured bytes");
    /* The roofline on modeled bytes: 2 * 1376 B in 4 us: 688 MB/s. */
    tap_ok(q && near(q->roof.bytes_per_s, 2 * 1376 / 4e-6) && q->roof.pct_of_roofline == 0,
           "roofline on modeled bytes; no peaks, no percentage");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gs_profile_report_print(f, &p);
    fclose(f);
    tap_ok(strstr(buf, "all modeled") && strstr(buf, "host wall") && strstr(buf, "none recorded"),
           "the text says the bytes are modeled and the times host wall");
    free(buf);
    gs_profile_free(&p);
    gs_store_destroy(s);

    /* Steps without the step.* counters (an older trace): times, no model. */
    s = gs_store_create(0);
    range(s, GS_RANGE_OP, "matmul_qkv", 0, 10, 500, 1);
    range(s, GS_RANGE_STEP, "step", 0, 0, 1000, 2);
    counter(s, "step.tokens", 0, 4);
    gs_profile_build(s, &c, NULL, &p);
    tap_ok(p.n_ops == 1 && p.ops[0].calls == 1 && !p.ops[0].modeled && p.step_model.flops == 0,
           "no batch counters: timed but not modeled");
    gs_profile_free(&p);
    gs_store_destroy(s);
}

/* The CPU backend's counters: op-scope cpu.* metrics on the op ranges.
 * matmul_qkv (range ids 1 and 7, steps 0 and 2): LLC loads 1000 and 3000,
 * misses 100 and 300 -> per call 2000 loads, 200 misses = 12800 B, 90 % hit;
 * instructions 8000 + 4000 over cycles 2000 + 2000 -> IPC 3. attention
 * (ids 2, 8) has none. */
static void test_cpu_counters(void)
{
    gs_event_store *s = synthetic_store(0);
    static const struct { const char *name; uint64_t id; double v; int scope; } m[] = {
        {"cpu.llc_loads", 1, 1000, GS_METRIC_OP},  {"cpu.llc_misses", 1, 100, GS_METRIC_OP},
        {"cpu.instructions", 1, 8000, GS_METRIC_OP}, {"cpu.cycles", 1, 2000, GS_METRIC_OP},
        {"cpu.llc_loads", 7, 3000, GS_METRIC_OP},  {"cpu.llc_misses", 7, 300, GS_METRIC_OP},
        {"cpu.instructions", 7, 4000, GS_METRIC_OP}, {"cpu.cycles", 7, 2000, GS_METRIC_OP},
        {"cpu.llc_loads", 2, 5e9, GS_METRIC_KERNEL}, /* a kernel-scope cpu.* name is not a CPU counter */
        {"cpu.no_such_event", 2, 5e9, GS_METRIC_OP}, /* unknown names are ignored */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        gs_event ev = {0};
        ev.kind = GS_EV_METRIC;
        ev.level = (uint8_t)m[i].scope;
        ev.name = gs_store_intern(s, m[i].name);
        ev.layer = -1;
        ev.range_id = m[i].id;
        ev.value = m[i].v;
        gs_store_append(s, &ev);
    }
    gs_cost_config c = small_cost();
    gs_profile p;
    gs_profile_build(s, &c, NULL, &p);
    const gs_profile_op_row *q = op_row(&p, "matmul_qkv"), *a = op_row(&p, "attention");
    unsigned want = 1u << GS_CPUC_LLC_LOADS | 1u << GS_CPUC_LLC_MISSES | 1u << GS_CPUC_INSTRUCTIONS | 1u << GS_CPUC_CYCLES;
    tap_ok(p.have_cpu_counters && !p.have_metrics && q && q->cpu_calls == 2 && q->cpu_mask == want &&
               near(q->cpu[GS_CPUC_LLC_LOADS], 2000) && near(q->cpu[GS_CPUC_LLC_MISSES], 200) && a &&
               a->cpu_calls == 0 && q->measured_calls == 0,
           "CPU counters: per-call means on their op (2000 loads, 200 misses), none on the other op, "
           "kept out of the DRAM-measured bytes");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gs_profile_report_print(f, &p);
    fclose(f);
    tap_ok(strstr(buf, "cpu counters (measured") && strstr(buf, "LLC miss B") && strstr(buf, "12.8k") &&
               strstr(buf, "90.0%") && strstr(buf, "3.00") && strstr(buf, "(model)"),
           "the text has the measured CPU counter table: 12.8k miss bytes, 90.0%% hit, IPC 3.00, modeled bytes beside");
    free(buf);
    f = open_memstream(&buf, &len);
    gs_profile_report_json(f, &p);
    fclose(f);
    gs_json_doc doc;
    int rc = gs_json_parse(&doc, buf, len, 8);
    const gs_json_value *root = rc == 0 ? gs_json_root(&doc) : NULL;
    const gs_json_value *ops = root ? gs_json_get(&doc, root, "ops") : NULL;
    const gs_json_value *qj = NULL, *aj = NULL;
    for (const gs_json_value *o = ops ? gs_json_child(&doc, ops) : NULL; o; o = gs_json_next(&doc, o)) {
        const gs_json_value *n = gs_json_get(&doc, o, "name");
        if (n && strcmp(n->str, "matmul_qkv") == 0)
            qj = gs_json_get(&doc, o, "cpu_counters");
        if (n && strcmp(n->str, "attention") == 0)
            aj = gs_json_get(&doc, o, "cpu_counters");
    }
    const gs_json_value *mb = qj ? gs_json_get(&doc, qj, "llc_miss_bytes") : NULL;
    const gs_json_value *hit = qj ? gs_json_get(&doc, qj, "llc_hit_pct") : NULL;
    const gs_json_value *refs = qj ? gs_json_get(&doc, qj, "cache_references") : NULL;
    tap_ok(rc == 0 && mb && mb->type == GS_JSON_NUMBER && near(mb->number, 12800) && hit && near(hit->number, 90) &&
               refs && refs->type == GS_JSON_NULL && aj && aj->type == GS_JSON_NULL,
           "the JSON: cpu_counters per op (llc_miss_bytes 12800, llc_hit_pct 90, uncounted events null; null "
           "without counters) %s", rc ? doc.error : "");
    gs_json_free(&doc);
    free(buf);
    gs_profile_free(&p);
    gs_store_destroy(s);
}

/* A real run: the per-op model summed over instances equals the step model,
 * so gs_step_cost walks the same ops forward.c runs. */
static void test_engine_run(const char *preset, int fuse, int window)
{
    gs_model m;
    gs_error err = {0};
    gs_model_alloc(&m, &gs_preset_find(preset)->shape, &err);
    gs_model_init_synthetic(&m, 5);
    gs_backend *be = NULL;
    gs_backend_cpu_create(&be, 1, &err);
    gs_engine e;
    gs_engine_config ec;
    gs_engine_config_defaults(&ec);
    ec.max_batch = 3;
    ec.max_tokens_per_step = 8;
    gs_engine_init(&e, be, &m, &ec, &err);
    e.fwd.fuse = fuse;
    e.fwd.window = window;
    e.fwd.n_sink = window ? 2 : 0;
    gs_event_store *s = gs_store_create(0);
    gs_store_ranges sink;
    gs_store_ranges_init(&sink, s, 0);
    gs_ranges_add_sink(&e.ranges, gs_store_ranges_sink(&sink));
    int prompt[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    gs_engine_submit(&e, prompt, 12, 5, &err);
    gs_engine_submit(&e, prompt, 3, 7, &err);
    int rc = GS_OK;
    while (rc == GS_OK && gs_engine_busy(&e)) {
        rc = gs_engine_step(&e, &err);
        gs_store_append_engine_counters(s, &e, sink.step, gs_now_ns());
    }
    gs_cost_config c = {.shape = m.shape, .weight_dtype = GS_DTYPE_F32, .kv_elem_bytes = 4,
                        .attn_variant = e.fwd.attn_variant, .fused = fuse && be->ops->residual_norm};
    gs_profile p;
    gs_profile_build(s, &c, NULL, &p);
    double fl = 0, by = 0;
    int all_modeled = 1;
    for (int i = 0; i < p.n_ops; i++) {
        all_modeled &= p.ops[i].modeled;
        fl += p.ops[i].flops_model * (double)p.ops[i].calls;
        by += p.ops[i].bytes_model * (double)p.ops[i].calls;
    }
    tap_ok(rc == GS_OK && p.steps == e.steps && all_modeled && near(fl, p.step_model.flops) &&
               near(by, p.step_model.bytes) && p.step_model.flops > 0,
           "%s fuse %d window %d: %ld steps, every op modeled, ops sum to the step model (%.0f / %.0f FLOP, %.0f / %.0f B)",
           preset, fuse, window, p.steps, fl, p.step_model.flops, by, p.step_model.bytes);
    gs_profile_free(&p);
    gs_store_destroy(s);
    gs_engine_destroy(&e);
    gs_backend_destroy(be);
    gs_model_free(&m);
}

int main(void)
{
    test_device_store();
    test_host_store();
    test_cpu_counters();
    test_engine_run("gpt2-tiny", 0, 0);
    test_engine_run("gpt2-tiny", 1, 4);
    test_engine_run("llama-tiny", 1, 0);
    test_engine_run("llama-tiny", 0, 3);
    return tap_done();
}
