// gemv_quant.cu - products with quantized weight matrices (the formats of
// kernels/quant_layout.h): out = in . dequant(w)^T (+ bias), dequantized as
// they are read, never into a copy in device memory. The CPU twin is
// gs_dequantize_row (src/quant.c) followed by an fp32 product
// (tests/gpu/test_cuda_gemv_quant.c).
//
// ---- decode: gemvq_kernel<FMT, NB, VEC> ----
// The layout of gemv.cu's half-precision GEMV: a warp owns R = 4 rows of w
// (output columns) and its lanes walk k side by side, S warps of a block
// splitting k when m is small, partial sums reduced with the same
// reduce-scatter butterfly. What differs is the step:
//
// VEC: one 16-byte load per row per lane (ld.global.nc, no L1 allocation):
//   16 int8 weights or 32 int4 weights. Taken when every row starts 16-byte
//   aligned (k % 16 == 0 for int8, k % 32 == 0 for int4: GPT-2's 768, 1600,
//   3072, 6400 all are). A 32-weight int4 vector lies inside one group (the
//   groups are multiples of 32 and so is its start), so a lane loads one
//   {scale, zero} pair per vector and row.
// Scalar (any k, unaligned in): one weight per step, dequantized exactly as
//   the twin does it; for stories260K's small matrices and odd shapes.
//
// Unpacking (v1; int4 at n <= 4 uses v2's folded form below), without the integer-to-float conversion unit (a quarter of the
// FMA rate on sm_90, which would bind int4 before DRAM does): a byte b placed
// under the exponent of 2^23 (PRMT with 0x4B000000) is the float 2^23 + b, and
// one FADD of -(2^23 + c) leaves b - c exactly. int8: the word is xored with
// 0x80808080 (bytes q + 128), c = 128 gives q. int4: the nibbles are split
// into two words of bytes (w & 0x0F0F0F0F and (w >> 4) & 0x0F0F0F0F, even and
// odd inputs), c = 2^23 + zero gives q - zero, exact. So a weight costs a
// PRMT, an FADD and one FFMA per token row (plus 3 ops per 8 int4 weights).
// Scales are applied once, not per weight: the int8 row scale multiplies the
// row's total; the int4 group scale multiplies each vector's 32-weight
// partial sum (NB <= 4; for NB >= 8 the partials would double the
// accumulator registers, so each weight is scaled instead, one FMUL against
// the NB FFMAs).
//
// Bytes: at n = 1 the kernel reads k * m / 2 (int4) or k * m (int8) bytes of
// w, plus 4 bytes per group-row of scales (g128: 1/16 more, g32: 1/4 more).
//
// Versions (H100, tests/gpu/bench_gemv_quant, n = 1, GB/s of the block):
// v1  the layout above, x read from in through L1 (__ldg, float4 a lane):
//     lm-head int8 2301 (79% of copy), int4-g128 1071 (37%); attn-proj
//     1600 x 1600 int8 587, int4 251; per token only 1.16x / 1.11x fp16.
//     Reasons: (a) a lane's 16 bytes of w cover 16 / 32 inputs, so the lanes'
//     float4 reads of x are 64 / 128 bytes apart: each LDG.128 touches 16 / 32
//     L1 lines, and int4 needs 8 of them per vector (R rows share them);
//     (b) 3 ops a weight (PRMT, FADD, FFMA); (c) at k = 1600 the split rule
//     ("1.5 vectors a lane") left S = 1: m = 1600 ran on 50 blocks, 4800 on
//     150, under 132 SMs x 2.
// v2  (a) XS: the block copies its n input rows into shared memory once
//     (k = 1600: 6.4 KB a row), 16-byte chunks xor-swizzled so any 8
//     consecutive lanes hit 8 different bank groups (conflict-free LDS.128,
//     tests/test_gemvq_tricks.c checks the pattern); used while n rows fit
//     40 KB, else v1's path. The lane's first batch of w loads is issued
//     before the staging, so its L2 round trip hides under the DRAM one.
//     (b) int4 at n <= 4, folded: PRMT puts the nibble at bits 16..19 under
//     0x3F (F = 0.5 + q / 256 exactly) and the zero leaves the inner loop:
//     sum (q - z) x = 256 sum F x - (128 + z) sum x, sum x shared by the R
//     rows: 2 ops a weight + 1/R. fp32 error ~3e-6 of the norm (the exact
//     form: ~2e-7; the GPU test's bound 1e-4). int8 keeps PRMT + FADD: a byte
//     cannot sit under the mantissa's top without a shift, and at byte 1
//     (F = 1 + b / 2^15) the fold loses ~1e-4. (c) S doubles while the new
//     last slice still gets vectors ((2S - 1) * 32 < vectors a row) and the
//     grid is short of 16 warps an SM: k = 1600 int4 S = 2, int8 S = 4;
//     blocks of 4 warps when 8-warp blocks would not make 2 waves. (d) At
//     most 80 registers where that spills nothing (int8 n <= 2, int4 XS
//     n = 1): 3 blocks an SM, 24 warps, instead of 2.
//     Not taken (yet): half2 FMAs (fp16 rounding of x or of the products is
//     ~3e-4 of the norm, over the test's bound); tensor-core mma with x split
//     hi + lo (exact products, fp32 sums, 1 HMMA per 8 weights: the next step
//     if v2 stays issue-bound, but fragment layouts untested without a GPU).
//
// ---- prefill: gemmq_kernel ----
// For n > 16 the product is compute-bound, so tensor cores: 64 x 64 output
// tiles, 8 warps, k in steps of 32. Each step the block loads a 64 x 32 tile
// of in and dequantizes a 64 x 32 tile of w in fp32 (the twin's values), and
// splits both into bf16 hi + lo (x = hi + lo to ~16 bits, fp32's exponent
// range), stores them in shared memory and runs three WMMA products per
// 16 x 16 fragment, hi.hi + hi.lo + lo.hi, accumulating in fp32. The dropped
// lo.lo term and the split's residue are ~2^-17 of each product, so the result
// agrees with fp32 math to ~1e-5 relative while using bf16 tensor cores.
// The tile is staged through shared memory for the bias and epilogue.
// No double buffering or cp.async: correct and simple first.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <stdint.h>

