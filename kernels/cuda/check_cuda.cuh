// check_cuda.cuh - the one macro every CUDA call and launch goes through.
// A failed call returns its error code from the enclosing C-interface
// function; the caller (backend_cuda.c) turns it into one line naming the
// call. Launches are checked with cudaGetLastError right after, as llm.c does.
#pragma once
#include <cuda_runtime.h>
#include <stdio.h>

#define CUDA_TRY(call)                                                                     \
    do {                                                                                   \
        cudaError_t gs_err_ = (call);                                                      \
        if (gs_err_ != cudaSuccess) {                                                      \
            fprintf(stderr, "gptscope: CUDA error %s at %s:%d in %s\n",                    \
                    cudaGetErrorString(gs_err_), __FILE__, __LINE__, #call);               \
            return (int)gs_err_;                                                           \
        }                                                                                  \
    } while (0)

// Every launch is counted, so tests can check that the profiler saw each
// kernel the engine launched (cuBLAS's own launches are not counted).
extern "C" unsigned long long gs_cuda_launch_count;

#define CUDA_LAUNCHED()                    \
    do {                                   \
        gs_cuda_launch_count++;            \
        CUDA_TRY(cudaGetLastError());      \
    } while (0)

static inline int gs_ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

// The SM count of the current device, read once per device (gemv.cu): grids
// are sized by it on every launch, and a driver query each time is not free.
cudaError_t gs_cuda_sm_count(int *sms);
