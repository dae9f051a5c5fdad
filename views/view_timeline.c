/* view_timeline.c - tracks over time: the host's step, layer and op ranges
 * and one track per CUDA stream (kernels, copies, sets).
 *
 * Each cell of a track adds up the time the items on that track cover in
 * the cell's time slice and draws it as a left-aligned eighth block, colored
 * by the category that covers most of the slice, so zoomed far out a busy
 * stream reads as a solid bar and zoomed in a gap shows as a partial cell.
 * A kernel's category comes from the op range that launched it (range_id
 * points at the range whose aux is that id), else from its own name. */
#include <curses.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

#define LABEL_W 11
#define DETAIL_H 7
#define HOST_ROWS 3
#define MAX_ITEMS (1 << 21)

typedef struct tl_item {
    uint64_t index;   /* absolute store index */
    uint64_t t, dur;
    uint64_t aux, range_id;
    uint32_t name;
    int16_t row;
    uint8_t cat, kind;
} tl_item;

typedef struct tl_state {
    uint64_t t0, t1;     /* the window shown */
    int64_t fit_step;    /* the step the window was fitted to */
    int row;             /* selected track */
    int has_sel;
    tl_item sel;
    tl_item *items;
    int n_items, cap_items;
    int n_rows;
    uint32_t row_track[HOST_ROWS + 16];
    /* geometry of the last frame, for the mouse */
    int plot_y, plot_x, plot_w;
    /* range id -> op item, for kernels' categories and details */
    uint64_t *hkeys;
    int *hvals;
    int hcap;          /* allocated */
    uint64_t hmask;    /* in use: a power of two minus one, 0 when none */
    int n_ranges;      /* items that are ranges with an id */
    /* per string id, computed once: category, length, and whether it
     * matches match_str (the search the flags were made for) */
    uint8_t *name_cat, *name_match;
    int *name_len;
    uint32_t n_names, n_match;
    char match_str[64];
    /* What the last frame collected, kept while the window, the tracks and
     * the store are unchanged: the items, the coverage per (row, cell,
     * category) and the items wide enough for their name (in item order). */
    struct {
        int valid, w, n_rows;
        uint64_t t0, t1, count, first;
        uint32_t row_track[HOST_ROWS + 16];
    } key;
    float *cov;
    size_t cov_cap;
    int *labels;
    int n_labels, cap_labels;
} tl_state;

static tl_state *st_of(gs_ui *ui) { return ui->views[GS_VIEW_TIMELINE].state; }

static int row_of(tl_state *s, const gs_event *ev)
{
    if (ev->kind == GS_EV_RANGE)
        return ev->level <= GS_RANGE_OP ? ev->level : -1;
    if (ev->kind == GS_EV_SYNC)
        return 2;
    for (int r = HOST_ROWS; r < s->n_rows; r++)
        if (s->row_track[r] == ev->track)
            return r;
    return -1;
}

/* Grows the per-name tables to every string the store has. */
static void names_grow(gs_ui *ui, tl_state *s)
{
    uint32_t n = gs_store_n_strings(ui->store);
    if (n <= s->n_names)
        return;
    uint8_t *c = realloc(s->name_cat, n);
    if (c)
        s->name_cat = c;
    int *l = realloc(s->name_len, (size_t)n * sizeof *l);
    if (l)
        s->name_len = l;
    if (!c || !l)
        return;
    for (uint32_t i = s->n_names; i < n; i++) {
        const char *str = gs_store_string(ui->store, i);
        c[i] = (uint8_t)gs_category_of(str);
        l[i] = (int)strlen(str);
    }
    s->n_names = n;
}

static uint8_t name_cat(gs_ui *ui, tl_state *s, uint32_t id)
{
    if (id >= s->n_names)
        names_grow(ui, s);
    return id < s->n_names ? s->name_cat[id] : (uint8_t)gs_category_of(gs_store_string(ui->store, id));
}

static int name_len(gs_ui *ui, tl_state *s, uint32_t id)
{
    if (id >= s->n_names)
        names_grow(ui, s);
    return id < s->n_names ? s->name_len[id] : (int)strlen(gs_store_string(ui->store, id));
}

