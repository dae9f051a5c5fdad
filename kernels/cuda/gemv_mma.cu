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
// The block copies its token rows into shared memory once per chunk of
// columns and every warp reads its B fragments there, one LDS.128 per n-tile
// per group. Two steps: cp.async copies the fp32 rows (and the norm's w, b)
// global -> shared, all of the chunk in flight at once and no register held
// (the lane's prefetched w batch, 64 registers, stays live across it); then
// a conversion pass writes xs, 8 or 16 rows (NT = 1 or 2 n-tiles of 8) of
// fp16 / bf16 (the mma takes both operands in one type), rows past n zero.
// An xs row is KP halves with KP = 32 (mod 64): the 8 lanes of a quarter warp
// read 64 bytes of token g and 64 of token g + 1, and that offset puts them
// in different banks. With a folded norm each warp computes the statistics
// of its rows with gs_warp_row_stats (one warp a row, norm.cu's order, so the
// fp32 values equal the norm kernel's before rounding): from the staged copy
// when it holds whole rows, else from global memory (prefetched into L1);
// the conversion applies gs_norm_apply. Columns past k in the last group are
// zero in both operands (zero, not the norm of zero, and never 0 x garbage: a
// NaN would survive that). A chunk is at most 960 columns at n > 8, 1856 at
// n <= 8 (104 KB of halves, fp32 rows and norm weights); wider k is walked in
// chunks, the next chunk's copies flying while the current one is used.
//
// ---- who does what ----
// A warp owns one 16-row tile of w (m rounded up to 16; rows past m load row
// m - 1 and are not stored) and a slice of the chunk's groups; S warps of the
// block (S in 1, 2, 4, 8) split one tile's k range, so a block holds
// RT = 8 / S tiles. A lane issues the loads of up to U = 8 groups (16 uint4,
// 256 bytes) before its first mma; the first batch goes out before the
// staging and the statistics, so their L2 round trips hide under the DRAM one.
// The S slices' partial sums meet in shared memory and are added in slice
// order. KS blocks of a thread-block cluster (sm_90, KS in 1, 2, 4, 8, along
// grid y) may split k into ranges of whole groups: each stages only its
// columns, and block rank q adds outputs q * 256 + thread (mod 256 KS) over
// the KS blocks' totals in rank order, read through distributed shared
// memory, between two cluster barriers. Every sum has an order fixed by the
// shape, so a call gives the same bits every time. Blocks are persistent over
// row blocks (RT tiles): the grid is at most what fits on the device at once,
// every block walks row blocks gridDim.x apart and reuses its staged rows
// when its k range fits one chunk (the logits: 393 row blocks over 197 blocks).
//
// The launcher spreads small matrices until ~4 warps a SM (tiles * S * KS >=
// 4 * SMs): it doubles KS while each block keeps >= 4 groups, when no norm is
// folded (a folded norm makes every block read whole rows for its statistics),
// else S while each slice keeps >= 2 groups. Staging costs n * k * 4 bytes of
// L2 reads per RT tiles of w (16 * RT * k * 2 bytes): a cluster split keeps RT
// large where S would shrink it. GPT-2 124M at n = 8 and 16 (132 SMs): qkv
// and fc (norm folded) S = 4, 72 / 96 blocks; attn-proj KS = 4, S = 2, 48
// blocks; fc-proj KS = 8, S = 2, 96 blocks; logits S = 1, 197 blocks walking
// 2 row blocks each.
//
// Precision: x rounded to fp16 is ~2^-12 relative an element, ~2e-4 of the
// norm of the product (bf16: ~1.6e-3); products and sums are fp32 on the
// tensor cores. The fp32 FMA GEMV (gemv.cu) stays the reference path.
//
// Versions: v1 staged the rows with one float4 a lane a step (a warp per
// row): a dependent L2 round trip per step, ~48 of them per warp at k = 3072,
// n = 16; v2 (this) copies with cp.async and splits k over clusters.
// tests/test_gemv_mma_layout.c checks the operand layout above on the host
// against the PTX fragment tables. Written without a GPU at hand: the
// expected times (H100, n = 8 or 16, kernel time) are ~2-3 us for each GPT-2
// 124M layer matrix (gemv.cu: 12.4 us at n = 16) and ~29 us for the logits
// (DRAM: 77 MB at ~2.8 TB/s; gemv.cu: 64 us); test_cuda_gemv_mma --bench and
// --sweep measure them.
#include <atomic>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#include "check_cuda.cuh"
#include "gemv_common.cuh"
#include "gemv_mma_cuda.h"
#include "norm_stats.cuh"

