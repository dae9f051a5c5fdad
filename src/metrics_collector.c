/* metrics_collector.c - CUPTI Range Profiler sessions on sampled steps. */
#include "metrics_collector.h"

#include "build_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The L2 hit rate is last: alone it needs a second pass, so the fast set
 * (one pass) is every name before it. */
const char *const gs_metric_names[] = {
    "dram__bytes_read.sum",
    "dram__bytes_write.sum",
    "lts__t_bytes.sum",
    "l1tex__t_bytes.sum",
    "l1tex__t_sector_hit_rate.pct",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum",
    "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "smsp__issue_active.avg.pct_of_peak_sustained_elapsed",
    "gpu__time_duration.sum",
    "lts__t_sector_hit_rate.pct",
};
const size_t gs_metric_count = sizeof gs_metric_names / sizeof gs_metric_names[0];

typedef struct step_kernels {
    int64_t step;
    gs_event *ev;
    size_t n, cap;
} step_kernels;

static int collect_kernel(void *ctx, uint64_t index, const gs_event *ev)
{
    (void)index;
    step_kernels *k = ctx;
    if (ev->kind != GS_EV_KERNEL || ev->step != k->step)
        return 0;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        gs_event *p = realloc(k->ev, cap * sizeof *p);
        if (!p)
            return 1;
        k->ev = p;
        k->cap = cap;
    }
    k->ev[k->n++] = *ev;
    return 0;
}

static int by_correlation(const void *a, const void *b)
{
    const gs_event *x = a, *y = b;
    return x->aux < y->aux ? -1 : x->aux > y->aux;
}

static void append_metrics(gs_event_store *store, int64_t step, const gs_event *kern, uint64_t range_id,
                           const double *values)
{
    for (size_t j = 0; j < gs_metric_count; j++) {
        gs_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = GS_EV_METRIC;
        ev.level = GS_METRIC_KERNEL;
        ev.name = gs_store_intern(store, gs_metric_names[j]);
        ev.layer = kern->layer;
        ev.track = kern->track;
        ev.step = step;
        ev.t_ns = kern->t_ns;
        ev.aux = kern->aux;
        ev.range_id = range_id;
        ev.value = values[j];
        if (ev.name != GS_STORE_NO_ID && values[j] == values[j]) /* NaN: not in the set collected */
            gs_store_append(store, &ev);
    }
}

long gs_metrics_store_values(gs_event_store *store, int64_t step, const double *values, long n_ranges,
                             gs_metrics_remap_fn remap, void *remap_ctx, int *borrowed)
{
    *borrowed = 0;
    step_kernels k = {step, NULL, 0, 0};
    gs_store_query_steps(store, step, step, collect_kernel, &k);
    long rc = -1;
    if (k.n > 0 && k.n == (size_t)n_ranges) {
        qsort(k.ev, k.n, sizeof *k.ev, by_correlation);
        for (size_t i = 0; i < k.n; i++)
            append_metrics(store, step, &k.ev[i], k.ev[i].range_id, values + i * gs_metric_count);
        rc = (long)k.n;
    } else if (k.n == 0 && remap && step > 0) {
        /* Kernel replay hides the step's own kernel records: take the kernel
         * sequence of the step before, when it is the same length (a decode
         * step after a decode step), and move each onto this step's range of
         * the same op. */
        step_kernels prev = {step - 1, NULL, 0, 0};
        gs_store_query_steps(store, step - 1, step - 1, collect_kernel, &prev);
        if (prev.n > 0 && prev.n == (size_t)n_ranges) {
            qsort(prev.ev, prev.n, sizeof *prev.ev, by_correlation);
            uint64_t *ranges = malloc(prev.n * sizeof *ranges);
            size_t i = 0;
            for (; ranges && i < prev.n; i++)
                if (!(ranges[i] = remap(remap_ctx, prev.ev[i].range_id)))
                    break;
            if (ranges && i == prev.n) {
                for (i = 0; i < prev.n; i++)
                    append_metrics(store, step, &prev.ev[i], ranges[i], values + i * gs_metric_count);
                *borrowed = 1;
                rc = (long)prev.n;
            }
            free(ranges);
        }
        free(prev.ev);
    }
    free(k.ev);
    return rc;
}

#ifndef HAVE_CUDA

