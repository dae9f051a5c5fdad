/* view_memory.c - where the bytes go: per op and kernel DRAM, L2, L1 and
 * shared-memory traffic and hit rates, achieved bandwidth, a small memory
 * hierarchy for the selected row, and bandwidth over time.
 *
 * Everything here is measured: hardware metrics (GS_EV_METRIC, collected on
 * the steps `--metrics-every N` samples on a CUDA machine) and device copies
 * (GS_EV_MEMCPY/MEMSET bytes over their duration, summed per step by the
 * UI's index). When a trace has none,
 * the view says so and how to get them; it never shows a modeled number as
 * measured. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

#define LIVE_STEPS 64
#define MAX_ROWS 512

enum { M_DRAM_R, M_DRAM_W, M_L2_B, M_L2_HIT, M_L1_B, M_L1_HIT, M_SHARED, M_TIME, M_N };

typedef struct mrow {
    uint32_t op, kernel;      /* string ids (op GS_STORE_NO_ID: unknown) */
    double v[M_N];
    int nv[M_N];
    long kernels;             /* kernel launches measured */
} mrow;

typedef struct kinfo { uint64_t corr; uint32_t name; uint64_t range_id; } kinfo;

typedef struct u64map { uint64_t *k; uint32_t *v; int cap, n; } u64map;

typedef struct mem_state {
    mrow rows[MAX_ROWS];
    int n_rows, sel, top;
    /* The rows are rebuilt only when the steps covered or the store change:
     * a replay walks its million events once, not every frame. */
    int built;
    int64_t built_s0, built_s1;
    uint64_t built_count;
    /* correlation id -> kernel (index into k), range id -> op name */
    kinfo *k;
    int nk, capk;
    u64map kernels, ranges;
    double copy_bytes[GS_COPY_KIND_MAX + 2];
    uint64_t copy_ns[GS_COPY_KIND_MAX + 2];
    long copies;
    uint32_t metric_kind_n;
    int8_t *metric_kind;     /* per string id: M_* or -1, -2 unchecked */
} mem_state;

static mem_state *st_of(gs_ui *ui) { return ui->views[GS_VIEW_MEMORY].state; }

static int metric_of(gs_ui *ui, mem_state *s, uint32_t id)
{
    if (id >= s->metric_kind_n) {
        uint32_t n = s->metric_kind_n ? s->metric_kind_n : 256;
        while (n <= id)
            n *= 2;
        int8_t *p = realloc(s->metric_kind, n);
        if (!p)
            return -1;
        memset(p + s->metric_kind_n, -2, n - s->metric_kind_n);
        s->metric_kind = p;
        s->metric_kind_n = n;
    }
    if (s->metric_kind[id] == -2) {
        const char *n = gs_store_string(ui->store, id);
        int k = -1;
        if (!strcmp(n, "dram__bytes_read.sum")) k = M_DRAM_R;
        else if (!strcmp(n, "dram__bytes_write.sum")) k = M_DRAM_W;
        else if (!strcmp(n, "lts__t_bytes.sum")) k = M_L2_B;
        else if (!strcmp(n, "lts__t_sector_hit_rate.pct")) k = M_L2_HIT;
        else if (!strcmp(n, "l1tex__t_bytes.sum")) k = M_L1_B;
        else if (!strcmp(n, "l1tex__t_sector_hit_rate.pct")) k = M_L1_HIT;
        else if (!strcmp(n, "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum")) k = M_SHARED;
        else if (!strcmp(n, "gpu__time_duration.sum")) k = M_TIME;
        s->metric_kind[id] = (int8_t)k;
    }
    return s->metric_kind[id];
}

static uint64_t hash64(uint64_t x) { return x * 0x9E3779B97F4A7C15ull; }