#include <cooperative_groups.h>
namespace cg = cooperative_groups;

#define MMA_THREADS 256
#define MMA_WARPS (MMA_THREADS / 32)
#define MMA_U 8                       // groups (32 columns) a lane loads before its first mma
#define MMA_NMAX 16                   // token rows per pass
#define MMA_STAGE_CAP (104 * 1024)    // bytes of staged activations per block
#define MMA_KS_MAX 8                  // blocks of a cluster splitting k (the portable cluster size)
#define MMA_PART_BYTES(NT) (MMA_WARPS * (NT) * 4 * 32 * 4)  // the S-slice partial sums
#define MMA_RED_BYTES(RT, NT) ((RT) * 16 * 8 * (NT) * 4)    // a block's totals, read by its cluster
#define MMA_SST_BYTES (MMA_NMAX * (int)sizeof(gs_row_stats))  // the rows' norm statistics

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
    uint32_t r;
    if constexpr (BF16) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        memcpy(&r, &h, 4);
    } else {
        const __half2 h = __floats2half2_rn(a, b);
        memcpy(&r, &h, 4);
    }
    return r;
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

// Brings the 128-byte line at p into L1 (no register, no wait): the rows
// whose statistics a warp computes next, when they come from global memory.
static __device__ __forceinline__ void prefetch_l1(const void *p) { asm volatile("prefetch.global.L1 [%0];" ::"l"(p)); }

// Global -> shared copies that hold no register while in flight (cp.async):
// 16 bytes (both 16-byte aligned; .cg: L2 only, the block reads them once)
// or 4; cp_async_wait_all waits for this thread's copies (a barrier then
// shows them to the block).
static __device__ __forceinline__ void cp_async16(void *dst, const void *src)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src));
}
static __device__ __forceinline__ void cp_async4(void *dst, const void *src)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src));
}
static __device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// Issues the copies of columns c0 .. c0 + kcl - 1 of the n token rows into
// raw[j][0 .. kcl) (RS floats a row), and of norm.w / norm.b into nwb[0][..] /
// nwb[RS + ..] when a norm is folded. The whole block takes the elements
// flat, so all of them are in flight at once. vin: k % 4 == 0 and in 16-byte
// aligned (c0 is a multiple of 32, so float4 pieces); vnorm: norm.w and
// norm.b 16-byte aligned.
static __device__ __forceinline__ void stage_issue(float *raw, float *nwb, int RS, const float *__restrict__ in, int n,
                                                   int k, int c0, int kcl, const gs_norm_fold &norm, bool vin,
                                                   bool vnorm)
{
    if (vin) {
        const int q4 = kcl / 4;  // kcl % 4 == 0 when k % 4 == 0
        for (int e = threadIdx.x; e < n * q4; e += MMA_THREADS) {
            const int j = e / q4, c = (e - j * q4) * 4;
            cp_async16(raw + (size_t)j * RS + c, in + (size_t)j * k + c0 + c);
        }
    } else {
        for (int e = threadIdx.x; e < n * kcl; e += MMA_THREADS) {
            const int j = e / kcl, c = e - j * kcl;
            cp_async4(raw + (size_t)j * RS + c, in + (size_t)j * k + c0 + c);
        }
    }
    if (norm.kind == GS_NORM_FOLD_NONE)
        return;
    const int nv = norm.b ? 2 : 1;
    if (vnorm && kcl % 4 == 0) {
        const int q4 = kcl / 4;
        for (int e = threadIdx.x; e < nv * q4; e += MMA_THREADS) {
            const int v = e / q4, c = (e - v * q4) * 4;
            cp_async16(nwb + (size_t)v * RS + c, (v ? norm.b : norm.w) + c0 + c);
        }
    } else {
        for (int e = threadIdx.x; e < nv * kcl; e += MMA_THREADS) {
            const int v = e / kcl, c = e - v * kcl;
            cp_async4(nwb + (size_t)v * RS + c, (v ? norm.b : norm.w) + c0 + c);
        }
    }
}

