/* cpu_counters.h - hardware cache counters of the CPU backend's threads,
 * through perf_event_open(2).
 *
 * The CPU backend runs an op on the calling thread and its pool's workers,
 * so one counter group is opened per thread (each thread opens its own, pid
 * 0, cpu -1, through gs_pool_run_on_each) and a window's counts are the sum
 * over all of them. Each group is read with one read() (PERF_FORMAT_GROUP).
 *
 * Only user-space work is counted (exclude_kernel): the kernels run there,
 * and it is what kernel.perf_event_paranoid=2, the common default, allows.
 *
 * What the events mean (names as stored in GS_EV_METRIC events):
 *   cpu.llc_loads          last-level cache read accesses (HW_CACHE LL READ ACCESS)
 *   cpu.llc_misses         last-level cache read misses (HW_CACHE LL READ MISS):
 *                          demand loads the LLC could not serve; x 64 B per
 *                          line, a lower bound of DRAM read traffic (hardware
 *                          prefetches and write-backs are not in it)
 *   cpu.cache_references   the kernel's generic "cache-references" (LLC on
 *   cpu.cache_misses       Intel; vendor-defined elsewhere, e.g. L2 on AMD)
 *   cpu.instructions       retired instructions
 *   cpu.cycles             core cycles
 * Events the CPU (or a virtual PMU) lacks are left out; the mask says which
 * were counted. Counts are scaled by time enabled / time running when the
 * kernel had to multiplex the group. */
#ifndef GS_CPU_COUNTERS_H
#define GS_CPU_COUNTERS_H

#include "status.h"

struct gs_pool;

typedef enum {
    GS_CPUC_LLC_LOADS,
    GS_CPUC_LLC_MISSES,
    GS_CPUC_CACHE_MISSES,
    GS_CPUC_CACHE_REFS,
    GS_CPUC_INSTRUCTIONS,
    GS_CPUC_CYCLES,
    GS_CPUC_COUNT
} gs_cpuc_event;

/* "cpu.llc_loads", ...: the metric names, indexed by gs_cpuc_event. */
extern const char *const gs_cpuc_names[GS_CPUC_COUNT];

/* Bytes per LLC miss: one cache line. */
#define GS_CPUC_LINE_BYTES 64

typedef struct gs_cpuc_values {
    double v[GS_CPUC_COUNT]; /* counts summed over the threads, indexed by gs_cpuc_event */
    unsigned mask;           /* bit e: event e was counted (v[e] valid) */
    int scaled;              /* some group was multiplexed: counts are estimates */
} gs_cpuc_values;

typedef struct gs_cpu_counters gs_cpu_counters;

/* Opens the counters on the calling thread and, when pool is not NULL, on
 * each of its workers (the pool must be idle: call from its dispatching
 * thread, outside a job). Fails with a one-line reason and the way to enable
 * counters (GS_ERR_RUNTIME) when perf_event_open is not permitted or the
 * machine exposes no hardware PMU; nothing stays open then. */
int gs_cpu_counters_open(gs_cpu_counters **out, struct gs_pool *pool, gs_error *err);
/* The same groups, threads and reads on software events, so tests can check
 * the machinery where no PMU exists (VMs): minor page faults stand in the
 * GS_CPUC_LLC_LOADS slot, task clock (ns) in GS_CPUC_CYCLES; no other slot. */
int gs_cpu_counters_open_software(gs_cpu_counters **out, struct gs_pool *pool, gs_error *err);
/* The events counted (bit per gs_cpuc_event) and the threads covered. */
unsigned gs_cpu_counters_events(const gs_cpu_counters *c);
int gs_cpu_counters_threads(const gs_cpu_counters *c);
/* A window: start reads every group, stop reads them again and gives the
 * counts in between. Windows do not nest. Any thread may call these (the
 * counters stay tied to the threads that opened them). 0, or -1 when a
 * read failed (out holds nothing then). */
int gs_cpu_counters_start(gs_cpu_counters *c);
int gs_cpu_counters_stop(gs_cpu_counters *c, gs_cpuc_values *out);
void gs_cpu_counters_close(gs_cpu_counters *c);

#endif
