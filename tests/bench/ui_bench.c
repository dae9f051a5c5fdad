/* ui_bench.c - frame times of the terminal UI on a store of one million
 * events. A benchmark, never a test: it prints figures for
 * tests/bench/PERFORMANCE.md beside their floor and the target
 * (a frame in at most 10 ms at 250x70 with one million events).
 *
 *   make -C build tests/bench/ui_bench
 *   build/tests/bench/ui_bench [--trace FILE.gst] [--events N] [--frames F] [--size COLSxROWS]
 *                              [--live-batch N] [--out FILE] [--term TERM]
 *
 * The events are a real recording (default examples/gpt2-124m-h100.gst:
 * gpt2-124m on the H100, ranges step > layer > op, kernels on their stream
 * with range ids, copies, syncs, counters, KV snapshots, two steps with
 * hardware metrics) repeated until the store holds N events, each copy
 * shifted in time, step, range id and correlation id, so the views see a
 * long run of real-shaped steps.
 *
 * Every frame is the UI's own turn (views/ui.c, gs_ui_offscreen_frame): the
 * index update, the view's draw into curses, and doupdate writing the
 * changed cells to --out (default /dev/null) as --term (default
 * xterm-256color) wants them. Per view it reports, in replay mode: the first
 * frame (the index of all N events and the view's own caches), the steady
 * frame (nothing changed), a frame after `]` (the time cursor on the next
 * step, so everything on screen changes), and a steady frame forced to
 * repaint every cell; then the timeline zoomed out over the whole
 * recording (its worst case: every event is in the window), panned with
 * H and L instead of `]`. In live mode (following the newest step): the frame
 * after --live-batch new events (default 10,000), with the index update
 * shown apart. Single-threaded; wall clock. */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../traces/trace_reader.h"
#include "../../views/ui.h"
#include "../../views/widgets.h"
#include "event_store.h"

/* ---- the store: a recording, repeated ---- */

typedef struct replicator {
    gs_event_store *base;
    uint64_t n_base, next;     /* next base event to copy */
    uint64_t copy;             /* which repetition */
    int64_t step_span;
    uint64_t t_span, id_span, corr_span;
    uint32_t marker_metrics;   /* "metrics step": its value is a step number */
} replicator;

typedef struct span_ctx {
    int64_t s0, s1;
    uint64_t t0, t1, max_id, max_corr;
} span_ctx;

static int span_visit(void *ctx, uint64_t index, const gs_event *ev)
{
    span_ctx *c = ctx;
    (void)index;
    if (ev->step >= 0) {
        if (ev->step < c->s0)
            c->s0 = ev->step;
        if (ev->step > c->s1)
            c->s1 = ev->step;
    }
    if (ev->t_ns && ev->t_ns < c->t0)
        c->t0 = ev->t_ns;
    if (ev->t_ns + ev->dur_ns > c->t1)
        c->t1 = ev->t_ns + ev->dur_ns;
    if (ev->kind == GS_EV_RANGE && ev->aux > c->max_id)
        c->max_id = ev->aux;
    if (ev->range_id > c->max_id)
        c->max_id = ev->range_id;
    if ((ev->kind == GS_EV_KERNEL || ev->kind == GS_EV_MEMCPY || ev->kind == GS_EV_MEMSET ||
         ev->kind == GS_EV_METRIC) && ev->aux > c->max_corr)
        c->max_corr = ev->aux;
    return 0;
}

static int rep_init(replicator *r, gs_event_store *base)
{
    memset(r, 0, sizeof *r);
    r->base = base;
    r->n_base = gs_store_count(base);
    span_ctx c = {INT64_MAX, INT64_MIN, UINT64_MAX, 0, 0, 0};
    gs_store_visit(base, 0, r->n_base, span_visit, &c);
    if (!r->n_base || c.s1 < c.s0 || c.t1 <= c.t0)
        return -1;
    r->step_span = c.s1 - c.s0 + 1;
    /* the next copy starts one mean step gap after the last one ends */
    r->t_span = c.t1 - c.t0 + (c.t1 - c.t0) / (uint64_t)r->step_span;
    r->id_span = c.max_id + 1;
    r->corr_span = c.max_corr + 1;
    r->marker_metrics = UINT32_MAX;
    for (uint32_t i = 0; i < gs_store_n_strings(base); i++)
        if (!strcmp(gs_store_string(base, i), "metrics step"))
            r->marker_metrics = i;
    return 0;
}

