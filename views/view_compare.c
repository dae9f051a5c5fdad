/* view_compare.c - A against B in the running program.
 *
 * p pins the running variant as A; the variant that runs after the next
 * toggles is B. Everything here comes from the store: the pin (cmp.pin),
 * each node's median, 95% interval and sample count over the last decode
 * steps (cmp.* counters, src/compare_live.h) and the variant figures
 * (variant.*, toggles.h), indexed by ui.c. Sections, scrolled as one page:
 *
 *   summary   tokens/s, ms/token, prefill, memory, KV and DRAM bytes per
 *             token, quality: A, B, delta, ratio, verdict
 *   per op    summed over layers, sorted by |delta|; a bar of B's time to
 *             the scale of the largest time with a tick at A's
 *   per kernel the same from device records (absent on the CPU: says why)
 *   diff flame B's tree (step > layer > op), widths by B's time, colored
 *             by the verdict against the same node of A
 *
 * A verdict is gs_stats_compare's: a difference inside the spread of the
 * repeated steps is "noise", never a winner. Exact figures (bytes) get
 * smaller/larger; quality (measured once per variant) gets none. */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare_live.h"
#include "toggles.h"
#include "ui.h"
#include "widgets.h"

typedef struct cv_state {
    int scroll;
    int lines;      /* the page's length at the last draw */
    int page;       /* rows it had */
} cv_state;

static cv_state *state(gs_ui *ui)
{
    gs_view *v = &ui->views[GS_VIEW_COMPARE];
    if (!v->state)
        v->state = calloc(1, sizeof(cv_state));
    return v->state;
}

/* A page of lines drawn at an offset: line() answers the screen row of the
 * next line, or -1 when it is scrolled out. */
typedef struct page {
    gs_ui *ui;
    int y0, h, at, scroll;
} page;

static int line(page *p)
{
    int l = p->at++ - p->scroll;
    return l >= 0 && l < p->h ? p->y0 + l : -1;
}

static const gs_ui_cmp_row *row_of(const gs_ui *ui, int variant, uint32_t name, int layer)
{
    for (int i = 0; i < ui->ix.n_cmp; i++) {
        const gs_ui_cmp_row *r = &ui->ix.cmp[i];
        if (r->variant == variant && r->name == name && r->layer == layer)
            return r;
    }
    return NULL;
}

static const gs_ui_cmp_row *row_kind(const gs_ui *ui, int variant, int kind)
{
    for (int i = 0; i < ui->ix.n_cmp; i++)
        if (ui->ix.cmp[i].variant == variant && ui->ix.cmp[i].kind == kind)
            return &ui->ix.cmp[i];
    return NULL;
}

static void summary_of(const gs_ui_cmp_row *r, gs_stat_summary *s)
{
    memset(s, 0, sizeof *s);
    if (!r)
        return;
    s->median = r->stat[GS_CMP_MEDIAN];
    s->lo = s->min = r->stat[GS_CMP_LO];
    s->hi = s->max = r->stat[GS_CMP_HI];
    s->n = (long)r->stat[GS_CMP_N];
}

static int shade_attr(const gs_ui *ui, gs_cmp_shade sh)
{
    /* monochrome: slower bold, faster plain, noise dim (and the flame's marks) */
    if (sh == GS_CMP_FASTER)
        return gs_w_attr(ui, GS_C_ELEM);
    if (sh == GS_CMP_SLOWER)
        return gs_w_attr(ui, GS_C_WARN) | (int)A_BOLD;
    return gs_w_attr(ui, GS_C_DIM);
}

/* "toggle weights=fp32 ..." -> the part after the first word. */
static const char *vsummary(const gs_ui *ui, const gs_ui_variant *v)
{
    if (!v || !v->named)
        return "";
    const char *s = gs_store_string(ui->store, v->summary);
    const char *sp = strchr(s, ' ');
    return sp ? sp + 1 : s;
}

/* ---- the columns: label, A, B, delta, ratio, verdict, bar ---- */

enum { LW = 22, CW = 12, RW = 8, VW = 8 };

