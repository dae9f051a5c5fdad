/* view_compare.c - the place of the A/B comparison. The compare feature
 * (its own issue) measures two configurations in the same run; until it
 * lands this view says how it will work and shows no numbers. */
#include <curses.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

static void draw(gs_ui *ui, int y0, int h)
{
    static const char *const lines[] = {
        "Compare: two configurations side by side (not available yet)",
        "",
        "The compare feature will run configuration A and configuration B in the same",
        "process on the same device, alternating steps so both see the same clocks and",
        "temperature, and show here, column by column:",
        "  - decode tokens/s, ms/token and prefill time, with their spread",
        "  - memory: weights, KV cache, peak",
        "  - output quality against the fp32 baseline (KL divergence, top-1 agreement)",
        "  - the per-op time table of A and B and the difference",
        "",
        "Today `gptscope compare --help` shows its options. Until then, record one",
        "trace per configuration (gptscope record -c A.yaml -o a.gst, then B) and",
        "open each with gptscope replay.",
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
    v->help = "two configurations side by side (arrives with the compare feature)";
    v->draw = draw;
}