/* A new store holding the base's strings under the same ids. */
static gs_event_store *rep_store(const replicator *r)
{
    gs_event_store *s = gs_store_create(0);
    if (!s)
        return NULL;
    for (uint32_t i = 0; i < gs_store_n_strings(r->base); i++)
        if (gs_store_intern(s, gs_store_string(r->base, i)) != i) {
            gs_store_destroy(s);
            return NULL;
        }
    return s;
}

typedef struct append_ctx {
    const replicator *r;
    gs_event_store *dst;
    uint64_t left;
    int failed;
} append_ctx;

static int append_visit(void *ctx, uint64_t index, const gs_event *src)
{
    append_ctx *a = ctx;
    const replicator *r = a->r;
    (void)index;
    gs_event ev = *src;
    uint64_t k = r->copy;
    if (ev.step >= 0)
        ev.step += (int64_t)k * r->step_span;
    if (ev.t_ns)
        ev.t_ns += k * r->t_span;
    if (ev.kind == GS_EV_RANGE && ev.aux)
        ev.aux += k * r->id_span;
    if (ev.range_id)
        ev.range_id += k * r->id_span;
    if ((ev.kind == GS_EV_KERNEL || ev.kind == GS_EV_MEMCPY || ev.kind == GS_EV_MEMSET || ev.kind == GS_EV_METRIC) &&
        ev.aux)
        ev.aux += k * r->corr_span;
    if (ev.kind == GS_EV_MARKER && ev.name == r->marker_metrics)
        ev.value += (double)((int64_t)k * r->step_span);
    if (gs_store_append(a->dst, &ev)) {
        a->failed = 1;
        return 1;
    }
    return --a->left == 0;
}

/* Appends the next n events of the repeated recording. */
static int rep_append(replicator *r, gs_event_store *dst, uint64_t n)
{
    append_ctx a = {r, dst, n, 0};
    while (a.left && !a.failed) {
        uint64_t before = a.left;
        gs_store_visit(r->base, r->next, r->n_base, append_visit, &a);
        r->next += before - a.left;
        if (r->next >= r->n_base) {
            r->next = 0;
            r->copy++;
        }
    }
    return a.failed ? -1 : 0;
}

/* ---- timing ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats { double med, max; } stats;

static stats summarize(double *v, int n)
{
    stats s = {0, 0};
    if (n <= 0)
        return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s.max = v[n - 1];
    return s;
}

static double frame_ms(const gs_ui_frame_ns *t) { return (double)(t->index + t->draw + t->output) * 1e-6; }

/* ---- live mode without an engine ---- */

static void live_set_paused(void *ctx, int p) { (void)ctx, (void)p; }
static int live_paused(void *ctx) { return (void)ctx, 0; }
static void live_record(void *ctx, const char *path) { (void)ctx, (void)path; }
static const char *live_recording(void *ctx, char *msg, int cap)
{
    (void)ctx;
    if (msg && cap > 0)
        msg[0] = 0;
    return NULL;
}
static const char *live_failure(void *ctx) { return (void)ctx, NULL; }

/* ---- the floor: a full screen of colored eighth blocks, every cell written ---- */

static stats floor_repaint(gs_ui *ui, int frames, double *v)
{
    for (int f = 0; f < frames; f++) {
        erase();
        for (int y = 0; y < ui->rows; y++)
            for (int x = 0; x < ui->cols; x++)
                gs_w_eighths(ui, y, x, 1 + (x + y + f) % 8, gs_w_cat_attr(ui, (gs_category)((x / 7 + y) % GS_N_CAT)));
        wnoutrefresh(stdscr);
        double t0 = now_ms();
        clearok(curscr, TRUE);
        doupdate();
        v[f] = now_ms() - t0;
    }
    return summarize(v, frames);
}

