/* view_toggles.c - the optimization toggles and what each variant costs.
 *
 * Live: a cursor over the settings; changes collect in a pending set that
 * `a` hands to the live run (which builds the variant beside the running
 * one, with a progress bar here, and swaps it in between steps) and Esc
 * discards. A set the rules refuse gets one line naming the option and
 * nothing else happens. The stepping and the rules are src/toggles.c.
 *
 * The cost table (baseline = the run's first variant, previous, current)
 * reads only the store: each variant's marker and its variant.* counters,
 * indexed by ui.c; DRAM per token comes from measured metrics steps. In
 * replay the same markers give the recorded toggle history. A figure that
 * was not measured says so; nothing is estimated here. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toggles.h"
#include "ui.h"
#include "widgets.h"

typedef struct tg_state {
    int cursor;
    int pending_set;          /* pending holds a copy being edited */
    gs_config pending;
    unsigned long seen_seq;   /* builds whose end was announced */
    char last[256];           /* the last build's result or refusal */
    int last_failed;
} tg_state;

static tg_state *state(gs_ui *ui)
{
    gs_view *v = &ui->views[GS_VIEW_TOGGLES];
    if (!v->state)
        v->state = calloc(1, sizeof(tg_state));
    return v->state;
}

static int can_edit(const gs_ui *ui)
{
    const gs_ui_live *l = ui->info->live;
    return l && l->config && l->apply && l->build_state;
}

/* "toggle weights=fp32 ..." -> "weights=fp32 ..." */
static const char *summary_of(const gs_ui *ui, const gs_ui_variant *v)
{
    if (!v || !v->named)
        return "";
    const char *s = gs_store_string(ui->store, v->summary);
    const char *sp = strchr(s, ' ');
    return sp ? sp + 1 : s;
}

/* The value of key in a summary ("window=64 ..."), into out; 0 when absent. */
static int summary_value(const char *sum, const char *key, char *out, int cap)
{
    size_t kl = strlen(key);
    for (const char *p = sum; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            const char *e = strchr(p + kl + 1, ' ');
            snprintf(out, (size_t)cap, "%.*s", e ? (int)(e - p - kl - 1) : (int)strlen(p + kl + 1), p + kl + 1);
            return 1;
        }
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return 0;
}

/* ---- the settings ---- */

static void draw_settings(gs_ui *ui, tg_state *t, int y, int rows, const gs_config *cur)
{
    int colw = (ui->cols - 4) / 2;
    const gs_ui_variant *run = ui->ix.cur_variant >= 0 ? &ui->ix.variants[ui->ix.cur_variant] : NULL;
    for (int i = 0; i < GS_TG_COUNT; i++) {
        int yy = y + i % rows, x = 2 + (i / rows) * colw;
        const gs_toggle *tg = gs_toggle_at(i);
        char v[64] = "", pv[64] = "";
        if (cur) {
            gs_toggle_value(cur, i, v, sizeof v);
            if (t->pending_set)
                gs_toggle_value(&t->pending, i, pv, sizeof pv);
        } else if (!summary_value(summary_of(ui, run), tg->label, v, sizeof v)) {
            snprintf(v, sizeof v, "-");
        }
        int sel = cur && i == t->cursor;
        gs_w_text(ui, yy, x, 2, A_BOLD, "%s", sel ? ">" : " ");
        gs_w_text(ui, yy, x + 2, 13, sel ? A_REVERSE : A_NORMAL, "%s", tg->label);
        int na = !strcmp(v, "n/a");
        gs_w_text(ui, yy, x + 16, 18, na ? gs_w_attr(ui, GS_C_DIM) : (int)A_BOLD, "%s", v);
        if (pv[0] && strcmp(pv, v)) {
            int vl = (int)strlen(v);
            gs_w_text(ui, yy, x + 16 + vl + 1, colw - 18 - vl, gs_w_attr(ui, GS_C_MATCH) | A_BOLD, "-> %s", pv);
        }
    }
}

/* Replay of a trace without variant markers: the optimizations block of its YAML. */
static int draw_yaml_settings(gs_ui *ui, int y, int ymax)
{
    const char *yaml = ui->info->config_yaml;
    const char *p = yaml ? strstr(yaml, "\noptimizations:") : NULL;
    p = p ? p + 1 : (yaml && strncmp(yaml, "optimizations:", 14) == 0 ? yaml : NULL);
    if (!p) {
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL, "(this trace carries no optimization settings)");
        return y;
    }
    p = strchr(p, '\n');
    int i = 0, colw = (ui->cols - 4) / 2;
    while (p && p[1] == ' ' && y + i / 2 < ymax) {
        const char *e = strchr(p + 1, '\n');
        char line[256];
        snprintf(line, sizeof line, "%.*s", e ? (int)(e - p - 1) : (int)strlen(p + 1), p + 1);
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = 0;
            const char *k = line, *val = colon + 1;
            while (*k == ' ')
                k++;
            while (*val == ' ')
                val++;
            int yy = y + i % 6, x = 2 + (i / 6) * colw;
            gs_w_text(ui, yy, x + 2, 13, A_NORMAL, "%s", k);
            gs_w_text(ui, yy, x + 16, colw - 18, A_BOLD, "%s", val);
            i++;
        }
        p = e;
    }
    return y + (i < 6 ? i : 6);
}