int gs_metrics_create(gs_metrics **out, int fast, gs_error *err)
{
    (void)fast;
    *out = NULL;
    return gs_error_set(err, GS_ERR_RUNTIME, "hardware metrics need a CUDA build");
}
int gs_metrics_prepare(gs_metrics *m, gs_error *err)
{
    (void)m;
    return gs_error_set(err, GS_ERR_RUNTIME, "hardware metrics need a CUDA build");
}
int gs_metrics_begin(gs_metrics *m, gs_error *err) { return gs_metrics_prepare(m, err); }
long gs_metrics_end_values(gs_metrics *m, double *values, size_t max_ranges, gs_error *err)
{
    (void)values; (void)max_ranges;
    return -gs_metrics_prepare(m, err);
}
int gs_metrics_passes(const gs_metrics *m) { (void)m; return 0; }
void gs_metrics_destroy(gs_metrics *m) { (void)m; }

#else

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <cupti_profiler_host.h> /* includes <string>: src/compat supplies an empty one for C */
#include <cupti_range_profiler.h>
#include <cupti_target.h>

#define MAX_RANGES 4096 /* kernels in one sampled step */

struct gs_metrics {
    int prepared;
    int passes;
    size_t n_metrics;    /* the first n of gs_metric_names are collected */
    int running;
    CUcontext ctx;
    CUpti_Profiler_Host_Object *host;
    CUpti_RangeProfiler_Object *rp;
    uint8_t *avail;
    uint8_t *config;
    size_t config_size;
    uint8_t *counter_data;
    size_t counter_size;
};

static int fail(gs_error *err, const char *what, CUptiResult r)
{
    const char *s = NULL;
    cuptiGetResultString(r, &s);
    if (r == CUPTI_ERROR_INSUFFICIENT_PRIVILEGES)
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "%s: the driver allows GPU performance counters to administrators only; run as root "
                            "or load nvidia with NVreg_RestrictProfilingToAdminUsers=0",
                            what);
    if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED)
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: another profiler (Nsight?) holds the counters", what);
    return gs_error_set(err, GS_ERR_RUNTIME, "%s failed: %s", what, s ? s : "unknown CUPTI error");
}