/* Open addressing, key 0 never stored (ids start at 1). */
static void map_put(u64map *m, uint64_t key, uint32_t val)
{
    if (!key)
        return;
    if (2 * (m->n + 1) > m->cap) {
        int cap = m->cap ? m->cap * 2 : 4096;
        uint64_t *k = calloc((size_t)cap, sizeof *k);
        uint32_t *v = malloc((size_t)cap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return;
        }
        for (int i = 0; i < m->cap; i++)
            if (m->k[i]) {
                uint64_t h = hash64(m->k[i]) & (uint64_t)(cap - 1);
                while (k[h])
                    h = (h + 1) & (uint64_t)(cap - 1);
                k[h] = m->k[i];
                v[h] = m->v[i];
            }
        free(m->k);
        free(m->v);
        m->k = k;
        m->v = v;
        m->cap = cap;
    }
    uint64_t h = hash64(key) & (uint64_t)(m->cap - 1);
    while (m->k[h] && m->k[h] != key)
        h = (h + 1) & (uint64_t)(m->cap - 1);
    if (!m->k[h])
        m->n++;
    m->k[h] = key;
    m->v[h] = val;
}

static uint32_t map_get(const u64map *m, uint64_t key)
{
    if (!m->cap || !key)
        return GS_STORE_NO_ID;
    uint64_t h = hash64(key) & (uint64_t)(m->cap - 1);
    while (m->k[h]) {
        if (m->k[h] == key)
            return m->v[h];
        h = (h + 1) & (uint64_t)(m->cap - 1);
    }
    return GS_STORE_NO_ID;
}

static void map_clear(u64map *m)
{
    if (m->cap)
        memset(m->k, 0, (size_t)m->cap * sizeof *m->k);
    m->n = 0;
}

static void map_free(u64map *m)
{
    free(m->k);
    free(m->v);
}

static uint32_t range_get(const mem_state *s, uint64_t id) { return map_get(&s->ranges, id); }

static const kinfo *kernel_get(const mem_state *s, uint64_t corr)
{
    uint32_t i = map_get(&s->kernels, corr);
    return i == GS_STORE_NO_ID ? NULL : &s->k[i];
}

static mrow *row_for(mem_state *s, uint32_t op, uint32_t kernel)
{
    for (int i = 0; i < s->n_rows; i++)
        if (s->rows[i].op == op && s->rows[i].kernel == kernel)
            return &s->rows[i];
    if (s->n_rows >= MAX_ROWS)
        return NULL;
    mrow *r = &s->rows[s->n_rows++];
    memset(r, 0, sizeof *r);
    r->op = op;
    r->kernel = kernel;
    return r;
}

static int visit(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_ui *ui = ctx;
    mem_state *s = st_of(ui);
    (void)index;
    if (ev->step < s->built_s0 || ev->step > s->built_s1)
        return 0; /* outside the steps shown (late device records, step -1) */
    switch (ev->kind) {
    case GS_EV_RANGE:
        if (ev->level == GS_RANGE_OP)
            map_put(&s->ranges, ev->aux, ev->name);
        break;
    case GS_EV_KERNEL:
        if (s->nk == s->capk) {
            int cap = s->capk ? s->capk * 2 : 4096;
            kinfo *n = realloc(s->k, (size_t)cap * sizeof *n);
            if (!n)
                return 0;
            s->k = n;
            s->capk = cap;
        }
        map_put(&s->kernels, ev->aux, (uint32_t)s->nk);
        s->k[s->nk++] = (kinfo){ev->aux, ev->name, ev->range_id};
        break;
    case GS_EV_METRIC: {
        int m = metric_of(ui, s, ev->name);
        if (m < 0)
            break;
        uint32_t op = GS_STORE_NO_ID, kname = GS_STORE_NO_ID;
        if (ev->level == GS_METRIC_KERNEL) {
            const kinfo *k = kernel_get(s, ev->aux);
            if (k) {
                kname = k->name;
                op = range_get(s, k->range_id);
            }
        }
        if (op == GS_STORE_NO_ID)
            op = range_get(s, ev->range_id);
        mrow *r = row_for(s, op, kname);
        if (!r)
            break;
        r->v[m] += ev->value;
        r->nv[m]++;
        if (m == M_TIME)
            r->kernels++;
        break;
    }
    default:
        break;
    }
    return 0;
}

