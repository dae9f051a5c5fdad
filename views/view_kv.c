/* view_kv.c - the paged KV cache: a block map from the GS_EV_KV_BLOCKS
 * snapshot of the cursor's step (one cell per block, colored by the owning
 * sequence, free blocks dim), occupancy and fragmentation now and over time
 * from the engine counters kv.blocks_used, kv.blocks_free and
 * kv.fragmentation. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

#define MAX_BLOCKS (1 << 20)

typedef struct kv_state {
    int32_t *owner;      /* per block: sequence, -1 free, -2 unknown */
    uint32_t n_blocks;
    int64_t snap_step;
    int found;
    int64_t want_step;   /* the step being read */
    /* The map is read again only when the cursor or the store changed. */
    int64_t built_cursor;
    uint64_t built_count;
    int built;
} kv_state;

static kv_state *st_of(gs_ui *ui) { return ui->views[GS_VIEW_KV].state; }

static int visit(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_ui *ui = ctx;
    kv_state *s = st_of(ui);
    (void)index;
    if (ev->kind != GS_EV_KV_BLOCKS || ev->step != s->want_step)
        return 0;
    const gs_event_kv *kv = &ev->u.kv;
    if (kv->total_blocks == 0 || kv->total_blocks > MAX_BLOCKS)
        return 0;
    if (kv->total_blocks != s->n_blocks || !s->found) {
        int32_t *o = realloc(s->owner, kv->total_blocks * sizeof *o);
        if (!o)
            return 1;
        s->owner = o;
        s->n_blocks = kv->total_blocks;
        for (uint32_t i = 0; i < s->n_blocks; i++)
            s->owner[i] = -2;
    }
    s->found = 1;
    s->snap_step = ev->step;
    for (uint32_t b = kv->first_block; b < kv->first_block + kv->n_blocks && b < s->n_blocks; b++)
        s->owner[b] = kv->seq;
    return 0;
}

