/* profile_report.c - the per-op, per-kernel and roofline tables of
 * profile_report.h.
 *
 * One walk over the store gathers the op range instances, the step ranges,
 * the step.* counters, the metrics-step markers, kernels and metrics; device
 * records point at their op through range_id (events.h), metrics at their
 * kernel through the correlation id. Then everything is joined by sorting
 * and binary search, since device records may arrive long after their op. */
#include "profile_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for one more element; 0, or -1 when out of memory. */
static int grow(void *arrp, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 64;
    void *p = realloc(*(void **)arrp, c * elem);
    if (!p)
        return -1;
    *(void **)arrp = p;
    *cap = c;
    return 0;
}

/* step.ids is optional: traces written before it read as 0 (logits read back). */
enum { SH_TOKENS = 1, SH_SEQS = 2, SH_LOGITS = 4, SH_PAIRS = 8, SH_KEYS = 16, SH_IDS = 32 };
#define SH_NEEDED (SH_TOKENS | SH_LOGITS | SH_PAIRS | SH_KEYS)

typedef struct step_rec {
    int64_t step;
    uint64_t dur_ns;
    int has_range, metrics;
    unsigned shape_mask;
    gs_step_shape shape;
} step_rec;

typedef struct inst_rec {
    uint64_t range_id;
    uint32_t name;
    int64_t step;
    uint64_t dur_ns, kernel_ns;
    int n_kernels;
    double dram_kernel, dram_op;
    int has_dram_kernel, has_dram_op;
    double cpu[GS_CPUC_COUNT];  /* op-scope CPU counter values */
    unsigned cpu_mask;
} inst_rec;

/* The metrics the kernel table shows, in gs_profile_kernel_metrics order. */
enum {
    M_DRAM_READ, M_DRAM_WRITE, M_L2_BYTES, M_L2_HIT, M_L1_BYTES, M_L1_HIT, M_SHARED, M_TENSOR, M_ISSUE,
    M_TIME, M_COUNT
};
static const char *const metric_names[M_COUNT] = {
    "dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_bytes.sum", "lts__t_sector_hit_rate.pct",
    "l1tex__t_bytes.sum", "l1tex__t_sector_hit_rate.pct", "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum",
    "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "smsp__issue_active.avg.pct_of_peak_sustained_elapsed", "gpu__time_duration.sum",
};

typedef struct kern_rec {
    uint32_t name;
    uint64_t corr, range_id;
    int64_t step;
    uint64_t t_ns, dur_ns;
    gs_event_launch launch;
    double m[M_COUNT];
    unsigned m_mask;
} kern_rec;

typedef struct metric_rec {
    int kind;                   /* a metric_names index, or -1 for a CPU counter */
    int cpu;                    /* a gs_cpuc_event, or -1 */
    int scope;
    uint64_t corr, range_id;
    double value;
} metric_rec;

typedef struct gather {
    gs_event_store *s;
    step_rec *steps;
    size_t n_steps, cap_steps;
    inst_rec *insts;
    size_t n_insts, cap_insts;
    kern_rec *kerns;
    size_t n_kerns, cap_kerns;
    metric_rec *mets;
    size_t n_mets, cap_mets;
    uint32_t metric_ids[M_COUNT]; /* string ids, resolved lazily */
    int failed;
} gather;

static step_rec *find_step(gather *g, int64_t step, int add)
{
    for (size_t i = g->n_steps; i-- > 0;) /* steps arrive in order: the hit is near the end */
        if (g->steps[i].step == step)
            return &g->steps[i];
    if (!add)
        return NULL;
    if (grow(&g->steps, &g->cap_steps, g->n_steps, sizeof *g->steps) < 0) {
        g->failed = 1;
        return NULL;
    }
    step_rec *r = &g->steps[g->n_steps++];
    memset(r, 0, sizeof *r);
    r->step = step;
    return r;
}

static int metric_kind(gather *g, uint32_t name)
{
    const char *str = gs_store_string(g->s, name);
    for (int k = 0; k < M_COUNT; k++)
        if (strcmp(str, metric_names[k]) == 0)
            return k;
    return -1;
}

static int cpu_kind(gather *g, uint32_t name)
{
    const char *str = gs_store_string(g->s, name);
    if (strncmp(str, "cpu.", 4) != 0)
        return -1;
    for (int e = 0; e < GS_CPUC_COUNT; e++)
        if (strcmp(str, gs_cpuc_names[e]) == 0)
            return e;
    return -1;
}

