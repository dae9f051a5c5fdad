/* view_toggles.c - the optimization settings of the run shown.
 *
 * It reads the `optimizations:` section of the configuration YAML (the
 * trace header's, or the live run's) and lists each setting. Switching a
 * setting from here, and the cost table that goes with it, arrive with the
 * toggles feature; no cost is shown before it is measured. */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

static void draw(gs_ui *ui, int y0, int h)
{
    int y = y0 + 1;
    gs_w_text(ui, y++, 2, ui->cols - 4, A_BOLD, "Optimizations of this %s", ui->live ? "run" : "recording");
    y++;
    const char *yaml = ui->info->config_yaml;
    if (!yaml || !*yaml) {
        gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL, "(this trace carries no configuration)");
    } else {
        /* The optimizations block: its line and the indented lines under it. */
        const char *p = strstr(yaml, "\noptimizations:");
        p = p ? p + 1 : (strncmp(yaml, "optimizations:", 14) == 0 ? yaml : NULL);
        if (!p) {
            gs_w_text(ui, y++, 2, ui->cols - 4, A_NORMAL, "(no optimizations section in the configuration)");
        } else {
            p = strchr(p, '\n');
            while (p && p[1] == ' ' && y < y0 + h - 6) {
                const char *e = strchr(p + 1, '\n');
                int len = e ? (int)(e - p - 1) : (int)strlen(p + 1);
                char line[256];
                snprintf(line, sizeof line, "%.*s", len, p + 1);
                char *colon = strchr(line, ':');
                if (colon) {
                    *colon = 0;
                    const char *k = line;
                    while (*k == ' ')
                        k++;
                    const char *val = colon + 1;
                    while (*val == ' ')
                        val++;
                    gs_w_text(ui, y, 4, 22, A_NORMAL, "%s", k);
                    gs_w_text(ui, y, 26, ui->cols - 28, A_BOLD, "%s", val);
                    y++;
                }
                p = e;
            }
        }
    }
    y++;
    gs_w_text(ui, y++, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM),
              "Switching these from here, with a measured cost table (speed, memory,");
    gs_w_text(ui, y++, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM),
              "quality of each choice), arrives with the toggles feature. Today: set");
    gs_w_text(ui, y++, 2, ui->cols - 4, gs_w_attr(ui, GS_C_DIM),
              "them in a YAML file (examples/*.yaml) and run gptscope -c FILE.yaml.");
}

void gs_view_toggles_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Toggles";
    v->help = "the run's optimization settings (switching arrives with the toggles feature)";
    v->draw = draw;
}
