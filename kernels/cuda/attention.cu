// attention.cu - the CUDA twins of kernels/cpu/attention.c: the KV store and
// causal attention over the paged KV cache, fp32/fp16/int8/fp8 cache elements
// and fp32 math (fp16 tensor-core products for prefills of half-precision runs).
//
// Versions (a->variant picks; the test checks both against cpu_attention_ref):
//   kv_store_kernel        one thread per (token, kv element): copies k and v of
//                          each qkv row into its cache slot; slot < 0 stores nothing.
//   GS_ATTN_NAIVE          the teaching baseline, deliberately unfused, three kernels
//                          and the whole score matrix in device memory (scratch):
//     naive_scores_kernel    one thread per (token, head, position < max_pos):
//                            q . k * scale, or -INFINITY where the position is
//                            not visible (future, outside the window, past max).
//     naive_softmax_kernel   one block per (token, head) row: max, then exp and
//                            sum, then divide (block reductions: warp shuffles,
//                            then one value per warp through shared memory).
//     naive_wsum_kernel      one thread per output element (token, head, dim):
//                            sum over the visible positions of p * v, in position
//                            order; consecutive threads read consecutive dims of
//                            a v row (coalesced), the weight is a broadcast.
//   GS_ATTN_FUSED          flash-style: scores never leave the SM.
//     flash_decode_kernel    split-K flash-decoding, for every row of calls of
//                            few tokens (n_tokens <= FL_DECODE_MAX_TOKENS), and
//                            unsplit for the scattered rows of larger calls (see
//                            the hybrid below). A block is one
//                            (token, group of hpb query heads sharing one KV
//                            head, chunk of `chunk` visible positions), so each
//                            K/V tile staged in shared memory serves every head
//                            of the GQA group; one warp per head, or two (each
//                            taking half of every tile, merged at the end) when
//                            the group is smaller than 4. The chunk size gives
//                            the grid ~FL_TARGET_BLOCKS blocks. Each head's
//                            online softmax over the chunk ends as an
//                            unnormalized partial (max m, sum l, acc[head_dim])
//                            in scratch, or as the output itself when the
//                            token's whole history fits in one chunk.
//     flash_reduce_kernel    one warp per (token, head) with more than one chunk:
//                            M = max m_c, L = sum l_c e^(m_c - M),
//                            out = sum acc_c e^(m_c - M) / L.
//     flash_prefill_kernel   for calls of more tokens: a block is a tile of
//                            FL_PF_ROWS = 16 consecutive query tokens x one head,
//                            8 warps of 2 rows each, all rows sharing each K/V
//                            tile in shared memory (the cache is read once per
//                            16 rows, and every K or V value read from shared
//                            memory feeds both rows of a warp). Rows of one tile
//                            may belong to different sequences: the block makes
//                            one pass per distinct sequence.
//     tc_prefill_kernel      (a->half_ok: the run computes in half precision)
//                            replaces flash_prefill_kernel in the hybrid below
//                            when head_dim is 32, 64 or 128 and the caches are
//                            16-byte aligned (cuda_attention_tensor_cores says
//                            so). Why: flash_prefill_kernel does fp32 FMA on CUDA
//                            cores, ~8-13 TFLOP/s, 213 us per GPT-2 layer at
//                            1024 tokens, over half of the whole prefill; the
//                            tensor cores do fp16 products at ~50x that rate.
//                            FlashAttention-2 on mma.sync m16n8k16: a block is
//                            64 query rows x one head (4 warps of 16 rows), Q
//                            in registers as fp16 A fragments, key tiles of 64
//                            positions gathered through the block table by
//                            16-byte cp.async (fp16 straight into the half tile,
//                            double-buffered; fp32/int8/fp8 into a staging area
//                            converted to half), S = Q K^T and O += P V on
//                            tensor cores with fp32 accumulators, the online
//                            softmax in registers (exp2, Q pre-scaled by
//                            scale * log2 e). Only for half-precision runs:
//                            rounding q, k, v and p to fp16 costs ~1e-4..1e-3
//                            relative error (the test holds it to 2e-3), which
//                            the fp32 path's 1e-5 contract forbids.
//     tc_reduce_kernel       a row tile's key tiles are split into chunks of
//                            >= 4 tiles, a block each (the longest causal rows
//                            walked 16 tiles while 192 blocks left most SMs
//                            with one block); this merges the chunks' partials.
//   The hybrid (fused calls of more than FL_DECODE_MAX_TOKENS tokens): the host
//   cannot tell a prefill from a large decode batch (token_seq is in device
//   memory), so each kernel decides per row, by one rule both apply: a row whose
//   sequence has at least FL_PF_SHARE rows in its 16-row tile is the prefill
//   kernel's, any other row the decode kernel's. A prefill's rows share their
//   tiles; a decode batch's rows would each cost the prefill kernel a pass of
//   its own (at b=128 that was slower than naive) and go to the decode kernel,
//   which has a block per (row, head group) and so parallelism to spare. Both
//   kernels are launched; each leaves the other's rows alone. When the caller
//   passes the host's copy of token_seq (a->token_seq_host), the host applies
//   the same rule first and skips a kernel that would find no row: a prefill
//   of 1024 tokens launched 12288 decode blocks that all left (13.6 us a
//   GPT-2 layer on the H100).
//
// Shared by both fused kernels (fl_load_tile, fl_attend_tile): a tile is 64
// positions (32 for head_dim > 128). First the positions' cache rows go into
// shared memory (-1: not loaded), then K and V rows come in with cp.async (16
// bytes when head_dim % 4 == 0 and the caches are 16-byte aligned, else 4
// bytes), rows not loaded zero-filled. Then each warp scores its rows: lane i
// takes positions i, i + 32 of its part of the tile, a float4 dot product over
// head_dim from shared memory (K rows padded to a stride whose float4 count is
// odd, so eight lanes' 16-byte reads hit distinct banks; q is a broadcast),
// masks invisible positions to -INFINITY and updates the running max and sum.
// Then the weighted sum: the probabilities go through a per-row buffer in
// shared memory, read four at a time as a broadcast float4, and each lane
// accumulates its DPL output dims (float2 / float4 runs of a V row) in
// registers. Visibility is the CPU twin's: [0, pos], or with a window
// (pos - window, pos] plus the sinks [0, n_sink). Only positions some row can
// see are ever read from the cache, so a block-table entry for a block that
// has fallen out of every window may hold anything (the test points such
// entries at a never-written, all-NaN block).
//
// KV element types (a->kv_dtype, kv_format.h): every kernel is a template on
// the type KT. kv_store encodes as cpu_kv_store does, bit for bit (fp16 and
// fp8 through kv_format.h's conversions, int8 with one warp per token and KV
// head reducing max|x| for the scale). The attention kernels decode in
// registers where they load: the naive kernels per element, the fused ones in
// fl_load_tile, which for fp16/int8/fp8 replaces cp.async with plain 8- or
// 4-byte loads of four elements and stores the decoded floats in the shared
// tile the fp32 path fills (a per-block working tile, as in fp32, never a
// dequantized copy of the cache); past the load everything is the fp32 code.
// The fp32 instantiations are unchanged. The quantized loads are synchronous
// (not overlapped with compute the way cp.async is): their speed on an H100
// is not measured yet.
//
// Accuracy: all sums in float; expf (not __expf: the build has no fast math);
// the test holds every variant to 1e-5 relative norm error against the double
// reference (observed: below 1e-6), except tc_prefill_kernel (fp16 operands,
// fp32 accumulation and softmax): 2e-3, expected ~5e-4 (q, k, v, p each
// rounded once to fp16, 2^-11 relative at most). fp16 has fp16's range: a q
// (times scale), k or v beyond 65504 would become infinite, as in an fp16 KV
// cache; int8 and fp8 values fit (fp8 e4m3 converts exactly).
//
// Speed on an H100 (test_cuda_attention --bench, medians, including the
// ~7 us that one launch between two events costs there; KV GB/s counts the
// cache bytes a call must read once, against ~3000 GB/s of DRAM):
//   GPT-2 124M shapes (12 heads, head_dim 64)
//     decode b=1, 1024 positions     naive  148 us   fused  15.8 us
//     decode b=16, 1024 positions    naive  313 us   fused  55.5 us (1.8 TB/s)
//     decode b=128, 512 positions    naive  383 us   fused   170 us (2.4 TB/s)
//     prefill 1024 tokens            naive 2358 us   fused   213 us
//   Llama-3.2-1B shapes (32/8 heads, head_dim 64)
//     decode b=1, 4096 positions     naive  567 us   fused  23.0 us
//     decode b=16, 2048 positions    naive  810 us   fused  73.9 us (1.8 TB/s)
//     prefill 1024 tokens            naive 6157 us   fused   458 us
//   32/8 heads, head_dim 128: decode b=1 at 4096 naive 1032 us, fused 39.4 us;
//     prefill 2048 naive 47.4 ms, fused 2.64 ms (~13 TFLOP/s of fp32 FMA)
// tc_prefill_kernel, unsplit: 73 us for the GPT-2 prefill of 1024 tokens with
// fp32 KV (51.5 us fp16 KV), the idle decode blocks included; the whole-model
// profile had the kernel alone at 58 us. Split over keys: not measured yet
// (tests/bench/PERFORMANCE.md has the prediction).
// A hybrid call without token_seq_host pays ~14-20 us for the decode kernel's
// blocks that find their row is the prefill kernel's and leave (a prefill of
// 1024 tokens: 12288 blocks); with it, a pure prefill launches none of them.
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "attention_cuda.h"
#include "check_cuda.cuh"
#include "half_out.cuh"
#include "kv_format.h"
#include "pdl.cuh"

#define KV_STORE_THREADS 256
#define NAIVE_THREADS 256
#define SOFTMAX_THREADS 256
#define MAX_BLOCKS 65535  // grid-stride kernels launch at most this many blocks

#define FL_MAX_HEAD_DIM 256         // fused kernels: up to 8 output dims per lane
#define FL_ROWS 8                   // prefill: warps per block
#ifndef FL_RPW
#define FL_RPW 2                    // prefill: query rows per warp (each K/V read feeds them all)
#endif
#define FL_PF_ROWS (FL_ROWS * FL_RPW) // prefill: query rows per block
#ifndef FL_MIN_BLOCKS
// Both fused kernels: blocks of 256 threads per SM the registers must allow.
// Left to itself ptxas picked 48-64 registers for some instantiations and
// spilled (~90 bytes for the prefill at head_dim 128); 2 caps them at 128 and
// every instantiation fits with no spill.
#define FL_MIN_BLOCKS 2
#endif
#define FL_DECODE_MAX_TOKENS 64     // fused calls of more tokens: the hybrid below
#define FL_PF_SHARE 4               // hybrid: a row goes to the prefill kernel when this many
                                    // rows of its tile (itself included) share its sequence
#define FL_TARGET_BLOCKS 512        // split-K: aim for ~4 blocks per SM of a 132-SM H100
#define FL_CHUNK_STEP 64            // chunk sizes are multiples of every tile size
#define FL_REDUCE_WARPS 4
#define FL_SHORT_WPH 8              // short decode: warps a head, one 32-position slice each
#define FL_SHORT_MAX (32 * FL_SHORT_WPH)  // short decode: at most this many visible positions
#define FL_SHORT_BLOCKS 128         // short decode: at most this many (token, head) blocks
#define FULL_MASK 0xffffffffu

// ---- visibility: the CPU twin's rule, shared by every kernel ----

// The visible positions of a token at pos: [0, sink_end) then [lo, pos].
struct attn_vis {
    int sink_end, lo, pos;
};

static __host__ __device__ __forceinline__ attn_vis vis_of(int window, int n_sink, int pos)
{
    attn_vis v = {0, 0, pos};
    if (window > 0) {
        v.lo = pos - window + 1 > 0 ? pos - window + 1 : 0;
        // Sinks already inside the window are not counted twice.
        v.sink_end = n_sink < v.lo ? (n_sink > 0 ? n_sink : 0) : v.lo;
    }
    return v;
}

static __device__ __forceinline__ int vis_count(attn_vis v) { return v.sink_end + v.pos + 1 - v.lo; }
// Position of visible index j (sinks first, then the window: position order).
static __device__ __forceinline__ int vis_pos(attn_vis v, int j) { return j < v.sink_end ? j : v.lo + (j - v.sink_end); }
// Whether position p >= 0 is visible.
static __device__ __forceinline__ bool vis_sees(attn_vis v, int p) { return p <= v.pos && (p >= v.lo || p < v.sink_end); }

// Cache row of position p of the sequence whose block-table row is `table`.
static __device__ __forceinline__ int cache_row(const int *table, int block_size, int p)
{
    return table[p / block_size] * block_size + p % block_size;
}

static __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, off));
    return v;
}

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

static int grid_for(size_t items, int threads)
{
    size_t blocks = (items + threads - 1) / threads;
    return blocks > MAX_BLOCKS ? MAX_BLOCKS : (int)(blocks ? blocks : 1);
}

// ---- KV element loads and stores (kv_format.h's formats) ----
//
// Every kernel is templated on the cache's element type KT, so the fp32
// instantiations are the code they were; the others decode in registers with
// the host twin's exact rules (fp16 by the hardware conversion, exact; fp8 by
// kv_format.h's bit conversion; int8 times the (slot, KV head) scale).

// Element i of a KT cache, dequantized (scale: its row's, int8 only).
template <int KT>
static __device__ __forceinline__ float kv_ld(const void *__restrict__ cache, size_t i, float scale)
{
    if constexpr (KT == GS_KV_F32)
        return static_cast<const float *>(cache)[i];
    else if constexpr (KT == GS_KV_F16)
        return __half2float(__ushort_as_half(static_cast<const unsigned short *>(cache)[i]));
    else if constexpr (KT == GS_KV_I8)
        return (float)static_cast<const int8_t *>(cache)[i] * scale;
    else
        return gs_kv_e4m3_to_f32(static_cast<const uint8_t *>(cache)[i]);
}

// Elements i .. i + 3 (i % 4 == 0, the base aligned to 4 elements): one 8-byte
// load for fp16, one 4-byte load for int8 and fp8.
template <int KT>
static __device__ __forceinline__ float4 kv_ld4(const void *__restrict__ cache, size_t i, float scale)
{
    if constexpr (KT == GS_KV_F16) {
        const uint2 u = *reinterpret_cast<const uint2 *>(static_cast<const unsigned short *>(cache) + i);
        const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
        const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
        return make_float4(a.x, a.y, b.x, b.y);
    } else {
        const uint32_t u = *reinterpret_cast<const uint32_t *>(static_cast<const uint8_t *>(cache) + i);
        float x[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const uint8_t b = (uint8_t)(u >> (8 * e));
            if constexpr (KT == GS_KV_I8)
                x[e] = (float)(int8_t)b * scale;
            else
                x[e] = gs_kv_e4m3_to_f32(b);
        }
        return make_float4(x[0], x[1], x[2], x[3]);
    }
}

