// gemv_mma.cu - the decode product of gemv.cu (out = in . w^T + bias, then
// an epilogue, for a few token rows against an fp16 / bf16 weight matrix) on
// the tensor cores, with an optional LayerNorm / RMSNorm folded into the
// reading of `in` (norm_fold.h). The CPU twin is the test's double-precision
// product over the de-quantized weights and the double-precision norm
// (tests/gpu/test_cuda_gemv_mma.c).
//
// Why: gemv.cu widens each weight to fp32 and does one FMA per token row, so
// at n = 16 it spends 16 FMAs and 16 L1 reads of `in` per weight and runs at
// ~300 GB/s of w, not DRAM's ~2900. One mma.sync.m16n8k16 does 16 x 8 x 16 =
// 2048 multiply-adds for one instruction; with w as the 16 x 16 A operand and
// the token rows as B, the arithmetic per weight falls to 1/16 of an
// instruction at n = 16 and the product is bound by DRAM again.
//
// ---- operands (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type"; g = lane >> 2 (groupID), t = lane & 3 (threadID_in_group)) ----
//   A (16 x 16, row-major: M = output row, K), four .b32 registers of two halves,
//     the lower-indexed element in the low 16 bits:
//       a[0] = A[g    ][2t, 2t+1]      a[1] = A[g + 8][2t, 2t+1]
//       a[2] = A[g    ][2t+8, 2t+9]    a[3] = A[g + 8][2t+8, 2t+9]
//   B (16 x 8, "col": K x N = token), two registers:
//       b[0] = B[2t, 2t+1][g]          b[1] = B[2t+8, 2t+9][g]
//   C / D (16 x 8 fp32), four registers:
//       c[0], c[1] = D[g][2t], D[g][2t+1]     c[2], c[3] = D[g + 8][2t], D[g + 8][2t+1]
// So a lane holds the same four K indices {2t, 2t+1, 2t+8, 2t+9} of A (rows g
// and g + 8) and of B (token g), in the same register order.
//
// ---- the k permutation ----
// A dot product may take its k terms in any order, so the K index of an mma
// need not be a column of w in order. Two mmas (j = 0, 1) cover a "group" of
// 32 columns from c0: MMA index kappa = 2t + e + 8h (e, h in {0, 1}, i.e.
// element i = e + 2h of the lane's four) of mma j is column
//       c0 + 8t + 4j + i.
// Over t, i and j that is each of the 32 columns once (for a fixed j the lane
// t owns columns 8t + 4j .. 8t + 4j + 3), and a lane's columns over both mmas
// are the 8 consecutive c0 + 8t .. c0 + 8t + 7: one 16-byte load per row
// straight into registers (ld.global.nc.L1::no_allocate, as gemv.cu), no
// shuffles, no shared-memory copy of w. With the words x, y, z, w of the
// uint4 of row g (lo) and of row g + 8 (hi), halves 2q, 2q+1 in word q:
//       mma j = 0:  a = {lo.x, hi.x, lo.y, hi.y}   b = {xs.x, xs.y}
//       mma j = 1:  a = {lo.z, hi.z, lo.w, hi.w}   b = {xs.z, xs.w}
// where xs is the uint4 of the staged activations of token g (n-tile 0) or
// g + 8 (n-tile 1) at the same 8 columns: a[0] = {A[g][2t], A[g][2t+1]} are
// columns 8t + 4j + 0, 1 = halves 4j, 4j+1 of lo = word 2j; a[2] (kappa 2t+8,
// 2t+9) columns + 2, 3 = word 2j+1; likewise b[0] = word 2j, b[1] = word 2j+1.
// A warp's load instruction reads 64 contiguous bytes of each of 8 rows (two
// full 32-byte sectors), so no DRAM byte is fetched twice.
//
// ---- staging the activations ----
// The block copies its 8 or 16 token rows (NT = 1 or 2 n-tiles of 8) into
// shared memory once, as fp16 / bf16 (the mma takes both operands in one
// type), rows past n as zeros, and every warp reads its B fragments from
// there with one LDS.128 per n-tile per group. A row is KP halves with
// KP = 32 (mod 64): the 8 lanes of a quarter warp read 64 bytes of token g and
// 64 of token g + 1, and that offset puts them in different banks. With a
// folded norm each warp first computes its rows' statistics with
// gs_warp_row_stats (one warp a row, norm.cu's order, so the fp32 values
// equal the norm kernel's before rounding) and applies gs_norm_apply while
// staging. Columns past k in the last group are zero in both operands (zero,
// not the norm of zero, and never 0 x garbage: a NaN would survive that).
// When k is larger than the staging buffer (KC columns: 104 KB of halves, k
// up to 3264 at n > 8 and 6592 at n <= 8) the block walks k in chunks,
// restaging between two barriers.
//
// ---- who does what ----
// A warp owns one 16-row tile of w (m rounded up to 16; rows past m load row
// m - 1 and are not stored) and a slice of the chunk's groups; S warps of the
// block (S in 1, 2, 4, 8) split one tile's k range, so a block holds
// RT = 8 / S tiles. A lane issues the loads of up to U = 8 groups (16 uint4,
// 256 bytes) before its first mma; the first batch goes out before the
// statistics and the staging, so their L2 round trips hide under the DRAM
// one. The S slices' partial sums meet in shared memory and are added in
// slice order, so the result does not depend on timing. Blocks are
// persistent over row blocks (RT tiles): the grid is at most what fits on the
// device at once, every block walks row blocks gridDim.x apart and reuses its
// staged rows when k fits one chunk (the logits, 3142 tiles, stage ~130
// times, not 400).
//
// The launcher picks S: the smallest power of two with tiles * S >= 4 warps a
// SM, while each slice keeps >= 2 groups (at n = 16, GPT-2 124M: qkv 144 tiles
// S = 4, attn-proj 48 tiles S = 8, fc 192 tiles S = 4, fc-proj 48 tiles S = 8,
// logits S = 1). More S spreads a small matrix over more SMs but stages the
// rows once per RT tiles: the staging reads n * k * 4 bytes of in (from L2)
// per block, the weights 16 * RT * k * 2.
//
// Precision: x rounded to fp16 is ~2^-12 relative an element, ~3e-4 of the
// norm of the product (bf16: ~2e-3); products and sums are fp32 on the
// tensor cores. The fp32 FMA GEMV (gemv.cu) stays the reference path.
#include <atomic>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "check_cuda.cuh"
#include "gemv_common.cuh"
#include "gemv_mma_cuda.h"
#include "norm_stats.cuh"

