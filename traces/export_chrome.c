/* export_chrome.c - Chrome Trace Event Format JSON (Perfetto, chrome://tracing).
 *
 * What a Perfetto user finds:
 * - one process per device (its name from the trace header's device string),
 *   or per configuration when two are compared (gs_export_chrome_multi: each
 *   source gets its own pid);
 * - in it a named thread track for the host thread (track 0) and one per CUDA
 *   stream (track GS_TRACK_STREAM0 + stream id), ordered host first;
 * - nested complete events (ph X) for step > layer > op on the host track,
 *   and the host's waits on the device (GS_EV_SYNC) there too, category "sync";
 * - kernels, copies and sets as X events on their stream tracks, with the
 *   launch configuration, bytes moved and achieved GB/s where the bytes are
 *   known, the correlation id and the op (and layer) of the launching range;
 * - a flow arrow (ph s -> ph f, one id per device record) from the launching
 *   range on the host track to the kernel, copy or set;
 * - hardware metrics (GS_EV_METRIC) as arguments of the kernel or op they
 *   measured, never as events of their own;
 * - a counter track (ph C) per counter name, and the KV-cache snapshots
 *   summarized as one counter ("kv.snapshot blocks": used and free);
 * - markers as process-scoped instants (ph i);
 * - metadata (ph M) for process and thread names and sort order.
 * Timestamps are microseconds from the first event, with the nanoseconds kept
 * as up to three decimals (printed from integers: exact, and nesting survives).
 *
 * Speed matters (a million events should take well under a second): names are
 * JSON-escaped once per string id, numbers are formatted by hand, and output
 * goes through one buffer in large writes. */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "export_common.h"

/* ---- lookups built once per export ---- */

/* range id -> index of its GS_EV_RANGE in the sorted list (open addressing). */
typedef struct range_map {
    uint64_t *keys;  /* 0: empty (range ids start at 1) */
    uint32_t *idx;
    size_t cap;
} range_map;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int range_map_build(range_map *m, const gs_evlist *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->ev[i].kind == GS_EV_RANGE && l->ev[i].aux != 0;
    m->cap = 16;
    while (m->cap < n * 2)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->idx = malloc(m->cap * sizeof *m->idx);
    if (!m->keys || !m->idx)
        return -1;
    for (size_t i = 0; i < l->n; i++) {
        const gs_event *ev = &l->ev[i];
        if (ev->kind != GS_EV_RANGE || ev->aux == 0)
            continue;
        size_t j = mix64(ev->aux) & (m->cap - 1);
        while (m->keys[j] && m->keys[j] != ev->aux)
            j = (j + 1) & (m->cap - 1);
        if (!m->keys[j]) { /* a duplicate id (damaged file): the first wins */
            m->keys[j] = ev->aux;
            m->idx[j] = (uint32_t)i;
        }
    }
    return 0;
}

static const gs_event *range_find(const range_map *m, const gs_evlist *l, uint64_t id)
{
    if (!id)
        return NULL;
    size_t j = mix64(id) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == id)
            return &l->ev[m->idx[j]];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Metrics sorted by (aux, range_id, level, name): a kernel finds its own with
 * (correlation id, launching range, kernel scope), an op with (0, its range
 * id, op scope). */
static int by_metric_key(const void *x, const void *y)
{
    const gs_event *a = *(const gs_event *const *)x, *b = *(const gs_event *const *)y;
    if (a->aux != b->aux)
        return a->aux < b->aux ? -1 : 1;
    if (a->range_id != b->range_id)
        return a->range_id < b->range_id ? -1 : 1;
    if (a->level != b->level)
        return a->level < b->level ? -1 : 1;
    if (a->name != b->name)
        return a->name < b->name ? -1 : 1;
    return a->t_ns < b->t_ns ? -1 : a->t_ns > b->t_ns;
}

typedef struct metric_index {
    const gs_event **m;
    size_t n;
} metric_index;

static int metric_index_build(metric_index *mi, const gs_evlist *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->ev[i].kind == GS_EV_METRIC;
    mi->n = 0;
    mi->m = malloc((n ? n : 1) * sizeof *mi->m);
    if (!mi->m)
        return -1;
    for (size_t i = 0; i < l->n; i++)
        if (l->ev[i].kind == GS_EV_METRIC)
            mi->m[mi->n++] = &l->ev[i];
    if (mi->n > 1)
        qsort(mi->m, mi->n, sizeof *mi->m, by_metric_key);
    return 0;
}

