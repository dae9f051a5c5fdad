/* ui.h - the terminal user interface: one context, a table of views.
 *
 * The UI reads only the event store (plus a few static strings: model name,
 * device, the configuration YAML). Live and replay differ in one pointer:
 * a live run hands in gs_ui_live (pause, record) and the UI follows the
 * newest step; a replay has none and starts at the first step with a time
 * cursor to scrub. ui.c owns the terminal (nothing else calls initscr or
 * endwin) and restores it on every way out: quit, SIGINT, SIGTERM, fatal
 * signals and exit(). */
#ifndef GS_UI_H
#define GS_UI_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "event_store.h"
#include "status.h"

/* Where a live run's variant build stands (toggles view). */
typedef struct gs_ui_build {
    int building;          /* a variant is being built beside the running one */
    char stage[48];        /* "loading", "quantizing/uploading", "measuring quality" */
    double frac;           /* 0..1 */
    unsigned long seq;     /* counts finished builds (ready, failed or cancelled) */
    int failed;            /* the last one failed: msg is the one line naming the option */
    char msg[256];         /* "variant 2 running: window=64" or why it failed */
} gs_ui_build;

/* What a live run lets the UI do. Every call is cheap and never blocks on
 * the engine: the engine thread picks requests up between steps. */
typedef struct gs_ui_live {
    void *ctx;
    void (*set_paused)(void *ctx, int paused);
    int (*paused)(void *ctx);
    /* Asks the engine thread to start (path) or stop (NULL) recording. */
    void (*record)(void *ctx, const char *path);
    /* The file being recorded, or NULL; a message after a failure in msg. */
    const char *(*recording)(void *ctx, char *msg, int cap);
    /* The engine's error (it stopped), or NULL. */
    const char *(*failure)(void *ctx);
    /* The running variant's configuration, and the model's query heads. */
    void (*config)(void *ctx, gs_config *out, int *n_head);
    /* Builds want beside the running variant (which keeps running) and swaps
     * it in between steps. GS_OK, or one line in msg: a build is under way. */
    int (*apply)(void *ctx, const gs_config *want, char *msg, int cap);
    void (*build_state)(void *ctx, gs_ui_build *out);
    /* Pins the running variant as A of the comparison, or unpins (the
     * engine thread does it between steps and says so in the store:
     * cmp.pin, src/compare_live.h). May be NULL. */
    void (*pin)(void *ctx);
} gs_ui_live;

typedef struct gs_ui_info {
    const char *source;       /* "live" or the trace file's name */
    const char *model;        /* "gpt2-tiny" */
    const char *device;       /* "cpu: 2 threads" / "cuda: NVIDIA H100 ..." */
    const char *memory;       /* "weights 12.0 MiB, KV 4.0 MiB" or NULL when unknown */
    const char *config_yaml;  /* the run's configuration, or NULL */
    const char *notice;       /* collectors that did not start, or NULL/"" */
    int ascii;                /* --ascii: no Unicode even in a UTF-8 locale */
    const gs_ui_live *live;   /* NULL: replay */
} gs_ui_info;

/* Runs the UI until the user quits. GS_OK, or an error (terminal unusable). */
int gs_ui_run(gs_event_store *store, const gs_ui_info *info, gs_error *err);

/* ---- for the views ---- */

#define GS_UI_MIN_COLS 80
#define GS_UI_MIN_ROWS 24
#define GS_UI_HIST 512 /* steps of history kept for sparklines */

/* Color pairs (and their monochrome attributes). */
enum {
    GS_C_NORMAL = 0,
    GS_C_MATMUL, GS_C_ATTN, GS_C_NORM, GS_C_ELEM, GS_C_COPY, GS_C_OTHER, /* categories, in gs_category order */
    GS_C_BAR,      /* status bar */
    GS_C_TAB,      /* active tab */
    GS_C_DIM,      /* free blocks, axis */
    GS_C_MATCH,    /* search match */
    GS_C_WARN,     /* too small, errors */
    GS_C_SEQ0,     /* KV sequences: GS_C_SEQ0 + (seq % GS_N_SEQ_COLORS) */
    GS_N_SEQ_COLORS = 6,
    GS_C_COUNT = GS_C_SEQ0 + GS_N_SEQ_COLORS
};

