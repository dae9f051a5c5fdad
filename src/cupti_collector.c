/* cupti_collector.c - CUPTI activity records into the event store.
 *
 * Threads: CUPTI calls buffer_completed on its own worker thread (or on the
 * thread that forces a flush). It parses records into `pending` and fills
 * the correlation map under `lock`; gs_cupti_drain, on the engine thread,
 * resolves each record's launching range and appends it to the store. */
#include "cupti_collector.h"

#include "build_config.h"

#ifndef HAVE_CUDA

int gs_cupti_start(gs_cupti **out, gs_error *err)
{
    *out = NULL;
    return gs_error_set(err, GS_ERR_RUNTIME, "the device timeline needs a CUDA build (this one has no CUDA)");
}
void gs_cupti_push(gs_cupti *c, uint64_t range_id) { (void)c; (void)range_id; }
int gs_cupti_set_tracing(gs_cupti *c, int on) { (void)c; (void)on; return GS_OK; }
void gs_cupti_pop(gs_cupti *c) { (void)c; }
long gs_cupti_drain(gs_cupti *c, gs_event_store *store, gs_range_lookup_fn lookup, void *lookup_ctx, int force)
{
    (void)c; (void)store; (void)lookup; (void)lookup_ctx; (void)force;
    return 0;
}
void gs_cupti_get_stats(const gs_cupti *c, gs_cupti_stats *st)
{
    (void)c;
    *st = (gs_cupti_stats){0};
}
void gs_cupti_stop(gs_cupti *c) { (void)c; }

#else

#include <cupti.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/device.h"
#include "ranges.h"

#define BUFFER_BYTES (4u << 20)
#define CORR_RING (1u << 17)  /* correlation id -> range id; ids climb, so a ring keyed by id suffices */
#define NAME_SLOTS 4096       /* CUPTI name pointer -> our demangled copy */
#define STACK_MAX 16

/* The C++ runtime's demangler (libstdc++ is linked into CUDA builds). */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

typedef struct pending {
    uint8_t kind;        /* gs_event_kind */
    uint8_t level;
    uint32_t stream;
    uint32_t corr;
    uint64_t start, end;
    uint64_t graph_node;
    const char *name;    /* owned by the collector's name table */
    double bytes;
    gs_event_launch launch;
} pending;

struct gs_cupti {
    pthread_mutex_t lock;
    pending *pend;
    size_t n_pend, cap_pend;
    struct { uint32_t corr; uint64_t range; } corr_map[CORR_RING];
    struct { const char *key; char *copy; } names[NAME_SLOTS];
    int n_names;
    gs_cupti_stats st;
    /* engine thread only */
    uint64_t stack[STACK_MAX];
    int depth;
    int64_t clock_offset;  /* CUPTI time - gs_now_ns, when CUPTI would not take our clock */
    int no_correlation;
    int tracing;           /* record kinds enabled now */
    /* drain (engine thread): name pointer -> store id, so the ~150 records of
     * a step do not hash their kernel names again every step */
    const gs_event_store *id_store;
    struct { const char *name; uint32_t id; } id_cache[256];
};

/* CUPTI's callbacks carry no user pointer for buffers: one collector per process. */
static gs_cupti *the_collector;

static uint64_t CUPTIAPI timestamp_now(void) { return gs_now_ns(); }

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    void *p = NULL;
    if (posix_memalign(&p, 8, BUFFER_BYTES))
        p = NULL;
    *buffer = p;
    *size = p ? BUFFER_BYTES : 0;
    *max_records = 0;
}

/* A short readable name: demangled, without the parameter list or a leading
 * return type ("void gemv_f16<4>(...)" -> "gemv_f16<4>"). Called under lock. */
static const char *kernel_name(gs_cupti *c, const char *raw)
{
    if (!raw)
        return "?";
    size_t h = ((uintptr_t)raw >> 4) % NAME_SLOTS;
    for (size_t i = 0; i < NAME_SLOTS; i++) {
        size_t k = (h + i) % NAME_SLOTS;
        if (c->names[k].key == raw)
            return c->names[k].copy;
        if (!c->names[k].key) {
            if (c->n_names >= NAME_SLOTS * 3 / 4)
                break;
            int status = -1;
            char *dem = __cxa_demangle(raw, NULL, NULL, &status);
            const char *src = status == 0 && dem ? dem : raw;
            if (strncmp(src, "void ", 5) == 0)
                src += 5;
            size_t len = strlen(src);
            /* The parameter list starts at the last top-level '(' ... keep it simple:
             * cut at the first '(' that is not inside template brackets. */
            int angle = 0;
            for (size_t j = 0; j < len; j++) {
                if (src[j] == '<')
                    angle++;
                else if (src[j] == '>')
                    angle--;
                else if (src[j] == '(' && angle == 0 && j > 0) {
                    len = j;
                    break;
                }
            }
            char *copy = malloc(len + 1);
            if (copy) {
                memcpy(copy, src, len);
                copy[len] = '\0';
            }
            free(dem);
            if (!copy)
                return "?";
            c->names[k].key = raw;
            c->names[k].copy = copy;
            c->n_names++;
            return copy;
        }
    }
    /* Table full (thousands of distinct kernels): intern by content would be
     * better, but a raw name is still right. */
    return raw;
}

