/* test_cuda_gemv_mma.c - kernels/cuda/gemv_mma.cu (cuda_gemv_mma and
 * cuda_gemv_mma_cfg, the tensor-core decode GEMV) against the host on fresh
 * random data.
 *
 * Weights are drawn in fp32 and rounded to fp16 / bf16 on the host
 * (gpu_test_util.h's conversions), the reference uses them widened back. Two
 * double-precision twins per output: "exact", the product of the exactly
 * normalized rows (LayerNorm / RMSNorm in double, or the raw rows), and
 * "rounded", the same rows rounded to float and then to the weights' half
 * type as the kernel stages them. The kernel must agree with the exact twin
 * by ||gpu - ref|| / ||ref|| < 1e-2 over the whole output (its activations
 * are half precision: ~3e-4 for fp16, ~2e-3 for bf16) and with the rounded
 * twin by < 2e-4 (only the fp32 summation order differs, and rare half-ulp
 * flips where the device's fp32 norm and the host's differ in the last bit):
 * a dropped or doubled 8-column piece of k = 6400 would show as 3e-2.
 * Outputs are poisoned with 0xFF (NaN) before every call and every element of
 * the n rows must come back finite; the rows past n and a 0xFF guard zone on
 * both sides must come back untouched (for accumulate, out starts as random
 * residuals, the rows past n must keep them, and the error is taken relative
 * to the product's norm).
 *
 * Shapes (k x m): 64 x 37, 768 x 2304, 768 x 771, 776 x 130 (a last group
 * of 8 columns), 1600 x 1601 (two chunks at n > 8), 3072 x 769, 6400 x 333
 * (4 / 7 chunks), 100 x 29 (k % 8 != 0: scalar loads), 13 x 7, and
 * 768 x 50257 (GPT-2's logits, n = 5 and 16). For each shape and dtype:
 * n = 1..16 with norm, epilogue and bias rotating; at n = 8 and 16 every
 * norm x epilogue; n = 17 and 33 (passes of 16) on 768 x 771; w then in one
 * element off 16-byte alignment on 768 x 2304 and 776 x 130. Launch shapes
 * (cuda_gemv_mma_cfg) on 776 x 130, 1600 x 1601 and 100 x 29 at n = 7 and
 * 16: split 1, 2, 4, 8 x cluster split 1, 2, 4, 8 x k chunks automatic, 64
 * and 160 columns x grid automatic, 1 and 3 blocks (the persistent walk over
 * row blocks, restaging); the three grids must give the same bits (which
 * block does a row block changes the order of no sum), and a call repeated
 * gives the same bits. Fields out of range are refused with
 * cudaErrorInvalidValue.
 *
 * Each run draws a new seed and prints it; GS_TEST_SEED=<n> replays a run.
 * Without a CUDA device it prints "1..0 # SKIP no CUDA device" and exits 0.
 *
 *   test_cuda_gemv_mma            the TAP test
 *   test_cuda_gemv_mma --small    the shapes up to 2M weights, fewer n and launch shapes
 *                                 (for racecheck)
 *   test_cuda_gemv_mma --bench    GPT-2 124M and 1.5B shapes at n = 1 .. 16: gemv.cu's
 *                                 kernel (cuda_gemv_half_ex) against cuda_gemv_mma without
 *                                 and with a folded LayerNorm, w rotated through 256 MB so
 *                                 it comes from DRAM; each timed two ways: back-to-back
 *                                 launches (median of 50 batches of 20; floors at the host's
 *                                 launch rate, ~4.6 us) and CUDA-graph replays of one call
 *                                 per copy of w (median of 11; the kernels' own pace)
 *   test_cuda_gemv_mma --sweep    the GPT-2 124M shapes at n = 8 and 16 under every split x
 *                                 cluster split and two persistent grids (graph-timed), to
 *                                 tune the launcher's choice */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "cuda/gemv_cuda.h"
#include "cuda/gemv_mma_cuda.h"
#include "../tap.h" /* tests/tap.h: relative, as tests/ is not on the include path */

#define TOL_EXACT 1e-2
#define TOL_ROUND 2e-4
#define EPS 1e-5f

static const char *norm_name[] = {"none", "layer", "rms"};
static const char *epi_name[] = {"none", "gelu", "accumulate"};

