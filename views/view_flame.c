/* view_flame.c - an icicle graph: steps > layer > op > kernel.
 *
 * Frames aggregate over the last FLAME_LIVE_STEPS steps of a live run, or
 * over the whole recording in replay. Widths are host wall time for ranges
 * and device time for kernels; a kernel frame sits under the op whose range
 * launched it (range_id). Device time can exceed the op's host time (the
 * launch is asynchronous): then the children are scaled to fit their parent
 * and the details say so. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

#define FLAME_LIVE_STEPS 32
#define MAX_NODES 8192

typedef struct fnode {
    uint32_t name;       /* string id; GS_STORE_NO_ID for a synthetic label */
    char label[24];
    int depth, parent, first, last, next;
    uint64_t total;
    long calls;
    uint8_t cat, device;
    int x0, x1, y;       /* last frame's geometry (x1 0: not drawn) */
} fnode;

typedef struct flame_state {
    fnode *n;
    int nn;
    int zoom, sel;
    uint64_t built_count;
    int64_t built_s0, built_s1;
    long steps;
    int64_t last_step;   /* build: the step of the previous event, and whether it was sampled */
    int last_sampled;
    /* op range id -> node */
    uint64_t *hk;
    int *hv;
    int hcap, hn;
} flame_state;

static flame_state *st_of(gs_ui *ui) { return ui->views[GS_VIEW_FLAME].state; }

static int add_child(gs_ui *ui, flame_state *s, int parent, uint32_t name, const char *label, uint8_t device)
{
    for (int c = s->n[parent].first; c >= 0; c = s->n[c].next)
        if (s->n[c].name == name && s->n[c].device == device && (!label || !strcmp(s->n[c].label, label)))
            return c;
    if (s->nn >= MAX_NODES)
        return -1;
    int i = s->nn++;
    fnode *f = &s->n[i];
    memset(f, 0, sizeof *f);
    f->name = name;
    if (label)
        snprintf(f->label, sizeof f->label, "%s", label);
    f->depth = s->n[parent].depth + 1;
    f->parent = parent;
    f->first = f->last = f->next = -1;
    f->device = device;
    f->cat = label ? GS_CAT_OTHER : (uint8_t)gs_category_of(gs_store_string(ui->store, name));
    if (s->n[parent].last >= 0)
        s->n[s->n[parent].last].next = i;
    else
        s->n[parent].first = i;
    s->n[parent].last = i;
    return i;
}

static void hput(flame_state *s, uint64_t id, int node)
{
    if (!id)
        return;
    if (2 * (s->hn + 1) > s->hcap) {
        int cap = s->hcap ? s->hcap * 2 : 1024;
        uint64_t *k = calloc((size_t)cap, sizeof *k);
        int *v = malloc((size_t)cap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return;
        }
        for (int i = 0; i < s->hcap; i++)
            if (s->hk[i]) {
                uint64_t h = (s->hk[i] * 0x9E3779B97F4A7C15ull) & (uint64_t)(cap - 1);
                while (k[h])
                    h = (h + 1) & (uint64_t)(cap - 1);
                k[h] = s->hk[i];
                v[h] = s->hv[i];
            }
        free(s->hk);
        free(s->hv);
        s->hk = k;
        s->hv = v;
        s->hcap = cap;
    }
    uint64_t h = (id * 0x9E3779B97F4A7C15ull) & (uint64_t)(s->hcap - 1);
    while (s->hk[h] && s->hk[h] != id)
        h = (h + 1) & (uint64_t)(s->hcap - 1);
    if (!s->hk[h])
        s->hn++;
    s->hk[h] = id;
    s->hv[h] = node;
}

static int hget(const flame_state *s, uint64_t id)
{
    if (!s->hcap || !id)
        return -1;
    uint64_t h = (id * 0x9E3779B97F4A7C15ull) & (uint64_t)(s->hcap - 1);
    while (s->hk[h]) {
        if (s->hk[h] == id)
            return s->hv[h];
        h = (h + 1) & (uint64_t)(s->hcap - 1);
    }
    return -1;
}

