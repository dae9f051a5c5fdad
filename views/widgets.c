/* widgets.c - shared drawing pieces (see widgets.h). */
#include "widgets.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

gs_category gs_category_of(const char *n)
{
    if (!n)
        return GS_CAT_OTHER;
    /* Order matters: "norm_attn" is a norm, "residual_norm_mlp" too. */
    if (strstr(n, "norm"))
        return GS_CAT_NORM;
    if (strstr(n, "matmul") || strstr(n, "gemm") || strstr(n, "gemv") || strstr(n, "cublas") ||
        strstr(n, "cutlass") || strstr(n, "lm_head"))
        return GS_CAT_MATMUL;
    if (strstr(n, "attention") || strstr(n, "attn") || strstr(n, "softmax") || strstr(n, "flash"))
        return GS_CAT_ATTN;
    if (strstr(n, "upload") || strstr(n, "download") || strstr(n, "kv_store") || strstr(n, "memcpy") ||
        strstr(n, "memset") || strstr(n, "copy") || strstr(n, "gather"))
        return GS_CAT_COPY;
    if (strcmp(n, "step") == 0 || strcmp(n, "layer") == 0)
        return GS_CAT_OTHER;
    return GS_CAT_ELEM;
}

const char *gs_category_name(gs_category c)
{
    static const char *const names[GS_N_CAT] = {"matrix product", "attention", "norm", "elementwise", "copy",
                                                 "other"};
    return c < GS_N_CAT ? names[c] : "other";
}

int gs_w_attr(const gs_ui *ui, int pair)
{
    if (ui->color)
        return pair ? (int)COLOR_PAIR(pair) : A_NORMAL;
    /* Monochrome: video attributes tell the few things that must differ. */
    switch (pair) {
    case GS_C_BAR: case GS_C_TAB: case GS_C_MATCH: return A_REVERSE;
    case GS_C_DIM: return A_DIM;
    case GS_C_WARN: return A_BOLD;
    case GS_C_MATMUL: return A_BOLD;
    case GS_C_ATTN: return A_UNDERLINE;
    default: return A_NORMAL;
    }
}

int gs_w_cat_attr(const gs_ui *ui, gs_category c) { return gs_w_attr(ui, GS_C_MATMUL + (int)c); }

void gs_w_text(const gs_ui *ui, int y, int x, int w, int attr, const char *fmt, ...)
{
    if (w <= 0 || y < 0 || y >= ui->rows || x >= ui->cols)
        return;
    if (x + w > ui->cols)
        w = ui->cols - x;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    attron(attr);
    mvaddnstr(y, x, buf, w);
    attroff(attr);
}

void gs_w_clear(const gs_ui *ui, int y, int x, int w, int attr)
{
    if (y < 0 || y >= ui->rows)
        return;
    if (x + w > ui->cols)
        w = ui->cols - x;
    attron(attr);
    for (int i = 0; i < w; i++)
        mvaddch(y, x + i, ' ');
    attroff(attr);
}

void gs_w_hline(const gs_ui *ui, int y, int x, int w, int attr)
{
    for (int i = 0; i < w && x + i < ui->cols; i++)
        gs_w_glyph(ui, y, x + i, "─", '-', attr);
}

void gs_w_glyph(const gs_ui *ui, int y, int x, const char *utf8, char ascii, int attr)
{
    if (y < 0 || y >= ui->rows || x < 0 || x >= ui->cols)
        return;
    attron(attr);
    if (ui->utf8)
        mvaddstr(y, x, utf8);
    else
        mvaddch(y, x, (chtype)(unsigned char)ascii);
    attroff(attr);
}

void gs_w_eighths(const gs_ui *ui, int y, int x, int e, int attr)
{
    static const char *const blocks[9] = {" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"};
    if (e < 0)
        e = 0;
    if (e > 8)
        e = 8;
    gs_w_glyph(ui, y, x, blocks[e], e == 0 ? ' ' : e < 4 ? '|' : e < 8 ? '=' : '#', attr);
}

