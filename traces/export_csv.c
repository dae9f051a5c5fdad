/* export_csv.c - one row per (level, name): steps, layers, ops, kernels,
 * copies and sets, with calls and times. Bytes are measured ones only:
 * copies and sets carry theirs; kernels and ops have DRAM bytes on the calls
 * that CUPTI metrics sampled (bytes_measured_calls says how many). A byte
 * column with nothing measured stays empty (unavailable, never zero);
 * bytes_modeled waits for the analytic model. */
#include <string.h>

#include "export.h"
#include "export_common.h"

static const char *level_name(int level)
{
    return level == 0 ? "step" : level == 1 ? "layer" : level == 2 ? "op" : level == GS_AGG_KERNEL ? "kernel"
         : level == GS_AGG_MEMCPY ? "memcpy" : "memset";
}

static void csv_field(gs_outfile *o, const char *s)
{
    gs_out_write(o, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            gs_out_write(o, "\"\"", 2);
        else if (*s == '\n' || *s == '\r')
            gs_out_write(o, " ", 1);
        else
            gs_out_write(o, s, 1);
    }
    gs_out_write(o, "\"", 1);
}

int gs_export_csv(gs_event_store *s, const char *path, gs_error *err)
{
    gs_agg a;
    if (gs_agg_build(s, &a)) {
        gs_agg_free(&a);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
    }
    gs_agg_sort(&a);
    gs_outfile o;
    int rc = gs_out_open(&o, path, 0, err);
    if (rc) {
        gs_agg_free(&a);
        return rc;
    }
    gs_out_printf(&o, "level,name,calls,total_us,mean_us,min_us,max_us,share_of_steps_pct,bytes_modeled,"
                      "bytes_measured_per_call,bytes_measured_calls,achieved_GBps\n");
    for (int i = 0; i < a.n_rows; i++) {
        const gs_agg_row *r = &a.rows[i];
        gs_out_printf(&o, "%s,", level_name(r->level));
        csv_field(&o, gs_store_string(s, r->name));
        gs_out_printf(&o, ",%ld,%.3f,%.3f,%.3f,%.3f,%.2f,,", r->calls, r->total_ns / 1e3,
                      r->total_ns / 1e3 / (double)r->calls, r->min_ns / 1e3, r->max_ns / 1e3,
                      a.step_ns ? 100.0 * (double)r->total_ns / (double)a.step_ns : 0.0);
        if (r->bytes_calls > 0) {
            gs_out_printf(&o, "%.0f,%ld,", r->bytes / (double)r->bytes_calls, r->bytes_calls);
            /* Device records only: an op's host time is not the time its bytes moved in. */
            if (r->bytes_ns > 0 && r->level >= GS_AGG_KERNEL)
                gs_out_printf(&o, "%.3f", r->bytes / (double)r->bytes_ns); /* bytes per ns = GB/s */
            gs_out_lit(&o, "\n");
        } else {
            gs_out_lit(&o, ",,\n");
        }
    }
    gs_agg_free(&a);
    return gs_out_close(&o, err);
}

int gs_export_format_parse(const char *s)
{
    if (strcmp(s, "chrome") == 0 || strcmp(s, "json") == 0)
        return GS_EXPORT_CHROME;
    if (strcmp(s, "folded") == 0)
        return GS_EXPORT_FOLDED;
    if (strcmp(s, "csv") == 0)
        return GS_EXPORT_CSV;
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int gs_export_format_from_name(const char *path)
{
    if (ends_with(path, ".json") || ends_with(path, ".json.gz"))
        return GS_EXPORT_CHROME;
    if (ends_with(path, ".folded") || ends_with(path, ".txt"))
        return GS_EXPORT_FOLDED;
    if (ends_with(path, ".csv"))
        return GS_EXPORT_CSV;
    return -1;
}
