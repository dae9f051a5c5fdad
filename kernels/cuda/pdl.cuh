// pdl.cuh - programmatic dependent launch (sm_90): a kernel launched with
// gs_launch_pdl may start while the kernel before it in the stream is still
// running, once every block of that one has called gs_pdl_trigger. It must
// call gs_pdl_wait before it reads anything an earlier kernel wrote or writes
// anything an earlier kernel reads; before that it may only touch memory no
// kernel of the step writes (weights). What it buys in a decode step of ~100
// short kernels: the next kernel's launch and block scheduling run under the
// previous kernel's tail instead of after it. Used by the decode GEMVs, the
// decode norm, kv_store and the split-K decode attention; the kernels before
// them trigger early.
//
// gs_pdl_wait returns at once in a kernel launched the ordinary way, and
// gs_pdl_trigger does nothing when no dependent was launched with the
// attribute, so a kernel may carry both and be launched either way. Below
// sm_90 both compile to nothing (PTX for older targets, never taken here).
// GS_PDL=0 in the environment launches every kernel the ordinary way (A/B),
// and so does a process whose kernels CUPTI records (device.h says why).
#pragma once
#include <cuda_runtime.h>

#include "device.h"

static __device__ __forceinline__ void gs_pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void gs_pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Whether launches take the attribute (device.h: GS_PDL=0, or kernels being
// recorded by CUPTI, turn it off).
static inline bool gs_pdl_enabled() { return gs_cuda_programmatic_launch_allowed() != 0; }

// kernel<<<grid, block, smem, stream>>>(args...) with the programmatic
// serialization attribute; the kernel must call gs_pdl_wait (see above).
template <typename... KArgs, typename... Args>
static cudaError_t gs_launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                 Args... args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = gs_pdl_enabled() ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}