static void header(page *p, const char *label)
{
    gs_ui *ui = p->ui;
    int y = line(p);
    if (y < 0)
        return;
    int x = 2;
    gs_w_text(ui, y, x, LW, A_BOLD, "%s", label);
    gs_w_text(ui, y, x + LW, CW, A_BOLD, "%*s", CW - 1, "A");
    gs_w_text(ui, y, x + LW + CW, CW, A_BOLD, "%*s", CW - 1, "B");
    gs_w_text(ui, y, x + LW + 2 * CW, CW, A_BOLD, "%*s", CW - 1, "delta");
    gs_w_text(ui, y, x + LW + 3 * CW, RW, A_BOLD, "%*s", RW - 1, "ratio");
    gs_w_text(ui, y, x + LW + 3 * CW + RW, VW, A_BOLD, "%s", "verdict");
}

typedef enum { U_NS, U_MS, U_RATE, U_BYTES, U_PLAIN, U_PCT } unit;

static void fmt(char *b, int cap, double x, unit u, int have)
{
    if (!have) {
        snprintf(b, (size_t)cap, "-");
        return;
    }
    switch (u) {
    case U_NS: gs_fmt_ns(b, cap, x); break;
    case U_MS: snprintf(b, (size_t)cap, "%.3f ms", x * 1e-6); break;
    case U_RATE: snprintf(b, (size_t)cap, "%.1f", x); break;
    case U_BYTES: gs_fmt_bytes(b, cap, x); break;
    case U_PCT: snprintf(b, (size_t)cap, "%.1f%%", 100 * x); break;
    default: snprintf(b, (size_t)cap, "%.4g", x); break;
    }
}

static void fmt_delta(char *b, int cap, double d, unit u)
{
    char t[24];
    /* below what the unit shows: no sign ("-0 ns" would claim a direction) */
    double tiny = u == U_MS ? 500 : u == U_RATE ? 0.05 : u == U_PCT ? 5e-4 : u == U_PLAIN ? 0 : 0.5;
    if (fabs(d) < tiny)
        d = 0;
    fmt(t, sizeof t, fabs(d), u, 1);
    snprintf(b, (size_t)cap, "%s%s", d > 0 ? "+" : d < 0 ? "-" : "", t);
}

/* One row. a/b NULL: not measured. A figure without spread (memory,
 * quality) gets "smaller"/"larger" (exact figures) or nothing. */
static void stat_row(page *p, const char *label, const gs_stat_summary *a, const gs_stat_summary *b, unit u,
                     int higher_better, double bar_max, int bar_x, int bar_w)
{
    gs_ui *ui = p->ui;
    int y = line(p);
    if (y < 0)
        return;
    int x = 2;
    char ba[32], bb[32], bd[32] = "-", br[16] = "-";
    fmt(ba, sizeof ba, a ? a->median : 0, u, a != NULL);
    fmt(bb, sizeof bb, b ? b->median : 0, u, b != NULL);
    gs_cmp_shade sh = GS_CMP_SAME;
    const char *verdict = "-";
    if (a && b) {
        double d = b->median - a->median;
        fmt_delta(bd, sizeof bd, d, u);
        if (a->median != 0)
            snprintf(br, sizeof br, "x%.2f", b->median / a->median);
        if (higher_better < 0) {
            verdict = "-"; /* quality: measured once, no spread to judge a difference by */
        } else if (a->n > 0 && b->n > 0) {
            sh = gs_cmp_shade_of(a, b, higher_better);
            verdict = gs_cmp_shade_name(sh);
        } else if (d != 0) { /* exact figures (bytes): the sign is the verdict */
            sh = (d < 0) == !higher_better ? GS_CMP_FASTER : GS_CMP_SLOWER;
            verdict = (d < 0) ? "smaller" : "larger";
        } else {
            verdict = "same";
        }
    }
    gs_w_text(ui, y, x, LW - 1, A_NORMAL, "%s", label);
    gs_w_text(ui, y, x + LW, CW, A_NORMAL, "%*s", CW - 1, ba);
    gs_w_text(ui, y, x + LW + CW, CW, A_BOLD, "%*s", CW - 1, bb);
    gs_w_text(ui, y, x + LW + 2 * CW, CW, shade_attr(ui, sh), "%*s", CW - 1, bd);
    gs_w_text(ui, y, x + LW + 3 * CW, RW, A_NORMAL, "%*s", RW - 1, br);
    gs_w_text(ui, y, x + LW + 3 * CW + RW, VW, shade_attr(ui, sh), "%s", verdict);
    if (bar_w > 2 && bar_max > 0) {
        /* B's time as a bar, A's as a tick, both to the scale of the largest row */
        if (b)
            gs_w_bar(ui, y, bar_x, bar_w, b->median / bar_max, shade_attr(ui, sh) & ~A_BOLD);
        if (a) {
            int tx = bar_x + (int)(a->median / bar_max * (bar_w - 1) + 0.5);
            gs_w_glyph(ui, y, tx, "\xe2\x94\x82", '|', A_BOLD);
        }
    }
}

