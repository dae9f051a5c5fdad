/* test_cuda_norm_fold.c - norms folded into the decode GEMVs (norm_fold.h):
 * cuda_gemv_half_ex and cuda_gemv_quant with a LayerNorm or RMSNorm against
 * (a) the norm kernel (cuda_layernorm / cuda_rmsnorm) followed by the same
 * product without a norm: with half weights the two must agree bit for bit,
 * since the folded statistics repeat norm.cu's order of operations; the
 * quantized GEMV within its own bound, 1e-4 (its 4-warp blocks sum the
 * statistics in another order, and at n <= 4 int4 sums in the folded form,
 * whose ~1e-5 error depends on the inputs' low bits); and (b) a double-precision
 * host twin (norm in double, then the product over the stored weights), by
 * ||gpu - ref|| / ||ref|| < 1e-4.
 *
 * Rows are raw residual rows: a per-row offset of up to +-40 plus spread, so
 * the shifted statistics matter. Weights fp16, bf16, int8 and int4 g32 / g128;
 * n in {1, 3, 5, 16}; shapes (k inputs, m outputs) 768x2304, 1600x1600,
 * 64x172 and 13x7 (odd k: the scalar paths); every epilogue in turn. Outputs
 * are poisoned (0xFF) before each call (accumulate starts from random values)
 * and must come back finite with their guard zones untouched.
 * Last, the KV store folded into the qkv GEMV (cuda_gemv_half_kv) against the
 * product then cuda_kv_store, bit for bit in the output and both caches.
 *
 * Each run draws a new seed and prints it; GS_TEST_SEED=<n> replays a run.
 * Without a CUDA device it prints "1..0 # SKIP no CUDA device" and exits 0. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "cuda/gemv_cuda.h"
#include "cuda/matmul_quant_cuda.h"
#include "cuda/ops_cuda.h"
#include "cuda/attention_cuda.h"
#include "kv_format.h"
#include "dtype.h"
#include "quant.h"
#include "../tap.h" /* tests/tap.h: relative, as tests/ is not on the include path */

#define TOL 1e-4
#define EPS 1e-5f

static const char *epi_name[] = {"none", "gelu", "accumulate"};

/* One product with weights already on the device (d_w: fp16/bf16 words or a
 * packed block) and their stored values deq[m][k] on the host. */
static int product(gs_dtype dt, float *out, const float *in, const void *d_w, const float *bias, int n, int k, int m,
                   int epi, gs_norm_fold nf)
{
    if (gs_dtype_is_quant(dt))
        return cuda_gemv_quant(out, in, d_w, gs_dtype_group(dt), bias, n, k, m, epi, nf, 0);
    return cuda_gemv_half_ex(out, in, d_w, dt == GS_DTYPE_BF16, bias, n, k, m, epi, nf, 0);
}