static int visit(void *ctx, uint64_t index, const gs_event *ev)
{
    gather *g = ctx;
    const char *name;
    switch (ev->kind) {
    case GS_EV_RANGE:
        if (ev->level == GS_RANGE_STEP) {
            step_rec *r = find_step(g, ev->step, 1);
            if (r) {
                r->has_range = 1;
                r->dur_ns += ev->dur_ns;
            }
        } else if (ev->level == GS_RANGE_OP) {
            if (grow(&g->insts, &g->cap_insts, g->n_insts, sizeof *g->insts) < 0)
                return g->failed = 1;
            inst_rec *r = &g->insts[g->n_insts++];
            memset(r, 0, sizeof *r);
            r->range_id = ev->aux;
            r->name = ev->name;
            r->step = ev->step;
            r->dur_ns = ev->dur_ns;
        }
        break;
    case GS_EV_COUNTER: {
        name = gs_store_string(g->s, ev->name);
        if (strncmp(name, "step.", 5) != 0)
            break;
        static const struct {
            const char *name;
            unsigned bit;
        } keys[] = {{"step.tokens", SH_TOKENS}, {"step.seqs", SH_SEQS}, {"step.logits", SH_LOGITS},
                    {"step.attn_pairs", SH_PAIRS}, {"step.attn_ctx", SH_KEYS}, {"step.ids", SH_IDS}};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            if (strcmp(name, keys[k].name) != 0)
                continue;
            step_rec *r = find_step(g, ev->step, 1);
            if (!r)
                break;
            int64_t v = (int64_t)llround(ev->value);
            switch (keys[k].bit) {
            case SH_TOKENS: r->shape.n_tokens = v; break;
            case SH_SEQS: r->shape.n_seqs = v; break;
            case SH_LOGITS: r->shape.n_logits = v; break;
            case SH_PAIRS: r->shape.attn_pairs = v; break;
            case SH_IDS: r->shape.n_ids = v; break;
            default: r->shape.attn_keys = v; break;
            }
            r->shape_mask |= keys[k].bit;
        }
        break;
    }
    case GS_EV_MARKER:
        if (strcmp(gs_store_string(g->s, ev->name), GS_PROFILE_MARKER_METRICS_STEP) == 0) {
            step_rec *r = find_step(g, (int64_t)llround(ev->value), 1);
            if (r)
                r->metrics = 1;
        }
        break;
    case GS_EV_KERNEL: {
        if (grow(&g->kerns, &g->cap_kerns, g->n_kerns, sizeof *g->kerns) < 0)
            return g->failed = 1;
        kern_rec *k = &g->kerns[g->n_kerns++];
        memset(k, 0, sizeof *k);
        k->name = ev->name;
        k->corr = ev->aux;
        k->range_id = ev->range_id;
        k->step = ev->step;
        k->t_ns = ev->t_ns;
        k->dur_ns = ev->dur_ns;
        k->launch = ev->u.launch;
        break;
    }
    case GS_EV_METRIC: {
        int kind = metric_kind(g, ev->name);
        int cpu = kind < 0 && ev->level == GS_METRIC_OP ? cpu_kind(g, ev->name) : -1;
        if (kind < 0 && cpu < 0)
            break;
        if (grow(&g->mets, &g->cap_mets, g->n_mets, sizeof *g->mets) < 0)
            return g->failed = 1;
        metric_rec *m = &g->mets[g->n_mets++];
        m->kind = kind;
        m->cpu = cpu;
        m->scope = ev->level;
        m->corr = ev->aux;
        m->range_id = ev->range_id;
        m->value = ev->value;
        break;
    }
    default:
        break;
    }
    (void)index;
    return 0;
}

static int by_range_id(const void *a, const void *b)
{
    uint64_t x = ((const inst_rec *)a)->range_id, y = ((const inst_rec *)b)->range_id;
    return x < y ? -1 : x > y;
}

static int by_corr(const void *a, const void *b)
{
    uint64_t x = ((const kern_rec *)a)->corr, y = ((const kern_rec *)b)->corr;
    return x < y ? -1 : x > y;
}

static inst_rec *find_inst(gather *g, uint64_t range_id)
{
    if (!range_id || !g->n_insts)
        return NULL;
    inst_rec key = {.range_id = range_id};
    return bsearch(&key, g->insts, g->n_insts, sizeof key, by_range_id);
}

static kern_rec *find_kern(gather *g, uint64_t corr)
{
    if (!g->n_kerns)
        return NULL;
    kern_rec key = {.corr = corr};
    return bsearch(&key, g->kerns, g->n_kerns, sizeof key, by_corr);
}

static int step_excluded(gather *g, int64_t step)
{
    step_rec *r = find_step(g, step, 0);
    return r && r->metrics;
}

static int op_by_time(const void *a, const void *b)
{
    const gs_profile_op_row *x = a, *y = b;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : strcmp(x->name, y->name);
}