static void plain_row(page *p, const char *label, const char *text, int attr)
{
    int y = line(p);
    if (y < 0)
        return;
    gs_w_text(p->ui, y, 2, LW - 1, A_NORMAL, "%s", label);
    gs_w_text(p->ui, y, 2 + LW, p->ui->cols - 4 - LW, attr, "%s", text);
}

/* A variant figure (variant.*) as a summary without spread. */
static int vfig(const gs_ui_variant *v, int row, gs_stat_summary *s)
{
    memset(s, 0, sizeof *s);
    if (!v)
        return 0;
    if (row == GS_VS_COUNT) {
        if (v->dram_tokens <= 0)
            return 0;
        s->median = v->dram_bytes / v->dram_tokens;
        return 1;
    }
    if (!(v->have & (1u << row)))
        return 0;
    s->median = v->v[row];
    return 1;
}

static void draw_summary(page *p, int A, int B)
{
    gs_ui *ui = p->ui;
    header(p, "summary (medians)");
    gs_stat_summary a, b;
    static const struct { int kind; const char *label; unit u; int hb; } timed[] = {
        {GS_CMP_TPS, "decode tokens/s", U_RATE, 1},
        {GS_CMP_STEP, "ms/token", U_MS, 0},
        {GS_CMP_PREFILL, "prefill ms", U_MS, 0},
    };
    for (size_t i = 0; i < sizeof timed / sizeof timed[0]; i++) {
        const gs_ui_cmp_row *ra = row_kind(ui, A, timed[i].kind), *rb = row_kind(ui, B, timed[i].kind);
        summary_of(ra, &a);
        summary_of(rb, &b);
        stat_row(p, timed[i].label, ra ? &a : NULL, rb ? &b : NULL, timed[i].u, timed[i].hb, 0, 0, 0);
    }
    const gs_ui_variant *va = gs_ui_variant_by_id(ui, A), *vb = gs_ui_variant_by_id(ui, B);
    static const struct { int row; const char *label; unit u; int hb; } fixed[] = {
        {GS_VS_PEAK_BYTES, "memory (engine)", U_BYTES, 0},
        {GS_VS_WEIGHT_BYTES, "weight bytes", U_BYTES, 0},
        {GS_VS_KV_BYTES_TOKEN, "KV bytes/token", U_BYTES, 0},
        {GS_VS_COUNT, "DRAM bytes/token", U_BYTES, 0},
        {GS_VS_KL, "KL vs fp32 baseline", U_PLAIN, -1},
        {GS_VS_TOP1, "top-1 agreement", U_PCT, -1},
        {GS_VS_PPL, "perplexity", U_PLAIN, -1},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        int ha = vfig(va, fixed[i].row, &a), hb = vfig(vb, fixed[i].row, &b);
        if (!ha && !hb) {
            plain_row(p, fixed[i].label,
                      fixed[i].row == GS_VS_COUNT ? "n/a (no device metrics in the store)"
                      : fixed[i].row >= GS_VS_KL  ? "not measured (measured from the first toggle on)"
                                                  : "-",
                      gs_w_attr(ui, GS_C_DIM));
            continue;
        }
        stat_row(p, fixed[i].label, ha ? &a : NULL, hb ? &b : NULL, fixed[i].u, fixed[i].hb, 0, 0, 0);
    }
}