static void run_case(gs_dtype dt, const void *d_w, const float *deq, int k, int m, int n, int rms, int epi)
{
    float *in = xmalloc((size_t)n * k * sizeof(float)), *g = xmalloc((size_t)k * sizeof(float));
    float *b = xmalloc((size_t)k * sizeof(float)), *bias = xmalloc((size_t)m * sizeof(float));
    float *out0 = xmalloc((size_t)n * m * sizeof(float));
    for (int i = 0; i < n; i++) {
        const float off = frand() * 40.0f, spread = 0.1f + 3.0f * (frand() + 1.0f);
        for (int c = 0; c < k; c++)
            in[(size_t)i * k + c] = off + spread * frand();
    }
    for (int c = 0; c < k; c++) {
        g[c] = 1.0f + 0.5f * frand();
        b[c] = 0.2f * frand();
    }
    for (int j = 0; j < m; j++)
        bias[j] = frand();
    for (size_t i = 0; i < (size_t)n * m; i++)
        out0[i] = frand();

    dbuf d_in = dbuf_from(in, (size_t)n * k, 0), d_g = dbuf_from(g, (size_t)k, 0), d_b = dbuf_from(b, (size_t)k, 0);
    dbuf d_bias = dbuf_from(bias, (size_t)m, 0), d_xn = dbuf_new((size_t)n * k, 0);
    dbuf d_fold = dbuf_new((size_t)n * m, 0), d_ref = dbuf_new((size_t)n * m, 0);
    if (epi == GS_GEMV_EPI_ACCUMULATE) {
        dbuf_put(&d_fold, out0);
        dbuf_put(&d_ref, out0);
    } else {
        dbuf_poison(&d_fold);
        dbuf_poison(&d_ref);
    }
    const gs_norm_fold nf = {rms ? GS_NORM_FOLD_RMS : GS_NORM_FOLD_LAYER, d_g.p, rms ? NULL : d_b.p, EPS};
    const gs_norm_fold none = {GS_NORM_FOLD_NONE, NULL, NULL, 0.0f};
    int rc = product(dt, d_fold.p, d_in.p, d_w, d_bias.p, n, k, m, epi, nf);
    if (!rc)
        rc = rms ? cuda_rmsnorm(d_xn.p, d_in.p, d_g.p, n, k, EPS, 0)
                 : cuda_layernorm(d_xn.p, d_in.p, d_g.p, d_b.p, n, k, EPS, 0);
    if (!rc)
        rc = product(dt, d_ref.p, d_xn.p, d_w, d_bias.p, n, k, m, epi, none);
    char why[160] = "";
    const int ran = ran_ok(rc, why, sizeof why);

    float *got = xmalloc((size_t)n * m * sizeof(float)), *two = xmalloc((size_t)n * m * sizeof(float));
    int finite = 0, guards = 0, same = 0;
    double err2 = 0.0, ref2 = 0.0;
    if (ran) {
        dbuf_get(&d_fold, got);
        dbuf_get(&d_ref, two);
        finite = all_finite(got, (size_t)n * m);
        guards = dbuf_guards_ok(&d_fold);
        if (gs_dtype_is_quant(dt)) { /* see the head of the file */
            double d2 = 0.0, r2 = 0.0;
            for (size_t q = 0; q < (size_t)n * m; q++) {
                d2 += ((double)got[q] - two[q]) * ((double)got[q] - two[q]);
                r2 += (double)two[q] * two[q];
            }
            same = r2 > 0 ? sqrt(d2 / r2) < TOL : d2 == 0.0;
        } else {
            same = memcmp(got, two, (size_t)n * m * sizeof(float)) == 0;
        }
        double *xn = xmalloc((size_t)k * sizeof(double));
        for (int i = 0; i < n; i++) {
            const float *x = in + (size_t)i * k;
            double mean = 0.0, var = 0.0;
            for (int c = 0; c < k; c++)
                mean += x[c];
            mean /= k;
            for (int c = 0; c < k; c++)
                var += rms ? (double)x[c] * x[c] : (x[c] - mean) * (x[c] - mean);
            var /= k;
            const double r = 1.0 / sqrt(var + (double)EPS);
            for (int c = 0; c < k; c++)
                xn[c] = rms ? g[c] * (x[c] * r) : (x[c] - mean) * r * g[c] + b[c];
            for (int j = 0; j < m; j++) {
                double v = bias[j];
                for (int c = 0; c < k; c++)
                    v += xn[c] * deq[(size_t)j * k + c];
                if (epi == GS_GEMV_EPI_GELU)
                    v = gelu_ref(v);
                const double prod = v;
                if (epi == GS_GEMV_EPI_ACCUMULATE)
                    v += out0[(size_t)i * m + j];
                const double d = got[(size_t)i * m + j] - v;
                err2 += d * d;
                ref2 += prod * prod;
            }
        }
        free(xn);
    }
    const double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    tap_ok(ran && finite && guards && same && rel < TOL, "%s %s k=%d m=%d n=%d epi=%s: %s, rel err %.2e%s%s%s",
           gs_dtype_name(dt), rms ? "rmsnorm" : "layernorm", k, m, n, epi_name[epi],
           same ? "matches norm + product" : "DIFFERS from norm + product", rel, ran ? "" : why,
           ran && !finite ? " (unwritten / non-finite outputs)" : "", ran && !guards ? " (guard zone overwritten)" : "");
    dbuf_free(&d_in), dbuf_free(&d_g), dbuf_free(&d_b), dbuf_free(&d_bias), dbuf_free(&d_xn);
    dbuf_free(&d_fold), dbuf_free(&d_ref);
    free(in), free(g), free(b), free(bias), free(out0), free(got), free(two);
}

