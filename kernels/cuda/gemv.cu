// gemv.cu - decode-time products with half-precision weights: out = in . w^T
// (+ bias) for n = 1..16 token rows, w an [m][k] fp16 or bf16 matrix; and the
// fp32 -> fp16/bf16 conversion that makes such weights. The CPU twin is the
// test's double-precision product over the de-quantized weights
// (tests/gpu/test_cuda_gemv.c).
//
// The product is memory-bound on w: m * k * 2 bytes against n * (k + m) * 4
// for the activations, so every w element must cross DRAM once and be used
// for all n rows while it is in registers.
//
// gemv_kernel<BF16, NB, V>: a warp owns R = 4 consecutive rows of w (output
// columns) and walks k with its lanes side by side, V elements per lane per
// step: V = 8 is one 16-byte load per row per lane (the warp reads 512
// contiguous bytes of each row per instruction), V = 1 is the obvious scalar
// version for odd k or pointers that are not 16-byte aligned. Each w vector is
// widened to fp32 once and multiplied into NB accumulator rows; the n rows of
// `in` come through the read-only path (__ldg) and stay in L1, since every
// warp of an SM walks the same k range (in is n * k * 4 bytes; 48 KB at
// n = 4, k = 3072). Holding R rows per warp divides that L1 traffic by R.
// w itself is loaded with L1::no_allocate so the stream of weights does not
// push `in` out of L1. For n <= 4 each lane issues two steps of loads (2R
// 16-byte loads) before the first multiply, so enough bytes are in flight to
// cover DRAM latency at low occupancy.
//
// Small m (768 columns = 192 warps, not 2 per SM) would leave most of the
// machine idle, so S warps of a block may split one row group's k range
// (S in 1, 2, 4, 8, chosen by the launcher until there are ~16 warps per SM or
// the slices get shorter than 1.5 vectors per lane); their partial sums meet
// in shared memory and are added in a fixed order, so results are
// deterministic run to run.
//
// Reduction across the warp: R * NB partial sums per lane. A plain xor-shuffle
// tree per value costs 5 * R * NB shuffles (320 at n = 16); a reduce-scatter
// butterfly halves the values a lane holds at each step (lane bit o set keeps
// the upper half and receives its partner's upper half), NV/2 + NV/4 + ...
// shuffles, 62 at n = 16, after which lane l holds distinct totals.
//
// n is rounded up to NB in {1, 2, 4, 8, 16} (accumulator arrays need a
// compile-time size); rows past n are skipped by a warp-uniform branch.
//
// Measured on an H100 (tests/gpu/test_cuda_gemv --bench; back-to-back calls,
// w rotated through 256 MB so it comes from DRAM; device-to-device copy
// 2.79 TB/s): k = 768, m = 50257 (GPT-2's logits) 28.5 us at n = 1, 2.70 TB/s
// of w, 97% of the copy; 85% at n = 3, 65% at n = 8, 43% at n = 16, where the
// 16 fp32 FMAs per weight and the L1 reads of `in` bound it rather than DRAM.
// k = 1600, m = 6400: 1.84 TB/s (66%) at n = 1. Calls under ~5 us (every GPT-2
// 124M layer matrix) measured the host's launch rate, not the kernel: the
// 64 x 512 product took as long (4.6 us) as 768 x 3072 (5.4 us).
#include <atomic>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "activation.cuh"
#include "check_cuda.cuh"
#include "gemv_common.cuh"
#include "gemv_cuda.h"
#include "half_out.cuh"

#define GEMV_THREADS 256
#define GEMV_WARPS (GEMV_THREADS / 32)
#define GEMV_R 4     // rows of w per warp
#define GEMV_NMAX 16 // token rows per pass

// ---- loads and widening ----

template <bool BF16> static __device__ __forceinline__ float widen1(uint32_t h)
{
    if constexpr (BF16)
        return __uint_as_float(h << 16);  // bf16 is the top half of an fp32: exact
    else
        return __half2float(__ushort_as_half((unsigned short)h));
}