/* Per op (or kernel) rows of both variants, sorted by |delta|. */
static void draw_rows(page *p, int A, int B, int kind, const char *title)
{
    gs_ui *ui = p->ui;
    int idx[512], n = 0;
    double delta[512] = {0};
    const gs_ui_cmp_row *ra[512], *rb[512];
    double mx = 0;
    /* every name either side has, A's order first */
    for (int i = 0; i < ui->ix.n_cmp && n < 512; i++) {
        const gs_ui_cmp_row *r = &ui->ix.cmp[i];
        if (r->kind != kind || r->layer != GS_CMP_ALL_LAYERS || (r->variant != A && r->variant != B))
            continue;
        int dup = 0;
        for (int k = 0; k < n && !dup; k++)
            dup = (ra[k] ? ra[k] : rb[k])->name == r->name;
        if (dup)
            continue;
        ra[n] = row_of(ui, A, r->name, GS_CMP_ALL_LAYERS);
        rb[n] = row_of(ui, B, r->name, GS_CMP_ALL_LAYERS);
        double am = ra[n] ? ra[n]->stat[0] : 0, bm = rb[n] ? rb[n]->stat[0] : 0;
        delta[n] = bm - am;
        mx = fmax(mx, fmax(am, bm));
        idx[n] = n;
        n++;
    }
    gs_cmp_sort_by_delta(idx, n, delta);
    int bar_x = 2 + LW + 3 * CW + RW + VW, bar_w = ui->cols - bar_x - 2;
    header(p, title);
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        gs_stat_summary a, b;
        summary_of(ra[i], &a);
        summary_of(rb[i], &b);
        const char *nm = NULL;
        gs_cmp_parse_name(gs_store_string(ui->store, (ra[i] ? ra[i] : rb[i])->name), &nm);
        stat_row(p, nm ? nm : "?", ra[i] ? &a : NULL, rb[i] ? &b : NULL, U_NS, 0, mx, bar_x, bar_w);
    }
}

/* ---- the differential flame graph ---- */

static void flame_node(page *p, int yrow[3], int depth, const gs_ui_cmp_row *rb, int A, int x0, int x1)
{
    gs_ui *ui = p->ui;
    if (yrow[depth] < 0 || x1 - x0 < 1)
        return;
    const gs_ui_cmp_row *ra = row_of(ui, A, rb->name, rb->layer);
    gs_stat_summary a, b;
    summary_of(ra, &a);
    summary_of(rb, &b);
    gs_cmp_shade sh = ra ? gs_cmp_shade_of(&a, &b, 0) : GS_CMP_SAME;
    int attr = shade_attr(ui, sh) | A_REVERSE;
    int w = x1 - x0 > 2 ? x1 - x0 - 1 : x1 - x0;
    gs_w_clear(ui, yrow[depth], x0, w, attr);
    const char *nm = NULL;
    gs_cmp_parse_name(gs_store_string(ui->store, rb->name), &nm);
    char lab[64];
    if (rb->kind == GS_CMP_LAYER)
        snprintf(lab, sizeof lab, "layer %d", rb->layer);
    else
        snprintf(lab, sizeof lab, "%s", nm ? nm : "?");
    /* the sign of the change, for monochrome: - faster, + slower, ! new in B */
    char mark = !ra ? '!' : sh == GS_CMP_FASTER ? '-' : sh == GS_CMP_SLOWER ? '+' : 0;
    if (w >= 2 && mark)
        gs_w_text(ui, yrow[depth], x0, w, attr, "%c%s", mark, lab);
    else if (w >= 2)
        gs_w_text(ui, yrow[depth], x0, w, attr, "%s", lab);
}