// The staged chunk (raw, copies complete and visible) into xs[j][0 .. kcl32)
// for token rows j < rows: normalized when norm.kind says so (statistics in
// sst), rounded to the half type; zero past kcl (zero, not the norm of zero)
// and for j >= n.
template <bool BF16>
static __device__ __forceinline__ void stage_convert(uint16_t *xs, int KP, const float *raw, const float *nwb, int RS,
                                                     int rows, int n, int kcl, int kcl32, const gs_row_stats *sst,
                                                     const gs_norm_fold &norm)
{
    const int q4 = kcl32 / 4;
    for (int e = threadIdx.x; e < rows * q4; e += MMA_THREADS) {
        const int j = e / q4, c = (e - j * q4) * 4;
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (j < n) {
            gs_row_stats st = {0.0f, 0.0f, 1.0f};
            if (norm.kind != GS_NORM_FOLD_NONE)
                st = sst[j];
#pragma unroll
            for (int i = 0; i < 4; i++)
                if (c + i < kcl) {
                    v[i] = raw[(size_t)j * RS + c + i];
                    if (norm.kind != GS_NORM_FOLD_NONE)
                        v[i] = gs_norm_apply(v[i], st, nwb[c + i], norm.b ? nwb[RS + c + i] : 0.0f, norm.kind);
                }
        }
        *reinterpret_cast<uint2 *>(xs + (size_t)j * KP + c) =
            make_uint2(pack2<BF16>(v[0], v[1]), pack2<BF16>(v[2], v[3]));
    }
}

// The thread block cluster (sm_90): its barrier (release / acquire, so the
// partial sums written before it are seen by the blocks reading after it)
// and another block's copy of a shared-memory array.
static __device__ __forceinline__ void cluster_sync() { cg::this_cluster().sync(); }
static __device__ __forceinline__ const float *cluster_map(const float *p, int rank)
{
    return cg::this_cluster().map_shared_rank(p, rank);
}

// ---- the kernel ----