/* The metrics of (aux, range_id, level): [*first, returned end). */
static size_t metric_find(const metric_index *mi, uint64_t aux, uint64_t range_id, int level, size_t *first)
{
    size_t lo = 0, hi = mi->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const gs_event *e = mi->m[mid];
        int less = e->aux != aux ? e->aux < aux : e->range_id != range_id ? e->range_id < range_id : e->level < level;
        if (less)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    hi = lo;
    while (hi < mi->n && mi->m[hi]->aux == aux && mi->m[hi]->range_id == range_id && mi->m[hi]->level == level)
        hi++;
    return hi;
}

/* ---- names: JSON-escaped once per string id ---- */

typedef struct names {
    gs_event_store *s;
    uint32_t n;
    uint32_t *off, *len; /* into text; len 0: not escaped yet */
    uint8_t *dram;       /* 0 unknown, 1 other, 2 dram__bytes.sum (total), 3 dram__bytes_*.sum (a part) */
    char *text;
    size_t used, cap;
    int oom;
} names;

static int names_init(names *nm, gs_event_store *s)
{
    memset(nm, 0, sizeof *nm);
    nm->s = s;
    nm->n = gs_store_n_strings(s);
    nm->off = calloc(nm->n + 1, sizeof *nm->off);
    nm->len = calloc(nm->n + 1, sizeof *nm->len);
    nm->dram = calloc(nm->n + 1, 1);
    return nm->off && nm->len && nm->dram ? 0 : -1;
}

static void names_free(names *nm)
{
    free(nm->off);
    free(nm->len);
    free(nm->dram);
    free(nm->text);
}

/* Escapes into nm->text; returns the quoted JSON string. */
static const char *name_json(names *nm, uint32_t id, size_t *len)
{
    static const char unknown[] = "\"?\"";
    if (id >= nm->n || nm->oom) {
        *len = sizeof unknown - 1;
        return unknown;
    }
    if (!nm->len[id]) {
        const unsigned char *p = (const unsigned char *)gs_store_string(nm->s, id);
        size_t need = strlen((const char *)p) * 6 + 2;
        if (nm->used + need > nm->cap) {
            size_t cap = nm->cap ? nm->cap : 1 << 16;
            while (cap < nm->used + need)
                cap *= 2;
            char *t = realloc(nm->text, cap);
            if (!t) {
                nm->oom = 1;
                *len = sizeof unknown - 1;
                return unknown;
            }
            nm->text = t;
            nm->cap = cap;
        }
        char *q = nm->text + nm->used;
        size_t k = 0;
        q[k++] = '"';
        for (; *p; p++) {
            if (*p == '"' || *p == '\\') {
                q[k++] = '\\';
                q[k++] = (char)*p;
            } else if (*p >= 0x7f) {
                q[k++] = '?'; /* untrusted names: never emit invalid UTF-8 */
            } else if (*p < 0x20) {
                static const char hex[] = "0123456789abcdef";
                memcpy(q + k, "\\u00", 4);
                q[k + 4] = hex[*p >> 4];
                q[k + 5] = hex[*p & 15];
                k += 6;
            } else {
                q[k++] = (char)*p;
            }
        }
        q[k++] = '"';
        nm->off[id] = (uint32_t)nm->used;
        nm->len[id] = (uint32_t)k;
        nm->used += k;
    }
    *len = nm->len[id];
    return nm->text + nm->off[id];
}

static void put_name(gs_outfile *o, names *nm, uint32_t id)
{
    size_t len;
    const char *p = name_json(nm, id, &len);
    gs_out_write(o, p, len);
}

/* DRAM byte counts among the metrics, by the Nsight Compute names CUPTI's
 * profiling API uses: dram__bytes.sum is the total; dram__bytes_read.sum and
 * dram__bytes_write.sum (any dram__bytes_*.sum) are parts of it. */
static int dram_class(names *nm, uint32_t id)
{
    if (id >= nm->n)
        return 1;
    if (!nm->dram[id]) {
        const char *s = gs_store_string(nm->s, id);
        size_t n = strlen(s);
        int sum = n > 4 && strcmp(s + n - 4, ".sum") == 0;
        nm->dram[id] = !sum ? 1 : strcmp(s, "dram__bytes.sum") == 0 ? 2 : strncmp(s, "dram__bytes_", 12) == 0 ? 3 : 1;
    }
    return nm->dram[id];
}

/* ---- the writer ---- */