/* ---- the cost table ---- */

static void cell(char *buf, int cap, const gs_ui_variant *v, int row)
{
    if (!v) {
        snprintf(buf, (size_t)cap, "-");
        return;
    }
    if (row == GS_VS_COUNT) { /* DRAM bytes per token, measured */
        if (v->dram_tokens > 0)
            gs_fmt_bytes(buf, cap, v->dram_bytes / v->dram_tokens);
        else
            snprintf(buf, (size_t)cap, "n/a");
        return;
    }
    if (!(v->have & (1u << row))) {
        snprintf(buf, (size_t)cap, row >= GS_VS_KL ? "not measured" : "-");
        return;
    }
    double x = v->v[row];
    switch (row) {
    case GS_VS_DECODE_MS:
    case GS_VS_PREFILL_MS: snprintf(buf, (size_t)cap, "%.3f ms", x); break;
    case GS_VS_DECODE_TPS: snprintf(buf, (size_t)cap, "%.1f", x); break;
    case GS_VS_WEIGHT_BYTES:
    case GS_VS_KV_BYTES_TOKEN:
    case GS_VS_PEAK_BYTES: gs_fmt_bytes(buf, cap, x); break;
    case GS_VS_KL: snprintf(buf, (size_t)cap, "%.4f", x); break;
    case GS_VS_TOP1: snprintf(buf, (size_t)cap, "%.1f%%", 100 * x); break;
    default: snprintf(buf, (size_t)cap, "%.2f", x); break;
    }
}

static int figure(const gs_ui_variant *v, int row, double *x)
{
    if (!v)
        return 0;
    if (row == GS_VS_COUNT) {
        *x = v->dram_tokens > 0 ? v->dram_bytes / v->dram_tokens : 0;
        return v->dram_tokens > 0;
    }
    *x = v->v[row];
    return (v->have & (1u << row)) != 0;
}

static void ratio(char *buf, int cap, const gs_ui_variant *cur, const gs_ui_variant *ref, int row)
{
    double a, b;
    if (!cur || !ref || cur == ref || !figure(cur, row, &a) || !figure(ref, row, &b) || b == 0)
        snprintf(buf, (size_t)cap, "-");
    else
        snprintf(buf, (size_t)cap, "x%.2f", a / b);
}

