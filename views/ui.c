/* ui.c - the terminal's owner and the key loop.
 *
 * Only this file calls initscr/endwin. The terminal comes back on every way
 * out: quit (q, F10), SIGINT/SIGTERM (a flag the loop sees within one
 * refresh), exit() (atexit), and fatal signals (the handler restores the
 * saved termios and leaves the alternate screen with write(2), which is
 * safe in a signal handler, then dies of the same signal).
 *
 * Each turn of the loop reads the events appended since the last turn into
 * a small per-step index (tokens/s, KV counters, metrics steps), draws the
 * current view, and waits at most 100 ms for a key, so live data refreshes
 * ten times a second and the engine thread is never waited on. */
#include "ui.h"

#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "compare_live.h"
#include "toggles.h"
#include "widgets.h"
#include "../traces/export.h"

_Static_assert(GS_UI_VSTATS == GS_VS_COUNT, "gs_ui_variant holds every variant figure");

#define REFRESH_MS 100

/* ---- terminal restore, also from signal handlers ---- */

static struct termios saved_tio;
static int tio_saved;
static volatile sig_atomic_t ui_active;
static volatile sig_atomic_t stop_signal;
static int atexit_done;

static void restore_raw(void)
{
    /* Async-signal-safe: no curses, no stdio. Mouse reporting off, colors
     * reset, cursor shown, alternate screen left. */
    static const char seq[] = "\033[?1006l\033[?1002l\033[?1000l\033[0m\033[?25h\033[?1049l\r\n";
    if (tio_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
    ssize_t w = write(STDOUT_FILENO, seq, sizeof seq - 1);
    (void)w;
}

static void on_fatal(int sig)
{
    if (ui_active)
        restore_raw();
    ui_active = 0;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_stop(int sig) { stop_signal = sig; }

static void at_exit_restore(void)
{
    if (ui_active) {
        ui_active = 0;
        endwin();
    }
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void gs_ui_message(gs_ui *ui, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ui->msg, sizeof ui->msg, fmt, ap);
    va_end(ap);
    ui->msg_until_ns = mono_ns() + 6000000000ull;
}

/* ---- the per-step index ---- */

enum { K_UNCHECKED = 0, K_NONE, K_TPS, K_TOKENS, K_KV_USED, K_KV_FREE, K_FRAG, K_DRAM, K_METRICS_STEP,
       K_V_TOGGLE, K_V_RUNNING, K_V_HISTORY, K_CMP_PIN, K_CMP, K_VSTAT0 /* + GS_VS_* */ };

static int name_kind(gs_ui *ui, uint32_t id)
{
    if (id >= ui->ix.n_kind) {
        uint32_t n = ui->ix.n_kind ? ui->ix.n_kind : 256;
        while (n <= id)
            n *= 2;
        uint8_t *p = realloc(ui->ix.counter_kind, n);
        if (!p)
            return K_NONE;
        memset(p + ui->ix.n_kind, 0, n - ui->ix.n_kind);
        ui->ix.counter_kind = p;
        ui->ix.n_kind = n;
    }
    if (ui->ix.counter_kind[id] == K_UNCHECKED) {
        const char *s = gs_store_string(ui->store, id);
        int k = K_NONE;
        if (!strcmp(s, "tokens/s")) k = K_TPS;
        else if (!strcmp(s, "step.tokens")) k = K_TOKENS;
        else if (!strcmp(s, "kv.blocks_used")) k = K_KV_USED;
        else if (!strcmp(s, "kv.blocks_free")) k = K_KV_FREE;
        else if (!strcmp(s, "kv.fragmentation")) k = K_FRAG;
        else if (!strncmp(s, "dram__bytes_", 12)) k = K_DRAM;
        else if (!strcmp(s, "metrics step")) k = K_METRICS_STEP;
        else if (!strncmp(s, GS_VARIANT_TOGGLE, strlen(GS_VARIANT_TOGGLE))) k = K_V_TOGGLE;
        else if (!strncmp(s, GS_VARIANT_RUNNING, strlen(GS_VARIANT_RUNNING))) k = K_V_RUNNING;
        else if (!strncmp(s, GS_VARIANT_HISTORY, strlen(GS_VARIANT_HISTORY))) k = K_V_HISTORY;
        else if (gs_vstat_find(s) >= 0) k = K_VSTAT0 + gs_vstat_find(s);
        else if (!strcmp(s, GS_CMP_PIN)) k = K_CMP_PIN;
        else if (gs_cmp_parse_name(s, NULL) >= 0) k = K_CMP;
        ui->ix.counter_kind[id] = (uint8_t)k;
    }
    return ui->ix.counter_kind[id];
}

int gs_ui_step_pos(const gs_ui *ui, int64_t s)
{
    int lo = 0, hi = ui->ix.n_steps - 1;
    if (hi < 0)
        return -1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ui->ix.steps[mid].step < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const gs_ui_step *gs_ui_step_at(const gs_ui *ui, int64_t s)
{
    int p = gs_ui_step_pos(ui, s);
    return p >= 0 && ui->ix.steps[p].step == s ? &ui->ix.steps[p] : NULL;
}

static gs_ui_step *step_entry(gs_ui *ui, int64_t s, int create)
{
    gs_ui_index *ix = &ui->ix;
    if (ix->n_steps && ix->steps[ix->n_steps - 1].step == s)
        return &ix->steps[ix->n_steps - 1];
    if (!create && (!ix->n_steps || s > ix->steps[ix->n_steps - 1].step))
        return NULL; /* a step still running: its entry comes with its step range */
    /* Late device records come in runs of one older step: remember where it was. */
    if (ix->hint < ix->n_steps && ix->steps[ix->hint].step == s)
        return &ix->steps[ix->hint];
    int p = gs_ui_step_pos(ui, s);
    if (p >= 0 && ix->steps[p].step == s) {
        ix->hint = p;
        return &ix->steps[p];
    }
    if (!create || (ix->n_steps && s < ix->steps[ix->n_steps - 1].step))
        return NULL; /* only ever appended in order */
    if (ix->n_steps == ix->cap_steps) {
        int cap = ix->cap_steps ? ix->cap_steps * 2 : 1024;
        gs_ui_step *n = realloc(ix->steps, (size_t)cap * sizeof *n);
        if (!n)
            return NULL;
        ix->steps = n;
        ix->cap_steps = cap;
    }
    gs_ui_step *e = &ix->steps[ix->n_steps++];
    memset(e, 0, sizeof *e);
    e->step = s;
    /* made while reading the step's events: the current one is its last so far */
    e->ev_first = ix->pend_step == s ? ix->pend_first : ui->ix.scanning;
    e->ev_last = ui->ix.scanning;
    return e;
}

/* ---- variants (toggles) ---- */

const gs_ui_variant *gs_ui_variant_by_id(const gs_ui *ui, int id)
{
    for (int i = 0; i < ui->ix.n_variants; i++)
        if (ui->ix.variants[i].id == id)
            return &ui->ix.variants[i];
    return NULL;
}

static gs_ui_variant *variant_entry(gs_ui *ui, int id)
{
    gs_ui_index *ix = &ui->ix;
    for (int i = 0; i < ix->n_variants; i++)
        if (ix->variants[i].id == id)
            return &ix->variants[i];
    if (id <= 0 || ix->n_variants == GS_UI_MAX_VARIANTS)
        return NULL;
    gs_ui_variant *v = &ix->variants[ix->n_variants++];
    memset(v, 0, sizeof *v);
    v->id = id;
    v->start_step = -1;
    return v;
}

static void index_variant_marker(gs_ui *ui, const gs_event *ev, int kind)
{
    gs_ui_variant *v = variant_entry(ui, (int)ev->value);
    if (!v)
        return;
    v->summary = ev->name; /* "toggle weights=..." : the view skips the first word */
    v->named = 1;
    v->toggled |= kind == K_V_TOGGLE || v->id > 1; /* every variant after the first came from a switch */
    if (kind == K_V_HISTORY)
        return;
    if (v->start_step < 0)
        v->start_step = ev->step + 1;
    ui->ix.cur_variant = (int)(v - ui->ix.variants);
}

/* A cmp.* counter: one statistic of one node of one variant. The engine
 * writes each node's statistics together and the nodes in the same order
 * every time, so the row after the last one is nearly always the next. */
static void index_cmp(gs_ui *ui, const gs_event *ev)
{
    gs_ui_index *ix = &ui->ix;
    if (ev->level >= GS_CMP_NSTAT)
        return;
    int found = -1;
    for (int k = 0; k < 2 && found < 0; k++) {
        int i = ix->cmp_hint + k;
        if (i < ix->n_cmp && ix->cmp[i].variant == (int)ev->aux && ix->cmp[i].name == ev->name &&
            ix->cmp[i].layer == ev->layer)
            found = i;
    }
    for (int i = 0; i < ix->n_cmp && found < 0; i++)
        if (ix->cmp[i].variant == (int)ev->aux && ix->cmp[i].name == ev->name && ix->cmp[i].layer == ev->layer)
            found = i;
    if (found < 0) {
        if (ix->n_cmp == ix->cap_cmp) {
            int cap = ix->cap_cmp ? ix->cap_cmp * 2 : 256;
            if (cap > 1 << 16)
                return;
            gs_ui_cmp_row *n = realloc(ix->cmp, (size_t)cap * sizeof *n);
            if (!n)
                return;
            ix->cmp = n;
            ix->cap_cmp = cap;
        }
        gs_ui_cmp_row *r = &ix->cmp[ix->n_cmp];
        memset(r, 0, sizeof *r);
        r->variant = (int)ev->aux;
        r->kind = (uint8_t)gs_cmp_parse_name(gs_store_string(ui->store, ev->name), NULL);
        r->layer = ev->layer;
        r->name = ev->name;
        found = ix->n_cmp++;
    }
    ix->cmp_hint = found;
    ix->cmp[found].stat[ev->level] = ev->value;
    ix->cmp[found].have |= 1u << ev->level;
}

/* The variant that ran step s: the latest to start at or before it. */
static gs_ui_variant *variant_of_step(gs_ui *ui, int64_t s)
{
    gs_ui_variant *best = NULL;
    for (int i = 0; i < ui->ix.n_variants; i++) {
        gs_ui_variant *v = &ui->ix.variants[i];
        if (v->start_step >= 0 && v->start_step <= s && (!best || v->start_step >= best->start_step))
            best = v;
    }
    return best;
}

static int index_event(void *ctx, uint64_t index, const gs_event *ev)
{
    gs_ui *ui = ctx;
    gs_ui_index *ix = &ui->ix;
    uint64_t end = ev->t_ns + ev->dur_ns;
    ix->scanning = index;
    if (ev->step >= 0) {
        if (ev->step > ix->pend_step) {
            ix->pend_step = ev->step;
            ix->pend_first = index;
        }
        gs_ui_step *e = step_entry(ui, ev->step, 0);
        if (e)
            e->ev_last = index;
    }
    if (ev->t_ns && (!ix->t_first || ev->t_ns < ix->t_first))
        ix->t_first = ev->t_ns;
    if (end > ix->t_last)
        ix->t_last = end;
    gs_ui_step *st;
    switch (ev->kind) {
    case GS_EV_RANGE:
        ix->n_ranges++;
        if (ev->level == GS_RANGE_STEP && ev->step >= 0 && (st = step_entry(ui, ev->step, 1))) {
            st->t_ns = ev->t_ns;
            st->dur_ns = ev->dur_ns;
        }
        break;
    case GS_EV_COUNTER: {
        int nk = name_kind(ui, ev->name);
        if (nk >= K_VSTAT0 && nk < K_VSTAT0 + GS_VS_COUNT) {
            gs_ui_variant *v = variant_entry(ui, (int)ev->aux);
            if (v) {
                v->v[nk - K_VSTAT0] = ev->value;
                v->have |= 1u << (nk - K_VSTAT0);
                if (nk - K_VSTAT0 == GS_VS_FIRST_STEP)
                    v->start_step = (int64_t)ev->value;
            }
            break;
        }
        if (nk == K_CMP_PIN) {
            ix->pinned = (int)ev->value;
            break;
        }
        if (nk == K_CMP) {
            index_cmp(ui, ev);
            break;
        }
        if (ev->step >= 0 && (st = step_entry(ui, ev->step, 0))) {
            switch (nk) {
            case K_TPS: st->tps = ev->value; break;
            case K_TOKENS: st->tokens = ev->value; break;
            case K_KV_USED: st->kv_used = ev->value; break;
            case K_KV_FREE: st->kv_free = ev->value; break;
            case K_FRAG: st->frag = ev->value; break;
            default: break;
            }
        }
        break;
    }
    case GS_EV_MARKER: {
        int mk = name_kind(ui, ev->name);
        if (mk == K_METRICS_STEP && ev->step >= 0 && (st = step_entry(ui, ev->step, 1)))
            st->metrics = 1;
        else if (mk == K_V_TOGGLE || mk == K_V_RUNNING || mk == K_V_HISTORY)
            index_variant_marker(ui, ev, mk);
        break;
    }
    case GS_EV_KERNEL:
    case GS_EV_MEMCPY:
    case GS_EV_MEMSET: {
        if (ev->kind == GS_EV_KERNEL) {
            ix->n_kernels++;
            if (ev->step > ix->last_device_step)
                ix->last_device_step = ev->step;
        } else
            ix->n_copies++;
        int seen = 0;
        for (int i = 0; i < ix->n_streams; i++)
            seen |= ix->streams[i] == ev->track;
        if (!seen && ix->n_streams < 16 && ev->track >= GS_TRACK_STREAM0) {
            int i = ix->n_streams++;
            while (i > 0 && ix->streams[i - 1] > ev->track) {
                ix->streams[i] = ix->streams[i - 1];
                i--;
            }
            ix->streams[i] = ev->track;
        }
        if (ev->kind != GS_EV_KERNEL && ev->step >= 0 && (st = step_entry(ui, ev->step, 0))) {
            int k = ev->kind == GS_EV_MEMSET ? GS_COPY_KIND_MAX + 1 : ev->level <= GS_COPY_KIND_MAX ? ev->level : 0;
            st->copy_bytes += ev->value;
            st->copy_ns += ev->dur_ns;
            st->copy_kind_bytes[k] += ev->value;
            st->copy_kind_ns[k] += ev->dur_ns;
            st->copies++;
        }
        break;
    }
    case GS_EV_METRIC:
        ix->n_metrics++;
        if (ev->step >= 0 && (st = step_entry(ui, ev->step, 0))) {
            st->metric_events++;
            if (name_kind(ui, ev->name) == K_DRAM) {
                gs_ui_variant *v = variant_of_step(ui, ev->step);
                if (v) {
                    if (st->dram_bytes == 0)
                        v->dram_tokens += st->tokens; /* the step's first DRAM figure */
                    v->dram_bytes += ev->value;
                }
                st->dram_bytes += ev->value;
            }
        }
        break;
    case GS_EV_KV_BLOCKS:
        ix->n_kv++;
        break;
    default:
        break;
    }
    return 0;
}

static void index_update(gs_ui *ui)
{
    uint64_t count = gs_store_count(ui->store);
    uint64_t first = gs_store_first(ui->store);
    if (ui->ix.scanned < first)
        ui->ix.scanned = first;
    if (ui->ix.scanned < count)
        gs_store_visit(ui->store, ui->ix.scanned, count, index_event, ui);
    ui->ix.scanned = count;
    /* Live mode: forget steps the store no longer keeps (beyond the sparkline's history). */
    gs_ui_index *ix = &ui->ix;
    if (ui->live && ix->n_steps > 4 * GS_UI_HIST) {
        int drop = ix->n_steps - 2 * GS_UI_HIST;
        memmove(ix->steps, ix->steps + drop, (size_t)(ix->n_steps - drop) * sizeof *ix->steps);
        ix->n_steps -= drop;
    }
}

/* ---- actions ---- */

static void export_window(gs_ui *ui)
{
    char path[96];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(path, sizeof path, "gptscope-%Y%m%d-%H%M%S.json", &tm);
    char pname[300];
    snprintf(pname, sizeof pname, "gptscope: %s on %s", ui->info->model ? ui->info->model : "?",
             ui->info->device ? ui->info->device : "?");
    gs_export_info info = {pname, ui->info->device ? ui->info->device : "", 0};
    gs_error err = {0};
    if (gs_export_chrome(ui->store, &info, path, &err))
        gs_ui_message(ui, "export failed: %s", err.msg);
    else
        gs_ui_message(ui, "exported %s (Chrome trace JSON: open it in Perfetto)", path);
}

static void toggle_record(gs_ui *ui)
{
    const gs_ui_live *l = ui->info->live;
    char msg[128] = "";
    const char *rec = l->recording(l->ctx, msg, sizeof msg);
    if (rec) {
        gs_ui_message(ui, "recording to %s stops after this step", rec);
        l->record(l->ctx, NULL);
        return;
    }
    static char path[96];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(path, sizeof path, "gptscope-%Y%m%d-%H%M%S.gst", &tm);
    l->record(l->ctx, path);
    gs_ui_message(ui, "recording to %s (r stops)", path);
}

static void move_cursor(gs_ui *ui, int by)
{
    if (!ui->ix.n_steps)
        return;
    int p = gs_ui_step_pos(ui, ui->cursor_step);
    p += by;
    if (p < 0)
        p = 0;
    if (p >= ui->ix.n_steps)
        p = ui->ix.n_steps - 1;
    ui->cursor_step = ui->ix.steps[p].step;
    ui->follow = ui->live && p == ui->ix.n_steps - 1;
}

static void switch_view(gs_ui *ui, int v)
{
    if (v == ui->view)
        return;
    ui->prev_view = ui->view;
    ui->view = v;
}

static void handle_search_key(gs_ui *ui, int ch)
{
    size_t n = strlen(ui->search);
    if (ch == '\n' || ch == KEY_ENTER || ch == '\r') {
        ui->searching = 0;
        if (ui->views[ui->view].search)
            ui->views[ui->view].search(ui, 0);
    } else if (ch == 27) {
        ui->searching = 0;
        ui->search[0] = 0;
    } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
        if (n)
            ui->search[n - 1] = 0;
    } else if (ch >= 32 && ch < 127 && n + 1 < sizeof ui->search) {
        ui->search[n] = (char)ch;
        ui->search[n + 1] = 0;
    }
}

static void handle_key(gs_ui *ui, int ch)
{
    if (ui->searching) {
        handle_search_key(ui, ch);
        return;
    }
    gs_view *v = &ui->views[ui->view];
    switch (ch) {
    case 'q': case 'Q': case KEY_F(10):
        ui->quit = 1;
        return;
    case KEY_F(1): case '?':
        switch_view(ui, ui->view == GS_VIEW_HELP ? ui->prev_view : GS_VIEW_HELP);
        return;
    case '\t':
        switch_view(ui, (ui->view + 1) % GS_N_VIEWS);
        return;
    case KEY_BTAB:
        switch_view(ui, (ui->view + GS_N_VIEWS - 1) % GS_N_VIEWS);
        return;
    case '1': case '2': case '3': case '4': case '5': case '6': case '7':
        switch_view(ui, ch - '1');
        return;
    case '/':
        ui->searching = 1;
        ui->search[0] = 0;
        return;
    case 'n':
        if (ui->search[0] && v->search)
            v->search(ui, 1);
        else if (!ui->search[0])
            gs_ui_message(ui, "no search yet: press / and type a name");
        return;
    case ' ':
        if (ui->live) {
            const gs_ui_live *l = ui->info->live;
            int p = !l->paused(l->ctx);
            l->set_paused(l->ctx, p);
            gs_ui_message(ui, p ? "engine paused (Space resumes)" : "engine running");
        } else {
            gs_ui_message(ui, "replay: nothing to pause ([ and ] move the time cursor)");
        }
        return;
    case 'r':
        if (ui->live)
            toggle_record(ui);
        else
            gs_ui_message(ui, "replay: this is a recording already (r records in live mode)");
        return;
    case 'e':
        export_window(ui);
        return;
    case 'p':
        if (ui->live && ui->info->live->pin) {
            const gs_ui_variant *cur = ui->ix.cur_variant >= 0 ? &ui->ix.variants[ui->ix.cur_variant] : NULL;
            ui->info->live->pin(ui->info->live->ctx);
            if (ui->ix.pinned)
                gs_ui_message(ui, "unpinned A (#%d): p pins the running variant again", ui->ix.pinned);
            else
                gs_ui_message(ui, "pinned variant #%d as A: switch toggles (5) and apply; the next variant is B (6 compares)",
                              cur ? cur->id : 1);
        } else {
            gs_ui_message(ui, "replay: the pin is the recording's (p pins in live mode)");
        }
        return;
    case '[':
        move_cursor(ui, -1);
        return;
    case ']':
        move_cursor(ui, 1);
        return;
    case '{':
        move_cursor(ui, -10);
        return;
    case '}':
        move_cursor(ui, 10);
        return;
    case KEY_HOME:
        move_cursor(ui, -(1 << 30));
        return;
    case KEY_END:
        move_cursor(ui, 1 << 30);
        ui->follow = ui->live;
        return;
    case KEY_MOUSE: {
        MEVENT me;
        if (getmouse(&me) != OK || !v->mouse)
            return;
        if (me.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED)) {
            if (me.y == 1) { /* the tab bar */
                int x = 0;
                for (int i = 0; i < GS_N_VIEWS; i++) {
                    int w = (int)strlen(ui->views[i].name) + 4;
                    if (me.x >= x && me.x < x + w)
                        switch_view(ui, i);
                    x += w;
                }
                return;
            }
            v->mouse(ui, me.x, me.y, 0);
        } else if (me.bstate & BUTTON4_PRESSED) {
            v->mouse(ui, me.x, me.y, -1);
#ifdef BUTTON5_PRESSED
        } else if (me.bstate & BUTTON5_PRESSED) {
            v->mouse(ui, me.x, me.y, 1);
#endif
        }
        return;
    }
    default:
        break;
    }
    if (v->key && v->key(ui, ch))
        return;
}

/* ---- drawing ---- */

static void draw_too_small(gs_ui *ui)
{
    erase();
    int a = gs_w_attr(ui, GS_C_WARN) | A_BOLD;
    char l1[80], l2[80];
    snprintf(l1, sizeof l1, "terminal too small: %dx%d", ui->cols, ui->rows);
    snprintf(l2, sizeof l2, "gptscope needs %dx%d", GS_UI_MIN_COLS, GS_UI_MIN_ROWS);
    int y = ui->rows / 2 - 1;
    gs_w_text(ui, y < 0 ? 0 : y, 0, ui->cols, a, "%s", l1);
    gs_w_text(ui, y + 1 < ui->rows ? y + 1 : 0, 0, ui->cols, A_NORMAL, "%s", l2);
    if (y + 2 < ui->rows)
        gs_w_text(ui, y + 2, 0, ui->cols, A_DIM, "(q quits)");
}

static void draw(gs_ui *ui)
{
    if (ui->cols < GS_UI_MIN_COLS || ui->rows < GS_UI_MIN_ROWS) {
        draw_too_small(ui);
        return;
    }
    erase();
    gs_w_status(ui, 0);
    gs_w_tabs(ui, 1);
    gs_view *v = &ui->views[ui->view];
    v->draw(ui, 2, ui->rows - 3);
    int y = ui->rows - 1;
    const char *fail = ui->live ? ui->info->live->failure(ui->info->live->ctx) : NULL;
    if (ui->searching) {
        gs_w_text(ui, y, 0, ui->cols, A_BOLD, "/%s", ui->search);
        curs_set(1);
        move(y, 1 + (int)strlen(ui->search));
        return;
    }
    curs_set(0);
    if (fail)
        gs_w_text(ui, y, 0, ui->cols, gs_w_attr(ui, GS_C_WARN) | A_BOLD, "engine stopped: %s", fail);
    else if (ui->msg[0] && mono_ns() < ui->msg_until_ns)
        gs_w_text(ui, y, 0, ui->cols, A_BOLD, "%s", ui->msg);
    else
        gs_w_text(ui, y, 0, ui->cols, gs_w_attr(ui, GS_C_DIM),
                  "F1/? help  Tab/1-7 views  [ ] step  / search  +/- zoom  e export%s  q quit",
                  ui->live ? "  Space pause  r record  p pin A" : "");
}

static void init_colors(gs_ui *ui)
{
    const char *nc = getenv("NO_COLOR");
    ui->color = has_colors() && !(nc && nc[0]);
    if (!ui->color)
        return;
    start_color();
    use_default_colors();
    int bg = -1;
    init_pair(GS_C_MATMUL, COLOR_BLUE, bg);
    init_pair(GS_C_ATTN, COLOR_MAGENTA, bg);
    init_pair(GS_C_NORM, COLOR_YELLOW, bg);
    init_pair(GS_C_ELEM, COLOR_GREEN, bg);
    init_pair(GS_C_COPY, COLOR_CYAN, bg);
    init_pair(GS_C_OTHER, COLOR_WHITE, bg);
    init_pair(GS_C_BAR, COLOR_BLACK, COLOR_CYAN);
    init_pair(GS_C_TAB, COLOR_BLACK, COLOR_GREEN);
    init_pair(GS_C_DIM, COLOR_WHITE, bg);
    init_pair(GS_C_MATCH, COLOR_BLACK, COLOR_YELLOW);
    init_pair(GS_C_WARN, COLOR_RED, bg);
    static const short seq[GS_N_SEQ_COLORS] = {COLOR_BLUE, COLOR_GREEN, COLOR_MAGENTA, COLOR_YELLOW, COLOR_CYAN,
                                               COLOR_RED};
    for (int i = 0; i < GS_N_SEQ_COLORS; i++)
        init_pair((short)(GS_C_SEQ0 + i), seq[i], bg);
}

static gs_ui *ui_new(gs_event_store *store, const gs_ui_info *info)
{
    gs_ui *ui = calloc(1, sizeof *ui);
    if (!ui)
        return NULL;
    ui->store = store;
    ui->info = info;
    ui->live = info->live != NULL;
    ui->follow = ui->live;
    ui->cursor_step = -1;
    ui->ix.pend_step = -1;
    ui->ix.cur_variant = -1;
    gs_view_timeline_init(&ui->views[GS_VIEW_TIMELINE]);
    gs_view_flame_init(&ui->views[GS_VIEW_FLAME]);
    gs_view_memory_init(&ui->views[GS_VIEW_MEMORY]);
    gs_view_kv_init(&ui->views[GS_VIEW_KV]);
    gs_view_toggles_init(&ui->views[GS_VIEW_TOGGLES]);
    gs_view_compare_init(&ui->views[GS_VIEW_COMPARE]);
    gs_view_help_init(&ui->views[GS_VIEW_HELP]);
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    ui->utf8 = !info->ascii && cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
    return ui;
}

static void ui_free(gs_ui *ui)
{
    for (int i = 0; i < GS_N_VIEWS; i++)
        gs_view_free(&ui->views[i]);
    free(ui->ix.steps);
    free(ui->ix.counter_kind);
    free(ui->ix.cmp);
    free(ui);
}

/* The part of a turn before drawing: new events into the index, the cursor. */
static void ui_prepare(gs_ui *ui)
{
    getmaxyx(stdscr, ui->rows, ui->cols);
    index_update(ui);
    if (!ui->ix.n_steps)
        return;
    int64_t last = ui->ix.steps[ui->ix.n_steps - 1].step;
    if (ui->cursor_step < 0)
        ui->cursor_step = ui->live ? last : ui->ix.steps[0].step;
    /* Device records arrive tens of milliseconds after their step (CUPTI
     * delivers buffers periodically): follow the newest step whose kernels
     * are in, so the stream tracks are never empty. */
    if (ui->follow)
        ui->cursor_step = ui->ix.n_kernels && ui->ix.last_device_step >= ui->ix.steps[0].step
                              ? ui->ix.last_device_step
                              : last;
    if (ui->cursor_step < ui->ix.steps[0].step)
        ui->cursor_step = ui->ix.steps[0].step; /* live: dropped from the window */
}

int gs_ui_run(gs_event_store *store, const gs_ui_info *info, gs_error *err)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return gs_error_set(err, GS_ERR_INPUT, "the terminal UI needs a terminal (stdin and stdout)");
    gs_ui *ui = ui_new(store, info);
    if (!ui)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");

    if (tcgetattr(STDIN_FILENO, &saved_tio) == 0)
        tio_saved = 1;
    /* Our handlers before initscr, so curses keeps them. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], on_fatal);
    if (!atexit_done && atexit(at_exit_restore) == 0)
        atexit_done = 1;
    stop_signal = 0;

    if (!initscr()) {
        ui_free(ui);
        return gs_error_set(err, GS_ERR_RUNTIME, "cannot start the terminal (is TERM set?)");
    }
    ui_active = 1;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(REFRESH_MS);
    init_colors(ui);
    mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON4_PRESSED
#ifdef BUTTON5_PRESSED
                  | BUTTON5_PRESSED
#endif
              , NULL);
    mouseinterval(0);

    while (!ui->quit && !stop_signal) {
        ui_prepare(ui);
        uint64_t t0 = mono_ns();
        draw(ui);
        refresh();
        ui->frame_ns = mono_ns() - t0;
        int ch = getch();
        if (ch == ERR || ch == KEY_RESIZE)
            continue;
        handle_key(ui, ch);
        /* Drain a burst of keys (held arrows) before drawing again. */
        timeout(0);
        while (!ui->quit && (ch = getch()) != ERR)
            if (ch != KEY_RESIZE)
                handle_key(ui, ch);
        timeout(REFRESH_MS);
    }
    ui_active = 0;
    endwin();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], SIG_DFL);
    ui_free(ui);
    return GS_OK; /* SIGINT/SIGTERM are a way to quit, not an error */
}