static int push_pending(gs_cupti *c, const pending *p)
{
    if (c->n_pend == c->cap_pend) {
        size_t cap = c->cap_pend ? c->cap_pend * 2 : 4096;
        pending *np = realloc(c->pend, cap * sizeof *np);
        if (!np) {
            c->st.dropped++;
            return -1;
        }
        c->pend = np;
        c->cap_pend = cap;
    }
    c->pend[c->n_pend++] = *p;
    return 0;
}

static uint8_t copy_kind(uint8_t k)
{
    switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return GS_COPY_HTOD;
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return GS_COPY_DTOH;
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return GS_COPY_DTOD;
    default: return GS_COPY_OTHER;
    }
}

static uint8_t sync_kind(uint32_t t)
{
    switch (t) {
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE: return GS_SYNC_EVENT;
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE: return GS_SYNC_STREAM;
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_CONTEXT_SYNCHRONIZE: return GS_SYNC_CONTEXT;
    default: return GS_SYNC_OTHER;
    }
}

static void parse_record(gs_cupti *c, CUpti_Activity *rec)
{
    pending p;
    memset(&p, 0, sizeof p);
    switch (rec->kind) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
    case CUPTI_ACTIVITY_KIND_KERNEL: {
        CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *)rec;
        if (k->start == 0 && k->end == 0)
            return; /* incomplete record */
        p.kind = GS_EV_KERNEL;
        p.stream = k->streamId;
        p.corr = k->correlationId;
        p.start = k->start;
        p.end = k->end;
        p.graph_node = k->graphNodeId;
        p.name = kernel_name(c, k->name);
        p.launch.grid[0] = (uint32_t)k->gridX;
        p.launch.grid[1] = (uint32_t)k->gridY;
        p.launch.grid[2] = (uint32_t)k->gridZ;
        p.launch.block[0] = (uint16_t)k->blockX;
        p.launch.block[1] = (uint16_t)k->blockY;
        p.launch.block[2] = (uint16_t)k->blockZ;
        p.launch.registers = k->registersPerThread;
        p.launch.shared_bytes = (uint32_t)(k->staticSharedMemory + k->dynamicSharedMemory);
        c->st.kernels++;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
        CUpti_ActivityMemcpy6 *m = (CUpti_ActivityMemcpy6 *)rec;
        if (m->start == 0 && m->end == 0)
            return;
        p.kind = GS_EV_MEMCPY;
        p.level = copy_kind(m->copyKind);
        p.stream = m->streamId;
        p.corr = m->correlationId;
        p.start = m->start;
        p.end = m->end;
        p.graph_node = m->graphNodeId;
        p.bytes = (double)m->bytes;
        static const char *const names[] = {"memcpy", "memcpy HtoD", "memcpy DtoH", "memcpy DtoD"};
        p.name = names[p.level];
        c->st.copies++;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
        CUpti_ActivityMemset4 *m = (CUpti_ActivityMemset4 *)rec;
        if (m->start == 0 && m->end == 0)
            return;
        p.kind = GS_EV_MEMSET;
        p.stream = m->streamId;
        p.corr = m->correlationId;
        p.start = m->start;
        p.end = m->end;
        p.graph_node = m->graphNodeId;
        p.bytes = (double)m->bytes;
        p.name = "memset";
        c->st.sets++;
        break;
    }
    case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
        CUpti_ActivitySynchronization2 *s = (CUpti_ActivitySynchronization2 *)rec;
        if (s->start == 0 && s->end == 0)
            return;
        p.kind = GS_EV_SYNC;
        p.level = sync_kind(s->type);
        p.stream = s->streamId;
        p.corr = s->correlationId;
        p.start = s->start;
        p.end = s->end;
        static const char *const names[] = {"synchronize", "event synchronize", "stream synchronize",
                                            "device synchronize"};
        p.name = names[p.level];
        c->st.syncs++;
        break;
    }
    case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: {
        CUpti_ActivityExternalCorrelation *x = (CUpti_ActivityExternalCorrelation *)rec;
        if (x->externalKind != CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0)
            return;
        size_t k = x->correlationId % CORR_RING;
        c->corr_map[k].corr = x->correlationId;
        c->corr_map[k].range = x->externalId;
        return;
    }
    default:
        return; /* API records: enabled only so that external correlation records are made */
    }
    push_pending(c, &p);
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t *buffer, size_t size,
                                     size_t valid)
{
    (void)size;
    gs_cupti *c = the_collector;
    if (c && buffer) {
        pthread_mutex_lock(&c->lock);
        CUpti_Activity *rec = NULL;
        while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS)
            parse_record(c, rec);
        size_t dropped = 0;
        if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS)
            c->st.dropped += dropped;
        c->st.buffers++;
        pthread_mutex_unlock(&c->lock);
    }
    free(buffer);
}

