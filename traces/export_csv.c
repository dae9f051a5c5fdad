/* export_csv.c - one row per (level, name): calls and times. Bytes columns
 * stay empty until the analytic model and CUPTI metrics land (unavailable,
 * never zero). */
#include <string.h>

#include "export.h"
#include "export_common.h"

static const char *level_name(int level)
{
    return level == 0 ? "step" : level == 1 ? "layer" : level == 2 ? "op" : "kernel";
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
    gs_out_printf(&o, "level,name,calls,total_us,mean_us,min_us,max_us,share_of_steps_pct,bytes_modeled,bytes_measured\n");
    for (int i = 0; i < a.n_rows; i++) {
        const gs_agg_row *r = &a.rows[i];
        gs_out_printf(&o, "%s,", level_name(r->level));
        csv_field(&o, gs_store_string(s, r->name));
        gs_out_printf(&o, ",%ld,%.3f,%.3f,%.3f,%.3f,%.2f,,\n", r->calls, r->total_ns / 1e3,
                      r->total_ns / 1e3 / (double)r->calls, r->min_ns / 1e3, r->max_ns / 1e3,
                      a.step_ns ? 100.0 * (double)r->total_ns / (double)a.step_ns : 0.0);
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