#define MMA_THREADS 256
#define MMA_WARPS (MMA_THREADS / 32)
#define MMA_U 8                       // groups (32 columns) a lane loads before its first mma
#define MMA_NMAX 16                   // token rows per pass
#define MMA_STAGE_CAP (104 * 1024)    // bytes of staged activations per block
#define MMA_PART_BYTES(NT) (MMA_WARPS * (NT) * 4 * 32 * 4)  // the S-slice partial sums

// ---- device pieces ----

// D += A . B, m16n8k16, fp32 accumulators (the layouts in the head comment).
template <bool BF16>
static __device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                uint32_t b0, uint32_t b1)
{
    if constexpr (BF16)
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest even into one word, a in the low half.
template <bool BF16> static __device__ __forceinline__ uint32_t pack2(float a, float b)
{
    if constexpr (BF16) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<const uint32_t *>(&h);
    } else {
        const __half2 h = __floats2half2_rn(a, b);
        return *reinterpret_cast<const uint32_t *>(&h);
    }
}

// Columns c .. c + 7 of one row of w (c relative to the row start). VEC:
// k % 8 == 0 and the row 16-byte aligned, so the 8 columns are all inside k
// or all past it; else 8 scalar loads, zeros past k.
template <bool VEC> static __device__ __forceinline__ uint4 load_w8(const uint16_t *row, int c, int k)
{
    if constexpr (VEC) {
        return c < k ? ld_w16(row + c) : make_uint4(0u, 0u, 0u, 0u);
    } else {
        uint32_t h[8];
#pragma unroll
        for (int i = 0; i < 8; i++)
            h[i] = c + i < k ? __ldg(reinterpret_cast<const unsigned short *>(row) + c + i) : 0u;
        return make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
    }
}