void gs_w_bar(const gs_ui *ui, int y, int x, int w, double frac, int attr)
{
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    int eighths = (int)(frac * w * 8 + 0.5);
    for (int i = 0; i < w; i++) {
        int e = eighths - i * 8;
        gs_w_eighths(ui, y, x + i, e, attr);
    }
}

void gs_w_sparkline(const gs_ui *ui, int y, int x, int w, const double *v, int n, double max, int attr)
{
    static const char *const levels[8] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    static const char ascii[8] = {'_', '_', '.', '-', '-', '=', '*', '#'};
    int first = n > w ? n - w : 0;
    if (max <= 0)
        for (int i = first; i < n; i++)
            if (v[i] > max)
                max = v[i];
    for (int i = 0; i < w; i++) {
        int k = first + i - (w - (n - first)); /* right-aligned: newest at the right */
        if (k < first || k >= n) {
            gs_w_glyph(ui, y, x + i, " ", ' ', attr);
            continue;
        }
        int l = max > 0 ? (int)(v[k] / max * 7.0 + 0.5) : 0;
        if (l < 0)
            l = 0;
        if (l > 7)
            l = 7;
        gs_w_glyph(ui, y, x + i, levels[l], ascii[l], attr);
    }
}

char *gs_fmt_ns(char *buf, int cap, double ns)
{
    if (ns >= 1e9)
        snprintf(buf, (size_t)cap, "%.2f s", ns * 1e-9);
    else if (ns >= 1e6)
        snprintf(buf, (size_t)cap, "%.2f ms", ns * 1e-6);
    else if (ns >= 1e3)
        snprintf(buf, (size_t)cap, "%.1f us", ns * 1e-3);
    else
        snprintf(buf, (size_t)cap, "%.0f ns", ns);
    return buf;
}