template <bool BF16> static __device__ __forceinline__ float2 widen2(uint32_t word)
{
    if constexpr (BF16)
        return make_float2(__uint_as_float(word << 16), __uint_as_float(word & 0xffff0000u));
    else
        return make_float2(widen1<false>(word & 0xffffu), widen1<false>(word >> 16));
}

// The raw w words of one step of one row: 8 halves in a uint4, or 1 half.
template <int V> struct wraw;
template <> struct wraw<8> { uint4 u; };
template <> struct wraw<1> { uint32_t h; };

template <int V> static __device__ __forceinline__ wraw<V> load_w(const uint16_t *p)
{
    wraw<V> r;
    if constexpr (V == 8)
        r.u = ld_w16(p);
    else
        r.h = __ldg(reinterpret_cast<const unsigned short *>(p));
    return r;
}

template <bool BF16, int V> static __device__ __forceinline__ void widen(const wraw<V> &r, float (&f)[V])
{
    if constexpr (V == 8) {
        const uint32_t words[4] = {r.u.x, r.u.y, r.u.z, r.u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 p = widen2<BF16>(words[i]);
            f[2 * i] = p.x;
            f[2 * i + 1] = p.y;
        }
    } else {
        f[0] = widen1<BF16>(r.h);
    }
}

template <int V> static __device__ __forceinline__ void load_x(const float *p, float (&x)[V])
{
    if constexpr (V == 8) {
        const float4 a = __ldg(reinterpret_cast<const float4 *>(p));
        const float4 b = __ldg(reinterpret_cast<const float4 *>(p) + 1);
        x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
        x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    } else {
        x[0] = __ldg(p);
    }
}

// One step: the R rows' V weights at element e into acc[j * R + r].
template <bool BF16, int NB, int V>
static __device__ __forceinline__ void gemv_step(float (&acc)[GEMV_R * NB], const wraw<V> (&raw)[GEMV_R],
                                                 const float *__restrict__ in, long e, int n, int k)
{
    float wf[GEMV_R][V];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
        widen<BF16, V>(raw[r], wf[r]);
#pragma unroll
    for (int j = 0; j < NB; j++) {
        if (j < n) {  // uniform over the grid
            float x[V];
            load_x<V>(in + (long)j * k + e, x);
#pragma unroll
            for (int r = 0; r < GEMV_R; r++)
#pragma unroll
                for (int t = 0; t < V; t++)
                    acc[j * GEMV_R + r] = fmaf(wf[r][t], x[t], acc[j * GEMV_R + r]);
        }
    }
}

// ---- the kernel ----

