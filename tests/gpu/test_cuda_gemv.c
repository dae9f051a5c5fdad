/* test_cuda_gemv.c - kernels/cuda/gemv.cu (cuda_gemv_half, cuda_convert_to_half)
 * against the host on fresh random data.
 *
 * Weights are drawn in fp32, rounded to fp16 / bf16 here on the host (this
 * file's own round-to-nearest-even conversions) and widened back; the
 * reference is a double-precision product over those widened weights, so the
 * only difference left is the kernel's fp32 accumulation order: agreement is
 * ||gpu - ref|| / ||ref|| < 1e-5 over the whole output. Outputs are poisoned
 * with 0xFF bytes (NaN) before each call and every element must come back
 * finite; a guard zone of 0xFF on both sides of the output must come back
 * untouched. Shapes: n in {1, 2, 3, 8, 16} token rows, (k, m) from GPT-2's
 * layers and odd ones, with and without bias, both dtypes, and w (then in)
 * one element off 16-byte alignment so the scalar instantiation runs too.
 * cuda_convert_to_half is checked bit for bit against the host conversion on
 * random bit patterns (NaNs, infinities, subnormals included) and chosen
 * edge values (ties, the overflow threshold, the subnormal range).
 * Last, the CUDA backend's matmul / matmul_ex with fp16 and bf16 weights:
 * the GEMV for decode sizes, cuBLASLt with its bias and accumulate epilogues
 * (also inside a CUDA graph) for larger ones.
 *
 * Each run draws a new seed and prints it; GS_TEST_SEED=<n> replays a run.
 * Without a CUDA device it prints "1..0 # SKIP no CUDA device" and exits 0.
 *
 *   test_cuda_gemv            the TAP test
 *   test_cuda_gemv --small    the same without the two largest shapes (for racecheck)
 *   test_cuda_gemv --bench    time per shape (median of 50 batches, weights rotated
 *                             through 256 MB so they come from DRAM, not L2), GB/s of
 *                             w read, and its fraction of a device-to-device copy's GB/s */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "backend.h"
#include "cuda/gemv_cuda.h"
#include "../tap.h" /* tests/tap.h: relative, as tests/ is not on the include path */

#define TOL 1e-5
#define NMAX 16