typedef struct chrome {
    gs_outfile *o;
    names nm;
    range_map ranges;
    metric_index metrics;
    const gs_evlist *l;
    uint64_t t0;
    int pid;
    uint64_t *next_flow;
    uint64_t unattached; /* metrics that matched no kernel or op */
    uint64_t attached;
} chrome;

static const char *level_cat(int level)
{
    return level == 0 ? "step" : level == 1 ? "layer" : "op";
}

static const char *copy_kind(int level)
{
    return level == GS_COPY_HTOD ? "HtoD" : level == GS_COPY_DTOH ? "DtoH" : level == GS_COPY_DTOD ? "DtoD" : "other";
}

static const char *sync_kind(int level)
{
    return level == GS_SYNC_EVENT ? "event" : level == GS_SYNC_STREAM ? "stream" : level == GS_SYNC_CONTEXT ? "context" : "other";
}

/* ,\n{"ph":"<ph>","pid":P,"tid":T,"ts":TS */
static void head(chrome *c, const char *ph_lit, size_t ph_len, uint32_t tid, uint64_t t_ns)
{
    gs_outfile *o = c->o;
    gs_out_write(o, ph_lit, ph_len);
    gs_out_lit(o, ",\"pid\":");
    gs_out_i64(o, c->pid);
    gs_out_lit(o, ",\"tid\":");
    gs_out_u64(o, tid);
    gs_out_lit(o, ",\"ts\":");
    gs_out_us(o, t_ns - c->t0);
}
#define HEAD(c, lit, tid, t) head((c), lit, sizeof(lit) - 1, (tid), (t))

static void thread_meta(chrome *c, uint32_t track)
{
    gs_outfile *o = c->o;
    char nm[48];
    if (track == GS_TRACK_HOST)
        snprintf(nm, sizeof nm, "host thread (engine)");
    else if (track >= GS_TRACK_STREAM0)
        snprintf(nm, sizeof nm, "stream %u", track - GS_TRACK_STREAM0);
    else
        snprintf(nm, sizeof nm, "thread %u", track);
    HEAD(c, ",\n{\"ph\":\"M\",\"name\":\"thread_name\"", track, c->t0);
    gs_out_lit(o, ",\"args\":{\"name\":\"");
    gs_out_write(o, nm, strlen(nm));
    gs_out_lit(o, "\"}}");
    /* Host first, then streams by id, then anything else. */
    uint64_t sort = track == GS_TRACK_HOST ? 0 : track >= GS_TRACK_STREAM0 ? 1 + (uint64_t)(track - GS_TRACK_STREAM0)
                                                                           : (1ull << 32) + track;
    HEAD(c, ",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\"", track, c->t0);
    gs_out_lit(o, ",\"args\":{\"sort_index\":");
    gs_out_u64(o, sort);
    gs_out_lit(o, "}}");
}

/* "metrics":{...} for [first, end), each name once; returns DRAM bytes (< 0: none). */
static double put_metrics(chrome *c, size_t first, size_t end)
{
    gs_outfile *o = c->o;
    double total = -1, parts = 0;
    int have_parts = 0;
    gs_out_lit(o, ",\"metrics\":{");
    uint32_t prev = GS_STORE_NO_ID;
    int n = 0;
    for (size_t i = first; i < end; i++) {
        const gs_event *m = c->metrics.m[i];
        if (m->name == prev)
            continue; /* repeated samples of one metric: the first stands */
        prev = m->name;
        if (n++)
            gs_out_lit(o, ",");
        put_name(o, &c->nm, m->name);
        gs_out_lit(o, ":");
        gs_out_num(o, m->value);
        int cls = dram_class(&c->nm, m->name);
        if (cls == 2 && m->value == m->value)
            total = m->value;
        else if (cls == 3 && m->value == m->value) {
            parts += m->value;
            have_parts = 1;
        }
    }
    gs_out_lit(o, "}");
    c->attached += end - first;
    return total >= 0 ? total : have_parts ? parts : -1;
}

static void put_rate(gs_outfile *o, double bytes, uint64_t dur_ns)
{
    gs_out_lit(o, ",\"bytes\":");
    gs_out_num(o, bytes);
    if (dur_ns > 0) {
        gs_out_lit(o, ",\"GB/s\":");
        gs_out_fixed3(o, bytes / (double)dur_ns); /* bytes per ns = GB/s */
    }
}