static void draw(gs_ui *ui, int y0, int h)
{
    kv_state *s = st_of(ui);
    char b1[32];
    int y = y0;
    uint64_t count = gs_store_count(ui->store);
    if (!s->built || s->built_cursor != ui->cursor_step || s->built_count != count) {
        s->built = 1;
        s->built_cursor = ui->cursor_step;
        s->built_count = count;
        s->found = 0;
        /* the newest snapshot at or before the cursor (a few steps back at
         * most), each step read from its span of the store (the index knows it) */
        int p = gs_ui_step_pos(ui, ui->cursor_step);
        for (int k = 0; ui->ix.n_kv && p - k >= 0 && k < 16 && !s->found; k++) {
            const gs_ui_step *st = &ui->ix.steps[p - k];
            if (st->step > ui->cursor_step)
                continue;
            s->want_step = st->step;
            gs_store_visit(ui->store, st->ev_first, st->ev_last + 1, visit, ui);
        }
    }
    const gs_ui_step *cs = gs_ui_step_at(ui, ui->cursor_step);
    if (cs)
        gs_w_text(ui, y, 1, ui->cols - 2, A_BOLD,
                  "KV cache at step %lld: %.0f blocks used, %.0f free (%.1f%% occupied), fragmentation %.1f%%",
                  (long long)ui->cursor_step, cs->kv_used, cs->kv_free,
                  cs->kv_used + cs->kv_free > 0 ? 100 * cs->kv_used / (cs->kv_used + cs->kv_free) : 0.0,
                  100 * cs->frag);
    else
        gs_w_text(ui, y, 1, ui->cols - 2, A_BOLD, "KV cache: waiting for the first step ...");
    y += 2;
    int map_h = h - 10;
    if (!s->found) {
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL, "No block snapshot at this step (this %s has %s).",
                  ui->live ? "run" : "trace", ui->ix.n_kv ? "snapshots at other steps" : "no KV snapshots");
        y = y0 + 2 + map_h;
    } else {
        /* one cell per block, or several blocks per cell when the cache is large */
        int w = ui->cols - 4;
        uint32_t cells = (uint32_t)w * (uint32_t)(map_h > 1 ? map_h : 1);
        uint32_t per = (s->n_blocks + cells - 1) / cells;
        if (per < 1)
            per = 1;
        int nseq = 0;
        int32_t seen[64];
        for (uint32_t c = 0; c * per < s->n_blocks; c++) {
            int32_t o = s->owner[c * per];
            /* a cell holding several blocks shows its first owned block */
            for (uint32_t b = c * per; b < (c + 1) * per && b < s->n_blocks; b++)
                if (s->owner[b] >= 0) {
                    o = s->owner[b];
                    break;
                }
            int cx = 2 + (int)(c % (uint32_t)w), cy = y + (int)(c / (uint32_t)w);
            if (o < 0) {
                gs_w_glyph(ui, cy, cx, "·", '.', gs_w_attr(ui, GS_C_DIM));
            } else {
                int pair = GS_C_SEQ0 + o % GS_N_SEQ_COLORS;
                if (ui->color)
                    gs_w_glyph(ui, cy, cx, "█", '#', gs_w_attr(ui, pair));
                else
                    gs_w_text(ui, cy, cx, 1, A_BOLD, "%c", 'a' + o % 26);
                int k = 0;
                while (k < nseq && seen[k] != o)
                    k++;
                if (k == nseq && nseq < 64)
                    seen[nseq++] = o;
            }
        }
        int used_rows = (int)((s->n_blocks / per + (uint32_t)w - 1) / (uint32_t)w);
        y += used_rows + 1;
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL,
                  "%u blocks%s, %d sequence%s; one %s per sequence, %s = free",
                  s->n_blocks, per > 1 ? (snprintf(b1, sizeof b1, " (%u per cell)", per), b1) : "", nseq,
                  nseq == 1 ? "" : "s", ui->color ? "color" : "letter", ui->utf8 ? "·" : ".");
        if (s->snap_step != ui->cursor_step)
            gs_w_text(ui, y++, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM), "(snapshot of step %lld, the newest at or before the cursor)",
                      (long long)s->snap_step);
        if (y < y0 + 2 + map_h)
            y = y0 + 2 + map_h;
    }
    /* over time */
    double occ[GS_UI_HIST], frag[GS_UI_HIST];
    int n = 0;
    int last = gs_ui_step_pos(ui, ui->cursor_step);
    for (int i = last - GS_UI_HIST + 1 < 0 ? 0 : last - GS_UI_HIST + 1; i >= 0 && i <= last; i++) {
        const gs_ui_step *st = &ui->ix.steps[i];
        double tot = st->kv_used + st->kv_free;
        occ[n] = tot > 0 ? st->kv_used / tot : 0;
        frag[n++] = st->frag;
    }
    int sw = ui->cols - 22;
    gs_w_text(ui, y, 1, 20, A_NORMAL, "occupancy     0-100%%");
    gs_w_sparkline(ui, y++, 21, sw, occ, n, 1.0, gs_w_attr(ui, GS_C_SEQ0));
    gs_w_text(ui, y, 1, 20, A_NORMAL, "fragmentation 0-100%%");
    gs_w_sparkline(ui, y++, 21, sw, frag, n, 1.0, gs_w_attr(ui, GS_C_SEQ0 + 3));
    y++;
    gs_w_text(ui, y++, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM),
              "fragmentation: share of allocated token slots holding no token");
    gs_w_text(ui, y++, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM),
              "preemptions, bytes per token: not in the event store yet");
}

static void release(gs_view *v)
{
    kv_state *s = v->state;
    free(s->owner);
}

void gs_view_kv_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "KV cache";
    v->help = "block map by sequence at the cursor's step, occupancy and fragmentation over time";
    v->draw = draw;
    v->release = release;
    v->state = calloc(1, sizeof(kv_state));
}