/* ---- offscreen frames (tests/bench/ui_bench) ----
 * The same index, views and curses output as gs_ui_run, on a screen made
 * with newterm on a FILE (no terminal, no signal handling, no key wait), so
 * a benchmark times exactly the code a person's frame runs. */

static SCREEN *offscreen;
static FILE *offscreen_in;

gs_ui *gs_ui_offscreen_open(gs_event_store *store, const gs_ui_info *info, FILE *out, int rows, int cols,
                            gs_error *err)
{
    if (offscreen) {
        gs_error_set(err, GS_ERR_RUNTIME, "one offscreen UI at a time");
        return NULL;
    }
    gs_ui *ui = ui_new(store, info);
    if (!ui) {
        gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
        return NULL;
    }
    const char *term = getenv("TERM");
    offscreen_in = fopen("/dev/null", "r");
    offscreen = offscreen_in ? newterm(term && *term ? term : "xterm-256color", out, offscreen_in) : NULL;
    if (!offscreen) {
        if (offscreen_in)
            fclose(offscreen_in);
        offscreen_in = NULL;
        ui_free(ui);
        gs_error_set(err, GS_ERR_RUNTIME, "newterm failed (is TERM a known terminal?)");
        return NULL;
    }
    set_term(offscreen);
    resize_term(rows, cols);
    nonl();
    curs_set(0);
    init_colors(ui);
    return ui;
}