static void collect(gs_ui *ui, mem_state *s)
{
    int64_t s1 = 0, s0 = 0;
    if (ui->ix.n_steps) {
        s1 = ui->live ? ui->cursor_step : ui->ix.steps[ui->ix.n_steps - 1].step;
        s0 = ui->live ? s1 - LIVE_STEPS + 1 : ui->ix.steps[0].step;
    }
    uint64_t count = gs_store_count(ui->store);
    if (s->built && s0 == s->built_s0 && s1 == s->built_s1 && count == s->built_count)
        return;
    s->built = 1;
    s->built_s0 = s0;
    s->built_s1 = s1;
    s->built_count = count;
    s->n_rows = 0;
    s->nk = 0;
    s->copies = 0;
    memset(s->copy_bytes, 0, sizeof s->copy_bytes);
    memset(s->copy_ns, 0, sizeof s->copy_ns);
    map_clear(&s->ranges);
    map_clear(&s->kernels);
    if (!ui->ix.n_steps)
        return;
    /* Copies come from the index. The store is read only when the steps
     * have metrics, over the span of the steps' events: a metric names its
     * kernel by correlation id, and a replayed step's metrics name the
     * kernels of an earlier, timed step. */
    uint64_t from = UINT64_MAX, to = 0;
    int metrics = 0;
    for (int i = gs_ui_step_pos(ui, s0); i >= 0 && i < ui->ix.n_steps && ui->ix.steps[i].step <= s1; i++) {
        const gs_ui_step *st = &ui->ix.steps[i];
        if (st->step < s0)
            continue;
        for (int k = 0; k <= GS_COPY_KIND_MAX + 1; k++) {
            s->copy_bytes[k] += st->copy_kind_bytes[k];
            s->copy_ns[k] += st->copy_kind_ns[k];
        }
        s->copies += st->copies;
        metrics |= st->metric_events > 0;
        from = st->ev_first < from ? st->ev_first : from;
        to = st->ev_last + 1 > to ? st->ev_last + 1 : to;
    }
    if (metrics)
        gs_store_visit(ui->store, from, to, visit, ui);
    /* largest DRAM traffic first */
    for (int a = 1; a < s->n_rows; a++)
        for (int b = a; b > 0; b--) {
            double x = s->rows[b].v[M_DRAM_R] + s->rows[b].v[M_DRAM_W];
            double y = s->rows[b - 1].v[M_DRAM_R] + s->rows[b - 1].v[M_DRAM_W];
            if (x <= y)
                break;
            mrow t = s->rows[b];
            s->rows[b] = s->rows[b - 1];
            s->rows[b - 1] = t;
        }
    if (s->sel >= s->n_rows)
        s->sel = s->n_rows ? s->n_rows - 1 : 0;
}

static double pct(const mrow *r, int m) { return r->nv[m] ? r->v[m] / r->nv[m] : -1; }

static void draw_hierarchy(gs_ui *ui, const mrow *r, int y, int x, int w)
{
    char b1[32], b2[32];
    double t = r->v[M_TIME];
    double dram = r->v[M_DRAM_R] + r->v[M_DRAM_W];
    int a = A_NORMAL;
    gs_w_text(ui, y++, x, w, A_BOLD, "memory hierarchy of the selected row (measured)");
    gs_w_text(ui, y++, x, w, a, "  [ SM ]  shared memory: %.0f wavefronts", r->v[M_SHARED]);
    gs_w_glyph(ui, y++, x + 6, "│", '|', a);
    gs_w_text(ui, y++, x, w, a, "  [ L1 ]  %s, hit rate %s", gs_fmt_bytes(b1, sizeof b1, r->v[M_L1_B]),
              pct(r, M_L1_HIT) >= 0 ? (snprintf(b2, sizeof b2, "%.1f%%", pct(r, M_L1_HIT)), b2) : "n/a");
    gs_w_glyph(ui, y++, x + 6, "│", '|', a);
    gs_w_text(ui, y++, x, w, a, "  [ L2 ]  %s, hit rate %s", gs_fmt_bytes(b1, sizeof b1, r->v[M_L2_B]),
              pct(r, M_L2_HIT) >= 0 ? (snprintf(b2, sizeof b2, "%.1f%%", pct(r, M_L2_HIT)), b2) : "n/a");
    gs_w_glyph(ui, y++, x + 6, "│", '|', a);
    gs_w_text(ui, y++, x, w, a, "  [DRAM]  read %s, write %s, %.1f GB/s over %s of kernel time",
              gs_fmt_bytes(b1, sizeof b1, r->v[M_DRAM_R]), gs_fmt_bytes(b2, sizeof b2, r->v[M_DRAM_W]),
              t > 0 ? dram / t : 0.0, gs_fmt_ns((char[32]){0}, 32, t));
}