// n <= 8 * NT token rows; S warps per 16-row tile; gridDim.y = KS blocks of
// a cluster split k into KS ranges of whole groups (blockIdx.y is the rank);
// kc: the chunk width (a multiple of 32); KP: the staged row's width in halves.
template <bool BF16, int NT, bool VEC>
__global__ void __launch_bounds__(MMA_THREADS, 2)
    gemv_mma_kernel(float *__restrict__ out, const float *__restrict__ in, const uint16_t *__restrict__ w,
                    const float *__restrict__ bias, int n, int k, int m, int S, int kc, int KP, int epi,
                    gs_norm_fold norm)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const int RT = MMA_WARPS / S;
    const int tib = warp / S, s = warp % S;  // tile in the block, slice of k
    const int tiles = (m + 15) / 16;
    const int row_blocks = (tiles + RT - 1) / RT;
    const int KS = gridDim.y, rank = blockIdx.y;
    const int G = (k + 31) / 32;
    const int kb0 = 32 * (rank * G / KS), kb1 = min(k, 32 * ((rank + 1) * G / KS));  // this block's columns
    const int nch = kb1 > kb0 ? (kb1 - kb0 + kc - 1) / kc : 0;
    const bool vin = k % 4 == 0 && ((uintptr_t)in & 15) == 0;
    const bool vnorm = ((uintptr_t)norm.w & 15) == 0 && ((uintptr_t)norm.b & 15) == 0;

    // Shared memory: staged halves | raw fp32 rows | norm weights | S-slice
    // partials | cluster totals | statistics (smem_bytes on the host).
    extern __shared__ __align__(16) unsigned char smem[];
    uint16_t *xs = reinterpret_cast<uint16_t *>(smem);  // [8 * NT][KP] halves
    unsigned char *p = smem + (size_t)16 * NT * KP;
    float *raw = reinterpret_cast<float *>(p);  // [n][kc] fp32, the chunk as copied
    p += (size_t)MMA_NMAX / 2 * NT * kc * 4;
    float *nwb = reinterpret_cast<float *>(p);  // [2][kc]: norm.w, norm.b over the chunk
    p += norm.kind != GS_NORM_FOLD_NONE ? (size_t)2 * kc * 4 : 0;
    float *part = reinterpret_cast<float *>(p);  // [warp][NT * 4][32], when S > 1
    p += S > 1 ? MMA_PART_BYTES(NT) : 0;
    float *red = reinterpret_cast<float *>(p);  // [tile][token][row], when KS > 1
    p += KS > 1 ? MMA_RED_BYTES(RT, NT) : 0;
    gs_row_stats *sst = reinterpret_cast<gs_row_stats *>(p);  // [token row]

    // The first batch of w, before the statistics and the staging (the same
    // work item, chunk and slice the loop below starts with).
    uint4 wr[MMA_U][2];
    bool pre = false;
    if ((int)blockIdx.x < row_blocks && nch > 0) {
        const int row0 = ((int)blockIdx.x * RT + tib) * 16;
        if (row0 < m) {
            int ga, gb;
            slice_groups(min(kc, kb1 - kb0), S, s, ga, gb);
            if (ga < gb) {
                const uint16_t *lo = w + (size_t)min(row0 + g, m - 1) * k;
                const uint16_t *hi = w + (size_t)min(row0 + g + 8, m - 1) * k;
                load_batch<VEC>(wr, lo, hi, kb0, ga, gb, k, t);
                pre = true;
            }
        }
    }
    // ... and the copies of the first chunk.
    if ((int)blockIdx.x < row_blocks && nch > 0)
        stage_issue(raw, nwb, kc, in, n, k, kb0, min(kc, kb1 - kb0), norm, vin, vnorm);

    // Statistics of token rows warp and warp + 8 (one warp a row: uniform
    // branches, every lane in the shuffles), shared through sst. When the
    // whole row is staged (one chunk, no cluster split) they are taken from
    // the staged copy below; else from global memory now, rows prefetched
    // into L1 first. vin in both cases, so gs_warp_row_stats takes the path
    // norm.cu takes for the same row, and the values are its bits.
    const bool norm_on = norm.kind != GS_NORM_FOLD_NONE;
    const bool stats_staged = norm_on && nch == 1 && kb0 == 0 && kb1 == k && vin;
    if (norm_on && !stats_staged && (int)blockIdx.x < row_blocks) {
#pragma unroll
        for (int h = 0; h < NT; h++)
            if (warp + 8 * h < n)
                for (int c = 32 * lane; c < k; c += 32 * 32)
                    prefetch_l1(in + (size_t)(warp + 8 * h) * k + c);
#pragma unroll
        for (int h = 0; h < NT; h++)
            if (warp + 8 * h < n) {
                const gs_row_stats st = gs_warp_row_stats(in + (size_t)(warp + 8 * h) * k, k, norm.kind, norm.eps);
                if (lane == 0)
                    sst[warp + 8 * h] = st;
            }
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
            const int c0 = kb0 + ch * kc, kcl = min(kc, kb1 - c0), kcl32 = (kcl + 31) & ~31;
            if (nch > 1 || rb == (int)blockIdx.x) {  // one chunk: staged once for every row block
                // The chunk's copies were issued earlier: wait for this
                // thread's, then the barrier shows them all and says every
                // warp is done with xs.
                cp_async_wait_all();
                __syncthreads();
                if (stats_staged && rb == (int)blockIdx.x) {
#pragma unroll
                    for (int h = 0; h < NT; h++)
                        if (warp + 8 * h < n) {
                            const gs_row_stats st = gs_warp_row_stats(raw + (size_t)(warp + 8 * h) * kc, k, norm.kind,
                                                                      norm.eps);
                            if (lane == 0)
                                sst[warp + 8 * h] = st;
                        }
                    __syncthreads();
                }
                stage_convert<BF16>(xs, KP, raw, nwb, kc, 8 * NT, n, kcl, kcl32, sst, norm);
                __syncthreads();
                // raw is free: the next chunk's copies (this row block's, or
                // the next row block's first) fly while this one is used.
                if (nch > 1) {
                    const int nrb = ch + 1 < nch ? rb : rb + (int)gridDim.x, nc = ch + 1 < nch ? ch + 1 : 0;
                    if (nrb < row_blocks) {
                        const int n0 = kb0 + nc * kc;
                        stage_issue(raw, nwb, kc, in, n, k, n0, min(kc, kb1 - n0), norm, vin, vnorm);
                    }
                }
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

        // Where the results go. A lane's register i of n-tile nt is
        // D[g + 8 (i >> 1)][2t + (i & 1)]: row row0 + g + 8 (i >> 1), token
        // 8 nt + 2t + (i & 1). Below, output x of the row block is (tile b,
        // token j, row r) with r fastest, so consecutive threads store 64
        // contiguous bytes: x = (b * n + j) * 16 + r.
        if (S == 1 && KS == 1) {  // the warp holds its tile's totals
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
        const int X = RT * 16 * n;
        if (S > 1) {  // the S slices' partial sums through shared memory, added in slice order
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    part[(warp * NT * 4 + nt * 4 + i) * 32 + lane] = acc[nt][i];
            __syncthreads();
            // (b, j, r) is held by lane (r & 7) * 4 + (j & 7) / 2, register
            // (r >> 3) * 2 + (j & 1) of n-tile j / 8, in warps b * S .. b * S + S - 1.
            for (int x = threadIdx.x; x < X; x += MMA_THREADS) {
                const int r = x % 16, j = (x / 16) % n, b = x / (16 * n);
                const int row = (rb * RT + b) * 16 + r;
                const int src_lane = (r & 7) * 4 + (j & 7) / 2;
                const int reg = (j / 8) * 4 + (r >> 3) * 2 + (j & 1);
                float sum = part[((b * S) * NT * 4 + reg) * 32 + src_lane];
                for (int i = 1; i < S; i++)
                    sum += part[((b * S + i) * NT * 4 + reg) * 32 + src_lane];
                if (KS > 1)
                    red[x] = sum;
                else if (row < m)
                    store_out(out + (size_t)j * m + row, sum + (bias ? __ldg(bias + row) : 0.0f), epi);
            }
        } else {  // S == 1, KS > 1: the warp's totals of its tile straight into red
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int r = g + 8 * (i >> 1), j = 8 * nt + 2 * t + (i & 1);
                    if (j < n)
                        red[(tib * n + j) * 16 + r] = acc[nt][i];
                }
        }
        if (KS == 1) {
            __syncthreads();  // part is free for the next row block
            continue;
        }
        // The cluster's KS blocks hold partial totals of the same outputs over
        // their k ranges: block rank q adds outputs x = q * 256 + thread (mod
        // 256 * KS) over ranks 0 .. KS - 1 in order, reading the others'
        // shared memory. The second barrier keeps every block's red alive
        // (and unchanged) until the last remote read.
        cluster_sync();
        for (int x = rank * MMA_THREADS + threadIdx.x; x < X; x += MMA_THREADS * KS) {
            const int r = x % 16, j = (x / 16) % n, b = x / (16 * n);
            const int row = (rb * RT + b) * 16 + r;
            if (row >= m)
                continue;
            float sum = cluster_map(red, 0)[x];
            for (int q = 1; q < KS; q++)
                sum += cluster_map(red, q)[x];
            store_out(out + (size_t)j * m + row, sum + (bias ? __ldg(bias + row) : 0.0f), epi);
        }
        cluster_sync();
    }
}