/* Per-step facts the views share, kept incrementally (new events only). */
typedef struct gs_ui_step {
    int64_t step;
    uint64_t t_ns, dur_ns;
    double tokens, tps, kv_used, kv_free, frag;
    double dram_bytes;   /* measured, when the step has metrics */
    double copy_bytes;   /* device copies and sets */
    uint64_t copy_ns;
    int metrics;         /* a metrics step (timing distorted) */
    /* The same by kind (GS_COPY_* and, last, sets), and counts, so a view
     * summing copies or looking for metrics never walks the store. */
    double copy_kind_bytes[GS_COPY_KIND_MAX + 2];
    uint64_t copy_kind_ns[GS_COPY_KIND_MAX + 2];
    uint32_t copies, metric_events;
    /* Absolute store indices of the step's first and last event: a view
     * reads one step with gs_store_visit(ev_first, ev_last + 1) and keeps
     * the events whose step matches (others interleave: late device records). */
    uint64_t ev_first, ev_last;
} gs_ui_step;

/* A variant of the live run (or of the recorded one), from its marker and
 * variant.* counters (src/toggles.h); kept for the whole run. */
#define GS_UI_MAX_VARIANTS 64
#define GS_UI_VSTATS 10 /* GS_VS_COUNT */
typedef struct gs_ui_variant {
    int id;                  /* 1 = the baseline */
    uint32_t summary;        /* string id: "toggle weights=fp32 kv=fp32 ..." (when named) */
    int named;
    int64_t start_step;      /* first step it ran in the store (-1: not seen running) */
    int toggled;             /* began with a toggle (a switch, not the first variant) */
    double v[GS_UI_VSTATS];
    unsigned have;           /* bit i: v[i] was recorded */
    double dram_bytes, dram_tokens; /* measured DRAM traffic over its metrics steps */
} gs_ui_variant;

/* One node summary of the live comparison (a cmp.* counter group,
 * src/compare_live.h), the newest seen; kept for the whole run. */
typedef struct gs_ui_cmp_row {
    int variant;
    uint8_t kind;            /* gs_cmp_kind */
    int layer;
    uint32_t name;           /* string id of the counter name ("cmp.op:matmul_qkv") */
    double stat[4];          /* gs_cmp_stat: median, interval lo, hi, samples */
    unsigned have;           /* bit per statistic */
} gs_ui_cmp_row;

typedef struct gs_ui_index {
    uint64_t scanned;           /* events looked at so far (absolute index) */
    uint64_t t_first, t_last;   /* over everything seen */
    gs_ui_step *steps;          /* ordered by step */
    int n_steps, cap_steps;
    uint64_t n_kernels, n_copies, n_metrics, n_kv, n_ranges;
    int64_t last_device_step;   /* newest step with kernel records (they arrive late) */
    int n_streams;
    uint32_t streams[16];       /* device tracks seen */
    uint8_t *counter_kind;      /* per string id: which counter (0 none) */
    int64_t pend_step;          /* newest step seen, and the index of its first event */
    uint64_t pend_first;        /* (its entry is made by its step range, which ends it) */
    uint64_t scanning;          /* the event being indexed */
    int hint;                   /* position of the last older step looked up */
    uint32_t n_kind;
    gs_ui_variant variants[GS_UI_MAX_VARIANTS];
    int n_variants;
    int cur_variant;            /* index of the running one (-1 none) */
    gs_ui_cmp_row *cmp;         /* the comparison's summaries, in the order first seen (model order) */
    int n_cmp, cap_cmp, cmp_hint;
    int pinned;                 /* A's variant number from cmp.pin (0: none) */
} gs_ui_index;