static int build_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_ui *ui = ctx;
    flame_state *s = st_of(ui);
    (void)index;
    /* A step replayed for hardware metrics ran serialized: its widths would
     * swamp every other step's. */
    if (ev->step != s->last_step) {
        const gs_ui_step *st = gs_ui_step_at(ui, ev->step);
        s->last_step = ev->step;
        s->last_sampled = st && st->metrics;
    }
    if (s->last_sampled)
        return 0;
    if (ev->kind == GS_EV_RANGE) {
        if (ev->level == GS_RANGE_STEP) {
            s->n[0].total += ev->dur_ns;
            s->n[0].calls++;
            s->steps++;
            return 0;
        }
        int parent = 0;
        char lab[24];
        if (ev->layer >= 0) {
            snprintf(lab, sizeof lab, "layer %d", ev->layer);
            parent = add_child(ui, s, 0, GS_STORE_NO_ID, lab, 0);
            if (parent < 0)
                return 0;
        }
        if (ev->level == GS_RANGE_LAYER) {
            s->n[parent].total += ev->dur_ns;
            s->n[parent].calls++;
            return 0;
        }
        int op = add_child(ui, s, parent, ev->name, NULL, 0);
        if (op < 0)
            return 0;
        s->n[op].total += ev->dur_ns;
        s->n[op].calls++;
        hput(s, ev->aux, op);
    } else if (ev->kind == GS_EV_KERNEL || ev->kind == GS_EV_MEMCPY || ev->kind == GS_EV_MEMSET) {
        int op = hget(s, ev->range_id);
        int parent = op >= 0 ? op : add_child(ui, s, 0, GS_STORE_NO_ID, "(unattributed)", 1);
        if (parent < 0)
            return 0;
        int k = add_child(ui, s, parent, ev->name, NULL, 1);
        if (k < 0)
            return 0;
        s->n[k].total += ev->dur_ns;
        s->n[k].calls++;
        if (op < 0) {
            s->n[parent].total += ev->dur_ns;
            s->n[parent].calls++;
        }
    }
    return 0;
}

static void build(gs_ui *ui, flame_state *s)
{
    if (!ui->ix.n_steps)
        return;
    int64_t s1 = ui->live ? ui->cursor_step : ui->ix.steps[ui->ix.n_steps - 1].step;
    int64_t s0 = ui->live ? s1 - FLAME_LIVE_STEPS + 1 : ui->ix.steps[0].step;
    uint64_t count = gs_store_count(ui->store);
    if (s->nn && s0 == s->built_s0 && s1 == s->built_s1 && (count == s->built_count || !ui->live))
        return;
    /* keep the zoom and selection by path across rebuilds: remember names */
    uint32_t zn = s->nn ? s->n[s->zoom].name : 0, sn = s->nn ? s->n[s->sel].name : 0;
    char zl[24] = "", sl[24] = "";
    int zd = 0, sd = 0;
    if (s->nn) {
        snprintf(zl, sizeof zl, "%s", s->n[s->zoom].label);
        snprintf(sl, sizeof sl, "%s", s->n[s->sel].label);
        zd = s->n[s->zoom].depth;
        sd = s->n[s->sel].depth;
    }
    int had = s->nn;
    s->nn = 1;
    memset(&s->n[0], 0, sizeof s->n[0]);
    s->n[0].name = GS_STORE_NO_ID;
    snprintf(s->n[0].label, sizeof s->n[0].label, "all steps");
    s->n[0].parent = s->n[0].first = s->n[0].last = s->n[0].next = -1;
    s->n[0].cat = GS_CAT_OTHER;
    s->steps = 0;
    if (s->hcap)
        memset(s->hk, 0, (size_t)s->hcap * sizeof *s->hk);
    s->hn = 0;
    s->last_step = INT64_MIN;
    s->last_sampled = 0;
    gs_store_query_steps(ui->store, s0, s1, build_visit, ui);
    snprintf(s->n[0].label, sizeof s->n[0].label, "%ld step%s", s->steps, s->steps == 1 ? "" : "s");
    s->built_s0 = s0;
    s->built_s1 = s1;
    s->built_count = count;
    s->zoom = s->sel = 0;
    if (had)
        for (int i = 0; i < s->nn; i++) {
            if (s->n[i].depth == zd && s->n[i].name == zn && !strcmp(s->n[i].label, zl) && zd)
                s->zoom = i;
            if (s->n[i].depth == sd && s->n[i].name == sn && !strcmp(s->n[i].label, sl) && sd)
                s->sel = i;
        }
}

static const char *node_name(gs_ui *ui, const fnode *f)
{
    return f->name == GS_STORE_NO_ID ? f->label : gs_store_string(ui->store, f->name);
}

static int is_under(const flame_state *s, int i, int anc)
{
    for (; i >= 0; i = s->n[i].parent)
        if (i == anc)
            return 1;
    return 0;
}

