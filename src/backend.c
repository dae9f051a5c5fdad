/* backend.c - picks a backend by name; the one place that knows the list. */
#include "backend.h"

#include <string.h>

#include "build_config.h"
#ifdef HAVE_CUDA
#include "cuda/device.h"
#endif


int gs_backend_create(gs_backend **out, const char *name, int threads, gs_error *err)
{
    *out = NULL;
    if (strcmp(name, "cpu") == 0)
        return gs_backend_cpu_create(out, threads, err);
    if (strcmp(name, "cuda") == 0)
        return gs_backend_cuda_create(out, err);
    if (strcmp(name, "auto") == 0) {
        /* A GPU when one answers, else the CPU: the status line names which. */
        if (gs_backend_cuda_create(out, NULL) == GS_OK)
            return GS_OK;
        return gs_backend_cpu_create(out, threads, err);
    }
    return gs_error_set(err, GS_ERR_INPUT, "unknown backend '%s' (expected auto, cpu or cuda)", name);
}

int gs_backend_wants_cuda(const char *name)
{
#ifdef HAVE_CUDA
    if (strcmp(name, "cuda") == 0)
        return 1;
    return strcmp(name, "auto") == 0 && gs_cuda_device_count() > 0;
#else
    (void)name;
    return 0;
#endif
}

void gs_backend_destroy(gs_backend *be)
{
    if (be)
        be->ops->destroy(be);
}
