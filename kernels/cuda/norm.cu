// norm.cu - the CUDA twins of kernels/cpu/norm.c: LayerNorm (GPT-2) and RMSNorm
// (Llama) over n rows of width C. Both kernels take RMS as a template flag: the
// two norms differ only in their statistics and their last line.
//
// All versions put one warp on a row (8 rows per 256-thread block), as llm.c's
// layernorm_forward kernel3: each lane keeps partial sums in registers and the
// warp combines them with xor shuffles, so every lane ends with the total and
// no shared memory or __syncthreads is needed.
//
// norm_kernel<RMS, VEC> (any C; the general path): streams the row from memory
// once per pass. LayerNorm takes three passes (mean; squared deviations;
// normalize and write), RMSNorm two. Only the first comes from DRAM, the rest
// from L1/L2, but at full occupancy an SM holds 64 rows in flight, more than
// its L1, so later passes fall to L2: on an H100 at n = 8192, C = 3200, 149 us
// (1.40 TB/s) for LayerNorm and 117 us (1.80 TB/s) for RMSNorm, against a
// device-to-device copy's 2.73 TB/s. VEC = true moves float4s (needs
// C % 4 == 0 and 16-byte aligned pointers); VEC = false is the same code one
// float per lane per step, the obvious version, for odd C or odd pointers.
// norm_reg_kernel<RMS, NV> (C % 4 == 0, C <= 128 * NV, aligned): each lane
// loads its NV float4s of the row into registers once, so the row crosses
// memory exactly once each way; the passes then run over registers. NV is a
// compile-time bound (registers cannot be indexed at run time); the launcher
// picks the smallest instantiation that holds the row, up to C = 4096. Wider
// rows take norm_kernel. Same shape on the H100: LayerNorm 89 us (2.35 TB/s),
// RMSNorm 85 us (2.47 TB/s).
//
// Statistics, as the CPU twin: two passes for LayerNorm (mean, then squared
// deviations from it), never E[x^2] - mean^2, which cancels when the mean is
// large against the spread. Both passes work on x - K with K = x[0] of the row
// (the "shifted data" algorithm): with mean 300 and spread 1, a float sum of
// raw x loses the mean's low bits and a float mean of 300 is itself 3e-5 off,
// the size of the spread's detail; x - K is exact there (Sterbenz) and small.
// One extra add per element; the test checks such rows at 1e-5. Sums are in
// float (the _ref twins use double; the test compares with those); 1.0f / sqrtf
// rather than rsqrtf, once per row, so the rounding matches the CPU fast path.
//
// Output type OT (half_out.cuh): fp32, or the fp16/bf16 rows a half-precision
// product reads (cuda_norm_half), rounded once from the same fp32 values by
// the rounding cuda_convert_to_half uses: equal to the fp32 norm converted,
// bit for bit, without the conversion's pass over the rows.
//
// A warp's lanes all share one row, so a warp past the last row leaves as a
// whole and the full-mask shuffles of the remaining warps stay valid.
// An fp32 out may equal in (the engine normalizes the gathered rows in place): each
// element is read by the lane that writes it, before it writes it, and the
// statistics end at a warp shuffle before any store; so in and out are not
// __restrict__, and x is read with plain loads, not the read-only path.
#include <stdint.h>

#include "check_cuda.cuh"
#include "half_out.cuh"
#include "norm_stats.cuh"
#include "pdl.cuh"
#include "ops_cuda.h"

#define NORM_THREADS 256
#define NORM_ROWS_PER_BLOCK (NORM_THREADS / 32)

// The sum over the warp, in every lane.
static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

static __device__ __forceinline__ float4 sub4(float4 v, float k)
{
    return make_float4(v.x - k, v.y - k, v.z - k, v.w - k);
}

static __device__ __forceinline__ float sum4(float4 v) { return (v.x + v.y) + (v.z + v.w); }
static __device__ __forceinline__ float sumsq4(float4 v) { return (v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w); }