static void draw_node(gs_ui *ui, flame_state *s, int i, int x0, int x1, int y, int ymax)
{
    fnode *f = &s->n[i];
    f->x0 = x0;
    f->x1 = x1;
    f->y = y;
    if (y >= ymax || x1 <= x0)
        return;
    const char *name = node_name(ui, f);
    int match = ui->search[0] && strstr(name, ui->search);
    int attr = i == s->sel ? (int)(A_REVERSE | A_BOLD)
               : match   ? gs_w_attr(ui, GS_C_MATCH)
               : ui->color ? (int)(gs_w_cat_attr(ui, (gs_category)f->cat) | A_REVERSE)
                           : (int)(f->depth % 2 ? A_REVERSE : A_NORMAL);
    int w = x1 - x0 > 2 ? x1 - x0 - 1 : x1 - x0; /* a gap between neighbors */
    gs_w_clear(ui, y, x0, w, attr);
    if (w >= 2)
        gs_w_text(ui, y, x0, w, attr, "%s", name);
    else
        gs_w_text(ui, y, x0, w, attr, "%c", ui->utf8 ? ' ' : '|');
    /* children, scaled to fit inside this frame */
    uint64_t sum = 0;
    for (int c = f->first; c >= 0; c = s->n[c].next)
        sum += s->n[c].total;
    uint64_t denom = sum > f->total ? sum : f->total;
    if (!denom)
        return;
    double acc = 0;
    for (int c = f->first; c >= 0; c = s->n[c].next) {
        int cx0 = x0 + (int)(acc / (double)denom * (x1 - x0) + 0.5);
        acc += (double)s->n[c].total;
        int cx1 = x0 + (int)(acc / (double)denom * (x1 - x0) + 0.5);
        if (cx1 > cx0)
            draw_node(ui, s, c, cx0, cx1, y + 1, ymax);
        else
            s->n[c].x1 = 0;
    }
}

static void draw(gs_ui *ui, int y0, int h)
{
    flame_state *s = st_of(ui);
    build(ui, s);
    if (s->nn <= 1 && !s->steps) {
        gs_w_text(ui, y0 + 1, 2, ui->cols - 4, A_NORMAL, "waiting for the first step ...");
        return;
    }
    for (int i = 0; i < s->nn; i++)
        s->n[i].x1 = 0;
    char b1[32], b2[32];
    gs_w_text(ui, y0, 0, ui->cols, A_BOLD, "%s, %s  (%s)", ui->live ? "recent steps" : "the whole recording",
              s->n[0].label, "host wall time; kernels: device time under the op that launched them");
    int depth_rows = 5; /* steps, layer, op, kernel, (unattributed kernels) */
    int ymax = y0 + 1 + depth_rows;
    /* ancestors of the zoomed frame, as a breadcrumb */
    char crumb[256] = "";
    int path[16], np = 0;
    for (int i = s->zoom; i >= 0 && np < 16; i = s->n[i].parent)
        path[np++] = i;
    for (int k = np - 1; k >= 0; k--) {
        size_t len = strlen(crumb);
        snprintf(crumb + len, sizeof crumb - len, "%s%s", node_name(ui, &s->n[path[k]]), k ? " > " : "");
    }
    gs_w_text(ui, y0 + 1, 0, ui->cols, gs_w_attr(ui, GS_C_DIM), "zoom: %s", crumb);
    draw_node(ui, s, s->zoom, 0, ui->cols, y0 + 2, ymax + 1);
    /* details of the selection */
    int y = ymax + 2;
    const fnode *f = &s->n[s->sel];
    const fnode *z = &s->n[s->zoom];
    const fnode *p = f->parent >= 0 ? &s->n[f->parent] : NULL;
    gs_w_hline(ui, y++, 0, ui->cols, gs_w_attr(ui, GS_C_DIM));
    gs_w_text(ui, y++, 1, ui->cols - 2, A_BOLD, "%s%s", node_name(ui, f), f->device ? "  (device)" : "");
    gs_w_text(ui, y++, 1, ui->cols - 2, A_NORMAL, "total %s over %ld call%s, %s per call; %.1f%% of the zoomed frame%s",
              gs_fmt_ns(b1, sizeof b1, (double)f->total), f->calls, f->calls == 1 ? "" : "s",
              gs_fmt_ns(b2, sizeof b2, f->calls ? (double)f->total / (double)f->calls : 0),
              z->total ? 100.0 * (double)f->total / (double)z->total : 0.0, p ? "," : "");
    if (p)
        gs_w_text(ui, y++, 1, ui->cols - 2, A_NORMAL, "%.1f%% of its parent %s%s",
                  p->total ? 100.0 * (double)f->total / (double)p->total : 0.0, node_name(ui, p),
                  f->device && !p->device ? " (device time against host time: the kernels ran asynchronously)" : "");
    /* the selection's children, largest first */
    y++;
    int kids[64], nk = 0;
    for (int c = f->first; c >= 0 && nk < 64; c = s->n[c].next)
        kids[nk++] = c;
    for (int a = 1; a < nk; a++)
        for (int b = a; b > 0 && s->n[kids[b]].total > s->n[kids[b - 1]].total; b--) {
            int t = kids[b];
            kids[b] = kids[b - 1];
            kids[b - 1] = t;
        }
    if (nk && y < y0 + h)
        gs_w_text(ui, y++, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM), "%-28s %10s %8s  %s", "inside it", "time",
                  "calls", "share");
    uint64_t denom = f->total;
    for (int k = 0; k < nk && y < y0 + h; k++, y++) {
        const fnode *c = &s->n[kids[k]];
        double share = denom ? (double)c->total / (double)denom : 0;
        gs_w_text(ui, y, 1, 28, A_NORMAL, "%s", node_name(ui, c));
        gs_w_text(ui, y, 30, 20, A_NORMAL, "%10s %8ld", gs_fmt_ns(b1, sizeof b1, (double)c->total), c->calls);
        gs_w_text(ui, y, 50, 7, A_NORMAL, "%5.1f%%", 100 * share);
        gs_w_bar(ui, y, 57, ui->cols - 58 < 40 ? ui->cols - 58 : 40, share, gs_w_cat_attr(ui, (gs_category)c->cat));
    }
}