static int kernel_by_time(const void *a, const void *b)
{
    const gs_profile_kernel_row *x = a, *y = b;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : strcmp(x->name, y->name);
}

/* Per op name: running sums while the rows are built. */
typedef struct op_acc {
    uint32_t name;
    long calls, measured_calls, kernel_calls;
    uint64_t host_ns, kernel_ns;
    double flops, bytes, measured;
    int unmodeled;
    long cpu_calls;
    unsigned cpu_mask;          /* events present in every counted instance */
    double cpu[GS_CPUC_COUNT];
} op_acc;

static void build_ops(gather *g, const gs_cost_config *cost, gs_profile *p, op_acc *acc, int *n_acc)
{
    for (size_t i = 0; i < g->n_insts; i++) {
        inst_rec *in = &g->insts[i];
        int a = 0;
        while (a < *n_acc && acc[a].name != in->name)
            a++;
        if (a == *n_acc) {
            if (*n_acc == GS_OP_TABLE_MAX)
                continue; /* more op names than forward.c has: ignore the excess */
            memset(&acc[a], 0, sizeof acc[a]);
            acc[a].name = in->name;
            (*n_acc)++;
        }
        op_acc *o = &acc[a];
        if (in->has_dram_kernel || in->has_dram_op) {
            o->measured_calls++;
            o->measured += in->has_dram_kernel ? in->dram_kernel : in->dram_op;
        }
        if (in->cpu_mask) {
            o->cpu_mask = o->cpu_calls ? o->cpu_mask & in->cpu_mask : in->cpu_mask;
            o->cpu_calls++;
            for (int e = 0; e < GS_CPUC_COUNT; e++)
                o->cpu[e] += in->cpu[e];
        }
        if (step_excluded(g, in->step))
            continue;
        o->calls++;
        o->host_ns += in->dur_ns;
        o->kernel_ns += in->kernel_ns;
        o->kernel_calls += in->n_kernels > 0;
        step_rec *st = find_step(g, in->step, 0);
        gs_op_cost oc;
        if (cost && st && (st->shape_mask & SH_NEEDED) == SH_NEEDED &&
            gs_op_cost_of(cost, gs_store_string(g->s, in->name), &st->shape, &oc) == 0) {
            o->flops += oc.flops;
            o->bytes += oc.bytes;
        } else {
            o->unmodeled = 1;
        }
    }
    for (int a = 0; a < *n_acc; a++) {
        op_acc *o = &acc[a];
        gs_profile_op_row *r = &p->ops[p->n_ops++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", gs_store_string(g->s, o->name));
        r->calls = o->calls;
        /* Ops run on the device when they launched kernels: their host
         * range times only the enqueue, so the kernels' time is the op's. */
        r->device_time = o->kernel_calls > 0;
        r->total_ns = r->device_time ? o->kernel_ns : o->host_ns;
        r->share_pct = p->step_ns ? 100.0 * (double)r->total_ns / (double)p->step_ns : 0;
        r->modeled = !o->unmodeled && o->calls > 0;
        double calls = o->calls > 0 ? (double)o->calls : 1;
        if (r->modeled) {
            r->flops_model = o->flops / calls;
            r->bytes_model = o->bytes / calls;
        }
        r->cpu_calls = o->cpu_calls;
        r->cpu_mask = o->cpu_mask;
        for (int e = 0; e < GS_CPUC_COUNT && o->cpu_calls; e++)
            r->cpu[e] = o->cpu[e] / (double)o->cpu_calls;
        r->measured_calls = o->measured_calls;
        r->bytes_measured = o->measured_calls ? o->measured / (double)o->measured_calls : 0;
        double bytes = o->measured_calls ? r->bytes_measured * (double)o->calls : o->bytes;
        gs_roofline_eval(p->have_peaks ? &p->peaks : &(gs_peaks){0}, r->modeled ? o->flops : 0,
                         r->modeled || o->measured_calls ? bytes : 0, (double)r->total_ns * 1e-9, &r->roof);
    }
    qsort(p->ops, (size_t)p->n_ops, sizeof *p->ops, op_by_time);
}

static double mean_or_nan(const double *sum, const long *cnt, int k)
{
    return cnt[k] ? sum[k] / (double)cnt[k] : NAN;
}

static int build_kernels(gather *g, gs_profile *p)
{
    /* Group by name: sort a permutation by name id, then by append order. */
    size_t n = g->n_kerns;
    if (!n)
        return 0;
    gs_profile_kernel_row *rows = calloc(n, sizeof *rows);
    uint32_t *names = calloc(n, sizeof *names);
    double (*sum)[M_COUNT] = calloc(n, sizeof *sum);
    long (*cnt)[M_COUNT] = calloc(n, sizeof *cnt);
    if (!rows || !names || !sum || !cnt) {
        free(rows);
        free(names);
        free(sum);
        free(cnt);
        return -1;
    }
    int n_rows = 0;
    uint64_t total = 0;
    /* kerns are sorted by correlation id, which grows with launch order. */
    for (size_t i = 0; i < n; i++) {
        kern_rec *k = &g->kerns[i];
        int r = 0;
        while (r < n_rows && names[r] != k->name)
            r++;
        if (r == n_rows) {
            names[n_rows++] = k->name;
            snprintf(rows[r].name, sizeof rows[r].name, "%s", gs_store_string(g->s, k->name));
        }
        gs_profile_kernel_row *row = &rows[r];
        inst_rec *in = find_inst(g, k->range_id);
        if (in)
            snprintf(row->op, sizeof row->op, "%s", gs_store_string(g->s, in->name));
        memcpy(row->grid, k->launch.grid, sizeof row->grid);
        memcpy(row->block, k->launch.block, sizeof row->block);
        if (k->m_mask) {
            row->m.launches++;
            for (int m = 0; m < M_COUNT; m++)
                if (k->m_mask & (1u << m)) {
                    sum[r][m] += k->m[m];
                    cnt[r][m]++;
                }
            /* DRAM bytes are read + write: a launch counts when it has either. */
        }
        if (!step_excluded(g, k->step)) {
            row->calls++;
            row->total_ns += k->dur_ns;
            total += k->dur_ns;
        }
    }
    for (int r = 0; r < n_rows; r++) {
        gs_profile_kernel_metrics *m = &rows[r].m;
        double rd = mean_or_nan(sum[r], cnt[r], M_DRAM_READ), wr = mean_or_nan(sum[r], cnt[r], M_DRAM_WRITE);
        m->dram_bytes = isnan(rd) && isnan(wr) ? NAN : (isnan(rd) ? 0 : rd) + (isnan(wr) ? 0 : wr);
        m->l2_bytes = mean_or_nan(sum[r], cnt[r], M_L2_BYTES);
        m->l2_hit_pct = mean_or_nan(sum[r], cnt[r], M_L2_HIT);
        m->l1_bytes = mean_or_nan(sum[r], cnt[r], M_L1_BYTES);
        m->l1_hit_pct = mean_or_nan(sum[r], cnt[r], M_L1_HIT);
        m->shared_wavefronts = mean_or_nan(sum[r], cnt[r], M_SHARED);
        m->tensor_pct = mean_or_nan(sum[r], cnt[r], M_TENSOR);
        m->issue_pct = mean_or_nan(sum[r], cnt[r], M_ISSUE);
        m->metric_time_ns = mean_or_nan(sum[r], cnt[r], M_TIME);
        rows[r].share_pct = total ? 100.0 * (double)rows[r].total_ns / (double)total : 0;
    }
    qsort(rows, (size_t)n_rows, sizeof *rows, kernel_by_time);
    free(names);
    free(sum);
    free(cnt);
    p->kernels = rows;
    p->n_kernels = n_rows;
    p->kernel_ns = total;
    return 0;
}

int gs_profile_build(gs_event_store *s, const gs_cost_config *cost, const gs_peaks *peaks, gs_profile *p)
{
    memset(p, 0, sizeof *p);
    gather g;
    memset(&g, 0, sizeof g);
    g.s = s;
    gs_store_visit(s, gs_store_first(s), gs_store_count(s), visit, &g);
    int rc = g.failed ? -1 : 0;
    if (peaks) {
        p->peaks = *peaks;
        p->have_peaks = peaks->flops_per_s > 0 && peaks->bw_bytes_per_s > 0;
    }
    if (rc == 0) {
        if (g.n_insts) /* qsort and bsearch want a real array even for zero elements */
            qsort(g.insts, g.n_insts, sizeof *g.insts, by_range_id);
        if (g.n_kerns)
            qsort(g.kerns, g.n_kerns, sizeof *g.kerns, by_corr);
        /* Kernels: their op instance (and through it their step). */
        for (size_t i = 0; i < g.n_kerns; i++) {
            kern_rec *k = &g.kerns[i];
            inst_rec *in = find_inst(&g, k->range_id);
            if (in) {
                k->step = in->step;
                in->kernel_ns += k->dur_ns;
                in->n_kernels++;
            }
        }
        /* Metrics: onto their kernel, and DRAM bytes onto the op instance. */
        for (size_t i = 0; i < g.n_mets; i++) {
            metric_rec *m = &g.mets[i];
            if (m->cpu >= 0) {
                /* CPU counters: one value per event on the op's own range. */
                inst_rec *in = find_inst(&g, m->range_id);
                if (in) {
                    in->cpu[m->cpu] += m->value;
                    in->cpu_mask |= 1u << m->cpu;
                    p->have_cpu_counters = 1;
                }
                continue;
            }
            kern_rec *k = m->scope == GS_METRIC_KERNEL ? find_kern(&g, m->corr) : NULL;
            if (k) {
                k->m[m->kind] += m->value;
                k->m_mask |= 1u << m->kind;
            }
            if (m->kind != M_DRAM_READ && m->kind != M_DRAM_WRITE)
                continue;
            inst_rec *in = find_inst(&g, m->range_id ? m->range_id : k ? k->range_id : 0);
            if (!in)
                continue;
            /* Kernel-scope metrics add up to the op; op-scope ones are used
             * only when the op has no kernel-scope ones (never both). */
            if (m->scope == GS_METRIC_KERNEL) {
                in->dram_kernel += m->value;
                in->has_dram_kernel = 1;
            } else {
                in->dram_op += m->value;
                in->has_dram_op = 1;
            }
            p->have_metrics = 1;
        }
        for (size_t i = 0; i < g.n_steps; i++) {
            step_rec *st = &g.steps[i];
            if (st->metrics) {
                p->metrics_steps++;
                continue;
            }
            if (!st->has_range)
                continue;
            p->steps++;
            p->step_ns += st->dur_ns;
            if (cost && (st->shape_mask & SH_NEEDED) == SH_NEEDED) {
                gs_op_cost oc;
                gs_step_cost(cost, &st->shape, &oc);
                p->step_model.flops += oc.flops;
                p->step_model.bytes += oc.bytes;
                p->step_model.weight_bytes += oc.weight_bytes;
                p->step_model.act_bytes += oc.act_bytes;
                p->step_model.kv_bytes += oc.kv_bytes;
                p->step_model.score_bytes += oc.score_bytes;
            }
        }
        p->have_kernels = g.n_kerns > 0;
        p->ops = calloc(GS_OP_TABLE_MAX, sizeof *p->ops);
        op_acc *acc = calloc(GS_OP_TABLE_MAX, sizeof *acc);
        int n_acc = 0;
        if (!p->ops || !acc)
            rc = -1;
        else
            build_ops(&g, cost, p, acc, &n_acc);
        free(acc);
        if (rc == 0)
            rc = build_kernels(&g, p);
    }
    free(g.steps);
    free(g.insts);
    free(g.kerns);
    free(g.mets);
    if (rc)
        gs_profile_free(p);
    return rc;
}

void gs_profile_free(gs_profile *p)
{
    free(p->ops);
    free(p->kernels);
    p->ops = NULL;
    p->kernels = NULL;
    p->n_ops = p->n_kernels = 0;
}

/* ---- text ---- */

/* v with an SI prefix in 7 columns: "  1.23k", " 456.0M"; "-" when absent. */
static const char *si(char *buf, size_t cap, double v, int present)
{
    static const char *const pre[] = {"", "k", "M", "G", "T", "P", "E"};
    if (!present || isnan(v)) {
        snprintf(buf, cap, "-");
        return buf;
    }
    int i = 0;
    double a = fabs(v);
    while (a >= 999.95 && i < 6) {
        a /= 1000;
        v /= 1000;
        i++;
    }
    snprintf(buf, cap, i ? "%.3g%s" : "%.4g%s", v, pre[i]);
    return buf;
}

static int has_cpu(const gs_profile_op_row *r, int e) { return r->cpu_calls > 0 && (r->cpu_mask & (1u << e)); }

/* LLC hit rate in percent, NAN without both counts. */
static double llc_hit_pct(const gs_profile_op_row *r)
{
    if (!has_cpu(r, GS_CPUC_LLC_LOADS) || !has_cpu(r, GS_CPUC_LLC_MISSES) || r->cpu[GS_CPUC_LLC_LOADS] <= 0)
        return NAN;
    double hit = 100.0 * (1.0 - r->cpu[GS_CPUC_LLC_MISSES] / r->cpu[GS_CPUC_LLC_LOADS]);
    return hit < 0 ? 0 : hit; /* misses and loads count at slightly different points */
}

/* The CPU backend's measured cache counters per op, beside the modeled bytes. */
static void print_cpu_counters(FILE *f, const gs_profile *p)
{
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], hit[16], ipc[16];
    fprintf(f, "\ncpu counters (measured: perf_event_open, user space, all backend threads; per call, mean)\n"
               "  LLC miss B = LLC read misses x %d B: demand reads the last-level cache could not serve, a lower\n"
               "  bound of DRAM reads (prefetches and write-backs not counted); B/call (model) = analytic minimum\n",
            GS_CPUC_LINE_BYTES);
    fprintf(f, "%-20s %7s %10s %10s %11s %7s %10s %10s %10s %6s\n", "op", "calls", "LLC loads", "LLC miss",
            "LLC miss B", "LLC hit", "B/call", "cache ref", "cache miss", "IPC");
    fprintf(f, "%-20s %7s %10s %10s %11s %7s %10s %10s %10s %6s\n", "", "", "(m)", "(m)", "(m, x64)", "(m)",
            "(model)", "(m)", "(m)", "(m)");
    for (int i = 0; i < p->n_ops; i++) {
        const gs_profile_op_row *r = &p->ops[i];
        if (!r->cpu_calls)
            continue;
        double h = llc_hit_pct(r);
        snprintf(hit, sizeof hit, isnan(h) ? "-" : "%.1f%%", h);
        int have_ipc = has_cpu(r, GS_CPUC_INSTRUCTIONS) && has_cpu(r, GS_CPUC_CYCLES) && r->cpu[GS_CPUC_CYCLES] > 0;
        snprintf(ipc, sizeof ipc, have_ipc ? "%.2f" : "-",
                 have_ipc ? r->cpu[GS_CPUC_INSTRUCTIONS] / r->cpu[GS_CPUC_CYCLES] : 0);
        fprintf(f, "%-20s %7ld %10s %10s %11s %7s %10s %10s %10s %6s\n", r->name, r->cpu_calls,
                si(b1, sizeof b1, r->cpu[GS_CPUC_LLC_LOADS], has_cpu(r, GS_CPUC_LLC_LOADS)),
                si(b2, sizeof b2, r->cpu[GS_CPUC_LLC_MISSES], has_cpu(r, GS_CPUC_LLC_MISSES)),
                si(b3, sizeof b3, r->cpu[GS_CPUC_LLC_MISSES] * GS_CPUC_LINE_BYTES, has_cpu(r, GS_CPUC_LLC_MISSES)),
                hit, si(b4, sizeof b4, r->bytes_model, r->modeled),
                si(b5, sizeof b5, r->cpu[GS_CPUC_CACHE_REFS], has_cpu(r, GS_CPUC_CACHE_REFS)),
                si(b6, sizeof b6, r->cpu[GS_CPUC_CACHE_MISSES], has_cpu(r, GS_CPUC_CACHE_MISSES)), ipc);
    }
}

