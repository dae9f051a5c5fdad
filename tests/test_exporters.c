/* test_exporters.c - the exporters on a synthetic store with ranges, kernels
 * on two streams, copies, a set, syncs, metrics, counters, KV snapshots and
 * markers (tests/synth_trace.c), plus a hostile name:
 * - Chrome JSON: parsed back (src/json.c, strict) and every event checked
 *   against the schema of its ph (required keys, numeric ts/dur, integer
 *   pid/tid), flow ids paired s <-> f and bound inside a slice, X events
 *   nested per thread, counts equal to the store's, metrics folded into their
 *   kernel's args; the .gz file inflates to the same bytes; two sources give
 *   two processes; then the real importer (../shared/tools/trace-validate,
 *   SKIP without node or the tool);
 * - folded stacks: kernels under their op, weights equal to the store's sums;
 * - CSV: kernel rows with measured DRAM bytes, copy rows with their bytes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../traces/export.h"
#include "../traces/export_common.h"
#include "event_store.h"
#include "json.h"
#include "synth_trace.h"
#include "tap.h"

static char tmpdir[256];

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)len + 1);
    *n = fread(d, 1, (size_t)len, f);
    d[*n] = '\0';
    fclose(f);
    return d;
}

/* ---- store facts to compare the exports with ---- */
typedef struct facts {
    long kernels, copies, sets, syncs, ranges, counters, markers, metrics, op_metrics, kv_snapshots, attributed;
    uint64_t t0;
    uint64_t qkv_kernel_ns_layer0; /* gemv kernels launched by qkv of layer 0 */
    uint64_t max_corr_with_metrics;
    gs_event_store *s;
    uint64_t last_kv_t;
} facts;

static int facts_visit(void *ctx, uint64_t i, const gs_event *ev)
{
    facts *f = ctx;
    if (i == 0 || ev->t_ns < f->t0)
        f->t0 = ev->t_ns;
    switch (ev->kind) {
    case GS_EV_KERNEL: f->kernels++; break;
    case GS_EV_MEMCPY: f->copies++; break;
    case GS_EV_MEMSET: f->sets++; break;
    case GS_EV_SYNC: f->syncs++; break;
    case GS_EV_RANGE: f->ranges++; break;
    case GS_EV_COUNTER: f->counters++; break;
    case GS_EV_MARKER: f->markers++; break;
    case GS_EV_METRIC:
        f->metrics++;
        f->op_metrics += ev->level == GS_METRIC_OP;
        break;
    case GS_EV_KV_BLOCKS:
        if (ev->t_ns != f->last_kv_t)
            f->kv_snapshots++;
        f->last_kv_t = ev->t_ns;
        break;
    default: break;
    }
    if ((ev->kind == GS_EV_KERNEL || ev->kind == GS_EV_MEMCPY || ev->kind == GS_EV_MEMSET) && ev->range_id)
        f->attributed++;
    return 0;
}

/* ---- Chrome JSON checks ---- */
typedef struct xev { int64_t pid, tid, ts, end; } xev;  /* ns */
typedef struct flow { int64_t id, pid, tid, ts; int ph; } flow;

static int64_t ns_of(double us) { return (int64_t)llround(us * 1000.0); }

