/* view_help.c - every key, drawn from one table (gs_ui_keys), so the help
 * cannot drift from what the keys are documented to do. ui.c and the views
 * implement the table's rows; a key added there belongs here too. */
#include <curses.h>
#include <string.h>

#include "ui.h"
#include "widgets.h"

typedef struct key_row {
    const char *keys, *what, *where;
} key_row;

static const key_row keys[] = {
    {"F1  ?", "this help (again: back to the view you came from)", "everywhere"},
    {"Tab  Shift-Tab  1-7", "next / previous view, or view by number", "everywhere"},
    {"[  ]   {  }", "time cursor: previous / next step, 10 steps back / on", "everywhere"},
    {"Home  End", "first step / newest step (End follows the live run again)", "everywhere"},
    {"/ text Enter   n", "search names (highlighted), jump to the next match", "timeline, flame, memory"},
    {"Space", "pause / resume the engine", "live"},
    {"r", "start / stop recording to a .gst file (its name is shown)", "live"},
    {"p", "pin the running variant as A of the comparison (again: unpin); later toggles make B", "live"},
    {"e", "export the events in memory to Chrome JSON (Perfetto)", "everywhere"},
    {"q  F10", "quit (the terminal is restored; Ctrl-C too)", "everywhere"},
    {"Left Right  h l", "previous / next item on the selected track", "timeline"},
    {"Up Down  k j", "select track (timeline), frame / row (flame, memory)", "views"},
    {"H L  PgUp PgDn", "pan half a screen", "timeline"},
    {"+  -", "zoom in / out (around the selection)", "timeline, flame"},
    {"Enter", "drill in: zoom to the selected item / frame", "timeline, flame"},
    {"Backspace", "back: whole step (timeline), parent frame (flame)", "timeline, flame"},
    {"Esc", "clear the selection / cancel the search; discard pending toggles", "views"},
    {"Up Down  k j", "move between the settings", "toggles (live)"},
    {"Left Right h l + - Enter", "step the setting's value (pending until applied)", "toggles (live)"},
    {"a", "apply the pending set: built beside the running variant, then swapped in", "toggles (live)"},
    {"Up Down  k j  PgUp PgDn", "scroll the comparison", "compare"},
    {"mouse click", "select what is under the pointer; a tab switches view", "views"},
    {"mouse wheel", "zoom in / out at the pointer", "timeline, flame"},
};

static void draw(gs_ui *ui, int y0, int h)
{
    int y = y0;
    gs_w_text(ui, y++, 1, ui->cols - 2, A_BOLD, "Keys");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && y < y0 + h; i++, y++) {
        gs_w_text(ui, y, 2, 22, A_BOLD, "%s", keys[i].keys);
        gs_w_text(ui, y, 24, ui->cols >= 100 ? ui->cols - 24 - 26 : ui->cols - 25, A_NORMAL, "%s", keys[i].what);
        if (ui->cols >= 100)
            gs_w_text(ui, y, ui->cols - 24, 24, gs_w_attr(ui, GS_C_DIM), "%s", keys[i].where);
    }
    y++;
    if (y < y0 + h)
        gs_w_text(ui, y++, 1, ui->cols - 2, A_BOLD, "Views");
    for (int i = 0; i < GS_N_VIEWS && y < y0 + h; i++, y++)
        gs_w_text(ui, y, 2, ui->cols - 4, A_NORMAL, "%d %-9s %s", i + 1, ui->views[i].name, ui->views[i].help);
    y++;
    if (y < y0 + h)
        gs_w_text(ui, y++, 1, ui->cols - 2, gs_w_attr(ui, GS_C_DIM),
                  "status bar: tok/s (mean of recent timed steps) and its sparkline; ms/token = the last "
                  "step's duration, the time between two tokens of one sequence");
}

void gs_view_help_init(gs_view *v)
{
    memset(v, 0, sizeof *v);
    v->name = "Help";
    v->help = "every key (F1 or ? from anywhere)";
    v->draw = draw;
}