static int key(gs_ui *ui, int ch)
{
    flame_state *s = st_of(ui);
    if (!s->nn)
        return 0;
    fnode *f = &s->n[s->sel];
    switch (ch) {
    case KEY_UP: case 'k':
        if (f->parent >= 0 && s->sel != s->zoom)
            s->sel = f->parent;
        return 1;
    case KEY_DOWN: case 'j':
        if (f->first >= 0)
            s->sel = f->first;
        return 1;
    case KEY_RIGHT: case 'l':
        if (f->next >= 0)
            s->sel = f->next;
        return 1;
    case KEY_LEFT: case 'h':
        if (f->parent >= 0)
            for (int c = s->n[f->parent].first; c >= 0; c = s->n[c].next)
                if (s->n[c].next == s->sel) {
                    s->sel = c;
                    break;
                }
        return 1;
    case '\n': case '\r': case KEY_ENTER: case '+': case '=':
        s->zoom = s->sel;
        return 1;
    case KEY_BACKSPACE: case 127: case 8: case '-': case '_':
        if (s->n[s->zoom].parent >= 0)
            s->zoom = s->n[s->zoom].parent;
        return 1;
    case 27:
        s->sel = s->zoom;
        return 1;
    default:
        return 0;
    }
}

static void mouse(gs_ui *ui, int x, int y, int wheel)
{
    flame_state *s = st_of(ui);
    for (int i = 0; i < s->nn; i++) {
        const fnode *f = &s->n[i];
        if (f->x1 > f->x0 && f->y == y && x >= f->x0 && x < f->x1) {
            s->sel = i;
            if (wheel < 0)
                s->zoom = i;
            break;
        }
    }
    if (wheel > 0 && s->n[s->zoom].parent >= 0)
        s->zoom = s->n[s->zoom].parent;
}

static void search(gs_ui *ui, int next)
{
    flame_state *s = st_of(ui);
    int n = 0;
    for (int i = 0; i < s->nn; i++)
        n += strstr(node_name(ui, &s->n[i]), ui->search) != NULL;
    /* nodes are numbered in the order first seen, which is model order */
    for (int k = 1; k <= s->nn; k++) {
        int i = (s->sel + (next ? k : k - 1)) % s->nn;
        if (!next && k == 1 && i == s->sel && !strstr(node_name(ui, &s->n[i]), ui->search))
            continue;
        if (strstr(node_name(ui, &s->n[i]), ui->search)) {
            s->sel = i;
            if (!is_under(s, i, s->zoom))
                s->zoom = 0;
            gs_ui_message(ui, "'%s': %d frame%s match (highlighted); n: next", ui->search, n, n == 1 ? "" : "s");
            return;
        }
    }
    gs_ui_message(ui, "'%s': no frame matches", ui->search);
}

static void release(gs_view *v)
{
    flame_state *s = v->state;
    free(s->n);
    free(s->hk);
    free(s->hv);
}

void gs_view_flame_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Flame";
    v->help = "icicle of steps > layer > op > kernel over recent steps (live) or the whole trace";
    v->draw = draw;
    v->key = key;
    v->mouse = mouse;
    v->search = search;
    v->release = release;
    flame_state *s = calloc(1, sizeof *s);
    if (s && !(s->n = malloc(MAX_NODES * sizeof *s->n))) {
        free(s);
        s = NULL;
    }
    v->state = s;
}
