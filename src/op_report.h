/* op_report.h - the headless per-op timing table (bench and the demo). */
#ifndef GS_OP_REPORT_H
#define GS_OP_REPORT_H

#include <stdio.h>

#include "ranges.h"

/* Op-level rows sorted by total time, with share of the step total. */
void gs_op_report_print(FILE *out, const gs_op_table *t, long steps);

#endif