static void *dmalloc(size_t bytes)
{
    void *p = NULL;
    cuda_or_bail(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    return p;
}

/* ---- cuda_convert_to_half ---- */

static void test_convert(int is_bf16)
{
    static const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.996f, 65520.0f, -65520.0f, 65536.0f,
                                  1e30f, 0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1.8p-23f,
                                  0x1.4p-24f, 0x1p-26f, 0x1.ffcp-15f, 0x1.ffep-15f, 1.0009766f, 1.00048828125f,
                                  1.00146484375f, 0x1.008p0f, 0x1.018p0f, 0x1p-149f, 0x1p-126f, 0x1.fffffep127f,
                                  3.0e38f, 0x1.01p-130f, 0x1.0180p-133f};
    const long nedge = (long)(sizeof edges / sizeof edges[0]);
    const long count = nedge + 6 + (1L << 20) + 3;
    float *h = xmalloc((size_t)count * sizeof(float));
    long i = 0;
    for (; i < nedge; i++)
        h[i] = edges[i];
    const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u};
    for (int s = 0; s < 6; s++)
        h[i++] = u2f(specials[s]);
    for (; i < count; i++) { /* random bit patterns: every exponent, NaNs and subnormals included */
        uint32_t u = (uint32_t)(rng_next() >> 32);
        if (i % 4 == 0) /* and a quarter near the fp16 range, where most of fp16's cases are */
            u = (u & 0x807fffffu) | ((uint32_t)(100 + rng_next() % 48) << 23); /* 2^-27 .. 2^20 */
        if (i % 16 == 1) /* exact ties of the dropped bits */
            u = (u & ~0x1fffu) | 0x1000u;
        if (i % 16 == 2)
            u = (u & ~0xffffu) | 0x8000u;
        h[i] = u2f(u);
    }
    float *d_in = dmalloc((size_t)count * sizeof(float));
    uint16_t *d_out = dmalloc((size_t)count * 2);
    uint16_t *got = xmalloc((size_t)count * 2);
    cuda_or_bail(cudaMemcpy(d_in, h, (size_t)count * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemset(d_out, 0xA5, (size_t)count * 2), "cudaMemset");
    int rc = cuda_convert_to_half(d_out, d_in, count, is_bf16, 0);
    cudaError_t e = cudaDeviceSynchronize();
    long bad = 0, first = -1;
    if (rc == 0 && e == cudaSuccess) {
        cuda_or_bail(cudaMemcpy(got, d_out, (size_t)count * 2, cudaMemcpyDeviceToHost), "cudaMemcpy");
        for (i = 0; i < count; i++) {
            uint16_t want = is_bf16 ? host_f2bf(h[i]) : host_f2h(h[i]);
            if (got[i] != want) {
                if (first < 0)
                    first = i;
                bad++;
            }
        }
    }
    if (first >= 0)
        tap_diag("first mismatch: in 0x%08x -> device 0x%04x, host 0x%04x", f2u(h[first]), got[first],
                 is_bf16 ? host_f2bf(h[first]) : host_f2h(h[first]));
    tap_ok(rc == 0 && e == cudaSuccess && bad == 0, "convert_to_half %s: %ld values bit for bit (%ld differ)%s",
           is_bf16 ? "bf16" : "fp16", count, bad, rc || e ? " (CUDA error)" : "");
    /* the host conversion itself, on values whose answer is known */
    if (!is_bf16) {
        int ok = host_f2h(65504.0f) == 0x7bff && host_f2h(65520.0f) == 0x7c00 && host_f2h(0x1p-24f) == 0x0001 &&
                 host_f2h(0x1p-25f) == 0x0000 && host_f2h(0x1.000002p-25f) == 0x0001 &&
                 host_f2h(0x1.8p-24f) == 0x0002 && host_f2h(1.00048828125f) == 0x3c00 &&
                 host_f2h(1.00146484375f) == 0x3c02 && host_f2h(-0.0f) == 0x8000 && host_f2h(0x1p-14f) == 0x0400 &&
                 host_f2h(0x1.ffep-15f) == 0x0400 && host_h2f(0x0001) == 0x1p-24f && host_h2f(0x7bff) == 65504.0f;
        tap_ok(ok, "host fp16 conversion on known values");
    } else {
        int ok = host_f2bf(1.00390625f) == 0x3f80 && host_f2bf(1.01171875f) == 0x3f82 &&
                 host_f2bf(0x1.fffffep127f) == 0x7f80 && host_f2bf(0x1p-133f) == 0x0001 &&
                 host_bf2f(0x3f80) == 1.0f;
        tap_ok(ok, "host bf16 conversion on known values");
    }
    cudaFree(d_in), cudaFree(d_out);
    free(h), free(got);
}

/* ---- cuda_gemv_half ---- */

/* One (k, m, dtype): draws in[16][k], w, bias; the reference for 16 rows
 * serves every n (row i does not depend on n). */