// Scale of (cache row, KV head kvh) for int8 caches; unused otherwise.
template <int KT>
static __device__ __forceinline__ float kv_scale(const float *__restrict__ scale, size_t row, int n_kv, int kvh)
{
    if constexpr (KT == GS_KV_I8)
        return scale[row * n_kv + kvh];
    else
        return 0.0f;
}

// ---- KV store ----

// fp32, fp16, fp8: element by element, the host twin's conversions.
template <int KT>
__global__ void __launch_bounds__(KV_STORE_THREADS)
    kv_store_kernel(void *__restrict__ k_cache, void *__restrict__ v_cache, const float *__restrict__ qkv,
                    const int *__restrict__ slot, int n, int qkv_stride, int q_dim, int kv_dim)
{
    gs_pdl_trigger();
    gs_pdl_wait();  // launched programmatically after the qkv product (pdl.cuh)
    const size_t total = (size_t)n * kv_dim;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        const int i = (int)(e / kv_dim), c = (int)(e % kv_dim);
        const int s = slot[i];
        if (s < 0)  // a padding token: nothing to store
            continue;
        const float *row = qkv + (size_t)i * qkv_stride + q_dim;
        const size_t o = (size_t)s * kv_dim + c;
        if constexpr (KT == GS_KV_F32) {
            static_cast<float *>(k_cache)[o] = row[c];
            static_cast<float *>(v_cache)[o] = row[kv_dim + c];
        } else if constexpr (KT == GS_KV_F16) {
            static_cast<uint16_t *>(k_cache)[o] = gs_kv_f32_to_f16(row[c]);
            static_cast<uint16_t *>(v_cache)[o] = gs_kv_f32_to_f16(row[kv_dim + c]);
        } else {
            static_cast<uint8_t *>(k_cache)[o] = gs_kv_f32_to_e4m3(row[c]);
            static_cast<uint8_t *>(v_cache)[o] = gs_kv_f32_to_e4m3(row[kv_dim + c]);
        }
    }
}

// int8: one warp per (token, KV head, K or V): max |x| over the head by warp
// reduction (a max is exact in any order, so the scale is the CPU twin's),
// then each lane quantizes its elements; lane 0 writes the scale.
__global__ void __launch_bounds__(KV_STORE_THREADS)
    kv_store_i8_kernel(int8_t *__restrict__ k_cache, int8_t *__restrict__ v_cache, float *__restrict__ k_scale,
                       float *__restrict__ v_scale, const float *__restrict__ qkv, const int *__restrict__ slot, int n,
                       int qkv_stride, int q_dim, int kv_dim, int hd)
{
    const int n_kv = kv_dim / hd, lane = threadIdx.x % 32;
    const size_t warps = (size_t)n * n_kv * 2, step = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; w < warps; w += step) {  // warp-uniform
        const int which = (int)(w % 2), h = (int)(w / 2 % n_kv), i = (int)(w / 2 / n_kv);
        const int s = slot[i];
        if (s < 0)
            continue;
        const float *x = qkv + (size_t)i * qkv_stride + q_dim + (size_t)which * kv_dim + (size_t)h * hd;
        float amax = 0.0f;
        for (int c = lane; c < hd; c += 32)
            amax = fmaxf(amax, fabsf(x[c]));
        const float sc = gs_kv_i8_scale(warp_max(amax));
        int8_t *dst = (which ? v_cache : k_cache) + (size_t)s * kv_dim + (size_t)h * hd;
        for (int c = lane; c < hd; c += 32)
            dst[c] = gs_kv_i8_quant(x[c], sc);
        if (lane == 0)
            (which ? v_scale : k_scale)[(size_t)s * n_kv + h] = sc;
    }
}

extern "C" int cuda_kv_store(void *k_cache, void *v_cache, float *k_scale, float *v_scale, int kv_dtype,
                             const float *qkv, const int *slot, int n, int qkv_stride, int q_dim, int kv_dim,
                             int head_dim, cudaStream_t stream)
{
    if (n <= 0 || kv_dim <= 0)
        return 0;
    const int grid = grid_for((size_t)n * kv_dim, KV_STORE_THREADS);
    switch (kv_dtype) {
    case GS_KV_F32:
        CUDA_TRY(gs_launch_pdl(kv_store_kernel<GS_KV_F32>, grid, KV_STORE_THREADS, 0, stream, k_cache, v_cache, qkv,
                               slot, n, qkv_stride, q_dim, kv_dim));
        break;
    case GS_KV_F16:
        CUDA_TRY(gs_launch_pdl(kv_store_kernel<GS_KV_F16>, grid, KV_STORE_THREADS, 0, stream, k_cache, v_cache, qkv,
                               slot, n, qkv_stride, q_dim, kv_dim));
        break;
    case GS_KV_FP8:
        CUDA_TRY(gs_launch_pdl(kv_store_kernel<GS_KV_FP8>, grid, KV_STORE_THREADS, 0, stream, k_cache, v_cache, qkv,
                               slot, n, qkv_stride, q_dim, kv_dim));
        break;
    case GS_KV_I8:
        if (head_dim <= 0 || kv_dim % head_dim || !k_scale || !v_scale) {
            fprintf(stderr, "gptscope: cuda_kv_store: int8 needs head_dim dividing kv_dim %d and scales\n", kv_dim);
            return (int)cudaErrorInvalidValue;
        }
        kv_store_i8_kernel<<<grid_for((size_t)n * (kv_dim / head_dim) * 2 * 32, KV_STORE_THREADS), KV_STORE_THREADS, 0,
                             stream>>>(static_cast<int8_t *>(k_cache), static_cast<int8_t *>(v_cache), k_scale, v_scale,
                                       qkv, slot, n, qkv_stride, q_dim, kv_dim, head_dim);
        break;
    default:
        fprintf(stderr, "gptscope: cuda_kv_store: KV element type %d unknown\n", kv_dtype);
        return (int)cudaErrorInvalidValue;
    }
    CUDA_LAUNCHED();
    return 0;
}

// ---- GS_ATTN_NAIVE: scores, softmax, weighted sum ----

// S[t][h][p] for p < max_pos: one thread per score. Consecutive threads take
// consecutive positions of one (token, head): q is a broadcast, the k rows come
// through L1.
template <int KT>
__global__ void __launch_bounds__(NAIVE_THREADS)
    naive_scores_kernel(float *__restrict__ S, const float *__restrict__ qkv, const void *__restrict__ k_cache,
                        gs_attn_args a, float scale)
{
    const int hd = a.head_dim, kv_dim = a.n_kv_head * hd, group = a.n_head / a.n_kv_head;
    const size_t total = (size_t)a.n_tokens * a.n_head * a.max_pos;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        const int p = (int)(e % a.max_pos);
        const size_t th = e / a.max_pos;
        const int h = (int)(th % a.n_head), t = (int)(th / a.n_head);
        const attn_vis v = vis_of(a.window, a.n_sink, a.token_pos[t]);
        float s = -INFINITY;
        if (vis_sees(v, p)) {
            const int *table = a.block_tables + (size_t)a.token_seq[t] * a.max_blocks_per_seq;
            const size_t row = (size_t)cache_row(table, a.block_size, p);
            const size_t k = row * kv_dim + (size_t)(h / group) * hd;
            const float ksc = kv_scale<KT>(a.k_scale, row, a.n_kv_head, h / group);
            const float *q = qkv + (size_t)t * a.qkv_stride + (size_t)h * hd;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++)
                dot += q[i] * kv_ld<KT>(k_cache, k + i, ksc);
            s = dot * scale;
        }
        S[e] = s;
    }
}

// Softmax of each row of len scores, in place; one block per row. Every row
// has at least its own position visible, so its max is finite.
__global__ void __launch_bounds__(SOFTMAX_THREADS) naive_softmax_kernel(float *S, int rows, int len)
{
    __shared__ float red_max[SOFTMAX_THREADS / 32], red_sum[SOFTMAX_THREADS / 32];
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {  // uniform over the block
        float *s = S + (size_t)row * len;
        float mx = -INFINITY;
        for (int j = threadIdx.x; j < len; j += blockDim.x)
            mx = fmaxf(mx, s[j]);
        mx = warp_max(mx);
        if (lane == 0)
            red_max[w] = mx;
        __syncthreads();
        mx = red_max[0];
        for (int i = 1; i < nw; i++)
            mx = fmaxf(mx, red_max[i]);
        float sum = 0.0f;
        for (int j = threadIdx.x; j < len; j += blockDim.x) {
            const float e = expf(s[j] - mx);  // -INFINITY -> 0
            s[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0)
            red_sum[w] = sum;
        __syncthreads();
        sum = 0.0f;
        for (int i = 0; i < nw; i++)  // the same order in every thread: one total
            sum += red_sum[i];
        for (int j = threadIdx.x; j < len; j += blockDim.x)  // each thread its own elements
            s[j] = s[j] / sum;
        __syncthreads();  // red_max / red_sum are reused by the next row
    }
}

// out[t][h][d] = sum over visible p of P[t][h][p] * v[p][d]; one thread per
// output element, positions walked in the CPU twin's order. Invisible
// positions are skipped, not multiplied by zero: their cache rows may be stale.
template <int KT>
__global__ void __launch_bounds__(NAIVE_THREADS)
    naive_wsum_kernel(float *__restrict__ out, const float *__restrict__ P, const void *__restrict__ v_cache,
                      gs_attn_args a)
{
    const int hd = a.head_dim, kv_dim = a.n_kv_head * hd, group = a.n_head / a.n_kv_head;
    const size_t total = (size_t)a.n_tokens * a.n_head * hd;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        const int d = (int)(e % hd);
        const size_t th = e / hd;
        const int h = (int)(th % a.n_head), t = (int)(th / a.n_head);
        const attn_vis v = vis_of(a.window, a.n_sink, a.token_pos[t]);
        const int count = vis_count(v);
        const int *table = a.block_tables + (size_t)a.token_seq[t] * a.max_blocks_per_seq;
        const float *prow = P + th * a.max_pos;
        const size_t vcol = (size_t)(h / group) * hd + d;
        float acc = 0.0f;
        for (int j = 0; j < count; j++) {
            const int p = vis_pos(v, j);
            const size_t row = (size_t)cache_row(table, a.block_size, p);
            acc += prow[p] * kv_ld<KT>(v_cache, row * kv_dim + vcol, kv_scale<KT>(a.v_scale, row, a.n_kv_head, h / group));
        }
        out[e] = acc;  // e = (t * n_head + h) * hd + d: out's layout
    }
}

static size_t naive_scratch_bytes(const gs_attn_args *a)
{
    return (size_t)a->n_tokens * a->n_head * a->max_pos * sizeof(float);
}

template <int KT>
static int naive_attention(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                           const gs_attn_args *a, void *scratch, size_t scratch_bytes, float scale, cudaStream_t stream)
{
    const size_t need = naive_scratch_bytes(a);
    if (scratch == NULL || scratch_bytes < need) {
        fprintf(stderr, "gptscope: cuda_attention (naive): scratch of %zu bytes, %zu needed\n", scratch_bytes, need);
        return (int)cudaErrorInvalidValue;
    }
    float *S = (float *)scratch;
    const size_t scores = (size_t)a->n_tokens * a->n_head * a->max_pos;
    naive_scores_kernel<KT><<<grid_for(scores, NAIVE_THREADS), NAIVE_THREADS, 0, stream>>>(S, qkv, k_cache, *a, scale);
    CUDA_LAUNCHED();
    const int rows = a->n_tokens * a->n_head;
    naive_softmax_kernel<<<rows < MAX_BLOCKS ? rows : MAX_BLOCKS, SOFTMAX_THREADS, 0, stream>>>(S, rows, a->max_pos);
    CUDA_LAUNCHED();
    const size_t outs = (size_t)a->n_tokens * a->n_head * a->head_dim;
    naive_wsum_kernel<KT><<<grid_for(outs, NAIVE_THREADS), NAIVE_THREADS, 0, stream>>>(out, S, v_cache, *a);
    CUDA_LAUNCHED();
    return 0;
}

// ---- GS_ATTN_FUSED: shared tile machinery ----

static __device__ __forceinline__ void cp_async16(float *smem, const float *gmem)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(__cvta_generic_to_global(gmem))
                 : "memory");
}

static __device__ __forceinline__ void cp_async4(float *smem, const float *gmem)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(__cvta_generic_to_global(gmem))
                 : "memory");
}

static __device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// The shared-memory layout of both fused kernels, in floats then ints:
//   Ks[T][ks]   K rows; columns [hd, hd4) zero (the float4 dot reads them), the
//               rest of the stride is bank padding and never read
//   Vs[T][hd4]  V rows; columns [hd, hd4) zero (the vector reads take them)
//   qs[nq][hd4] each query row's q, zero past hd (nq: query rows of the block)
//   ps[nq][32 * SPL]  each query row's probabilities for the weighted sum
//   pos_s[T]    position of each tile row, -1 where not loaded
//   row_s[T]    its cache row, -1 where not loaded
//   rinfo[4 * FL_PF_ROWS]  prefill only: (seq, sink_end, lo, pos) of each query row
// After the decode kernel's last tile, Ks holds the per-warp merge records.
struct fl_smem {
    float *Ks, *Vs, *qs, *ps;
    int *pos_s, *row_s, *rinfo;
};

static __host__ __device__ __forceinline__ size_t fl_smem_bytes(int T, int ks, int hd4, int nq, int spl)
{
    return ((size_t)T * ks + (size_t)T * hd4 + (size_t)nq * hd4 + (size_t)nq * 32 * spl) * sizeof(float) +
           (2 * (size_t)T + 4 * FL_PF_ROWS) * sizeof(int);
}

static __device__ __forceinline__ fl_smem fl_carve(float *base, int T, int ks, int hd4, int nq, int spl)
{
    fl_smem s;
    s.Ks = base;
    s.Vs = s.Ks + (size_t)T * ks;
    s.qs = s.Vs + (size_t)T * hd4;
    s.ps = s.qs + (size_t)nq * hd4;
    s.pos_s = reinterpret_cast<int *>(s.ps + (size_t)nq * 32 * spl);
    s.row_s = s.pos_s + T;
    s.rinfo = s.row_s + T;
    return s;
}