static void draw(gs_ui *ui, int y0, int h)
{
    mem_state *s = st_of(ui);
    collect(ui, s);
    char b1[32], b2[32], b3[32];
    int y = y0;
    const char *scope = ui->live ? "last 64 steps" : "whole recording";
    if (!s->n_rows) {
        gs_w_text(ui, y++, 1, ui->cols - 2, A_BOLD, "Memory traffic (%s)", scope);
        y++;
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL,
                  "Hardware memory metrics were not collected in this %s.", ui->live ? "run" : "trace");
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL,
                  "DRAM, L2, L1 and shared-memory traffic and hit rates are measured by");
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL,
                  "CUPTI on a CUDA machine. To collect them on every Nth step (those steps");
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL,
                  "are replayed, so they are left out of the timings), run for example");
        gs_w_text(ui, y++, 4, ui->cols - 6, A_BOLD, "gptscope --backend cuda --metrics-every 20");
        gs_w_text(ui, y++, 4, ui->cols - 6, A_BOLD, "gptscope record --backend cuda --metrics-every 20 -o run.gst");
        y++;
    } else {
        gs_w_text(ui, y++, 1, ui->cols - 2, A_BOLD, "Memory traffic per op and kernel, measured by CUPTI (%s)", scope);
        gs_w_text(ui, y++, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM), "%-16s %-22s %9s %9s %6s %9s %6s %8s",
                  "op", "kernel", "DRAM", "L2", "L2 hit", "L1", "L1 hit", "GB/s");
        int table_h = h - 12 - 4;
        if (table_h < 3)
            table_h = 3;
        if (s->sel < s->top)
            s->top = s->sel;
        if (s->sel >= s->top + table_h)
            s->top = s->sel - table_h + 1;
        for (int i = s->top; i < s->n_rows && i < s->top + table_h; i++, y++) {
            const mrow *r = &s->rows[i];
            const char *op = r->op == GS_STORE_NO_ID ? "?" : gs_store_string(ui->store, r->op);
            const char *kn = r->kernel == GS_STORE_NO_ID ? "(op total)" : gs_store_string(ui->store, r->kernel);
            int match = ui->search[0] && (strstr(op, ui->search) || strstr(kn, ui->search));
            int attr = i == s->sel ? (int)A_REVERSE : match ? gs_w_attr(ui, GS_C_MATCH) : (int)A_NORMAL;
            double dram = r->v[M_DRAM_R] + r->v[M_DRAM_W];
            char h2[16] = "  n/a", h1[16] = "  n/a";
            if (pct(r, M_L2_HIT) >= 0)
                snprintf(h2, sizeof h2, "%5.1f%%", pct(r, M_L2_HIT));
            if (pct(r, M_L1_HIT) >= 0)
                snprintf(h1, sizeof h1, "%5.1f%%", pct(r, M_L1_HIT));
            gs_w_text(ui, y, 1, ui->cols - 2, attr, "%-16.16s %-22.22s %9s %9s %6s %9s %6s %8.1f", op, kn,
                      gs_fmt_bytes(b1, sizeof b1, dram), gs_fmt_bytes(b2, sizeof b2, r->v[M_L2_B]), h2,
                      gs_fmt_bytes(b3, sizeof b3, r->v[M_L1_B]), h1,
                      r->v[M_TIME] > 0 ? dram / r->v[M_TIME] : 0.0);
        }
        y++;
        draw_hierarchy(ui, &s->rows[s->sel], y, 1, ui->cols - 2);
        y += 8;
    }
    /* device copies: measured on any CUDA run with the device timeline */
    if (s->copies) {
        static const char *const names[] = {"other copy", "host to device", "device to host", "device to device",
                                            "set"};
        gs_w_text(ui, y++, 1, ui->cols - 2, A_BOLD, "Device copies and sets (measured, %ld)", s->copies);
        for (int k = 0; k <= GS_COPY_KIND_MAX + 1 && y < y0 + h - 3; k++)
            if (s->copy_ns[k])
                gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL, "%-18s %10s in %10s  %8.1f GB/s", names[k],
                          gs_fmt_bytes(b1, sizeof b1, s->copy_bytes[k]),
                          gs_fmt_ns(b2, sizeof b2, (double)s->copy_ns[k]),
                          s->copy_bytes[k] / (double)s->copy_ns[k]);
    } else if (!s->n_rows && y < y0 + h - 3) {
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL, "%s",
                  ui->ix.n_kernels ? "No device copies in this window."
                                   : "No device timeline either: a CPU run (or --device-trace off).");
    }
    /* bandwidth over time: DRAM on metrics steps, else copies */
    double v[GS_UI_HIST];
    int n = 0;
    int use_dram = s->n_rows > 0;
    for (int i = ui->ix.n_steps > GS_UI_HIST ? ui->ix.n_steps - GS_UI_HIST : 0; i < ui->ix.n_steps; i++) {
        const gs_ui_step *st = &ui->ix.steps[i];
        if (use_dram ? !st->metrics : !st->copy_ns)
            continue;
        v[n++] = use_dram ? (st->dur_ns ? st->dram_bytes / (double)st->dur_ns : 0)
                          : st->copy_bytes / (double)st->copy_ns;
    }
    int sy = y0 + h - 2;
    if (n) {
        double mx = 0;
        for (int i = 0; i < n; i++)
            mx = v[i] > mx ? v[i] : mx;
        gs_w_text(ui, sy, 1, ui->cols - 2, A_NORMAL, "%s GB/s over time (%d steps, max %.1f GB/s)",
                  use_dram ? "DRAM (metrics steps, over the replayed step's time)" : "copy", n, mx);
        gs_w_sparkline(ui, sy + 1, 1, ui->cols - 2, v, n, mx, gs_w_cat_attr(ui, GS_CAT_COPY));
    } else {
        gs_w_text(ui, sy, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM), "bandwidth over time: nothing measured yet");
    }
}