static void put_range(chrome *c, const gs_event *ev)
{
    gs_outfile *o = c->o;
    HEAD(c, ",\n{\"ph\":\"X\"", ev->track, ev->t_ns);
    gs_out_lit(o, ",\"dur\":");
    gs_out_us(o, ev->dur_ns);
    gs_out_lit(o, ",\"cat\":\"");
    const char *cat = level_cat(ev->level);
    gs_out_write(o, cat, strlen(cat));
    gs_out_lit(o, "\",\"name\":");
    size_t len;
    const char *nm = name_json(&c->nm, ev->name, &len);
    if (ev->level == GS_RANGE_LAYER && ev->layer >= 0) { /* "layer 3" */
        gs_out_write(o, nm, len - 1);
        gs_out_lit(o, " ");
        gs_out_i64(o, ev->layer);
        gs_out_lit(o, "\"");
    } else {
        gs_out_write(o, nm, len);
    }
    gs_out_lit(o, ",\"args\":{\"step\":");
    gs_out_i64(o, ev->step);
    if (ev->layer >= 0) {
        gs_out_lit(o, ",\"layer\":");
        gs_out_i64(o, ev->layer);
    }
    if (ev->level == GS_RANGE_OP && c->metrics.n) {
        size_t first, end = metric_find(&c->metrics, 0, ev->aux, GS_METRIC_OP, &first);
        if (end > first) {
            double bytes = put_metrics(c, first, end);
            if (bytes >= 0) { /* no rate: the op's host time is not when its bytes moved */
                gs_out_lit(o, ",\"bytes\":");
                gs_out_num(o, bytes);
            }
        }
    }
    gs_out_lit(o, "}}");
}

static void put_device(chrome *c, const gs_event *ev)
{
    gs_outfile *o = c->o;
    const gs_event *r = range_find(&c->ranges, c->l, ev->range_id);
    HEAD(c, ",\n{\"ph\":\"X\"", ev->track, ev->t_ns);
    gs_out_lit(o, ",\"dur\":");
    gs_out_us(o, ev->dur_ns);
    if (ev->kind == GS_EV_KERNEL)
        gs_out_lit(o, ",\"cat\":\"kernel\",\"name\":");
    else if (ev->kind == GS_EV_MEMCPY)
        gs_out_lit(o, ",\"cat\":\"memcpy\",\"name\":");
    else
        gs_out_lit(o, ",\"cat\":\"memset\",\"name\":");
    put_name(o, &c->nm, ev->name);
    gs_out_lit(o, ",\"args\":{\"correlation\":");
    gs_out_u64(o, ev->aux);
    if (ev->kind == GS_EV_KERNEL) {
        const gs_event_launch *la = &ev->u.launch;
        gs_out_lit(o, ",\"grid\":[");
        gs_out_u64(o, la->grid[0]);
        gs_out_lit(o, ",");
        gs_out_u64(o, la->grid[1]);
        gs_out_lit(o, ",");
        gs_out_u64(o, la->grid[2]);
        gs_out_lit(o, "],\"block\":[");
        gs_out_u64(o, la->block[0]);
        gs_out_lit(o, ",");
        gs_out_u64(o, la->block[1]);
        gs_out_lit(o, ",");
        gs_out_u64(o, la->block[2]);
        gs_out_lit(o, "],\"registers\":");
        gs_out_u64(o, la->registers);
        gs_out_lit(o, ",\"shared_bytes\":");
        gs_out_u64(o, la->shared_bytes);
        size_t first = 0, end = c->metrics.n ? metric_find(&c->metrics, ev->aux, ev->range_id, GS_METRIC_KERNEL, &first) : 0;
        if (c->metrics.n && end > first) {
            double bytes = put_metrics(c, first, end);
            if (bytes >= 0)
                put_rate(o, bytes, ev->dur_ns);
        }
    } else {
        if (ev->kind == GS_EV_MEMCPY) {
            gs_out_lit(o, ",\"kind\":\"");
            const char *k = copy_kind(ev->level);
            gs_out_write(o, k, strlen(k));
            gs_out_lit(o, "\"");
        }
        put_rate(o, ev->value, ev->dur_ns);
    }
    if (r) {
        gs_out_lit(o, ",\"op\":");
        put_name(o, &c->nm, r->name);
        if (r->layer >= 0) {
            gs_out_lit(o, ",\"layer\":");
            gs_out_i64(o, r->layer);
        }
    }
    gs_out_lit(o, ",\"step\":");
    gs_out_i64(o, ev->step);
    gs_out_lit(o, "}}");
    if (!r)
        return;
    /* The flow: from the middle of the launching range (where no sibling
     * range can be) to the middle of the device record (bp e: bound to the
     * slice that encloses it, not the next one). */
    uint64_t id = ++*c->next_flow;
    HEAD(c, ",\n{\"ph\":\"s\",\"cat\":\"launch\",\"name\":\"launch\"", r->track, r->t_ns + r->dur_ns / 2);
    gs_out_lit(o, ",\"id\":");
    gs_out_u64(o, id);
    gs_out_lit(o, "}");
    HEAD(c, ",\n{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"launch\",\"name\":\"launch\"", ev->track, ev->t_ns + ev->dur_ns / 2);
    gs_out_lit(o, ",\"id\":");
    gs_out_u64(o, id);
    gs_out_lit(o, "}");
}