// Zeroes the K and V columns [hd, hd4) of every tile row once: loads never write them.
static __device__ __forceinline__ void fl_zero_pads(const fl_smem &s, int T, int ks, int hd, int hd4)
{
    const int pad = hd4 - hd;
    if (pad == 0)
        return;
    for (int e = threadIdx.x; e < T * pad; e += blockDim.x) {
        s.Ks[(e / pad) * ks + hd + e % pad] = 0.0f;
        s.Vs[(e / pad) * hd4 + hd + e % pad] = 0.0f;
    }
}

// The warp's query row into q, zero-padded to hd4.
static __device__ __forceinline__ void fl_load_q(float *q, const float *src, int hd, int hd4, int lane)
{
    for (int d = lane; d < hd4; d += 32)
        q[d] = d < hd ? src[d] : 0.0f;
}

// K and V rows of the tile (row_s filled, a barrier after it) into Ks and Vs;
// rows with row_s < 0 are zero-filled. The caller puts a barrier after this.
// fp32 rows come in with cp.async; other element types with plain loads
// (VEC: 4 elements per load), decoded in registers and stored as fp32, so
// everything after the load is the fp32 code (int8: times the row's scale).
template <bool VEC, int KT>
static __device__ __forceinline__ void fl_load_tile(const fl_smem &s, const void *__restrict__ k_cache,
                                                    const void *__restrict__ v_cache, const gs_attn_args &a,
                                                    size_t kv_dim, size_t koff, int T, int hd, int ks, int hd4)
{
    // Element f = r * per_row + c of the tile, f = threadIdx.x + k * blockDim.x:
    // (r, c) advance by (dr, dc) with a carry instead of a division per element.
    const int per_row = VEC ? hd / 4 : hd, width = VEC ? 4 : 1;
    const int dr = blockDim.x / per_row, dc = blockDim.x % per_row;
    int r = threadIdx.x / per_row, c = threadIdx.x % per_row;
    for (; r < T; r += dr, c += dc) {
        if (c >= per_row) {
            c -= per_row;
            r++;
            if (r >= T)
                break;
        }
        const int row = s.row_s[r], col = c * width;
        float *kd = s.Ks + r * ks + col, *vd = s.Vs + r * hd4 + col;
        if (row >= 0) {
            const size_t off = (size_t)row * kv_dim + koff + col;
            if constexpr (KT == GS_KV_F32) {
                const float *kf = static_cast<const float *>(k_cache), *vf = static_cast<const float *>(v_cache);
                if constexpr (VEC) {
                    cp_async16(kd, kf + off);
                    cp_async16(vd, vf + off);
                } else {
                    cp_async4(kd, kf + off);
                    cp_async4(vd, vf + off);
                }
            } else {
                const int kvh = (int)(koff / hd);
                const float ksc = kv_scale<KT>(a.k_scale, row, a.n_kv_head, kvh);
                const float vsc = kv_scale<KT>(a.v_scale, row, a.n_kv_head, kvh);
                if constexpr (VEC) {
                    *reinterpret_cast<float4 *>(kd) = kv_ld4<KT>(k_cache, off, ksc);
                    *reinterpret_cast<float4 *>(vd) = kv_ld4<KT>(v_cache, off, vsc);
                } else {
                    *kd = kv_ld<KT>(k_cache, off, ksc);
                    *vd = kv_ld<KT>(v_cache, off, vsc);
                }
            }
        } else if constexpr (VEC) {
            *reinterpret_cast<float4 *>(kd) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            *reinterpret_cast<float4 *>(vd) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        } else {
            *kd = 0.0f;
            *vd = 0.0f;
        }
    }
    if constexpr (KT == GS_KV_F32)
        cp_async_wait_all();
}

// The output dims a lane owns, DPL of them: NV groups of VW consecutive dims,
// group v at v * 32 * VW + lane * VW, so the warp reads a V row as one run of
// float2 / float4 loads. Dims from hd to hd4 exist in shared memory (zero);
// dims past hd4 are skipped; only dims < hd are ever stored.
template <int DPL>
struct fl_dims {
    static constexpr int VW = DPL < 4 ? DPL : 4;
    static constexpr int NV = DPL / VW;
    static __device__ __forceinline__ int d0(int v, int lane) { return v * 32 * VW + lane * VW; }
};

template <int VW>
static __device__ __forceinline__ void fl_read(float (&x)[VW], const float *p)
{
    if constexpr (VW == 4) {
        const float4 t = *reinterpret_cast<const float4 *>(p);
        x[0] = t.x, x[1] = t.y, x[2] = t.z, x[3] = t.w;
    } else if constexpr (VW == 2) {
        const float2 t = *reinterpret_cast<const float2 *>(p);
        x[0] = t.x, x[1] = t.y;
    } else {
        x[0] = *p;
    }
}

// One warp, R query rows (q: R rows of hd4 floats), the 32 * SPL tile rows
// from r0: online-softmax update of each row's (m, l, acc). Every K and V
// value read from shared memory feeds all R rows. Called by all 32 lanes
// together (full-mask shuffles); every branch around a shuffle is uniform
// over the warp. pw is the warp's probability buffer (R x 32 * SPL floats).
// A row that sees nothing of the tile is left as it was (alpha 1, p 0); one
// that has seen nothing yet keeps m = -INFINITY, l = 0, acc = 0.
template <int DPL, int SPL, int R>
static __device__ __forceinline__ void fl_attend_tile(const fl_smem &s, const float *q, float *pw, int r0, int ks,
                                                      int hd4, const attn_vis (&v)[R], float scale, int lane,
                                                      float (&m)[R], float (&l)[R], float (&acc)[R][DPL])
{
    using D = fl_dims<DPL>;
    float sc[R][SPL];
#pragma unroll
    for (int rr = 0; rr < R; rr++)
#pragma unroll
        for (int u = 0; u < SPL; u++)
            sc[rr][u] = 0.0f;
    const float *kr = s.Ks + (r0 + lane) * ks;
    for (int i = 0; i < hd4 / 4; i++) {
        float4 kv[SPL];
#pragma unroll
        for (int u = 0; u < SPL; u++)  // stride ks has an odd float4 count: 8 lanes' 16-byte reads, 8 distinct bank quads
            kv[u] = *reinterpret_cast<const float4 *>(kr + 32 * u * ks + 4 * i);
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const float4 qv = *reinterpret_cast<const float4 *>(q + rr * hd4 + 4 * i);  // a broadcast
#pragma unroll
            for (int u = 0; u < SPL; u++) {
                sc[rr][u] = fmaf(qv.x, kv[u].x, sc[rr][u]);
                sc[rr][u] = fmaf(qv.y, kv[u].y, sc[rr][u]);
                sc[rr][u] = fmaf(qv.z, kv[u].z, sc[rr][u]);
                sc[rr][u] = fmaf(qv.w, kv[u].w, sc[rr][u]);
            }
        }
    }
    float tmax[R];
    bool any = false;
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        tmax[rr] = -INFINITY;
#pragma unroll
        for (int u = 0; u < SPL; u++) {
            const int p = s.pos_s[r0 + lane + 32 * u];
            sc[rr][u] = (p >= 0 && vis_sees(v[rr], p)) ? sc[rr][u] * scale : -INFINITY;
            tmax[rr] = fmaxf(tmax[rr], sc[rr][u]);
        }
        tmax[rr] = warp_max(tmax[rr]);
        any = any || tmax[rr] != -INFINITY;
    }
    if (!any)  // nothing of these positions is visible to any of the rows
        return;
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        const float m_new = fmaxf(m[rr], tmax[rr]);
        const float mu = m_new == -INFINITY ? 0.0f : m_new;  // nothing seen yet: exponents of -inf, all 0
        const float alpha = expf(m[rr] - mu);  // 0 on the first visible tile (m = -INFINITY)
        float psum = 0.0f;
#pragma unroll
        for (int u = 0; u < SPL; u++) {
            sc[rr][u] = expf(sc[rr][u] - mu);  // masked: exp(-inf) = 0
            psum += sc[rr][u];
            pw[rr * 32 * SPL + lane + 32 * u] = sc[rr][u];
        }
        l[rr] = l[rr] * alpha + warp_sum(psum);
        m[rr] = m_new;
#pragma unroll
        for (int k = 0; k < DPL; k++)
            acc[rr][k] *= alpha;
    }
    __syncwarp();  // pw written by every lane before any lane reads it
    // The weighted sum: four probabilities of each row per broadcast read,
    // then each lane's dims of the four V rows.
#pragma unroll 2
    for (int r = 0; r < 32 * SPL; r += 4) {
        float pr[R][4];
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const float4 p4 = *reinterpret_cast<const float4 *>(pw + rr * 32 * SPL + r);
            pr[rr][0] = p4.x, pr[rr][1] = p4.y, pr[rr][2] = p4.z, pr[rr][3] = p4.w;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float *vr = s.Vs + (r0 + r + i) * hd4;
#pragma unroll
            for (int g = 0; g < D::NV; g++) {
                const int d0 = D::d0(g, lane);
                if (d0 < hd4) {
                    float x[D::VW];
                    fl_read<D::VW>(x, vr + d0);
#pragma unroll
                    for (int rr = 0; rr < R; rr++)
#pragma unroll
                        for (int e = 0; e < D::VW; e++)
                            acc[rr][g * D::VW + e] = fmaf(pr[rr][i], x[e], acc[rr][g * D::VW + e]);
                }
            }
        }
    }
    __syncwarp();  // every lane has read pw before the next tile rewrites it
}

// Stores this lane's dims (< hd) of acc / div (div 1 for the partials: x / 1 is exact).
template <int DPL>
static __device__ __forceinline__ void fl_store(float *o, const float (&acc)[DPL], float div, int hd, int lane)
{
    using D = fl_dims<DPL>;
#pragma unroll
    for (int g = 0; g < D::NV; g++)
#pragma unroll
        for (int e = 0; e < D::VW; e++) {
            const int d = D::d0(g, lane) + e;
            if (d < hd)
                o[d] = acc[g * D::VW + e] / div;
        }
}

// ---- GS_ATTN_FUSED, few tokens: split-K flash-decoding ----
//
// grid.x = n_tokens * (n_head / hpb) * n_chunks (chunk index fastest), block =
// hpb * WPH warps. hpb, a power of two, divides the GQA group, so all the
// block's heads read one KV head: each K/V tile in shared memory serves hpb
// query heads. A head has WPH warps; the tile is T = 32 * SPL * WPH positions
// and warp `sub` of a head takes its 32 * SPL rows from 32 * SPL * sub,
// keeping its own (m, l, acc); at the end the head's warps merge through
// shared memory. WPH = 2 when hpb < 4 (MHA: a block of one warp had too
// little to hide its latencies with), else 1; FL_SHORT_WPH for the short
// plan (fused_plan: a whole short history in one tile, no split).
// Chunk c of a token covers its visible indices [c * chunk, (c + 1) * chunk);
// blocks past the token's count leave at once. The first row of every chunk
// is visible and falls to sub 0, so sub 0's m is finite; another sub's may
// stay -INFINITY (l = 0, acc = 0), which merges as weight 0.
template <int DPL, int SPL, int WPH, bool VEC, int KT>
__global__ void __launch_bounds__(256, FL_MIN_BLOCKS)
    flash_decode_kernel(float *__restrict__ out, float *__restrict__ part_acc, float *__restrict__ part_ml,
                        const float *__restrict__ qkv, const void *__restrict__ k_cache,
                        const void *__restrict__ v_cache, gs_attn_args a, int hpb, int chunk, int n_chunks, int hd4,
                        int ks, float scale, int hybrid)
{
    gs_pdl_trigger();  // the kernel after this may launch now (pdl.cuh)
    gs_pdl_wait();     // and this one may have launched before kv_store ended
    constexpr int T = 32 * SPL * WPH;
    extern __shared__ float4 fl_dyn_smem[];
    const int hd = a.head_dim, group = a.n_head / a.n_kv_head, n_hb = a.n_head / hpb;
    const int c = blockIdx.x % n_chunks, rest = blockIdx.x / n_chunks;
    const int hb = rest % n_hb, t = rest / n_hb;
    if (hybrid) {  // the same test as flash_prefill_kernel's: rows it takes are not ours
        const int r = t / FL_PF_ROWS * FL_PF_ROWS + (int)threadIdx.x;  // blockDim.x >= 32 >= FL_PF_ROWS
        const bool same = threadIdx.x < FL_PF_ROWS && r < a.n_tokens && a.token_seq[r] == a.token_seq[t];
        if (__syncthreads_count(same) >= FL_PF_SHARE)  // uniform over the block
            return;
    }
    const attn_vis v = vis_of(a.window, a.n_sink, a.token_pos[t]);
    const int count = vis_count(v);
    const int j0 = c * chunk;
    if (j0 >= count)  // the whole block: before any barrier
        return;
    const int j1 = count - j0 < chunk ? count : j0 + chunk;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    const int sub = w % WPH, h = hb * hpb + w / WPH, g = hb * hpb / group;
    const fl_smem s = fl_carve(reinterpret_cast<float *>(fl_dyn_smem), T, ks, hd4, nw, SPL);
    float *q = s.qs + w * hd4;
    fl_load_q(q, qkv + (size_t)t * a.qkv_stride + (size_t)h * hd, hd, hd4, lane);
    fl_zero_pads(s, T, ks, hd, hd4);
    const int *table = a.block_tables + (size_t)a.token_seq[t] * a.max_blocks_per_seq;
    const size_t kv_dim = (size_t)a.n_kv_head * hd, koff = (size_t)g * hd;

    const attn_vis vv[1] = {v};
    float m[1] = {-INFINITY}, l[1] = {0.0f}, acc[1][DPL];
#pragma unroll
    for (int k = 0; k < DPL; k++)
        acc[0][k] = 0.0f;
    for (int jt = j0; jt < j1; jt += T) {
        for (int r = threadIdx.x; r < T; r += blockDim.x) {
            const int j = jt + r;
            int p = -1, row = -1;
            if (j < j1) {
                p = vis_pos(v, j);
                row = cache_row(table, a.block_size, p);
            }
            s.pos_s[r] = p;
            s.row_s[r] = row;
        }
        __syncthreads();  // row_s ready (and, the first time, q and the pads)
        fl_load_tile<VEC, KT>(s, k_cache, v_cache, a, kv_dim, koff, T, hd, ks, hd4);
        __syncthreads();  // the tile is in
        if (jt + 32 * SPL * sub < j1)  // warp-uniform: this warp's rows hold a visible position
            fl_attend_tile<DPL, SPL, 1>(s, q, s.ps + w * 32 * SPL, 32 * SPL * sub, ks, hd4, vv, scale, lane, m, l,
                                        acc);
        __syncthreads();  // every warp is done with the tile before the next overwrites it
    }

    if constexpr (WPH > 1) {
        // Merge a head's warps: each sub > 0 leaves (acc, m, l) in Ks (free now).
        using D = fl_dims<DPL>;
        float *rec = s.Ks + (size_t)w * (hd4 + 2);
        if (sub > 0) {
#pragma unroll
            for (int gi = 0; gi < D::NV; gi++)
#pragma unroll
                for (int e = 0; e < D::VW; e++) {
                    const int d = D::d0(gi, lane) + e;
                    if (d < hd4)
                        rec[d] = acc[0][gi * D::VW + e];
                }
            if (lane == 0) {
                rec[hd4] = m[0];
                rec[hd4 + 1] = l[0];
            }
        }
        __syncthreads();
        if (sub > 0)
            return;
        float M = m[0];
#pragma unroll
        for (int o = 1; o < WPH; o++)
            M = fmaxf(M, rec[o * (hd4 + 2) + hd4]);
        const float f0 = expf(m[0] - M);
        l[0] *= f0;
#pragma unroll
        for (int k = 0; k < DPL; k++)
            acc[0][k] *= f0;
#pragma unroll
        for (int o = 1; o < WPH; o++) {
            const float *ro = rec + o * (hd4 + 2);
            const float fo = expf(ro[hd4] - M);  // -INFINITY (nothing seen) -> 0
            l[0] = fmaf(ro[hd4 + 1], fo, l[0]);
#pragma unroll
            for (int gi = 0; gi < D::NV; gi++)
#pragma unroll
                for (int e = 0; e < D::VW; e++) {
                    const int d = D::d0(gi, lane) + e;
                    if (d < hd4)
                        acc[0][gi * D::VW + e] = fmaf(ro[d], fo, acc[0][gi * D::VW + e]);
                }
        }
        m[0] = M;
    }

    const size_t pair = (size_t)t * a.n_head + h;
    if (count <= chunk) {  // one chunk holds the whole history: no partial, no reduce
        fl_store<DPL>(out + pair * hd, acc[0], l[0], hd, lane);
        return;
    }
    const size_t idx = pair * n_chunks + c;
    fl_store<DPL>(part_acc + idx * hd, acc[0], 1.0f, hd, lane);
    if (lane == 0) {
        part_ml[2 * idx] = m[0];
        part_ml[2 * idx + 1] = l[0];
    }
}

