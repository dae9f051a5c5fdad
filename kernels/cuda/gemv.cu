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
#include "gemv_mma_cuda.h"
#include "half_out.cuh"
#include "norm_stats.cuh"
#include "pdl.cuh"

#define GEMV_THREADS 256
#define GEMV_WARPS (GEMV_THREADS / 32)
#define GEMV_R 4     // rows of w per warp
#define GEMV_NMAX 16 // token rows per pass
#define GEMV_XN_MAX (40 * 1024) // bytes of normalized rows staged a block (under the 48 KB without opt-in)

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

// A lane's batch: U steps (v, v + stride, ...) of its R rows.
template <int V, int U, int R>
static __device__ __forceinline__ void load_batch(wraw<V> (&raw)[U][R], const uint16_t *const (&wr)[R], int v,
                                                  int stride)
{
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < R; r++)
            raw[u][r] = load_w<V>(wr[r] + (long)(v + u * stride) * V);
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

// One step: the R rows' V weights at element e into acc[j * R + r]. With a
// folded norm (nrm.kind, uniform over the grid) each x is normalized as it is
// read: the gain and bias at e once per step, the row's statistics from st.
template <bool BF16, int NB, int V, bool XN>
static __device__ __forceinline__ void gemv_step(float (&acc)[GEMV_R * NB], const wraw<V> (&raw)[GEMV_R],
                                                 const float *__restrict__ in, long e, int n, int k,
                                                 const gs_norm_fold &nrm, const gs_row_stats *st)
{
    float wf[GEMV_R][V];
#pragma unroll
    for (int r = 0; r < GEMV_R; r++)
        widen<BF16, V>(raw[r], wf[r]);
    float g[V], gb[V];
    if (!XN && nrm.kind != GS_NORM_FOLD_NONE) {
        load_x<V>(nrm.w + e, g);
        if (nrm.kind == GS_NORM_FOLD_LAYER)
            load_x<V>(nrm.b + e, gb);
        else
#pragma unroll
            for (int t = 0; t < V; t++)
                gb[t] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < NB; j++) {
        if (j < n) {  // uniform over the grid
            float x[V];
            if constexpr (XN) {  // the normalized rows staged in shared memory (V = 8)
                const float4 a = *reinterpret_cast<const float4 *>(in + (long)j * k + e);
                const float4 b = *reinterpret_cast<const float4 *>(in + (long)j * k + e + 4);
                x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
                x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
            } else {
                load_x<V>(in + (long)j * k + e, x);
            }
            if (!XN && nrm.kind != GS_NORM_FOLD_NONE) {
                const gs_row_stats sj = st[j];
#pragma unroll
                for (int t = 0; t < V; t++)
                    x[t] = gs_norm_apply(x[t], sj, g[t], gb[t], nrm.kind);
            }
#pragma unroll
            for (int r = 0; r < GEMV_R; r++)
#pragma unroll
                for (int t = 0; t < V; t++)
                    acc[j * GEMV_R + r] = fmaf(wf[r][t], x[t], acc[j * GEMV_R + r]);
        }
    }
}

// The KV store folded into the qkv product (kv.k_cache set): result
// columns q_dim .. q_dim + 2 kv_dim of token row j are also the K and V rows
// kv_store_kernel<GS_KV_F32> would copy to slot[j] (the same fp32 values).
static __device__ __forceinline__ void store_kv(const gs_gemv_kv &kv, int j, long row, float v)
{
    if (kv.k_cache == nullptr || row < kv.q_dim)
        return;
    const int s = __ldg(kv.slot + j);
    if (s < 0)  // a padding token: nothing to store
        return;
    const long c = row - kv.q_dim;
    if (c < kv.kv_dim)
        kv.k_cache[(size_t)s * kv.kv_dim + c] = v;
    else if (c < 2L * kv.kv_dim)
        kv.v_cache[(size_t)s * kv.kv_dim + (c - kv.kv_dim)] = v;
}

// ---- the kernel ----