static int draw_costs(gs_ui *ui, int y, int ymax)
{
    const gs_ui_index *ix = &ui->ix;
    if (ix->cur_variant < 0) {
        gs_w_text(ui, y++, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM),
                  "cost table: no variant figures in %s", ui->live ? "the store yet" : "this recording");
        return y;
    }
    const gs_ui_variant *cur = &ix->variants[ix->cur_variant], *base = NULL, *prev = NULL;
    for (int i = 0; i < ix->n_variants; i++) {
        const gs_ui_variant *v = &ix->variants[i];
        if (!base || v->id < base->id)
            base = v;
        if (v->id < cur->id && (!prev || v->id > prev->id))
            prev = v;
    }
    if (prev == base)
        prev = NULL; /* the baseline column says it already */
    const gs_ui_variant *cols[3] = {base, prev, cur};
    int lw = 20, cw = ui->cols >= 100 ? 15 : 12, rw = 8;
    int x0 = 2;
    char h[3][32];
    snprintf(h[0], sizeof h[0], "baseline #%d", base->id);
    snprintf(h[1], sizeof h[1], prev ? "previous #%d" : "previous", prev ? prev->id : 0);
    snprintf(h[2], sizeof h[2], "current #%d", cur->id);
    gs_w_text(ui, y, x0, lw, A_BOLD, "cost");
    for (int c = 0; c < 3; c++)
        gs_w_text(ui, y, x0 + lw + c * cw, cw, A_BOLD, "%*s", cw - 1, h[c]);
    gs_w_text(ui, y, x0 + lw + 3 * cw, rw, A_BOLD, "%*s", rw - 1, "vs base");
    gs_w_text(ui, y, x0 + lw + 3 * cw + rw, rw, A_BOLD, "%*s", rw - 1, "vs prev");
    y++;
    static const struct { int row; const char *label; } rows[] = {
        {GS_VS_DECODE_MS, "decode ms/token"}, {GS_VS_DECODE_TPS, "decode tokens/s"},
        {GS_VS_PREFILL_MS, "prefill ms"},     {GS_VS_WEIGHT_BYTES, "weight bytes"},
        {GS_VS_KV_BYTES_TOKEN, "KV bytes/token"}, {GS_VS_COUNT, "DRAM bytes/token"},
        {GS_VS_PEAK_BYTES, "peak memory"},    {GS_VS_KL, "KL vs fp32"},
        {GS_VS_TOP1, "top-1 agreement"},      {GS_VS_PPL, "perplexity"},
    };
    int any_dram = 0, any_quality = 0;
    for (int c = 0; c < 3; c++) {
        double x;
        any_dram |= figure(cols[c], GS_VS_COUNT, &x);
        any_quality |= figure(cols[c], GS_VS_KL, &x) || figure(cols[c], GS_VS_PPL, &x);
    }
    for (size_t r = 0; r < sizeof rows / sizeof rows[0] && y < ymax; r++, y++) {
        gs_w_text(ui, y, x0, lw, A_NORMAL, "%s", rows[r].label);
        if (rows[r].row == GS_VS_COUNT && !any_dram) {
            gs_w_text(ui, y, x0 + lw, 3 * cw, gs_w_attr(ui, GS_C_DIM), "%*s", cw - 1, "n/a (no device metrics)");
            continue;
        }
        if (rows[r].row >= GS_VS_KL && rows[r].row < GS_VS_COUNT && !any_quality) {
            gs_w_text(ui, y, x0 + lw, 3 * cw, gs_w_attr(ui, GS_C_DIM), "%*s", cw - 1, "not measured");
            continue;
        }
        for (int c = 0; c < 3; c++) {
            char b[32];
            cell(b, sizeof b, cols[c], rows[r].row);
            gs_w_text(ui, y, x0 + lw + c * cw, cw, c == 2 ? A_BOLD : A_NORMAL, "%*s", cw - 1, b);
        }
        char rb[16];
        ratio(rb, sizeof rb, cur, base, rows[r].row);
        gs_w_text(ui, y, x0 + lw + 3 * cw, rw, A_NORMAL, "%*s", rw - 1, rb);
        ratio(rb, sizeof rb, cur, prev, rows[r].row);
        gs_w_text(ui, y, x0 + lw + 3 * cw + rw, rw, A_NORMAL, "%*s", rw - 1, rb);
    }
    return y;
}

/* Each switch, oldest first: "#2 from step 140: attention=fused". */
static void draw_history(gs_ui *ui, int y, int ymax)
{
    const gs_ui_index *ix = &ui->ix;
    if (y >= ymax || ix->n_variants == 0)
        return;
    gs_w_text(ui, y++, 2, ui->cols - 4, A_BOLD, "variants");
    int first = ix->n_variants - (ymax - y);
    for (int i = first < 0 ? 0 : first; i < ix->n_variants && y < ymax; i++, y++) {
        const gs_ui_variant *v = &ix->variants[i];
        const gs_ui_variant *p = gs_ui_variant_by_id(ui, v->id - 1);
        char d[256];
        if (p && v->toggled)
            gs_fmt_tokens_not_in(summary_of(ui, p), summary_of(ui, v), d, sizeof d);
        else
            snprintf(d, sizeof d, "%s", summary_of(ui, v));
        char at[48] = "";
        if (v->toggled && v->start_step >= 0)
            snprintf(at, sizeof at, "toggled at step %lld: ", (long long)v->start_step);
        gs_w_text(ui, y, 4, ui->cols - 6, i == ix->cur_variant ? A_BOLD : A_NORMAL, "#%-2d %s%s%s", v->id, at,
                  d[0] ? d : "(no change)", v->id == 1 && !v->toggled ? "  (baseline)" : "");
    }
}