// One warp per (token, head); pairs whose history fit one chunk were written
// by flash_decode_kernel already. Lane i holds the weight e^(m_c - M) of
// chunks c = i mod 32 and hands it round by shuffle; the partials of
// FL_REDUCE_BATCH chunks are loaded before any is used, so that many loads are
// in flight instead of one chunk's latency after another.
#define FL_REDUCE_BATCH 4
template <int DPL>
__global__ void __launch_bounds__(FL_REDUCE_WARPS * 32)
    flash_reduce_kernel(float *__restrict__ out, const float *__restrict__ part_acc, const float *__restrict__ part_ml,
                        gs_attn_args a, int chunk, int n_chunks)
{
    gs_pdl_trigger();  // the decode GEMV after this may launch now (pdl.cuh)
    gs_pdl_wait();     // and this one may have launched before flash_decode_kernel ended
    const int lane = threadIdx.x % 32;
    const size_t pair = (size_t)blockIdx.x * FL_REDUCE_WARPS + threadIdx.x / 32;
    if (pair >= (size_t)a.n_tokens * a.n_head)  // the whole warp
        return;
    const int hd = a.head_dim, t = (int)(pair / a.n_head);
    const int count = vis_count(vis_of(a.window, a.n_sink, a.token_pos[t]));
    const int nc = (count + chunk - 1) / chunk;
    if (nc <= 1)
        return;
    const size_t base = pair * n_chunks;
    const float *ml = part_ml + 2 * base;
    float M = -INFINITY;
    for (int c = lane; c < nc; c += 32)
        M = fmaxf(M, ml[2 * c]);
    M = warp_max(M);
    float L = 0.0f;
    for (int c = lane; c < nc; c += 32)
        L += ml[2 * c + 1] * expf(ml[2 * c] - M);
    L = warp_sum(L);
    float acc[DPL];
#pragma unroll
    for (int k = 0; k < DPL; k++)
        acc[k] = 0.0f;
    for (int c0 = 0; c0 < nc; c0 += 32) {
        const float wl = c0 + lane < nc ? expf(ml[2 * (c0 + lane)] - M) : 0.0f;
        const int nb = nc - c0 < 32 ? nc - c0 : 32;
        for (int j0 = 0; j0 < nb; j0 += FL_REDUCE_BATCH) {  // j0 + b <= 31 below: nb <= 32, j0 % 4 == 0
            float x[FL_REDUCE_BATCH][DPL];
#pragma unroll
            for (int b = 0; b < FL_REDUCE_BATCH; b++) {
                const float *pa = part_acc + (base + c0 + j0 + b) * hd;
#pragma unroll
                for (int k = 0; k < DPL; k++) {
                    const int d = lane + 32 * k;
                    x[b][k] = j0 + b < nb && d < hd ? pa[d] : 0.0f;
                }
            }
#pragma unroll
            for (int b = 0; b < FL_REDUCE_BATCH; b++) {
                const float wc = __shfl_sync(FULL_MASK, wl, j0 + b);  // 0 past nb: that lane's wl is 0
#pragma unroll
                for (int k = 0; k < DPL; k++)
                    acc[k] = fmaf(wc, x[b][k], acc[k]);
            }
        }
    }
    float *o = out + pair * hd;
#pragma unroll
    for (int k = 0; k < DPL; k++) {
        const int d = lane + 32 * k;
        if (d < hd)
            o[d] = acc[k] / L;
    }
}

// ---- GS_ATTN_FUSED, many tokens: tiled flash attention ----
//
// grid = (ceil(n_tokens / FL_PF_ROWS), n_head), block = FL_ROWS warps, warp w
// on the FL_RPW query tokens from t0 + w * FL_RPW, tiles of T = 64 positions
// (32 for head_dim > 128). Tiles of rows are taken in reverse (the last tokens
// of a causal prefill have the most work) so the long blocks start first. A
// pass over the rows of one sequence walks the union of their visible sets:
// the sinks [0, SE) and the window span [max(LO, SE), PM] (SE, LO, PM: largest
// sink_end, smallest lo, largest pos of the pass's rows); a position goes into
// the tile only when some row of the pass sees it, so a gap between windows of
// far-apart rows reads no cache at all. Rows outside the pass (and rows past
// the last token) see nothing: vis {0, 1, -1}.
template <int DPL, int SPL, bool VEC, int KT>
__global__ void __launch_bounds__(FL_ROWS * 32, FL_MIN_BLOCKS)
    flash_prefill_kernel(float *__restrict__ out, const float *__restrict__ qkv, const void *__restrict__ k_cache,
                         const void *__restrict__ v_cache, gs_attn_args a, int hd4, int ks, float scale,
                         int hybrid)
{
    constexpr int T = 32 * SPL, R = FL_RPW;
    extern __shared__ float4 fl_dyn_smem[];
    const int hd = a.head_dim, group = a.n_head / a.n_kv_head;
    const int t0 = (gridDim.x - 1 - blockIdx.x) * FL_PF_ROWS;
    const int h = blockIdx.y;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const fl_smem s = fl_carve(reinterpret_cast<float *>(fl_dyn_smem), T, ks, hd4, FL_PF_ROWS, SPL);

    if (threadIdx.x < FL_PF_ROWS) {
        const int tr = t0 + threadIdx.x;
        int *ri = s.rinfo + 4 * threadIdx.x;
        if (tr < a.n_tokens) {
            const attn_vis vr = vis_of(a.window, a.n_sink, a.token_pos[tr]);
            ri[0] = a.token_seq[tr];
            ri[1] = vr.sink_end;
            ri[2] = vr.lo;
            ri[3] = vr.pos;
        } else {
            ri[0] = -1;  // no token: done from the start
            ri[1] = 0;
            ri[2] = 1;
            ri[3] = -1;
        }
    }
    float *q = s.qs + (size_t)w * R * hd4;  // the warp's R rows
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        const int t = t0 + w * R + rr;
        if (t < a.n_tokens)
            fl_load_q(q + rr * hd4, qkv + (size_t)t * a.qkv_stride + (size_t)h * hd, hd, hd4, lane);
        else
            for (int d = lane; d < hd4; d += 32)
                q[rr * hd4 + d] = 0.0f;
    }
    fl_zero_pads(s, T, ks, hd, hd4);
    __syncthreads();  // rinfo, q and the pads are ready; rinfo is read-only from here

    const size_t kv_dim = (size_t)a.n_kv_head * hd, koff = (size_t)(h / group) * hd;
    const unsigned all = FL_PF_ROWS == 32 ? ~0u : (1u << FL_PF_ROWS) - 1;
    unsigned done = 0;  // rows finished (or not ours); every thread computes the same value
    for (int r = 0; r < FL_PF_ROWS; r++) {
        const int seq = s.rinfo[4 * r];
        int share = 0;
        for (int r2 = 0; r2 < FL_PF_ROWS; r2++)
            share += s.rinfo[4 * r2] == seq;
        // No token, or (hybrid) too few rows of its sequence here: flash_decode_kernel's.
        if (seq < 0 || (hybrid && share < FL_PF_SHARE))
            done |= 1u << r;
    }
    const unsigned ours = ~done & all;

    float m[R], l[R], acc[R][DPL];
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int k = 0; k < DPL; k++)
            acc[rr][k] = 0.0f;
    }
    while (done != all) {
        // One pass: the first unfinished row's sequence, and every unfinished row of it.
        const int seq = s.rinfo[4 * (__ffs(~done) - 1)];
        unsigned act = 0;
        int SE = 0, LO = INT_MAX, PM = -1;
        for (int r = 0; r < FL_PF_ROWS; r++) {
            if (!((done >> r) & 1u) && s.rinfo[4 * r] == seq) {
                act |= 1u << r;
                SE = max(SE, s.rinfo[4 * r + 1]);
                LO = min(LO, s.rinfo[4 * r + 2]);
                PM = max(PM, s.rinfo[4 * r + 3]);
            }
        }
        const int *table = a.block_tables + (size_t)seq * a.max_blocks_per_seq;
        attn_vis mine[R];  // this warp's rows in this pass
        bool in_pass = false;
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const int r = w * R + rr;
            if ((act >> r) & 1u) {
                mine[rr] = {s.rinfo[4 * r + 1], s.rinfo[4 * r + 2], s.rinfo[4 * r + 3]};
                in_pass = true;
            } else {
                mine[rr] = {0, 1, -1};  // sees nothing
            }
        }
        for (int seg = 0; seg < 2; seg++) {
            const int b = seg == 0 ? 0 : max(LO, SE), e = seg == 0 ? SE : PM + 1;
            for (int p0 = b; p0 < e; p0 += T) {
                int any = 0;
                for (int r = threadIdx.x; r < T; r += blockDim.x) {
                    const int p = p0 + r;
                    int row = -1;
                    if (p < e) {
                        bool need = false;
                        for (int rr = 0; rr < FL_PF_ROWS; rr++)
                            if ((act >> rr) & 1u) {
                                const attn_vis vr = {s.rinfo[4 * rr + 1], s.rinfo[4 * rr + 2], s.rinfo[4 * rr + 3]};
                                need = need || vis_sees(vr, p);
                            }
                        if (need)
                            row = cache_row(table, a.block_size, p);
                    }
                    s.pos_s[r] = row >= 0 ? p : -1;
                    s.row_s[r] = row;
                    any |= row >= 0;
                }
                if (!__syncthreads_or(any))  // no row sees any of it (a gap between windows)
                    continue;
                fl_load_tile<VEC, KT>(s, k_cache, v_cache, a, kv_dim, koff, T, hd, ks, hd4);
                __syncthreads();  // the tile is in
                // Warp-uniform shortcut past tiles wholly after the warp's rows or in their gaps.
                bool hit = false;
#pragma unroll
                for (int rr = 0; rr < R; rr++)
                    hit = hit || (p0 <= mine[rr].pos && (p0 < mine[rr].sink_end || p0 + T - 1 >= mine[rr].lo));
                if (in_pass && hit)
                    fl_attend_tile<DPL, SPL, R>(s, q, s.ps + (size_t)w * R * T, 0, ks, hd4, mine, scale, lane, m, l,
                                                acc);
                __syncthreads();  // every warp is done with the tile before the next overwrites it
            }
        }
        done |= act;
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        const int t = t0 + w * R + rr;
        if ((ours >> (w * R + rr)) & 1u)
            fl_store<DPL>(out + ((size_t)t * a.n_head + h) * hd, acc[rr], l[rr], hd, lane);
    }
}

// ---- fused: planning and launch ----

typedef struct fl_plan {
    int hybrid;    // 0: flash_decode_kernel (+ reduce) for every row; 1: flash_decode_kernel
                   // (one chunk) for rows in scattered tiles, flash_prefill_kernel for the rest
    int hpb;       // decode: query heads per block
    int wph;       // decode: warps per head
    int chunk;     // decode: visible positions per chunk
    int n_chunks;  // decode: chunks of the longest history
} fl_plan;

// Dims per lane (the fused kernels' instantiation) for a head_dim <= FL_MAX_HEAD_DIM.
static int fl_dpl(int hd) { return hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8; }