#include "check_cuda.cuh"
#include "gemv_common.cuh"
#include "norm_stats.cuh"
#include "pdl.cuh"
#include "matmul_quant_cuda.h"
#include "quant_layout.h"

#define QG_THREADS 256
#define QG_WARPS (QG_THREADS / 32)
#define QG_R 4
#define QG_NMAX CUDA_QUANT_GEMV_MAX_ROWS

enum { FMT_I8 = 0, FMT_Q4 = 1 };

// ---- unpacking ----

#define MAGIC 8388608.0f  // 2^23: the float whose low mantissa byte is b is 2^23 + b

// byte i of word as the float 2^23 + byte
static __device__ __forceinline__ float byte_magic(uint32_t word, int i)
{
    return __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7650u | (unsigned)i));
}

static __device__ __forceinline__ float2 sz_unpack(uint32_t sz)  // {scale, zero}
{
    return make_float2(__half2float(__ushort_as_half((unsigned short)(sz & 0xffffu))),
                       __half2float(__ushort_as_half((unsigned short)(sz >> 16))));
}

// Weights per step of one lane in one row.
template <int FMT, bool VEC> struct qstep { static constexpr int E = VEC ? (FMT == FMT_I8 ? 16 : 32) : 1; };

// What one step loads for one row: 16 bytes (VEC) or one weight's byte, and
// the int4 group's {scale, zero} pair.
struct qraw {
    uint4 u;
    uint32_t sz;
};

// Step v of a row: VEC, the 16 bytes at v * 16; scalar, input v.
template <int FMT, bool VEC>
static __device__ __forceinline__ qraw load_q(const uint8_t *wrow, const uint32_t *szrow, int v, int lg)
{
    qraw r;
    r.sz = 0;
    if constexpr (VEC) {
        r.u = ld_w16(wrow + (size_t)v * 16);
        if constexpr (FMT == FMT_Q4)
            r.sz = __ldg(szrow + ((v * 32) >> lg));
    } else {
        if constexpr (FMT == FMT_I8) {
            r.u.x = __ldg(wrow + v);
        } else {
            r.u.x = (__ldg(wrow + v / 2) >> ((v & 1) * 4)) & 0xfu;
            r.sz = __ldg(szrow + (v >> lg));
        }
    }
    return r;
}

// Word wi of a vector as 8 (int4) or 4 (int8) floats, minus c = 2^23 + zero
// (int4) or 2^23 + 128 (int8): q - zero, or q.
template <int FMT> static __device__ __forceinline__ void unpack_word(uint32_t word, float c, float *f)
{
    if constexpr (FMT == FMT_I8) {
        const uint32_t u = word ^ 0x80808080u;
#pragma unroll
        for (int t = 0; t < 4; t++)
            f[t] = byte_magic(u, t) - c;
    } else {
        const uint32_t lo = word & 0x0F0F0F0Fu, hi = (word >> 4) & 0x0F0F0F0Fu;
#pragma unroll
        for (int t = 0; t < 4; t++) {
            f[2 * t] = byte_magic(lo, t) - c;
            f[2 * t + 1] = byte_magic(hi, t) - c;
        }
    }
}