static void draw_flame(page *p, int A, int B)
{
    gs_ui *ui = p->ui;
    int y = line(p);
    if (y >= 0)
        gs_w_text(ui, y, 2, ui->cols - 4, A_BOLD, "differential flame: B's step > layer > op, widths by B's time");
    y = line(p);
    if (y >= 0) {
        int x = 2;
        gs_w_text(ui, y, x, 10, shade_attr(ui, GS_CMP_FASTER) | A_REVERSE, "%s", "-faster");
        gs_w_text(ui, y, x + 10, 10, shade_attr(ui, GS_CMP_SLOWER) | A_REVERSE, "%s", "+slower");
        gs_w_text(ui, y, x + 20, 10, shade_attr(ui, GS_CMP_SAME) | A_REVERSE, "%s", "noise");
        gs_w_text(ui, y, x + 31, ui->cols - x - 33, gs_w_attr(ui, GS_C_DIM), "%s",
                  "than the same frame of A (!: new in B); within A's and B's spread: noise");
    }
    int yrow[3] = {line(p), line(p), line(p)};
    const gs_ui_cmp_row *step = row_kind(ui, B, GS_CMP_STEP);
    if (!step || step->stat[0] <= 0) {
        if (yrow[0] >= 0)
            gs_w_text(ui, yrow[0], 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM), "B has no decode steps yet");
        return;
    }
    int X0 = 0, X1 = ui->cols;
    double total = step->stat[0], acc = 0;
    flame_node(p, yrow, 0, step, A, X0, X1);
    /* top level: layers and the ops outside layers, in model order */
    for (int i = 0; i < ui->ix.n_cmp; i++) {
        const gs_ui_cmp_row *r = &ui->ix.cmp[i];
        if (r->variant != B || !((r->kind == GS_CMP_LAYER && r->layer >= 0) || (r->kind == GS_CMP_OP && r->layer == -1)))
            continue;
        int cx0 = X0 + (int)(acc / total * (X1 - X0) + 0.5);
        acc += r->stat[0];
        if (acc > total)
            acc = total; /* the sum of medians may exceed the median of sums */
        int cx1 = X0 + (int)(acc / total * (X1 - X0) + 0.5);
        if (cx1 <= cx0)
            continue;
        flame_node(p, yrow, 1, r, A, cx0, cx1);
        if (r->kind != GS_CMP_LAYER || r->stat[0] <= 0)
            continue;
        double sub = 0;
        for (int j = 0; j < ui->ix.n_cmp; j++) {
            const gs_ui_cmp_row *o = &ui->ix.cmp[j];
            if (o->variant != B || o->kind != GS_CMP_OP || o->layer != r->layer)
                continue;
            int ox0 = cx0 + (int)(sub / r->stat[0] * (cx1 - cx0) + 0.5);
            sub += o->stat[0];
            if (sub > r->stat[0])
                sub = r->stat[0];
            int ox1 = cx0 + (int)(sub / r->stat[0] * (cx1 - cx0) + 0.5);
            if (ox1 > ox0)
                flame_node(p, yrow, 2, o, A, ox0, ox1);
        }
    }
    /* frames of A that B no longer has (an op fused away) */
    char gone[256] = "";
    int ng = 0;
    for (int i = 0; i < ui->ix.n_cmp; i++) {
        const gs_ui_cmp_row *r = &ui->ix.cmp[i];
        if (r->variant != A || r->kind != GS_CMP_OP || r->layer != GS_CMP_ALL_LAYERS || row_of(ui, B, r->name, r->layer))
            continue;
        const char *nm = NULL;
        gs_cmp_parse_name(gs_store_string(ui->store, r->name), &nm);
        ng += snprintf(gone + ng, sizeof gone - (size_t)(ng < (int)sizeof gone ? ng : (int)sizeof gone - 1), "%s%s",
                       ng ? ", " : "", nm ? nm : "?");
        if (ng >= (int)sizeof gone)
            break;
    }
    y = line(p);
    if (y >= 0 && gone[0])
        gs_w_text(ui, y, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM), "only in A: %s", gone);
}

static void draw_unpinned(gs_ui *ui, int y0, int h)
{
    const char *const lines[] = {
        "Compare: A against B, measured in this run",
        "",
        ui->live ? "Nothing is pinned. Press p to pin the running variant as A, then switch toggles"
                 : "This recording has no comparison (it was not recorded while a variant was pinned).",
        ui->live ? "(view 5) and apply: the variant that runs next is B. p again unpins." : "",
        "",
        "Each timing is the median of the last decode steps with its 95% interval;",
        "a difference inside the spread is marked noise instead of a winner.",
        "",
        "From the command line, two configurations in one run, alternating steps:",
        "  gptscope compare A.yaml B.yaml --steps 100 [--report OUT.md|OUT.csv] [-o OUT.json]",
        "  gptscope compare a.gst b.gst          (two recordings)",
    };
    int y = y0 + 1;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0] && y < y0 + h; i++, y++)
        gs_w_text(ui, y, 2, ui->cols - 4, i == 0 ? A_BOLD : A_NORMAL, "%s", lines[i]);
}