// A pure function of the call's shape, so cuda_attention_scratch_bytes and
// cuda_attention agree on it.
static fl_plan fused_plan(const gs_attn_args *a)
{
    fl_plan p = {0, 1, 1, 0, 0};
    const int group = a->n_head / a->n_kv_head;
    p.hpb = 8;  // at most 8 warps (256 threads) a block
    while (group % p.hpb)
        p.hpb /= 2;
    p.wph = p.hpb < 4 && fl_dpl(a->head_dim) < 8 ? 2 : 1;
    // Longest visible count of any token: pos + 1 <= max_pos, and with a
    // window at most window + n_sink.
    long most = a->max_pos;
    if (a->window > 0) {
        long wmax = (long)a->window + (a->n_sink > 0 ? a->n_sink : 0);
        if (wmax < most)
            most = wmax;
    }
    // Enough chunks that the grid has ~FL_TARGET_BLOCKS blocks.
    const long per_chunk = (long)a->n_tokens * (a->n_head / p.hpb);
    long chunk = (most * per_chunk + FL_TARGET_BLOCKS - 1) / FL_TARGET_BLOCKS;
    chunk = (chunk + FL_CHUNK_STEP - 1) / FL_CHUNK_STEP * FL_CHUNK_STEP;
    if (chunk < FL_CHUNK_STEP)
        chunk = FL_CHUNK_STEP;
    if (chunk > INT_MAX / 2)
        chunk = INT_MAX / 2;
    p.chunk = (int)chunk;
    p.n_chunks = (int)((most + chunk - 1) / chunk);
    if (p.n_chunks > 1 && p.hpb == 1 && fl_dpl(a->head_dim) <= 2 && most <= FL_SHORT_MAX &&
        per_chunk <= FL_SHORT_BLOCKS) {
        // Short histories of few heads (batch-1 decode of a GPT-2 at a few
        // hundred positions): the split spread ~144 positions over 3 blocks a
        // head, each one 64-position tile behind a chain of dependent loads,
        // then a second kernel merged them (5.5 + 2.4 us a layer on the H100,
        // gpt2-355m). One block a head whose 8 warps take 32 positions each
        // loads the whole history in one round and merges in shared memory
        // (head_dim <= 64: the 256-row tile is 140 KB of shared memory there).
        p.wph = FL_SHORT_WPH;
        p.chunk = (int)most;
        p.n_chunks = 1;
    }
    if (a->n_tokens > FL_DECODE_MAX_TOKENS) {
        // Many tokens: most often a prefill, whose tiles of rows share their
        // cache reads; the rows of tiles that are too scattered for that (a
        // large decode batch) are plenty to fill the GPU unsplit, and no
        // split means no scratch to size for a call of thousands of tokens.
        p.hybrid = 1;
        p.chunk = most > INT_MAX / 2 ? INT_MAX / 2 : (int)most;
        p.n_chunks = 1;
    }
    return p;
}

// Which of the hybrid's kernels have rows: the device rule (a row whose
// sequence has fewer than FL_PF_SHARE rows in its FL_PF_ROWS tile is
// flash_decode_kernel's; another with a sequence >= 0 is the prefill
// kernel's) on the host's copy of token_seq. Without one, both launch and
// each finds its rows on the device.
struct fl_rows {
    bool decode, prefill;
};

static fl_rows hybrid_rows(const gs_attn_args *a)
{
    const int *seq = a->token_seq_host;
    fl_rows r = {seq == NULL, seq == NULL};
    for (int t0 = 0; seq && t0 < a->n_tokens && !(r.decode && r.prefill); t0 += FL_PF_ROWS) {
        const int end = a->n_tokens - t0 < FL_PF_ROWS ? a->n_tokens : t0 + FL_PF_ROWS;
        int uniform = 1;  // the common tile, one sequence's: every row's share is the tile's size
        for (int t = t0 + 1; t < end && uniform; t++)
            uniform = seq[t] == seq[t0];
        for (int t = t0; t < end; t++) {
            int share = uniform ? end - t0 : 0;
            for (int r2 = t0; r2 < end && !uniform; r2++)
                share += seq[r2] == seq[t];
            if (share < FL_PF_SHARE)
                r.decode = true;
            else if (seq[t] >= 0)
                r.prefill = true;
        }
    }
    return r;
}

// Raises the kernel's dynamic shared-memory limit past the default 48 KB when needed.
template <typename K>
static int fl_smem_limit(K kernel, size_t bytes)
{
    if (bytes > 48 * 1024)
        CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return 0;
}

// ---- GS_ATTN_FUSED with half_ok, many tokens: tensor-core flash attention ----
//
// The tiled prefill of flash_prefill_kernel with its two products on tensor
// cores (mma.sync m16n8k16, fp16 operands, fp32 accumulators), FlashAttention-2
// style. grid = (n_head, ceil(n_tokens / TC_ROWS) x n_chunks), tiles of rows
// taken from the last (the longest causal histories start first); block =
// TC_WARPS warps, warp w owning the 16 query rows t0 + 16w .. t0 + 16w + 15,
// which are exactly one FL_PF_ROWS tile of the hybrid rule, so a row is this
// kernel's under the same test flash_decode_kernel applies (its sequence has
// >= FL_PF_SHARE rows in those 16). Passes over sequences, the sink and window
// segments and the visibility rule are flash_prefill_kernel's.
//
// Split over keys (tc_split_of): unsplit, the block of the last 64 rows of a
// causal prefill walks every key tile while the first walks one, and GPT-2's
// 12 heads x 16 row tiles are 192 blocks of 4 warps on 132 SMs: the kernel
// took the longest block's 16 tiles, ~58 us a layer on the H100, with ~6
// warps an SM to hide the loads' latency. So a row tile's key tiles are cut
// into chunks of chunk_tiles (at least TC_CHUNK_TILES), one block each: block
// (h, tile, c) walks tiles [c * chunk_tiles, (c + 1) * chunk_tiles) of each
// of its passes. Every block of a row tile computes the same `needed` (the
// chunks its longest pass fills); blocks past it leave at once. A row tile
// that needs one chunk writes its output as before; one that needs more
// writes each chunk's unnormalized partial (m in log2 units, l, O) to scratch,
// and tc_reduce_kernel merges them (one block per row tile and head, after
// the whole grid: M = max m_c, O = sum O_c 2^(m_c - M) / sum l_c 2^(m_c - M)).
// Chunk 0 records each row tile's `needed` and rows for it.
//
// Per key tile of TC_T = 64 positions:
//   load   the positions' K and V rows of the head's KV head come in through
//          the block table with 16-byte cp.async: fp16 caches straight into the
//          half tile (two buffers: tile i + 1 arrives while tile i is used),
//          the other types into a raw staging area that one pass then converts
//          to half (fp32 rounded to nearest, int8 times its row's scale, fp8
//          e4m3 exactly by the hardware's cvt). Rows no active query row can
//          see are zero-filled (cp.async's src-size 0), never read: the cache
//          may hold anything there (NaN in the test).
//   S      = Q K^T: Q sits in registers as A fragments for the whole kernel,
//          already multiplied by scale * log2(e) (so the softmax is exp2);
//          K comes as B fragments by ldmatrix (rows padded by 8 halves, so the
//          8 row addresses of one ldmatrix fall in distinct banks).
//   mask   -INFINITY where the position is past the tile's valid rows or not
//          visible to the row (skipped when the whole tile is visible to it).
//   online softmax in fp32 registers: each thread holds 2 rows x 16 columns of
//          the 16 x 64 scores of its warp; row max by two shuffles in the quad,
//          the row sum kept per thread and added across the quad at the end.
//   O     += P V: the score accumulators turn into A fragments in place (the
//          C layout of two n8 tiles is the A layout of one k16 slice), P
//          rounded to half; V by ldmatrix.trans.
// At the end O / l is stored for the block's own rows. Nothing of S or P ever
// leaves the registers.
#define TC_ROWS 64   // query rows per block
#define TC_WARPS 4   // 16 rows (one m16 fragment) each, per key group
#define TC_GROUPS 2  // key groups: group g takes every TC_GROUPS-th key tile from g
#define TC_GTHREADS (TC_WARPS * 32)          // threads of one key group
#define TC_THREADS (TC_GROUPS * TC_GTHREADS)  // threads of a block
// tc_prefill_kernel's MB, blocks an SM must fit: 1 lets ptxas take the
// registers it wants (173 at head_dim 64); 2 caps them at 128 (~30 bytes
// spilled, outside the tile loop) for grids of more than TC_MB1_GRID SMs'
// worth of blocks. H100, one layer's 1024-token prefill: GPT-2's 192 blocks
// 48 us with MB 1 against 55 with 2; Llama-1B's 512 blocks 99 us against 72.
#define TC_MB1_GRID 1.5
#define TC_T 64      // key positions per tile
#define TC_PAD 8     // halves of padding per shared row (16 bytes)
#define TC_LOG2E 1.4426950408889634f
#define TC_CHUNK_TILES 16               // split: key tiles a chunk takes at least (1024 positions)
#define TC_MAX_CHUNKS 8                 // split: chunks of one row tile at most
#define TC_SPLIT_BYTES ((size_t)64 << 20)  // split: scratch for the partials at most

template <int HD, int KT>
struct tc_cfg {
    static constexpr int ES = KT == GS_KV_F32 ? 4 : KT == GS_KV_F16 ? 2 : 1;  // bytes per cache element
    static constexpr int RAW = HD * ES;                                     // bytes of one head's K (or V) row
    static constexpr int CPR = RAW / 16;                                    // 16-byte copies per row
    static constexpr int HS = HD + TC_PAD;                                  // halves per shared row
    static constexpr int TILE = TC_T * HS * 2;                              // bytes of a K (or V) half tile
    static constexpr bool STAGE = KT != GS_KV_F16;                          // raw staging + conversion
    static constexpr int NBUF = STAGE ? 1 : 2;
    static constexpr int STAGE_BYTES = STAGE ? 2 * TC_T * RAW : 0;
    static constexpr int SCALE_BYTES = KT == GS_KV_I8 ? 2 * TC_T * 4 : 0;
    // a key group's half tiles, staging and int8 scales; after the groups'
    // areas: rinfo (int4 per row), sorted positions, ownership masks
    static constexpr size_t GROUP = (size_t)NBUF * 2 * TILE + STAGE_BYTES + SCALE_BYTES;
    static constexpr size_t SMEM = TC_GROUPS * GROUP + TC_ROWS * 16 + TC_ROWS * 4 + 16;
    static_assert(CPR >= 2 && TC_GTHREADS % CPR == 0, "16-byte copies must tile the group");
    // the merge record of a thread of group 1 (O, then m and l of both rows) fits its group's area
    static_assert((size_t)TC_GTHREADS * (HD / 2 + 4) * 4 <= NBUF * 2 * TILE + STAGE_BYTES, "merge record fits");
    static_assert(GROUP % 16 == 0, "group areas stay 16-byte aligned");
    static_assert(HD % 32 == 0, "ldmatrix.x4 takes 32 dims of K at a time");
    static_assert(TC_ROWS % FL_PF_ROWS == 0 && TC_ROWS == 16 * TC_WARPS, "warps own whole hybrid tiles");
};

// Scratch of a split into n_chunks: the row tiles' info, then the partials'
// O (head_dim floats) and (m, l), per (token, head, chunk).
static size_t tc_split_bytes(const gs_attn_args *a, int n_chunks)
{
    const size_t tiles = (size_t)((a->n_tokens + TC_ROWS - 1) / TC_ROWS) * a->n_head;
    const size_t parts = (size_t)a->n_tokens * a->n_head * n_chunks;
    return tiles * sizeof(int4) + parts * ((size_t)a->head_dim + 2) * sizeof(float);
}

struct tc_split {
    int n_chunks, chunk_tiles;
};

// A pure function of the call's shape (cuda_attention_scratch_bytes agrees).
// A pass walks at most ceil(max_pos / TC_T) tiles, one more with a window
// (its sink and window segments each start a tile). Chunks of at least
// TC_CHUNK_TILES tiles, at most TC_MAX_CHUNKS of them, fewer while the
// partials would pass TC_SPLIT_BYTES (long prefills have blocks to spare).
static tc_split tc_split_of(const gs_attn_args *a)
{
    const int max_tiles = (a->max_pos + TC_T - 1) / TC_T + (a->window > 0);
    int nc = (max_tiles + TC_CHUNK_TILES - 1) / TC_CHUNK_TILES;
    nc = nc < TC_MAX_CHUNKS ? nc : TC_MAX_CHUNKS;
    while (nc > 1 && tc_split_bytes(a, nc) > TC_SPLIT_BYTES)
        nc--;
    if (nc <= 1)
        return {1, INT_MAX};
    return {nc, (max_tiles + nc - 1) / nc};
}

// Whether a call may run tc_prefill_kernel, judged from its shape alone (the
// caches' alignment unknown): what its scratch is sized for.
static bool tc_candidate(const gs_attn_args *a)
{
    const int hd = a->head_dim;
    return a->half_ok && a->variant == GS_ATTN_FUSED && a->n_tokens > FL_DECODE_MAX_TOKENS &&
           (hd == 32 || hd == 64 || hd == 128);
}

static size_t fused_scratch_bytes(const gs_attn_args *a)
{
    if (a->head_dim > FL_MAX_HEAD_DIM)
        return 0;
    const fl_plan p = fused_plan(a);
    if (p.hybrid && tc_candidate(a)) {  // the tensor-core prefill's split, if any
        const tc_split sp = tc_split_of(a);
        return sp.n_chunks > 1 ? tc_split_bytes(a, sp.n_chunks) : 0;
    }
    if (p.n_chunks <= 1)
        return 0;
    return (size_t)a->n_tokens * a->n_head * p.n_chunks * ((size_t)a->head_dim + 2) * sizeof(float);
}

static __device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16 (4) bytes global -> shared, or zeros when !ok (src-size 0: nothing is read).
static __device__ __forceinline__ void tc_cp16(void *smem, const void *gmem, bool ok)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)),
                 "l"(__cvta_generic_to_global(gmem)), "r"(ok ? 16 : 0)
                 : "memory");
}

static __device__ __forceinline__ void tc_cp4(void *smem, const void *gmem, bool ok)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)),
                 "l"(__cvta_generic_to_global(gmem)), "r"(ok ? 4 : 0)
                 : "memory");
}

// Four 8x8 b16 matrices; lane l gives the address of row l % 8 of matrix l / 8,
// and receives of matrix i (register i) row l / 4, columns 2 (l % 4), +1
// (.trans: rows 2 (l % 4), +1 of column l / 4).
static __device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}

static __device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}

// d += a b, m16n8k16, fp16 in, fp32 accumulate. With g = lane / 4, q = lane % 4:
// a[0] = A[g][2q, 2q+1], a[1] = A[g+8][2q..], a[2] = A[g][2q+8..], a[3] = A[g+8][2q+8..];
// b[0] = B[2q, 2q+1][g], b[1] = B[2q+8, 2q+9][g];
// d[0], d[1] = D[g][2q, 2q+1], d[2], d[3] = D[g+8][2q, 2q+1].
static __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as one register of two halves, x in the low half (the lower column).
static __device__ __forceinline__ uint32_t pack_half2(float x, float y)
{
    const __half2 h = __floats2half2_rn(x, y);
    return *reinterpret_cast<const uint32_t *>(&h);
}