static void put_sync(chrome *c, const gs_event *ev)
{
    gs_outfile *o = c->o;
    HEAD(c, ",\n{\"ph\":\"X\",\"cat\":\"sync\"", ev->track, ev->t_ns);
    gs_out_lit(o, ",\"dur\":");
    gs_out_us(o, ev->dur_ns);
    gs_out_lit(o, ",\"name\":");
    put_name(o, &c->nm, ev->name);
    gs_out_lit(o, ",\"args\":{\"kind\":\"");
    const char *k = sync_kind(ev->level);
    gs_out_write(o, k, strlen(k));
    gs_out_lit(o, "\",\"step\":");
    gs_out_i64(o, ev->step);
    gs_out_lit(o, "}}");
}

static void put_counter(chrome *c, const gs_event *ev)
{
    gs_outfile *o = c->o;
    HEAD(c, ",\n{\"ph\":\"C\"", 0, ev->t_ns);
    gs_out_lit(o, ",\"name\":");
    put_name(o, &c->nm, ev->name);
    gs_out_lit(o, ",\"args\":{\"value\":");
    gs_out_num(o, ev->value);
    gs_out_lit(o, "}}");
}

static void put_marker(chrome *c, const gs_event *ev)
{
    gs_outfile *o = c->o;
    HEAD(c, ",\n{\"ph\":\"i\",\"s\":\"p\"", 0, ev->t_ns);
    gs_out_lit(o, ",\"name\":");
    put_name(o, &c->nm, ev->name);
    gs_out_lit(o, ",\"args\":{\"step\":");
    gs_out_i64(o, ev->step);
    gs_out_lit(o, ",\"value\":");
    gs_out_num(o, ev->value);
    gs_out_lit(o, "}}");
}

/* KV-cache snapshots: the runs of one snapshot (same track, time and step,
 * consecutive in the sorted list) become one counter event with the blocks
 * used and free. The block map itself (which sequence owns which block) is a
 * two-dimensional picture that the KV view draws and a counter track cannot;
 * the summary still shows occupancy in traces recorded without the engine's
 * kv.* counters. Returns the index of the snapshot's last run. */
static size_t put_kv(chrome *c, size_t i)
{
    const gs_event *first = &c->l->ev[i];
    uint64_t used = 0, free_blocks = 0;
    size_t j = i;
    for (; j < c->l->n; j++) {
        const gs_event *ev = &c->l->ev[j];
        if (ev->kind != GS_EV_KV_BLOCKS || ev->track != first->track || ev->t_ns != first->t_ns || ev->step != first->step)
            break;
        if (ev->u.kv.seq < 0)
            free_blocks += ev->u.kv.n_blocks;
        else
            used += ev->u.kv.n_blocks;
    }
    gs_outfile *o = c->o;
    HEAD(c, ",\n{\"ph\":\"C\",\"name\":\"kv.snapshot blocks\"", 0, first->t_ns);
    gs_out_lit(o, ",\"args\":{\"used\":");
    gs_out_u64(o, used);
    gs_out_lit(o, ",\"free\":");
    gs_out_u64(o, free_blocks);
    gs_out_lit(o, "}}");
    return j - 1;
}

static int has_track(int kind)
{
    return kind == GS_EV_RANGE || kind == GS_EV_KERNEL || kind == GS_EV_MEMCPY || kind == GS_EV_MEMSET ||
           kind == GS_EV_SYNC;
}