template <bool BF16, int NB, int V, bool XN>
__global__ void __launch_bounds__(GEMV_THREADS)
    gemv_kernel(float *__restrict__ out, const float *__restrict__ in, const uint16_t *__restrict__ w,
                const float *__restrict__ bias, int n, int k, int m, int S, int epi, gs_norm_fold nrm, gs_gemv_kv kv)
{
    constexpr int R = GEMV_R;
    constexpr int NV = R * NB;           // partial sums per lane
    constexpr int U = NB <= 4 ? 2 : 1;   // steps of loads issued before the first use
    __shared__ float part[GEMV_WARPS][NV];
    __shared__ gs_row_stats stats[NB];  // a folded norm's statistics, one per token row

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

    const int nsteps = k / V;  // the launcher picks V = 8 only when k % 8 == 0
    const int stride = 32 * S;
    int v = s * 32 + lane;

    // The lane's first batch of w goes into registers before anything else:
    // weights are written by no kernel, so under programmatic launch
    // (pdl.cuh) its DRAM trip runs while the kernel before is finishing, and
    // in any case under the folded norm's statistics and staging. (Asking
    // the lane's whole share into L2 instead measured slower on the H100,
    // gpt2-1558m 370-383 against 385-393 tok/s: the prefetches competed with
    // the running kernel's loads.) Then the next kernel may be scheduled,
    // and this one waits for the one before.
    wraw<V> raw[U][R];
    bool batch = v + (U - 1) * stride < nsteps;
    if (batch)
        load_batch(raw, wr, v, stride);
    gs_pdl_trigger();
    gs_pdl_wait();

    // A folded norm: every block takes the statistics of the n rows itself
    // (the whole block on a row, n * k * 4 bytes from L2: norm_stats.cuh),
    // cheaper than a kernel and a pass of its own.
    if (nrm.kind != GS_NORM_FOLD_NONE) {
        __shared__ float red[32];
        gs_rows_stats(in, n < NB ? n : NB, k, nrm.kind, nrm.eps, stats, red);
    }
    // XN: the block normalizes its n rows once into shared memory (the rows
    // come from L1 after the statistics), so the loop reads them with no
    // per-step normalization: reading the gain and bias beside each input
    // and normalizing in the loop made a 1600-wide GEMV 40% slower.
    const float *x_src = in;
    if constexpr (XN) {
        extern __shared__ float4 xn_dyn[];
        const int kq = k / 4;
        const float4 *in4 = reinterpret_cast<const float4 *>(in);
        const float4 *g4 = reinterpret_cast<const float4 *>(nrm.w), *b4 = reinterpret_cast<const float4 *>(nrm.b);
        for (int i = threadIdx.x; i < n * kq; i += GEMV_THREADS) {
            const int j = i / kq, q = i - j * kq;
            const float4 a = in4[i], g = __ldg(g4 + q);
            const float4 b = nrm.kind == GS_NORM_FOLD_LAYER ? __ldg(b4 + q) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            xn_dyn[i] = gs_norm_apply4(a, stats[j], g, b, nrm.kind);
        }
        __syncthreads();
        x_src = reinterpret_cast<const float *>(xn_dyn);
    }

    float acc[NV];
#pragma unroll
    for (int i = 0; i < NV; i++)
        acc[i] = 0.0f;
    while (batch) {  // the batch at v is in raw
#pragma unroll
        for (int u = 0; u < U; u++)
            gemv_step<BF16, NB, V, XN>(acc, raw[u], x_src, (long)(v + u * stride) * V, n, k, nrm, stats);
        v += U * stride;
        batch = v + (U - 1) * stride < nsteps;
        if (batch)
            load_batch(raw, wr, v, stride);
    }
    if constexpr (U > 1) {
        if (v < nsteps) {  // at most one step left over
            wraw<V> last[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                last[r] = load_w<V>(wr[r] + (long)v * V);
            gemv_step<BF16, NB, V, XN>(acc, last, x_src, (long)v * V, n, k, nrm, stats);
        }
    }

    // Reduce-scatter over the warp (see the head of the file), then the bias,
    // the epilogue and the folded KV store on each total.
    gemv_reduce_store<R>(acc, part, lane, warp, S, G, row0, n, m, [&](int j, long row, float total) {
        const float v = total + (bias ? __ldg(bias + row) : 0.0f);
        store_out(out + (long)j * m + row, v, epi);
        store_kv(kv, j, row, v);
    });
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
                     int sms, int epi, gs_norm_fold nrm, gs_gemv_kv kv, cudaStream_t stream)
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
    // A folded norm over a few rows: normalized once into shared memory.
    const size_t xn_bytes = (size_t)n * k * sizeof(float);
    if constexpr (NB <= 4) {
        if (vec && nrm.kind != GS_NORM_FOLD_NONE && xn_bytes <= GEMV_XN_MAX) {
            CUDA_TRY(gs_launch_pdl(gemv_kernel<BF16, NB, 8, true>, grid, GEMV_THREADS, xn_bytes, stream, out, in, w,
                                   bias, n, k, m, S, epi, nrm, kv));
            CUDA_LAUNCHED();
            return 0;
        }
    }
    if (vec)
        CUDA_TRY(gs_launch_pdl(gemv_kernel<BF16, NB, 8, false>, grid, GEMV_THREADS, 0, stream, out, in, w, bias, n, k,
                               m, S, epi, nrm, kv));
    else
        CUDA_TRY(gs_launch_pdl(gemv_kernel<BF16, NB, 1, false>, grid, GEMV_THREADS, 0, stream, out, in, w, bias, n, k,
                               m, S, epi, nrm, kv));
    CUDA_LAUNCHED();
    return 0;
}