// The groups [ga, gb) of a chunk of kcl columns that slice s of S takes:
// contiguous, so a warp's loads of one row are 64 * (gb - ga) bytes in a row.
static __device__ __forceinline__ void slice_groups(int kcl, int S, int s, int &ga, int &gb)
{
    const int gc = (kcl + 31) / 32;
    ga = s * gc / S;
    gb = (s + 1) * gc / S;
}

// Loads the lane's 16-byte pieces of rows g (lo) and g + 8 (hi) for the
// groups q .. q + U - 1 (those below gb) of the chunk starting at column c0.
template <bool VEC>
static __device__ __forceinline__ void load_batch(uint4 (&wr)[MMA_U][2], const uint16_t *lo, const uint16_t *hi,
                                                  int c0, int q, int gb, int k, int t)
{
#pragma unroll
    for (int u = 0; u < MMA_U; u++)
        if (q + u < gb) {
            const int c = c0 + 32 * (q + u) + 8 * t;
            wr[u][0] = load_w8<VEC>(lo, c, k);
            wr[u][1] = load_w8<VEC>(hi, c, k);
        }
}

// The mmas of one batch: per group, n-tile by n-tile, mma j = 0 then 1 (the
// order is fixed: the sums come out the same every run).
template <bool BF16, int NT>
static __device__ __forceinline__ void mma_batch(float (&acc)[NT][4], const uint4 (&wr)[MMA_U][2],
                                                 const uint16_t *xs, int KP, int q, int gb, int g, int t)
{
#pragma unroll
    for (int u = 0; u < MMA_U; u++)
        if (q + u < gb) {
            const int cl = 32 * (q + u) + 8 * t;  // column in the staged chunk
            const uint4 lo = wr[u][0], hi = wr[u][1];
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const uint4 b = *reinterpret_cast<const uint4 *>(xs + (size_t)(8 * nt + g) * KP + cl);
                mma16816<BF16>(acc[nt], lo.x, hi.x, lo.y, hi.y, b.x, b.y);
                mma16816<BF16>(acc[nt], lo.z, hi.z, lo.w, hi.w, b.z, b.w);
            }
        }
}

// Token row j's columns c0 .. c0 + kcl - 1 into xs[j][0 .. kcl32), normalized
// when norm.kind says so, rounded to the half type, zero past kcl and for
// j >= n. One warp per row, 4 columns a lane a step. vin: k % 4 == 0 and in
// 16-byte aligned (float4 reads; c0 is a multiple of 32).
template <bool BF16>
static __device__ __forceinline__ void stage_row(uint16_t *xs_row, const float *__restrict__ in, int j, int n, int k,
                                                 int c0, int kcl, int kcl32, gs_row_stats st, const gs_norm_fold &norm,
                                                 bool vin, int lane)
{
    const float *src = in + (size_t)j * k + c0;
    for (int c = 4 * lane; c < kcl32; c += 128) {
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (j < n && c < kcl) {
            if (vin) {  // kcl % 4 == 0 here, so all 4 are inside
                const float4 f = __ldg(reinterpret_cast<const float4 *>(src + c));
                v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
            } else {
#pragma unroll
                for (int i = 0; i < 4; i++)
                    if (c + i < kcl)
                        v[i] = __ldg(src + c + i);
            }
            if (norm.kind != GS_NORM_FOLD_NONE) {
#pragma unroll
                for (int i = 0; i < 4; i++)
                    if (c + i < kcl) {
                        const int col = c0 + c + i;
                        v[i] = gs_norm_apply(v[i], st, __ldg(norm.w + col), norm.b ? __ldg(norm.b + col) : 0.0f,
                                             norm.kind);
                    }
            }
        }
        *reinterpret_cast<uint2 *>(xs_row + c) = make_uint2(pack2<BF16>(v[0], v[1]), pack2<BF16>(v[2], v[3]));
    }
}

// ---- the kernel ----