// LayerNorm's output from d = (x - K) - dm: (rstd * d) * w + b, as the CPU twin orders it.
static __device__ __forceinline__ float4 ln_out4(float4 d, float rstd, float4 w, float4 b)
{
    return make_float4((rstd * d.x) * w.x + b.x, (rstd * d.y) * w.y + b.y, (rstd * d.z) * w.z + b.z,
                       (rstd * d.w) * w.w + b.w);
}

// RMSNorm's output: w * (r * x), as the CPU twin orders it.
static __device__ __forceinline__ float4 rms_out4(float4 x, float r, float4 w)
{
    return make_float4(w.x * (r * x.x), w.y * (r * x.y), w.z * (r * x.z), w.w * (r * x.w));
}

// ---- the general kernel: any C, row streamed once per pass ----

template <bool RMS, bool VEC, int OT>
__global__ void __launch_bounds__(NORM_THREADS)
    norm_kernel(void *out, const float *in, const float *__restrict__ w, const float *__restrict__ b, int n, int C,
                float eps)
{
    const int lane = threadIdx.x % 32;
    const long row = (long)blockIdx.x * NORM_ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= n)
        return;  // the whole warp leaves together
    const float *x = in + (size_t)row * C;  // 64-bit: n * C passes 2^31 in a long prefill
    const size_t o = (size_t)row * C, o4 = o / 4;  // the row's first element (float4) of out
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);

    if constexpr (RMS) {
        float ss = 0.0f;
        if constexpr (VEC)
            for (int c = lane; c < C / 4; c += 32)
                ss += sumsq4(x4[c]);
        else
            for (int c = lane; c < C; c += 32)
                ss += x[c] * x[c];
        const float r = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);
        if constexpr (VEC)
            for (int c = lane; c < C / 4; c += 32)
                out_store4<OT>(out, o4 + c, rms_out4(x4[c], r, __ldg(w4 + c)));
        else
            for (int c = lane; c < C; c += 32)
                out_store1<OT>(out, o + c, __ldg(w + c) * (r * x[c]));
    } else {
        // The shift: every lane reads the same x[0] (one broadcast load). In
        // place, lane 0 overwrites x[0] only after both warp_sums, which every
        // lane reaches after this read.
        const float K = x[0];
        float s = 0.0f;
        if constexpr (VEC)
            for (int c = lane; c < C / 4; c += 32)
                s += sum4(sub4(x4[c], K));
        else
            for (int c = lane; c < C; c += 32)
                s += x[c] - K;
        const float dm = warp_sum(s) / (float)C;  // mean - K; x - mean is taken as (x - K) - dm

        float ss = 0.0f;  // second pass: squared deviations
        if constexpr (VEC)
            for (int c = lane; c < C / 4; c += 32)
                ss += sumsq4(sub4(sub4(x4[c], K), dm));
        else
            for (int c = lane; c < C; c += 32) {
                const float d = (x[c] - K) - dm;
                ss += d * d;
            }
        const float rstd = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);

        if constexpr (VEC) {
            const float4 *b4 = reinterpret_cast<const float4 *>(b);
            for (int c = lane; c < C / 4; c += 32)
                out_store4<OT>(out, o4 + c, ln_out4(sub4(sub4(x4[c], K), dm), rstd, __ldg(w4 + c), __ldg(b4 + c)));
        } else {
            for (int c = lane; c < C; c += 32)
                out_store1<OT>(out, o + c, (rstd * ((x[c] - K) - dm)) * __ldg(w + c) + __ldg(b + c));
        }
    }
}

// ---- the fast kernel: the row held in registers, one trip through memory ----