int main(int argc, char **argv)
{
    const char *trace = "examples/gpt2-124m-h100.gst", *out_path = "/dev/null", *term = "xterm-256color";
    uint64_t n_events = 1000000, live_batch = 10000;
    int frames = 50, cols = 250, rows = 70;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            trace = argv[++i];
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
            frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc && sscanf(argv[i + 1], "%dx%d", &cols, &rows) == 2)
            i++;
        else if (!strcmp(argv[i], "--live-batch") && i + 1 < argc)
            live_batch = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if (!strcmp(argv[i], "--term") && i + 1 < argc)
            term = argv[++i];
        else {
            fprintf(stderr, "usage: ui_bench [--trace FILE.gst] [--events N] [--frames F] [--size COLSxROWS] "
                            "[--live-batch N] [--out FILE] [--term TERM]\n");
            return 2;
        }
    }
    if (frames < 1 || cols < GS_UI_MIN_COLS || rows < GS_UI_MIN_ROWS) {
        fprintf(stderr, "ui_bench: --frames >= 1, --size at least %dx%d\n", GS_UI_MIN_COLS, GS_UI_MIN_ROWS);
        return 2;
    }
    /* The UI reads the locale and TERM as it would on a person's terminal;
     * one fixed TERM so figures compare across machines. */
    setenv("TERM", term, 1);
    if (!getenv("LC_ALL"))
        setenv("LC_ALL", "C.UTF-8", 1);

    gs_trace tr;
    gs_error err = {0};
    if (gs_trace_read_file(trace, &tr, &err)) {
        fprintf(stderr, "ui_bench: %s (run from the repository root, or --trace FILE.gst)\n", err.msg);
        return 1;
    }
    replicator rep;
    if (rep_init(&rep, tr.store)) {
        fprintf(stderr, "ui_bench: %s has no steps\n", trace);
        gs_trace_free(&tr);
        return 1;
    }
    FILE *out = fopen(out_path, "w");
    if (!out) {
        perror(out_path);
        gs_trace_free(&tr);
        return 1;
    }
    double t0 = now_ms();
    gs_event_store *store = rep_store(&rep);
    if (!store || rep_append(&rep, store, n_events)) {
        fprintf(stderr, "ui_bench: out of memory\n");
        return 1;
    }
    printf("store: %llu events (%s repeated %llu times, %lld steps), built in %.0f ms\n",
           (unsigned long long)gs_store_count(store), trace, (unsigned long long)rep.copy + (rep.next > 0),
           (long long)((int64_t)rep.copy * rep.step_span + (rep.next ? rep.step_span : 0)), now_ms() - t0);
    printf("screen: %dx%d, TERM=%s, LC_ALL=%s, output to %s; %d frames per figure; times in ms\n\n", cols, rows,
           getenv("TERM"), getenv("LC_ALL"), out_path, frames);

    double *v = malloc((size_t)frames * 4 * sizeof *v);
    if (!v)
        return 1;
    double *vi = v + frames, *vd = v + 2 * frames, *vo = v + 3 * frames;
    gs_ui_info info = {trace, "gpt2-124m", "cuda: NVIDIA H100 80GB HBM3 (recorded)", "n/a", tr.config_yaml, "", 0,
                       NULL};
    int rc = 0;

    printf("replay        first (index+view)   steady med / max   next step med / max   repaint med   "
           "(steady: index / draw / output med)\n");
    for (int row = 0; row <= GS_N_VIEWS && !rc; row++) {
        /* the last row: the timeline zoomed out over the whole recording (- pressed 40 times) */
        int view = row < GS_N_VIEWS ? row : GS_VIEW_TIMELINE, zoom_out = row == GS_N_VIEWS ? 40 : 0;
        gs_ui *ui = gs_ui_offscreen_open(store, &info, out, rows, cols, &err);
        if (!ui) {
            fprintf(stderr, "ui_bench: %s\n", err.msg);
            rc = 1;
            break;
        }
        gs_ui_offscreen_view(ui, view);
        gs_ui_frame_ns t;
        if (zoom_out) {
            gs_ui_offscreen_frame(ui, 0, &t); /* the window is fitted to the step on the first frame */
            for (int k = 0; k < zoom_out; k++)
                gs_ui_offscreen_key(ui, '-');
        }
        gs_ui_offscreen_frame(ui, 0, &t);
        double first = frame_ms(&t), first_ix = (double)t.index * 1e-6;
        for (int f = 0; f < frames; f++) {
            gs_ui_offscreen_frame(ui, 0, &t);
            v[f] = frame_ms(&t);
            vi[f] = (double)t.index * 1e-6;
            vd[f] = (double)t.draw * 1e-6;
            vo[f] = (double)t.output * 1e-6;
        }
        stats steady = summarize(v, frames), si = summarize(vi, frames), sd = summarize(vd, frames),
              so = summarize(vo, frames);
        /* ] moves the cursor a step (the zoomed-out timeline pans instead: H L) */
        for (int f = 0; f < frames; f++) {
            gs_ui_offscreen_key(ui, zoom_out ? (f % 2 ? 'H' : 'L') : ']');
            gs_ui_offscreen_frame(ui, 0, &t);
            v[f] = frame_ms(&t);
        }
        stats next = summarize(v, frames);
        for (int f = 0; f < frames; f++) {
            gs_ui_offscreen_frame(ui, 1, &t);
            v[f] = frame_ms(&t);
        }
        stats rep_s = summarize(v, frames);
        printf("%-10s %9.2f (%6.2f + %6.2f)  %7.3f / %7.3f   %8.3f / %7.3f   %9.3f     (%.3f / %.3f / %.3f)\n",
               zoom_out ? "Tl all" : ui->views[view].name, first, first_ix, first - first_ix, steady.med, steady.max,
               next.med, next.max, rep_s.med, si.med, sd.med, so.med);
        fflush(stdout);
        if (row == GS_N_VIEWS - 1) {
            stats fl = floor_repaint(ui, frames, v);
            printf("floor: doupdate of a full %dx%d screen of colored eighth blocks, every cell written: "
                   "med %.3f, max %.3f\n",
                   cols, rows, fl.med, fl.max);
        }
        gs_ui_offscreen_close(ui);
    }

    /* Live: a fresh store per view (N events), then live_batch more before each frame. */
    gs_ui_live live = {NULL, live_set_paused, live_paused, live_record, live_recording, live_failure, NULL, NULL, NULL};
    gs_ui_info linfo = info;
    linfo.source = "live";
    linfo.live = &live;
    printf("\nlive (+%llu events per frame)  first   frame med / max   (index med / max)\n",
           (unsigned long long)live_batch);
    for (int view = 0; view < GS_N_VIEWS && !rc; view++) {
        replicator lrep = rep;
        lrep.next = 0;
        lrep.copy = 0;
        gs_event_store *ls = rep_store(&lrep);
        if (!ls || rep_append(&lrep, ls, n_events)) {
            fprintf(stderr, "ui_bench: out of memory\n");
            rc = 1;
            gs_store_destroy(ls);
            break;
        }
        gs_ui *ui = gs_ui_offscreen_open(ls, &linfo, out, rows, cols, &err);
        if (!ui) {
            fprintf(stderr, "ui_bench: %s\n", err.msg);
            rc = 1;
            gs_store_destroy(ls);
            break;
        }
        gs_ui_offscreen_view(ui, view);
        gs_ui_frame_ns t;
        gs_ui_offscreen_frame(ui, 0, &t);
        double first = frame_ms(&t);
        for (int f = 0; f < frames && !rc; f++) {
            if (rep_append(&lrep, ls, live_batch))
                rc = 1;
            gs_ui_offscreen_frame(ui, 0, &t);
            v[f] = frame_ms(&t);
            vi[f] = (double)t.index * 1e-6;
        }
        stats fr = summarize(v, frames), ix = summarize(vi, frames);
        printf("%-10s                  %9.2f   %7.3f / %7.3f   (%.3f / %.3f)\n", ui->views[view].name, first,
               fr.med, fr.max, ix.med, ix.max);
        fflush(stdout);
        gs_ui_offscreen_close(ui);
        gs_store_destroy(ls);
    }
    free(v);
    fclose(out);
    gs_store_destroy(store);
    gs_trace_free(&tr);
    return rc;
}
