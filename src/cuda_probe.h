/* cuda_probe.h - what this build and this machine offer on the GPU side:
 * whether CUDA was compiled in, the devices, and whether CUPTI can trace.
 * `gptscope info` prints it; the backend factory decides with it. */
#ifndef GS_CUDA_PROBE_H
#define GS_CUDA_PROBE_H

#include <stddef.h>

#define GS_CUDA_MAX_DEVICES 16

typedef struct gs_cuda_probe_device {
    char name[128];
    int cc_major, cc_minor, sm_count;
    size_t total_bytes, free_bytes, l2_bytes;
} gs_cuda_probe_device;

typedef struct gs_cuda_probe {
    int compiled;          /* built with --with-cuda */
    int runtime_version, driver_version;
    int device_count;      /* <= 0: none usable, see reason */
    gs_cuda_probe_device devices[GS_CUDA_MAX_DEVICES];
    int cupti_usable;
    int cupti_version;
    char reason[256];      /* why there is no device */
    char cupti_reason[256];/* why CUPTI cannot trace */
} gs_cuda_probe;

void gs_cuda_probe_run(gs_cuda_probe *p);

#endif