static int by_x(const void *a, const void *b)
{
    const xev *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

static int by_flow(const void *a, const void *b)
{
    const flow *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->ph - y->ph;
}

typedef struct chrome_stats {
    long events, bad, x, kernels, memcpy, memset, sync, ranges, c, m, i, s, f;
    long flows_paired, flows_bound, nesting_errors, unnamed_threads;
    long kernels_with_metrics, kernels_with_rate, bad_rates, c_names_tokens, c_kv_snapshot, c_dram, metric_events;
    long weird;
    int64_t max_pid;
    long processes;
} chrome_stats;

static int str_is(const gs_json_value *v, const char *s) { return v && v->type == GS_JSON_STRING && strcmp(v->str, s) == 0; }
static int is_num(const gs_json_value *v) { return v && v->type == GS_JSON_NUMBER; }
static int is_int(const gs_json_value *v) { return v && v->type == GS_JSON_NUMBER && v->is_integer; }

static int bad_event(chrome_stats *cs, const char *why, const gs_json_value *e)
{
    if (cs->bad++ < 5)
        tap_diag("bad event at byte %zu: %s", e->offset, why);
    return 0;
}

/* Parses path and checks every event; fills cs. 0 when the file parsed. */
static int check_chrome(const char *path, chrome_stats *cs)
{
    memset(cs, 0, sizeof *cs);
    size_t n;
    char *text = slurp(path, &n);
    if (!text)
        return -1;
    gs_json_doc doc;
    int rc = gs_json_parse(&doc, text, n, 8);
    if (rc) {
        tap_diag("%s: offset %zu: %s", path, doc.error_offset, doc.error);
        gs_json_free(&doc);
        free(text);
        return -1;
    }
    const gs_json_value *root = gs_json_root(&doc);
    const gs_json_value *arr = gs_json_get(&doc, root, "traceEvents");
    if (!arr || arr->type != GS_JSON_ARRAY) {
        gs_json_free(&doc);
        free(text);
        return -1;
    }
    xev *xs = malloc((arr->len + 1) * sizeof *xs);
    flow *fl = malloc((arr->len + 1) * sizeof *fl);
    size_t nx = 0, nf = 0;
    /* threads with a thread_name, as pid << 32 | tid */
    int64_t *named = malloc((arr->len + 1) * sizeof *named);
    size_t nnamed = 0;
    for (const gs_json_value *e = gs_json_child(&doc, arr); e; e = gs_json_next(&doc, e)) {
        cs->events++;
        if (e->type != GS_JSON_OBJECT) {
            bad_event(cs, "not an object", e);
            continue;
        }
        const gs_json_value *ph = gs_json_get(&doc, e, "ph"), *name = gs_json_get(&doc, e, "name"),
                            *ts = gs_json_get(&doc, e, "ts"), *pid = gs_json_get(&doc, e, "pid"),
                            *tid = gs_json_get(&doc, e, "tid"), *args = gs_json_get(&doc, e, "args"),
                            *cat = gs_json_get(&doc, e, "cat");
        if (!ph || ph->type != GS_JSON_STRING || ph->len != 1) {
            bad_event(cs, "ph", e);
            continue;
        }
        if (!name || name->type != GS_JSON_STRING || !name->len || !is_num(ts) || ts->number < 0 || !is_int(pid) ||
            !is_int(tid)) {
            bad_event(cs, "name, ts, pid or tid missing or mistyped", e);
            continue;
        }
        if (pid->integer > cs->max_pid)
            cs->max_pid = pid->integer;
        switch (ph->str[0]) {
        case 'X': {
            const gs_json_value *dur = gs_json_get(&doc, e, "dur");
            if (!is_num(dur) || dur->number < 0 || !cat || cat->type != GS_JSON_STRING || !args ||
                args->type != GS_JSON_OBJECT) {
                bad_event(cs, "X needs dur >= 0, cat and args", e);
                break;
            }
            cs->x++;
            xs[nx++] = (xev){pid->integer, tid->integer, ns_of(ts->number), ns_of(ts->number) + ns_of(dur->number)};
            if (str_is(cat, "kernel")) {
                cs->kernels++;
                const gs_json_value *g = gs_json_get(&doc, args, "grid"), *b = gs_json_get(&doc, args, "block");
                if (!g || g->type != GS_JSON_ARRAY || g->len != 3 || !b || b->type != GS_JSON_ARRAY || b->len != 3 ||
                    !is_int(gs_json_get(&doc, args, "registers")) || !is_int(gs_json_get(&doc, args, "shared_bytes")) ||
                    !is_int(gs_json_get(&doc, args, "correlation")))
                    bad_event(cs, "kernel args", e);
                const gs_json_value *met = gs_json_get(&doc, args, "metrics");
                if (met) {
                    cs->kernels_with_metrics++;
                    const gs_json_value *rd = gs_json_get(&doc, met, "dram__bytes_read.sum"),
                                        *wr = gs_json_get(&doc, met, "dram__bytes_write.sum"),
                                        *by = gs_json_get(&doc, args, "bytes"), *gb = gs_json_get(&doc, args, "GB/s");
                    if (!is_num(rd) || !is_num(wr) || !is_num(by) || by->number != rd->number + wr->number)
                        bad_event(cs, "kernel bytes are not read + write", e);
                    if (is_num(gb) && dur->number > 0) {
                        cs->kernels_with_rate++;
                        double want = by->number / (dur->number * 1000.0);
                        if (fabs(gb->number - want) > 0.001 + want * 1e-6)
                            cs->bad_rates++;
                    }
                }
                if (tid->integer == GS_TRACK_STREAM0 + 7 && gs_json_get(&doc, args, "op") == NULL)
                    bad_event(cs, "a kernel on stream 7 without its launching op", e);
            } else if (str_is(cat, "memcpy") || str_is(cat, "memset")) {
                cs->memcpy += str_is(cat, "memcpy");
                cs->memset += str_is(cat, "memset");
                if (!is_num(gs_json_get(&doc, args, "bytes")))
                    bad_event(cs, "copy without bytes", e);
            } else if (str_is(cat, "sync")) {
                cs->sync++;
                if (tid->integer != 0)
                    bad_event(cs, "sync off the host track", e);
            } else if (str_is(cat, "step") || str_is(cat, "layer") || str_is(cat, "op")) {
                cs->ranges++;
            } else {
                bad_event(cs, "unknown X category", e);
            }
            if (strncmp(name->str, "weird \"name\"\\\t", 14) == 0)
                cs->weird++;
            break;
        }
        case 'C': {
            cs->c++;
            const gs_json_value *a0 = args && args->type == GS_JSON_OBJECT ? gs_json_child(&doc, args) : NULL;
            if (!a0)
                bad_event(cs, "C without args", e);
            for (; a0; a0 = gs_json_next(&doc, a0))
                if (!is_num(a0))
                    bad_event(cs, "C arg not a number", e);
            cs->c_names_tokens += strcmp(name->str, "tokens/s") == 0;
            cs->c_kv_snapshot += strcmp(name->str, "kv.snapshot blocks") == 0;
            cs->c_dram += strcmp(name->str, "dram.throughput_gbps") == 0;
            break;
        }
        case 'M':
            cs->m++;
            if (!args || args->type != GS_JSON_OBJECT)
                bad_event(cs, "M without args", e);
            else if (strcmp(name->str, "process_name") == 0 || strcmp(name->str, "thread_name") == 0) {
                if (gs_json_get(&doc, args, "name") == NULL || gs_json_get(&doc, args, "name")->type != GS_JSON_STRING)
                    bad_event(cs, "M name without args.name", e);
                if (name->str[0] == 't')
                    named[nnamed++] = pid->integer << 32 | tid->integer;
                else
                    cs->processes++;
            } else if (strcmp(name->str, "thread_sort_index") == 0 || strcmp(name->str, "process_sort_index") == 0) {
                if (!is_int(gs_json_get(&doc, args, "sort_index")))
                    bad_event(cs, "M sort without args.sort_index", e);
            } else {
                bad_event(cs, "unknown M name", e);
            }
            break;
        case 'i':
            cs->i++;
            if (!str_is(gs_json_get(&doc, e, "s"), "p") && !str_is(gs_json_get(&doc, e, "s"), "g") &&
                !str_is(gs_json_get(&doc, e, "s"), "t"))
                bad_event(cs, "instant without scope", e);
            break;
        case 's':
        case 'f': {
            const gs_json_value *id = gs_json_get(&doc, e, "id");
            if (!is_int(id) || !cat || cat->type != GS_JSON_STRING) {
                bad_event(cs, "flow without id or cat", e);
                break;
            }
            if (ph->str[0] == 'f' && !str_is(gs_json_get(&doc, e, "bp"), "e"))
                bad_event(cs, "flow end without bp e", e);
            cs->s += ph->str[0] == 's';
            cs->f += ph->str[0] == 'f';
            fl[nf++] = (flow){id->integer, pid->integer, tid->integer, ns_of(ts->number), ph->str[0]};
            break;
        }
        default:
            bad_event(cs, "unexpected ph", e);
        }
        if (strstr(name->str, "dram__") == name->str)
            cs->metric_events++;
    }
    /* Nesting: per thread, sorted by start then longest first, each X either
     * starts after the enclosing one ends or ends inside it. */
    qsort(xs, nx, sizeof *xs, by_x);
    xev stack[64];
    int depth = 0;
    for (size_t k = 0; k < nx; k++) {
        if (k && (xs[k].pid != xs[k - 1].pid || xs[k].tid != xs[k - 1].tid))
            depth = 0;
        while (depth && xs[k].ts >= stack[depth - 1].end)
            depth--;
        if (depth && xs[k].end > stack[depth - 1].end)
            cs->nesting_errors++;
        if (depth < 64)
            stack[depth++] = xs[k];
        if (k == 0 || xs[k].pid != xs[k - 1].pid || xs[k].tid != xs[k - 1].tid) {
            int found = 0;
            for (size_t q = 0; q < nnamed; q++)
                found |= named[q] == (xs[k].pid << 32 | xs[k].tid);
            cs->unnamed_threads += !found;
        }
    }
    /* Flows: each id once as s and once as f, each end inside an X of its thread. */
    qsort(fl, nf, sizeof *fl, by_flow);
    for (size_t k = 0; k + 1 < nf; k++)
        if (fl[k].id == fl[k + 1].id && fl[k].ph == 'f' && fl[k + 1].ph == 's' && (k + 2 >= nf || fl[k + 2].id != fl[k].id) &&
            (k == 0 || fl[k - 1].id != fl[k].id))
            cs->flows_paired++;
    for (size_t k = 0; k < nf; k++) {
        /* binary search the first X of the thread starting after ts, then look back */
        size_t lo = 0, hi = nx;
        xev key = {fl[k].pid, fl[k].tid, fl[k].ts, INT64_MIN};
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (by_x(&xs[mid], &key) <= 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        int bound = 0;
        for (size_t q = lo; q-- > 0 && xs[q].pid == fl[k].pid && xs[q].tid == fl[k].tid && !bound;)
            bound = xs[q].ts <= fl[k].ts && fl[k].ts <= xs[q].end;
        cs->flows_bound += bound;
    }
    free(xs);
    free(fl);
    free(named);
    gs_json_free(&doc);
    free(text);
    return 0;
}

/* ---- the real importer ---- */
static void validate(const char *file, const char *opt)
{
    const char *v = getenv("TRACE_VALIDATE");
    char path[1024];
    if (v && *v) {
        snprintf(path, sizeof path, "%s", v);
    } else {
        const char *data = getenv("GS_TEST_DATA"); /* <repo>/tests/data */
        snprintf(path, sizeof path, "%s/../../../shared/tools/trace-validate/validate", data ? data : "../tests/data");
    }
    if (access(path, X_OK) != 0) {
        printf("ok %d # SKIP trace-validate not found at %s\n", ++tap_count_, path);
        return;
    }
    if (system("command -v node >/dev/null 2>&1") != 0) {
        printf("ok %d # SKIP trace-validate: node is not installed\n", ++tap_count_);
        return;
    }
    char cmd[3000], out[512] = "";
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' 2>&1", path, opt, file);
    FILE *p = popen(cmd, "r");
    size_t k = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[k] = '\0';
    int st = p ? pclose(p) : -1;
    int code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    if (code == 3)
        printf("ok %d # SKIP trace-validate unavailable: %s\n", ++tap_count_, out);
    else
        tap_ok(code == 0, "trace-validate %s %s: %s", opt, strrchr(file, '/') + 1, out);
}

static void add_weird(gs_event_store *s)
{
    gs_event k = {0};
    k.kind = GS_EV_KERNEL;
    k.name = gs_store_intern(s, "weird \"name\"\\\t\xc3\xa9 kernel");
    k.layer = -1;
    k.track = GS_TRACK_STREAM0 + 3;
    k.step = 0;
    k.t_ns = 5000000000000ULL + 1234567;
    k.dur_ns = 4321;
    k.aux = 999999;
    k.range_id = 0; /* launching range unknown: no flow, "(no range)" in folded */
    k.u.launch = (gs_event_launch){{1, 1, 1}, {32, 1, 1}, 8, 0};
    gs_store_append(s, &k);
}

typedef struct folded_sum { const char *s; uint64_t ns; } folded_sum;
static int sum_qkv0(void *ctx, uint64_t i, const gs_event *ev)
{
    facts *f = ctx;
    (void)i;
    if (ev->kind == GS_EV_KERNEL && ev->layer == 0 && strcmp(gs_store_string(f->s, ev->name), "gemv_f16_kernel") == 0 &&
        ev->u.launch.grid[0] == 576)
        f->qkv_kernel_ns_layer0 += ev->dur_ns;
    return 0;
}

static void test_formatting(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/fmt.txt", tmpdir);
    gs_outfile o;
    gs_error err = {0};
    gs_out_open(&o, path, 0, &err);
    uint64_t ns[] = {0, 5, 12345, 12300, 12000, 999999999999ULL};
    for (int i = 0; i < 6; i++) {
        gs_out_us(&o, ns[i]);
        gs_out_lit(&o, " ");
    }
    gs_out_i64(&o, INT64_MIN);
    gs_out_lit(&o, " ");
    gs_out_num(&o, 0.1);
    gs_out_lit(&o, " ");
    gs_out_num(&o, NAN);
    gs_out_lit(&o, " ");
    gs_out_num(&o, -42);
    gs_out_lit(&o, " ");
    gs_out_fixed3(&o, 2.5004);
    gs_out_lit(&o, " ");
    gs_out_fixed3(&o, -0.0004);
    gs_out_close(&o, &err);
    size_t n;
    char *t = slurp(path, &n);
    const char *want = "0 0.005 12.345 12.3 12 999999999.999 -9223372036854775808 0.1 0 -42 2.5 0";
    tap_ok(t && strcmp(t, want) == 0, "number formatting: '%s'", t ? t : "(none)");
    free(t);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gs_test_exporters.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_formatting();

    gs_synth_opts so;
    gs_synth_defaults(&so);
    so.layers = 3;
    so.metrics_every = 2;
    so.kv_blocks = 32;
    gs_event_store *s = gs_store_create(0);
    long steps = gs_synth_fill(s, &so, 1500);
    add_weird(s);
    facts f = {0};
    f.s = s;
    gs_store_visit(s, 0, gs_store_count(s), facts_visit, &f);
    gs_store_visit(s, 0, gs_store_count(s), sum_qkv0, &f);
    tap_ok(steps > 1 && f.kernels && f.copies && f.sets && f.syncs && f.metrics && f.counters && f.markers && f.kv_snapshots,
           "synthetic store: %ld steps, %llu events, %ld kernels, %ld copies, %ld sets, %ld syncs, %ld metrics", steps,
           (unsigned long long)gs_store_count(s), f.kernels, f.copies, f.sets, f.syncs, f.metrics);

    char json[300], gz[300], multi[300], folded[300], csv[300];
    snprintf(json, sizeof json, "%s/t.json", tmpdir);
    snprintf(gz, sizeof gz, "%s/t.json.gz", tmpdir);
    snprintf(multi, sizeof multi, "%s/two.json", tmpdir);
    snprintf(folded, sizeof folded, "%s/t.folded", tmpdir);
    snprintf(csv, sizeof csv, "%s/t.csv", tmpdir);
    gs_export_info info = {"gptscope: cuda: test GPU", "cuda: test GPU", 0};
    gs_error err = {0};
    int rc = gs_export_chrome(s, &info, json, &err);
    tap_ok(rc == GS_OK, "export to Chrome JSON (%s)", err.msg);
    chrome_stats cs;
    rc = check_chrome(json, &cs);
    tap_ok(rc == 0, "the Chrome JSON parses as strict JSON (%ld events)", cs.events);
    tap_ok(cs.bad == 0, "every event has the keys its ph needs, with the right types (%ld bad)", cs.bad);
    tap_ok(cs.kernels == f.kernels && cs.memcpy == f.copies && cs.memset == f.sets && cs.sync == f.syncs &&
               cs.ranges == f.ranges,
           "one X per kernel (%ld/%ld), copy (%ld/%ld), set (%ld/%ld), sync (%ld/%ld) and range (%ld/%ld)", cs.kernels,
           f.kernels, cs.memcpy, f.copies, cs.memset, f.sets, cs.sync, f.syncs, cs.ranges, f.ranges);
    tap_ok(cs.s == f.attributed && cs.f == f.attributed && cs.flows_paired == f.attributed,
           "a flow per attributed device record: %ld s, %ld f, %ld paired (want %ld)", cs.s, cs.f, cs.flows_paired,
           f.attributed);
    tap_ok(cs.flows_bound == cs.s + cs.f, "every flow end lies inside a slice of its thread (%ld of %ld)", cs.flows_bound,
           cs.s + cs.f);
    tap_ok(cs.nesting_errors == 0 && cs.unnamed_threads == 0, "X events nest on every thread (%ld errors); every thread is named (%ld not)",
           cs.nesting_errors, cs.unnamed_threads);
    tap_ok(cs.metric_events == 0 && cs.kernels_with_metrics > 0 && cs.kernels_with_rate == cs.kernels_with_metrics &&
               cs.bad_rates == 0,
           "metrics are kernel args, not events: %ld kernels carry them, bytes = read + write, GB/s = bytes / dur",
           cs.kernels_with_metrics);
    tap_ok(cs.c == f.counters + f.kv_snapshots && cs.c_names_tokens > 0 && cs.c_dram > 0 && cs.c_kv_snapshot == f.kv_snapshots,
           "a C event per counter sample and per KV snapshot (%ld = %ld + %ld)", cs.c, f.counters, f.kv_snapshots);
    tap_ok(cs.i == f.markers && cs.processes == 1 && cs.weird == 1, "markers as instants (%ld), one process, a hostile name escaped", cs.i);

    /* Timestamps: microseconds from the first event, nanoseconds as decimals. */
    size_t n;
    char *text = slurp(json, &n);
    tap_ok(text && strstr(text, "\"ts\":1234.567,\"dur\":4.321") != NULL,
           "ts and dur in microseconds with the nanoseconds kept (1234567 ns -> 1234.567)");
    /* gzip: the same bytes */
    rc = gs_export_chrome(s, &info, gz, &err);
    gzFile g = gzopen(gz, "rb");
    char *unz = malloc(n + 16);
    int got = g ? gzread(g, unz, (unsigned)n + 16) : -1;
    if (g)
        gzclose(g);
    tap_ok(rc == GS_OK && got == (int)n && memcmp(unz, text, n) == 0, "the .json.gz inflates to the same %zu bytes", n);
    free(unz);
    free(text);

    /* Two sources: a process each, one clock, flow ids unique. */
    gs_event_store *stores[2] = {s, s};
    gs_export_info infos[2] = {{"A: fp32", "cuda: test GPU", 0}, {"B: fp16", "cuda: test GPU", 0}};
    rc = gs_export_chrome_multi(stores, infos, 2, multi, &err);
    chrome_stats cm = {0};
    int prc = rc ? -1 : check_chrome(multi, &cm);
    tap_ok(prc == 0 && cm.bad == 0 && cm.processes == 2 && cm.max_pid == 2 && cm.flows_paired == 2 * f.attributed &&
               cm.nesting_errors == 0,
           "two configurations: two processes, %ld flows paired, nesting kept", cm.flows_paired);
    validate(json, "--strict"); /* no warning either: the synthetic ranges never touch */
    validate(gz, "--strict");

    /* Folded stacks. */
    rc = gs_export_folded(s, folded, 1000, &err);
    text = rc ? NULL : slurp(folded, &n);
    uint64_t want = (f.qkv_kernel_ns_layer0 + 500) / 1000;
    char line[200];
    snprintf(line, sizeof line, "\nstep;layer 0;qkv;gemv_f16_kernel %llu\n", (unsigned long long)want);
    tap_ok(text && strstr(text, line), "folded: kernels under their op, weight = their device time (%.*s)",
           (int)strlen(line) - 2, line + 1);
    tap_ok(text && strstr(text, "\nstep;sampling;cudaStreamSynchronize ") && strstr(text, "\nstep;layer 2;attention;kv_append_kernel ") &&
               strstr(text, "\nstep;embedding;memcpy HtoD ") && strstr(text, "(no range);weird \"name\"\\\t"),
           "folded: syncs under their op, copies and side-stream kernels under theirs, unattributed under (no range)");
    int lines_ok = 1;
    for (char *p = text; p && *p;) {
        char *e = strchr(p, '\n');
        if (!e)
            break;
        char *sp = e;
        while (sp > p && sp[-1] != ' ')
            sp--;
        if (sp == p || sp == e || strspn(sp, "0123456789") != (size_t)(e - sp))
            lines_ok = 0;
        p = e + 1;
    }
    tap_ok(lines_ok, "folded: every line is 'frames COUNT'");
    free(text);
    validate(folded, "--folded");

    /* CSV. */
    rc = gs_export_csv(s, csv, &err);
    text = rc ? NULL : slurp(csv, &n);
    static const char header[] = "level,name,calls,total_us,mean_us,min_us,max_us,share_of_steps_pct,bytes_modeled,"
                                 "bytes_measured_per_call,bytes_measured_calls,achieved_GBps\n";
    tap_ok(text && strncmp(text, header, sizeof header - 1) == 0, "csv: header");
    const char *k = text ? strstr(text, "\nkernel,\"gemv_f16_kernel\",") : NULL;
    char row[512] = "";
    if (k) {
        size_t len = strcspn(k + 1, "\n");
        snprintf(row, sizeof row, "%.*s", (int)(len < 511 ? len : 511), k + 1);
    }
    int fields = 0;
    for (const char *p = row; *p; p++)
        fields += *p == ',';
    size_t rl = strlen(row);
    tap_ok(fields == 11 && rl > 2 && row[rl - 1] >= '0' && row[rl - 1] <= '9' && !strstr(row, ",,,"),
           "csv: a kernel row with measured DRAM bytes and GB/s: %s", row);
    tap_ok(text && strstr(text, "\nmemcpy,\"memcpy HtoD\",") && strstr(text, "\nmemset,\"memset\",") && strstr(text, "\nop,\"qkv\","),
           "csv: rows for ops, copies and sets");
    free(text);

    /* The aggregate behind the CSV and the summary. */
    gs_agg a;
    rc = gs_agg_build(s, &a);
    long kcalls = 0, measured = 0;
    for (int i = 0; i < a.n_rows; i++)
        if (a.rows[i].level == GS_AGG_KERNEL) {
            kcalls += a.rows[i].calls;
            measured += a.rows[i].bytes_calls;
        }
    tap_ok(rc == 0 && kcalls == f.kernels && (long)a.kernels == f.kernels && measured == (f.metrics - f.op_metrics) / 2 &&
               (long)(a.copies[GS_COPY_HTOD] + a.copies[GS_COPY_DTOH]) == f.copies && (long)a.syncs == f.syncs,
           "aggregate: %ld kernel calls, %ld with measured bytes (one per read/write metric pair), copies by kind", kcalls,
           measured);
    gs_agg_free(&a);

    gs_store_destroy(s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    return tap_done();
}