// n <= 8 * NT token rows; S warps per 16-row tile; kc: the chunk width (a
// multiple of 32); KP: the staged row's width in halves.
template <bool BF16, int NT, bool VEC>
__global__ void __launch_bounds__(MMA_THREADS, 2)
    gemv_mma_kernel(float *__restrict__ out, const float *__restrict__ in, const uint16_t *__restrict__ w,
                    const float *__restrict__ bias, int n, int k, int m, int S, int kc, int KP, int epi,
                    gs_norm_fold norm)
{
    extern __shared__ __align__(16) unsigned char smem[];
    uint16_t *xs = reinterpret_cast<uint16_t *>(smem);                   // [8 * NT][KP] halves
    float *part = reinterpret_cast<float *>(smem + (size_t)16 * NT * KP);  // [warp][NT * 4][32], when S > 1

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const int RT = MMA_WARPS / S;
    const int tib = warp / S, s = warp % S;  // tile in the block, slice of k
    const int tiles = (m + 15) / 16;
    const int row_blocks = (tiles + RT - 1) / RT;
    const int nch = (k + kc - 1) / kc;
    const bool vin = k % 4 == 0 && ((uintptr_t)in & 15) == 0;

    // The first batch of w, before the statistics and the staging (the same
    // work item, chunk and slice the loop below starts with).
    uint4 wr[MMA_U][2];
    bool pre = false;
    if ((int)blockIdx.x < row_blocks) {
        const int row0 = ((int)blockIdx.x * RT + tib) * 16;
        if (row0 < m) {
            int ga, gb;
            slice_groups(min(kc, k), S, s, ga, gb);
            if (ga < gb) {
                const uint16_t *lo = w + (size_t)min(row0 + g, m - 1) * k;
                const uint16_t *hi = w + (size_t)min(row0 + g + 8, m - 1) * k;
                load_batch<VEC>(wr, lo, hi, 0, ga, gb, k, t);
                pre = true;
            }
        }
    }

    // Statistics of token rows warp and warp + 8 (one warp a row; uniform
    // branches, every lane of the warp in the shuffles).
    gs_row_stats st[2] = {{0.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 1.0f}};
    if (norm.kind != GS_NORM_FOLD_NONE) {
#pragma unroll
        for (int h = 0; h < NT; h++)
            if (warp + 8 * h < n)
                st[h] = gs_warp_row_stats(in + (size_t)(warp + 8 * h) * k, k, norm.kind, norm.eps);
    }

    for (int rb = blockIdx.x; rb < row_blocks; rb += (int)gridDim.x) {
        const int row0 = (rb * RT + tib) * 16;
        const bool live = row0 < m;  // a tile past m (the last row block) only joins the barriers
        const uint16_t *lo = w + (size_t)min(row0 + g, m - 1) * k;
        const uint16_t *hi = w + (size_t)min(row0 + g + 8, m - 1) * k;
        float acc[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[nt][i] = 0.0f;

        for (int ch = 0; ch < nch; ch++) {
            const int c0 = ch * kc, kcl = min(kc, k - c0), kcl32 = (kcl + 31) & ~31;
            if (nch > 1 || rb == (int)blockIdx.x) {  // one chunk: staged once for every row block
                if (rb != (int)blockIdx.x || ch > 0)
                    __syncthreads();  // every warp is done with the previous chunk
#pragma unroll
                for (int h = 0; h < NT; h++)
                    stage_row<BF16>(xs + (size_t)(warp + 8 * h) * KP, in, warp + 8 * h, n, k, c0, kcl, kcl32, st[h],
                                    norm, vin, lane);
                __syncthreads();
            }
            if (live) {
                int ga, gb;
                slice_groups(kcl, S, s, ga, gb);
                for (int q = ga; q < gb; q += MMA_U) {
                    if (!pre)
                        load_batch<VEC>(wr, lo, hi, c0, q, gb, k, t);
                    pre = false;
                    mma_batch<BF16, NT>(acc, wr, xs, KP, q, gb, g, t);
                }
            }
        }

        if (S == 1) {  // the warp holds its tile's totals: c[i] = D[g + 8 (i >> 1)][2t + (i & 1)]
            if (live) {
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const int row = row0 + g + 8 * (i >> 1), j = 8 * nt + 2 * t + (i & 1);
                        if (j < n && row < m)
                            store_out(out + (size_t)j * m + row, acc[nt][i] + (bias ? __ldg(bias + row) : 0.0f), epi);
                    }
            }
            continue;
        }
        // S slices: partial sums through shared memory, added in slice order.
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                part[(warp * NT * 4 + nt * 4 + i) * 32 + lane] = acc[nt][i];
        __syncthreads();
        // Output (tile b, row r, token j), r fastest so a warp's stores are 64
        // contiguous bytes: held by lane (r & 7) * 4 + (j & 7) / 2, register
        // (r >> 3) * 2 + (j & 1) of n-tile j / 8, in warps b * S .. b * S + S - 1.
        for (int x = threadIdx.x; x < RT * 16 * n; x += MMA_THREADS) {
            const int r = x % 16, j = (x / 16) % n, b = x / (16 * n);
            const int row = (rb * RT + b) * 16 + r;
            if (row >= m)
                continue;
            const int src_lane = (r & 7) * 4 + (j & 7) / 2;
            const int reg = (j / 8) * 4 + (r >> 3) * 2 + (j & 1);
            float sum = part[((b * S) * NT * 4 + reg) * 32 + src_lane];
            for (int i = 1; i < S; i++)
                sum += part[((b * S + i) * NT * 4 + reg) * 32 + src_lane];
            store_out(out + (size_t)j * m + row, sum + (bias ? __ldg(bias + row) : 0.0f), epi);
        }
        __syncthreads();  // part is free for the next row block
    }
}