/* Whether the name of id contains ui->search (flags per id, remade when the search changes). */
static int name_match(gs_ui *ui, tl_state *s, uint32_t id)
{
    if (strcmp(s->match_str, ui->search)) {
        snprintf(s->match_str, sizeof s->match_str, "%s", ui->search);
        s->n_match = 0;
    }
    if (id >= s->n_match) {
        uint32_t n = gs_store_n_strings(ui->store);
        uint8_t *m = n > s->n_match ? realloc(s->name_match, n) : NULL;
        if (m) {
            s->name_match = m;
            for (uint32_t i = s->n_match; i < n; i++)
                m[i] = strstr(gs_store_string(ui->store, i), s->match_str) != NULL;
            s->n_match = n;
        }
    }
    return id < s->n_match ? s->name_match[id] : strstr(gs_store_string(ui->store, id), ui->search) != NULL;
}

static int collect(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_ui *ui = ctx;
    tl_state *s = st_of(ui);
    if (ev->kind != GS_EV_RANGE && ev->kind != GS_EV_KERNEL && ev->kind != GS_EV_MEMCPY &&
        ev->kind != GS_EV_MEMSET && ev->kind != GS_EV_SYNC)
        return 0;
    int row = row_of(s, ev);
    if (row < 0)
        return 0;
    if (s->n_items == s->cap_items) {
        if (s->cap_items >= MAX_ITEMS)
            return 1;
        int cap = s->cap_items ? s->cap_items * 2 : 4096;
        tl_item *n = realloc(s->items, (size_t)cap * sizeof *n);
        if (!n)
            return 1;
        s->items = n;
        s->cap_items = cap;
    }
    tl_item *it = &s->items[s->n_items++];
    s->n_ranges += ev->kind == GS_EV_RANGE && ev->aux;
    it->index = index;
    it->t = ev->t_ns;
    it->dur = ev->dur_ns;
    it->aux = ev->aux;
    it->range_id = ev->range_id;
    it->name = ev->name;
    it->row = (int16_t)row;
    it->kind = ev->kind;
    it->cat = ev->kind == GS_EV_MEMCPY || ev->kind == GS_EV_MEMSET ? GS_CAT_COPY
              : ev->kind == GS_EV_SYNC                             ? GS_CAT_OTHER
                                                                   : name_cat(ui, s, ev->name);
    return 0;
}

/* Range id -> item, sized by the window's ranges (not all its items). */
static void hash_build(tl_state *s)
{
    int need = 16;
    while (need < 2 * s->n_ranges)
        need *= 2;
    s->hmask = 0;
    if (need > s->hcap) {
        free(s->hkeys);
        free(s->hvals);
        s->hkeys = malloc((size_t)need * sizeof *s->hkeys);
        s->hvals = malloc((size_t)need * sizeof *s->hvals);
        s->hcap = s->hkeys && s->hvals ? need : 0;
        if (!s->hcap)
            return;
    }
    uint64_t mask = (uint64_t)need - 1;
    memset(s->hkeys, 0, (size_t)need * sizeof *s->hkeys);
    for (int i = 0; i < s->n_items; i++) {
        const tl_item *it = &s->items[i];
        if (it->kind != GS_EV_RANGE || !it->aux)
            continue;
        uint64_t h = (it->aux * 0x9E3779B97F4A7C15ull) & mask;
        while (s->hkeys[h])
            h = (h + 1) & mask;
        s->hkeys[h] = it->aux;
        s->hvals[h] = i;
    }
    s->hmask = mask;
}

static int hash_find(const tl_state *s, uint64_t id)
{
    if (!s->hmask || !id)
        return -1;
    uint64_t h = (id * 0x9E3779B97F4A7C15ull) & s->hmask;
    while (s->hkeys[h]) {
        if (s->hkeys[h] == id)
            return s->hvals[h];
        h = (h + 1) & s->hmask;
    }
    return -1;
}