template <bool BF16>
static int launch_dtype(float *out, const float *in, const uint16_t *w, const float *bias, int n, int k, int m,
                        bool vec, int sms, int epi, gs_norm_fold nrm, gs_gemv_kv kv, cudaStream_t stream)
{
    if (n <= 1)
        return launch_nb<BF16, 1>(out, in, w, bias, n, k, m, vec, sms, epi, nrm, kv, stream);
    if (n <= 2)
        return launch_nb<BF16, 2>(out, in, w, bias, n, k, m, vec, sms, epi, nrm, kv, stream);
    if (n <= 4)
        return launch_nb<BF16, 4>(out, in, w, bias, n, k, m, vec, sms, epi, nrm, kv, stream);
    if (n <= 8)
        return launch_nb<BF16, 8>(out, in, w, bias, n, k, m, vec, sms, epi, nrm, kv, stream);
    return launch_nb<BF16, 16>(out, in, w, bias, n, k, m, vec, sms, epi, nrm, kv, stream);
}

extern "C" int cuda_gemv_half(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k,
                              int m, cudaStream_t stream)
{
    const gs_norm_fold none = {GS_NORM_FOLD_NONE, NULL, NULL, 0.0f};
    return cuda_gemv_half_ex(out, in, w, is_bf16, bias, n, k, m, GS_GEMV_EPI_NONE, none, stream);
}

static int gemv_half(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k, int m,
                     int epilogue, gs_norm_fold norm, gs_gemv_kv kv, cudaStream_t stream);

extern "C" int cuda_gemv_half_ex(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n,
                                 int k, int m, int epilogue, gs_norm_fold norm, cudaStream_t stream)
{
    const gs_gemv_kv none = {NULL, NULL, NULL, 0, 0};
    return gemv_half(out, in, w, is_bf16, bias, n, k, m, epilogue, norm, none, stream);
}

extern "C" int cuda_gemv_half_kv(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n,
                                 int k, int m, gs_norm_fold norm, gs_gemv_kv kv, cudaStream_t stream)
{
    if (!kv.k_cache || !kv.v_cache || !kv.slot || kv.q_dim < 0 || kv.kv_dim <= 0 || kv.q_dim + 2L * kv.kv_dim > m)
        return (int)cudaErrorInvalidValue;
    return gemv_half(out, in, w, is_bf16, bias, n, k, m, GS_GEMV_EPI_NONE, norm, kv, stream);
}

static int gemv_half(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k, int m,
                     int epilogue, gs_norm_fold norm, gs_gemv_kv kv, cudaStream_t stream)
{
    if (n <= 0 || m <= 0)
        return 0;
    // 5 to 16 rows go to the tensor-core GEMV (gemv_mma.cu), where fp32 FMAs
    // bind this kernel: gpt2-124m batch 16 on the H100 13.5k -> 19.7k tok/s.
    // Its inputs are rounded to the weights' half type (~2e-4 of the norm for
    // fp16, 1.6e-3 for bf16); GS_GEMV_MMA=0 keeps fp32 inputs (the tests of
    // this kernel, and A/B runs).
    static std::atomic<int> mma{-1};
    int use_mma = mma.load(std::memory_order_relaxed);
    if (use_mma < 0) {
        const char *e = getenv("GS_GEMV_MMA");
        use_mma = !(e && e[0] == '0');
        mma.store(use_mma, std::memory_order_relaxed);
    }
    if (use_mma && n > 4 && n <= GEMV_NMAX && !kv.k_cache)
        return cuda_gemv_mma(out, in, w, is_bf16, bias, n, k, m, epilogue, norm, stream);
    int sms = 0;
    CUDA_TRY(gs_cuda_sm_count(&sms));
    const uint16_t *w16 = static_cast<const uint16_t *>(w);
    // 16-byte steps need every row start aligned: k % 8 == 0 and an aligned
    // base, for w (8 halves) and in (8 floats, two float4s).
    // A folded norm's gain and bias are read as the inputs are.
    const bool vec = k % 8 == 0 && (uintptr_t)w % 16 == 0 && (uintptr_t)in % 16 == 0 &&
                     (norm.kind == GS_NORM_FOLD_NONE || (uintptr_t)norm.w % 16 == 0) &&
                     (norm.kind != GS_NORM_FOLD_LAYER || (uintptr_t)norm.b % 16 == 0);
    for (int i0 = 0; i0 < n; i0 += GEMV_NMAX) {  // decode batches fit one pass; longer ones take several
        const int nb = n - i0 < GEMV_NMAX ? n - i0 : GEMV_NMAX;
        const float *in_i = in + (size_t)i0 * k;
        float *out_i = out + (size_t)i0 * m;
        gs_gemv_kv kv_i = kv;
        if (kv.slot)
            kv_i.slot = kv.slot + i0;
        const int rc = is_bf16 ? launch_dtype<true>(out_i, in_i, w16, bias, nb, k, m, vec, sms, epilogue, norm, kv_i, stream)
                               : launch_dtype<false>(out_i, in_i, w16, bias, nb, k, m, vec, sms, epilogue, norm, kv_i, stream);
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
