/* compare_report.c - A and B from their stores, as text, Markdown and CSV (see the header). */
#include "compare_report.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile_report.h"

/* One step of one store: its wall time and phase. */
typedef struct step_rec {
    uint64_t dur_ns;
    double prefill, decode;     /* tokens, from the step.* counters */
    int seen, excluded;
} step_rec;

typedef struct op_acc {
    char name[48];
    double *ms;                 /* us per step slot: summed over the op's calls in that step */
    unsigned char *present;
} op_acc;

/* Everything one store gives, indexed by step - first. */
typedef struct side {
    int64_t first, last;
    step_rec *steps;
    op_acc *ops;
    int n_ops, cap_ops;
    int oom;
    gs_event_store *store;
    uint32_t id_prefill, id_decode, id_metrics;
} side;

static int visit_bounds(void *ctx, uint64_t index, const gs_event *ev)
{
    (void)index;
    side *s = ctx;
    if (ev->kind == GS_EV_RANGE && ev->level == GS_RANGE_STEP && ev->step >= 0) {
        if (s->first < 0 || ev->step < s->first)
            s->first = ev->step;
        if (ev->step > s->last)
            s->last = ev->step;
    }
    return 0;
}

static op_acc *op_find(side *s, const char *name)
{
    for (int i = 0; i < s->n_ops; i++)
        if (strcmp(s->ops[i].name, name) == 0)
            return &s->ops[i];
    if (s->n_ops == s->cap_ops) {
        int cap = s->cap_ops ? 2 * s->cap_ops : 32;
        op_acc *o = realloc(s->ops, (size_t)cap * sizeof *o);
        if (!o)
            return NULL;
        s->ops = o;
        s->cap_ops = cap;
    }
    size_t n = (size_t)(s->last - s->first + 1);
    op_acc *o = &s->ops[s->n_ops];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", name);
    o->ms = calloc(n, sizeof *o->ms);
    o->present = calloc(n, 1);
    if (!o->ms || !o->present) {
        free(o->ms);
        free(o->present);
        return NULL;
    }
    s->n_ops++;
    return o;
}

static int in_range(const side *s, int64_t step) { return step >= s->first && step <= s->last; }

static int visit_fill(void *ctx, uint64_t index, const gs_event *ev)
{
    (void)index;
    side *s = ctx;
    if (ev->kind == GS_EV_MARKER && ev->name == s->id_metrics) {
        int64_t st = (int64_t)ev->value;
        if (in_range(s, st))
            s->steps[st - s->first].excluded = 1;
        return 0;
    }
    if (!in_range(s, ev->step))
        return 0;
    step_rec *r = &s->steps[ev->step - s->first];
    if (ev->kind == GS_EV_RANGE && ev->level == GS_RANGE_STEP) {
        r->dur_ns = ev->dur_ns;
        r->seen = 1;
    } else if (ev->kind == GS_EV_COUNTER && ev->name == s->id_prefill) {
        r->prefill = ev->value;
    } else if (ev->kind == GS_EV_COUNTER && ev->name == s->id_decode) {
        r->decode = ev->value;
    } else if (ev->kind == GS_EV_RANGE && ev->level == GS_RANGE_OP) {
        op_acc *o = op_find(s, gs_store_string(s->store, ev->name));
        if (!o) {
            s->oom = 1;
            return 1;
        }
        o->ms[ev->step - s->first] += (double)ev->dur_ns * 1e-3; /* us: ops are short */
        o->present[ev->step - s->first] = 1;
    }
    return 0;
}

/* An id for a name the store may not hold: GS_STORE_NO_ID then (matches nothing). */
static uint32_t find_id(gs_event_store *st, const char *name)
{
    uint32_t n = gs_store_n_strings(st);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(gs_store_string(st, i), name) == 0)
            return i;
    return GS_STORE_NO_ID;
}

static void side_free(side *s)
{
    for (int i = 0; i < s->n_ops; i++) {
        free(s->ops[i].ms);
        free(s->ops[i].present);
    }
    free(s->ops);
    free(s->steps);
}