// ---- launchers ----

// Device attributes read once per device (as gs_cuda_sm_count): the values
// never change, so a racing first read is harmless.
enum { ATTR_SMEM_SM, ATTR_CC_MAJOR, ATTR_COUNT };
static cudaError_t device_attr(int slot, int *value)
{
    static const cudaDeviceAttr which[ATTR_COUNT] = {cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                                     cudaDevAttrComputeCapabilityMajor};
    static std::atomic<int> cached[ATTR_COUNT][64];
    int dev = 0;
    cudaError_t rc = cudaGetDevice(&dev);
    if (rc != cudaSuccess)
        return rc;
    if (dev < 0 || dev >= 64)
        return cudaDeviceGetAttribute(value, which[slot], dev);
    int v = cached[slot][dev].load(std::memory_order_relaxed);
    if (v == 0) {
        if ((rc = cudaDeviceGetAttribute(&v, which[slot], dev)) != cudaSuccess)
            return rc;
        cached[slot][dev].store(v, std::memory_order_relaxed);
    }
    *value = v;
    return cudaSuccess;
}

// The staged row width for a chunk of kc columns: 32 (mod 64) halves.
static int stage_kp(int kc) { return ((kc + 63) & ~63) + 32; }

// The widest chunk whose halves, fp32 rows and norm weights fit
// MMA_STAGE_CAP (a multiple of 64).
static int max_chunk(int NT)
{
    int kc = MMA_STAGE_CAP / (8 * NT * 2 + 8 * NT * 4 + 8) / 64 * 64;
    while ((size_t)8 * NT * stage_kp(kc) * 2 + (size_t)(8 * NT * 4 + 8) * kc > MMA_STAGE_CAP)
        kc -= 64;
    return kc;
}