static void test_shape(gs_dtype dt, int k, int m, int *combo)
{
    static const int ns[] = {1, 3, 5, 16};
    float *w = xmalloc((size_t)m * k * sizeof(float));
    for (size_t i = 0; i < (size_t)m * k; i++)
        w[i] = frand() * 0.1f;
    void *d_w = NULL;
    if (gs_dtype_is_quant(dt)) {
        const size_t bytes = gs_weight_bytes(dt, m, k);
        void *blk = xmalloc(bytes);
        gs_quantize_matrix(dt, w, m, k, blk);
        for (int j = 0; j < m; j++)
            gs_dequantize_row(dt, blk, m, k, j, w + (size_t)j * k);
        cuda_or_bail(cudaMalloc(&d_w, bytes), "cudaMalloc");
        cuda_or_bail(cudaMemcpy(d_w, blk, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
        free(blk);
    } else {
        uint16_t *h = xmalloc((size_t)m * k * 2);
        for (size_t i = 0; i < (size_t)m * k; i++) {
            h[i] = dt == GS_DTYPE_BF16 ? gs_f32_to_bf16(w[i]) : gs_f32_to_f16(w[i]);
            w[i] = dt == GS_DTYPE_BF16 ? gs_bf16_to_f32(h[i]) : gs_f16_to_f32(h[i]);
        }
        cuda_or_bail(cudaMalloc(&d_w, (size_t)m * k * 2), "cudaMalloc");
        cuda_or_bail(cudaMemcpy(d_w, h, (size_t)m * k * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
        free(h);
    }
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const int c = (*combo)++;
        run_case(dt, d_w, w, k, m, ns[t], c % 2, (c / 2) % 3);
    }
    cudaFree(d_w);
    free(w);
}

/* cuda_gemv_half_kv (the KV store folded into the qkv GEMV) against
 * cuda_gemv_half_ex then cuda_kv_store: the same bits in out and in both
 * caches (slots scattered, one -1 left unstored), with and without a norm. */
static void test_kv_fold(int k, int q_dim, int kv_dim, int n, int with_norm, int is_bf16)
{
    const int m = q_dim + 2 * kv_dim, slots = 64;
    float *in = xmalloc((size_t)n * k * sizeof(float)), *g = xmalloc((size_t)k * sizeof(float));
    float *b = xmalloc((size_t)k * sizeof(float)), *bias = xmalloc((size_t)m * sizeof(float));
    uint16_t *wh = xmalloc((size_t)m * k * 2);
    int *slot = xmalloc((size_t)n * sizeof(int));
    for (size_t i = 0; i < (size_t)n * k; i++)
        in[i] = 2.0f + frand();
    for (int c = 0; c < k; c++) {
        g[c] = 1.0f + 0.5f * frand();
        b[c] = 0.2f * frand();
    }
    for (int j = 0; j < m; j++)
        bias[j] = frand();
    for (size_t i = 0; i < (size_t)m * k; i++)
        wh[i] = is_bf16 ? gs_f32_to_bf16(frand() * 0.1f) : gs_f32_to_f16(frand() * 0.1f);
    for (int i = 0; i < n; i++)
        slot[i] = i == 1 ? -1 : (i * 7 + 3) % slots; /* distinct for n <= 16 */
    dbuf d_in = dbuf_from(in, (size_t)n * k, 0), d_g = dbuf_from(g, (size_t)k, 0), d_b = dbuf_from(b, (size_t)k, 0);
    dbuf d_bias = dbuf_from(bias, (size_t)m, 0), d_out = dbuf_new((size_t)n * m, 0), d_ref = dbuf_new((size_t)n * m, 0);
    dbuf kc = dbuf_new((size_t)slots * kv_dim, 0), vc = dbuf_new((size_t)slots * kv_dim, 0);
    dbuf kr = dbuf_new((size_t)slots * kv_dim, 0), vr = dbuf_new((size_t)slots * kv_dim, 0);
    dbuf_poison(&d_out), dbuf_poison(&d_ref), dbuf_poison(&kc), dbuf_poison(&vc), dbuf_poison(&kr), dbuf_poison(&vr);
    void *d_w = NULL;
    int *d_slot = NULL;
    cuda_or_bail(cudaMalloc(&d_w, (size_t)m * k * 2), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d_slot, (size_t)n * sizeof(int)), "cudaMalloc");
    cuda_or_bail(cudaMemcpy(d_w, wh, (size_t)m * k * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d_slot, slot, (size_t)n * sizeof(int), cudaMemcpyHostToDevice), "cudaMemcpy");
    const gs_norm_fold nf = {with_norm ? GS_NORM_FOLD_LAYER : GS_NORM_FOLD_NONE, d_g.p, d_b.p, EPS};
    const gs_gemv_kv kv = {kc.p, vc.p, d_slot, q_dim, kv_dim};
    int rc = cuda_gemv_half_kv(d_out.p, d_in.p, d_w, is_bf16, d_bias.p, n, k, m, nf, kv, 0);
    if (!rc)
        rc = cuda_gemv_half_ex(d_ref.p, d_in.p, d_w, is_bf16, d_bias.p, n, k, m, GS_GEMV_EPI_NONE, nf, 0);
    if (!rc)
        rc = cuda_kv_store(kr.p, vr.p, NULL, NULL, GS_KV_F32, d_ref.p, d_slot, n, m, q_dim, kv_dim, kv_dim, 0);
    char why[160] = "";
    const int ran = ran_ok(rc, why, sizeof why);
    int same = 0, guards = 0;
    if (ran) {
        const size_t no = (size_t)n * m, nc = (size_t)slots * kv_dim;
        float *a = xmalloc((no > nc ? no : nc) * sizeof(float)), *r = xmalloc((no > nc ? no : nc) * sizeof(float));
        dbuf_get(&d_out, a), dbuf_get(&d_ref, r);
        same = memcmp(a, r, no * sizeof(float)) == 0;
        dbuf_get(&kc, a), dbuf_get(&kr, r);
        same &= memcmp(a, r, nc * sizeof(float)) == 0; /* unstored slots stay poisoned on both sides */
        dbuf_get(&vc, a), dbuf_get(&vr, r);
        same &= memcmp(a, r, nc * sizeof(float)) == 0;
        guards = dbuf_guards_ok(&d_out) && dbuf_guards_ok(&kc) && dbuf_guards_ok(&vc);
        free(a), free(r);
    }
    tap_ok(ran && same && guards, "gemv with the KV store folded in, %s k=%d q=%d kv=%d n=%d%s: out and caches equal product + kv_store%s%s",
           is_bf16 ? "bf16" : "fp16", k, q_dim, kv_dim, n, with_norm ? " (layernorm folded)" : "", ran ? "" : why,
           ran && !guards ? " (guard zone overwritten)" : "");
    cudaFree(d_w), cudaFree(d_slot);
    dbuf_free(&d_in), dbuf_free(&d_g), dbuf_free(&d_b), dbuf_free(&d_bias), dbuf_free(&d_out), dbuf_free(&d_ref);
    dbuf_free(&kc), dbuf_free(&vc), dbuf_free(&kr), dbuf_free(&vr);
    free(in), free(g), free(b), free(bias), free(wh), free(slot);
}

int main(int argc, char **argv)
{
    (void)argv;
    if (!gpu_test_device_or_skip())
        return 0;
    /* This file checks the fp32-input GEMV (gemv.cu) at every n: keep 5-16
     * rows off the tensor-core GEMV, which test_cuda_gemv_mma checks. */
    setenv("GS_GEMV_MMA", "0", 1);
    const uint64_t seed = rng_seed_from_env();
    tap_diag("seed %llu (replay with GS_TEST_SEED=%llu)", (unsigned long long)seed, (unsigned long long)seed);
    const int small = argc > 1; /* --small: the racecheck run */
    static const int km[][2] = {{768, 2304}, {1600, 1600}, {64, 172}, {13, 7}};
    static const gs_dtype dts[] = {GS_DTYPE_F16, GS_DTYPE_BF16, GS_DTYPE_I8, GS_DTYPE_Q4_G32, GS_DTYPE_Q4_G128};
    int combo = 0;
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t s = 0; s < sizeof km / sizeof km[0]; s++) {
            if (gs_dtype_group(dts[d]) > km[s][0])
                continue; /* a group wider than the row is refused by the model loader */
            if (small && km[s][0] * km[s][1] > 200000)
                continue;
            test_shape(dts[d], km[s][0], km[s][1], &combo);
        }
    static const int kvn[] = {1, 3, 16};
    for (size_t i = 0; i < sizeof kvn / sizeof kvn[0]; i++) {
        test_kv_fold(768, 768, 768, kvn[i], kvn[i] <= 4, 0);     /* GPT-2 small's qkv */
        test_kv_fold(1600, 1600, 1600, kvn[i], kvn[i] <= 4, 1); /* GPT-2 XL's, bf16 */
        test_kv_fold(64, 64, 16, kvn[i], 0, 0);                 /* fewer KV columns than Q */
    }
    return tap_done();
}