static int side_load(side *s, gs_event_store *st)
{
    memset(s, 0, sizeof *s);
    s->store = st;
    s->first = -1;
    s->last = -1;
    gs_store_visit(st, 0, UINT64_MAX, visit_bounds, s);
    if (s->first < 0)
        return 0; /* no steps: every figure stays empty */
    s->id_prefill = find_id(st, "step.prefill_tokens");
    s->id_decode = find_id(st, "step.decode_tokens");
    s->id_metrics = find_id(st, GS_PROFILE_MARKER_METRICS_STEP);
    s->steps = calloc((size_t)(s->last - s->first + 1), sizeof *s->steps);
    if (!s->steps)
        return -1;
    gs_store_visit(st, 0, UINT64_MAX, visit_fill, s);
    return s->oom ? -1 : 0;
}

static long n_slots(const side *s) { return s->first < 0 ? 0 : (long)(s->last - s->first + 1); }
static int timed(const step_rec *r) { return r->seen && !r->excluded; }
static int is_decode(const step_rec *r) { return r->decode > 0 && r->prefill == 0; }

enum { SAMPLE_DECODE_TPS, SAMPLE_PREFILL_TPS, SAMPLE_STEP_MS };

/* The per-step samples of one summary figure. */
static long step_samples(const side *s, int what, double *x)
{
    long n = 0;
    for (long i = 0; i < n_slots(s); i++) {
        const step_rec *r = &s->steps[i];
        if (!timed(r) || r->dur_ns == 0)
            continue;
        double sec = (double)r->dur_ns * 1e-9;
        if (what == SAMPLE_DECODE_TPS && is_decode(r))
            x[n++] = r->decode / sec;
        else if (what == SAMPLE_PREFILL_TPS && r->prefill > 0)
            x[n++] = r->prefill / sec; /* mixed steps count with prefill, as bench does */
        else if (what == SAMPLE_STEP_MS && is_decode(r))
            x[n++] = sec * 1e3;
    }
    return n;
}

static long count_decode(const side *s)
{
    long n = 0;
    for (long i = 0; i < n_slots(s); i++)
        n += timed(&s->steps[i]) && is_decode(&s->steps[i]);
    return n;
}

static long op_samples(const side *s, const char *name, int decode_only, double *x)
{
    const op_acc *o = NULL;
    for (int i = 0; i < s->n_ops && !o; i++)
        if (strcmp(s->ops[i].name, name) == 0)
            o = &s->ops[i];
    long n = 0;
    for (long i = 0; o && i < n_slots(s); i++)
        if (o->present[i] && timed(&s->steps[i]) && (!decode_only || is_decode(&s->steps[i])))
            x[n++] = o->ms[i];
    return n;
}

static int summarize_pair(gs_cmp_row *row, const double *xa, long na, const double *xb, long nb, int have_b)
{
    if (gs_stats_summarize(xa, na, &row->a) || gs_stats_summarize(xb, nb, &row->b))
        return -1;
    if (have_b)
        gs_stats_compare(&row->a, &row->b, row->higher_better, &row->c);
    return 0;
}

static int cmp_rows(const void *p, const void *q)
{
    const gs_cmp_row *x = p, *y = q;
    /* By |delta| when there is a B, else by A's median: both largest first. */
    double kx = x->b.n ? fabs(x->c.delta) : x->a.median, ky = y->b.n ? fabs(y->c.delta) : y->a.median;
    return (kx < ky) - (kx > ky);
}