static void fit_step(gs_ui *ui, tl_state *s)
{
    const gs_ui_step *st = gs_ui_step_at(ui, ui->cursor_step);
    s->fit_step = ui->cursor_step;
    if (!st) {
        s->t0 = ui->ix.t_first;
        s->t1 = ui->ix.t_last > s->t0 ? ui->ix.t_last : s->t0 + 1000000;
        return;
    }
    uint64_t pad = st->dur_ns / 50 + 1000;
    s->t0 = st->t_ns > pad ? st->t_ns - pad : 0;
    s->t1 = st->t_ns + st->dur_ns + pad;
}

static void zoom(tl_state *s, double factor, uint64_t center)
{
    double span = (double)(s->t1 - s->t0) * factor;
    if (span < 1000)
        span = 1000; /* 1 us across the screen is plenty */
    double frac = s->t1 > s->t0 ? (double)(center - s->t0) / (double)(s->t1 - s->t0) : 0.5;
    double t0 = (double)center - frac * span;
    if (t0 < 0)
        t0 = 0;
    s->t0 = (uint64_t)t0;
    s->t1 = (uint64_t)(t0 + span);
}

static void pan(tl_state *s, double frac)
{
    double d = (double)(s->t1 - s->t0) * frac;
    if (d < 0 && (double)s->t0 < -d)
        d = -(double)s->t0;
    s->t0 = (uint64_t)((double)s->t0 + d);
    s->t1 = (uint64_t)((double)s->t1 + d);
}

typedef struct fetch_ctx { gs_event *ev; int ok; } fetch_ctx;

static int fetch_one(void *ctx, uint64_t index, const gs_event *ev)
{
    fetch_ctx *f = ctx;
    (void)index;
    *f->ev = *ev;
    f->ok = 1;
    return 1;
}

/* The full record (launch configuration etc.) by its absolute index. */
static int fetch(gs_ui *ui, uint64_t index, gs_event *ev)
{
    fetch_ctx f = {ev, 0};
    gs_store_visit(ui->store, index, index + 1, fetch_one, &f);
    return f.ok;
}

