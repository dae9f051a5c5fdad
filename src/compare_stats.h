/* compare_stats.h - statistics over repeated timings, and A against B.
 *
 * A timing measured once per step is a sample; its summary is the median,
 * min, max and a distribution-free confidence interval of the median from
 * order statistics (the ranks come from the Binomial(n, 1/2) law, so the
 * interval is deterministic and assumes nothing about the shape of the
 * timings). Comparing two summaries declares a winner only when the two
 * intervals are disjoint, the difference of the medians exceeds the wider
 * interval, and it is at least GS_STATS_MIN_REL of A; otherwise "noise". */
#ifndef GS_COMPARE_STATS_H
#define GS_COMPARE_STATS_H

#define GS_STATS_CONFIDENCE 0.95
/* Fewer samples than this on either side: never a verdict. */
#define GS_STATS_MIN_SAMPLES 3
/* A relative difference below this is noise whatever the intervals say. */
#define GS_STATS_MIN_REL 0.01

typedef struct gs_stat_summary {
    long n;             /* samples */
    double median, min, max;
    double lo, hi;      /* confidence interval of the median (same unit as the samples) */
    double coverage;    /* its exact coverage (>= GS_STATS_CONFIDENCE, or less when n is too small
                           for that: the interval is then [min, max]) */
} gs_stat_summary;

/* Summarizes x[0..n) (x is left unchanged). n 0 gives an all-zero summary.
 * 0, or -1 when out of memory. */
int gs_stats_summarize(const double *x, long n, gs_stat_summary *out);

/* The ranks (1-based) of the order statistics bounding the median's
 * interval for n samples, and that interval's coverage. */
void gs_stats_median_ranks(long n, double confidence, long *lo_rank, long *hi_rank, double *coverage);

typedef enum { GS_VERDICT_NOISE = 0, GS_VERDICT_A = 1, GS_VERDICT_B = 2 } gs_verdict;

typedef struct gs_stat_compare {
    double delta;       /* median B - median A */
    double ratio;       /* median B / median A (0 when A's median is 0) */
    gs_verdict verdict; /* which side is better, or noise */
} gs_stat_compare;

/* higher_better: 1 for rates (tokens/s), 0 for times. */
void gs_stats_compare(const gs_stat_summary *a, const gs_stat_summary *b, int higher_better, gs_stat_compare *out);

/* "A faster", "B faster", "noise". */
const char *gs_verdict_name(gs_verdict v);

#endif