// The kernel's shared memory (its layout at the kernel's head).
static size_t smem_bytes(int NT, int kc, bool norm, int S, int KS)
{
    return (size_t)8 * NT * stage_kp(kc) * 2 + (size_t)8 * NT * kc * 4 + (norm ? (size_t)2 * kc * 4 : 0) +
           (S > 1 ? MMA_PART_BYTES(NT) : 0) + (KS > 1 ? MMA_RED_BYTES(MMA_WARPS / S, NT) : 0) + MMA_SST_BYTES;
}

// One instantiation: its dynamic shared memory allowance (over 48 KB needs
// an opt-in, once per device) and the launch, with KS > 1 as clusters of KS
// blocks along y.
template <bool BF16, int NT, bool VEC>
static int launch(float *out, const float *in, const uint16_t *w, const float *bias, int n, int k, int m, int S,
                  int KS, int grid, int kc, int epi, gs_norm_fold norm, cudaStream_t stream)
{
    static std::atomic<unsigned long long> opted;  // a bit per device
    int dev = 0;
    CUDA_TRY(cudaGetDevice(&dev));
    const unsigned long long bit = dev >= 0 && dev < 64 ? 1ull << dev : 0;
    if (!bit || !(opted.load(std::memory_order_relaxed) & bit)) {
        size_t most = 0;  // the largest layout any shape of this instantiation asks for
        for (int s = 1; s <= MMA_WARPS; s *= 2)
            most = smem_bytes(NT, max_chunk(NT), true, s, 2) > most ? smem_bytes(NT, max_chunk(NT), true, s, 2) : most;
        CUDA_TRY(cudaFuncSetAttribute(gemv_mma_kernel<BF16, NT, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)most));
        opted.fetch_or(bit, std::memory_order_relaxed);
    }
    const int KP = stage_kp(kc);
    const size_t smem = smem_bytes(NT, kc, norm.kind != GS_NORM_FOLD_NONE, S, KS);
    if (KS == 1) {
        gemv_mma_kernel<BF16, NT, VEC><<<grid, MMA_THREADS, smem, stream>>>(out, in, w, bias, n, k, m, S, kc, KP,
                                                                             epi, norm);
        CUDA_LAUNCHED();
        return 0;
    }
    cudaLaunchConfig_t lc = {};
    lc.gridDim = dim3(grid, KS, 1);
    lc.blockDim = dim3(MMA_THREADS, 1, 1);
    lc.dynamicSmemBytes = smem;
    lc.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = KS;
    attr[0].val.clusterDim.z = 1;
    lc.attrs = attr;
    lc.numAttrs = 1;
    CUDA_TRY(cudaLaunchKernelEx(&lc, gemv_mma_kernel<BF16, NT, VEC>, out, in, w, bias, n, k, m, S, kc, KP, epi, norm));
    CUDA_LAUNCHED();
    return 0;
}