int gs_cmp_build(const gs_cmp_source *a, const gs_cmp_source *b, gs_cmp_report *out)
{
    memset(out, 0, sizeof *out);
    out->a = *a;
    out->have_b = b != NULL;
    if (b)
        out->b = *b;
    side sa, sb;
    memset(&sb, 0, sizeof sb);
    sb.first = sb.last = -1;
    int rc = side_load(&sa, a->store);
    if (rc == 0 && b)
        rc = side_load(&sb, b->store);
    long cap = n_slots(&sa) > n_slots(&sb) ? n_slots(&sa) : n_slots(&sb);
    double *xa = malloc((size_t)(cap + 1) * sizeof *xa), *xb = malloc((size_t)(cap + 1) * sizeof *xb);
    if (rc || !xa || !xb)
        goto fail;
    for (long i = 0; i < n_slots(&sa); i++)
        out->steps_a += timed(&sa.steps[i]);
    for (long i = 0; i < n_slots(&sb); i++)
        out->steps_b += timed(&sb.steps[i]);

    static const struct { const char *name, *unit; int what, higher; } sums[GS_CMP_N_SUMMARY] = {
        [GS_CMP_DECODE_TPS] = {"decode tokens/s", "tokens/s", SAMPLE_DECODE_TPS, 1},
        [GS_CMP_PREFILL_TPS] = {"prefill tokens/s", "tokens/s", SAMPLE_PREFILL_TPS, 1},
        [GS_CMP_MS_PER_TOKEN] = {"ms/token (decode step)", "ms", SAMPLE_STEP_MS, 0},
    };
    for (int k = 0; k < GS_CMP_N_SUMMARY; k++) {
        gs_cmp_row *row = &out->summary[k];
        snprintf(row->name, sizeof row->name, "%s", sums[k].name);
        row->unit = sums[k].unit;
        row->higher_better = sums[k].higher;
        long na = step_samples(&sa, sums[k].what, xa), nb = step_samples(&sb, sums[k].what, xb);
        if (summarize_pair(row, xa, na, xb, nb, out->have_b))
            goto fail;
    }
    /* Per op over decode steps when both sides have enough of them: prefill
     * steps do far more work per op, and mixing both makes one wide spread. */
    int decode_only = count_decode(&sa) >= GS_STATS_MIN_SAMPLES && (!b || count_decode(&sb) >= GS_STATS_MIN_SAMPLES);
    out->op_basis = decode_only ? "decode step" : "step";
    out->ops = calloc((size_t)(sa.n_ops + sb.n_ops + 1), sizeof *out->ops);
    if (!out->ops)
        goto fail;
    for (int pass = 0; pass < 2; pass++) {
        const side *s = pass ? &sb : &sa;
        for (int i = 0; i < s->n_ops; i++) {
            const char *name = s->ops[i].name;
            int dup = 0;
            for (int j = 0; j < out->n_ops && !dup; j++)
                dup = strcmp(out->ops[j].name, name) == 0;
            if (dup)
                continue;
            gs_cmp_row *row = &out->ops[out->n_ops++];
            snprintf(row->name, sizeof row->name, "%s", name);
            row->unit = "us";
            long na = op_samples(&sa, name, decode_only, xa), nb = op_samples(&sb, name, decode_only, xb);
            if (summarize_pair(row, xa, na, xb, nb, out->have_b))
                goto fail;
        }
    }
    qsort(out->ops, (size_t)out->n_ops, sizeof *out->ops, cmp_rows);
    free(xa);
    free(xb);
    side_free(&sa);
    side_free(&sb);
    return 0;
fail:
    free(xa);
    free(xb);
    side_free(&sa);
    side_free(&sb);
    gs_cmp_free(out);
    return -1;
}

void gs_cmp_free(gs_cmp_report *r)
{
    free(r->ops);
    r->ops = NULL;
    r->n_ops = 0;
}

/* ---- writers ---- */

static const char *verdict_text(const gs_cmp_report *r, const gs_cmp_row *row)
{
    return r->have_b && row->a.n && row->b.n ? gs_verdict_name(row->c.verdict) : "-";
}

/* About four significant digits without an exponent: 54190, 60.27, 0.07382. */
static int fmt_num(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    int dec = a >= 1000 || a == 0 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : a >= 0.1 ? 4 : a >= 0.01 ? 5 : 6;
    return snprintf(buf, cap, "%.*f", dec, v);
}