template <bool BF16, int NB, int V>
__global__ void __launch_bounds__(GEMV_THREADS)
    gemv_kernel(float *__restrict__ out, const float *__restrict__ in, const uint16_t *__restrict__ w,
                const float *__restrict__ bias, int n, int k, int m, int S, int epi)
{
    constexpr int R = GEMV_R;
    constexpr int NV = R * NB;           // partial sums per lane
    constexpr int U = NB <= 4 ? 2 : 1;   // steps of loads issued before the first use
    constexpr int HOLD = NV >= 32 ? NV / 32 : 1;  // totals per lane after the reduce-scatter
    __shared__ float part[GEMV_WARPS][NV];

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int s = warp % S;  // this warp's slice of k
    const int G = GEMV_WARPS / S;
    const long row0 = ((long)blockIdx.x * G + warp / S) * R;

    // Rows past m load row m - 1 (valid memory) and are not stored: the whole
    // block must reach the barrier below, and the shuffles need every lane.
    const uint16_t *wr[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        wr[r] = w + (size_t)min(row0 + r, (long)m - 1) * k;

    float acc[NV];
#pragma unroll
    for (int i = 0; i < NV; i++)
        acc[i] = 0.0f;

    const int nsteps = k / V;  // the launcher picks V = 8 only when k % 8 == 0
    const int stride = 32 * S;
    int v = s * 32 + lane;
    for (; v + (U - 1) * stride < nsteps; v += U * stride) {
        wraw<V> raw[U][R];
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++)
                raw[u][r] = load_w<V>(wr[r] + (long)(v + u * stride) * V);
#pragma unroll
        for (int u = 0; u < U; u++)
            gemv_step<BF16, NB, V>(acc, raw[u], in, (long)(v + u * stride) * V, n, k);
    }
    if constexpr (U > 1) {
        if (v < nsteps) {  // at most one step left over
            wraw<V> raw[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                raw[r] = load_w<V>(wr[r] + (long)v * V);
            gemv_step<BF16, NB, V>(acc, raw, in, (long)v * V, n, k);
        }
    }

    // Reduce-scatter over the warp (see the head of the file). idx: the index
    // of acc[0] after it; lanes that differ only in bits of the non-halving
    // steps hold the same totals, and the lowest of them stores.
    int idx = 0;
    reduce_scatter<NV, 0>(acc, lane, idx);
    constexpr int COPIES = NV >= 32 ? 1 : 32 / NV;
    const bool holder = lane % COPIES == 0;

    if (S == 1) {
        if (holder) {
#pragma unroll
            for (int i = 0; i < HOLD; i++) {
                const int q = idx + i, j = q / R;
                const long row = row0 + q % R;
                if (j < n && row < m)
                    store_out(out + (long)j * m + row, acc[i] + (bias ? __ldg(bias + row) : 0.0f), epi);
            }
        }
        return;
    }
    if (holder) {
#pragma unroll
        for (int i = 0; i < HOLD; i++)
            part[warp][idx + i] = acc[i];
    }
    __syncthreads();
    // One thread per (row group, partial): the S slices added in slice order.
    const int t = threadIdx.x;
    if (t < G * NV) {
        const int g = t / NV, q = t % NV, j = q / R;
        const long row = ((long)blockIdx.x * G + g) * R + q % R;
        if (j < n && row < m) {
            float sum = part[g * S][q];
            for (int i = 1; i < S; i++)
                sum += part[g * S + i][q];
            store_out(out + (long)j * m + row, sum + (bias ? __ldg(bias + row) : 0.0f), epi);
        }
    }
}

// ---- fp32 -> fp16 / bf16 ----

// half_bits (half_out.cuh): the rounding the norm and GELU kernels that write
// halves directly share, so their rows equal this conversion's bit for bit.
template <bool BF16> __global__ void convert_kernel(uint16_t *__restrict__ out, const float *__restrict__ in, long count)
{
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x)
        out[i] = half_bits<BF16>(in[i]);
}

// ---- launchers ----

// The SM count sizes the grids. Asking the driver on every call put an
// attribute query on the decode hot path (~100 calls a step), so it is read
// once per device; the value never changes, so a racing first read is harmless.
cudaError_t gs_cuda_sm_count(int *sms)
{
    static std::atomic<int> cached[64];
    int dev = 0;
    cudaError_t rc = cudaGetDevice(&dev);
    if (rc != cudaSuccess)
        return rc;
    if (dev < 0 || dev >= 64)
        return cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev);
    int v = cached[dev].load(std::memory_order_relaxed);
    if (v == 0) {
        if ((rc = cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess)
            return rc;
        cached[dev].store(v, std::memory_order_relaxed);
    }
    *sms = v;
    return cudaSuccess;
}