struct gs_ui;

typedef struct gs_view {
    const char *name;     /* "Timeline" */
    const char *help;     /* one line: what the view shows */
    /* Draws into rows [y0, y0 + h) of the whole width. */
    void (*draw)(struct gs_ui *ui, int y0, int h);
    /* Returns 1 when it used the key. */
    int (*key)(struct gs_ui *ui, int ch);
    /* A click (button 1) or wheel (dir -1 up / +1 down, 0 click) at x, y. */
    void (*mouse)(struct gs_ui *ui, int x, int y, int wheel);
    /* The search string changed or n was pressed (next 1). */
    void (*search)(struct gs_ui *ui, int next);
    /* Frees what state points to (state itself is freed by gs_view_free); may be NULL. */
    void (*release)(struct gs_view *v);
    void *state;
} gs_view;

enum { GS_VIEW_TIMELINE = 0, GS_VIEW_FLAME, GS_VIEW_MEMORY, GS_VIEW_KV, GS_VIEW_TOGGLES, GS_VIEW_COMPARE,
       GS_VIEW_HELP, GS_N_VIEWS };

typedef struct gs_ui {
    gs_event_store *store;
    const gs_ui_info *info;
    int live;
    int rows, cols;
    int color, utf8;
    int view, prev_view;
    gs_view views[GS_N_VIEWS];
    gs_ui_index ix;
    /* The time cursor: the step the views look at. Live: follows the newest
     * step until the user moves it (End follows again). */
    int64_t cursor_step;
    int follow;
    char search[64];
    int searching;        /* reading the search string */
    char msg[256];        /* one-line message at the bottom (export done, ...) */
    uint64_t msg_until_ns;
    int quit;
    uint64_t frame_ns;    /* last frame's draw time */
} gs_ui;

/* ---- offscreen frames, for tests/bench/ui_bench ----
 * A UI drawing into a curses screen on out (e.g. /dev/null, TERM from the
 * environment, xterm-256color when unset) at rows x cols: the real index,
 * views and output, without a terminal. One at a time. */
typedef struct gs_ui_frame_ns {
    uint64_t index;   /* new events into the per-step index, cursor */
    uint64_t draw;    /* the view into curses' window */
    uint64_t output;  /* doupdate: the changed cells written to out */
} gs_ui_frame_ns;
gs_ui *gs_ui_offscreen_open(gs_event_store *store, const gs_ui_info *info, FILE *out, int rows, int cols,
                            gs_error *err);
void gs_ui_offscreen_view(gs_ui *ui, int view);
void gs_ui_offscreen_key(gs_ui *ui, int ch);           /* as if typed */
/* One turn of the loop; repaint: every cell written, not just the changed ones. */
void gs_ui_offscreen_frame(gs_ui *ui, int repaint, gs_ui_frame_ns *t);
void gs_ui_offscreen_close(gs_ui *ui);

/* The variant with number id, or NULL. */
const gs_ui_variant *gs_ui_variant_by_id(const gs_ui *ui, int id);

/* The step entry of step s, or NULL. */
const gs_ui_step *gs_ui_step_at(const gs_ui *ui, int64_t s);
/* Index into ui->ix.steps of the step nearest s (-1 when there are none). */
int gs_ui_step_pos(const gs_ui *ui, int64_t s);
void gs_ui_message(gs_ui *ui, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The views, each in its own file. */
void gs_view_timeline_init(gs_view *v);
void gs_view_flame_init(gs_view *v);
void gs_view_memory_init(gs_view *v);
void gs_view_kv_init(gs_view *v);
void gs_view_toggles_init(gs_view *v);
void gs_view_compare_init(gs_view *v);
void gs_view_help_init(gs_view *v);
void gs_view_free(gs_view *v);

#endif