static void draw_details(gs_ui *ui, tl_state *s, int y, int h)
{
    gs_w_box(ui, y, 0, h, ui->cols, "selected", A_NORMAL);
    int x = 2, w = ui->cols - 4;
    if (!s->has_sel) {
        gs_w_text(ui, y + 1, x, w, A_NORMAL, "Nothing selected: Left/Right (h/l) pick the previous/next item on the track,");
        gs_w_text(ui, y + 2, x, w, A_NORMAL, "Up/Down (k/j) change track, a mouse click picks the item under the pointer.");
        return;
    }
    gs_event ev;
    if (!fetch(ui, s->sel.index, &ev)) {
        gs_w_text(ui, y + 1, x, w, A_NORMAL, "(the selected item left the live window)");
        return;
    }
    char b1[32], b2[32], b3[32];
    const char *name = gs_store_string(ui->store, ev.name);
    static const char *const kinds[] = {"?", "host range", "counter", "marker", "kernel", "copy", "set", "sync",
                                        "metric", "kv"};
    const char *kind = ev.kind <= GS_EV_KIND_MAX ? kinds[ev.kind] : "?";
    gs_w_text(ui, y + 1, x, w, A_BOLD, "%s", name);
    gs_w_text(ui, y + 2, x, w, A_NORMAL, "%s  duration %s  starts %s into step %lld  (%s)", kind,
              gs_fmt_ns(b1, sizeof b1, (double)ev.dur_ns),
              gs_fmt_ns(b2, sizeof b2, (double)(ev.t_ns - (gs_ui_step_at(ui, ev.step) ? gs_ui_step_at(ui, ev.step)->t_ns : ev.t_ns))),
              (long long)ev.step, gs_category_name((gs_category)s->sel.cat));
    if (ev.kind == GS_EV_RANGE) {
        static const char *const lv[] = {"step", "layer", "op"};
        gs_w_text(ui, y + 3, x, w, A_NORMAL, "level %s  layer %s  range id %llu  track %s",
                  ev.level <= 2 ? lv[ev.level] : "?", ev.layer >= 0 ? (snprintf(b3, sizeof b3, "%d", ev.layer), b3) : "-",
                  (unsigned long long)ev.aux, ev.track == GS_TRACK_HOST ? "host" : "other thread");
        gs_w_text(ui, y + 4, x, w, gs_w_attr(ui, GS_C_DIM), "host wall time of the range (what the CPU spent, "
                  "including launches when the GPU runs it)");
        return;
    }
    if (ev.kind == GS_EV_KERNEL) {
        const gs_event_launch *l = &ev.u.launch;
        gs_w_text(ui, y + 3, x, w, A_NORMAL, "grid (%u,%u,%u)  block (%u,%u,%u)  %u registers/thread  %s shared/block",
                  l->grid[0], l->grid[1], l->grid[2], l->block[0], l->block[1], l->block[2], l->registers,
                  gs_fmt_bytes(b3, sizeof b3, l->shared_bytes));
    } else if (ev.kind == GS_EV_MEMCPY || ev.kind == GS_EV_MEMSET) {
        static const char *const ck[] = {"other", "host to device", "device to host", "device to device"};
        double gbs = ev.dur_ns ? ev.value / (double)ev.dur_ns : 0;
        gs_w_text(ui, y + 3, x, w, A_NORMAL, "%s  %s  %.1f GB/s achieved (measured)",
                  ev.kind == GS_EV_MEMSET ? "set" : ev.level <= 3 ? ck[ev.level] : "copy",
                  gs_fmt_bytes(b3, sizeof b3, ev.value), gbs);
    } else if (ev.kind == GS_EV_SYNC) {
        gs_w_text(ui, y + 3, x, w, A_NORMAL, "the host waited for the device here");
    }
    int op = hash_find(s, ev.range_id);
    if (op >= 0) {
        gs_event oe;
        if (!fetch(ui, s->items[op].index, &oe))
            memset(&oe, 0, sizeof oe);
        gs_w_text(ui, y + 4, x, w, A_NORMAL, "launched by op %s%s%s  (host range %s)",
                  gs_store_string(ui->store, oe.name), oe.layer >= 0 ? " in layer " : "",
                  oe.layer >= 0 ? (snprintf(b1, sizeof b1, "%d", oe.layer), b1) : "",
                  gs_fmt_ns(b2, sizeof b2, (double)oe.dur_ns));
    } else {
        gs_w_text(ui, y + 4, x, w, A_NORMAL, "launching range %s",
                  ev.range_id ? "outside the window shown (zoom out to see it)" : "unknown");
    }
    if (ev.kind == GS_EV_KERNEL)
        gs_w_text(ui, y + 5, x, w, gs_w_attr(ui, GS_C_DIM),
                  "bytes and hit rates: Memory view (3), measured on --metrics-every steps");
}

/* Whether the last frame's items and coverage are this window's. */
static int window_cached(gs_ui *ui, tl_state *s, int W)
{
    return s->key.valid && s->key.w == W && s->key.t0 == s->t0 && s->key.t1 == s->t1 &&
           s->key.n_rows == s->n_rows &&
           !memcmp(s->key.row_track, s->row_track, (size_t)s->n_rows * sizeof s->row_track[0]) &&
           s->key.count == gs_store_count(ui->store) && s->key.first == gs_store_first(ui->store);
}