// ---- launchers ----

// Shared memory per SM, read once per device (as gs_cuda_sm_count).
static cudaError_t smem_per_sm(int *bytes)
{
    static std::atomic<int> cached[64];
    int dev = 0;
    cudaError_t rc = cudaGetDevice(&dev);
    if (rc != cudaSuccess)
        return rc;
    if (dev < 0 || dev >= 64)
        return cudaDeviceGetAttribute(bytes, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev);
    int v = cached[dev].load(std::memory_order_relaxed);
    if (v == 0) {
        if ((rc = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev)) != cudaSuccess)
            return rc;
        cached[dev].store(v, std::memory_order_relaxed);
    }
    *bytes = v;
    return cudaSuccess;
}

// The staged row width for a chunk of kc columns: 32 (mod 64) halves.
static int stage_kp(int kc) { return ((kc + 63) & ~63) + 32; }

// The widest chunk that fits MMA_STAGE_CAP (a multiple of 64).
static int max_chunk(int NT)
{
    const int kp = MMA_STAGE_CAP / (8 * NT * 2);  // halves a row
    return ((kp - 32) / 64) * 64;
}

// One instantiation: its dynamic shared memory allowance (over 48 KB needs
// an opt-in, once per device) and the launch.
template <bool BF16, int NT, bool VEC>
static int launch(float *out, const float *in, const uint16_t *w, const float *bias, int n, int k, int m, int S,
                  int grid, int kc, int epi, gs_norm_fold norm, cudaStream_t stream)
{
    static std::atomic<unsigned long long> opted;  // a bit per device
    int dev = 0;
    CUDA_TRY(cudaGetDevice(&dev));
    const unsigned long long bit = dev >= 0 && dev < 64 ? 1ull << dev : 0;
    if (!bit || !(opted.load(std::memory_order_relaxed) & bit)) {
        CUDA_TRY(cudaFuncSetAttribute(gemv_mma_kernel<BF16, NT, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      MMA_STAGE_CAP + MMA_PART_BYTES(NT)));
        opted.fetch_or(bit, std::memory_order_relaxed);
    }
    const int KP = stage_kp(kc);
    const size_t smem = (size_t)8 * NT * KP * 2 + (S > 1 ? MMA_PART_BYTES(NT) : 0);
    gemv_mma_kernel<BF16, NT, VEC><<<grid, MMA_THREADS, smem, stream>>>(out, in, w, bias, n, k, m, S, kc, KP, epi,
                                                                         norm);
    CUDA_LAUNCHED();
    return 0;
}

