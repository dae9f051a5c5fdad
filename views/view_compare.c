/* view_compare.c - the place of the A/B comparison. `gptscope compare`
 * measures two configurations in one run from the command line; until the
 * UI can pin A and build B from toggles, this view says how to use it and
 * shows no numbers. */
#include <curses.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

static void draw(gs_ui *ui, int y0, int h)
{
    static const char *const lines[] = {
        "Compare: two configurations side by side (in this view: not yet)",
        "",
        "From the command line, two configurations run in one process on the same",
        "device, alternating steps over the same requests, each figure with its",
        "median and 95% interval and a verdict only outside the noise:",
        "  gptscope compare A.yaml B.yaml --steps 100 [--report OUT.md|OUT.csv] [-o OUT.json]",
        "  gptscope compare a.gst b.gst          (two recordings)",
        "  e.g. gptscope compare examples/compare-naive.yaml examples/compare-fused.yaml",
        "",
        "Here, later: pin the running configuration as A, flip toggles to make B,",
        "and see the summary, per-op deltas and a differential flame graph.",
        "",
        "No numbers are shown here until they are measured.",
    };
    int y = y0 + 1;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0] && y < y0 + h; i++, y++)
        gs_w_text(ui, y, 2, ui->cols - 4, i == 0 ? A_BOLD : A_NORMAL, "%s", lines[i]);
}

void gs_view_compare_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Compare";
    v->help = "two configurations side by side (gptscope compare; in the UI later)";
    v->draw = draw;
}
