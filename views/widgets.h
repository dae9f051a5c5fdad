/* widgets.h - drawing pieces every view shares: categories and their
 * colors, clipped text, bars with sub-cell Unicode blocks (ASCII when the
 * terminal cannot), sparklines, the status bar, the tab bar, the help
 * overlay's box, and number formatting with units. */
#ifndef GS_WIDGETS_H
#define GS_WIDGETS_H

#include <stdint.h>

#include "ui.h"

/* What kind of work a range or a kernel is, from its name. */
typedef enum { GS_CAT_MATMUL = 0, GS_CAT_ATTN, GS_CAT_NORM, GS_CAT_ELEM, GS_CAT_COPY, GS_CAT_OTHER,
               GS_N_CAT } gs_category;

gs_category gs_category_of(const char *name);
const char *gs_category_name(gs_category c);
/* The attribute of a color pair; in monochrome a distinct video attribute. */
int gs_w_attr(const gs_ui *ui, int pair);
int gs_w_cat_attr(const gs_ui *ui, gs_category c);

/* Text clipped to w columns (bytes = columns: the text is ASCII). */
void gs_w_text(const gs_ui *ui, int y, int x, int w, int attr, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Blanks w columns. */
void gs_w_clear(const gs_ui *ui, int y, int x, int w, int attr);
void gs_w_hline(const gs_ui *ui, int y, int x, int w, int attr);
/* One cell: a glyph (UTF-8) or its ASCII stand-in. */
void gs_w_glyph(const gs_ui *ui, int y, int x, const char *utf8, char ascii, int attr);
/* A cell filled eighths/8 from the left: ▏▎▍▌▋▊▉█ (ASCII: '|' below half, '#' above). */
void gs_w_eighths(const gs_ui *ui, int y, int x, int eighths, int attr);
/* A horizontal bar of frac (0..1) of w cells, sub-cell resolution. */
void gs_w_bar(const gs_ui *ui, int y, int x, int w, double frac, int attr);
/* A sparkline of the last w of n values (▁▂▃▄▅▆▇█, ASCII ._-=*#); max <= 0: the values' own. */
void gs_w_sparkline(const gs_ui *ui, int y, int x, int w, const double *v, int n, double max, int attr);

void gs_w_status(gs_ui *ui, int y);
void gs_w_tabs(const gs_ui *ui, int y);
/* A framed box with a title; returns the inner area through the pointers. */
void gs_w_box(const gs_ui *ui, int y, int x, int h, int w, const char *title, int attr);

/* "12.3 ms", "850 us", "1.20 s" */
char *gs_fmt_ns(char *buf, int cap, double ns);
/* "1.5 GiB", "12.0 KiB", "512 B" */
char *gs_fmt_bytes(char *buf, int cap, double bytes);
/* The space-separated tokens of b that a lacks, in b's order: what a variant
 * summary ("weights=int8 kv=fp16") changes against another. */
void gs_fmt_tokens_not_in(const char *a, const char *b, char *out, int cap);

#endif