// Whether a pass row (vis v) sees position p of tile column c (nv valid columns).
static __device__ __forceinline__ bool tc_vis(const attn_vis &v, int c, int nv, int p)
{
    return c < nv && p <= v.pos && (p >= v.lo || p < v.sink_end);
}

// Whether it sees any of the positions [p0, p0 + nv).
static __device__ __forceinline__ bool tc_sees_any(const attn_vis &v, int p0, int nv)
{
    const int hi = min(p0 + nv - 1, v.pos);
    return hi >= max(p0, v.lo) || min(hi, v.sink_end - 1) >= p0;
}

// Window segment of a windowed pass: position p is needed when some active
// row sees it, i.e. (every row's window being [max(0, pos - window + 1), pos])
// some active row's pos lies in [p, p + window - 1]. sorted: the n active
// rows' positions, ascending.
static __device__ __forceinline__ bool tc_need(const int *sorted, int n, int p, int window)
{
    int lo = 0, hi = n;  // first index with sorted[i] >= p
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (sorted[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sorted[lo] <= p + window - 1;
}

struct tc_tile {
    int p0, nv, seg1;  // first position, valid rows, window segment (else sinks)
};

// Tile i of a pass: n0 tiles over the sinks [0, SE), then tiles from B1 to PM.
static __device__ __forceinline__ tc_tile tc_tile_of(int i, int n0, int SE, int B1, int PM)
{
    tc_tile t;
    if (i < n0) {
        t.p0 = TC_T * i;
        t.nv = min(TC_T, SE - t.p0);
        t.seg1 = 0;
    } else {
        t.p0 = B1 + TC_T * (i - n0);
        t.nv = min(TC_T, PM + 1 - t.p0);
        t.seg1 = 1;
    }
    return t;
}

// Starts the copies of tile t: fp16 into the half tiles kd/vd, other types into
// the staging area (K rows then V rows, RAW bytes each) and, int8, the rows'
// scales into sc (K's 64 then V's). Called by one key group; copy j = tid +
// k * TC_GTHREADS of a matrix (tid: the thread's index in its group) is row
// j / CPR, 16 bytes number j % CPR: a warp reads whole rows (coalesced).
template <int HD, int KT>
static __device__ __forceinline__ void tc_issue(unsigned char *kd, unsigned char *vd, unsigned char *stage, float *sc,
                                                const void *__restrict__ k_cache, const void *__restrict__ v_cache,
                                                const gs_attn_args &a, const int *table, int kvh, tc_tile t,
                                                const int *sorted, int n_act)
{
    using C = tc_cfg<HD, KT>;
    const size_t kv_dim = (size_t)a.n_kv_head * HD;
    const int gt = threadIdx.x % TC_GTHREADS, chunk = gt % C::CPR;
#pragma unroll
    for (int r = gt / C::CPR; r < TC_T; r += TC_GTHREADS / C::CPR) {
        const int p = t.p0 + r;
        bool ok = r < t.nv;
        if (ok && t.seg1 && a.window > 0)
            ok = tc_need(sorted, n_act, p, a.window);
        const size_t row = ok ? (size_t)cache_row(table, a.block_size, p) : 0;  // row 0: a valid address, unread
        const size_t off = (row * kv_dim + (size_t)kvh * HD) * C::ES + (size_t)chunk * 16;
        const unsigned char *ks = static_cast<const unsigned char *>(k_cache) + off;
        const unsigned char *vs = static_cast<const unsigned char *>(v_cache) + off;
        if constexpr (C::STAGE) {
            tc_cp16(stage + r * C::RAW + chunk * 16, ks, ok);
            tc_cp16(stage + (TC_T + r) * C::RAW + chunk * 16, vs, ok);
        } else {
            tc_cp16(kd + r * C::HS * 2 + chunk * 16, ks, ok);
            tc_cp16(vd + r * C::HS * 2 + chunk * 16, vs, ok);
        }
        if constexpr (KT == GS_KV_I8)
            if (chunk == 0) {
                const size_t si = row * a.n_kv_head + kvh;
                tc_cp4(sc + r, a.k_scale + si, ok);  // zero scale for a zero-filled row: 0 * 0
                tc_cp4(sc + TC_T + r, a.v_scale + si, ok);
            }
    }
}

// The staging area (all copies landed, a barrier after them) into the half
// tiles, 8 elements (16 bytes of half) per step; by one key group.
template <int HD, int KT>
static __device__ __forceinline__ void tc_convert(unsigned char *kd, const unsigned char *stage, const float *sc)
{
    using C = tc_cfg<HD, KT>;
    constexpr int PER_ROW = HD / 8, PER_MAT = TC_T * PER_ROW;
#pragma unroll 4
    for (int j = threadIdx.x % TC_GTHREADS; j < 2 * PER_MAT; j += TC_GTHREADS) {
        const int mat = j / PER_MAT, r = j % PER_MAT / PER_ROW, c8 = j % PER_ROW;
        const unsigned char *src = stage + (mat * TC_T + r) * C::RAW + c8 * 8 * C::ES;
        uint4 o;
        if constexpr (KT == GS_KV_F32) {
            const float4 x = reinterpret_cast<const float4 *>(src)[0], y = reinterpret_cast<const float4 *>(src)[1];
            o = make_uint4(pack_half2(x.x, x.y), pack_half2(x.z, x.w), pack_half2(y.x, y.y), pack_half2(y.z, y.w));
        } else if constexpr (KT == GS_KV_I8) {
            const uint2 u = *reinterpret_cast<const uint2 *>(src);
            const float s = sc[mat * TC_T + r];
            uint32_t w[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const uint32_t word = e < 2 ? u.x : u.y, sh = 16 * (e % 2);
                w[e] = pack_half2((float)(int8_t)(word >> sh) * s, (float)(int8_t)(word >> (sh + 8)) * s);
            }
            o = make_uint4(w[0], w[1], w[2], w[3]);
        } else {  // e4m3 -> fp16 is exact; the low byte becomes the low half
            const uint2 u = *reinterpret_cast<const uint2 *>(src);
            uint32_t w[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const uint32_t word = e < 2 ? u.x : u.y;
                const __half2_raw h =
                    __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(word >> (16 * (e % 2))), __NV_E4M3);
                w[e] = (uint32_t)h.x | (uint32_t)h.y << 16;
            }
            o = make_uint4(w[0], w[1], w[2], w[3]);
        }
        *reinterpret_cast<uint4 *>(kd + mat * C::TILE + r * C::HS * 2 + c8 * 16) = o;
    }
}

// One pass: the sequence of the first row not in `done`, its unfinished rows
// (act), and the walk over their visible positions: n0 tiles over the sinks
// [0, SE), then tiles from B1 to PM (n_tiles in all).
struct tc_pass {
    unsigned long long act;
    int seq, SE, LO, PM, n0, B1, n_tiles;
};

// Computed by each warp on its own, all 32 lanes together: lane l looks at rows
// l and l + 32 and the warp reduces (the loop over 64 rows it replaces, in
// every thread of every block, was a third of the kernel's instructions).
static __device__ __forceinline__ tc_pass tc_pass_of(const int4 *rinfo, unsigned long long done)
{
    const int lane = threadIdx.x % 32;
    tc_pass p;
    p.seq = rinfo[__ffsll((long long)~done) - 1].x;
    const int4 r0 = rinfo[lane], r1 = rinfo[lane + 32];
    const bool a0 = !((done >> lane) & 1) && r0.x == p.seq, a1 = !((done >> (lane + 32)) & 1) && r1.x == p.seq;
    p.act = (unsigned long long)__ballot_sync(FULL_MASK, a0) | (unsigned long long)__ballot_sync(FULL_MASK, a1) << 32;
    p.SE = __reduce_max_sync(FULL_MASK, max(a0 ? r0.y : 0, a1 ? r1.y : 0));
    p.LO = __reduce_min_sync(FULL_MASK, min(a0 ? r0.z : INT_MAX, a1 ? r1.z : INT_MAX));
    p.PM = __reduce_max_sync(FULL_MASK, max(a0 ? r0.w : -1, a1 ? r1.w : -1));
    p.n0 = (p.SE + TC_T - 1) / TC_T;
    p.B1 = max(p.LO, p.SE);
    p.n_tiles = p.n0 + (p.PM + 1 > p.B1 ? (p.PM + 1 - p.B1 + TC_T - 1) / TC_T : 0);
    return p;
}

// Output elements i and i + 1 (i even): fp32 in out, or with out_h the
// 16-bit rows the output projection reads (fp16, or bf16 with out_bf16), each
// rounded as cuda_convert_to_half rounds the fp32 value: the same bits as the
// fp32 output converted, without the conversion pass.
static __device__ __forceinline__ void tc_store_pair(float *out, uint16_t *out_h, bool out_bf16, size_t i, float x,
                                                     float y)
{
    if (out_h) {
        const uint32_t v = out_bf16 ? (uint32_t)half_bits<true>(x) | (uint32_t)half_bits<true>(y) << 16
                                    : (uint32_t)half_bits<false>(x) | (uint32_t)half_bits<false>(y) << 16;
        *reinterpret_cast<uint32_t *>(out_h + i) = v;
    } else {
        out[i] = x;
        out[i + 1] = y;
    }
}

// n_chunks: chunks per row tile in the grid (1: unsplit, the scratch pointers
// unused); chunk_tiles: key tiles per chunk. info[row tile * n_head + h]:
// (needed, ours low, ours high, 0), written by chunk 0.
template <int HD, int KT, int MB>
__global__ void __launch_bounds__(TC_THREADS, MB)
    tc_prefill_kernel(float *__restrict__ out, uint16_t *__restrict__ out_h, bool out_bf16,
                      const float *__restrict__ qkv, const void *__restrict__ k_cache,
                      const void *__restrict__ v_cache, gs_attn_args a, float qscale, int n_chunks, int chunk_tiles,
                      int4 *__restrict__ info, float *__restrict__ part_acc, float *__restrict__ part_ml)
{
    using C = tc_cfg<HD, KT>;
    constexpr int NT = TC_T / 8;  // n8 tiles of scores per warp row block
    constexpr int DT = HD / 8;    // n8 tiles of output dims
    extern __shared__ uint4 tc_dyn_smem[];
    // Key group kg (threads kg * TC_GTHREADS ..) has its own tiles and staging.
    const int kg = threadIdx.x / TC_GTHREADS;
    unsigned char *base = reinterpret_cast<unsigned char *>(tc_dyn_smem) + kg * C::GROUP;
    unsigned char *stage = base + C::NBUF * 2 * C::TILE;
    float *sc = reinterpret_cast<float *>(stage + C::STAGE_BYTES);
    int4 *rinfo = reinterpret_cast<int4 *>(reinterpret_cast<unsigned char *>(tc_dyn_smem) + TC_GROUPS * C::GROUP);
    int *sorted = reinterpret_cast<int *>(rinfo + TC_ROWS);  // rinfo: (seq, sink_end, lo, pos)
    unsigned *masks = reinterpret_cast<unsigned *>(sorted + TC_ROWS);

    const int n_qt = gridDim.y / n_chunks, qt = n_qt - 1 - (int)blockIdx.y / n_chunks, c = blockIdx.y % n_chunks;
    const int h = blockIdx.x, t0 = qt * TC_ROWS;
    const int w = threadIdx.x / 32 % TC_WARPS, lane = threadIdx.x % 32, g = lane / 4, q4 = lane % 4;
    const int rA = 16 * w + g, rB = rA + 8;  // this thread's two rows of the block (the same in both groups)

    if (threadIdx.x < TC_ROWS) {
        const int t = t0 + threadIdx.x;
        if (t < a.n_tokens) {
            const attn_vis v = vis_of(a.window, a.n_sink, a.token_pos[t]);
            rinfo[threadIdx.x] = make_int4(a.token_seq[t], v.sink_end, v.lo, v.pos);
        } else {
            rinfo[threadIdx.x] = make_int4(-1, 0, 1, -1);  // no token: sees nothing
        }
    }
    __syncthreads();
    if (threadIdx.x < TC_ROWS) {  // warps 0 and 1, whole: the hybrid rule on each 16-row group
        const int seq = rinfo[threadIdx.x].x, g0 = threadIdx.x / FL_PF_ROWS * FL_PF_ROWS;
        int share = 0;
        for (int r = g0; r < g0 + FL_PF_ROWS; r++)
            share += rinfo[r].x == seq;
        const unsigned b = __ballot_sync(FULL_MASK, seq >= 0 && share >= FL_PF_SHARE);
        if (lane == 0)
            masks[w] = b;
    }
    __syncthreads();
    const unsigned long long ours = (unsigned long long)masks[0] | (unsigned long long)masks[1] << 32;
    // Chunks the longest pass fills (0 when every row is flash_decode_kernel's):
    // uniform over the block, as is everything it decides below.
    int needed = 0;
    for (unsigned long long d = ~ours; d != ~0ull;) {
        const tc_pass p = tc_pass_of(rinfo, d);
        needed = max(needed, (p.n_tiles - 1) / chunk_tiles + 1);
        d |= p.act;
    }
    if (n_chunks > 1 && c == 0 && threadIdx.x == 0)  // what tc_reduce_kernel merges, 0 rows included
        info[(size_t)qt * a.n_head + h] = make_int4(needed, (int)(unsigned)ours, (int)(unsigned)(ours >> 32), 0);
    if (c >= needed)
        return;

    // Q of rows rA and rB as A fragments, times scale * log2(e); rows not ours are zero.
    uint32_t qa[HD / 16][4];
    {
        const bool okA = (ours >> rA) & 1, okB = (ours >> rB) & 1;
        const float *qA = qkv + (size_t)(t0 + rA) * a.qkv_stride + (size_t)h * HD;
        const float *qB = qkv + (size_t)(t0 + rB) * a.qkv_stride + (size_t)h * HD;
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++) {
            const int d = 16 * ks + 2 * q4;
            qa[ks][0] = okA ? pack_half2(qA[d] * qscale, qA[d + 1] * qscale) : 0u;
            qa[ks][1] = okB ? pack_half2(qB[d] * qscale, qB[d + 1] * qscale) : 0u;
            qa[ks][2] = okA ? pack_half2(qA[d + 8] * qscale, qA[d + 9] * qscale) : 0u;
            qa[ks][3] = okB ? pack_half2(qB[d + 8] * qscale, qB[d + 9] * qscale) : 0u;
        }
    }

    const int kvh = h / (a.n_head / a.n_kv_head);
    float o[DT][4];
#pragma unroll
    for (int dt = 0; dt < DT; dt++)
        o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f;  // l: this thread's columns only

    unsigned long long done = ~ours;
    while (done != ~0ull) {
        // One pass: the first unfinished row's sequence, every unfinished row of it.
        const tc_pass ps = tc_pass_of(rinfo, done);
        const unsigned long long act = ps.act;
        const int SE = ps.SE, PM = ps.PM, n0 = ps.n0, B1 = ps.B1;
        attn_vis vA = {0, 1, -1}, vB = {0, 1, -1};
        if ((act >> rA) & 1) {
            const int4 ri = rinfo[rA];
            vA = {ri.y, ri.z, ri.w};
        }
        if ((act >> rB) & 1) {
            const int4 ri = rinfo[rB];
            vB = {ri.y, ri.z, ri.w};
        }
        const int n_act = __popcll(act);
        if (a.window > 0 && threadIdx.x < TC_ROWS && ((act >> threadIdx.x) & 1)) {
            // rank among the active rows by (pos, row): a sorted list of their positions
            const int mine = rinfo[threadIdx.x].w;
            int rank = 0;
            for (int r = 0; r < TC_ROWS; r++) {
                const int pr = rinfo[r].w;
                rank += ((act >> r) & 1) && (pr < mine || (pr == mine && r < (int)threadIdx.x));
            }
            sorted[rank] = mine;
        }
        __syncthreads();  // sorted is ready, and every warp is done with the previous pass's tiles
        const int *table = a.block_tables + (size_t)ps.seq * a.max_blocks_per_seq;
        // This block's chunk of the pass's tiles (none when the pass is shorter).
        // Round k: key group kg takes tile i0 + TC_GROUPS k + kg into its own
        // buffers (alternating from its first); the rounds are the block's, so
        // the barriers are __syncthreads. (A named barrier per group let the
        // groups drift apart; compute-sanitizer's racecheck reported its
        // hand-offs as hazards, so the simpler lockstep stays.)
        const int i0 = c * chunk_tiles, n_tiles = ps.n_tiles - i0 > chunk_tiles ? i0 + chunk_tiles : ps.n_tiles;
        if (i0 + kg < n_tiles)
            tc_issue<HD, KT>(base, base + C::TILE, stage, sc, k_cache, v_cache, a, table, kvh,
                             tc_tile_of(i0 + kg, n0, SE, B1, PM), sorted, n_act);
        for (int r0 = i0, k = 0; r0 < n_tiles; r0 += TC_GROUPS, k++) {
            const int i = r0 + kg;  // this group's tile of the round, if any
            cp_async_wait_all();
            __syncthreads();  // tile i is in; every warp is done with the previous round's tiles
            const unsigned char *kt = base + (C::NBUF == 2 ? (k & 1) : 0) * 2 * C::TILE, *vt = kt + C::TILE;
            if constexpr (C::STAGE) {
                if (i < n_tiles)
                    tc_convert<HD, KT>(base, stage, sc);
                __syncthreads();  // the half tiles are ready, the staging areas free
            }
            if (i + TC_GROUPS < n_tiles) {
                unsigned char *kn = base + (C::NBUF == 2 ? ((k + 1) & 1) : 0) * 2 * C::TILE;
                tc_issue<HD, KT>(kn, kn + C::TILE, stage, sc, k_cache, v_cache, a, table, kvh,
                                 tc_tile_of(i + TC_GROUPS, n0, SE, B1, PM), sorted, n_act);
            }
            if (i >= n_tiles)  // group-uniform: the chunk's last round has one tile
                continue;
            const tc_tile t = tc_tile_of(i, n0, SE, B1, PM);
            // Warp-uniform: skip a tile none of the warp's rows sees a position of.
            if (!__any_sync(FULL_MASK, tc_sees_any(vA, t.p0, t.nv) || tc_sees_any(vB, t.p0, t.nv)))
                continue;

            // S = Q K^T: n8 tile nt is keys 8 nt .. 8 nt + 7; one ldmatrix.x4 gives
            // the B fragments of 32 dims (two k16 slices).
            float s[NT][4];
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < HD / 32; kk++) {
                    uint32_t b[4];
                    ldsm_x4(b, kt + ((8 * nt + (lane & 7)) * C::HS + 32 * kk + 8 * (lane >> 3)) * 2);
                    mma16816(s[nt], qa[2 * kk], b[0], b[1]);
                    mma16816(s[nt], qa[2 * kk + 1], b[2], b[3]);
                }
            }
            // Mask: columns 8 nt + 2 q4 + e, rows rA (s[.][e]) and rB (s[.][2 + e]).
            const bool fullA = t.nv == TC_T && t.p0 >= vA.lo && t.p0 + TC_T - 1 <= vA.pos;
            const bool fullB = t.nv == TC_T && t.p0 >= vB.lo && t.p0 + TC_T - 1 <= vB.pos;
            if (!(fullA && fullB)) {
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int c = 8 * nt + 2 * q4 + e, p = t.p0 + c;
                        if (!fullA && !tc_vis(vA, c, t.nv, p))
                            s[nt][e] = -INFINITY;
                        if (!fullB && !tc_vis(vB, c, t.nv, p))
                            s[nt][2 + e] = -INFINITY;
                    }
            }
            // Online softmax (log2 units). A row that has seen nothing keeps m = -INFINITY:
            // mu = 0 then makes alpha and every p exp2(-inf) = 0.
            float xA = -INFINITY, xB = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                xA = fmaxf(xA, fmaxf(s[nt][0], s[nt][1]));
                xB = fmaxf(xB, fmaxf(s[nt][2], s[nt][3]));
            }
