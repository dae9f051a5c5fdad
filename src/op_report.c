/* op_report.c - prints the host-timer op table, biggest first. */
#include "op_report.h"

#include <stdlib.h>
#include <string.h>

static int by_total_desc(const void *a, const void *b)
{
    const gs_op_table_row *x = *(const gs_op_table_row *const *)a, *y = *(const gs_op_table_row *const *)b;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : strcmp(x->name, y->name);
}

void gs_op_report_print(FILE *out, const gs_op_table *t, long steps)
{
    const gs_op_table_row *rows[GS_OP_TABLE_MAX];
    int n = 0;
    uint64_t step_ns = 0, op_ns = 0;
    for (int i = 0; i < t->n_rows; i++) {
        if (t->rows[i].level == GS_RANGE_OP) {
            rows[n++] = &t->rows[i];
            op_ns += t->rows[i].total_ns;
        } else if (t->rows[i].level == GS_RANGE_STEP) {
            step_ns += t->rows[i].total_ns;
        }
    }
    qsort(rows, (size_t)n, sizeof rows[0], by_total_desc);
    if (steps < 1)
        steps = 1;
    fprintf(out, "%-16s %8s %12s %12s %7s   (host wall time, measured)\n", "op", "calls", "total ms",
            "us/step", "share");
    for (int i = 0; i < n; i++) {
        double share = step_ns ? 100.0 * (double)rows[i]->total_ns / (double)step_ns : 0.0;
        fprintf(out, "%-16s %8ld %12.3f %12.1f %6.1f%%\n", rows[i]->name, rows[i]->count,
                (double)rows[i]->total_ns * 1e-6, (double)rows[i]->total_ns * 1e-3 / (double)steps, share);
    }
    if (step_ns) {
        double other = step_ns > op_ns ? (double)(step_ns - op_ns) : 0.0;
        fprintf(out, "%-16s %8s %12.3f %12.1f %6.1f%%\n", "(between ops)", "", other * 1e-6,
                other * 1e-3 / (double)steps, 100.0 * other / (double)step_ns);
        fprintf(out, "%-16s %8ld %12.3f %12.1f %6.1f%%\n", "step total", steps, (double)step_ns * 1e-6,
                (double)step_ns * 1e-3 / (double)steps, 100.0);
    }
}
