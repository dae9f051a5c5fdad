/* compare_stats.c - medians, order-statistic intervals, verdicts (see the header). */
#include "compare_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* P(B = k) for B ~ Binomial(n, 1/2), in log space so that large n
 * (thousands of steps) neither overflows nor underflows. */
static double binom_half_pmf(long n, long k)
{
    return exp(lgamma((double)n + 1.0) - lgamma((double)k + 1.0) - lgamma((double)(n - k) + 1.0) +
               (double)n * log(0.5));
}

void gs_stats_median_ranks(long n, double confidence, long *lo_rank, long *hi_rank, double *coverage)
{
    /* [x_(j), x_(n+1-j)] holds the median with probability P(j <= B <= n-j)
     * = 1 - 2 P(B <= j-1). The narrowest symmetric pair that still reaches
     * the confidence is the largest such j; when even j = 1 falls short
     * (n <= 5 at 95%) the interval is the whole range and says so. */
    if (n <= 0) {
        *lo_rank = *hi_rank = 0;
        *coverage = 0.0;
        return;
    }
    long j = 1;
    double cdf = binom_half_pmf(n, 0); /* P(B <= j-1) for the j being tried next */
    double cov = 1.0 - 2.0 * cdf;
    for (long t = 2; 2 * t <= n; t++) {
        cdf += binom_half_pmf(n, t - 1);
        double c = 1.0 - 2.0 * cdf;
        if (c < confidence)
            break;
        j = t;
        cov = c;
    }
    *lo_rank = j;
    *hi_rank = n + 1 - j;
    *coverage = cov;
}

int gs_stats_summarize(const double *x, long n, gs_stat_summary *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return 0;
    double *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return -1;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    out->n = n;
    out->min = s[0];
    out->max = s[n - 1];
    out->median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    long lo, hi;
    gs_stats_median_ranks(n, GS_STATS_CONFIDENCE, &lo, &hi, &out->coverage);
    out->lo = s[lo - 1];
    out->hi = s[hi - 1];
    free(s);
    return 0;
}

void gs_stats_compare(const gs_stat_summary *a, const gs_stat_summary *b, int higher_better, gs_stat_compare *out)
{
    out->delta = b->median - a->median;
    out->ratio = a->median != 0 ? b->median / a->median : 0.0;
    out->verdict = GS_VERDICT_NOISE;
    /* Too few samples for an interval that means anything: no winner. */
    if (a->n < GS_STATS_MIN_SAMPLES || b->n < GS_STATS_MIN_SAMPLES)
        return;
    /* Overlapping intervals: the difference is within what repeating the
     * same measurement gives, so neither side wins. */
    if (a->hi >= b->lo && b->hi >= a->lo)
        return;
    /* A shift smaller than either side's own interval, or a fraction of a
     * percent, is not worth a winner either: many rows are compared at
     * once, and steps that alternate are not perfectly independent. */
    double spread = fmax(a->hi - a->lo, b->hi - b->lo);
    if (fabs(out->delta) <= spread || fabs(out->delta) < GS_STATS_MIN_REL * fabs(a->median))
        return;
    int b_larger = b->lo > a->hi;
    out->verdict = b_larger == !!higher_better ? GS_VERDICT_B : GS_VERDICT_A;
}

const char *gs_verdict_name(gs_verdict v)
{
    switch (v) {
    case GS_VERDICT_A:
        return "A faster";
    case GS_VERDICT_B:
        return "B faster";
    default:
        return "noise";
    }
}