#define TRY_CUPTI(call)                                                                               \
    do {                                                                                              \
        CUptiResult r_ = (call);                                                                      \
        if (r_ != CUPTI_SUCCESS) {                                                                    \
            const char *s_ = NULL;                                                                    \
            cuptiGetResultString(r_, &s_);                                                            \
            rc = gs_error_set(err, GS_ERR_RUNTIME, "CUPTI: %s failed: %s%s", #call, s_ ? s_ : "?",    \
                              r_ == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED                      \
                                  ? " (another profiler is attached; run with --profile off)"           \
                                  : "");                                                              \
            goto fail;                                                                                \
        }                                                                                             \
    } while (0)

static const CUpti_CallbackId runtime_ids[] = {
    CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_v7000,       CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernel_ptsz_v7000,
    CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_v11060,   CUPTI_RUNTIME_TRACE_CBID_cudaLaunchKernelExC_ptsz_v11060,
    CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_v13000,    CUPTI_RUNTIME_TRACE_CBID___cudaLaunchKernel_ptsz_v13000,
    CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy_v3020,             CUPTI_RUNTIME_TRACE_CBID_cudaMemcpyAsync_v3020,
    CUPTI_RUNTIME_TRACE_CBID_cudaMemcpy2DAsync_v3020,      CUPTI_RUNTIME_TRACE_CBID_cudaMemset_v3020,
    CUPTI_RUNTIME_TRACE_CBID_cudaMemsetAsync_v3020,        CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_v10000,
    CUPTI_RUNTIME_TRACE_CBID_cudaGraphLaunch_ptsz_v10000,  CUPTI_RUNTIME_TRACE_CBID_cudaStreamSynchronize_v3020,
    CUPTI_RUNTIME_TRACE_CBID_cudaEventSynchronize_v3020,   CUPTI_RUNTIME_TRACE_CBID_cudaDeviceSynchronize_v3020,
};
/* cuBLAS launches through the driver API. */
static const CUpti_CallbackId driver_ids[] = {
    CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel,   CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel_ptsz,
    CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx, CUPTI_DRIVER_TRACE_CBID_cuLaunchKernelEx_ptsz,
    CUPTI_DRIVER_TRACE_CBID_cuGraphLaunch,    CUPTI_DRIVER_TRACE_CBID_cuGraphLaunch_ptsz,
};

/* Turns the record kinds (and the launch API records that carry the op
 * ids) on or off together. */
static CUptiResult set_kinds(gs_cupti *c, int on)
{
    static const CUpti_ActivityKind kinds[] = {
        CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
        CUPTI_ACTIVITY_KIND_SYNCHRONIZATION,
    };
    CUptiResult r = CUPTI_SUCCESS;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && r == CUPTI_SUCCESS; i++)
        r = on ? cuptiActivityEnable(kinds[i]) : cuptiActivityDisable(kinds[i]);
    if (c->no_correlation || r != CUPTI_SUCCESS)
        return r;
    r = on ? cuptiActivityEnable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION)
           : cuptiActivityDisable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION);
    for (size_t i = 0; i < sizeof runtime_ids / sizeof runtime_ids[0] && r == CUPTI_SUCCESS; i++)
        r = cuptiActivityEnableRuntimeApi(runtime_ids[i], (uint8_t)on);
    for (size_t i = 0; i < sizeof driver_ids / sizeof driver_ids[0] && r == CUPTI_SUCCESS; i++)
        r = cuptiActivityEnableDriverApi(driver_ids[i], (uint8_t)on);
    return r;
}

int gs_cupti_set_tracing(gs_cupti *c, int on)
{
    if (!c || !on == !c->tracing)
        return GS_OK;
    if (set_kinds(c, on) != CUPTI_SUCCESS)
        return GS_ERR_RUNTIME;
    c->tracing = on;
    return GS_OK;
}

