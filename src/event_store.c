/* event_store.c - blocks of events published with release/acquire, an
 * interned string table read without locks, and the engine's collectors. */
#include "event_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "kv_cache.h"

#define BLOCK_EVENTS 4096
#define STR_PAGE 1024
#define STR_PAGES 4096 /* 4M strings: the page table never moves, so readers need no lock */

typedef struct block {
    gs_event ev[BLOCK_EVENTS];
    /* Summaries read only for blocks wholly below a reader's acquired count. */
    int64_t min_step, max_step;
    uint64_t min_t, max_end;
} block;

struct gs_event_store {
    int window_steps;
    pthread_rwlock_t lock;       /* guards blocks[] and first_block */
    block **blocks;              /* blocks[i] holds absolute block first_block + i */
    size_t n_blocks, cap_blocks;
    uint64_t first_block;
    _Atomic uint64_t count;      /* published events (absolute) */
    _Atomic uint64_t first;      /* oldest kept event (absolute) */
    _Atomic uint64_t dropped;
    int64_t last_step;
    /* strings */
    char **str_pages[STR_PAGES];
    _Atomic uint32_t n_strings;
    uint32_t *hash;              /* open addressing: id + 1, 0 empty (writer only) */
    size_t hash_cap;
};

gs_event_store *gs_store_create(int window_steps)
{
    gs_event_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->window_steps = window_steps > 0 ? window_steps : 0;
    s->last_step = INT64_MIN;
    if (pthread_rwlock_init(&s->lock, NULL)) {
        free(s);
        return NULL;
    }
    return s;
}

void gs_store_destroy(gs_event_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_blocks; i++)
        free(s->blocks[i]);
    free(s->blocks);
    uint32_t n = atomic_load(&s->n_strings);
    for (uint32_t i = 0; i < n; i++)
        free(s->str_pages[i / STR_PAGE][i % STR_PAGE]);
    for (int p = 0; p < STR_PAGES; p++)
        free(s->str_pages[p]);
    free(s->hash);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

/* ---- strings ---- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static const char *str_at(const gs_event_store *s, uint32_t id)
{
    return s->str_pages[id / STR_PAGE][id % STR_PAGE];
}

static int hash_grow(gs_event_store *s)
{
    size_t cap = s->hash_cap ? s->hash_cap * 2 : 256;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return -1;
    uint32_t n = atomic_load_explicit(&s->n_strings, memory_order_relaxed);
    for (uint32_t id = 0; id < n; id++) {
        const char *str = str_at(s, id);
        size_t i = hash_bytes(str, strlen(str)) & (cap - 1);
        while (h[i])
            i = (i + 1) & (cap - 1);
        h[i] = id + 1;
    }
    free(s->hash);
    s->hash = h;
    s->hash_cap = cap;
    return 0;
}

uint32_t gs_store_intern_n(gs_event_store *s, const char *str, size_t len)
{
    uint32_t n = atomic_load_explicit(&s->n_strings, memory_order_relaxed);
    if ((size_t)(n + 1) * 2 > s->hash_cap && hash_grow(s))
        return GS_STORE_NO_ID;
    size_t i = hash_bytes(str, len) & (s->hash_cap - 1);
    while (s->hash[i]) {
        const char *have = str_at(s, s->hash[i] - 1);
        if (strncmp(have, str, len) == 0 && have[len] == '\0')
            return s->hash[i] - 1;
        i = (i + 1) & (s->hash_cap - 1);
    }
    if (n >= (uint32_t)STR_PAGE * STR_PAGES)
        return GS_STORE_NO_ID;
    char ***page = &s->str_pages[n / STR_PAGE];
    if (!*page && !(*page = calloc(STR_PAGE, sizeof **page)))
        return GS_STORE_NO_ID;
    char *copy = malloc(len + 1);
    if (!copy)
        return GS_STORE_NO_ID;
    memcpy(copy, str, len);
    copy[len] = '\0';
    (*page)[n % STR_PAGE] = copy;
    s->hash[i] = n + 1;
    atomic_store_explicit(&s->n_strings, n + 1, memory_order_release);
    return n;
}

uint32_t gs_store_intern(gs_event_store *s, const char *str) { return gs_store_intern_n(s, str, strlen(str)); }

uint32_t gs_store_n_strings(const gs_event_store *s)
{
    return atomic_load_explicit(&((gs_event_store *)s)->n_strings, memory_order_acquire);
}

const char *gs_store_string(const gs_event_store *s, uint32_t id)
{
    if (id >= gs_store_n_strings(s))
        return "?";
    return str_at(s, id);
}

/* ---- events ---- */

