/* test_cuda_fused.c - kernels/cuda/fused.cu against its CPU twin
 * kernels/cpu/fused.c, and the twin against the unfused pair
 * (cpu_residual_add + cpu_layernorm_ref / cpu_rmsnorm_ref).
 *
 * Fresh random data each run; the seed is printed and GS_TEST_SEED=<n>
 * replays a run. Device outputs are poisoned with 0xFF bytes (NaN) before
 * each call; both the updated x and out must come back finite everywhere and
 * within a relative norm error of 1e-5 of the twin. Shapes cover the
 * register path (C % 4 == 0, C <= 4096), the float4 multi-pass path (4100)
 * and the scalar path (13).
 * Without a CUDA device it prints "1..0 # SKIP no CUDA device" and exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "cuda/fused_cuda.h"
#include "fused.h"
#include "norm.h"
#include "residual.h"
#include "tap.h"

static float *alloc_f(size_t count)
{
    float *p = malloc(count * sizeof *p);
    if (!p) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    return p;
}

static float *dev_f(size_t count)
{
    void *p = NULL;
    cuda_or_bail(cudaMalloc(&p, count * sizeof(float)), "cudaMalloc");
    return p;
}

/* ||a - b|| / ||b||, or the absolute norm when b is zero; infinite if any a is not finite. */
static double rel_err(const float *a, const float *b, size_t count)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* One shape, one norm (rms = 0: LayerNorm, 1: RMSNorm). */
static void check_shape(int n, int C, int rms)
{
    const char *name = rms ? "residual_rmsnorm" : "residual_layernorm";
    const float eps = 1e-5f;
    size_t count = (size_t)n * C;
    float *x0 = alloc_f(count), *y = alloc_f(count), *w = alloc_f(C), *b = alloc_f(C);
    float *xc = alloc_f(count), *oc = alloc_f(count);  /* CPU twin */
    float *xu = alloc_f(count), *ou = alloc_f(count);  /* unfused pair */
    float *xg = alloc_f(count), *og = alloc_f(count);  /* device results */
    for (size_t i = 0; i < count; i++) {
        x0[i] = frand();
        y[i] = frand();
    }
    for (int c = 0; c < C; c++) {
        w[c] = 1.0f + 0.5f * frand();
        b[c] = 0.5f * frand();
    }

    /* The twin against the unfused pair. */
    memcpy(xc, x0, count * sizeof *xc);
    memcpy(xu, x0, count * sizeof *xu);
    cpu_residual_add(NULL, xu, y, (long)count);
    if (rms) {
        cpu_residual_rmsnorm(xc, y, oc, w, n, C, eps);
        cpu_rmsnorm_ref(ou, xu, w, n, C, eps);
    } else {
        cpu_residual_layernorm(xc, y, oc, w, b, n, C, eps);
        cpu_layernorm_ref(ou, xu, w, b, n, C, eps);
    }
    double ex = rel_err(xc, xu, count), eo = rel_err(oc, ou, count);
    tap_ok(ex < 1e-6 && eo < 1e-6, "cpu %s n=%d C=%d matches the unfused pair (x %.2e, out %.2e)", name, n, C, ex,
           eo);

    /* The device against the twin. */
    float *dx = dev_f(count), *dy = dev_f(count), *dout = dev_f(count), *dw = dev_f(C), *db = dev_f(C);
    cuda_or_bail(cudaMemcpy(dx, x0, count * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(dy, y, count * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(dw, w, C * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(db, b, C * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemset(dout, 0xFF, count * sizeof(float)), "cudaMemset");
    int rc = rms ? cuda_residual_rmsnorm(dx, dy, dout, dw, n, C, eps, 0)
                 : cuda_residual_layernorm(dx, dy, dout, dw, db, n, C, eps, 0);
    cudaError_t sync = cudaDeviceSynchronize();
    cuda_or_bail(cudaMemcpy(xg, dx, count * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(og, dout, count * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
    int finite = all_finite(xg, count) && all_finite(og, count);
    ex = rel_err(xg, xc, count);
    eo = rel_err(og, oc, count);
    tap_ok(rc == 0 && sync == cudaSuccess && finite && ex < 1e-5 && eo < 1e-5,
           "cuda %s n=%d C=%d (rc %d, finite %d, x %.2e, out %.2e)", name, n, C, rc, finite, ex, eo);

    cudaFree(dx), cudaFree(dy), cudaFree(dout), cudaFree(dw), cudaFree(db);
    free(x0), free(y), free(w), free(b), free(xc), free(oc), free(xu), free(ou), free(xg), free(og);
}

int main(void)
{
    if (!gpu_test_device_or_skip())
        return 0;
    const unsigned long long seed = rng_seed_from_env();
    tap_diag("seed %llu (GS_TEST_SEED=%llu replays)", seed, seed);

    static const int ns[] = {1, 7, 64};
    static const int Cs[] = {64, 768, 1024, 1600, 13, 4100};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof Cs / sizeof Cs[0]; j++)
            for (int rms = 0; rms <= 1; rms++)
                check_shape(ns[i], Cs[j], rms);
    return tap_done();
}
