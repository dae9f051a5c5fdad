/* export_chrome.c - Chrome Trace Event Format JSON (Perfetto, chrome://tracing).
 *
 * One process for the device, a named thread per track, nested complete
 * events (ph X) for step > layer > op, counter tracks (ph C), markers as
 * global instants (ph i), metadata (ph M) for names and sort order.
 * Timestamps are microseconds from the first event with the nanoseconds kept
 * as three decimals (printed from integers: exact and fast). */
#include <string.h>

#include "export.h"
#include "export_common.h"

static const char *level_cat(int level)
{
    return level == 0 ? "step" : level == 1 ? "layer" : "op";
}

static void put_us(gs_outfile *o, uint64_t ns)
{
    gs_out_printf(o, "%llu.%03u", (unsigned long long)(ns / 1000), (unsigned)(ns % 1000));
}

static void track_name(char *buf, size_t cap, uint32_t track)
{
    if (track == GS_TRACK_HOST)
        snprintf(buf, cap, "host thread (engine)");
    else if (track >= 1000)
        snprintf(buf, cap, "stream %u", track - 1000);
    else
        snprintf(buf, cap, "track %u", track);
}

int gs_export_chrome(gs_event_store *s, const gs_export_info *info, const char *path, gs_error *err)
{
    gs_evlist l;
    if (gs_evlist_load(s, &l))
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory exporting %s", path);
    size_t len = strlen(path);
    gs_outfile o;
    int rc = gs_out_open(&o, path, len > 3 && strcmp(path + len - 3, ".gz") == 0, err);
    if (rc) {
        gs_evlist_free(&l);
        return rc;
    }
    const int pid = 1;
    gs_out_printf(&o, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    gs_out_printf(&o, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"tid\":0,\"ts\":0,\"args\":{\"name\":", pid);
    gs_out_json_string(&o, info && info->process_name ? info->process_name : "gptscope");
    gs_out_printf(&o, "}},\n{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":%d,\"tid\":0,\"ts\":0,"
                      "\"args\":{\"sort_index\":0}}",
                  pid);
    uint32_t prev_track = UINT32_MAX;
    for (size_t i = 0; i < l.n; i++) {
        const gs_event *ev = &l.ev[i];
        if (ev->track != prev_track && ev->kind != GS_EV_COUNTER && ev->kind != GS_EV_MARKER) {
            char tn[64];
            track_name(tn, sizeof tn, ev->track);
            gs_out_printf(&o, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%u,\"ts\":0,\"args\":{\"name\":\"%s\"}}",
                          pid, ev->track, tn);
            gs_out_printf(&o, ",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":%d,\"tid\":%u,\"ts\":0,"
                              "\"args\":{\"sort_index\":%u}}",
                          pid, ev->track, ev->track);
            prev_track = ev->track;
        }
        const char *name = gs_store_string(s, ev->name);
        uint64_t t = ev->t_ns - l.t0;
        switch (ev->kind) {
        case GS_EV_RANGE:
        case GS_EV_KERNEL:
            gs_out_printf(&o, ",\n{\"ph\":\"X\",\"cat\":\"%s\",\"name\":",
                          ev->kind == GS_EV_KERNEL ? "kernel" : level_cat(ev->level));
            if (ev->kind == GS_EV_RANGE && ev->level == 1 && ev->layer >= 0) {
                char nm[300];
                snprintf(nm, sizeof nm, "%s %d", name, ev->layer);
                gs_out_json_string(&o, nm);
            } else {
                gs_out_json_string(&o, name);
            }
            gs_out_printf(&o, ",\"pid\":%d,\"tid\":%u,\"ts\":", pid, ev->track);
            put_us(&o, t);
            gs_out_printf(&o, ",\"dur\":");
            put_us(&o, ev->dur_ns);
            gs_out_printf(&o, ",\"args\":{\"step\":%lld,\"layer\":%d", (long long)ev->step, ev->layer);
            if (ev->kind == GS_EV_KERNEL)
                gs_out_printf(&o, ",\"correlation\":%llu", (unsigned long long)ev->aux);
            gs_out_printf(&o, "}}");
            break;
        case GS_EV_COUNTER:
            gs_out_printf(&o, ",\n{\"ph\":\"C\",\"name\":");
            gs_out_json_string(&o, name);
            gs_out_printf(&o, ",\"pid\":%d,\"tid\":0,\"ts\":", pid);
            put_us(&o, t);
            /* JSON has no NaN or infinity: a non-finite sample becomes 0. */
            gs_out_printf(&o, ",\"args\":{\"value\":%.9g}}", ev->value == ev->value && ev->value < 1e300 && ev->value > -1e300 ? ev->value : 0.0);
            break;
        case GS_EV_MARKER:
            gs_out_printf(&o, ",\n{\"ph\":\"i\",\"s\":\"g\",\"name\":");
            gs_out_json_string(&o, name);
            gs_out_printf(&o, ",\"pid\":%d,\"tid\":0,\"ts\":", pid);
            put_us(&o, t);
            gs_out_printf(&o, ",\"args\":{\"step\":%lld}}", (long long)ev->step);
            break;
        default:
            break;
        }
    }
    gs_out_printf(&o, "\n],\"otherData\":{\"generator\":\"gptscope\",\"device\":");
    gs_out_json_string(&o, info && info->device ? info->device : "");
    gs_out_printf(&o, "}}\n");
    gs_evlist_free(&l);
    return gs_out_close(&o, err);
}