int gs_cupti_start(gs_cupti **out, gs_error *err)
{
    *out = NULL;
    if (the_collector)
        return gs_error_set(err, GS_ERR_RUNTIME, "CUPTI: one collector per process");
    gs_cupti *c = calloc(1, sizeof *c);
    if (!c)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    the_collector = c;
    int rc = GS_OK;
    TRY_CUPTI(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed));
    if (cuptiActivityRegisterTimestampCallback(timestamp_now) != CUPTI_SUCCESS) {
        /* Older CUPTI: convert with an offset measured now (both clocks tick in ns). */
        uint64_t cupti_ns = 0;
        uint64_t before = gs_now_ns();
        cuptiGetTimestamp(&cupti_ns);
        uint64_t after = gs_now_ns();
        c->clock_offset = (int64_t)(cupti_ns - (before + (after - before) / 2));
    }
    /* GS_CUPTI_NO_CORRELATION=1 (an experiment for the overhead benchmark):
     * kernels only, not tied to ops. */
    const char *lean = getenv("GS_CUPTI_NO_CORRELATION");
    c->no_correlation = lean && *lean == '1';
    TRY_CUPTI(set_kinds(c, 1));
    c->tracing = 1;
    /* Deliver completed buffers at least this often, so live views stay fresh. */
    TRY_CUPTI(cuptiActivityFlushPeriod(50));
    /* A kernel launched programmatically (kernels/cuda/pdl.cuh) starts before
     * the one ahead of it ends and waits inside: its recorded duration would
     * hold the other's tail, and per-kernel sums would count it twice. While
     * this process records kernels, it launches them the ordinary way. */
    gs_cuda_allow_programmatic_launch(0);
    *out = c;
    return GS_OK;
fail:
    gs_cupti_stop(c);
    return rc;
}

void gs_cupti_push(gs_cupti *c, uint64_t range_id)
{
    if (!c || c->no_correlation || !c->tracing)
        return;
    if (c->depth < STACK_MAX)
        c->stack[c->depth] = range_id;
    c->depth++;
    cuptiActivityPushExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, range_id);
}

void gs_cupti_pop(gs_cupti *c)
{
    if (!c || c->depth == 0 || c->no_correlation || !c->tracing)
        return;
    c->depth--;
    uint64_t last = 0;
    cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &last);
}

/* Names are the collector's own copies or literals: stable pointers. */
static uint32_t store_id(gs_cupti *c, gs_event_store *store, const char *name)
{
    if (c->id_store != store) {
        memset(c->id_cache, 0, sizeof c->id_cache);
        c->id_store = store;
    }
    size_t k = ((uintptr_t)name >> 4) % (sizeof c->id_cache / sizeof c->id_cache[0]);
    if (c->id_cache[k].name == name)
        return c->id_cache[k].id;
    uint32_t id = gs_store_intern(store, name);
    if (id != GS_STORE_NO_ID) {
        c->id_cache[k].name = name;
        c->id_cache[k].id = id;
    }
    return id;
}

long gs_cupti_drain(gs_cupti *c, gs_event_store *store, gs_range_lookup_fn lookup, void *lookup_ctx, int force)
{
    if (!c)
        return 0;
    if (force)
        cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    pthread_mutex_lock(&c->lock);
    long n = 0;
    for (size_t i = 0; i < c->n_pend; i++) {
        const pending *p = &c->pend[i];
        uint64_t range = 0;
        /* A graph's kernels carry the graph launch's correlation id, so they
         * belong to the range that launched the graph (graph_replay). */
        if (p->graph_node && p->kind == GS_EV_KERNEL)
            c->st.graph_kernels++;
        size_t ck = p->corr % CORR_RING;
        if (c->corr_map[ck].corr == p->corr)
            range = c->corr_map[ck].range;
        gs_range_place where = {-1, -1, 0};
        if (range && lookup)
            where = lookup(lookup_ctx, range);
        if (!range || !where.found)
            c->st.unattributed++;
        gs_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = p->kind;
        ev.level = p->level;
        ev.name = store_id(c, store, p->name);
        ev.layer = where.found ? where.layer : -1;
        ev.track = p->kind == GS_EV_SYNC ? GS_TRACK_HOST : GS_TRACK_STREAM0 + p->stream;
        ev.step = where.found ? where.step : -1;
        ev.t_ns = p->start - (uint64_t)c->clock_offset;
        ev.dur_ns = p->end > p->start ? p->end - p->start : 0;
        ev.aux = p->corr;
        ev.range_id = range;
        ev.value = p->bytes;
        if (p->kind == GS_EV_KERNEL)
            ev.u.launch = p->launch;
        if (ev.name != GS_STORE_NO_ID && gs_store_append(store, &ev) == 0)
            n++;
    }
    c->n_pend = 0;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void gs_cupti_get_stats(const gs_cupti *c, gs_cupti_stats *st)
{
    if (!c) {
        *st = (gs_cupti_stats){0};
        return;
    }
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    *st = c->st;
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
}

void gs_cupti_stop(gs_cupti *c)
{
    if (!c)
        return;
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMSET);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_SYNCHRONIZATION);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION);
    pthread_mutex_lock(&c->lock);
    the_collector = NULL;
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < NAME_SLOTS; i++)
        free(c->names[i].copy);
    free(c->pend);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

#endif
