// device.cu - device discovery through the CUDA runtime, behind a C interface.
// Kept in kernels/cuda so every CUDA translation unit is built by nvcc; it
// launches no kernel, so it runs (and fails politely) on machines without a GPU.
#include <atomic>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "device.h"

extern "C" int gs_cuda_device_list(gs_cuda_device_info *out, int cap, char *reason, size_t reason_cap)
{
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        snprintf(reason, reason_cap, "%s (%s)", cudaGetErrorString(rc), cudaGetErrorName(rc));
        cudaGetLastError(); // clear the sticky-free error so later calls start clean
        return -1;
    }
    for (int i = 0; i < count && i < cap; i++) {
        cudaDeviceProp p;
        memset(&out[i], 0, sizeof out[i]);
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess)
            continue;
        snprintf(out[i].name, sizeof out[i].name, "%.127s", p.name);
        out[i].cc_major = p.major;
        out[i].cc_minor = p.minor;
        out[i].sm_count = p.multiProcessorCount;
        out[i].l2_bytes = (size_t)p.l2CacheSize;
        out[i].smem_per_block_optin = p.sharedMemPerBlockOptin;
        cudaDeviceGetAttribute(&out[i].clock_khz, cudaDevAttrClockRate, i);
        cudaDeviceGetAttribute(&out[i].mem_clock_khz, cudaDevAttrMemoryClockRate, i);
        cudaDeviceGetAttribute(&out[i].mem_bus_bits, cudaDevAttrGlobalMemoryBusWidth, i);
        out[i].total_bytes = p.totalGlobalMem;
        if (cudaSetDevice(i) == cudaSuccess) {
            size_t fr = 0, tot = 0;
            if (cudaMemGetInfo(&fr, &tot) == cudaSuccess)
                out[i].free_bytes = fr;
        }
    }
    return count;
}

extern "C" void gs_cuda_versions(int *runtime, int *driver)
{
    *runtime = 0;
    *driver = 0;
    cudaRuntimeGetVersion(runtime);
    cudaDriverGetVersion(driver);
}

extern "C" int gs_cuda_device_count(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return count;
}

extern "C" {
unsigned long long gs_cuda_launch_count = 0;
}

extern "C" unsigned long long gs_cuda_launches(void) { return gs_cuda_launch_count; }

// -1: not decided yet (the environment decides on first use).
static std::atomic<int> programmatic_launch{-1};

extern "C" void gs_cuda_allow_programmatic_launch(int on) { programmatic_launch.store(on ? 1 : 0); }

extern "C" int gs_cuda_programmatic_launch_allowed(void)
{
    int v = programmatic_launch.load(std::memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("GS_PDL");
        int want = !(e && e[0] == '0');
        // A collector that said no first keeps its no.
        programmatic_launch.compare_exchange_strong(v, want);
        v = programmatic_launch.load(std::memory_order_relaxed);
    }
    return v;
}