/* Collects the window's items and adds up their coverage; 0, or -1 out of memory. */
static int build_window(gs_ui *ui, tl_state *s, int W, double ns_per_cell)
{
    s->key.valid = 0;
    /* the count before the walk: events appended during it make the next frame collect again */
    uint64_t count = gs_store_count(ui->store), first = gs_store_first(ui->store);
    s->n_items = 0;
    s->n_ranges = 0;
    gs_store_query_time(ui->store, s->t0, s->t1, collect, ui);
    hash_build(s);
    for (int i = 0; i < s->n_items; i++) {
        tl_item *it = &s->items[i];
        if (it->kind == GS_EV_KERNEL) {
            int op = hash_find(s, it->range_id);
            if (op >= 0)
                it->cat = s->items[op].cat;
        }
    }
    int R = s->n_rows;
    size_t need = (size_t)R * (size_t)W * GS_N_CAT;
    if (need > s->cov_cap) {
        free(s->cov);
        s->cov = malloc(need * sizeof *s->cov);
        s->cov_cap = s->cov ? need : 0;
        if (!s->cov)
            return -1;
    }
    float *cov = s->cov;
    memset(cov, 0, need * sizeof *cov);
    s->n_labels = 0;
    for (int i = 0; i < s->n_items; i++) {
        const tl_item *it = &s->items[i];
        double a = ((double)it->t - (double)s->t0) / ns_per_cell;
        double b = ((double)(it->t + it->dur) - (double)s->t0) / ns_per_cell;
        int ca = a < 0 ? 0 : (int)a, cb = b > W ? W : (int)b;
        if (cb - ca >= 2 && cb - ca >= name_len(ui, s, it->name) + 2) {
            if (s->n_labels == s->cap_labels) {
                int cap = s->cap_labels ? s->cap_labels * 2 : 256;
                int *n = realloc(s->labels, (size_t)cap * sizeof *n);
                if (!n)
                    return -1;
                s->labels = n;
                s->cap_labels = cap;
            }
            s->labels[s->n_labels++] = i;
        }
        if (b <= 0 || a >= W)
            continue;
        if (a < 0)
            a = 0;
        if (b > W)
            b = W;
        if (b - a < 0.125)
            b = a + 0.125; /* a kernel shorter than an eighth still shows */
        for (int c = (int)a; c < W && c < b; c++) {
            double lo = a > c ? a : c, hi = b < c + 1 ? b : c + 1;
            if (hi > lo)
                cov[((size_t)it->row * W + c) * GS_N_CAT + it->cat] += (float)(hi - lo);
        }
    }
    s->key.valid = 1;
    s->key.w = W;
    s->key.t0 = s->t0;
    s->key.t1 = s->t1;
    s->key.n_rows = s->n_rows;
    memcpy(s->key.row_track, s->row_track, sizeof s->row_track);
    s->key.count = count;
    s->key.first = first;
    return 0;
}

