/* profile_report.h - the `bench --profile` tables, built from an event store.
 *
 * Works on any store: a live run's or one read back from a trace file. Per op
 * (aggregated by name over every layer): calls, time, share of the step,
 * modeled FLOPs and bytes (op_cost.h, from the step.* counters of each op
 * instance's step), measured DRAM bytes where GS_EV_METRIC events name the
 * op's ranges, and the roofline (peaks.h). Per kernel where GS_EV_KERNEL
 * events exist: device time, launch shape, measured memory-hierarchy traffic.
 *
 * Provenance is part of every figure: times are measured (host wall time of
 * the range, or the device time of the op's kernels when the store has
 * kernels), FLOPs and "model" bytes are modeled, "(m)" bytes are measured.
 * On the CPU backend, op-scope "cpu.*" metrics (cpu_counters.h) give a
 * separate measured table: LLC loads and misses per call, the misses x 64 B
 * (demand reads the LLC could not serve: a lower bound of DRAM reads, not
 * the DRAM traffic itself, so they stay out of the roofline), LLC hit rate.
 * Steps marked by a GS_EV_MARKER "metrics step" (value: the step number) were
 * replayed for metrics: their times are left out of every timing statistic,
 * their metrics are used. */
#ifndef GS_PROFILE_REPORT_H
#define GS_PROFILE_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "cpu_counters.h"
#include "event_store.h"
#include "op_cost.h"
#include "peaks.h"

#define GS_PROFILE_MARKER_METRICS_STEP "metrics step"

typedef struct gs_profile_op_row {
    char name[48];
    long calls;                 /* timed instances (metrics steps left out) */
    uint64_t total_ns;          /* measured: host range time, or its kernels' device time */
    int device_time;            /* 1: total_ns is the kernels' device time */
    double share_pct;           /* of the timed steps' wall time */
    int modeled;                /* 0: no model (unknown op, or steps without step.* counters) */
    double flops_model;         /* per call, mean over the timed calls */
    double bytes_model;         /* per call */
    long measured_calls;        /* instances with DRAM metrics */
    double bytes_measured;      /* per call, mean over measured_calls (DRAM read + write) */
    gs_roofline roof;           /* over the timed calls; bytes measured when there are, else modeled */
    long cpu_calls;             /* instances with CPU counters (perf_event_open, measured) */
    unsigned cpu_mask;          /* bit per gs_cpuc_event present in every one of them */
    double cpu[GS_CPUC_COUNT];  /* per call, mean over cpu_calls; counts summed over threads */
} gs_profile_op_row;

/* Memory-hierarchy metrics of a kernel, means over its launches that have
 * them; NAN where the metric was never collected. */
typedef struct gs_profile_kernel_metrics {
    long launches;              /* launches with at least one metric */
    double dram_bytes;          /* dram__bytes_read.sum + dram__bytes_write.sum */
    double l2_bytes, l2_hit_pct;   /* lts__t_bytes.sum, lts__t_sector_hit_rate.pct */
    double l1_bytes, l1_hit_pct;   /* l1tex__t_bytes.sum, l1tex__t_sector_hit_rate.pct */
    double shared_wavefronts;   /* l1tex__data_pipe_lsu_wavefronts_mem_shared.sum */
    double tensor_pct;          /* sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed */
    double issue_pct;           /* smsp__issue_active.avg.pct_of_peak_sustained_elapsed */
    double metric_time_ns;      /* gpu__time_duration.sum (under replay: not a timing) */
} gs_profile_kernel_metrics;

typedef struct gs_profile_kernel_row {
    char name[128];
    char op[48];                /* the op that launched it (last seen), "" unknown */
    long calls;                 /* timed launches */
    uint64_t total_ns;          /* measured device time */
    double share_pct;           /* of all timed kernel time */
    uint32_t grid[3];           /* of the last launch */
    uint16_t block[3];
    gs_profile_kernel_metrics m;
} gs_profile_kernel_row;

typedef struct gs_profile {
    gs_profile_op_row *ops;     /* by total time, largest first */
    int n_ops;
    gs_profile_kernel_row *kernels; /* by total time, largest first */
    int n_kernels;
    long steps;                 /* timed steps */
    long metrics_steps;         /* steps left out of timing */
    uint64_t step_ns;           /* wall time of the timed steps */
    uint64_t kernel_ns;         /* device time of the timed kernels */
    int have_kernels, have_metrics;
    int have_cpu_counters;      /* some op has cpu.* metrics */
    gs_op_cost step_model;      /* modeled cost of the timed steps, summed */
    int have_peaks;
    gs_peaks peaks;
} gs_profile;

/* Builds the tables from every event kept in s. cost: the run's model
 * configuration; peaks: NULL for no roofline. 0, or -1 when out of memory. */
int gs_profile_build(gs_event_store *s, const gs_cost_config *cost, const gs_peaks *peaks, gs_profile *out);
void gs_profile_free(gs_profile *p);

/* The tables as text, and as one JSON object (no trailing newline). */
void gs_profile_report_print(FILE *f, const gs_profile *p);
void gs_profile_report_json(FILE *f, const gs_profile *p);

#endif