char *gs_fmt_bytes(char *buf, int cap, double b)
{
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(buf, (size_t)cap, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(buf, (size_t)cap, "%.1f MiB", b / (1024.0 * 1024));
    else if (b >= 1024.0)
        snprintf(buf, (size_t)cap, "%.1f KiB", b / 1024.0);
    else
        snprintf(buf, (size_t)cap, "%.0f B", b);
    return buf;
}

/* ---- status bar ----------------------------------------------------- */

void gs_w_status(gs_ui *ui, int y)
{
    int bar = gs_w_attr(ui, GS_C_BAR);
    gs_w_clear(ui, y, 0, ui->cols, bar);
    /* tokens/s: mean of the last few timed steps (metrics steps are replayed
     * kernels, so their timing is not the model's). */
    double spark[32];
    int ns = 0;
    double tps = 0, step_ms = 0;
    int counted = 0;
    for (int i = ui->ix.n_steps - 1; i >= 0 && ns < 32; i--) {
        const gs_ui_step *s = &ui->ix.steps[i];
        if (s->metrics || s->tokens <= 0)
            continue;
        spark[31 - ns++] = s->tps;
        if (counted < 8) {
            tps += s->tps;
            if (!counted)
                step_ms = (double)s->dur_ns * 1e-6;
            counted++;
        }
    }
    if (counted)
        tps /= counted;
    char mode[160];
    if (ui->live) {
        char rmsg[128] = "";
        const char *rec = ui->info->live->recording(ui->info->live->ctx, rmsg, sizeof rmsg);
        int paused = ui->info->live->paused(ui->info->live->ctx);
        if (rec)
            snprintf(mode, sizeof mode, "%s REC %s | %s", ui->utf8 ? "●" : "*", rec, paused ? "PAUSED" : "LIVE");
        else
            snprintf(mode, sizeof mode, "%s", paused ? "PAUSED" : "LIVE");
    } else {
        const char *base = strrchr(ui->info->source, '/');
        snprintf(mode, sizeof mode, "REPLAY %s", base ? base + 1 : ui->info->source);
    }
    /* Left to right by priority; a segment that does not fit is left out,
     * the mode at the right edge always shows. */
    int end = ui->cols - (int)strlen(mode) - 2;
    int x = 0;
    char seg[256];
    snprintf(seg, sizeof seg, " gptscope | %s ", ui->info->model ? ui->info->model : "?");
    gs_w_text(ui, y, x, end - x, bar | A_BOLD, "%s", seg);
    x += (int)strlen(seg);
    snprintf(seg, sizeof seg, "| %.0f tok/s ", tps);
    if (x + (int)strlen(seg) + 11 <= end) {
        gs_w_text(ui, y, x, end - x, bar, "%s", seg);
        x += (int)strlen(seg);
        if (ns > 1)
            gs_w_sparkline(ui, y, x, ns < 10 ? ns : 10, spark + 32 - ns, ns, 0, bar);
        x += 11;
    }
    int fits = 1;
    snprintf(seg, sizeof seg, "| %.2f ms/token ", step_ms);
    if ((fits = x + (int)strlen(seg) <= end)) {
        gs_w_text(ui, y, x, end - x, bar, "%s", seg);
        x += (int)strlen(seg);
    }
    snprintf(seg, sizeof seg, "| mem %s ", ui->info->memory ? ui->info->memory : "n/a");
    if (fits && (fits = x + (int)strlen(seg) <= end)) {
        gs_w_text(ui, y, x, end - x, bar, "%s", seg);
        x += (int)strlen(seg);
    }
    if (fits && x + 12 <= end)
        gs_w_text(ui, y, x, end - x, bar, "| %s", ui->info->device ? ui->info->device : "?");
    gs_w_text(ui, y, end + 1, ui->cols - end - 1, bar | A_BOLD, "%s", mode);
}

void gs_w_tabs(const gs_ui *ui, int y)
{
    gs_w_clear(ui, y, 0, ui->cols, A_NORMAL);
    int x = 0;
    for (int i = 0; i < GS_N_VIEWS; i++) {
        char t[32];
        snprintf(t, sizeof t, " %d %s ", i + 1, ui->views[i].name);
        int attr = i == ui->view ? gs_w_attr(ui, GS_C_TAB) | A_BOLD : A_NORMAL;
        gs_w_text(ui, y, x, ui->cols - x, attr, "%s", t);
        x += (int)strlen(t);
    }
}

void gs_w_box(const gs_ui *ui, int y, int x, int h, int w, const char *title, int attr)
{
    for (int r = y; r < y + h; r++)
        gs_w_clear(ui, r, x, w, attr);
    gs_w_glyph(ui, y, x, "┌", '+', attr);
    gs_w_glyph(ui, y, x + w - 1, "┐", '+', attr);
    gs_w_glyph(ui, y + h - 1, x, "└", '+', attr);
    gs_w_glyph(ui, y + h - 1, x + w - 1, "┘", '+', attr);
    gs_w_hline(ui, y, x + 1, w - 2, attr);
    gs_w_hline(ui, y + h - 1, x + 1, w - 2, attr);
    for (int r = y + 1; r < y + h - 1; r++) {
        gs_w_glyph(ui, r, x, "│", '|', attr);
        gs_w_glyph(ui, r, x + w - 1, "│", '|', attr);
    }
    if (title)
        gs_w_text(ui, y, x + 2, w - 4, attr | A_BOLD, " %s ", title);
}

void gs_fmt_tokens_not_in(const char *a, const char *b, char *out, int cap)
{
    int n = 0;
    out[0] = 0;
    for (const char *p = b; p && *p && n < cap;) {
        const char *e = strchr(p, ' ');
        int len = e ? (int)(e - p) : (int)strlen(p);
        int found = 0;
        for (const char *q = a; q && *q;) {
            const char *qe = strchr(q, ' ');
            int ql = qe ? (int)(qe - q) : (int)strlen(q);
            found |= ql == len && !strncmp(p, q, (size_t)len);
            q = qe ? qe + 1 : NULL;
        }
        if (!found)
            n += snprintf(out + n, (size_t)(cap - n), "%s%.*s", n ? " " : "", len, p);
        p = e ? e + 1 : NULL;
    }
}