#define CALL(fn, params)                         \
    do {                                         \
        CUptiResult r_ = fn(&(params));          \
        if (r_ != CUPTI_SUCCESS)                 \
            return fail(err, #fn, r_);           \
    } while (0)

int gs_metrics_create(gs_metrics **out, int fast, gs_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    (*out)->n_metrics = fast ? gs_metric_count - 1 : gs_metric_count;
    return GS_OK;
}

/* The current context without linking libcuda (not present on machines
 * without a driver): ask the runtime for the driver's entry point. */
static int current_context(CUcontext *ctx, gs_error *err)
{
    typedef CUresult (*get_current_fn)(CUcontext *);
    void *fn = NULL;
    enum cudaDriverEntryPointQueryResult q;
    cudaFree(0); /* make sure the runtime has created its context */
    if (cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        !fn)
        return gs_error_set(err, GS_ERR_RUNTIME, "hardware metrics: cannot reach the CUDA driver");
    if (((get_current_fn)fn)(ctx) != CUDA_SUCCESS || !*ctx)
        return gs_error_set(err, GS_ERR_RUNTIME, "hardware metrics: no CUDA context");
    return GS_OK;
}

int gs_metrics_prepare(gs_metrics *m, gs_error *err)
{
    if (m->prepared)
        return GS_OK;
    int rc = current_context(&m->ctx, err);
    if (rc)
        return rc;
    CUpti_Profiler_Initialize_Params init = {.structSize = CUpti_Profiler_Initialize_Params_STRUCT_SIZE};
    CALL(cuptiProfilerInitialize, init);
    int dev = 0;
    cudaGetDevice(&dev);
    CUpti_Device_GetChipName_Params chip = {.structSize = CUpti_Device_GetChipName_Params_STRUCT_SIZE, .deviceIndex = (size_t)dev};
    CALL(cuptiDeviceGetChipName, chip);

    CUpti_Profiler_GetCounterAvailability_Params av = {.structSize = CUpti_Profiler_GetCounterAvailability_Params_STRUCT_SIZE};
    av.ctx = m->ctx;
    CALL(cuptiProfilerGetCounterAvailability, av);
    m->avail = malloc(av.counterAvailabilityImageSize);
    if (!m->avail)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    av.pCounterAvailabilityImage = m->avail;
    CALL(cuptiProfilerGetCounterAvailability, av);

    CUpti_Profiler_Host_Initialize_Params hi = {.structSize = CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE};
    hi.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
    hi.pChipName = chip.pChipName;
    hi.pCounterAvailabilityImage = m->avail;
    CALL(cuptiProfilerHostInitialize, hi);
    m->host = hi.pHostObject;

    CUpti_Profiler_Host_ConfigAddMetrics_Params add = {.structSize = CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE};
    add.pHostObject = m->host;
    add.ppMetricNames = (const char **)gs_metric_names;
    add.numMetrics = m->n_metrics;
    CALL(cuptiProfilerHostConfigAddMetrics, add);
    CUpti_Profiler_Host_GetConfigImageSize_Params cs = {.structSize = CUpti_Profiler_Host_GetConfigImageSize_Params_STRUCT_SIZE};
    cs.pHostObject = m->host;
    CALL(cuptiProfilerHostGetConfigImageSize, cs);
    m->config_size = cs.configImageSize;
    m->config = malloc(m->config_size);
    if (!m->config)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    CUpti_Profiler_Host_GetConfigImage_Params ci = {.structSize = CUpti_Profiler_Host_GetConfigImage_Params_STRUCT_SIZE};
    ci.pHostObject = m->host;
    ci.configImageSize = m->config_size;
    ci.pConfigImage = m->config;
    CALL(cuptiProfilerHostGetConfigImage, ci);
    CUpti_Profiler_Host_GetNumOfPasses_Params np = {.structSize = CUpti_Profiler_Host_GetNumOfPasses_Params_STRUCT_SIZE};
    np.configImageSize = m->config_size;
    np.pConfigImage = m->config;
    CALL(cuptiProfilerHostGetNumOfPasses, np);
    m->passes = (int)np.numOfPasses;

    CUpti_RangeProfiler_Enable_Params en = {.structSize = CUpti_RangeProfiler_Enable_Params_STRUCT_SIZE};
    en.ctx = m->ctx;
    CALL(cuptiRangeProfilerEnable, en);
    m->rp = en.pRangeProfilerObject;

    CUpti_RangeProfiler_GetCounterDataSize_Params ds = {.structSize = CUpti_RangeProfiler_GetCounterDataSize_Params_STRUCT_SIZE};
    ds.pRangeProfilerObject = m->rp;
    ds.pMetricNames = (const char **)gs_metric_names;
    ds.numMetrics = m->n_metrics;
    ds.maxNumOfRanges = MAX_RANGES;
    ds.maxNumRangeTreeNodes = MAX_RANGES;
    CALL(cuptiRangeProfilerGetCounterDataSize, ds);
    m->counter_size = ds.counterDataSize;
    m->counter_data = malloc(m->counter_size);
    if (!m->counter_data)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    m->prepared = 1;
    return GS_OK;
}

int gs_metrics_passes(const gs_metrics *m) { return m ? m->passes : 0; }

int gs_metrics_begin(gs_metrics *m, gs_error *err)
{
    int rc = gs_metrics_prepare(m, err);
    if (rc)
        return rc;
    /* A fresh counter image each time: ranges restart at 0. */
    CUpti_RangeProfiler_CounterDataImage_Initialize_Params di = {
        .structSize = CUpti_RangeProfiler_CounterDataImage_Initialize_Params_STRUCT_SIZE};
    di.pRangeProfilerObject = m->rp;
    di.counterDataSize = m->counter_size;
    di.pCounterData = m->counter_data;
    CALL(cuptiRangeProfilerCounterDataImageInitialize, di);
    CUpti_RangeProfiler_SetConfig_Params sc = {.structSize = CUpti_RangeProfiler_SetConfig_Params_STRUCT_SIZE};
    sc.pRangeProfilerObject = m->rp;
    sc.configSize = m->config_size;
    sc.pConfig = m->config;
    sc.counterDataImageSize = m->counter_size;
    sc.pCounterDataImage = m->counter_data;
    sc.range = CUPTI_AutoRange;
    sc.replayMode = CUPTI_KernelReplay;
    sc.maxRangesPerPass = MAX_RANGES;
    sc.numNestingLevels = 1;
    sc.minNestingLevel = 1;
    sc.passIndex = 0;
    sc.targetNestingLevel = 1;
    CALL(cuptiRangeProfilerSetConfig, sc);
    CUpti_RangeProfiler_Start_Params st = {.structSize = CUpti_RangeProfiler_Start_Params_STRUCT_SIZE};
    st.pRangeProfilerObject = m->rp;
    CALL(cuptiRangeProfilerStart, st);
    m->running = 1;
    return GS_OK;
}

/* Stops the session and decodes it; returns the number of ranges. */
static long stop_and_decode(gs_metrics *m, gs_error *err)
{
    if (!m->running)
        return -gs_error_set(err, GS_ERR_RUNTIME, "hardware metrics: no session running");
    m->running = 0;
    cudaDeviceSynchronize();
    CUpti_RangeProfiler_Stop_Params sp = {.structSize = CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE};
    sp.pRangeProfilerObject = m->rp;
    CUptiResult r = cuptiRangeProfilerStop(&sp);
    if (r != CUPTI_SUCCESS)
        return -fail(err, "cuptiRangeProfilerStop", r);
    CUpti_RangeProfiler_DecodeData_Params dd = {.structSize = CUpti_RangeProfiler_DecodeData_Params_STRUCT_SIZE};
    dd.pRangeProfilerObject = m->rp;
    r = cuptiRangeProfilerDecodeData(&dd);
    if (r != CUPTI_SUCCESS)
        return -fail(err, "cuptiRangeProfilerDecodeData", r);
    CUpti_RangeProfiler_GetCounterDataInfo_Params gi = {.structSize = CUpti_RangeProfiler_GetCounterDataInfo_Params_STRUCT_SIZE};
    gi.pCounterDataImage = m->counter_data;
    gi.counterDataImageSize = m->counter_size;
    r = cuptiRangeProfilerGetCounterDataInfo(&gi);
    if (r != CUPTI_SUCCESS)
        return -fail(err, "cuptiRangeProfilerGetCounterDataInfo", r);
    return (long)gi.numTotalRanges;
}

/* Values of range i. The image lists a session's ranges in launch order;
 * their names ("0", "1", ...) keep counting across sessions on a context, so
 * the position in the image, not the name, is the kernel's index. */
static int range_values(gs_metrics *m, size_t i, double *values, gs_error *err)
{
    CUpti_Profiler_Host_EvaluateToGpuValues_Params ev = {.structSize = CUpti_Profiler_Host_EvaluateToGpuValues_Params_STRUCT_SIZE};
    ev.pHostObject = m->host;
    ev.pCounterDataImage = m->counter_data;
    ev.counterDataImageSize = m->counter_size;
    ev.rangeIndex = i;
    ev.ppMetricNames = (const char **)gs_metric_names;
    ev.numMetrics = m->n_metrics;
    ev.pMetricValues = values;
    for (size_t j = m->n_metrics; j < gs_metric_count; j++)
        values[j] = NAN; /* not collected in the fast set */
    CUptiResult r = cuptiProfilerHostEvaluateToGpuValues(&ev);
    return r == CUPTI_SUCCESS ? GS_OK : fail(err, "cuptiProfilerHostEvaluateToGpuValues", r);
}

long gs_metrics_end_values(gs_metrics *m, double *values, size_t max_ranges, gs_error *err)
{
    long n = stop_and_decode(m, err);
    if (n < 0)
        return n;
    long got = n < (long)max_ranges ? n : (long)max_ranges;
    for (long i = 0; i < got; i++) {
        int rc = range_values(m, (size_t)i, values + (size_t)i * gs_metric_count, err);
        if (rc)
            return -rc;
    }
    return got;
}

void gs_metrics_destroy(gs_metrics *m)
{
    if (!m)
        return;
    if (m->running) {
        CUpti_RangeProfiler_Stop_Params sp = {.structSize = CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE};
        sp.pRangeProfilerObject = m->rp;
        cuptiRangeProfilerStop(&sp);
    }
    if (m->rp) {
        CUpti_RangeProfiler_Disable_Params dp = {.structSize = CUpti_RangeProfiler_Disable_Params_STRUCT_SIZE};
        dp.pRangeProfilerObject = m->rp;
        cuptiRangeProfilerDisable(&dp);
    }
    if (m->host) {
        CUpti_Profiler_Host_Deinitialize_Params hd = {.structSize = CUpti_Profiler_Host_Deinitialize_Params_STRUCT_SIZE};
        hd.pHostObject = m->host;
        cuptiProfilerHostDeinitialize(&hd);
    }
    /* cuptiProfilerDeInitialize is not reference counted: leave it for process exit. */
    free(m->avail);
    free(m->config);
    free(m->counter_data);
    free(m);
}

#endif
