/* device.h - C interface to the CUDA runtime's device queries. */
#ifndef GS_CUDA_DEVICE_H
#define GS_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gs_cuda_device_info {
    char name[128];
    int cc_major, cc_minor;
    int sm_count;
    size_t total_bytes, free_bytes;
    size_t l2_bytes;
    size_t smem_per_block_optin;
    int clock_khz, mem_clock_khz, mem_bus_bits;
} gs_cuda_device_info;

/* Fills up to cap devices; returns the device count, or -1 with reason set
 * when the runtime cannot reach a device (no driver, no GPU). */
int gs_cuda_device_list(gs_cuda_device_info *out, int cap, char *reason, size_t reason_cap);
/* Kernels launched by gptscope's own launchers so far (not cuBLAS's). */
unsigned long long gs_cuda_launches(void);
/* Devices the runtime can reach; 0 when none (creates no context). */
int gs_cuda_device_count(void);
/* The runtime and driver versions (e.g. 13000), 0 when unknown. */
void gs_cuda_versions(int *runtime, int *driver);
/* Programmatic dependent launch of the decode kernels (pdl.cuh): allowed by
 * default (GS_PDL=0 in the environment forbids it); the CUPTI collector turns
 * it off while kernels are recorded, so each kernel's duration is its own. */
void gs_cuda_allow_programmatic_launch(int on);
int gs_cuda_programmatic_launch_allowed(void);

#ifdef __cplusplus
}
#endif

#endif