static void draw(gs_ui *ui, int y0, int h)
{
    tg_state *t = state(ui);
    if (!t)
        return;
    int y = y0, ymax = y0 + h;
    gs_config cur;
    int n_head = 0, edit = can_edit(ui);
    if (edit) {
        const gs_ui_live *l = ui->info->live;
        l->config(l->ctx, &cur, &n_head);
        gs_w_text(ui, y++, 2, ui->cols - 4, A_BOLD,
                  "Optimization toggles  j/k move  h/l or Enter change  a apply  Esc discard");
    } else {
        gs_w_text(ui, y++, 2, ui->cols - 4, A_BOLD, "Optimizations of this %s%s", ui->live ? "run" : "recording",
                  ui->live ? "" : " (toggle history from its markers)");
    }
    y++;
    if (edit || ui->ix.cur_variant >= 0) {
        draw_settings(ui, t, y, 5, edit ? &cur : NULL);
        y += 5;
    } else {
        y = draw_yaml_settings(ui, y, ymax);
    }
    /* the status line: building, pending, or the last result */
    if (edit) {
        const gs_ui_live *l = ui->info->live;
        gs_ui_build b;
        l->build_state(l->ctx, &b);
        if (b.seq != t->seen_seq) {
            t->seen_seq = b.seq;
            snprintf(t->last, sizeof t->last, "%s", b.msg);
            t->last_failed = b.failed;
            gs_ui_message(ui, "%s", b.msg);
        }
        char diff[256] = "";
        if (t->pending_set)
            gs_toggle_diff(&cur, &t->pending, diff, sizeof diff);
        if (b.building) {
            gs_w_text(ui, y, 2, 30, A_BOLD, "building: %s", b.stage);
            gs_w_bar(ui, y, 33, ui->cols - 45, b.frac, gs_w_attr(ui, GS_C_ELEM));
            gs_w_text(ui, y, ui->cols - 11, 10, A_BOLD, "%3.0f%%", 100 * b.frac);
        } else if (diff[0]) {
            gs_w_text(ui, y, 2, ui->cols - 4, gs_w_attr(ui, GS_C_MATCH) | A_BOLD, "pending: %s  (a applies, Esc discards)",
                      diff);
        } else if (t->last[0]) {
            gs_w_text(ui, y, 2, ui->cols - 4, t->last_failed ? gs_w_attr(ui, GS_C_WARN) | A_BOLD : A_NORMAL, "%s",
                      t->last);
        } else {
            gs_w_text(ui, y, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM),
                      "nothing pending: change a setting, then a builds it beside the running one");
        }
        y++;
    }
    y++;
    y = draw_costs(ui, y, ymax);
    draw_history(ui, y + 1, ymax);
}

static int key(gs_ui *ui, int ch)
{
    tg_state *t = state(ui);
    if (!t)
        return 0;
    if (!can_edit(ui)) {
        if (strchr("aAhjklHJKL+-", ch & 0x7f) || ch == KEY_LEFT || ch == KEY_RIGHT || ch == '\r' || ch == '\n') {
            gs_ui_message(ui, "replay: the toggles are the recording's (live mode switches them)");
            return 1;
        }
        return 0;
    }
    const gs_ui_live *l = ui->info->live;
    gs_config cur;
    int n_head = 0;
    l->config(l->ctx, &cur, &n_head);
    int dir = 0;
    switch (ch) {
    case KEY_UP: case 'k':
        t->cursor = (t->cursor + GS_TG_COUNT - 1) % GS_TG_COUNT;
        return 1;
    case KEY_DOWN: case 'j':
        t->cursor = (t->cursor + 1) % GS_TG_COUNT;
        return 1;
    case KEY_LEFT: case 'h': case '-':
        dir = -1;
        break;
    case KEY_RIGHT: case 'l': case '+': case '\r': case '\n': case KEY_ENTER:
        dir = 1;
        break;
    case 27:
        if (t->pending_set) {
            t->pending_set = 0;
            gs_ui_message(ui, "pending changes discarded");
        }
        return 1;
    case 'a': {
        char diff[256] = "";
        if (t->pending_set)
            gs_toggle_diff(&cur, &t->pending, diff, sizeof diff);
        if (!diff[0]) {
            gs_ui_message(ui, "nothing pending to apply");
            return 1;
        }
        char msg[256];
        if (l->apply(l->ctx, &t->pending, msg, sizeof msg)) {
            snprintf(t->last, sizeof t->last, "refused, the running variant stays: %.200s", msg);
            t->last_failed = 1;
            gs_ui_message(ui, "%s", t->last);
            t->pending_set = 0;
        } else {
            gs_ui_message(ui, "building %s beside the running variant", diff);
            t->pending_set = 0;
            t->last[0] = 0;
        }
        return 1;
    }
    default:
        return 0;
    }
    if (!t->pending_set) {
        t->pending = cur;
        t->pending_set = 1;
    }
    gs_error err = {0};
    if (gs_toggle_step(&t->pending, t->cursor, dir, n_head, &err))
        gs_ui_message(ui, "%s", err.msg);
    return 1;
}

void gs_view_toggles_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Toggles";
    v->help = "switch optimizations live (a applies) and what each variant costs";
    v->draw = draw;
    v->key = key;
}