static void *dmalloc(size_t bytes)
{
    void *p = NULL;
    cuda_or_bail(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    return p;
}

static void upload(void *d, const void *h, size_t bytes)
{
    cuda_or_bail(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

/* ---- one shape: host data, references, device copies ---- */

typedef struct shape {
    int k, m, rows, is_bf16;
    float *in, *nw, *nb, *bias; /* rows x k raw rows; k norm weights, biases; m biases */
    float *wf;                  /* m x k widened weights */
    double *ref[3][2];          /* [norm kind][exact, rounded] rows x m, products without bias */
    float *resid;               /* rows x m, what accumulate starts from */
    float *d_in, *d_in_mis;     /* aligned, and one float past a 16-byte boundary */
    uint16_t *d_w, *d_w_mis;    /* aligned, and one half past it */
    float *d_nw, *d_nb, *d_bias, *d_out;
    size_t out_floats; /* rows * m + 2 * GUARD */
} shape;

/* Row i normalized in double (kind 0: as it is). */
static void norm_row_ref(const float *x, int k, int kind, const float *nw, const float *nb, double *y)
{
    if (kind == GS_NORM_FOLD_NONE) {
        for (int c = 0; c < k; c++)
            y[c] = x[c];
        return;
    }
    double mean = 0.0, ss = 0.0;
    if (kind == GS_NORM_FOLD_LAYER) {
        for (int c = 0; c < k; c++)
            mean += x[c];
        mean /= k;
    }
    for (int c = 0; c < k; c++)
        ss += (x[c] - mean) * (x[c] - mean);
    const double r = 1.0 / sqrt(ss / k + (double)EPS);
    for (int c = 0; c < k; c++)
        y[c] = kind == GS_NORM_FOLD_LAYER ? (x[c] - mean) * r * nw[c] + nb[c] : x[c] * r * nw[c];
}

/* norms: a bit per kind to build references for. */
static shape shape_new(int k, int m, int rows, int is_bf16, unsigned norms)
{
    shape s;
    memset(&s, 0, sizeof s);
    s.k = k, s.m = m, s.rows = rows, s.is_bf16 = is_bf16;
    const size_t wcount = (size_t)m * k;
    s.in = xmalloc((size_t)rows * k * sizeof(float));
    s.nw = xmalloc((size_t)k * sizeof(float));
    s.nb = xmalloc((size_t)k * sizeof(float));
    s.bias = xmalloc((size_t)m * sizeof(float));
    s.wf = xmalloc(wcount * sizeof(float));
    s.resid = xmalloc((size_t)rows * m * sizeof(float));
    uint16_t *wh = xmalloc(wcount * 2);
    for (int i = 0; i < rows; i++) { /* residual-like rows: an offset per row, then spread */
        const float off = 4.0f * frand();
        for (int c = 0; c < k; c++)
            s.in[(size_t)i * k + c] = off + 2.0f * frand();
    }
    for (int c = 0; c < k; c++)
        s.nw[c] = 1.0f + 0.25f * frand(), s.nb[c] = 0.1f * frand();
    for (size_t i = 0; i < wcount; i++) {
        wh[i] = is_bf16 ? host_f2bf(frand() * 0.5f) : host_f2h(frand() * 0.5f);
        s.wf[i] = is_bf16 ? host_bf2f(wh[i]) : host_h2f(wh[i]);
    }
    for (int j = 0; j < m; j++)
        s.bias[j] = frand();
    for (size_t i = 0; i < (size_t)rows * m; i++)
        s.resid[i] = 4.0f * frand();

    double *x = xmalloc((size_t)k * sizeof(double)), *xr = xmalloc((size_t)k * sizeof(double));
    for (int kind = 0; kind < 3; kind++) {
        if (!(norms & (1u << kind)))
            continue;
        s.ref[kind][0] = xmalloc((size_t)rows * m * sizeof(double));
        s.ref[kind][1] = xmalloc((size_t)rows * m * sizeof(double));
        for (int i = 0; i < rows; i++) {
            norm_row_ref(s.in + (size_t)i * k, k, kind, s.nw, s.nb, x);
            for (int c = 0; c < k; c++) {
                const float f = (float)x[c];
                xr[c] = is_bf16 ? host_bf2f(host_f2bf(f)) : host_h2f(host_f2h(f));
            }
            for (int j = 0; j < m; j++) {
                const float *wr = s.wf + (size_t)j * k;
                double a = 0.0, b = 0.0;
                for (int c = 0; c < k; c++)
                    a += x[c] * wr[c], b += xr[c] * wr[c];
                s.ref[kind][0][(size_t)i * m + j] = a;
                s.ref[kind][1][(size_t)i * m + j] = b;
            }
        }
    }
    free(x), free(xr);

    s.d_in = dmalloc(((size_t)rows * k + 4) * sizeof(float));
    s.d_in_mis = dmalloc(((size_t)rows * k + 4) * sizeof(float));
    s.d_w = dmalloc(wcount * 2 + 16);
    s.d_w_mis = dmalloc(wcount * 2 + 16);
    s.d_nw = dmalloc((size_t)k * sizeof(float));
    s.d_nb = dmalloc((size_t)k * sizeof(float));
    s.d_bias = dmalloc((size_t)m * sizeof(float));
    s.out_floats = (size_t)rows * m + 2 * GUARD;
    s.d_out = dmalloc(s.out_floats * sizeof(float));
    upload(s.d_in, s.in, (size_t)rows * k * sizeof(float));
    upload(s.d_in_mis + 1, s.in, (size_t)rows * k * sizeof(float));
    upload(s.d_w, wh, wcount * 2);
    upload(s.d_w_mis + 1, wh, wcount * 2);
    upload(s.d_nw, s.nw, (size_t)k * sizeof(float));
    upload(s.d_nb, s.nb, (size_t)k * sizeof(float));
    upload(s.d_bias, s.bias, (size_t)m * sizeof(float));
    free(wh);
    return s;
}

static void shape_free(shape *s)
{
    for (int kind = 0; kind < 3; kind++)
        free(s->ref[kind][0]), free(s->ref[kind][1]);
    free(s->in), free(s->nw), free(s->nb), free(s->bias), free(s->wf), free(s->resid);
    cudaFree(s->d_in), cudaFree(s->d_in_mis), cudaFree(s->d_w), cudaFree(s->d_w_mis);
    cudaFree(s->d_nw), cudaFree(s->d_nb), cudaFree(s->d_bias), cudaFree(s->d_out);
}

/* ---- one call ---- */

enum { MIS_NONE, MIS_W, MIS_IN };

typedef struct call {
    int n, norm, epi, bias, mis;
    const gs_gemv_mma_cfg *cfg; /* NULL: cuda_gemv_mma */
} call;

/* Runs the call, checks everything, prints one TAP line; got (rows * m, may
 * be NULL) receives the output rows for bit comparisons. */
static int run_call(shape *s, call c, float *got)
{
    const int k = s->k, m = s->m, n = c.n;
    float *h = xmalloc(s->out_floats * sizeof(float));
    if (c.epi == GS_GEMV_EPI_ACCUMULATE) {
        cuda_or_bail(cudaMemset(s->d_out, 0xFF, s->out_floats * sizeof(float)), "cudaMemset");
        upload(s->d_out + GUARD, s->resid, (size_t)s->rows * m * sizeof(float));
    } else {
        cuda_or_bail(cudaMemset(s->d_out, 0xFF, s->out_floats * sizeof(float)), "cudaMemset");
    }
    gs_norm_fold norm = {c.norm, s->d_nw, s->d_nb, EPS};
    const float *din = c.mis == MIS_IN ? s->d_in_mis + 1 : s->d_in;
    const uint16_t *dw = c.mis == MIS_W ? s->d_w_mis + 1 : s->d_w;
    const float *dbias = c.bias ? s->d_bias : NULL;
    int rc = c.cfg ? cuda_gemv_mma_cfg(s->d_out + GUARD, din, dw, s->is_bf16, dbias, n, k, m, c.epi, norm, c.cfg, 0)
                   : cuda_gemv_mma(s->d_out + GUARD, din, dw, s->is_bf16, dbias, n, k, m, c.epi, norm, 0);
    char why[160] = "";
    const int ran = ran_ok(rc, why, sizeof why);
    int finite = 1, guards = 1, tail = 1;
    double e2[2] = {0.0, 0.0}, r2[2] = {0.0, 0.0};
    if (ran) {
        cuda_or_bail(cudaMemcpy(h, s->d_out, s->out_floats * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
        for (int g = 0; g < GUARD; g++)
            guards &= f2u(h[g]) == 0xffffffffu && f2u(h[GUARD + (size_t)s->rows * m + g]) == 0xffffffffu;
        for (size_t q = (size_t)n * m; q < (size_t)s->rows * m; q++)
            tail &= c.epi == GS_GEMV_EPI_ACCUMULATE ? f2u(h[GUARD + q]) == f2u(s->resid[q])
                                                   : f2u(h[GUARD + q]) == 0xffffffffu;
        for (size_t q = 0; q < (size_t)n * m; q++) {
            const double gv = h[GUARD + q];
            if (!isfinite(gv)) {
                finite = 0;
                continue;
            }
            for (int v = 0; v < 2; v++) {
                double p = s->ref[c.norm][v][q] + (c.bias ? (double)s->bias[q % (size_t)m] : 0.0), want = p;
                if (c.epi == GS_GEMV_EPI_GELU)
                    want = p = gelu_ref(p);
                else if (c.epi == GS_GEMV_EPI_ACCUMULATE)
                    want = p + (double)s->resid[q]; /* the norm is the product's, not what it is added to */
                e2[v] += (gv - want) * (gv - want);
                r2[v] += p * p;
            }
        }
        if (got)
            memcpy(got, h + GUARD, (size_t)s->rows * m * sizeof(float));
    }
    const double err = r2[0] > 0 ? sqrt(e2[0] / r2[0]) : sqrt(e2[0]);
    const double errr = r2[1] > 0 ? sqrt(e2[1] / r2[1]) : sqrt(e2[1]);
    char cfgs[64] = "";
    if (c.cfg)
        snprintf(cfgs, sizeof cfgs, " [split %d ksplit %d grid %d kchunk %d]", c.cfg->split, c.cfg->ksplit,
                 c.cfg->grid, c.cfg->kchunk);
    const int ok = ran && finite && guards && tail && err < TOL_EXACT && errr < TOL_ROUND;
    tap_ok(ok, "mma %s n=%d k=%d m=%d norm=%s epi=%s%s%s%s: rel err %.2e (rounded twin %.2e)%s%s%s%s",
           s->is_bf16 ? "bf16" : "fp16", n, k, m, norm_name[c.norm], epi_name[c.epi], c.bias ? " +bias" : "",
           c.mis == MIS_W ? " (w misaligned)" : c.mis == MIS_IN ? " (in misaligned)" : "", cfgs, err, errr,
           ran ? "" : why, ran && !finite ? ", NOT all finite" : "", ran && !guards ? ", guard overwritten" : "",
           ran && !tail ? ", rows past n touched" : "");
    free(h);
    return ok;
}

/* ---- the cases ---- */

static void test_shape(int k, int m, int is_bf16, int small)
{
    const int rows = (k == 768 && m == 771) ? 33 : 16;
    shape s = shape_new(k, m, rows, is_bf16, 7u);
    int combo = k + m;
    /* n = 1..16 (--small: 1, 3, 8, 9, 16), norm / epilogue / bias rotating */
    for (int n = 1; n <= 16; n++, combo++) {
        if (small && n != 1 && n != 3 && n != 8 && n != 9 && n != 16)
            continue;
        call c = {n, combo % 3, (combo / 3) % 3, (combo / 9) % 2 == 0, MIS_NONE, NULL};
        run_call(&s, c, NULL);
    }
    /* every norm x epilogue where the two n-tile widths end */
    for (int n = 8; n <= 16; n += 8)
        for (int nk = 0; nk < 3; nk++)
            for (int epi = 0; epi < 3; epi++) {
                if (small && nk != epi)
                    continue;
                call c = {n, nk, epi, 1, MIS_NONE, NULL};
                run_call(&s, c, NULL);
            }
    if (rows > 16)
        for (int n = 17; n <= rows; n += 16) {
            call c = {n, GS_NORM_FOLD_LAYER, GS_GEMV_EPI_ACCUMULATE, 1, MIS_NONE, NULL};
            run_call(&s, c, NULL);
        }
    if ((k == 768 && m == 2304) || (k == 776 && m == 130))
        for (int mis = MIS_W; mis <= MIS_IN; mis++)
            for (int n = 3; n <= 16; n += 13) {
                call c = {n, (mis + n) % 3, GS_GEMV_EPI_NONE, 1, mis, NULL};
                run_call(&s, c, NULL);
            }
    shape_free(&s);
}

/* Launch shapes: every split x cluster split x chunk width x grid on one
 * shape at n = 7 and 16; the grids must agree bit for bit (which block does a
 * row block does not change the order of any sum), and a repeated call too. */
static void test_cfgs(int k, int m, int is_bf16, int small)
{
    shape s = shape_new(k, m, 16, is_bf16, 7u);
    static const int splits[] = {1, 2, 4, 8}, ksplits[] = {1, 2, 4, 8}, chunks[] = {0, 64, 160}, grids[] = {0, 1, 3};
    float *first = xmalloc((size_t)16 * m * sizeof(float)), *other = xmalloc((size_t)16 * m * sizeof(float));
    int combo = k;
    for (int n = small ? 16 : 7; n <= 16; n += 9)
        for (size_t si = 0; si < 4; si++)
            for (size_t ki = 0; ki < 4; ki++)
                for (size_t ci = 0; ci < 3; ci++) {
                    if (small && (ki == 1 || ki == 3 || ci == 2)) /* --small: ksplit 1, 4; chunks auto, 64 */
                        continue;
                    int same = 1, all_ok = 1;
                    const int nk = combo % 3, epi = (combo / 3) % 2; /* not accumulate: a rerun must start alike */
                    combo++;
                    for (size_t gi = 0; gi < 3; gi++) {
                        gs_gemv_mma_cfg cfg = {.split = splits[si], .ksplit = ksplits[ki], .grid = grids[gi],
                                               .kchunk = chunks[ci]};
                        call c = {n, nk, epi, 1, MIS_NONE, &cfg};
                        all_ok &= run_call(&s, c, gi == 0 ? first : other);
                        if (gi > 0)
                            same &= memcmp(first, other, (size_t)n * m * sizeof(float)) == 0;
                    }
                    if (all_ok)
                        tap_ok(same, "mma %s n=%d k=%d m=%d split %d ksplit %d kchunk %d: grids 0, 1, 3 give the same bits",
                               is_bf16 ? "bf16" : "fp16", n, k, m, splits[si], ksplits[ki], chunks[ci]);
                }
    /* the same call twice */
    call c = {16, GS_NORM_FOLD_LAYER, GS_GEMV_EPI_GELU, 1, MIS_NONE, NULL};
    if (run_call(&s, c, first) && run_call(&s, c, other))
        tap_ok(memcmp(first, other, (size_t)16 * m * sizeof(float)) == 0,
               "mma %s k=%d m=%d: a repeated call gives the same bits", is_bf16 ? "bf16" : "fp16", k, m);
    free(first), free(other);
    shape_free(&s);
}

static void test_refusals(void)
{
    static const gs_gemv_mma_cfg bad[] = {{.split = 3}, {.split = 16}, {.ksplit = 3}, {.ksplit = 16},
                                          {.grid = -1},  {.kchunk = 48}, {.kchunk = 1 << 20}};
    float *d = dmalloc(64 * sizeof(float));
    uint16_t *w = dmalloc(64 * 2);
    gs_norm_fold none = {GS_NORM_FOLD_NONE, NULL, NULL, EPS};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok &= cuda_gemv_mma_cfg(d, d, w, 0, NULL, 1, 32, 2, 0, none, &bad[i], 0) == (int)cudaErrorInvalidValue;
    tap_ok(ok, "split 3 / 16, ksplit 3 / 16, grid -1, kchunk 48 / 2^20 refused with cudaErrorInvalidValue");
    gs_norm_fold bad_kind = {7, d, d, EPS}, no_w = {GS_NORM_FOLD_LAYER, NULL, NULL, EPS};
    tap_ok(cuda_gemv_mma(d, d, w, 0, NULL, 1, 32, 2, 0, bad_kind, 0) == (int)cudaErrorInvalidValue &&
               cuda_gemv_mma(d, d, w, 0, NULL, 1, 32, 2, 0, no_w, 0) == (int)cudaErrorInvalidValue,
           "an unknown norm kind, or a norm without weights, refused");
    cuda_or_bail(cudaDeviceSynchronize(), "sync");
    cudaFree(d), cudaFree(w);
}

/* ---- --bench and --sweep ---- */

#define REPS 50
#define BATCH 20 /* launches per timed batch; each reads a different copy of w */
#define POOL_BYTES (256UL << 20)

typedef struct bench_ctx {
    char *pool;
    float *d_in, *d_out, *d_bias, *d_nw, *d_nb;
    cudaEvent_t e0, e1;
    cudaStream_t stream;
} bench_ctx;

enum { K_GEMV, K_MMA, K_MMA_LN };

static int bench_call(bench_ctx *b, int kk, const gs_gemv_mma_cfg *cfg, int is_bf16, int n, int k, int m,
                      const void *w, cudaStream_t stream)
{
    gs_norm_fold norm = {kk == K_MMA_LN ? GS_NORM_FOLD_LAYER : GS_NORM_FOLD_NONE, b->d_nw, b->d_nb, EPS};
    if (kk == K_GEMV) {
        const gs_norm_fold none = {GS_NORM_FOLD_NONE, NULL, NULL, 0.0f};
        return cuda_gemv_half_ex(b->d_out, b->d_in, w, is_bf16, b->d_bias, n, k, m, GS_GEMV_EPI_NONE, none, stream);
    }
    return cuda_gemv_mma_cfg(b->d_out, b->d_in, w, is_bf16, b->d_bias, n, k, m, GS_GEMV_EPI_NONE, norm, cfg, stream);
}

/* Median microseconds a call of kernel kind kk, weights rotated through the
 * pool. us[0]: back-to-back launches on the default stream (includes the
 * host's launch rate, ~4.6 us a call on the H100 host); us[1]: the same calls
 * replayed from a CUDA graph (one call per copy of w in the pool, so every
 * replay still reads DRAM), closer to the kernel's own time. */
static int time_call(bench_ctx *b, int kk, const gs_gemv_mma_cfg *cfg, int is_bf16, int n, int k, int m, double us[2])
{
    const size_t wbytes = ((size_t)m * k * 2 + 255) & ~(size_t)255;
    const size_t copies = POOL_BYTES / wbytes;
    size_t c = 0;
    int rc = 0;
    float ms[REPS];
    for (int r = 0; r < 5 && !rc; r++) /* warm-up (and the one-time attribute calls, outside any capture) */
        rc = bench_call(b, kk, cfg, is_bf16, n, k, m, b->pool + (c++ % copies) * wbytes, 0);
    for (int r = 0; r < REPS && !rc; r++) {
        cudaEventRecord(b->e0, 0);
        for (int i = 0; i < BATCH && !rc; i++)
            rc = bench_call(b, kk, cfg, is_bf16, n, k, m, b->pool + (c++ % copies) * wbytes, 0);
        cudaEventRecord(b->e1, 0);
        cudaEventSynchronize(b->e1);
        cudaEventElapsedTime(&ms[r], b->e0, b->e1);
    }
    if (rc || cudaDeviceSynchronize() != cudaSuccess)
        return -1;
    qsort(ms, REPS, sizeof ms[0], cmp_float);
    us[0] = ms[REPS / 2] * 1e3 / BATCH;

    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (cudaStreamBeginCapture(b->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
        return -1;
    for (size_t i = 0; i < copies && !rc; i++)
        rc = bench_call(b, kk, cfg, is_bf16, n, k, m, b->pool + i * wbytes, b->stream);
    if (cudaStreamEndCapture(b->stream, &graph) != cudaSuccess || rc ||
        cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
        if (graph)
            cudaGraphDestroy(graph);
        return -1;
    }
    cudaGraphLaunch(exec, b->stream); /* warm-up */
    const int greps = 11;
    for (int r = 0; r < greps; r++) {
        cudaEventRecord(b->e0, b->stream);
        cudaGraphLaunch(exec, b->stream);
        cudaEventRecord(b->e1, b->stream);
        cudaEventSynchronize(b->e1);
        cudaEventElapsedTime(&ms[r], b->e0, b->e1);
    }
    const int ok = cudaStreamSynchronize(b->stream) == cudaSuccess;
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    if (!ok)
        return -1;
    qsort(ms, greps, sizeof ms[0], cmp_float);
    us[1] = ms[greps / 2] * 1e3 / (double)copies;
    return 0;
}

static double copy_gbs(bench_ctx *b)
{
    float ms[20];
    void *src = b->pool, *dst = b->pool + POOL_BYTES / 2;
    for (int r = 0; r < 3; r++)
        cudaMemcpyAsync(dst, src, POOL_BYTES / 2, cudaMemcpyDeviceToDevice, 0);
    for (int r = 0; r < 20; r++) {
        cudaEventRecord(b->e0, 0);
        cudaMemcpyAsync(dst, src, POOL_BYTES / 2, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(b->e1, 0);
        cudaEventSynchronize(b->e1);
        cudaEventElapsedTime(&ms[r], b->e0, b->e1);
    }
    qsort(ms, 20, sizeof ms[0], cmp_float);
    return 2.0 * (POOL_BYTES / 2) / (ms[10] * 1e6);
}

static void bench_setup(bench_ctx *b)
{
    cuda_or_bail(cudaEventCreate(&b->e0), "cudaEventCreate");
    cuda_or_bail(cudaEventCreate(&b->e1), "cudaEventCreate");
    cuda_or_bail(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    b->pool = dmalloc(POOL_BYTES); /* random halves (random fp32 through the device conversion) */
    const size_t chunk = 4UL << 20;  /* floats */
    float *hf = xmalloc(chunk * sizeof(float));
    for (size_t i = 0; i < chunk; i++)
        hf[i] = frand() * 0.5f;
    float *d_f = dmalloc(chunk * sizeof(float));
    upload(d_f, hf, chunk * sizeof(float));
    for (size_t off = 0; off + chunk <= POOL_BYTES / 2; off += chunk)
        cuda_or_bail((cudaError_t)cuda_convert_to_half((uint16_t *)b->pool + off, d_f, (long)chunk, 0, 0), "convert");
    b->d_in = dmalloc((size_t)16 * 6400 * sizeof(float));
    b->d_out = dmalloc((size_t)16 * 50257 * sizeof(float));
    b->d_bias = dmalloc(50257 * sizeof(float));
    b->d_nw = dmalloc(6400 * sizeof(float));
    b->d_nb = dmalloc(6400 * sizeof(float));
    cuda_or_bail(cudaMemcpy(b->d_in, d_f, (size_t)16 * 6400 * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(b->d_bias, d_f, 50257 * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(b->d_nw, d_f, 6400 * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(b->d_nb, d_f + 6400, 6400 * sizeof(float), cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_or_bail(cudaDeviceSynchronize(), "setup");
    cudaFree(d_f);
    free(hf);
}

static void bench_free(bench_ctx *b)
{
    cudaEventDestroy(b->e0), cudaEventDestroy(b->e1);
    cudaStreamDestroy(b->stream);
    cudaFree(b->pool), cudaFree(b->d_in), cudaFree(b->d_out), cudaFree(b->d_bias), cudaFree(b->d_nw),
        cudaFree(b->d_nb);
}

static const struct {
    int k, m;
    const char *name;
} bench_shapes[] = {{768, 2304, "124M qkv"},       {768, 768, "124M attn-proj"}, {768, 3072, "124M fc"},
                    {3072, 768, "124M fc-proj"},   {768, 50257, "124M logits"},  {1600, 4800, "1.5B qkv"},
                    {1600, 1600, "1.5B attn-proj"}, {1600, 6400, "1.5B fc"},      {6400, 1600, "1.5B fc-proj"}};

static int bench(void)
{
    static const int ns[] = {1, 2, 4, 5, 6, 8, 12, 16};
    bench_ctx b;
    bench_setup(&b);
    const double cgbs = copy_gbs(&b);
    printf("# device-to-device copy: %.1f GB/s (read + write, 128 MB, median of 20)\n", cgbs);
    printf("# bias on, epilogue none; w rotated through 256 MB. Each column: back-to-back launches / CUDA-graph\n"
           "# replay, us a call. mma+ln: LayerNorm folded. GB/s (w bytes only) and x copy: mma, graph-timed\n");
    printf("# %-15s %-5s %3s  %15s %15s %15s  %7s  %8s %6s\n", "shape", "dtype", "n", "gemv.cu", "mma", "mma+ln",
           "speedup", "GB/s", "x copy");
    for (size_t s = 0; s < sizeof bench_shapes / sizeof bench_shapes[0]; s++) {
        const int k = bench_shapes[s].k, m = bench_shapes[s].m;
        for (int dt = 0; dt <= 1; dt++)
            for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
                const int n = ns[t];
                if (dt == 1 && n != 8 && n != 16)
                    continue; /* bf16: the two sizes that matter */
                double tg[2], tm[2], tl[2];
                if (time_call(&b, K_GEMV, NULL, dt, n, k, m, tg) || time_call(&b, K_MMA, NULL, dt, n, k, m, tm) ||
                    time_call(&b, K_MMA_LN, NULL, dt, n, k, m, tl)) {
                    printf("  %-15s %-5s %3d  failed\n", bench_shapes[s].name, dt ? "bf16" : "fp16", n);
                    continue;
                }
                const double gbs = (double)m * k * 2 / (tm[1] * 1e3);
                printf("  %-15s %-5s %3d  %7.2f /%6.2f %7.2f /%6.2f %7.2f /%6.2f  %6.2fx  %8.1f %5.0f%%\n",
                       bench_shapes[s].name, dt ? "bf16" : "fp16", n, tg[0], tg[1], tm[0], tm[1], tl[0], tl[1],
                       tg[1] / tm[1], gbs, 100.0 * gbs / cgbs);
            }
    }
    bench_free(&b);
    return 0;
}

static int sweep(void)
{
    static const int splits[] = {1, 2, 4, 8}, ksplits[] = {1, 2, 4, 8};
    int sms = 0, dev = 0;
    cuda_or_bail(cudaGetDevice(&dev), "cudaGetDevice");
    cuda_or_bail(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "attribute");
    bench_ctx b;
    bench_setup(&b);
    printf("# fp16, bias on; us a call, CUDA-graph replay (w from DRAM); norm: LayerNorm folded for qkv, fc, logits\n"
           "# (as in the model), so ksplit > 1 there also reads whole rows per block; '-': refused / failed\n");
    printf("# %-15s %3s %5s  %8s %8s %8s %8s   (ksplit)\n", "shape", "n", "split", "1", "2", "4", "8");
    for (size_t s = 0; s < 5; s++) { /* the 124M shapes */
        const int k = bench_shapes[s].k, m = bench_shapes[s].m;
        const int kk = (s == 0 || s == 2 || s == 4) ? K_MMA_LN : K_MMA;
        for (int n = 8; n <= 16; n += 8) {
            double us[2];
            if (time_call(&b, kk, NULL, 0, n, k, m, us) == 0)
                printf("  %-15s %3d  auto  %8.2f   (the launcher's choice; graph grid per launch: auto)\n",
                       bench_shapes[s].name, n, us[1]);
            for (size_t si = 0; si < 4; si++) {
                printf("  %-15s %3d %5d ", bench_shapes[s].name, n, splits[si]);
                for (size_t ki = 0; ki < 4; ki++) {
                    gs_gemv_mma_cfg cfg = {.split = splits[si], .ksplit = ksplits[ki]};
                    if (time_call(&b, kk, &cfg, 0, n, k, m, us) == 0)
                        printf(" %8.2f", us[1]);
                    else
                        printf(" %8s", "-");
                }
                printf("\n");
            }
            for (int gm = 1; gm <= 2; gm++) { /* the persistent grid at 1 and 2 blocks a SM, auto split */
                gs_gemv_mma_cfg cfg = {.grid = gm * sms};
                if (time_call(&b, kk, &cfg, 0, n, k, m, us) == 0)
                    printf("  %-15s %3d  auto  %8.2f   (grid %d)\n", bench_shapes[s].name, n, us[1], gm * sms);
            }
        }
    }
    bench_free(&b);
    return 0;
}

int main(int argc, char **argv)
{
    if (!gpu_test_device_or_skip())
        return 0;
    const uint64_t seed = rng_seed_from_env();
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench();
    if (argc > 1 && strcmp(argv[1], "--sweep") == 0)
        return sweep();
    const int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    tap_diag("seed %llu (replay with GS_TEST_SEED=%llu)", (unsigned long long)seed, (unsigned long long)seed);

    static const int km[][2] = {{64, 37},   {768, 2304}, {768, 771}, {776, 130}, {1600, 1601},
                                {3072, 769}, {6400, 333}, {100, 29},  {13, 7}};
    for (int dt = 0; dt <= 1; dt++)
        for (size_t s = 0; s < sizeof km / sizeof km[0]; s++) {
            if (small && (long)km[s][0] * km[s][1] > (2L << 20))
                continue;
            test_shape(km[s][0], km[s][1], dt, small);
        }
    for (int dt = 0; dt <= 1; dt++) {
        test_cfgs(776, 130, dt, small);
        if (!small) {
            test_cfgs(1600, 1601, dt, small);
            test_cfgs(100, 29, dt, small);
        }
    }
    if (!small) /* GPT-2's logits with ln_f folded: the persistent grid's walk */
        for (int dt = 0; dt <= 1; dt++) {
            shape s = shape_new(768, 50257, 16, dt, 1u << GS_NORM_FOLD_LAYER);
            for (int n = 5; n <= 16; n += 11) {
                call c = {n, GS_NORM_FOLD_LAYER, GS_GEMV_EPI_NONE, 1, MIS_NONE, NULL};
                run_call(&s, c, NULL);
            }
            shape_free(&s);
        }
    test_refusals();
    return tap_done();
}
