/* cuda_probe.c - asks the CUDA runtime and CUPTI what they can do here. */
#include "cuda_probe.h"

#include <stdio.h>
#include <string.h>

#include "build_config.h"

#ifdef HAVE_CUDA
#include <cupti.h>

#include "cuda/device.h"
#endif

void gs_cuda_probe_run(gs_cuda_probe *p)
{
    memset(p, 0, sizeof *p);
#ifndef HAVE_CUDA
    snprintf(p->reason, sizeof p->reason, "built without CUDA (configure found no nvcc)");
    snprintf(p->cupti_reason, sizeof p->cupti_reason, "built without CUDA");
#else
    p->compiled = 1;
    gs_cuda_versions(&p->runtime_version, &p->driver_version);
    gs_cuda_device_info info[GS_CUDA_MAX_DEVICES];
    int n = gs_cuda_device_list(info, GS_CUDA_MAX_DEVICES, p->reason, sizeof p->reason);
    p->device_count = n;
    for (int i = 0; i < n && i < GS_CUDA_MAX_DEVICES; i++) {
        gs_cuda_probe_device *d = &p->devices[i];
        memcpy(d->name, info[i].name, sizeof d->name);
        d->name[sizeof d->name - 1] = '\0';
        d->cc_major = info[i].cc_major;
        d->cc_minor = info[i].cc_minor;
        d->sm_count = info[i].sm_count;
        d->total_bytes = info[i].total_bytes;
        d->free_bytes = info[i].free_bytes;
        d->l2_bytes = info[i].l2_bytes;
    }
    uint32_t ver = 0;
    if (cuptiGetVersion(&ver) != CUPTI_SUCCESS) {
        snprintf(p->cupti_reason, sizeof p->cupti_reason, "libcupti could not be queried");
        return;
    }
    p->cupti_version = (int)ver;
    if (n <= 0) {
        snprintf(p->cupti_reason, sizeof p->cupti_reason, "no GPU to trace");
        return;
    }
    /* Enabling kernel activity records is the first thing tracing needs. */
    CUptiResult rc = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (rc == CUPTI_SUCCESS) {
        cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
        p->cupti_usable = 1;
    } else {
        const char *msg = NULL;
        cuptiGetResultString(rc, &msg);
        snprintf(p->cupti_reason, sizeof p->cupti_reason, "cuptiActivityEnable: %s",
                 msg ? msg : "unknown error");
    }
#endif
}