template <bool BF16, int NB>
static int launch_nb(float *out, const float *in, const uint16_t *w, const float *bias, int n, int k, int m, bool vec,
                     int sms, int epi, cudaStream_t stream)
{
    // Split k among S warps while the grid is short of ~16 warps per SM and
    // each lane keeps at least 1.5 steps of its slice.
    const long groups = gs_ceil_div(m, GEMV_R);
    const long steps = vec ? k / 8 : k;
    int S = 1;
    while (S < GEMV_WARPS && groups * S < 16L * sms && 2 * steps >= 3L * 32 * 2 * S)
        S *= 2;
    const int rows_per_block = GEMV_R * (GEMV_WARPS / S);
    const int grid = gs_ceil_div(m, rows_per_block);
    if (vec)
        gemv_kernel<BF16, NB, 8><<<grid, GEMV_THREADS, 0, stream>>>(out, in, w, bias, n, k, m, S, epi);
    else
        gemv_kernel<BF16, NB, 1><<<grid, GEMV_THREADS, 0, stream>>>(out, in, w, bias, n, k, m, S, epi);
    CUDA_LAUNCHED();
    return 0;
}

template <bool BF16>
static int launch_dtype(float *out, const float *in, const uint16_t *w, const float *bias, int n, int k, int m,
                        bool vec, int sms, int epi, cudaStream_t stream)
{
    if (n <= 1)
        return launch_nb<BF16, 1>(out, in, w, bias, n, k, m, vec, sms, epi, stream);
    if (n <= 2)
        return launch_nb<BF16, 2>(out, in, w, bias, n, k, m, vec, sms, epi, stream);
    if (n <= 4)
        return launch_nb<BF16, 4>(out, in, w, bias, n, k, m, vec, sms, epi, stream);
    if (n <= 8)
        return launch_nb<BF16, 8>(out, in, w, bias, n, k, m, vec, sms, epi, stream);
    return launch_nb<BF16, 16>(out, in, w, bias, n, k, m, vec, sms, epi, stream);
}

extern "C" int cuda_gemv_half(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k,
                              int m, cudaStream_t stream)
{
    return cuda_gemv_half_ex(out, in, w, is_bf16, bias, n, k, m, GS_GEMV_EPI_NONE, stream);
}

extern "C" int cuda_gemv_half_ex(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n,
                                 int k, int m, int epilogue, cudaStream_t stream)
{
    if (n <= 0 || m <= 0)
        return 0;
    int sms = 0;
    CUDA_TRY(gs_cuda_sm_count(&sms));
    const uint16_t *w16 = static_cast<const uint16_t *>(w);
    // 16-byte steps need every row start aligned: k % 8 == 0 and an aligned
    // base, for w (8 halves) and in (8 floats, two float4s).
    const bool vec = k % 8 == 0 && (uintptr_t)w % 16 == 0 && (uintptr_t)in % 16 == 0;
    for (int i0 = 0; i0 < n; i0 += GEMV_NMAX) {  // decode batches fit one pass; longer ones take several
        const int nb = n - i0 < GEMV_NMAX ? n - i0 : GEMV_NMAX;
        const float *in_i = in + (size_t)i0 * k;
        float *out_i = out + (size_t)i0 * m;
        const int rc = is_bf16 ? launch_dtype<true>(out_i, in_i, w16, bias, nb, k, m, vec, sms, epilogue, stream)
                               : launch_dtype<false>(out_i, in_i, w16, bias, nb, k, m, vec, sms, epilogue, stream);
        if (rc)
            return rc;
    }
    return 0;
}

extern "C" int cuda_convert_to_half(void *out, const float *in, long count, int is_bf16, cudaStream_t stream)
{
    if (count <= 0)
        return 0;
    int sms = 0;
    CUDA_TRY(gs_cuda_sm_count(&sms));
    long blocks = (count + 255) / 256;
    if (blocks > 8L * sms)
        blocks = 8L * sms;  // grid-stride beyond that
    uint16_t *o = static_cast<uint16_t *>(out);
    if (is_bf16)
        convert_kernel<true><<<(int)blocks, 256, 0, stream>>>(o, in, count);
    else
        convert_kernel<false><<<(int)blocks, 256, 0, stream>>>(o, in, count);
    CUDA_LAUNCHED();
    return 0;
}