// One pass of n <= 16 rows: the shape (cfg fields 0: chosen here), then the
// instantiation.
static int gemv_mma_pass(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k,
                         int m, int epi, gs_norm_fold norm, const gs_gemv_mma_cfg *cfg, int sms, int smem_sm,
                         cudaStream_t stream)
{
    const int NT = n <= 8 ? 1 : 2;
    const int kcmax = max_chunk(NT);
    int kc = cfg->kchunk;
    if (kc > kcmax)
        return (int)cudaErrorInvalidValue;
    if (kc == 0) {  // even chunks, as few as fit
        const int nch = (k + kcmax - 1) / kcmax;
        kc = (((k + nch - 1) / nch) + 31) & ~31;
    }
    const int tiles = (m + 15) / 16, groups = (kc < k ? kc : (k + 31) & ~31) / 32;
    int S = cfg->split;
    if (S == 0) {  // spread small matrices: ~4 warps a SM, slices of >= 2 groups
        S = 1;
        while (S < MMA_WARPS && (long)tiles * S < 4L * sms && groups >= 4 * S)
            S *= 2;
    }
    const int RT = MMA_WARPS / S;
    const int row_blocks = (tiles + RT - 1) / RT;
    int grid = cfg->grid;
    if (grid == 0) {  // what fits at once, then evened out so every block walks as many row blocks
        const size_t smem = (size_t)8 * NT * stage_kp(kc) * 2 + (S > 1 ? MMA_PART_BYTES(NT) : 0);
        long per_sm = smem_sm / (long)(smem + 1024);  // the runtime reserves 1 KB a block
        per_sm = per_sm < 1 ? 1 : per_sm > 2 ? 2 : per_sm;  // 2: the register limit (launch bounds)
        const long cap = per_sm * sms;
        const long waves = (row_blocks + cap - 1) / cap;
        grid = (int)((row_blocks + waves - 1) / waves);
    }
    const uint16_t *w16 = static_cast<const uint16_t *>(w);
    const bool vec = k % 8 == 0 && (uintptr_t)w % 16 == 0;
#define GS_MMA_LAUNCH(BF, NTT)                                                                                       \
    (vec ? launch<BF, NTT, true>(out, in, w16, bias, n, k, m, S, grid, kc, epi, norm, stream)                       \
         : launch<BF, NTT, false>(out, in, w16, bias, n, k, m, S, grid, kc, epi, norm, stream))
    if (is_bf16)
        return NT == 1 ? GS_MMA_LAUNCH(true, 1) : GS_MMA_LAUNCH(true, 2);
    return NT == 1 ? GS_MMA_LAUNCH(false, 1) : GS_MMA_LAUNCH(false, 2);
#undef GS_MMA_LAUNCH
}

extern "C" int cuda_gemv_mma_cfg(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n,
                                 int k, int m, int epilogue, gs_norm_fold norm, const gs_gemv_mma_cfg *cfg,
                                 cudaStream_t stream)
{
    static const gs_gemv_mma_cfg automatic = {0, 0, 0};
    if (!cfg)
        cfg = &automatic;
    const int S = cfg->split;
    if ((S != 0 && S != 1 && S != 2 && S != 4 && S != 8) || cfg->grid < 0 || cfg->kchunk < 0 ||
        cfg->kchunk % 32 != 0 ||
        (norm.kind != GS_NORM_FOLD_NONE && norm.kind != GS_NORM_FOLD_LAYER && norm.kind != GS_NORM_FOLD_RMS) ||
        (norm.kind != GS_NORM_FOLD_NONE && !norm.w))
        return (int)cudaErrorInvalidValue;
    if (n <= 0 || m <= 0)
        return 0;
    if (k <= 0)
        return (int)cudaErrorInvalidValue;
    int sms = 0, smem_sm = 0;
    CUDA_TRY(gs_cuda_sm_count(&sms));
    CUDA_TRY(smem_per_sm(&smem_sm));
    for (int i0 = 0; i0 < n; i0 += MMA_NMAX) {  // decode batches fit one pass; longer ones take several
        const int nb = n - i0 < MMA_NMAX ? n - i0 : MMA_NMAX;
        const int rc = gemv_mma_pass(out + (size_t)i0 * m, in + (size_t)i0 * k, w, is_bf16, bias, nb, k, m, epilogue,
                                     norm, cfg, sms, smem_sm, stream);
        if (rc)
            return rc;
    }
    return 0;
}

extern "C" int cuda_gemv_mma(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k,
                             int m, int epilogue, gs_norm_fold norm, cudaStream_t stream)
{
    return cuda_gemv_mma_cfg(out, in, w, is_bf16, bias, n, k, m, epilogue, norm, NULL, stream);
}