static void test_gemv_shape(int k, int m, int is_bf16)
{
    static const int ns[] = {1, 2, 3, 8, 16};
    const size_t wcount = (size_t)m * k;
    float *in = xmalloc((size_t)NMAX * k * sizeof(float));
    uint16_t *wh = xmalloc(wcount * 2);
    float *wf = xmalloc(wcount * sizeof(float));
    float *bias = xmalloc((size_t)m * sizeof(float));
    double *ref = xmalloc((size_t)NMAX * m * sizeof(double));
    float *got = xmalloc(((size_t)NMAX * m + 2 * GUARD) * sizeof(float));
    for (size_t i = 0; i < (size_t)NMAX * k; i++)
        in[i] = frand();
    for (size_t i = 0; i < wcount; i++) {
        wh[i] = is_bf16 ? host_f2bf(frand() * 0.5f) : host_f2h(frand() * 0.5f);
        wf[i] = is_bf16 ? host_bf2f(wh[i]) : host_h2f(wh[i]);
    }
    for (int j = 0; j < m; j++)
        bias[j] = frand();
    for (int i = 0; i < NMAX; i++)
        for (int j = 0; j < m; j++) {
            double s = 0.0;
            const float *x = in + (size_t)i * k, *wr = wf + (size_t)j * k;
            for (int c = 0; c < k; c++)
                s += (double)x[c] * (double)wr[c];
            ref[(size_t)i * m + j] = s;
        }

    /* device: in and w each one element longer, for the misaligned runs */
    float *d_in = dmalloc(((size_t)NMAX * k + 4) * sizeof(float));
    uint16_t *d_w = dmalloc((wcount + 8) * 2);
    float *d_bias = dmalloc((size_t)m * sizeof(float));
    const size_t out_floats = (size_t)NMAX * m + 2 * GUARD;
    float *d_out = dmalloc(out_floats * sizeof(float));
    cuda_or_bail(cudaMemcpy(d_bias, bias, (size_t)m * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");

    /* mis = 0: aligned; 1: w one element off; 2: in one element off */
    const int nmis = (k == 768 && m == 2304) ? 3 : 1;
    for (int mis = 0; mis < nmis; mis++) {
        uint16_t *dw = d_w + (mis == 1);
        float *din = d_in + (mis == 2);
        cuda_or_bail(cudaMemcpy(dw, wh, wcount * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
        cuda_or_bail(cudaMemcpy(din, in, (size_t)NMAX * k * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
            const int n = ns[t];
            if (mis && n != 3 && n != 16)
                continue;
            for (int with_bias = 0; with_bias <= 1; with_bias++) {
                cuda_or_bail(cudaMemset(d_out, 0xFF, out_floats * sizeof(float)), "cudaMemset");
                int rc = cuda_gemv_half(d_out + GUARD, din, dw, is_bf16, with_bias ? d_bias : NULL, n, k, m, 0);
                cudaError_t e = cudaDeviceSynchronize();
                if (rc || e != cudaSuccess) {
                    tap_ok(0, "gemv %s n=%d k=%d m=%d%s: CUDA error %s", is_bf16 ? "bf16" : "fp16", n, k, m,
                           with_bias ? " +bias" : "", cudaGetErrorString(rc ? (cudaError_t)rc : e));
                    continue;
                }
                cuda_or_bail(cudaMemcpy(got, d_out, out_floats * sizeof(float), cudaMemcpyDeviceToHost),
                             "cudaMemcpy");
                int finite = 1, guards = 1;
                for (int g = 0; g < GUARD; g++) {
                    uint32_t a = f2u(got[g]), b = f2u(got[GUARD + (size_t)n * m + g]);
                    guards &= a == 0xffffffffu && b == 0xffffffffu;
                }
                /* the tail past n rows (inside the 16-row buffer) must stay poisoned too */
                for (size_t q = (size_t)n * m; q < (size_t)NMAX * m; q++)
                    guards &= f2u(got[GUARD + q]) == 0xffffffffu;
                double num = 0.0, den = 0.0;
                for (size_t q = 0; q < (size_t)n * m; q++) {
                    const float g = got[GUARD + q];
                    if (!isfinite(g)) {
                        finite = 0;
                        continue;
                    }
                    const double r = ref[q] + (with_bias ? (double)bias[q % (size_t)m] : 0.0);
                    num += (g - r) * (g - r);
                    den += r * r;
                }
                const double err = den > 0 ? sqrt(num / den) : sqrt(num);
                tap_ok(finite && guards && err < TOL, "gemv %s n=%d k=%d m=%d%s%s: rel err %.2e%s%s",
                       is_bf16 ? "bf16" : "fp16", n, k, m, with_bias ? " +bias" : "",
                       mis == 1 ? " (w misaligned)" : mis == 2 ? " (in misaligned)" : "", err,
                       finite ? "" : ", NOT all finite", guards ? "" : ", guard or tail overwritten");
            }
        }
    }
    cudaFree(d_in), cudaFree(d_w), cudaFree(d_bias), cudaFree(d_out);
    free(in), free(wh), free(wf), free(bias), free(ref), free(got);
}

/* The fused epilogues against the CPU twin: the double-precision product
 * plus bias, then GELU (tanh form) or added to a residual already in out.
 * Shapes of GPT-2's matmul_up (GELU) and matmul_out / matmul_down
 * (accumulate), plus a ragged one; rows past n stay untouched. */
static void test_epilogue(int k, int m, int epi, int is_bf16)
{
    static const int ns[] = {1, 3, 16};
    const size_t wcount = (size_t)m * k;
    float *in = xmalloc((size_t)NMAX * k * sizeof(float));
    uint16_t *wh = xmalloc(wcount * 2);
    float *wf = xmalloc(wcount * sizeof(float));
    float *bias = xmalloc((size_t)m * sizeof(float));
    float *resid = xmalloc((size_t)NMAX * m * sizeof(float));
    float *got = xmalloc((size_t)NMAX * m * sizeof(float));
    for (size_t i = 0; i < (size_t)NMAX * k; i++)
        in[i] = frand();
    for (size_t i = 0; i < wcount; i++) {
        wh[i] = is_bf16 ? host_f2bf(frand() * 0.5f) : host_f2h(frand() * 0.5f);
        wf[i] = is_bf16 ? host_bf2f(wh[i]) : host_h2f(wh[i]);
    }
    for (int j = 0; j < m; j++)
        bias[j] = frand();
    for (size_t i = 0; i < (size_t)NMAX * m; i++)
        resid[i] = frand() * 4.0f;
    float *d_in = dmalloc((size_t)NMAX * k * sizeof(float));
    uint16_t *d_w = dmalloc(wcount * 2);
    float *d_bias = dmalloc((size_t)m * sizeof(float));
    float *d_out = dmalloc((size_t)NMAX * m * sizeof(float));
    cuda_or_bail(cudaMemcpy(d_in, in, (size_t)NMAX * k * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d_w, wh, wcount * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d_bias, bias, (size_t)m * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    const char *what = epi == GS_GEMV_EPI_GELU ? "gelu" : "accumulate";
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const int n = ns[t];
        /* accumulate: out starts as the residual; gelu: poisoned */
        if (epi == GS_GEMV_EPI_ACCUMULATE)
            cuda_or_bail(cudaMemcpy(d_out, resid, (size_t)NMAX * m * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        else
            cuda_or_bail(cudaMemset(d_out, 0xFF, (size_t)NMAX * m * sizeof(float)), "cudaMemset");
        const gs_norm_fold none = {GS_NORM_FOLD_NONE, NULL, NULL, 0.0f};
        int rc = cuda_gemv_half_ex(d_out, d_in, d_w, is_bf16, d_bias, n, k, m, epi, none, 0);
        cudaError_t e = cudaDeviceSynchronize();
        if (rc || e != cudaSuccess) {
            tap_ok(0, "gemv %s epilogue n=%d k=%d m=%d: CUDA error", what, n, k, m);
            continue;
        }
        cuda_or_bail(cudaMemcpy(got, d_out, (size_t)NMAX * m * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
        double num = 0.0, den = 0.0;
        int finite = 1, tail = 1;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                double v = bias[j];
                for (int c = 0; c < k; c++)
                    v += (double)in[(size_t)i * k + c] * (double)wf[(size_t)j * k + c];
                double r = epi == GS_GEMV_EPI_GELU ? gelu_ref(v) : v + (double)resid[(size_t)i * m + j];
                double g = got[(size_t)i * m + j];
                finite &= isfinite(g) != 0;
                num += (g - r) * (g - r);
                den += r * r;
            }
        for (size_t q = (size_t)n * m; q < (size_t)NMAX * m; q++)
            tail &= epi == GS_GEMV_EPI_ACCUMULATE ? got[q] == resid[q] : f2u(got[q]) == 0xffffffffu;
        const double err = den > 0 ? sqrt(num / den) : sqrt(num);
        tap_ok(finite && tail && err < TOL, "gemv %s epilogue %s n=%d k=%d m=%d: rel err %.2e%s", what,
               is_bf16 ? "bf16" : "fp16", n, k, m, err, tail ? "" : ", rows past n touched");
    }
    cudaFree(d_in), cudaFree(d_w), cudaFree(d_bias), cudaFree(d_out);
    free(in), free(wh), free(wf), free(bias), free(resid), free(got);
}

/* ---- the backend's products with half weights (src/backend_cuda.c) ----
 *
 * matmul and matmul_ex (none, GELU, accumulate) through the CUDA backend:
 * the GEMV up to 16 rows (fp32 rows of in), cuBLASLt beyond (in rounded to
 * the weights' type first, the bias and the accumulation in its epilogue);
 * there, rows given as halves (GS_EPI_IN_HALF) must give the bits of fp32
 * rows rounded by the product. The reference rounds exactly as the path
 * does, so only the sums' order is
 * left: 1e-5. One bias sits one float off its alignment (the algorithm is
 * picked per alignment); an accumulating product recorded in a CUDA graph
 * and replayed adds its product once per run. */
static void test_backend_half(int k, int m, int is_bf16)
{
    gs_backend *be = NULL;
    gs_error err;
    if (gs_backend_cuda_create(&be, &err)) {
        tap_ok(0, "backend cuda created: %s", err.msg);
        return;
    }
    const gs_dtype dt = is_bf16 ? GS_DTYPE_BF16 : GS_DTYPE_F16;
    const char *dn = is_bf16 ? "bf16" : "fp16";
    static const int ns[] = {5, 17, 64, 130};
    const int NB = 130;
    const size_t wcount = (size_t)m * k;
    float *w = xmalloc(wcount * sizeof(float)), *wr = xmalloc(wcount * sizeof(float));
    float *in = xmalloc((size_t)NB * k * sizeof(float)), *bias = xmalloc((size_t)(m + 1) * sizeof(float));
    float *resid = xmalloc((size_t)NB * m * sizeof(float)), *got = xmalloc((size_t)NB * m * sizeof(float));
    double *v = xmalloc((size_t)NB * m * sizeof(double));
    for (size_t i = 0; i < wcount; i++) {
        w[i] = frand() * 0.5f;
        wr[i] = is_bf16 ? host_bf2f(host_f2bf(w[i])) : host_h2f(host_f2h(w[i])); /* what upload_weights stores */
    }
    for (size_t i = 0; i < (size_t)NB * k; i++)
        in[i] = frand();
    for (int j = 0; j <= m; j++)
        bias[j] = frand();
    for (size_t i = 0; i < (size_t)NB * m; i++)
        resid[i] = frand() * 4.0f;
    void *d_w = be->ops->alloc(be, wcount * 2);
    float *d_in = be->ops->alloc(be, (size_t)NB * k * 4), *d_out = be->ops->alloc(be, (size_t)NB * m * 4);
    float *d_bias = be->ops->alloc(be, (size_t)(m + 1) * 4);
    int up = be->ops->upload_weights(be, d_w, w, wcount, dt, &err);
    up |= be->ops->upload(be, d_in, in, (size_t)NB * k * 4);
    up |= be->ops->upload(be, d_bias, bias, (size_t)(m + 1) * 4);
    tap_ok(up == 0 && be->ops->matmul_ex_fits(be, dt, 1) && be->ops->matmul_ex_fits(be, dt, 1000) &&
               !be->ops->half_in_fits(be, dt, 16) && be->ops->half_in_fits(be, dt, 17) &&
               !be->ops->half_in_fits(be, GS_DTYPE_F32, 100),
           "backend %s k=%d m=%d: weights uploaded, matmul_ex_fits at n = 1 and 1000, half_in_fits from n = 17 (not "
           "for fp32)",
           dn, k, m);
    enum { PLAIN, PLAIN_NOBIAS, EX_NONE, EX_GELU, EX_ACC_ODD_BIAS, N_MODES };
    static const char *const mname[] = {"matmul", "matmul (no bias)", "matmul_ex none", "matmul_ex gelu",
                                        "matmul_ex accumulate (bias 4-byte aligned)"};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const int n = ns[t], half_in = n > 16;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                double sum = 0;
                for (int c = 0; c < k; c++) {
                    float x = in[(size_t)i * k + c];
                    if (half_in)
                        x = is_bf16 ? host_bf2f(host_f2bf(x)) : host_h2f(host_f2h(x));
                    sum += (double)x * wr[(size_t)j * k + c];
                }
                v[(size_t)i * m + j] = sum;
            }
        for (int mode = 0; mode < N_MODES; mode++) {
            const float *b = mode == PLAIN_NOBIAS ? NULL : mode == EX_ACC_ODD_BIAS ? d_bias + 1 : d_bias;
            const float *hb = mode == EX_ACC_ODD_BIAS ? bias + 1 : bias;
            if (mode == EX_ACC_ODD_BIAS)
                be->ops->upload(be, d_out, resid, (size_t)n * m * 4);
            else
                cuda_or_bail(cudaMemset(d_out, 0xFF, (size_t)NB * m * 4), "cudaMemset");
            if (mode <= PLAIN_NOBIAS)
                be->ops->matmul(be, d_out, d_in, d_w, dt, b, n, k, m);
            else
                be->ops->matmul_ex(be, d_out, d_in, d_w, dt, b, n, k, m,
                                   mode == EX_GELU ? GS_EPI_GELU : mode == EX_NONE ? GS_EPI_NONE : GS_EPI_ACCUMULATE,
                                   NULL);
            be->ops->download(be, got, d_out, (size_t)n * m * 4);
            const int sync = be->ops->synchronize(be);
            double num = 0, den = 0;
            for (size_t q = 0; q < (size_t)n * m; q++) {
                double r = v[q] + (b ? hb[q % m] : 0.0);
                r = mode == EX_GELU ? gelu_ref(r) : mode == EX_ACC_ODD_BIAS ? r + resid[q] : r;
                num += (got[q] - r) * (got[q] - r);
                den += r * r;
            }
            const double rel = sqrt(num / den);
            tap_ok(sync == 0 && all_finite(got, (size_t)n * m) && rel < TOL, "backend %s %s n=%d k=%d m=%d (%s): rel err %.2e",
                   dn, mname[mode], n, k, m, half_in ? "cuBLASLt" : "GEMV", rel);
        }
        if (half_in) {
            /* The rows given as halves (GS_EPI_IN_HALF, as norm_half writes
             * them): the same bits as the product rounding fp32 rows itself. */
            uint16_t *hin = xmalloc((size_t)n * k * 2);
            float *got2 = xmalloc((size_t)n * m * sizeof(float));
            for (size_t i = 0; i < (size_t)n * k; i++)
                hin[i] = is_bf16 ? host_f2bf(in[i]) : host_f2h(in[i]);
            void *d_hin = be->ops->alloc(be, (size_t)n * k * 2);
            be->ops->upload(be, d_hin, hin, (size_t)n * k * 2);
            be->ops->upload(be, d_out, resid, (size_t)n * m * 4);
            be->ops->matmul_ex(be, d_out, d_in, d_w, dt, d_bias, n, k, m, GS_EPI_ACCUMULATE, NULL);
            be->ops->download(be, got, d_out, (size_t)n * m * 4);
            be->ops->upload(be, d_out, resid, (size_t)n * m * 4);
            be->ops->matmul_ex(be, d_out, d_hin, d_w, dt, d_bias, n, k, m, GS_EPI_ACCUMULATE | GS_EPI_IN_HALF, NULL);
            be->ops->download(be, got2, d_out, (size_t)n * m * 4);
            const int sync = be->ops->synchronize(be);
            tap_ok(sync == 0 && be->ops->half_in_fits(be, dt, n) && !memcmp(got, got2, (size_t)n * m * 4),
                   "backend %s matmul_ex accumulate n=%d k=%d m=%d: half rows in (GS_EPI_IN_HALF) give the same bits",
                   dn, n, k, m);
            be->ops->free(be, d_hin);
            free(hin), free(got2);
        }
        if (n != 64)
            continue;
        /* Recorded once, run at the recording's end and once more by replay: out = resid + 2 v. */
        const gs_attn_args none = {0};
        be->ops->upload(be, d_out, resid, (size_t)n * m * 4);
        int rc = be->ops->graph_begin(be, &none);
        if (rc == 0) {
            be->ops->matmul_ex(be, d_out, d_in, d_w, dt, d_bias, n, k, m, GS_EPI_ACCUMULATE, NULL);
            rc = be->ops->graph_end(be, 0x5eed);
        }
        if (rc == 0)
            rc = be->ops->graph_replay(be, 0x5eed);
        be->ops->download(be, got, d_out, (size_t)n * m * 4);
        rc |= be->ops->synchronize(be);
        double num = 0, den = 0;
        for (size_t q = 0; q < (size_t)n * m; q++) {
            const double r = resid[q] + 2.0 * (v[q] + bias[q % m]);
            num += (got[q] - r) * (got[q] - r);
            den += r * r;
        }
        const double rel = sqrt(num / den);
        tap_ok(rc == 0 && rel < TOL, "backend %s matmul_ex accumulate n=%d k=%d m=%d in a CUDA graph, run twice: rel err %.2e",
               dn, n, k, m, rel);
    }
    be->ops->free(be, d_w), be->ops->free(be, d_in), be->ops->free(be, d_out), be->ops->free(be, d_bias);
    free(w), free(wr), free(in), free(bias), free(resid), free(got), free(v);
    gs_backend_destroy(be);
}

/* ---- --bench ---- */

#define REPS 50
#define BATCH 20 /* launches per timed batch; each reads a different copy of w */
#define POOL_BYTES (256UL << 20)

static int bench(void)
{
    static const int km[][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}, {64, 512},
                                {13, 7},     {1600, 6400}, {768, 50257}};
    static const int ns[] = {1, 2, 3, 8, 16};
    cudaEvent_t e0, e1;
    cuda_or_bail(cudaEventCreate(&e0), "cudaEventCreate");
    cuda_or_bail(cudaEventCreate(&e1), "cudaEventCreate");
    float ms[REPS];

    /* the pool: random halves (random fp32 through the device conversion) */
    uint16_t *pool = dmalloc(POOL_BYTES);
    const size_t chunk = 4UL << 20; /* floats */
    float *hf = xmalloc(chunk * sizeof(float));
    for (size_t i = 0; i < chunk; i++)
        hf[i] = frand() * 0.5f;
    float *d_f = dmalloc(chunk * sizeof(float));
    cuda_or_bail(cudaMemcpy(d_f, hf, chunk * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    for (size_t off = 0; off + chunk <= POOL_BYTES / 2; off += chunk)
        cuda_or_bail((cudaError_t)cuda_convert_to_half(pool + off, d_f, (long)chunk, 0, 0), "convert");
    float *d_in = dmalloc((size_t)NMAX * 6400 * sizeof(float)), *d_out = dmalloc((size_t)NMAX * 50257 * 4);
    float *d_bias = dmalloc(50257 * sizeof(float));
    cuda_or_bail(cudaMemcpy(d_in, d_f, (size_t)NMAX * 6400 * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d_bias, d_f, 50257 * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_or_bail(cudaDeviceSynchronize(), "setup");

    /* the copy bandwidth: 128 MB device to device, (read + write) bytes over time */
    void *src = pool, *dst = (char *)pool + POOL_BYTES / 2;
    for (int r = 0; r < 3; r++)
        cudaMemcpyAsync(dst, src, POOL_BYTES / 2, cudaMemcpyDeviceToDevice, 0);
    for (int r = 0; r < 20; r++) {
        cudaEventRecord(e0, 0);
        cudaMemcpyAsync(dst, src, POOL_BYTES / 2, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms[r], e0, e1);
    }
    qsort(ms, 20, sizeof ms[0], cmp_float);
    const double copy_gbs = 2.0 * (POOL_BYTES / 2) / (ms[10] * 1e6);
    printf("# device-to-device copy: %.1f GB/s (read + write, 128 MB, median of 20)\n", copy_gbs);
    printf("# gemv fp16 / bf16, bias on; w rotated through 256 MB; GB/s counts w bytes only\n");
    printf("# %-5s %5s %6s %3s  %10s  %9s  %6s\n", "dtype", "k", "m", "n", "us", "GB/s (w)", "x copy");

    for (int dt = 0; dt <= 1; dt++)
        for (size_t s = 0; s < sizeof km / sizeof km[0]; s++) {
            const int k = km[s][0], m = km[s][1];
            const size_t wbytes = ((size_t)m * k * 2 + 255) & ~(size_t)255;
            const size_t copies = POOL_BYTES / wbytes;
            for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
                const int n = ns[t];
                if (dt == 1 && n != 1 && n != 16)
                    continue; /* bf16: the ends only */
                size_t c = 0;
                int rc = 0;
                for (int r = 0; r < 5 && !rc; r++) /* warm-up */
                    rc = cuda_gemv_half(d_out, d_in, (char *)pool + (c++ % copies) * wbytes, dt, d_bias, n, k, m, 0);
                for (int r = 0; r < REPS && !rc; r++) {
                    cudaEventRecord(e0, 0);
                    for (int b = 0; b < BATCH && !rc; b++)
                        rc = cuda_gemv_half(d_out, d_in, (char *)pool + (c++ % copies) * wbytes, dt, d_bias, n, k,
                                            m, 0);
                    cudaEventRecord(e1, 0);
                    cudaEventSynchronize(e1);
                    cudaEventElapsedTime(&ms[r], e0, e1);
                }
                if (rc || cudaDeviceSynchronize() != cudaSuccess) {
                    printf("  %s k=%d m=%d n=%d failed\n", dt ? "bf16" : "fp16", k, m, n);
                    continue;
                }
                qsort(ms, REPS, sizeof ms[0], cmp_float);
                const double us = ms[REPS / 2] * 1e3 / BATCH;
                const double gbs = (double)m * k * 2 / (us * 1e3);
                printf("  %-5s %5d %6d %3d  %10.2f  %9.1f  %5.0f%%\n", dt ? "bf16" : "fp16", k, m, n, us, gbs,
                       100.0 * gbs / copy_gbs);
            }
        }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(pool), cudaFree(d_f), cudaFree(d_in), cudaFree(d_out), cudaFree(d_bias);
    free(hf);
    return 0;
}

int main(int argc, char **argv)
{
    if (!gpu_test_device_or_skip())
        return 0;
    /* This file checks the fp32-input GEMV (gemv.cu) at every n: keep 5-16
     * rows off the tensor-core GEMV, which test_cuda_gemv_mma checks. */
    setenv("GS_GEMV_MMA", "0", 1);
    const uint64_t seed = rng_seed_from_env();
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench();
    const int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    tap_diag("seed %llu (replay with GS_TEST_SEED=%llu)", (unsigned long long)seed, (unsigned long long)seed);

    test_convert(0);
    test_convert(1);

    static const int km[][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}, {64, 512},
                                {13, 7},     {1600, 6400}, {768, 50257}};
    for (int dt = 0; dt <= 1; dt++)
        for (size_t s = 0; s < sizeof km / sizeof km[0]; s++) {
            if (small && (long)km[s][0] * km[s][1] > (4L << 20))
                continue;
            test_gemv_shape(km[s][0], km[s][1], dt);
        }
    for (int dt = 0; dt <= 1; dt++) {
        test_epilogue(768, 3072, GS_GEMV_EPI_GELU, dt);
        test_epilogue(768, 768, GS_GEMV_EPI_ACCUMULATE, dt);
        test_epilogue(3072, 768, GS_GEMV_EPI_ACCUMULATE, dt);
        test_epilogue(13, 7, GS_GEMV_EPI_GELU, dt);
    }
    for (int dt = 0; dt <= 1; dt++) {
        test_backend_half(768, 2304, dt);
        test_backend_half(3072, 768, dt);
        test_backend_half(100, 60, dt);
    }
    return tap_done();
}