template <bool RMS, int NV, int OT>
__global__ void __launch_bounds__(NORM_THREADS)
    norm_reg_kernel(void *out, const float *in, const float *__restrict__ w, const float *__restrict__ b, int n,
                    int C, float eps)
{
    const int lane = threadIdx.x % 32;
    const long row = (long)blockIdx.x * NORM_ROWS_PER_BLOCK + threadIdx.x / 32;
    if (row >= n)
        return;  // the whole warp leaves together
    const int C4 = C / 4;
    const float4 *x4 = reinterpret_cast<const float4 *>(in + (size_t)row * C);
    const size_t o4 = (size_t)row * C4;  // the row's first float4 of out
    const float4 *w4 = reinterpret_cast<const float4 *>(w);

    // Lane l holds float4s l, l + 32, l + 64, ...: each load instruction is one
    // coalesced 512-byte row segment for the warp. All loads issue before any
    // use, NV in flight per lane. Slots past the row are zero and skipped.
    float4 v[NV];
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int c = lane + 32 * k;
        v[k] = c < C4 ? x4[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }

    if constexpr (RMS) {
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++)
            ss += sumsq4(v[k]);  // zero slots add nothing
        const float r = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int c = lane + 32 * k;
            if (c < C4)
                out_store4<OT>(out, o4 + c, rms_out4(v[k], r, __ldg(w4 + c)));
        }
    } else {
        // K = x[0], lane 0's first element (C >= 4 here, so slot 0 of lane 0 is real).
        const float K = __shfl_sync(0xffffffffu, v[0].x, 0);
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++)
            if (lane + 32 * k < C4)
                s += sum4(sub4(v[k], K));
        const float dm = warp_sum(s) / (float)C;
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            v[k] = sub4(sub4(v[k], K), dm);  // v now holds x - mean
            if (lane + 32 * k < C4)
                ss += sumsq4(v[k]);
        }
        const float rstd = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);
        const float4 *b4 = reinterpret_cast<const float4 *>(b);
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int c = lane + 32 * k;
            if (c < C4)
                out_store4<OT>(out, o4 + c, ln_out4(v[k], rstd, __ldg(w4 + c), __ldg(b4 + c)));
        }
    }
}

// ---- decode: the block on one row ----

// norm_block_kernel<RMS> (n <= NORM_BLOCK_MAX_ROWS, C % 4 == 0, C <= 4096,
// aligned): block j normalizes row j with all its 256 threads
// (gs_block_row_stats): one load round trip and two reductions, where a warp
// on a decode row waits on a chain of loads (1600 wide: 5.3 us on an H100).
// The order of operations is the folded norm's (norm_fold.h), so a product
// that folds the norm gets the bits this kernel writes. OT as the others: the
// half rows are these fp32 values rounded once.
#define NORM_BLOCK_MAX_ROWS 16
template <bool RMS, int OT>
__global__ void __launch_bounds__(NORM_THREADS)
    norm_block_kernel(void *out, const float *in, const float *__restrict__ w, const float *__restrict__ b, int C,
                      float eps)
{
    gs_pdl_trigger();
    gs_pdl_wait();  // launched programmatically after a decode GEMV (pdl.cuh)
    __shared__ float red[32];
    const float *x = in + (size_t)blockIdx.x * C;
    const int kind = RMS ? GS_NORM_FOLD_RMS : GS_NORM_FOLD_LAYER;
    // Every element's read happens before the statistics' barriers, so in place works.
    const gs_row_stats st = gs_block_row_stats<GS_BLOCK_STATS_QMAX>(x, C, kind, eps, red);
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    const float4 *b4 = reinterpret_cast<const float4 *>(b);
    const size_t o4 = (size_t)blockIdx.x * (C / 4);  // the row's first float4 of out
    for (int c = threadIdx.x; c < C / 4; c += blockDim.x) {
        const float4 v = x4[c], g = __ldg(w4 + c);
        const float4 bb = RMS ? make_float4(0.0f, 0.0f, 0.0f, 0.0f) : __ldg(b4 + c);
        out_store4<OT>(out, o4 + c, gs_norm_apply4(v, st, g, bb, kind));
    }
}