/* "12.35 [12.10, 12.60]" or "-" when there are no samples. */
static void fmt_summary(char *buf, size_t cap, const gs_stat_summary *s)
{
    if (!s->n) {
        snprintf(buf, cap, "-");
        return;
    }
    char m[32], lo[32], hi[32];
    fmt_num(m, sizeof m, s->median);
    fmt_num(lo, sizeof lo, s->lo);
    fmt_num(hi, sizeof hi, s->hi);
    snprintf(buf, cap, "%s [%s, %s]", m, lo, hi);
}

static void fmt_delta(char *buf, size_t cap, const gs_cmp_report *r, const gs_cmp_row *row, int pct)
{
    if (!r->have_b || !row->a.n || !row->b.n) {
        snprintf(buf, cap, "-");
        return;
    }
    char d[32];
    d[0] = row->c.delta >= 0 ? '+' : '-';
    fmt_num(d + 1, sizeof d - 1, fabs(row->c.delta));
    if (pct && row->c.ratio)
        snprintf(buf, cap, "%s (%+.1f%%)", d, 100.0 * (row->c.ratio - 1.0));
    else
        snprintf(buf, cap, "%s", d);
}

static void fmt_ratio(char *buf, size_t cap, const gs_cmp_report *r, const gs_cmp_row *row)
{
    if (!r->have_b || !row->a.n || !row->b.n || row->c.ratio == 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.3fx", row->c.ratio);
}

static void fmt_bytes(char *buf, size_t cap, int have, double v)
{
    if (!have)
        snprintf(buf, cap, "unavailable");
    else if (v >= 1 << 20)
        snprintf(buf, cap, "%.2f MiB", v / (1 << 20));
    else
        snprintf(buf, cap, "%.0f B", v);
}

/* The delta bar: B's extra time to the right of '|', time saved to the left,
 * to scale against the largest |delta| of the table. */
static void bar(char *buf, int width, double delta, double scale)
{
    int n = scale > 0 ? (int)lround(fabs(delta) / scale * width) : 0;
    if (n > width)
        n = width;
    int k = 0;
    for (int i = 0; i < width; i++)
        buf[k++] = delta < 0 && i >= width - n ? '<' : ' ';
    buf[k++] = '|';
    for (int i = 0; i < width; i++)
        buf[k++] = delta > 0 && i < n ? '>' : ' ';
    while (k > 0 && buf[k - 1] == ' ')
        k--;
    buf[k] = '\0';
}

/* KL, top-1 and perplexity of one side as text ("-" when not measured). */
static void quality_cells(const gs_cmp_source *src, char cells[3][32])
{
    if (!src || !src->have_quality) {
        for (int i = 0; i < 3; i++)
            snprintf(cells[i], 32, "-");
        return;
    }
    snprintf(cells[0], 32, "%.4g", src->kl);
    snprintf(cells[1], 32, "%.1f%%", 100.0 * src->top1);
    snprintf(cells[2], 32, "%.4g", src->perplexity);
}

void gs_cmp_print(FILE *f, const gs_cmp_report *r, int bar_width)
{
    char sa[112], sb[112], d[64], q[32];
    fprintf(f, "A        %s\n", r->a.label);
    fprintf(f, "B        %s\n", r->have_b ? r->b.label : "(not run)");
    fprintf(f, "steps    A %ld, B %ld timed\n", r->steps_a, r->steps_b);
    fprintf(f, "figures  median [95%% interval of the median] over the steps; a verdict only when the intervals do not overlap\n\n");
    fprintf(f, "%-24s %-30s %-30s %-18s %-8s %s\n", "summary", "A", "B", "delta (B-A)", "ratio", "verdict");
    for (int k = 0; k < GS_CMP_N_SUMMARY; k++) {
        const gs_cmp_row *row = &r->summary[k];
        fmt_summary(sa, sizeof sa, &row->a);
        fmt_summary(sb, sizeof sb, &row->b);
        fmt_delta(d, sizeof d, r, row, 1);
        fmt_ratio(q, sizeof q, r, row);
        fprintf(f, "%-24s %-30s %-30s %-18s %-8s %s\n", row->name, sa, sb, d, q, verdict_text(r, row));
    }
    fprintf(f, "\n%-24s %-30s %-30s\n", "spread", "A min .. max (steps)", "B min .. max (steps)");
    for (int k = 0; k < GS_CMP_N_SUMMARY; k++) {
        const gs_cmp_row *row = &r->summary[k];
        const gs_stat_summary *ss[2] = {&row->a, &row->b};
        char cell[2][96];
        for (int j = 0; j < 2; j++) {
            char lo[32], hi[32];
            fmt_num(lo, sizeof lo, ss[j]->min);
            fmt_num(hi, sizeof hi, ss[j]->max);
            if (ss[j]->n)
                snprintf(cell[j], sizeof cell[j], "%s .. %s (%ld)", lo, hi, ss[j]->n);
            else
                snprintf(cell[j], sizeof cell[j], "-");
        }
        fprintf(f, "%-24s %-30s %-30s\n", row->name, cell[0], cell[1]);
    }
    char wa[32], wb[32], ka[32], kb[32], ta[32], tb[32];
    fmt_bytes(wa, sizeof wa, r->a.have_memory, r->a.weight_bytes);
    fmt_bytes(wb, sizeof wb, r->have_b && r->b.have_memory, r->b.weight_bytes);
    fmt_bytes(ka, sizeof ka, r->a.have_memory, r->a.kv_bytes);
    fmt_bytes(kb, sizeof kb, r->have_b && r->b.have_memory, r->b.kv_bytes);
    fmt_bytes(ta, sizeof ta, r->a.have_memory, r->a.kv_bytes_per_token);
    fmt_bytes(tb, sizeof tb, r->have_b && r->b.have_memory, r->b.kv_bytes_per_token);
    fprintf(f, "\n%-24s %-30s %s\n", "memory", "A", "B");
    fprintf(f, "%-24s %-30s %s\n", "weights", wa, wb);
    fprintf(f, "%-24s %-30s %s\n", "KV cache", ka, kb);
    fprintf(f, "%-24s %-30s %s\n", "KV bytes/token", ta, tb);
    fprintf(f, "%-24s %-30s %s\n", "DRAM bytes/token", "n/a (host timing only)", "n/a");
    if (r->a.have_quality || (r->have_b && r->b.have_quality)) {
        const gs_cmp_source *qs = r->a.have_quality ? &r->a : &r->b;
        fprintf(f, "\n%-24s %-30s %s\n", "quality vs fp32", "A", "B");
        char qa[3][32], qb[3][32];
        quality_cells(&r->a, qa);
        quality_cells(r->have_b ? &r->b : NULL, qb);
        fprintf(f, "%-24s %-30s %s\n", "KL (nats/token)", qa[0], qb[0]);
        fprintf(f, "%-24s %-30s %s\n", "top-1 agreement", qa[1], qb[1]);
        fprintf(f, "%-24s %-30s %s\n", "perplexity", qa[2], qb[2]);
        fprintf(f, "(%d positions; fp32 baseline perplexity %.4g%s)\n", qs->quality_tokens, qs->base_perplexity,
                qs->quality_illustrative ? "; illustrative only: synthetic weights" : "");
    }

    double scale = 0;
    for (int i = 0; i < r->n_ops; i++)
        if (r->have_b && r->ops[i].a.n && r->ops[i].b.n && fabs(r->ops[i].c.delta) > scale)
            scale = fabs(r->ops[i].c.delta);
    char title[64];
    snprintf(title, sizeof title, "op (us per %s)", r->op_basis ? r->op_basis : "step");
    fprintf(f, "\n%-24s %-30s %-30s %-10s %-8s %-9s %s\n", title, "A", "B", "delta", "ratio", "verdict",
            "B against A (< less time, > more)");
    char *b = malloc((size_t)(2 * bar_width + 2));
    for (int i = 0; i < r->n_ops; i++) {
        const gs_cmp_row *row = &r->ops[i];
        fmt_summary(sa, sizeof sa, &row->a);
        fmt_summary(sb, sizeof sb, &row->b);
        fmt_delta(d, sizeof d, r, row, 0);
        fmt_ratio(q, sizeof q, r, row);
        if (b)
            bar(b, bar_width, r->have_b && row->a.n && row->b.n ? row->c.delta : 0, scale);
        fprintf(f, "%-24s %-30s %-30s %-10s %-8s %-9s %s\n", row->name, sa, sb, d, q, verdict_text(r, row),
                b ? b : "");
    }
    free(b);
}

int gs_cmp_report_format(const char *path)
{
    size_t n = strlen(path);
    if (n > 3 && strcmp(path + n - 3, ".md") == 0)
        return 1;
    if (n > 4 && strcmp(path + n - 4, ".csv") == 0)
        return 2;
    return 0;
}

/* A CSV field: quoted, inner quotes doubled. */
static void csv_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_stat(FILE *f, const gs_stat_summary *s)
{
    if (!s->n)
        fprintf(f, ",0,,,,,");
    else
        fprintf(f, ",%ld,%.9g,%.9g,%.9g,%.9g,%.9g", s->n, s->median, s->lo, s->hi, s->min, s->max);
}

static void csv_row(FILE *f, const gs_cmp_report *r, const char *section, const gs_cmp_row *row)
{
    fprintf(f, "%s,", section);
    csv_str(f, row->name);
    fprintf(f, ",%s,%d", row->unit, row->higher_better);
    csv_stat(f, &row->a);
    csv_stat(f, &row->b);
    if (r->have_b && row->a.n && row->b.n)
        fprintf(f, ",%.9g,%.9g,%s\n", row->c.delta, row->c.ratio, gs_verdict_name(row->c.verdict));
    else
        fprintf(f, ",,,-\n");
}

static void csv_memory(FILE *f, const gs_cmp_report *r, const char *name, double va, double vb)
{
    fprintf(f, "memory,\"%s\",bytes,0", name);
    if (r->a.have_memory)
        fprintf(f, ",1,%.0f,%.0f,%.0f,%.0f,%.0f", va, va, va, va, va);
    else
        fprintf(f, ",0,,,,,");
    int hb = r->have_b && r->b.have_memory;
    if (hb)
        fprintf(f, ",1,%.0f,%.0f,%.0f,%.0f,%.0f", vb, vb, vb, vb, vb);
    else
        fprintf(f, ",0,,,,,");
    if (r->a.have_memory && hb)
        fprintf(f, ",%.0f,%.9g,-\n", vb - va, va ? vb / va : 0.0);
    else
        fprintf(f, ",,,-\n");
}

static void md_row(FILE *f, const gs_cmp_report *r, const gs_cmp_row *row)
{
    char sa[112], sb[112], d[64], q[32];
    fmt_summary(sa, sizeof sa, &row->a);
    fmt_summary(sb, sizeof sb, &row->b);
    fmt_delta(d, sizeof d, r, row, 0);
    fmt_ratio(q, sizeof q, r, row);
    fprintf(f, "| %s | %s | %s | %s | %s | %s |\n", row->name, sa, sb, d, q, verdict_text(r, row));
}

int gs_cmp_write(const gs_cmp_report *r, const char *path, gs_error *err)
{
    int fmt = gs_cmp_report_format(path);
    if (!fmt)
        return gs_error_set(err, GS_ERR_INPUT, "%s: --report writes .md (Markdown) or .csv", path);
    FILE *f = fopen(path, "w");
    if (!f)
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
    if (fmt == 2) {
        fprintf(f, "section,name,unit,higher_is_better,a_n,a_median,a_ci_lo,a_ci_hi,a_min,a_max,"
                   "b_n,b_median,b_ci_lo,b_ci_hi,b_min,b_max,delta,ratio,verdict\n");
        for (int k = 0; k < GS_CMP_N_SUMMARY; k++)
            csv_row(f, r, "summary", &r->summary[k]);
        csv_memory(f, r, "weights", r->a.weight_bytes, r->b.weight_bytes);
        csv_memory(f, r, "KV cache", r->a.kv_bytes, r->b.kv_bytes);
        csv_memory(f, r, "KV bytes/token", r->a.kv_bytes_per_token, r->b.kv_bytes_per_token);
        const char *qn[3] = {"KL", "top-1", "perplexity"};
        const char *qu[3] = {"nats", "fraction", "ppl"};
        for (int k = 0; k < 3; k++) {
            const gs_cmp_source *sides[2] = {&r->a, r->have_b ? &r->b : NULL};
            fprintf(f, "quality,\"%s\",%s,%d", qn[k], qu[k], k == 1);
            double val[2] = {0, 0};
            for (int j = 0; j < 2; j++) {
                const gs_cmp_source *q = sides[j];
                if (q && q->have_quality) {
                    val[j] = k == 0 ? q->kl : k == 1 ? q->top1 : q->perplexity;
                    fprintf(f, ",%d,%.9g,%.9g,%.9g,%.9g,%.9g", q->quality_tokens, val[j], val[j], val[j], val[j], val[j]);
                } else {
                    fprintf(f, ",0,,,,,");
                }
            }
            if (r->a.have_quality && r->have_b && r->b.have_quality)
                fprintf(f, ",%.9g,%.9g,-\n", val[1] - val[0], val[0] ? val[1] / val[0] : 0.0);
            else
                fprintf(f, ",,,-\n");
        }
        for (int i = 0; i < r->n_ops; i++)
            csv_row(f, r, "op", &r->ops[i]);
    } else {
        fprintf(f, "# gptscope compare\n\n- A: `%s`\n- B: `%s`\n- steps: A %ld, B %ld timed\n"
                   "- figures: median [95%% interval of the median] over the steps; a verdict only when the "
                   "intervals do not overlap\n\n",
                r->a.label, r->have_b ? r->b.label : "(not run)", r->steps_a, r->steps_b);
        fprintf(f, "## Summary\n\n| figure | A | B | delta (B-A) | ratio | verdict |\n|---|---|---|---|---|---|\n");
        for (int k = 0; k < GS_CMP_N_SUMMARY; k++)
            md_row(f, r, &r->summary[k]);
        char wa[32], wb[32];
        fprintf(f, "\n## Memory\n\n| figure | A | B |\n|---|---|---|\n");
        const char *names[3] = {"weights", "KV cache", "KV bytes/token"};
        double va[3] = {r->a.weight_bytes, r->a.kv_bytes, r->a.kv_bytes_per_token};
        double vb[3] = {r->b.weight_bytes, r->b.kv_bytes, r->b.kv_bytes_per_token};
        for (int k = 0; k < 3; k++) {
            fmt_bytes(wa, sizeof wa, r->a.have_memory, va[k]);
            fmt_bytes(wb, sizeof wb, r->have_b && r->b.have_memory, vb[k]);
            fprintf(f, "| %s | %s | %s |\n", names[k], wa, wb);
        }
        fprintf(f, "| DRAM bytes/token | n/a (host timing only) | n/a |\n");
        if (r->a.have_quality || (r->have_b && r->b.have_quality)) {
            const gs_cmp_source *q = r->a.have_quality ? &r->a : &r->b;
            char qa[3][32], qb[3][32];
            quality_cells(&r->a, qa);
            quality_cells(r->have_b ? &r->b : NULL, qb);
            fprintf(f, "\n## Quality against the fp32 baseline (%d positions%s)\n\n| figure | A | B |\n|---|---|---|\n"
                       "| KL (nats/token) | %s | %s |\n| top-1 agreement | %s | %s |\n| perplexity | %s | %s |\n",
                    q->quality_tokens, q->quality_illustrative ? "; synthetic weights: illustrative only" : "",
                    qa[0], qb[0], qa[1], qb[1], qa[2], qb[2]);
        }
        fprintf(f, "\n## Per op (us per %s, sorted by |delta|)\n\n| op | A | B | delta | ratio | verdict |\n"
                   "|---|---|---|---|---|---|\n",
                r->op_basis ? r->op_basis : "step");
        for (int i = 0; i < r->n_ops; i++)
            md_row(f, r, &r->ops[i]);
    }
    if (fclose(f) != 0)
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: write failed", path);
    return GS_OK;
}