/* Position of the item with store index `index` (items are in store order), or -1. */
static int item_pos(const tl_state *s, uint64_t index)
{
    int lo = 0, hi = s->n_items - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->items[mid].index == index)
            return mid;
        if (s->items[mid].index < index)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void draw(gs_ui *ui, int y0, int h)
{
    tl_state *s = st_of(ui);
    if (!ui->ix.n_steps && !ui->ix.n_ranges) {
        gs_w_text(ui, y0 + 1, 2, ui->cols - 4, A_NORMAL, "waiting for the first step ...");
        return;
    }
    if (s->fit_step != ui->cursor_step || s->t1 <= s->t0)
        fit_step(ui, s);
    /* tracks: host step/layer/op, then the streams seen so far */
    s->n_rows = HOST_ROWS;
    for (int i = 0; i < ui->ix.n_streams; i++)
        s->row_track[s->n_rows++] = ui->ix.streams[i];
    int W = ui->cols - LABEL_W;
    s->plot_x = LABEL_W;
    s->plot_w = W;
    double span = (double)(s->t1 - s->t0);
    double ns_per_cell = span / W;
    /* axis */
    char b1[32], b2[32];
    const gs_ui_step *cs = gs_ui_step_at(ui, ui->cursor_step);
    gs_w_text(ui, y0, 0, ui->cols, A_BOLD, "step %lld%s  %s across  (%s per cell)", (long long)ui->cursor_step,
              cs && cs->metrics ? " [metrics step: timing distorted]" : "", gs_fmt_ns(b1, sizeof b1, span),
              gs_fmt_ns(b2, sizeof b2, ns_per_cell));
    int ay = y0 + 1;
    for (int x = 0; x < W; x += 20) {
        double t = x * ns_per_cell;
        gs_w_glyph(ui, ay, LABEL_W + x, "┬", '+', gs_w_attr(ui, GS_C_DIM));
        uint64_t rel = cs && s->t0 + (uint64_t)t >= cs->t_ns ? s->t0 + (uint64_t)t - cs->t_ns : 0;
        gs_w_text(ui, ay, LABEL_W + x + 1, 18, gs_w_attr(ui, GS_C_DIM), "%s", gs_fmt_ns(b1, sizeof b1, (double)rel));
    }
    int track_y = y0 + 2;
    int detail_h = h - (track_y - y0) - s->n_rows * 2 - 1 >= DETAIL_H ? DETAIL_H : 6;
    int rows_room = h - (track_y - y0) - detail_h - 1;
    int gap = rows_room >= s->n_rows * 2 + (ui->ix.n_streams ? 0 : 2) ? 1 : 0; /* a blank line between tracks when room */
    s->plot_y = track_y;
    if (s->row >= s->n_rows)
        s->row = s->n_rows - 1;
    /* coverage per (row, cell, category), remade only when the window changed */
    int R = s->n_rows;
    if (!window_cached(ui, s, W) && build_window(ui, s, W, ns_per_cell))
        return;
    const float *cov = s->cov;
    int match_cells = 0;
    static const char *const host_labels[HOST_ROWS] = {"host step", "host layer", "host op"};
    for (int r = 0; r < R; r++) {
        int y = track_y + r * (1 + gap);
        if (y >= track_y + rows_room)
            break;
        char lab[24];
        if (r < HOST_ROWS)
            snprintf(lab, sizeof lab, "%s", host_labels[r]);
        else
            snprintf(lab, sizeof lab, "stream %u", s->row_track[r] - GS_TRACK_STREAM0);
        gs_w_text(ui, y, 0, LABEL_W - 1, r == s->row ? A_REVERSE | A_BOLD : A_BOLD, "%-*s", LABEL_W - 1, lab);
        for (int c = 0; c < W; c++) {
            const float *cc = &cov[((size_t)r * W + c) * GS_N_CAT];
            float tot = 0, best = -1;
            int bc = GS_CAT_OTHER;
            for (int k = 0; k < GS_N_CAT; k++) {
                tot += cc[k];
                if (cc[k] > best) {
                    best = cc[k];
                    bc = k;
                }
            }
            if (tot <= 0)
                continue;
            int e = (int)(tot * 8 + 0.5f);
            if (e < 1)
                e = 1;
            gs_w_eighths(ui, y, LABEL_W + c, e, gs_w_cat_attr(ui, (gs_category)bc));
        }
    }
    /* names on bars wide enough, search matches, the selection: in item
     * order, as a later item draws over an earlier one. Without a search
     * only the named items and the selected one draw anything. */
    int searching = ui->search[0] != 0;
    int sel_pos = s->has_sel ? item_pos(s, s->sel.index) : -1;
    for (int j = 0, l = 0;; j++) {
        int i;
        if (searching) {
            if (j >= s->n_items)
                break;
            i = j;
        } else if (sel_pos >= 0 && (l >= s->n_labels || s->labels[l] >= sel_pos)) {
            i = sel_pos;
            if (l < s->n_labels && s->labels[l] == sel_pos)
                l++;
            sel_pos = -1;
        } else if (l < s->n_labels) {
            i = s->labels[l++];
        } else {
            break;
        }
        const tl_item *it = &s->items[i];
        int y = track_y + it->row * (1 + gap);
        if (y >= track_y + rows_room)
            continue;
        double a = ((double)it->t - (double)s->t0) / ns_per_cell;
        double b = ((double)(it->t + it->dur) - (double)s->t0) / ns_per_cell;
        int ca = a < 0 ? 0 : (int)a, cb = b > W ? W : (int)b;
        int is_sel = s->has_sel && it->index == s->sel.index;
        int match = searching && name_match(ui, s, it->name);
        if (match)
            match_cells++;
        if (is_sel || match) {
            int attr = is_sel ? (int)(A_REVERSE | A_BOLD) : gs_w_attr(ui, GS_C_MATCH);
            if (cb <= ca)
                cb = ca + 1;
            for (int c = ca; c < cb && c < W; c++)
                gs_w_text(ui, y, LABEL_W + c, 1, attr, " ");
        }
        int len = name_len(ui, s, it->name);
        if (cb - ca >= len + 2) {
            int attr = is_sel ? (int)(A_REVERSE | A_BOLD) : match ? gs_w_attr(ui, GS_C_MATCH) : (int)(gs_w_cat_attr(ui, (gs_category)it->cat) | A_REVERSE);
            gs_w_text(ui, y, LABEL_W + ca + 1, cb - ca - 1, attr, "%s", gs_store_string(ui->store, it->name));
        }
    }
    int ly = track_y + rows_room - 1;
    if (!ui->ix.n_streams)
        gs_w_text(ui, track_y + HOST_ROWS * (1 + gap), 0, ui->cols, gs_w_attr(ui, GS_C_DIM),
                  "no device tracks: a CPU run, or recorded with --device-trace off (host ranges only)");
    /* legend */
    int x = 0;
    for (int k = 0; k < GS_N_CAT; k++) {
        gs_w_glyph(ui, ly, x, "█", '#', gs_w_cat_attr(ui, (gs_category)k));
        gs_w_text(ui, ly, x + 2, ui->cols - x - 2, A_NORMAL, "%s", gs_category_name((gs_category)k));
        x += (int)strlen(gs_category_name((gs_category)k)) + 4;
    }
    if (ui->search[0])
        gs_w_text(ui, ly, x, ui->cols - x, A_NORMAL, " | %d match%s of '%s'", match_cells, match_cells == 1 ? "" : "es",
                  ui->search);
    draw_details(ui, s, y0 + h - detail_h, detail_h);
}

