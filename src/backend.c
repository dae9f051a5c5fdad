/* backend.c - picks a backend by name; the one place that knows the list. */
#include "backend.h"

#include <string.h>

#include "cuda_probe.h"

int gs_backend_create(gs_backend **out, const char *name, int threads, gs_error *err)
{
    *out = NULL;
    if (strcmp(name, "cpu") == 0)
        return gs_backend_cpu_create(out, threads, err);
    if (strcmp(name, "cuda") == 0 || strcmp(name, "auto") == 0) {
        gs_cuda_probe probe;
        gs_cuda_probe_run(&probe);
        if (strcmp(name, "auto") == 0)
            /* The CUDA forward pass lands with the CUDA backend; until then
             * auto means the CPU, whatever the probe found. */
            return gs_backend_cpu_create(out, threads, err);
        if (!probe.compiled)
            return gs_error_set(err, GS_ERR_RUNTIME,
                                "backend cuda: this build has no CUDA support (configure --with-cuda)");
        if (probe.device_count <= 0)
            return gs_error_set(err, GS_ERR_RUNTIME, "backend cuda: no usable GPU: %s", probe.reason);
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "backend cuda: the CUDA forward pass is not built yet; use --backend cpu");
    }
    return gs_error_set(err, GS_ERR_INPUT, "unknown backend '%s' (expected auto, cpu or cuda)", name);
}

void gs_backend_destroy(gs_backend *be)
{
    if (be)
        be->ops->destroy(be);
}