// Word wi of an int4 vector as 8 floats 0.5 + q / 256 (the "folded" form):
// the nibble is put under the mantissa's top bits by one PRMT (byte t of the
// split word to byte 2, 0x3F above it: 0x3F0q0000 = 0.5 * (1 + q * 2^-7)),
// and the zero is not subtracted per weight. With F = 0.5 + q / 256,
// sum (q - zero) x = 256 sum F x - (128 + zero) sum x, the last sum shared
// by the R rows. The error (fp32, 32-weight partials) is ~3e-6 of the
// product's norm against ~2e-7 for the exact form (tests/test_gemvq_tricks.c).
static __device__ __forceinline__ void unpack_word_q4f(uint32_t word, float *f)
{
    const uint32_t lo = word & 0x0F0F0F0Fu, hi = (word >> 4) & 0x0F0F0F0Fu;
#pragma unroll
    for (int t = 0; t < 4; t++) {
        f[2 * t] = __uint_as_float(__byte_perm(lo, 0x3F000000u, 0x7054u | ((unsigned)t << 8)));
        f[2 * t + 1] = __uint_as_float(__byte_perm(hi, 0x3F000000u, 0x7054u | ((unsigned)t << 8)));
    }
}

// The staged copy of in (XS): row j of the block's inputs at xs + j * ld, in
// 16-byte chunks q stored at chunk q ^ ((q >> 3) & 7). A lane's vector covers
// 32 (int4) or 16 (int8) consecutive inputs, so the lanes of a quarter warp
// read chunks 128 or 64 bytes apart, all in the same banks unswizzled; the
// xor spreads any 8 consecutive lanes over the 8 chunk positions of a
// 128-byte bank row: conflict-free LDS.128. The swizzle stays inside aligned
// groups of 8 chunks, so a row padded to a multiple of 32 floats holds it.
static __device__ __forceinline__ int xs_chunk(int q) { return q ^ ((q >> 3) & 7); }

// Four inputs e..e+3 of row j: from the staged copy (XS) or from in (L1).
template <bool XS> static __device__ __forceinline__ float4 ld_x4(const float *p, int ld, int j, long e)
{
    if constexpr (XS)
        return *reinterpret_cast<const float4 *>(p + j * ld + xs_chunk((int)(e >> 2)) * 4);
    else
        return __ldg(reinterpret_cast<const float4 *>(p + (long)j * ld + e));
}

template <int V, bool XS> static __device__ __forceinline__ void load_xv(const float *p, int ld, int j, long e, float (&x)[V])
{
    if constexpr (V == 1) {
        x[0] = __ldg(p + (long)j * ld + e);
    } else {
#pragma unroll
        for (int i = 0; i < V / 4; i++) {
            const float4 a = ld_x4<XS>(p, ld, j, e + 4 * i);
            x[4 * i] = a.x, x[4 * i + 1] = a.y, x[4 * i + 2] = a.z, x[4 * i + 3] = a.w;
        }
    }
}