// ---- launcher ----

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <bool RMS, int NV, int OT>
static void reg_launch(int blocks, cudaStream_t stream, void *out, const float *in, const float *w, const float *b,
                       int n, int C, float eps)
{
    norm_reg_kernel<RMS, NV, OT><<<blocks, NORM_THREADS, 0, stream>>>(out, in, w, b, n, C, eps);
}

template <bool RMS, int OT>
static int norm_launch(void *out, const float *in, const float *w, const float *b, int n, int C, float eps,
                       cudaStream_t stream)
{
    if (n <= 0 || C <= 0)
        return 0;
    const int blocks = gs_ceil_div(n, NORM_ROWS_PER_BLOCK);
    // Four outputs a store: 16 bytes of fp32, 8 of halves.
    const bool out_ok = OT == GS_OUT_F32 ? aligned16(out) : ((uintptr_t)out & 7) == 0;
    const bool vec = C % 4 == 0 && out_ok && aligned16(in) && aligned16(w) && (RMS || aligned16(b));
    // float4s per lane: the smallest instantiation that holds the row. The list
    // fits GPT-2's widths closely (768: 6, 1024: 8, 1280: 10 -> 12, 1600: 12.5 -> 16)
    // and Llama's 4096 (32); each unused slot costs four registers, no traffic.
    const int per_lane = (C / 4 + 31) / 32;
    if (vec && n <= NORM_BLOCK_MAX_ROWS && C / 4 <= GS_BLOCK_STATS_QMAX * NORM_THREADS) {
        CUDA_TRY(gs_launch_pdl(norm_block_kernel<RMS, OT>, n, NORM_THREADS, 0, stream, out, in, w, b, C, eps));
        CUDA_LAUNCHED();
        return 0;
    }
    if (!vec)
        norm_kernel<RMS, false, OT><<<blocks, NORM_THREADS, 0, stream>>>(out, in, w, b, n, C, eps);
    else if (per_lane <= 1)
        reg_launch<RMS, 1, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 2)
        reg_launch<RMS, 2, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 4)
        reg_launch<RMS, 4, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 6)
        reg_launch<RMS, 6, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 8)
        reg_launch<RMS, 8, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 12)
        reg_launch<RMS, 12, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 16)
        reg_launch<RMS, 16, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 24)
        reg_launch<RMS, 24, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else if (per_lane <= 32)
        reg_launch<RMS, 32, OT>(blocks, stream, out, in, w, b, n, C, eps);
    else
        norm_kernel<RMS, true, OT><<<blocks, NORM_THREADS, 0, stream>>>(out, in, w, b, n, C, eps);
    CUDA_LAUNCHED();
    return 0;
}

extern "C" int cuda_layernorm(float *out, const float *in, const float *w, const float *b, int n, int C, float eps,
                              cudaStream_t stream)
{
    return norm_launch<false, GS_OUT_F32>(out, in, w, b, n, C, eps, stream);
}

extern "C" int cuda_rmsnorm(float *out, const float *in, const float *w, int n, int C, float eps, cudaStream_t stream)
{
    return norm_launch<true, GS_OUT_F32>(out, in, w, NULL, n, C, eps, stream);
}

extern "C" int cuda_norm_half(void *out, const float *in, const float *w, const float *b, int rms, int n, int C,
                              float eps, int is_bf16, cudaStream_t stream)
{
    if (rms)
        return is_bf16 ? norm_launch<true, GS_OUT_BF16>(out, in, w, NULL, n, C, eps, stream)
                       : norm_launch<true, GS_OUT_F16>(out, in, w, NULL, n, C, eps, stream);
    return is_bf16 ? norm_launch<false, GS_OUT_BF16>(out, in, w, b, n, C, eps, stream)
                   : norm_launch<false, GS_OUT_F16>(out, in, w, b, n, C, eps, stream);
}