static void draw(gs_ui *ui, int y0, int h)
{
    cv_state *st = state(ui);
    if (!st)
        return;
    int A = ui->ix.pinned;
    if (!A) {
        draw_unpinned(ui, y0, h);
        return;
    }
    const gs_ui_variant *cur = ui->ix.cur_variant >= 0 ? &ui->ix.variants[ui->ix.cur_variant] : NULL;
    int B = cur && cur->id != A ? cur->id : 0; /* A running: no B yet */
    const gs_ui_variant *va = gs_ui_variant_by_id(ui, A);
    char d[256] = "";
    if (B)
        gs_fmt_tokens_not_in(vsummary(ui, va), vsummary(ui, cur), d, sizeof d);
    if (B)
        gs_w_text(ui, y0, 1, ui->cols - 2, A_BOLD, "Compare  A = #%d pinned   B = #%d running: %s", A, B,
                  d[0] ? d : "(same settings)");
    else
        gs_w_text(ui, y0, 1, ui->cols - 2, A_BOLD, "Compare  A = #%d pinned   B = none yet", A);
    gs_w_text(ui, y0 + 1, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM), "A: %s   (%sj/k PgUp/PgDn scroll)",
              va ? vsummary(ui, va) : "?", ui->live ? "p unpins  " : "");
    page p = {ui, y0 + 2, h - 2, 0, st->scroll};
    if (!B) {
        int y = line(&p);
        if (y >= 0)
            gs_w_text(ui, y, 2, ui->cols - 4, gs_w_attr(ui, GS_C_MATCH) | A_BOLD, "%s",
                      ui->live ? "A is running: switch toggles (view 5) and apply to make B"
                               : "B: the recording has no variant after A");
        line(&p);
    }
    draw_summary(&p, A, B);
    line(&p);
    draw_rows(&p, A, B, GS_CMP_OP, "per op (all layers)");
    line(&p);
    int has_kernels = 0;
    for (int i = 0; i < ui->ix.n_cmp && !has_kernels; i++)
        has_kernels = ui->ix.cmp[i].kind == GS_CMP_KERNEL && (ui->ix.cmp[i].variant == A || ui->ix.cmp[i].variant == B);
    if (has_kernels) {
        draw_rows(&p, A, B, GS_CMP_KERNEL, "per kernel (device time)");
    } else {
        int y = line(&p);
        if (y >= 0)
            gs_w_text(ui, y, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM), "per kernel: %s",
                      ui->ix.n_kernels ? "no kernel samples of A and B yet"
                                       : "no kernel events in the store (CPU backend, or no device timeline): "
                                         "the op rows are host time");
    }
    line(&p);
    draw_flame(&p, A, B);
    st->lines = p.at;
    st->page = p.h;
}

static int key(gs_ui *ui, int ch)
{
    cv_state *st = state(ui);
    if (!st)
        return 0;
    int max = st->lines - st->page;
    if (max < 0)
        max = 0;
    switch (ch) {
    case KEY_DOWN: case 'j': st->scroll++; break;
    case KEY_UP: case 'k': st->scroll--; break;
    case KEY_NPAGE: st->scroll += st->page > 2 ? st->page - 2 : 1; break;
    case KEY_PPAGE: st->scroll -= st->page > 2 ? st->page - 2 : 1; break;
    default: return 0;
    }
    if (st->scroll > max)
        st->scroll = max;
    if (st->scroll < 0)
        st->scroll = 0;
    return 1;
}

static void mouse(gs_ui *ui, int x, int y, int wheel)
{
    (void)x, (void)y;
    if (wheel)
        key(ui, wheel > 0 ? 'j' : 'k');
}

void gs_view_compare_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Compare";
    v->help = "A (pinned with p) against B (the variant after the next toggles): summary, ops, diff flame";
    v->draw = draw;
    v->key = key;
    v->mouse = mouse;
}
