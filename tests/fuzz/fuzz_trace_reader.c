/* fuzz_trace_reader.c - libFuzzer target for the .gst reader (see README.md).
 * Any input must be read without a crash, leak or out-of-bounds access; when
 * it opens, the exporters run over what was read (the aggregate with its
 * metric join, Chrome JSON and folded stacks written to /dev/null), since
 * they too see whatever a hostile file put in the store. */
#include <stddef.h>
#include <stdint.h>

#include "../../traces/export.h"
#include "../../traces/trace_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gs_trace t;
    gs_error err;
    if (gs_trace_read_mem(data, size, "fuzz", &t, &err) == GS_OK) {
        gs_agg a;
        gs_agg_build(t.store, &a);
        gs_agg_free(&a);
        gs_export_info info = {t.device, t.device, 0};
        gs_export_chrome(t.store, &info, "/dev/null", &err);
        gs_export_folded(t.store, "/dev/null", 1000, &err);
        gs_trace_free(&t);
    }
    return 0;
}