static int pick(gs_ui *ui, tl_state *s, int dir)
{
    /* The item on the selected track just after (dir 1) or before (-1) the selection. */
    uint64_t ref = s->has_sel && s->sel.row == s->row ? s->sel.t : dir > 0 ? s->t0 : s->t1;
    uint64_t refi = s->has_sel && s->sel.row == s->row ? s->sel.index : 0;
    int best = -1;
    for (int i = 0; i < s->n_items; i++) {
        const tl_item *it = &s->items[i];
        if (it->row != s->row || (s->has_sel && it->index == refi))
            continue;
        if (dir > 0 ? (it->t > ref || (it->t == ref && it->index > refi)) : (it->t < ref || (it->t == ref && it->index < refi))) {
            if (best < 0 || (dir > 0 ? it->t < s->items[best].t : it->t > s->items[best].t))
                best = i;
        }
    }
    if (best < 0)
        return 0;
    s->sel = s->items[best];
    s->has_sel = 1;
    /* keep it on screen */
    if (s->sel.t < s->t0 || s->sel.t + s->sel.dur > s->t1) {
        uint64_t span = s->t1 - s->t0;
        s->t0 = s->sel.t > span / 4 ? s->sel.t - span / 4 : 0;
        s->t1 = s->t0 + span;
    }
    return 1;
}

static int key_nav(gs_ui *ui, int ch);

static int key(gs_ui *ui, int ch)
{
    int used = key_nav(ui, ch);
    if (used && ui->follow) {
        /* Looking closely at a live step: stop following the newest one (End follows again). */
        ui->follow = 0;
        gs_ui_message(ui, "holding step %lld (End follows the live run again)", (long long)ui->cursor_step);
    }
    return used;
}