// One step of the R rows at input e into acc[j * R + r]. int8 sums q * x (the
// row scale comes at the end); int4 sums (q - zero) * x * scale. x: in
// (ld = k) or its staged copy (XS, ld = the padded row).
// A folded norm (nrm.kind) is applied here only when in is read directly; the
// staged copy (XS) was normalized as it was staged.
template <int FMT, int NB, bool VEC, bool XS>
static __device__ __forceinline__ void gemvq_step(float (&acc)[QG_R * NB], const qraw (&raw)[QG_R],
                                                  const float *__restrict__ x_src, int ld, long e, int n,
                                                  const gs_norm_fold &nrm, const gs_row_stats *st)
{
    constexpr int R = QG_R;
    if constexpr (!VEC) {
        float wf[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if constexpr (FMT == FMT_I8) {
                wf[r] = (float)(int8_t)(uint8_t)raw[r].u.x;
            } else {
                const float2 sz = sz_unpack(raw[r].sz);
                wf[r] = ((float)raw[r].u.x - sz.y) * sz.x;  // the twin's expression
            }
        }
#pragma unroll
        for (int j = 0; j < NB; j++)
            if (j < n) {
                float x = __ldg(x_src + (long)j * ld + e);
                if (nrm.kind != GS_NORM_FOLD_NONE)
                    x = gs_norm_apply(x, st[j], __ldg(nrm.w + e),
                                      nrm.kind == GS_NORM_FOLD_LAYER ? __ldg(nrm.b + e) : 0.0f, nrm.kind);
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[j * R + r] = fmaf(wf[r], x, acc[j * R + r]);
            }
        return;
    } else {
        constexpr int EW = FMT == FMT_I8 ? 4 : 8;  // weights per 32-bit word
        // int4 at NB <= 4: 32-weight partials in the folded form, scaled once.
        constexpr bool PARTIAL = FMT == FMT_Q4 && NB <= 4;
        float c[R], s[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if constexpr (FMT == FMT_I8) {
                c[r] = MAGIC + 128.0f;
                s[r] = 1.0f;
            } else {
                const float2 sz = sz_unpack(raw[r].sz);
                c[r] = PARTIAL ? -(128.0f + sz.y) : MAGIC + sz.y;  // zero is an integer in [0, 15]: exact
                s[r] = sz.x;
            }
        }
        float part[PARTIAL ? R * NB : 1], xsum[PARTIAL ? NB : 1];
        if constexpr (PARTIAL) {
#pragma unroll
            for (int i = 0; i < R * NB; i++)
                part[i] = 0.0f;
#pragma unroll
            for (int j = 0; j < NB; j++)
                xsum[j] = 0.0f;
        }
#pragma unroll
        for (int wi = 0; wi < 4; wi++) {
            float wf[R][EW];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const uint32_t word = wi == 0 ? raw[r].u.x : wi == 1 ? raw[r].u.y : wi == 2 ? raw[r].u.z : raw[r].u.w;
                if constexpr (PARTIAL) {
                    unpack_word_q4f(word, wf[r]);
                } else {
                    unpack_word<FMT>(word, c[r], wf[r]);
                    if constexpr (FMT == FMT_Q4) {
#pragma unroll
                        for (int t = 0; t < EW; t++)
                            wf[r][t] *= s[r];
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < NB; j++)
                if (j < n) {  // uniform over the grid
                    float x[EW];
                    load_xv<EW, XS>(x_src, ld, j, e + wi * EW, x);
                    if constexpr (!XS) {
                        if (nrm.kind != GS_NORM_FOLD_NONE) {
                            float g[EW], gb[EW];
                            load_xv<EW, false>(nrm.w, 0, 0, e + wi * EW, g);
                            if (nrm.kind == GS_NORM_FOLD_LAYER)
                                load_xv<EW, false>(nrm.b, 0, 0, e + wi * EW, gb);
#pragma unroll
                            for (int t = 0; t < EW; t++)
                                x[t] = gs_norm_apply(x[t], st[j], g[t],
                                                     nrm.kind == GS_NORM_FOLD_LAYER ? gb[t] : 0.0f, nrm.kind);
                        }
                    }
                    if constexpr (PARTIAL) {
#pragma unroll
                        for (int t = 0; t < EW; t++)
                            xsum[j] += x[t];
                    }
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int t = 0; t < EW; t++) {
                            if constexpr (PARTIAL)
                                part[j * R + r] = fmaf(wf[r][t], x[t], part[j * R + r]);
                            else
                                acc[j * R + r] = fmaf(wf[r][t], x[t], acc[j * R + r]);
                        }
                }
        }
        if constexpr (PARTIAL) {
            // sum (q - zero) x = 256 sum F x - (128 + zero) sum x, times the scale
#pragma unroll
            for (int j = 0; j < NB; j++)
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[j * R + r] = fmaf(s[r], fmaf(256.0f, part[j * R + r], c[r] * xsum[j]), acc[j * R + r]);
        }
    }
}

// out[j][row] from a row's total: the int8 row scale, the bias, the epilogue.
template <int FMT>
static __device__ __forceinline__ void gemvq_store(float *__restrict__ out, float total, const float *__restrict__ rscale,
                                                   const float *__restrict__ bias, long row, int j, int m, int epi)
{
    if constexpr (FMT == FMT_I8)
        total *= __ldg(rscale + row);
    store_out(out + (long)j * m + row, total + (bias ? __ldg(bias + row) : 0.0f), epi);
}

