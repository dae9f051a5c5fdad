/* metrics_collector.h - per-kernel hardware metrics through CUPTI's Range
 * Profiler (auto range, kernel replay).
 *
 * On a sampled step every kernel becomes one profiled range; each is
 * replayed as many passes as the metric set needs and serialized, so the
 * step's timing is distorted: the profiler marks such steps and reports
 * exclude them. The ranges come back numbered in launch order; they are
 * matched to the step's kernel records (already in the store, ordered by
 * correlation id, which is launch order) and stored as GS_EV_METRIC events.
 *
 * Metrics (two passes on GH100, one without the L2 hit rate): DRAM bytes
 * read and written, L2 bytes, L1/TEX bytes and hit rate, shared-memory
 * wavefronts, tensor-pipe and issue activity, the kernel's own time, and the
 * L2 sector hit rate.
 *
 * Where counters are not permitted (CUPTI_ERROR_INSUFFICIENT_PRIVILEGES)
 * gs_metrics_prepare fails with a message saying how to enable them. */
#ifndef GS_METRICS_COLLECTOR_H
#define GS_METRICS_COLLECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "event_store.h"
#include "status.h"

typedef struct gs_metrics gs_metrics;

/* Names of the collected metrics, in the order values are reported. */
extern const char *const gs_metric_names[];
extern const size_t gs_metric_count;

/* fast: leave out the L2 hit rate, so the set needs one pass (no replay of
 * each kernel); values not collected are NaN. */
int gs_metrics_create(gs_metrics **out, int fast, gs_error *err);
/* Sets CUPTI up on the current device and context (call once the CUDA
 * backend exists); fails with the reason when counters cannot be read. */
int gs_metrics_prepare(gs_metrics *m, gs_error *err);
/* Bracket the launches to measure. */
int gs_metrics_begin(gs_metrics *m, gs_error *err);
/* Stops the session: values[range * gs_metric_count + metric] for ranges
 * in launch order; returns the number of ranges, or -status. */
long gs_metrics_end_values(gs_metrics *m, double *values, size_t max_ranges, gs_error *err);
/* Appends one GS_EV_METRIC per kernel and metric, matching measured ranges
 * to kernels in launch order (correlation id): the kernels of `step` when
 * the store has them, one per range; else (CUPTI emits no activity records
 * for kernels under kernel replay) the kernels of step - 1 when their number
 * equals the ranges, each moved by remap onto this step's range of the same
 * op, and *borrowed is set. Returns the kernels matched, or -1 when the
 * sequence cannot be matched (nothing is appended). Needs no GPU. */
typedef uint64_t (*gs_metrics_remap_fn)(void *ctx, uint64_t prev_range_id);
long gs_metrics_store_values(gs_event_store *store, int64_t step, const double *values, long n_ranges,
                             gs_metrics_remap_fn remap, void *remap_ctx, int *borrowed);
/* Passes the metric set needs on this chip (after prepare). */
int gs_metrics_passes(const gs_metrics *m);
void gs_metrics_destroy(gs_metrics *m);

#endif