// One pass of n <= 16 rows: the shape (cfg fields 0: chosen here), then the
// instantiation.
static int gemv_mma_pass(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n, int k,
                         int m, int epi, gs_norm_fold norm, const gs_gemv_mma_cfg *cfg, int sms, int smem_sm,
                         int cc_major, cudaStream_t stream)
{
    const int NT = n <= 8 ? 1 : 2;
    const int tiles = (m + 15) / 16, G = (k + 31) / 32;
    int S = cfg->split, KS = cfg->ksplit;
    if (KS > 1 && cc_major < 9)
        return (int)cudaErrorInvalidValue;  // clusters need sm_90
    if (S == 0 || KS == 0) {
        // Spread small matrices until ~4 warps a SM: double KS (no folded
        // norm: each block reads whole rows for its statistics anyway) while
        // each block keeps >= 4 groups, else S while each slice keeps >= 2.
        const bool free_s = S == 0, free_ks = KS == 0;
        if (free_s)
            S = 1;
        if (free_ks)
            KS = 1;
        while ((long)tiles * S * KS < 4L * sms) {
            if (free_ks && KS < MMA_KS_MAX && norm.kind == GS_NORM_FOLD_NONE && cc_major >= 9 && G >= 4 * 2 * KS)
                KS *= 2;
            else if (free_s && S < MMA_WARPS && G >= 2 * 2 * S * KS)
                S *= 2;
            else
                break;
        }
    }
    // The chunk: a block's column range (whole groups), in as few even chunks as fit.
    const int kcmax = max_chunk(NT);
    const int klen = 32 * ((G + KS - 1) / KS);
    int kc = cfg->kchunk;
    if (kc > kcmax)
        return (int)cudaErrorInvalidValue;
    if (kc == 0) {
        const int nch = (klen + kcmax - 1) / kcmax;
        kc = (((klen + nch - 1) / nch) + 31) & ~31;
    }
    const int RT = MMA_WARPS / S;
    const int row_blocks = (tiles + RT - 1) / RT;
    int grid = cfg->grid;
    if (grid == 0) {  // what fits at once, then evened out so every block walks as many row blocks
        long per_sm = smem_sm / (long)(smem_bytes(NT, kc, norm.kind != GS_NORM_FOLD_NONE, S, KS) + 1024);  // the runtime reserves 1 KB a block
        per_sm = per_sm < 1 ? 1 : per_sm > 2 ? 2 : per_sm;                 // 2: the register limit (launch bounds)
        const long cap = per_sm * sms / KS > 0 ? per_sm * sms / KS : 1;
        const long waves = (row_blocks + cap - 1) / cap;
        grid = (int)((row_blocks + waves - 1) / waves);
    }
    const uint16_t *w16 = static_cast<const uint16_t *>(w);
    const bool vec = k % 8 == 0 && (uintptr_t)w % 16 == 0;
#define GS_MMA_LAUNCH(BF, NTT)                                                                                       \
    (vec ? launch<BF, NTT, true>(out, in, w16, bias, n, k, m, S, KS, grid, kc, epi, norm, stream)                   \
         : launch<BF, NTT, false>(out, in, w16, bias, n, k, m, S, KS, grid, kc, epi, norm, stream))
    if (is_bf16)
        return NT == 1 ? GS_MMA_LAUNCH(true, 1) : GS_MMA_LAUNCH(true, 2);
    return NT == 1 ? GS_MMA_LAUNCH(false, 1) : GS_MMA_LAUNCH(false, 2);
#undef GS_MMA_LAUNCH
}

static bool pow2_upto8(int v) { return v == 0 || v == 1 || v == 2 || v == 4 || v == 8; }

extern "C" int cuda_gemv_mma_cfg(float *out, const float *in, const void *w, int is_bf16, const float *bias, int n,
                                 int k, int m, int epilogue, gs_norm_fold norm, const gs_gemv_mma_cfg *cfg,
                                 cudaStream_t stream)
{
    static const gs_gemv_mma_cfg automatic = {0, 0, 0, 0};
    if (!cfg)
        cfg = &automatic;
    if (!pow2_upto8(cfg->split) || !pow2_upto8(cfg->ksplit) || cfg->grid < 0 || cfg->kchunk < 0 ||
        cfg->kchunk % 32 != 0 ||
        (norm.kind != GS_NORM_FOLD_NONE && norm.kind != GS_NORM_FOLD_LAYER && norm.kind != GS_NORM_FOLD_RMS) ||
        (norm.kind != GS_NORM_FOLD_NONE && !norm.w))
        return (int)cudaErrorInvalidValue;
    if (n <= 0 || m <= 0)
        return 0;
    if (k <= 0)
        return (int)cudaErrorInvalidValue;
    int sms = 0, smem_sm = 0, cc_major = 0;
    CUDA_TRY(gs_cuda_sm_count(&sms));
    CUDA_TRY(device_attr(ATTR_SMEM_SM, &smem_sm));
    CUDA_TRY(device_attr(ATTR_CC_MAJOR, &cc_major));
    for (int i0 = 0; i0 < n; i0 += MMA_NMAX) {  // decode batches fit one pass; longer ones take several
        const int nb = n - i0 < MMA_NMAX ? n - i0 : MMA_NMAX;
        const int rc = gemv_mma_pass(out + (size_t)i0 * m, in + (size_t)i0 * k, w, is_bf16, bias, nb, k, m, epilogue,
                                     norm, cfg, sms, smem_sm, cc_major, stream);
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