#pragma unroll
            for (int off = 1; off <= 2; off <<= 1) {  // the quad holding the rows
                xA = fmaxf(xA, __shfl_xor_sync(FULL_MASK, xA, off));
                xB = fmaxf(xB, __shfl_xor_sync(FULL_MASK, xB, off));
            }
            const float nA = fmaxf(mA, xA), nB = fmaxf(mB, xB);
            const float uA = nA == -INFINITY ? 0.0f : nA, uB = nB == -INFINITY ? 0.0f : nB;
            const float alA = exp2f(mA - uA), alB = exp2f(mB - uB);
            mA = nA;
            mB = nB;
            float sumA = 0.0f, sumB = 0.0f;
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                s[nt][0] = exp2f(s[nt][0] - uA);
                s[nt][1] = exp2f(s[nt][1] - uA);
                s[nt][2] = exp2f(s[nt][2] - uB);
                s[nt][3] = exp2f(s[nt][3] - uB);
                sumA += s[nt][0] + s[nt][1];
                sumB += s[nt][2] + s[nt][3];
            }
            lA = lA * alA + sumA;
            lB = lB * alB + sumB;
#pragma unroll
            for (int dt = 0; dt < DT; dt++) {
                o[dt][0] *= alA;
                o[dt][1] *= alA;
                o[dt][2] *= alB;
                o[dt][3] *= alB;
            }
            // O += P V: k16 slice j of P is score tiles 2j and 2j + 1; one
            // ldmatrix.x4.trans gives the B fragments of two n8 tiles of dims.
#pragma unroll
            for (int j = 0; j < TC_T / 16; j++) {
                const uint32_t pa[4] = {pack_half2(s[2 * j][0], s[2 * j][1]), pack_half2(s[2 * j][2], s[2 * j][3]),
                                        pack_half2(s[2 * j + 1][0], s[2 * j + 1][1]),
                                        pack_half2(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
                for (int dt = 0; dt < DT; dt += 2) {
                    uint32_t b[4];
                    ldsm_x4_trans(b, vt + ((16 * j + 8 * ((lane >> 3) & 1) + (lane & 7)) * C::HS +
                                           8 * (dt + (lane >> 4))) * 2);
                    mma16816(o[dt], pa, b[0], b[1]);
                    mma16816(o[dt + 1], pa, b[2], b[3]);
                }
            }
        }
        done |= act;
    }

    // The key groups' merge: group 1 leaves its (O, m, l) in its own area, as
    // [value][thread] floats; group 0's thread of the same rows and columns
    // takes them (M = max m, weights 2^(m - M); a group that saw nothing of
    // a row has m = -INFINITY: weight 0).
    static_assert(TC_GROUPS == 2, "the merge below takes one other group");
    __syncthreads();  // every warp is done with its tiles
    if (kg == 1) {
        float *rec = reinterpret_cast<float *>(base) + threadIdx.x % TC_GTHREADS;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                rec[(4 * dt + e) * TC_GTHREADS] = o[dt][e];
        rec[(4 * DT) * TC_GTHREADS] = mA;
        rec[(4 * DT + 1) * TC_GTHREADS] = mB;
        rec[(4 * DT + 2) * TC_GTHREADS] = lA;
        rec[(4 * DT + 3) * TC_GTHREADS] = lB;
    }
    __syncthreads();
    if (kg == 1)
        return;
    {
        const float *rec = reinterpret_cast<const float *>(base + C::GROUP) + threadIdx.x;
        const float m1A = rec[(4 * DT) * TC_GTHREADS], m1B = rec[(4 * DT + 1) * TC_GTHREADS];
        const float MaxA = fmaxf(mA, m1A), MaxB = fmaxf(mB, m1B);
        const float uA = MaxA == -INFINITY ? 0.0f : MaxA, uB = MaxB == -INFINITY ? 0.0f : MaxB;
        const float f0A = exp2f(mA - uA), f1A = exp2f(m1A - uA), f0B = exp2f(mB - uB), f1B = exp2f(m1B - uB);
#pragma unroll
        for (int dt = 0; dt < DT; dt++) {
            o[dt][0] = o[dt][0] * f0A + rec[(4 * dt) * TC_GTHREADS] * f1A;
            o[dt][1] = o[dt][1] * f0A + rec[(4 * dt + 1) * TC_GTHREADS] * f1A;
            o[dt][2] = o[dt][2] * f0B + rec[(4 * dt + 2) * TC_GTHREADS] * f1B;
            o[dt][3] = o[dt][3] * f0B + rec[(4 * dt + 3) * TC_GTHREADS] * f1B;
        }
        lA = lA * f0A + rec[(4 * DT + 2) * TC_GTHREADS] * f1A;
        lB = lB * f0B + rec[(4 * DT + 3) * TC_GTHREADS] * f1B;
        mA = MaxA;
        mB = MaxB;
    }

    // The row sums over the quad, then O / l for the block's own rows (l >= 1
    // for them: each sees its own position, and the max term is exp2(0)), or
    // split, this chunk's partial for tc_reduce_kernel (a row that saw nothing
    // here leaves m = -INFINITY, l = 0, O = 0: weight 0 in the merge).
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        lA += __shfl_xor_sync(FULL_MASK, lA, off);
        lB += __shfl_xor_sync(FULL_MASK, lB, off);
    }
    if (needed > 1) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = half ? rB : rA;
            if (!((ours >> r) & 1))
                continue;
            const size_t pi = ((size_t)(t0 + r) * a.n_head + h) * n_chunks + c;
            float *dst = part_acc + pi * HD + 2 * q4;
#pragma unroll
            for (int dt = 0; dt < DT; dt++)
                *reinterpret_cast<float2 *>(dst + 8 * dt) = make_float2(o[dt][2 * half], o[dt][2 * half + 1]);
            if (q4 == 0)
                *reinterpret_cast<float2 *>(part_ml + 2 * pi) = half ? make_float2(mB, lB) : make_float2(mA, lA);
        }
        return;
    }
    if ((ours >> rA) & 1) {
        const size_t i = ((size_t)(t0 + rA) * a.n_head + h) * HD + 2 * q4;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
            tc_store_pair(out, out_h, out_bf16, i + 8 * dt, o[dt][0] / lA, o[dt][1] / lA);
    }
    if ((ours >> rB) & 1) {
        const size_t i = ((size_t)(t0 + rB) * a.n_head + h) * HD + 2 * q4;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
            tc_store_pair(out, out_h, out_bf16, i + 8 * dt, o[dt][2] / lB, o[dt][3] / lB);
    }
}

// Merges the chunks of split row tiles: a block per (head, row tile) as in
// tc_prefill_kernel's grid; tiles that needed one chunk were written there.
// Each of the tile's rows gets its chunks' weights 2^(m_c - M) / L in shared
// memory, then the threads walk (row, dim) with consecutive dims on
// consecutive threads (the partials and the output are dim-contiguous).
template <int HD>
__global__ void __launch_bounds__(TC_WARPS * 32)
    tc_reduce_kernel(float *__restrict__ out, uint16_t *__restrict__ out_h, bool out_bf16,
                     const float *__restrict__ part_acc, const float *__restrict__ part_ml,
                     const int4 *__restrict__ info, gs_attn_args a, int n_chunks)
{
    __shared__ float wt[TC_ROWS][TC_MAX_CHUNKS];
    const int h = blockIdx.x, qt = blockIdx.y, t0 = qt * TC_ROWS;
    const int4 ti = info[(size_t)qt * a.n_head + h];
    const int needed = ti.x;
    if (needed <= 1)  // the whole block
        return;
    const unsigned long long ours = (unsigned long long)(unsigned)ti.y | (unsigned long long)(unsigned)ti.z << 32;
    if (threadIdx.x < TC_ROWS && ((ours >> threadIdx.x) & 1)) {
        const float *ml = part_ml + 2 * ((size_t)(t0 + threadIdx.x) * a.n_head + h) * n_chunks;
        float M = -INFINITY, L = 0.0f;
        for (int c = 0; c < needed; c++)
            M = fmaxf(M, ml[2 * c]);  // finite: the chunk holding the row's own position
        for (int c = 0; c < needed; c++)
            L += ml[2 * c + 1] * exp2f(ml[2 * c] - M);
        for (int c = 0; c < needed; c++)
            wt[threadIdx.x][c] = exp2f(ml[2 * c] - M) / L;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < TC_ROWS * HD; j += blockDim.x) {
        const int r = j / HD, d = j % HD;
        if (!((ours >> r) & 1))
            continue;
        const size_t pi = ((size_t)(t0 + r) * a.n_head + h) * n_chunks;
        float acc = 0.0f;
        for (int c = 0; c < needed; c++)
            acc = fmaf(wt[r][c], part_acc[(pi + c) * HD + d], acc);
        const size_t i = ((size_t)(t0 + r) * a.n_head + h) * HD + d;
        if (out_h)
            out_h[i] = out_bf16 ? half_bits<true>(acc) : half_bits<false>(acc);
        else
            out[i] = acc;
    }
}