// At most 80 registers where that costs no spills (int8 at n <= 2, the staged
// int4 kernel at n = 1): 3 blocks of 8 warps an SM instead of 2.
template <int FMT, int NB, bool VEC, bool XS>
__global__ void __launch_bounds__(QG_THREADS, (FMT == FMT_I8 && NB <= 2) || (NB == 1 && XS) ? 3 : NB <= 4 ? 2 : 1)
    gemvq_kernel(float *__restrict__ out, const float *__restrict__ in, const uint8_t *__restrict__ w,
                 const float *__restrict__ rscale, const uint32_t *__restrict__ sz, const float *__restrict__ bias,
                 int n, int k, int m, int lg, long row_bytes, long ng, int S, int epi, gs_norm_fold nrm)
{
    constexpr int R = QG_R;
    constexpr int NV = R * NB;
    constexpr int U = NB <= 4 ? 2 : 1;
    constexpr int E = qstep<FMT, VEC>::E;
    __shared__ float part[QG_WARPS][NV];
    extern __shared__ float4 xs_dyn[];  // XS: the staged inputs, n rows of ld floats
    __shared__ gs_row_stats stats[NB];  // a folded norm's statistics, one per token row

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int s = warp % S;
    const int G = (int)(blockDim.x / 32) / S;  // row groups per block (4 or 8 warps a block)
    const long row0 = ((long)blockIdx.x * G + warp / S) * R;

    // Rows past m read row m - 1 and are not stored (see gemv.cu).
    const uint8_t *wr[R];
    const uint32_t *szr[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const long row = min(row0 + r, (long)m - 1);
        wr[r] = w + (size_t)row * row_bytes;
        szr[r] = sz + (size_t)row * ng;  // unused for int8
    }

    float acc[NV];
#pragma unroll
    for (int i = 0; i < NV; i++)
        acc[i] = 0.0f;

    const int nsteps = k / E;
    const int stride = 32 * S;
    int v = s * 32 + lane;

    // The first batch of w is requested before the inputs are staged, so the
    // staging's L2 round trip hides under the DRAM one; and, under
    // programmatic launch (pdl.cuh), before the kernel before has finished.
    gs_pdl_trigger();
    qraw raw[U][R];
#pragma unroll
    for (int u = 0; u < U; u++)
        if (v + u * stride < nsteps)
#pragma unroll
            for (int r = 0; r < R; r++)
                raw[u][r] = load_q<FMT, VEC>(wr[r], szr[r], v + u * stride, lg);

    gs_pdl_wait();  // in and out are the earlier kernels' from here on

    // A folded norm: each block takes the n rows' statistics itself (gemv.cu).
    if (nrm.kind != GS_NORM_FOLD_NONE) {
        __shared__ float red[32];
        gs_rows_stats(in, n < NB ? n : NB, k, nrm.kind, nrm.eps, stats, red);
    }

    const float *x_src = in;
    int ld = k;
    if constexpr (XS) {
        // n rows of k inputs as 16-byte chunks (k % 16 == 0, in 16-byte aligned),
        // rows ld = k rounded up to 32 floats apart.
        float *xs = reinterpret_cast<float *>(xs_dyn);
        ld = (k + 31) & ~31;
        const int kq = k >> 2;
        for (int i = threadIdx.x; i < n * kq; i += blockDim.x) {
            const int j = i / kq, q = i - j * kq;
            float4 a = __ldg(reinterpret_cast<const float4 *>(in) + (long)j * kq + q);
            if (nrm.kind != GS_NORM_FOLD_NONE) {
                const float4 g = __ldg(reinterpret_cast<const float4 *>(nrm.w) + q);
                const float4 b = nrm.kind == GS_NORM_FOLD_LAYER ? __ldg(reinterpret_cast<const float4 *>(nrm.b) + q)
                                                                : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                a = gs_norm_apply4(a, stats[j], g, b, nrm.kind);
            }
            *reinterpret_cast<float4 *>(xs + j * ld + xs_chunk(q) * 4) = a;
        }
        __syncthreads();
        x_src = xs;
    }

    while (v < nsteps) {
#pragma unroll
        for (int u = 0; u < U; u++)
            if (v + u * stride < nsteps)
                gemvq_step<FMT, NB, VEC, XS>(acc, raw[u], x_src, ld, (long)(v + u * stride) * E, n, nrm, stats);
        v += U * stride;
        if (v < nsteps) {
#pragma unroll
            for (int u = 0; u < U; u++)
                if (v + u * stride < nsteps)
#pragma unroll
                    for (int r = 0; r < R; r++)
                        raw[u][r] = load_q<FMT, VEC>(wr[r], szr[r], v + u * stride, lg);
        }
    }

    gemv_reduce_store<R>(acc, part, lane, warp, S, G, row0, n, m, [&](int j, long row, float total) {
        gemvq_store<FMT>(out, total, rscale, bias, row, j, m, epi);
    });
}

// ---- prefill: the tensor-core tile kernel ----

#define GQ_BM 64  // token rows per tile
#define GQ_BN 64  // outputs per tile
#define GQ_BK 32  // inputs per step
#define GQ_LD (GQ_BK + 8)   // bf16 row stride in shared memory (a multiple of 8, 80 bytes)
#define GQ_LDC (GQ_BN + 4)  // fp32 row stride of the staged result

static __device__ __forceinline__ void split_bf16(float x, __nv_bfloat16 &hi, __nv_bfloat16 &lo)
{
    hi = __float2bfloat16_rn(x);
    lo = __float2bfloat16_rn(x - __bfloat162float(hi));
}