uint64_t gs_store_count(const gs_event_store *s)
{
    return atomic_load_explicit(&((gs_event_store *)s)->count, memory_order_acquire);
}

uint64_t gs_store_first(const gs_event_store *s)
{
    return atomic_load_explicit(&((gs_event_store *)s)->first, memory_order_acquire);
}

uint64_t gs_store_dropped(const gs_event_store *s)
{
    return atomic_load_explicit(&((gs_event_store *)s)->dropped, memory_order_relaxed);
}

/* Under the write lock: drop whole blocks older than the window, then add one. */
static int add_block(gs_event_store *s)
{
    block *b = malloc(sizeof *b);
    if (!b)
        return -1;
    b->min_step = INT64_MAX;
    b->max_step = INT64_MIN;
    b->min_t = UINT64_MAX;
    b->max_end = 0;
    pthread_rwlock_wrlock(&s->lock);
    if (s->window_steps > 0 && s->last_step != INT64_MIN) {
        size_t drop = 0;
        while (drop < s->n_blocks && s->blocks[drop]->max_step <= s->last_step - s->window_steps)
            drop++;
        if (drop) {
            for (size_t i = 0; i < drop; i++)
                free(s->blocks[i]);
            memmove(s->blocks, s->blocks + drop, (s->n_blocks - drop) * sizeof *s->blocks);
            s->n_blocks -= drop;
            s->first_block += drop;
            atomic_store_explicit(&s->first, s->first_block * BLOCK_EVENTS, memory_order_release);
        }
    }
    if (s->n_blocks == s->cap_blocks) {
        size_t cap = s->cap_blocks ? s->cap_blocks * 2 : 16;
        block **nb = realloc(s->blocks, cap * sizeof *nb);
        if (!nb) {
            pthread_rwlock_unlock(&s->lock);
            free(b);
            return -1;
        }
        s->blocks = nb;
        s->cap_blocks = cap;
    }
    s->blocks[s->n_blocks++] = b;
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

int gs_store_append(gs_event_store *s, const gs_event *ev)
{
    uint64_t n = atomic_load_explicit(&s->count, memory_order_relaxed);
    if (n % BLOCK_EVENTS == 0 && add_block(s)) {
        atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
        return -1;
    }
    /* Only this thread changes blocks[]; reading it without the lock is safe here. */
    block *b = s->blocks[n / BLOCK_EVENTS - s->first_block];
    b->ev[n % BLOCK_EVENTS] = *ev;
    if (ev->step < b->min_step)
        b->min_step = ev->step;
    if (ev->step > b->max_step)
        b->max_step = ev->step;
    if (ev->t_ns < b->min_t)
        b->min_t = ev->t_ns;
    if (ev->t_ns + ev->dur_ns > b->max_end)
        b->max_end = ev->t_ns + ev->dur_ns;
    if (ev->step > s->last_step)
        s->last_step = ev->step;
    atomic_store_explicit(&s->count, n + 1, memory_order_release);
    return 0;
}

typedef int (*block_filter)(const block *b, const void *arg);

static uint64_t walk(gs_event_store *s, uint64_t from, uint64_t to, block_filter keep, const void *arg,
                     int (*match)(const gs_event *, const void *), gs_store_visit_fn fn, void *ctx)
{
    uint64_t visited = 0;
    uint64_t count = gs_store_count(s);
    if (to > count)
        to = count;
    pthread_rwlock_rdlock(&s->lock);
    uint64_t first = s->first_block * BLOCK_EVENTS;
    if (from < first)
        from = first;
    int stop = 0;
    for (uint64_t i = from; i < to && !stop;) {
        const block *b = s->blocks[i / BLOCK_EVENTS - s->first_block];
        uint64_t block_end = (i / BLOCK_EVENTS + 1) * BLOCK_EVENTS;
        /* A block's summary is complete only when the whole block is published. */
        if (keep && block_end <= count && !keep(b, arg)) {
            i = block_end;
            continue;
        }
        for (; i < to && i < block_end; i++) {
            const gs_event *ev = &b->ev[i % BLOCK_EVENTS];
            if (match && !match(ev, arg))
                continue;
            visited++;
            if (fn(ctx, i, ev)) {
                stop = 1;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return visited;
}

uint64_t gs_store_visit(gs_event_store *s, uint64_t from, uint64_t to, gs_store_visit_fn fn, void *ctx)
{
    return walk(s, from, to, NULL, NULL, NULL, fn, ctx);
}

typedef struct { uint64_t t0, t1; } trange;
static int block_in_time(const block *b, const void *arg)
{
    const trange *r = arg;
    return b->min_t < r->t1 && b->max_end >= r->t0;
}
static int ev_in_time(const gs_event *ev, const void *arg)
{
    const trange *r = arg;
    return ev->t_ns < r->t1 && ev->t_ns + ev->dur_ns >= r->t0;
}

uint64_t gs_store_query_time(gs_event_store *s, uint64_t t0, uint64_t t1, gs_store_visit_fn fn, void *ctx)
{
    trange r = {t0, t1};
    return walk(s, 0, UINT64_MAX, block_in_time, &r, ev_in_time, fn, ctx);
}

typedef struct { int64_t s0, s1; } srange;
static int block_in_steps(const block *b, const void *arg)
{
    const srange *r = arg;
    return b->min_step <= r->s1 && b->max_step >= r->s0;
}
static int ev_in_steps(const gs_event *ev, const void *arg)
{
    const srange *r = arg;
    return ev->step >= r->s0 && ev->step <= r->s1;
}

uint64_t gs_store_query_steps(gs_event_store *s, int64_t s0, int64_t s1, gs_store_visit_fn fn, void *ctx)
{
    srange r = {s0, s1};
    return walk(s, 0, UINT64_MAX, block_in_steps, &r, ev_in_steps, fn, ctx);
}

/* ---- collectors ---- */

static uint32_t cached_name(gs_store_ranges *r, const char *name)
{
    size_t slot = ((uintptr_t)name >> 3) % 32;
    if (r->name_cache[slot].ptr == name)
        return r->name_cache[slot].id;
    uint32_t id = gs_store_intern(r->store, name);
    if (id != GS_STORE_NO_ID) {
        r->name_cache[slot].ptr = name;
        r->name_cache[slot].id = id;
    }
    return id;
}

static void sink_begin(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    gs_store_ranges *r = ctx;
    if (level == GS_RANGE_STEP)
        r->step++;
    if (r->depth < GS_RANGES_MAX_DEPTH)
        r->open_ns[r->depth] = t_ns;
    r->depth++;
}

static void sink_end(void *ctx, gs_range_level level, const char *name, int layer, uint64_t id, uint64_t t_ns)
{
    gs_store_ranges *r = ctx;
    if (r->depth <= 0)
        return;
    r->depth--;
    if (r->depth >= GS_RANGES_MAX_DEPTH)
        return;
    gs_event ev = {0};
    ev.kind = GS_EV_RANGE;
    ev.level = (uint8_t)level;
    ev.name = cached_name(r, name);
    ev.layer = layer;
    ev.track = r->track;
    ev.step = r->step;
    ev.t_ns = r->open_ns[r->depth];
    ev.dur_ns = t_ns >= ev.t_ns ? t_ns - ev.t_ns : 0;
    ev.aux = id;
    if (ev.name != GS_STORE_NO_ID)
        gs_store_append(r->store, &ev);
}

void gs_store_ranges_init(gs_store_ranges *r, gs_event_store *store, int64_t first_step)
{
    memset(r, 0, sizeof *r);
    r->store = store;
    r->track = GS_TRACK_HOST;
    r->step = first_step - 1;
}

gs_range_sink gs_store_ranges_sink(gs_store_ranges *r)
{
    gs_range_sink sink = {sink_begin, sink_end, r};
    return sink;
}

static int counter(gs_event_store *s, const char *name, int64_t step, uint64_t t_ns, double v)
{
    gs_event ev = {0};
    ev.kind = GS_EV_COUNTER;
    ev.name = gs_store_intern(s, name);
    ev.layer = -1;
    ev.step = step;
    ev.t_ns = t_ns;
    ev.value = v;
    if (ev.name == GS_STORE_NO_ID)
        return -1;
    return gs_store_append(s, &ev);
}

int gs_store_append_engine_counters(gs_event_store *s, const gs_engine *e, int64_t step, uint64_t t_ns)
{
    gs_kv_stats kv;
    kv_cache_stats(&e->kv, &kv);
    const gs_step_info *st = &e->last;
    double tps = st->ns ? (double)st->n_tokens * 1e9 / (double)st->ns : 0.0;
    int rc = 0;
    rc |= counter(s, "tokens/s", step, t_ns, tps);
    rc |= counter(s, "step.tokens", step, t_ns, st->n_tokens);
    /* The batch composition, so a trace alone can be run through op_cost.h. */
    rc |= counter(s, "step.seqs", step, t_ns, (double)st->batch.n_seqs);
    rc |= counter(s, "step.prefill_tokens", step, t_ns, st->n_prefill_tokens);
    rc |= counter(s, "step.decode_tokens", step, t_ns, st->n_decode_tokens);
    rc |= counter(s, "step.logits", step, t_ns, (double)st->batch.n_logits);
    rc |= counter(s, "step.ids", step, t_ns, (double)st->batch.n_ids);
    rc |= counter(s, "step.attn_pairs", step, t_ns, (double)st->batch.attn_pairs);
    rc |= counter(s, "step.attn_ctx", step, t_ns, (double)st->batch.attn_keys);
    rc |= counter(s, "kv.blocks_used", step, t_ns, kv.blocks_used);
    rc |= counter(s, "kv.blocks_free", step, t_ns, kv.blocks_free);
    rc |= counter(s, "kv.fragmentation", step, t_ns, kv.fragmentation);
    rc |= counter(s, "engine.running", step, t_ns, e->n_running);
    rc |= counter(s, "engine.waiting", step, t_ns, e->n_waiting);
    return rc ? -1 : 0;
}

int gs_store_append_kv_snapshot(gs_event_store *s, const gs_kv_cache *kv, int64_t step, uint64_t t_ns)
{
    gs_event ev = {0};
    ev.kind = GS_EV_KV_BLOCKS;
    ev.name = gs_store_intern(s, "kv.blocks");
    ev.layer = -1;
    ev.step = step;
    ev.t_ns = t_ns;
    if (ev.name == GS_STORE_NO_ID)
        return -1;
    int rc = 0;
    for (int b = 0; b < kv->n_blocks;) {
        int owner = kv->block_owner[b], e = b + 1;
        while (e < kv->n_blocks && kv->block_owner[e] == owner)
            e++;
        ev.u.kv.first_block = (uint32_t)b;
        ev.u.kv.n_blocks = (uint32_t)(e - b);
        ev.u.kv.seq = owner < 0 ? -1 : owner;
        ev.u.kv.total_blocks = (uint32_t)kv->n_blocks;
        rc |= gs_store_append(s, &ev);
        b = e;
    }
    return rc ? -1 : 0;
}

int gs_store_append_marker(gs_event_store *s, const char *name, int64_t step, uint64_t t_ns, double value)
{
    gs_event ev = {0};
    ev.kind = GS_EV_MARKER;
    ev.name = gs_store_intern(s, name);
    ev.layer = -1;
    ev.step = step;
    ev.t_ns = t_ns;
    ev.value = value;
    if (ev.name == GS_STORE_NO_ID)
        return -1;
    return gs_store_append(s, &ev);
}