// Whether a call runs tc_prefill_kernel: half precision allowed, the fused
// variant, a call the hybrid takes (more than FL_DECODE_MAX_TOKENS tokens), a
// head_dim it is built for, caches aligned for 16-byte copies (every row of
// every KV head then is: HD * element size is a multiple of 16).
static bool tc_eligible(const gs_attn_args *a, const void *k_cache, const void *v_cache)
{
    return tc_candidate(a) && (uintptr_t)k_cache % 16 == 0 && (uintptr_t)v_cache % 16 == 0;
}

template <int HD, int KT>
static int tc_launch_hd(float *out, uint16_t *out_h, bool out_bf16, const float *qkv, const void *k_cache,
                        const void *v_cache, const gs_attn_args *a, void *scratch, float scale, cudaStream_t stream)
{
    const tc_split sp = tc_split_of(a);
    const unsigned n_qt = (unsigned)((a->n_tokens + TC_ROWS - 1) / TC_ROWS);
    auto kernel = tc_prefill_kernel<HD, KT, 1>;
    if constexpr (HD <= 64) {  // two blocks an SM fit its shared memory and 128 registers
        int sms = 0;
        CUDA_TRY(gs_cuda_sm_count(&sms));
        if ((double)a->n_head * n_qt * sp.n_chunks > TC_MB1_GRID * sms)
            kernel = tc_prefill_kernel<HD, KT, 2>;
    }
    const size_t smem = tc_cfg<HD, KT>::SMEM;
    if (int rc = fl_smem_limit(kernel, smem))
        return rc;
    int4 *info = NULL;
    float *part_acc = NULL, *part_ml = NULL;
    if (sp.n_chunks > 1) {
        info = static_cast<int4 *>(scratch);
        part_acc = reinterpret_cast<float *>(info + (size_t)n_qt * a->n_head);
        part_ml = part_acc + (size_t)a->n_tokens * a->n_head * sp.n_chunks * HD;
    }
    const dim3 grid((unsigned)a->n_head, n_qt * (unsigned)sp.n_chunks);
    kernel<<<grid, TC_THREADS, smem, stream>>>(out, out_h, out_bf16, qkv, k_cache, v_cache, *a, scale * TC_LOG2E,
                                                  sp.n_chunks, sp.chunk_tiles, info, part_acc, part_ml);
    CUDA_LAUNCHED();
    if (sp.n_chunks > 1) {
        tc_reduce_kernel<HD><<<dim3((unsigned)a->n_head, n_qt), TC_WARPS * 32, 0, stream>>>(
            out, out_h, out_bf16, part_acc, part_ml, info, *a, sp.n_chunks);
        CUDA_LAUNCHED();
    }
    return 0;
}

// out_h: the output as 16-bit rows (cuda_attention_half), else fp32 in out.
template <int KT>
static int tc_launch(float *out, uint16_t *out_h, bool out_bf16, const float *qkv, const void *k_cache,
                     const void *v_cache, const gs_attn_args *a, void *scratch, float scale, cudaStream_t stream)
{
    switch (a->head_dim) {
    case 32:
        return tc_launch_hd<32, KT>(out, out_h, out_bf16, qkv, k_cache, v_cache, a, scratch, scale, stream);
    case 64:
        return tc_launch_hd<64, KT>(out, out_h, out_bf16, qkv, k_cache, v_cache, a, scratch, scale, stream);
    default:
        return tc_launch_hd<128, KT>(out, out_h, out_bf16, qkv, k_cache, v_cache, a, scratch, scale, stream);
    }
}

template <int DPL, bool VEC, int KT>
static int fused_launch(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                        const gs_attn_args *a, const fl_plan *p, void *scratch, float scale, cudaStream_t stream)
{
    const int hd = a->head_dim, hd4 = (hd + 3) / 4 * 4;
    const int ks = (hd4 / 4) % 2 ? hd4 : hd4 + 4;  // an odd number of float4s per K row: no bank conflicts
    const fl_rows rows = p->hybrid ? hybrid_rows(a) : fl_rows{true, false};
    if (rows.decode) {
        // Tiles of 64 positions: one warp a head taking all (SPL 2), or two
        // taking 32 each; 32 positions for head_dim > 128.
        // FL_SHORT_WPH warps of 32 (one tile of 256 positions): the short plan.
        constexpr int SPL = DPL == 8 ? 1 : 2;
        const int T = p->wph == FL_SHORT_WPH ? 32 * FL_SHORT_WPH : 32 * SPL;
        const int nw = p->hpb * p->wph;
        const size_t smem = fl_smem_bytes(T, ks, hd4, nw, p->wph == 1 ? SPL : 1);
        auto kernel = flash_decode_kernel<DPL, SPL, 1, VEC, KT>;
        if constexpr (DPL != 8)
            if (p->wph == 2)
                kernel = flash_decode_kernel<DPL, 1, 2, VEC, KT>;
        if constexpr (DPL <= 2)
            if (p->wph == FL_SHORT_WPH)
                kernel = flash_decode_kernel<DPL, 1, FL_SHORT_WPH, VEC, KT>;
        if (int rc = fl_smem_limit(kernel, smem))
            return rc;
        const size_t parts = (size_t)a->n_tokens * a->n_head * p->n_chunks;
        float *part_acc = p->n_chunks > 1 ? (float *)scratch : NULL;
        float *part_ml = part_acc ? part_acc + parts * hd : NULL;
        const long blocks = (long)a->n_tokens * (a->n_head / p->hpb) * p->n_chunks;
        CUDA_TRY(gs_launch_pdl(kernel, (unsigned)blocks, nw * 32, smem, stream, out, part_acc, part_ml, qkv, k_cache,
                               v_cache, *a, p->hpb, p->chunk, p->n_chunks, hd4, ks, scale, p->hybrid));
        CUDA_LAUNCHED();
        if (p->n_chunks > 1) {
            const size_t pairs = (size_t)a->n_tokens * a->n_head;
            CUDA_TRY(gs_launch_pdl(flash_reduce_kernel<DPL>, (unsigned)((pairs + FL_REDUCE_WARPS - 1) / FL_REDUCE_WARPS),
                                   FL_REDUCE_WARPS * 32, 0, stream, out, part_acc, part_ml, *a, p->chunk,
                                   p->n_chunks));
            CUDA_LAUNCHED();
        }
    }
    if (!rows.prefill)
        return 0;
    if (tc_eligible(a, k_cache, v_cache))  // half precision allowed: the tensor-core prefill
        return tc_launch<KT>(out, NULL, false, qkv, k_cache, v_cache, a, scratch, scale, stream);
    constexpr int SPL = DPL == 8 ? 1 : 2;  // tiles of 64 positions, 32 for head_dim > 128
    constexpr int T = 32 * SPL;
    const size_t smem = fl_smem_bytes(T, ks, hd4, FL_PF_ROWS, SPL);
    auto kernel = flash_prefill_kernel<DPL, SPL, VEC, KT>;
    if (int rc = fl_smem_limit(kernel, smem))
        return rc;
    dim3 grid((unsigned)((a->n_tokens + FL_PF_ROWS - 1) / FL_PF_ROWS), (unsigned)a->n_head);
    kernel<<<grid, FL_ROWS * 32, smem, stream>>>(out, qkv, k_cache, v_cache, *a, hd4, ks, scale, 1);
    CUDA_LAUNCHED();
    return 0;
}

template <int DPL, int KT>
static int fused_launch_vec(bool vec, float *out, const float *qkv, const void *k_cache, const void *v_cache,
                            const gs_attn_args *a, const fl_plan *p, void *scratch, float scale, cudaStream_t stream)
{
    return vec ? fused_launch<DPL, true, KT>(out, qkv, k_cache, v_cache, a, p, scratch, scale, stream)
               : fused_launch<DPL, false, KT>(out, qkv, k_cache, v_cache, a, p, scratch, scale, stream);
}

template <int KT>
static int fused_attention(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                           const gs_attn_args *a, void *scratch, size_t scratch_bytes, float scale, cudaStream_t stream)
{
    const int hd = a->head_dim;
    if (hd > FL_MAX_HEAD_DIM) {
        fprintf(stderr, "gptscope: cuda_attention (fused): head_dim %d over the %d supported\n", hd, FL_MAX_HEAD_DIM);
        return (int)cudaErrorInvalidValue;
    }
    const fl_plan p = fused_plan(a);
    const size_t need = fused_scratch_bytes(a);
    if (need > 0 && (scratch == NULL || scratch_bytes < need)) {
        fprintf(stderr, "gptscope: cuda_attention (fused): scratch of %zu bytes, %zu needed\n", scratch_bytes, need);
        return (int)cudaErrorInvalidValue;
    }
    // 16-byte cp.async needs every row start 16-byte aligned: head_dim % 4 == 0
    // (so kv_dim and every head offset are too) and aligned cache bases; the
    // other element types load 4 elements at once, aligned the same way.
    const uintptr_t align = 4 * gs_kv_elem_size(KT);
    const bool vec = hd % 4 == 0 && ((uintptr_t)k_cache % align) == 0 && ((uintptr_t)v_cache % align) == 0;
    switch (fl_dpl(hd)) {
    case 1:
        return fused_launch_vec<1, KT>(vec, out, qkv, k_cache, v_cache, a, &p, scratch, scale, stream);
    case 2:
        return fused_launch_vec<2, KT>(vec, out, qkv, k_cache, v_cache, a, &p, scratch, scale, stream);
    case 4:
        return fused_launch_vec<4, KT>(vec, out, qkv, k_cache, v_cache, a, &p, scratch, scale, stream);
    default:
        return fused_launch_vec<8, KT>(vec, out, qkv, k_cache, v_cache, a, &p, scratch, scale, stream);
    }
}

// ---- the C interface ----

static bool args_ok(const gs_attn_args *a)
{
    return a->n_head > 0 && a->n_kv_head > 0 && a->n_head % a->n_kv_head == 0 && a->head_dim > 0 &&
           a->block_size > 0 && a->max_blocks_per_seq > 0 && a->max_pos > 0 && a->qkv_stride > 0;
}

extern "C" size_t cuda_attention_scratch_bytes(const gs_attn_args *a)
{
    if (a->n_tokens <= 0 || !args_ok(a))
        return 0;
    return a->variant == GS_ATTN_FUSED ? fused_scratch_bytes(a) : naive_scratch_bytes(a);
}

extern "C" int cuda_attention_tensor_cores(const gs_attn_args *a, const void *k_cache, const void *v_cache)
{
    return a->n_tokens > 0 && args_ok(a) && (unsigned)a->kv_dtype < GS_KV_N_DTYPES && tc_eligible(a, k_cache, v_cache);
}

extern "C" int cuda_attention(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                              const gs_attn_args *a, void *scratch, size_t scratch_bytes, cudaStream_t stream)
{
    if (a->n_tokens <= 0)
        return 0;
    if (!args_ok(a) || (a->variant != GS_ATTN_NAIVE && a->variant != GS_ATTN_FUSED)) {
        fprintf(stderr, "gptscope: cuda_attention: bad shape (heads %d/%d, head_dim %d, block_size %d, max_pos %d, "
                        "variant %d)\n",
                a->n_head, a->n_kv_head, a->head_dim, a->block_size, a->max_pos, a->variant);
        return (int)cudaErrorInvalidValue;
    }
    if ((unsigned)a->kv_dtype >= GS_KV_N_DTYPES || (a->kv_dtype == GS_KV_I8 && (!a->k_scale || !a->v_scale))) {
        fprintf(stderr, "gptscope: cuda_attention: KV element type %d unknown or without its scales\n", a->kv_dtype);
        return (int)cudaErrorInvalidValue;
    }
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    const bool naive = a->variant == GS_ATTN_NAIVE;
#define GS_KV_CASE(KT)                                                                                   \
    case KT:                                                                                             \
        return naive ? naive_attention<KT>(out, qkv, k_cache, v_cache, a, scratch, scratch_bytes, scale, stream) \
                     : fused_attention<KT>(out, qkv, k_cache, v_cache, a, scratch, scratch_bytes, scale, stream);
    switch (a->kv_dtype) {
        GS_KV_CASE(GS_KV_F32)
        GS_KV_CASE(GS_KV_F16)
        GS_KV_CASE(GS_KV_I8)
        GS_KV_CASE(GS_KV_FP8)
    }
#undef GS_KV_CASE
    return (int)cudaErrorInvalidValue;
}

extern "C" int cuda_attention_half_fits(const gs_attn_args *a, const void *k_cache, const void *v_cache)
{
    // Every row the tensor-core prefill's: none left to flash_decode_kernel,
    // which writes fp32 (the host's copy of the rows says so, or nothing does).
    return a->token_seq_host != NULL && cuda_attention_tensor_cores(a, k_cache, v_cache) &&
           (a->kv_dtype != GS_KV_I8 || (a->k_scale && a->v_scale)) && !hybrid_rows(a).decode;
}

extern "C" int cuda_attention_half(void *out_half, int out_bf16, const float *qkv, const void *k_cache,
                                   const void *v_cache, const gs_attn_args *a, void *scratch, size_t scratch_bytes,
                                   cudaStream_t stream)
{
    if (a->n_tokens <= 0)
        return 0;
    if (!cuda_attention_half_fits(a, k_cache, v_cache) || (uintptr_t)out_half % 4 != 0) {
        fprintf(stderr, "gptscope: cuda_attention_half: not a call the tensor-core prefill takes whole (see "
                        "cuda_attention_half_fits), or a misaligned output\n");
        return (int)cudaErrorInvalidValue;
    }
    const size_t need = fused_scratch_bytes(a);
    if (need > 0 && (scratch == NULL || scratch_bytes < need)) {
        fprintf(stderr, "gptscope: cuda_attention_half: scratch of %zu bytes, %zu needed\n", scratch_bytes, need);
        return (int)cudaErrorInvalidValue;
    }
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    uint16_t *oh = static_cast<uint16_t *>(out_half);
    const bool bf = out_bf16 != 0;
    switch (a->kv_dtype) {
    case GS_KV_F32:
        return tc_launch<GS_KV_F32>(NULL, oh, bf, qkv, k_cache, v_cache, a, scratch, scale, stream);
    case GS_KV_F16:
        return tc_launch<GS_KV_F16>(NULL, oh, bf, qkv, k_cache, v_cache, a, scratch, scale, stream);
    case GS_KV_I8:
        return tc_launch<GS_KV_I8>(NULL, oh, bf, qkv, k_cache, v_cache, a, scratch, scale, stream);
    default:
        return tc_launch<GS_KV_FP8>(NULL, oh, bf, qkv, k_cache, v_cache, a, scratch, scale, stream);
    }
}