// Weight (row, c) of the block, exactly as the twin computes it; 0 outside.
template <int FMT>
static __device__ __forceinline__ float deq1(const uint8_t *__restrict__ w, const float *__restrict__ rscale,
                                             const uint32_t *__restrict__ sz, long row, int c, int k, int m, int lg,
                                             long row_bytes, long ng)
{
    if (row >= m || c >= k)
        return 0.0f;
    if constexpr (FMT == FMT_I8) {
        return (float)(int8_t)__ldg(w + (size_t)row * k + c) * __ldg(rscale + row);
    } else {
        const unsigned q = (__ldg(w + (size_t)row * row_bytes + c / 2) >> ((c & 1) * 4)) & 0xfu;
        const float2 p = sz_unpack(__ldg(sz + (size_t)row * ng + (c >> lg)));
        return ((float)q - p.y) * p.x;
    }
}

template <int FMT>
__global__ void __launch_bounds__(256)
    gemmq_kernel(float *__restrict__ out, const float *__restrict__ in, const uint8_t *__restrict__ w,
                 const float *__restrict__ rscale, const uint32_t *__restrict__ sz, const float *__restrict__ bias,
                 int n, int k, int m, int lg, long row_bytes, long ng, int fast, int epi)
{
    using namespace nvcuda;
    __shared__ __align__(128) __nv_bfloat16 a_hi[GQ_BM * GQ_LD], a_lo[GQ_BM * GQ_LD];
    __shared__ __align__(128) __nv_bfloat16 b_hi[GQ_BN * GQ_LD], b_lo[GQ_BN * GQ_LD];
    __shared__ __align__(128) float cs[GQ_BM * GQ_LDC];

    const int t = threadIdx.x, warp = t / 32;
    const int wm = warp / 4, wn = warp % 4;  // warp tile: 32 token rows x 16 outputs
    const long i0 = (long)blockIdx.y * GQ_BM, j0 = (long)blockIdx.x * GQ_BN;
    // Each thread stages 8 consecutive inputs of one row of each tile.
    const int lr = t / 4, lc = (t % 4) * 8;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);

    for (int k0 = 0; k0 < k; k0 += GQ_BK) {
        const int c0 = k0 + lc;
        // in: 8 floats of row i0 + lr
        float x[8];
        const long i = i0 + lr;
        if (fast && i < n && c0 + 8 <= k) {
            const float4 *p = reinterpret_cast<const float4 *>(in + i * k + c0);
            const float4 a = __ldg(p), b = __ldg(p + 1);
            x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                x[e] = i < n && c0 + e < k ? __ldg(in + i * k + c0 + e) : 0.0f;
        }
        // w: 8 weights of output row j0 + lr
        float wv[8];
        const long row = j0 + lr;
        if (fast && row < m && c0 + 8 <= k) {
            if constexpr (FMT == FMT_I8) {
                const uint2 q = __ldg(reinterpret_cast<const uint2 *>(w + (size_t)row * k + c0));
                const float s = __ldg(rscale + row);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    wv[e] = (float)(int8_t)((e < 4 ? q.x : q.y) >> ((e % 4) * 8)) * s;
            } else {
                const uint32_t q = __ldg(reinterpret_cast<const uint32_t *>(w + (size_t)row * row_bytes + c0 / 2));
                const float2 p = sz_unpack(__ldg(sz + (size_t)row * ng + (c0 >> lg)));
#pragma unroll
                for (int e = 0; e < 8; e++)
                    wv[e] = ((float)((q >> (4 * e)) & 0xfu) - p.y) * p.x;
            }
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                wv[e] = deq1<FMT>(w, rscale, sz, row, c0 + e, k, m, lg, row_bytes, ng);
        }
#pragma unroll
        for (int e = 0; e < 8; e++) {
            split_bf16(x[e], a_hi[lr * GQ_LD + lc + e], a_lo[lr * GQ_LD + lc + e]);
            split_bf16(wv[e], b_hi[lr * GQ_LD + lc + e], b_lo[lr * GQ_LD + lc + e]);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GQ_BK; kk += 16) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bh, bl;
            wmma::load_matrix_sync(bh, b_hi + (wn * 16) * GQ_LD + kk, GQ_LD);
            wmma::load_matrix_sync(bl, b_lo + (wn * 16) * GQ_LD + kk, GQ_LD);
#pragma unroll
            for (int f = 0; f < 2; f++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ah, al;
                wmma::load_matrix_sync(ah, a_hi + (wm * 32 + f * 16) * GQ_LD + kk, GQ_LD);
                wmma::load_matrix_sync(al, a_lo + (wm * 32 + f * 16) * GQ_LD + kk, GQ_LD);
                wmma::mma_sync(acc[f], al, bh, acc[f]);  // small terms first
                wmma::mma_sync(acc[f], ah, bl, acc[f]);
                wmma::mma_sync(acc[f], ah, bh, acc[f]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int f = 0; f < 2; f++)
        wmma::store_matrix_sync(cs + (wm * 32 + f * 16) * GQ_LDC + wn * 16, acc[f], GQ_LDC, wmma::mem_row_major);
    __syncthreads();
    for (int q = t; q < GQ_BM * GQ_BN; q += 256) {
        const int ii = q / GQ_BN, jj = q % GQ_BN;
        const long i = i0 + ii, j = j0 + jj;
        if (i < n && j < m)
            store_out(out + i * m + j, cs[ii * GQ_LDC + jj] + (bias ? __ldg(bias + j) : 0.0f), epi);
    }
}

// ---- launchers ----

// Where the block's sections are (kernels/quant_layout.h), found on the host.
struct qlayout {
    const uint8_t *w;
    const float *rscale;   // int8: the row scales
    const uint32_t *sz;    // int4: {scale, zero} fp16 pairs, ng per row
    long row_bytes, ng;
    int lg;                // log2 of the group (int4)
};

static qlayout layout_of(const void *w, int group, int lg, int k, int m)
{
    qlayout L;
    L.w = static_cast<const uint8_t *>(w);
    L.lg = lg;
    if (group) {
        L.rscale = nullptr;
        L.sz = reinterpret_cast<const uint32_t *>(L.w + gs_q4_sz_offset(m, k));
        L.row_bytes = (long)gs_q4_row_bytes(k);
        L.ng = gs_q4_groups(k, group);
    } else {
        L.rscale = reinterpret_cast<const float *>(L.w + gs_q8_scale_offset(m, k));
        L.sz = nullptr;
        L.row_bytes = k;
        L.ng = 0;
    }
    return L;
}

static int group_log2(int group, int *lg)
{
    switch (group) {
    case 0: *lg = 0; return 0;
    case 32: *lg = 5; return 0;
    case 64: *lg = 6; return 0;
    case 128: *lg = 7; return 0;
    default: return (int)cudaErrorInvalidValue;
    }
}

// Inputs staged in shared memory (XS) up to this many bytes a block: with the
// static 2 KB of partials under the 48 KB a block gets without an opt-in.
// k = 1600: n <= 6; k = 6400: n = 1; k = 768: n <= 13.
#define QG_XS_MAX (40 * 1024)

template <int FMT, int NB>
static int gemvq_launch_nb(float *out, const float *in, const qlayout &L, const float *bias, int n, int k, int m,
                           bool vec, int sms, int epi, gs_norm_fold nrm, cudaStream_t stream)
{
    // Split k among S warps while the grid is short of ~16 warps per SM and
    // the last slice still gets vectors: slices take 32 vectors in turn, so
    // at k = 1600 (50 int4 or 100 int8 vectors a row) S = 2 or 4 still keeps
    // lanes busy, where "1.5 vectors per lane" (gemv.cu's rule) left S = 1 and
    // m = 1600 on 50 blocks of 132 SMs.
    const long groups = gs_ceil_div(m, QG_R);
    const long steps = vec ? k / qstep<FMT, true>::E : k;
    int S = 1;
    while (S < QG_WARPS && groups * S < 16L * sms && (2L * S - 1) * 32 < steps)
        S *= 2;
    // Blocks of 4 warps when 8 would not make two waves over the SMs.
    int W = QG_WARPS;
    if (gs_ceil_div(m, QG_R * (W / S)) < 2L * sms && S <= QG_WARPS / 2)
        W = QG_WARPS / 2;
    const int grid = gs_ceil_div(m, QG_R * (W / S));
    const size_t xs_bytes = (size_t)n * (size_t)((k + 31) & ~31) * sizeof(float);
    if (vec && xs_bytes <= QG_XS_MAX)
        CUDA_TRY(gs_launch_pdl(gemvq_kernel<FMT, NB, true, true>, grid, W * 32, xs_bytes, stream, out, in, L.w, L.rscale,
                               L.sz, bias, n, k, m, L.lg, L.row_bytes, L.ng, S, epi, nrm));
    else if (vec)
        CUDA_TRY(gs_launch_pdl(gemvq_kernel<FMT, NB, true, false>, grid, W * 32, 0, stream, out, in, L.w, L.rscale, L.sz,
                               bias, n, k, m, L.lg, L.row_bytes, L.ng, S, epi, nrm));
    else
        CUDA_TRY(gs_launch_pdl(gemvq_kernel<FMT, NB, false, false>, grid, W * 32, 0, stream, out, in, L.w, L.rscale,
                               L.sz, bias, n, k, m, L.lg, L.row_bytes, L.ng, S, epi, nrm));
    CUDA_LAUNCHED();
    return 0;
}

template <int FMT>
static int gemvq_launch(float *out, const float *in, const qlayout &L, const float *bias, int n, int k, int m, bool vec,
                        int sms, int epi, gs_norm_fold nrm, cudaStream_t stream)
{
    if (n <= 1)
        return gemvq_launch_nb<FMT, 1>(out, in, L, bias, n, k, m, vec, sms, epi, nrm, stream);
    if (n <= 2)
        return gemvq_launch_nb<FMT, 2>(out, in, L, bias, n, k, m, vec, sms, epi, nrm, stream);
    if (n <= 4)
        return gemvq_launch_nb<FMT, 4>(out, in, L, bias, n, k, m, vec, sms, epi, nrm, stream);
    if (n <= 8)
        return gemvq_launch_nb<FMT, 8>(out, in, L, bias, n, k, m, vec, sms, epi, nrm, stream);
    return gemvq_launch_nb<FMT, 16>(out, in, L, bias, n, k, m, vec, sms, epi, nrm, stream);
}

extern "C" int cuda_gemv_quant(float *out, const float *in, const void *w, int group, const float *bias, int n, int k,
                               int m, int epilogue, gs_norm_fold norm, cudaStream_t stream)
{
    int lg = 0;
    const int bad = group_log2(group, &lg);
    if (bad)
        return bad;
    if (n <= 0 || m <= 0 || k <= 0)
        return 0;
    int sms = 0;
    CUDA_TRY(gs_cuda_sm_count(&sms));
    const qlayout L = layout_of(w, group, lg, k, m);
    // Every row of w and in 16-byte aligned (the block itself is 256-aligned).
    // A folded norm's gain and bias are read as the inputs are.
    const bool vec = k % (group ? 32 : 16) == 0 && (uintptr_t)w % 16 == 0 && (uintptr_t)in % 16 == 0 &&
                     (norm.kind == GS_NORM_FOLD_NONE || (uintptr_t)norm.w % 16 == 0) &&
                     (norm.kind != GS_NORM_FOLD_LAYER || (uintptr_t)norm.b % 16 == 0);
    for (int i0 = 0; i0 < n; i0 += QG_NMAX) {
        const int nb = n - i0 < QG_NMAX ? n - i0 : QG_NMAX;
        const float *in_i = in + (size_t)i0 * k;
        float *out_i = out + (size_t)i0 * m;
        const int rc = group ? gemvq_launch<FMT_Q4>(out_i, in_i, L, bias, nb, k, m, vec, sms, epilogue, norm, stream)
                             : gemvq_launch<FMT_I8>(out_i, in_i, L, bias, nb, k, m, vec, sms, epilogue, norm, stream);
        if (rc)
            return rc;
    }
    return 0;
}

extern "C" int cuda_gemm_quant(float *out, const float *in, const void *w, int group, const float *bias, int n, int k,
                               int m, int epilogue, cudaStream_t stream)
{
    int lg = 0;
    const int bad = group_log2(group, &lg);
    if (bad)
        return bad;
    if (n <= 0 || m <= 0 || k <= 0)
        return 0;
    const qlayout L = layout_of(w, group, lg, k, m);
    // Vector loads: in's rows 16-byte aligned (float4), w's 8-input pieces
    // 8-byte (int8) or 4-byte (int4) aligned.
    const int fast = k % 8 == 0 && (uintptr_t)in % 16 == 0 && (uintptr_t)w % 16 == 0;
    const dim3 grid((unsigned)gs_ceil_div(m, GQ_BN), (unsigned)gs_ceil_div(n, GQ_BM));
    if (group)
        gemmq_kernel<FMT_Q4><<<grid, 256, 0, stream>>>(out, in, L.w, L.rscale, L.sz, bias, n, k, m, L.lg, L.row_bytes, L.ng, fast,
                                                             epilogue);
    else
        gemmq_kernel<FMT_I8><<<grid, 256, 0, stream>>>(out, in, L.w, L.rscale, L.sz, bias, n, k, m, L.lg, L.row_bytes, L.ng, fast,
                                                             epilogue);
    CUDA_LAUNCHED();
    return 0;
}

extern "C" int cuda_matmul_quant(float *out, const float *in, const void *w, int group, const float *bias, int n, int k,
                                 int m, int epilogue, cudaStream_t stream)
{
    if (n <= QG_NMAX) {
        const gs_norm_fold none = {GS_NORM_FOLD_NONE, NULL, NULL, 0.0f};
        return cuda_gemv_quant(out, in, w, group, bias, n, k, m, epilogue, none, stream);
    }
    return cuda_gemm_quant(out, in, w, group, bias, n, k, m, epilogue, stream);
}