void gs_profile_report_print(FILE *f, const gs_profile *p)
{
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    double steps = p->steps > 0 ? (double)p->steps : 1;
    fprintf(f, "profile  %ld steps timed, %ld metrics steps left out; step %.3f ms mean (host wall, measured)\n",
            p->steps, p->metrics_steps, (double)p->step_ns * 1e-6 / steps);
    if (p->have_peaks)
        fprintf(f, "peaks    %s: %s copy %sB/s, matmul %sFLOP/s %s (measured %s)\n", p->peaks.backend,
                p->peaks.device, si(b1, sizeof b1, p->peaks.bw_bytes_per_s, 1),
                si(b2, sizeof b2, p->peaks.flops_per_s, 1), p->peaks.precision,
                p->peaks.from_cache ? "earlier, cached" : "now");
    else
        fprintf(f, "peaks    not measured: no roofline\n");
    fprintf(f, "model    per step %sFLOP, %sB minimum traffic (model)\n",
            si(b1, sizeof b1, p->step_model.flops / steps, 1), si(b2, sizeof b2, p->step_model.bytes / steps, 1));
    fprintf(f, "bytes    %s\n\n",
            p->have_metrics ? "(m) = measured DRAM read+write (CUPTI metrics, mean of the sampled calls); (model) = analytic minimum"
            : p->have_cpu_counters ? "all modeled (model) here: no DRAM metrics; measured CPU cache counters in their own table below"
                                   : "all modeled (model): no hardware metrics in this run");

    fprintf(f, "%-20s %7s %10s %10s %6s %10s %10s %10s   time: %s\n", "op", "calls", "total ms", "mean us",
            "share", "FLOP/call", "B/call", "B/call", p->have_kernels ? "device (kernels) where launched, measured"
                                                                    : "host wall, measured");
    fprintf(f, "%-20s %7s %10s %10s %6s %10s %10s %10s\n", "", "", "", "", "", "(model)", "(model)", "(m)");
    for (int i = 0; i < p->n_ops; i++) {
        const gs_profile_op_row *r = &p->ops[i];
        double mean_us = r->calls ? (double)r->total_ns * 1e-3 / (double)r->calls : 0;
        fprintf(f, "%-20s %7ld %10.3f %10.2f %5.1f%% %10s %10s %10s\n", r->name, r->calls,
                (double)r->total_ns * 1e-6, mean_us, r->share_pct, si(b1, sizeof b1, r->flops_model, r->modeled),
                si(b2, sizeof b2, r->bytes_model, r->modeled),
                si(b3, sizeof b3, r->bytes_measured, r->measured_calls > 0));
    }
    if (p->have_cpu_counters)
        print_cpu_counters(f, p);

    fprintf(f, "\nroofline (FLOPs modeled; bytes (m) where measured, else (model); time measured)\n");
    fprintf(f, "%-20s %8s %10s %10s %12s %7s  %s\n", "op", "AI F/B", "FLOP/s", "B/s", "attainable", "%roof",
            "bound (bytes)");
    int over = 0;
    for (int i = 0; i < p->n_ops; i++) {
        const gs_profile_op_row *r = &p->ops[i];
        int any = r->modeled || r->measured_calls > 0;
        if (!any || r->calls == 0)
            continue;
        fprintf(f, "%-20s %8.2f %10s %10s %12s %6.1f%%  %s%s\n", r->name, r->roof.intensity,
                si(b1, sizeof b1, r->roof.flops_per_s, r->modeled), si(b2, sizeof b2, r->roof.bytes_per_s, 1),
                si(b3, sizeof b3, r->roof.attainable_flops_per_s, p->have_peaks && r->modeled),
                r->roof.pct_of_roofline, p->have_peaks ? (r->roof.compute_bound ? "compute" : "memory") : "-",
                r->measured_calls ? " (m)" : " (model)");
        over |= p->have_peaks && r->roof.pct_of_roofline > 100;
    }
    if (over)
        fprintf(f, "(above 100%%: the op's bytes came from a cache faster than the peak copy bandwidth,\n"
                   " or moved fewer bytes than the model's minimum; the peaks are DRAM-sized measurements)\n");

    if (!p->have_kernels) {
        fprintf(f, "\nkernels  none recorded (the CPU backend runs no device kernels)\n");
        return;
    }
    fprintf(f, "\n%-40s %-16s %6s %10s %9s %6s %16s %10s %10s %6s %10s %6s  (device time, measured; bytes (m))\n",
            "kernel", "op", "calls", "total ms", "mean us", "share", "grid x block", "DRAM B", "L2 B", "L2hit",
            "L1 B", "L1hit");
    for (int i = 0; i < p->n_kernels; i++) {
        const gs_profile_kernel_row *k = &p->kernels[i];
        char launch[48], l2h[16], l1h[16];
        snprintf(launch, sizeof launch, "%ux%ux%u x %u", k->grid[0], k->grid[1], k->grid[2],
                 (unsigned)k->block[0] * k->block[1] * k->block[2]);
        snprintf(l2h, sizeof l2h, isnan(k->m.l2_hit_pct) ? "-" : "%.1f%%", k->m.l2_hit_pct);
        snprintf(l1h, sizeof l1h, isnan(k->m.l1_hit_pct) ? "-" : "%.1f%%", k->m.l1_hit_pct);
        fprintf(f, "%-40.40s %-16.16s %6ld %10.3f %9.2f %5.1f%% %16s %10s %10s %6s %10s %6s\n", k->name,
                k->op[0] ? k->op : "?", k->calls, (double)k->total_ns * 1e-6,
                k->calls ? (double)k->total_ns * 1e-3 / (double)k->calls : 0, k->share_pct, launch,
                si(b4, sizeof b4, k->m.dram_bytes, 1), si(b5, sizeof b5, k->m.l2_bytes, 1), l2h,
                si(b6, sizeof b6, k->m.l1_bytes, 1), l1h);
    }
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* A number, or null where it is absent (JSON has no NaN). */
static void json_num(FILE *f, const char *key, double v, int present, int comma)
{
    fprintf(f, "\"%s\":", key);
    if (present && isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
    if (comma)
        fputc(',', f);
}

void gs_profile_report_json(FILE *f, const gs_profile *p)
{
    fprintf(f, "{\"steps_timed\":%ld,\"metrics_steps_excluded\":%ld,\"step_ns_total\":%llu,", p->steps,
            p->metrics_steps, (unsigned long long)p->step_ns);
    fprintf(f, "\"time_source\":\"%s\",\"bytes_source\":\"%s\",", p->have_kernels ? "device" : "host",
            p->have_metrics ? "measured where collected, else model" : "model");
    json_num(f, "step_flops_model", p->step_model.flops, 1, 1);
    json_num(f, "step_bytes_model", p->step_model.bytes, 1, 1);
    fputs("\"peaks\":", f);
    if (p->have_peaks) {
        fputs("{\"backend\":", f);
        json_str(f, p->peaks.backend);
        fputs(",\"device\":", f);
        json_str(f, p->peaks.device);
        fprintf(f, ",\"bandwidth_bytes_per_s\":%.6g,\"flops_per_s\":%.6g,\"precision\":\"%s\",\"source\":\"%s\"},",
                p->peaks.bw_bytes_per_s, p->peaks.flops_per_s, p->peaks.precision,
                p->peaks.from_cache ? "measured, cached" : "measured");
    } else {
        fputs("null,", f);
    }
    fputs("\"ops\":[", f);
    for (int i = 0; i < p->n_ops; i++) {
        const gs_profile_op_row *r = &p->ops[i];
        fprintf(f, "%s{\"name\":", i ? "," : "");
        json_str(f, r->name);
        fprintf(f, ",\"calls\":%ld,\"total_ns\":%llu,\"time_source\":\"%s\",", r->calls,
                (unsigned long long)r->total_ns, r->device_time ? "device" : "host");
        json_num(f, "mean_ns", r->calls ? (double)r->total_ns / (double)r->calls : 0, 1, 1);
        json_num(f, "share_pct", r->share_pct, 1, 1);
        json_num(f, "flops_per_call_model", r->flops_model, r->modeled, 1);
        json_num(f, "bytes_per_call_model", r->bytes_model, r->modeled, 1);
        json_num(f, "bytes_per_call_measured", r->bytes_measured, r->measured_calls > 0, 1);
        fprintf(f, "\"measured_calls\":%ld,\"roofline_bytes_source\":\"%s\",", r->measured_calls,
                r->measured_calls ? "measured" : "model");
        json_num(f, "flops_per_s", r->roof.flops_per_s, r->modeled, 1);
        json_num(f, "bytes_per_s", r->roof.bytes_per_s, r->modeled || r->measured_calls, 1);
        json_num(f, "intensity", r->roof.intensity, r->modeled, 1);
        json_num(f, "attainable_flops_per_s", r->roof.attainable_flops_per_s, p->have_peaks && r->modeled, 1);
        json_num(f, "pct_of_roofline", r->roof.pct_of_roofline, p->have_peaks && (r->modeled || r->measured_calls), 1);
        fprintf(f, "\"bound\":%s,", p->have_peaks && r->modeled ? (r->roof.compute_bound ? "\"compute\"" : "\"memory\"") : "null");
        fputs("\"cpu_counters\":", f);
        if (r->cpu_calls) {
            /* Per call, measured; null for events this CPU did not count. */
            fprintf(f, "{\"source\":\"measured (perf_event_open, user space, all backend threads)\",\"calls\":%ld,",
                    r->cpu_calls);
            static const char *const keys[GS_CPUC_COUNT] = {"llc_loads", "llc_misses", "cache_misses",
                                                            "cache_references", "instructions", "cycles"};
            for (int e = 0; e < GS_CPUC_COUNT; e++)
                json_num(f, keys[e], r->cpu[e], has_cpu(r, e), 1);
            json_num(f, "llc_miss_bytes", r->cpu[GS_CPUC_LLC_MISSES] * GS_CPUC_LINE_BYTES,
                     has_cpu(r, GS_CPUC_LLC_MISSES), 1);
            double h = llc_hit_pct(r);
            json_num(f, "llc_hit_pct", h, !isnan(h), 0);
            fputs("}}", f);
        } else {
            fputs("null}", f);
        }
    }
    fputs("],\"kernels\":[", f);
    for (int i = 0; i < p->n_kernels; i++) {
        const gs_profile_kernel_row *k = &p->kernels[i];
        fprintf(f, "%s{\"name\":", i ? "," : "");
        json_str(f, k->name);
        fputs(",\"op\":", f);
        json_str(f, k->op);
        fprintf(f, ",\"calls\":%ld,\"total_ns\":%llu,", k->calls, (unsigned long long)k->total_ns);
        json_num(f, "share_pct", k->share_pct, 1, 1);
        fprintf(f, "\"grid\":[%u,%u,%u],\"block\":[%u,%u,%u],\"metric_launches\":%ld,", k->grid[0], k->grid[1],
                k->grid[2], k->block[0], k->block[1], k->block[2], k->m.launches);
        json_num(f, "dram_bytes_measured", k->m.dram_bytes, 1, 1);
        json_num(f, "l2_bytes_measured", k->m.l2_bytes, 1, 1);
        json_num(f, "l2_hit_pct", k->m.l2_hit_pct, 1, 1);
        json_num(f, "l1_bytes_measured", k->m.l1_bytes, 1, 1);
        json_num(f, "l1_hit_pct", k->m.l1_hit_pct, 1, 1);
        json_num(f, "shared_wavefronts", k->m.shared_wavefronts, 1, 1);
        json_num(f, "tensor_pipe_pct", k->m.tensor_pct, 1, 1);
        json_num(f, "issue_active_pct", k->m.issue_pct, 1, 0);
        fputc('}', f);
    }
    fputs("]}", f);
}
