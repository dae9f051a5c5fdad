// embedding.cu - the CUDA twin of kernels/cpu/embedding.c: out[i] = wte[tokens[i]]
// (+ wpe[pos[i]] for GPT-2; wpe == NULL for Llama, whose positions come from RoPE).
//
// embed_kernel<VEC>: pure memory traffic, so the kernel only has to move rows at
// full width. Threads run across the columns of a row (x), blocks walk the rows
// (y, grid-stride because gridDim.y stops at 65535). A block reads its row's
// token and position id once and every thread reuses them; consecutive threads
// touch consecutive columns, so each warp's loads and stores are coalesced.
// VEC = true moves float4s (16 B per thread per access, a quarter of the
// instructions); it needs C % 4 == 0 and out, wte, wpe 16-byte aligned, which
// cudaMalloc'd tensors of a model with C a multiple of 4 always are. Anything
// else takes the scalar instantiation, which is the obvious per-float loop.
// Measured on an H100 (tests/gpu/test_cuda_kernels --bench), n = 8192, C = 3200:
// 109 us, 2.89 TB/s counting 12 bytes a float; a device-to-device copy moves 2.73 TB/s there.
// Token and position ids are not range checked: the engine validates them
// before they reach a kernel (as for the CPU twin).
#include <stdint.h>

#include "check_cuda.cuh"
#include "ops_cuda.h"
#include "pdl.cuh"

#define EMBED_MAX_THREADS 256
#define MAX_GRID_Y 65535

template <bool VEC>
__global__ void embed_kernel(float *__restrict__ out, const int *__restrict__ tokens, const int *__restrict__ pos,
                             const float *__restrict__ wte, const float *__restrict__ wpe, int n, int C)
{
    gs_pdl_trigger();  // the decode GEMV after this may launch and prefetch its weights now (pdl.cuh)
    const int units = VEC ? C / 4 : C;  // float4s or floats per row
    const int u = blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= units)
        return;  // no barrier or shuffle below, so idle threads may leave
    for (int i = blockIdx.y; i < n; i += gridDim.y) {
        // 64-bit row offsets: n * C and vocab * C both pass 2^31 on large models.
        const size_t o = (size_t)i * C;
        const size_t t = (size_t)__ldg(tokens + i) * C;
        if constexpr (VEC) {
            float4 a = __ldg(reinterpret_cast<const float4 *>(wte + t) + u);
            if (wpe) {
                const float4 p = __ldg(reinterpret_cast<const float4 *>(wpe + (size_t)__ldg(pos + i) * C) + u);
                a.x += p.x;
                a.y += p.y;
                a.z += p.z;
                a.w += p.w;
            }
            reinterpret_cast<float4 *>(out + o)[u] = a;
        } else {
            float a = __ldg(wte + t + u);
            if (wpe)
                a += __ldg(wpe + (size_t)__ldg(pos + i) * C + u);
            out[o + u] = a;
        }
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" int cuda_embed(float *out, const int *tokens, const int *pos, const float *wte, const float *wpe, int n,
                          int C, cudaStream_t stream)
{
    if (n <= 0 || C <= 0)
        return 0;
    const bool vec = C % 4 == 0 && aligned16(out) && aligned16(wte) && (!wpe || aligned16(wpe));
    const int units = vec ? C / 4 : C;
    // A block as wide as the row (rounded to whole warps), at most 256 threads.
    const int threads = units >= EMBED_MAX_THREADS ? EMBED_MAX_THREADS : (units + 31) / 32 * 32;
    const dim3 grid(gs_ceil_div(units, threads), n < MAX_GRID_Y ? n : MAX_GRID_Y);
    if (vec)
        embed_kernel<true><<<grid, threads, 0, stream>>>(out, tokens, pos, wte, wpe, n, C);
    else
        embed_kernel<false><<<grid, threads, 0, stream>>>(out, tokens, pos, wte, wpe, n, C);
    CUDA_LAUNCHED();
    return 0;
}