static void put_source(chrome *c, const gs_export_info *info, int first_in_file)
{
    gs_outfile *o = c->o;
    const char *pname = info && info->process_name ? info->process_name : info && info->device ? info->device : "gptscope";
    static const char pn[] = ",\n{\"ph\":\"M\",\"name\":\"process_name\"";
    int skip = first_in_file ? 1 : 0; /* the file's first event has no comma before it */
    head(c, pn + skip, sizeof pn - 1 - (size_t)skip, 0, c->t0);
    gs_out_lit(o, ",\"args\":{\"name\":");
    gs_out_json_string(o, pname);
    gs_out_lit(o, "}}");
    HEAD(c, ",\n{\"ph\":\"M\",\"name\":\"process_sort_index\"", 0, c->t0);
    gs_out_lit(o, ",\"args\":{\"sort_index\":");
    gs_out_i64(o, c->pid);
    gs_out_lit(o, "}}");
    uint32_t prev_track = UINT32_MAX;
    for (size_t i = 0; i < c->l->n; i++) {
        const gs_event *ev = &c->l->ev[i];
        if (has_track(ev->kind) && ev->track != prev_track) {
            thread_meta(c, ev->track);
            prev_track = ev->track;
        }
        switch (ev->kind) {
        case GS_EV_RANGE:
            put_range(c, ev);
            break;
        case GS_EV_KERNEL:
        case GS_EV_MEMCPY:
        case GS_EV_MEMSET:
            put_device(c, ev);
            break;
        case GS_EV_SYNC:
            put_sync(c, ev);
            break;
        case GS_EV_COUNTER:
            put_counter(c, ev);
            break;
        case GS_EV_MARKER:
            put_marker(c, ev);
            break;
        case GS_EV_KV_BLOCKS:
            i = put_kv(c, i);
            break;
        default: /* metrics: written as arguments of what they measured */
            break;
        }
    }
}

int gs_export_chrome_multi(gs_event_store *const *stores, const gs_export_info *infos, int n, const char *path,
                           gs_error *err)
{
    gs_evlist *lists = calloc(n > 0 ? (size_t)n : 1, sizeof *lists);
    if (!lists)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
    int rc = GS_OK;
    uint64_t t0 = UINT64_MAX;
    for (int k = 0; k < n && !rc; k++) {
        if (gs_evlist_load(stores[k], &lists[k]))
            rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
        else if (lists[k].n && lists[k].t0 < t0)
            t0 = lists[k].t0; /* one clock for all: configurations measured in one run line up */
    }
    if (t0 == UINT64_MAX)
        t0 = 0;
    size_t len = strlen(path);
    gs_outfile *o = malloc(sizeof *o);
    if (!rc && !o)
        rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
    if (!rc)
        rc = gs_out_open(o, path, len > 3 && strcmp(path + len - 3, ".gz") == 0, err);
    if (rc) {
        for (int k = 0; k < n; k++)
            gs_evlist_free(&lists[k]);
        free(lists);
        free(o);
        return rc;
    }
    gs_out_lit(o, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    uint64_t next_flow = 0, unattached = 0;
    for (int k = 0; k < n && !rc; k++) {
        chrome c;
        memset(&c, 0, sizeof c);
        c.o = o;
        c.l = &lists[k];
        c.t0 = t0;
        c.pid = infos && infos[k].pid > 0 ? infos[k].pid : k + 1;
        c.next_flow = &next_flow;
        if (names_init(&c.nm, stores[k]) || range_map_build(&c.ranges, c.l) || metric_index_build(&c.metrics, c.l))
            rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
        else
            put_source(&c, infos ? &infos[k] : NULL, k == 0);
        if (!rc && c.nm.oom)
            rc = gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
        unattached += c.metrics.n - c.attached;
        names_free(&c.nm);
        free(c.ranges.keys);
        free(c.ranges.idx);
        free(c.metrics.m);
        gs_evlist_free(&lists[k]);
    }
    gs_out_lit(o, "\n],\"otherData\":{\"generator\":\"gptscope\",\"device\":");
    gs_out_json_string(o, n > 0 && infos && infos[0].device ? infos[0].device : "");
    gs_out_lit(o, ",\"unattached_metrics\":");
    gs_out_u64(o, unattached);
    gs_out_lit(o, "}}\n");
    for (int k = 0; k < n; k++)
        gs_evlist_free(&lists[k]);
    free(lists);
    int crc = gs_out_close(o, err);
    free(o);
    return rc ? rc : crc;
}

int gs_export_chrome(gs_event_store *s, const gs_export_info *info, const char *path, gs_error *err)
{
    return gs_export_chrome_multi(&s, info, 1, path, err);
}