static int key_nav(gs_ui *ui, int ch)
{
    tl_state *s = st_of(ui);
    uint64_t center = s->has_sel ? s->sel.t + s->sel.dur / 2 : (s->t0 + s->t1) / 2;
    switch (ch) {
    case KEY_LEFT: case 'h':
        if (!pick(ui, s, -1))
            pan(s, -0.5);
        return 1;
    case KEY_RIGHT: case 'l':
        if (!pick(ui, s, 1))
            pan(s, 0.5);
        return 1;
    case 'H': case KEY_PPAGE:
        pan(s, -0.5);
        return 1;
    case 'L': case KEY_NPAGE:
        pan(s, 0.5);
        return 1;
    case KEY_UP: case 'k':
        if (s->row > 0)
            s->row--;
        return 1;
    case KEY_DOWN: case 'j':
        if (s->row + 1 < s->n_rows)
            s->row++;
        return 1;
    case '+': case '=':
        zoom(s, 0.5, center);
        return 1;
    case '-': case '_':
        zoom(s, 2.0, center);
        return 1;
    case '\n': case '\r': case KEY_ENTER:
        if (s->has_sel && s->sel.dur) {
            uint64_t pad = s->sel.dur / 10 + 100;
            s->t0 = s->sel.t > pad ? s->sel.t - pad : 0;
            s->t1 = s->sel.t + s->sel.dur + pad;
        }
        return 1;
    case KEY_BACKSPACE: case 127: case 8:
        fit_step(ui, s);
        return 1;
    case 27:
        s->has_sel = 0;
        return 1;
    default:
        return 0;
    }
}

static void mouse(gs_ui *ui, int x, int y, int wheel)
{
    tl_state *s = st_of(ui);
    if (x < s->plot_x || s->plot_w <= 0)
        return;
    uint64_t t = s->t0 + (uint64_t)((double)(x - s->plot_x) / s->plot_w * (double)(s->t1 - s->t0));
    if (wheel) {
        ui->follow = 0;
        zoom(s, wheel < 0 ? 0.5 : 2.0, t);
        return;
    }
    /* which track: rows may be spaced by a blank line */
    int best = -1;
    for (int i = 0; i < s->n_items; i++) {
        const tl_item *it = &s->items[i];
        int ry0 = s->plot_y + it->row, ry1 = s->plot_y + it->row * 2;
        if (y != ry0 && y != ry1)
            continue;
        uint64_t slack = (s->t1 - s->t0) / (uint64_t)s->plot_w;
        if (it->t <= t + slack && t <= it->t + it->dur + slack) {
            if (best < 0 || it->dur < s->items[best].dur)
                best = i;
        }
    }
    if (best >= 0) {
        s->sel = s->items[best];
        s->has_sel = 1;
        s->row = s->sel.row;
        ui->follow = 0;
    }
}

static void search(gs_ui *ui, int next)
{
    tl_state *s = st_of(ui);
    /* next match after the selection, on any track, in the window shown */
    uint64_t ref = s->has_sel ? s->sel.t : 0;
    uint64_t refi = s->has_sel ? s->sel.index : 0;
    int best = -1, matches = 0;
    for (int i = 0; i < s->n_items; i++) {
        const tl_item *it = &s->items[i];
        if (!strstr(gs_store_string(ui->store, it->name), ui->search))
            continue;
        matches++;
        int after = it->t > ref || (it->t == ref && it->index > refi) || (!next && !s->has_sel);
        if (after && (best < 0 || it->t < s->items[best].t))
            best = i;
    }
    if (best < 0) {
        gs_ui_message(ui, "'%s': no %smatch in the window shown (zoom out with -, or ] for the next step)",
                      ui->search, next ? "further " : "");
        return;
    }
    s->sel = s->items[best];
    s->has_sel = 1;
    s->row = s->sel.row;
    ui->follow = 0;
    gs_ui_message(ui, "'%s': %d match%s in the window shown (highlighted); n: next", ui->search, matches,
                  matches == 1 ? "" : "es");
}

static void release(gs_view *v)
{
    tl_state *s = v->state;
    if (!s)
        return;
    free(s->items);
    free(s->hkeys);
    free(s->hvals);
    free(s->name_cat);
    free(s->name_match);
    free(s->name_len);
    free(s->cov);
    free(s->labels);
    memset(s, 0, sizeof *s);
    s->fit_step = -2;
    s->items = NULL;
    s->hkeys = NULL;
    s->hvals = NULL;
}

void gs_view_timeline_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Timeline";
    v->help = "host ranges and device streams over time, colored by category";
    v->draw = draw;
    v->key = key;
    v->mouse = mouse;
    v->search = search;
    v->release = release;
    tl_state *s = calloc(1, sizeof *s);
    if (s)
        s->fit_step = -2;
    v->state = s;
}