static int key(gs_ui *ui, int ch)
{
    mem_state *s = st_of(ui);
    switch (ch) {
    case KEY_UP: case 'k':
        if (s->sel > 0)
            s->sel--;
        return 1;
    case KEY_DOWN: case 'j':
        if (s->sel + 1 < s->n_rows)
            s->sel++;
        return 1;
    case KEY_PPAGE:
        s->sel = s->sel > 10 ? s->sel - 10 : 0;
        return 1;
    case KEY_NPAGE:
        s->sel = s->sel + 10 < s->n_rows ? s->sel + 10 : (s->n_rows ? s->n_rows - 1 : 0);
        return 1;
    default:
        return 0;
    }
}

static void mouse(gs_ui *ui, int x, int y, int wheel)
{
    mem_state *s = st_of(ui);
    (void)x;
    int i = s->top + (y - 4); /* rows start under the status, tabs, title and header */
    if (!wheel && i >= 0 && i < s->n_rows)
        s->sel = i;
    else if (wheel)
        key(ui, wheel < 0 ? KEY_UP : KEY_DOWN);
}

static void search(gs_ui *ui, int next)
{
    mem_state *s = st_of(ui);
    for (int k = next ? 1 : 0; k <= s->n_rows; k++) {
        int i = s->n_rows ? (s->sel + k) % s->n_rows : 0;
        if (i >= s->n_rows)
            break;
        const mrow *r = &s->rows[i];
        const char *op = r->op == GS_STORE_NO_ID ? "" : gs_store_string(ui->store, r->op);
        const char *kn = r->kernel == GS_STORE_NO_ID ? "" : gs_store_string(ui->store, r->kernel);
        if (strstr(op, ui->search) || strstr(kn, ui->search)) {
            s->sel = i;
            return;
        }
    }
    gs_ui_message(ui, "'%s': no measured row matches", ui->search);
}

static void release(gs_view *v)
{
    mem_state *s = v->state;
    free(s->k);
    map_free(&s->kernels);
    map_free(&s->ranges);
    free(s->metric_kind);
}

void gs_view_memory_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Memory";
    v->help = "DRAM/L2/L1/shared traffic and hit rates per op and kernel (measured), bandwidth over time";
    v->draw = draw;
    v->key = key;
    v->mouse = mouse;
    v->search = search;
    v->release = release;
    v->state = calloc(1, sizeof(mem_state));
}
