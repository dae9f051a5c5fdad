/* test_compare_stats.c - the compare statistics on synthetic timings whose
 * answers are known: order-statistic ranks from the binomial table, medians
 * of odd and even samples, and verdicts that must say "noise" whenever the
 * intervals overlap or the samples are too few. No clocks are read. */
#include <math.h>
#include <string.h>

#include "compare_stats.h"
#include "tap.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * (fabs(b) + 1.0); }

static void ranks_case(long n, long want_lo, long want_hi, double want_cov)
{
    long lo, hi;
    double cov;
    gs_stats_median_ranks(n, GS_STATS_CONFIDENCE, &lo, &hi, &cov);
    tap_ok(lo == want_lo && hi == want_hi && (want_cov < 0 || near(cov, want_cov)),
           "n=%ld: 95%% interval of the median is [x(%ld), x(%ld)] (got [x(%ld), x(%ld)], coverage %.6f)", n,
           want_lo, want_hi, lo, hi, cov);
}

int main(void)
{
    /* Ranks: exact binomial coverages, 1 - 2 P(B <= j-1). */
    ranks_case(5, 1, 5, 1.0 - 2.0 / 32.0);          /* too few for 95%: the whole range, 93.75% */
    ranks_case(6, 1, 6, 1.0 - 2.0 / 64.0);          /* 96.875% */
    ranks_case(10, 2, 9, 1.0 - 2.0 * 11.0 / 1024.0); /* 97.85% */
    ranks_case(11, 2, 10, 1.0 - 2.0 * 12.0 / 2048.0);
    ranks_case(100, 40, 61, -1);                    /* the textbook pair for n = 100 */
    long lo, hi;
    double cov;
    gs_stats_median_ranks(5000, GS_STATS_CONFIDENCE, &lo, &hi, &cov);
    tap_ok(lo > 2400 && hi == 5001 - lo && cov >= 0.95 && cov < 0.96,
           "n=5000: symmetric ranks near the middle (%ld, %ld), coverage %.4f, no overflow", lo, hi, cov);

    /* Summary of 11 shuffled values 1..11: median 6, interval [x(2), x(10)] = [2, 10]. */
    double odd[11] = {7, 3, 11, 1, 9, 5, 2, 10, 4, 8, 6};
    double copy[11];
    memcpy(copy, odd, sizeof odd);
    gs_stat_summary s;
    int rc = gs_stats_summarize(odd, 11, &s);
    tap_ok(rc == 0 && s.n == 11 && s.median == 6 && s.min == 1 && s.max == 11 &&
               s.lo == 2 && s.hi == 10,
           "11 values: median 6, min 1, max 11, interval [2, 10] (got %g %g %g [%g, %g])", s.median, s.min, s.max,
           s.lo, s.hi);
    tap_ok(memcmp(odd, copy, sizeof odd) == 0, "summarizing leaves the samples in their order");
    double even[4] = {4, 1, 3, 2};
    gs_stats_summarize(even, 4, &s);
    tap_ok(s.median == 2.5 && s.lo == 1 && s.hi == 4 && s.coverage < 0.95,
           "4 values: median 2.5 (mean of the middle two), interval the whole range, coverage below 95%%");
    gs_stats_summarize(NULL, 0, &s);
    tap_ok(s.n == 0 && s.median == 0, "no samples: an empty summary");
    gs_stat_summary s2;
    gs_stats_summarize(odd, 11, &s);
    gs_stats_summarize(odd, 11, &s2);
    tap_ok(memcmp(&s, &s2, sizeof s) == 0, "the same samples give the same summary (deterministic)");

    /* Clearly apart: A about 10 ms, B about 20 ms (times: lower is better). */
    double a[10], b[10];
    for (int i = 0; i < 10; i++) {
        a[i] = 10.0 + 0.1 * i;
        b[i] = 20.0 + 0.1 * (9 - i);
    }
    gs_stat_summary sa, sb;
    gs_stats_summarize(a, 10, &sa);
    gs_stats_summarize(b, 10, &sb);
    gs_stat_compare c;
    gs_stats_compare(&sa, &sb, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_A && near(c.delta, 10.0) && near(c.ratio, 20.45 / 10.45),
           "times 10.45 vs 20.45 ms: A faster, delta +10, ratio 1.957 (got %s, %g, %g)", gs_verdict_name(c.verdict),
           c.delta, c.ratio);
    gs_stats_compare(&sb, &sa, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_B && near(c.delta, -10.0), "the same swapped: B faster, delta -10");
    /* As rates (tokens/s) the larger value wins. */
    gs_stats_compare(&sa, &sb, 1, &c);
    tap_ok(c.verdict == GS_VERDICT_B, "as rates 10.45 vs 20.45 tokens/s: B faster");

    /* Shifted by 2 with a spread of 9: the intervals [11, 18] and [13, 20] overlap. */
    for (int i = 0; i < 10; i++) {
        a[i] = 10.0 + i;
        b[i] = 12.0 + i;
    }
    gs_stats_summarize(a, 10, &sa);
    gs_stats_summarize(b, 10, &sb);
    gs_stats_compare(&sa, &sb, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_NOISE && near(c.delta, 2.0) && sa.lo == 11 && sa.hi == 18 && sb.lo == 13,
           "a delta of 2 inside a spread of 9: noise, not a winner (got %s)", gs_verdict_name(c.verdict));
    /* One wild outlier on B does not move the median or make a winner. */
    for (int i = 0; i < 10; i++)
        b[i] = 10.0 + i;
    b[9] = 1000.0;
    gs_stats_summarize(b, 10, &sb);
    gs_stats_compare(&sa, &sb, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_NOISE && c.delta == 0 && sb.max == 1000.0,
           "an outlier on one side: the same median, noise");

    /* Disjoint intervals, but the shift (1.545) is smaller than A's own interval (2). */
    for (int i = 0; i < 10; i++) {
        a[i] = i == 0 ? 0.0 : i < 5 ? 10.0 : i < 9 ? 12.0 : 30.0; /* interval [x(2), x(9)] = [10, 12] */
        b[i] = 12.5 + 0.01 * i;                                     /* interval [12.51, 12.58] */
    }
    gs_stats_summarize(a, 10, &sa);
    gs_stats_summarize(b, 10, &sb);
    gs_stats_compare(&sa, &sb, 0, &c);
    tap_ok(sa.lo == 10 && sa.hi == 12 && sb.lo > sa.hi && c.verdict == GS_VERDICT_NOISE,
           "disjoint intervals but a delta (%.3f) within A's interval width (2): noise", c.delta);
    /* Tight and disjoint, but only 0.5%% apart: noise. */
    for (int i = 0; i < 10; i++) {
        a[i] = 100.0 + 0.001 * i;
        b[i] = 100.5 + 0.001 * i;
    }
    gs_stats_summarize(a, 10, &sa);
    gs_stats_summarize(b, 10, &sb);
    gs_stats_compare(&sa, &sb, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_NOISE, "tight intervals 0.5%% apart: below the 1%% floor, noise");
    /* Two samples each, far apart: still too few to name a winner. */
    double a2[2] = {1, 1.1}, b2[2] = {5, 5.1};
    gs_stats_summarize(a2, 2, &sa);
    gs_stats_summarize(b2, 2, &sb);
    gs_stats_compare(&sa, &sb, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_NOISE && c.delta > 3.9, "2 samples a side, 5x apart: noise (too few samples)");
    /* Identical constant samples: overlap, noise, ratio 1. */
    double k[5] = {3, 3, 3, 3, 3};
    gs_stats_summarize(k, 5, &sa);
    gs_stats_compare(&sa, &sa, 0, &c);
    tap_ok(c.verdict == GS_VERDICT_NOISE && c.ratio == 1.0 && c.delta == 0, "A against itself: noise, ratio 1");
    tap_ok(strcmp(gs_verdict_name(GS_VERDICT_A), "A faster") == 0 && strcmp(gs_verdict_name(GS_VERDICT_B), "B faster") == 0 &&
               strcmp(gs_verdict_name(GS_VERDICT_NOISE), "noise") == 0,
           "verdict names");
    return tap_done();
}