void gs_ui_offscreen_key(gs_ui *ui, int ch) { handle_key(ui, ch); }

void gs_ui_offscreen_view(gs_ui *ui, int view)
{
    if (view >= 0 && view < GS_N_VIEWS)
        switch_view(ui, view);
}

void gs_ui_offscreen_frame(gs_ui *ui, int repaint, gs_ui_frame_ns *t)
{
    uint64_t t0 = mono_ns();
    ui_prepare(ui);
    uint64_t t1 = mono_ns();
    draw(ui);
    wnoutrefresh(stdscr);
    uint64_t t2 = mono_ns();
    if (repaint)
        clearok(curscr, TRUE); /* every cell goes out, as after a step change */
    doupdate();
    uint64_t t3 = mono_ns();
    ui->frame_ns = t3 - t1;
    if (t) {
        t->index = t1 - t0;
        t->draw = t2 - t1;
        t->output = t3 - t2;
    }
}

void gs_ui_offscreen_close(gs_ui *ui)
{
    if (!ui)
        return;
    endwin();
    delscreen(offscreen);
    offscreen = NULL;
    fclose(offscreen_in);
    offscreen_in = NULL;
    ui_free(ui);
}

void gs_view_free(gs_view *v)
{
    if (v->release && v->state)
        v->release(v);
    free(v->state);
    v->state = NULL;
}
