/* test_cuda_kernels.c - every CUDA kernel of kernels/cuda/ops_cuda.h against
 * its CPU twin (kernels/cpu, and gs_sample_argmax for argmax) on fresh random
 * data, over several shapes: n = 1, odd sizes, n = 17, C = 64, 768, 1600,
 * counts that are not a multiple of 4, and pointers one float off 16-byte
 * alignment so the scalar instantiations run as well as the float4 ones.
 *
 * Each run draws a new seed and prints it; GS_TEST_SEED=<n> replays a run.
 * Every device buffer has a guard zone of 0xFF bytes (NaN) on both sides that
 * must come back untouched. Outputs are poisoned with 0xFF before each call,
 * so an element the kernel forgot to write fails the "all finite" check (in
 * place kernels cannot be poisoned; a skipped element shows in the error).
 * Agreement is ||gpu - cpu|| / ||cpu|| < 1e-5 over the whole output; argmax
 * ids must be equal, with ties planted on purpose. The norms and GELU that
 * write halves (cuda_norm_half, cuda_gelu_half) must equal their fp32 kernel
 * followed by cuda_convert_to_half bit for bit.
 *
 * Without a CUDA device it prints "1..0 # SKIP no CUDA device" and exits 0.
 *
 *   test_cuda_kernels            the TAP test (a few seconds)
 *   test_cuda_kernels --bench    each kernel's time and GB/s at prefill and decode
 *                                shapes, next to a device-to-device copy's GB/s */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "activation.h"
#include "cuda/gemv_cuda.h"
#include "cuda/ops_cuda.h"
#include "embedding.h"
#include "gather.h"
#include "norm.h"
#include "residual.h"
#include "rope.h"
#include "sampler.h"
#include "../tap.h"
#include "test_support.h" /* tests/tap.h: relative, as tests/ is not on the include path */

#define TOL 1e-5

static float *frand_buf(size_t count, float scale, float shift)
{
    float *a = xmalloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        a[i] = frand() * scale + shift;
    return a;
}

static int *irand_buf(size_t count, int lim)
{
    int *a = xmalloc(count * sizeof(int));
    for (size_t i = 0; i < count; i++)
        a[i] = irand(lim);
    return a;
}

/* ---- checks ---- */

/* One TAP line for a float output: ran, all written (finite), guards intact, close to ref. */
static void report(const char *name, int rc, const dbuf *out, const float *ref, const char *shape)
{
    char why[160] = "";
    if (!ran_ok(rc, why, sizeof why)) {
        tap_ok(0, "%s %s: %s", name, shape, why);
        return;
    }
    float *got = xmalloc(out->count * sizeof(float));
    dbuf_get(out, got);
    int fin = all_finite(got, out->count);
    int guards = dbuf_guards_ok(out);
    double err = gs_test_rel_err(got, ref, out->count);
    tap_ok(fin && guards && err < TOL, "%s %s: rel err %.2e%s%s", name, shape, err,
           fin ? "" : ", NOT all written/finite", guards ? "" : ", GUARD ZONE OVERWRITTEN");
    free(got);
}

/* ---- embedding ---- */

static void test_embed(int n, int C, int with_wpe, int off)
{
    const int V = 37, P = 29; /* rows of wte and wpe */
    float *wte = frand_buf((size_t)V * C, 1.0f, 0.0f), *wpe = frand_buf((size_t)P * C, 0.5f, 0.0f);
    int *tok = irand_buf(n, V), *pos = irand_buf(n, P);
    float *ref = xmalloc((size_t)n * C * sizeof(float));
    cpu_embed(ref, tok, pos, wte, with_wpe ? wpe : NULL, n, C);

    dbuf d_wte = dbuf_from(wte, (size_t)V * C, 0), d_wpe = dbuf_from(wpe, (size_t)P * C, 0);
    dbuf d_tok = dbuf_from(tok, n, 0), d_pos = dbuf_from(pos, n, 0);
    dbuf d_out = dbuf_new((size_t)n * C, off);
    dbuf_poison(&d_out);
    int rc = cuda_embed(d_out.p, d_tok.p, d_pos.p, d_wte.p, with_wpe ? d_wpe.p : NULL, n, C, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d C=%d %s%s", n, C, with_wpe ? "wte+wpe" : "wte only",
             off ? " (misaligned out)" : "");
    report("embed", rc, &d_out, ref, shape);

    dbuf_free(&d_wte), dbuf_free(&d_wpe), dbuf_free(&d_tok), dbuf_free(&d_pos), dbuf_free(&d_out);
    free(wte), free(wpe), free(tok), free(pos), free(ref);
}

/* ---- layernorm / rmsnorm ---- */

static void test_norm(int rms, int n, int C, float shift, int off)
{
    const float eps = 1e-5f;
    /* shift moves the mean far from zero against a spread of 1: a one-pass
     * E[x^2] - mean^2 would lose the variance there. */
    float *x = frand_buf((size_t)n * C, 1.0f, shift);
    float *w = frand_buf(C, 0.5f, 1.0f), *b = frand_buf(C, 0.5f, 0.0f);
    float *ref = xmalloc((size_t)n * C * sizeof(float));
    if (rms)
        cpu_rmsnorm_ref(ref, x, w, n, C, eps);
    else
        cpu_layernorm_ref(ref, x, w, b, n, C, eps);

    dbuf d_x = dbuf_from(x, (size_t)n * C, off), d_w = dbuf_from(w, C, 0), d_b = dbuf_from(b, C, 0);
    dbuf d_out = dbuf_new((size_t)n * C, 0);
    dbuf_poison(&d_out);
    int rc = rms ? cuda_rmsnorm(d_out.p, d_x.p, d_w.p, n, C, eps, 0)
                 : cuda_layernorm(d_out.p, d_x.p, d_w.p, d_b.p, n, C, eps, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d C=%d mean~%g%s", n, C, shift, off ? " (misaligned in)" : "");
    report(rms ? "rmsnorm" : "layernorm", rc, &d_out, ref, shape);

    dbuf_free(&d_x), dbuf_free(&d_w), dbuf_free(&d_b), dbuf_free(&d_out);
    free(x), free(w), free(b), free(ref);
}

/* In place on the gathered rows, as the engine's final norm runs. */
static void test_norm_in_place(int rms, int n, int C)
{
    const float eps = 1e-5f;
    float *x = frand_buf((size_t)n * C, 2.0f, 0.5f);
    float *w = frand_buf(C, 0.5f, 1.0f), *b = frand_buf(C, 0.5f, 0.0f);
    float *ref = xmalloc((size_t)n * C * sizeof(float));
    if (rms)
        cpu_rmsnorm_ref(ref, x, w, n, C, eps);
    else
        cpu_layernorm_ref(ref, x, w, b, n, C, eps);
    dbuf d_x = dbuf_from(x, (size_t)n * C, 0), d_w = dbuf_from(w, C, 0), d_b = dbuf_from(b, C, 0);
    int rc = rms ? cuda_rmsnorm(d_x.p, d_x.p, d_w.p, n, C, eps, 0)
                 : cuda_layernorm(d_x.p, d_x.p, d_w.p, d_b.p, n, C, eps, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d C=%d in place (out == in)", n, C);
    report(rms ? "rmsnorm" : "layernorm", rc, &d_x, ref, shape);
    dbuf_free(&d_x), dbuf_free(&d_w), dbuf_free(&d_b);
    free(x), free(w), free(b), free(ref);
}

/* ---- rows written as halves: cuda_norm_half, cuda_gelu_half ----
 *
 * Each must equal its fp32 kernel followed by cuda_convert_to_half, bit for
 * bit (the forward pass swaps the pair for it). Weights up to ~3e4 push some
 * outputs past fp16's 65504 (infinity, as the conversion gives), a NaN in one
 * row's input makes that row NaN (one canonical NaN), and the output one half
 * off 8-byte alignment takes the scalar stores. Poisoned with 0xFF bytes
 * (0xFFFF is no value either path writes), so a skipped element shows.
 * Misaligned, the fp32 reference is written misaligned too: the norms pick
 * their kernel by alignment, and the scalar one sums in another order. */
enum { HALF_LN, HALF_RMS, HALF_GELU };

static void test_half_out(int which, int n, int C, int is_bf16, int off)
{
    static const char *names[] = {"layernorm_half", "rmsnorm_half", "gelu_half"};
    const float eps = 1e-5f;
    const size_t count = (size_t)n * C;
    float *x = frand_buf(count, 3.0f, 0.25f);
    float *w = frand_buf(C, 3e4f, 0.0f), *b = frand_buf(C, 0.5f, 0.0f);
    if (n > 2)
        x[(size_t)C + (size_t)C / 2] = NAN; /* row 1 */
    dbuf d_x = dbuf_from(x, count, 0), d_w = dbuf_from(w, C, 0), d_b = dbuf_from(b, C, 0);
    /* misaligned: the fp32 reference's out too, so both take the scalar kernel (its sums run in another order) */
    dbuf d_f32 = dbuf_new(count, off);
    uint16_t *d_ref = NULL, *d_got = NULL;
    const size_t bytes = (count + 8) * 2;
    cuda_or_bail(cudaMalloc((void **)&d_ref, bytes), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d_got, bytes), "cudaMalloc");
    cuda_or_bail(cudaMemset(d_got, 0xFF, bytes), "cudaMemset");
    uint16_t *got_p = d_got + (off ? 1 : 0);
    int rc = 0;
    if (which == HALF_GELU) {
        dbuf_put(&d_f32, x);
        rc = cuda_gelu(d_f32.p, (long)count, 0); /* in place */
        rc |= cuda_convert_to_half(d_ref, d_f32.p, (long)count, is_bf16, 0);
        rc |= cuda_gelu_half(got_p, d_x.p, (long)count, is_bf16, 0);
    } else {
        const int rms = which == HALF_RMS;
        rc = rms ? cuda_rmsnorm(d_f32.p, d_x.p, d_w.p, n, C, eps, 0)
                 : cuda_layernorm(d_f32.p, d_x.p, d_w.p, d_b.p, n, C, eps, 0);
        rc |= cuda_convert_to_half(d_ref, d_f32.p, (long)count, is_bf16, 0);
        rc |= cuda_norm_half(got_p, d_x.p, d_w.p, rms ? NULL : d_b.p, rms, n, C, eps, is_bf16, 0);
    }
    char why[160] = "";
    if (!ran_ok(rc, why, sizeof why)) {
        tap_ok(0, "%s %s n=%d C=%d: %s", names[which], is_bf16 ? "bf16" : "fp16", n, C, why);
    } else {
        uint16_t *ref = xmalloc(count * 2), *got = xmalloc(bytes);
        cuda_or_bail(cudaMemcpy(ref, d_ref, count * 2, cudaMemcpyDeviceToHost), "cudaMemcpy");
        cuda_or_bail(cudaMemcpy(got, d_got, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
        size_t differ = 0;
        for (size_t i = 0; i < count; i++)
            differ += got[i + (off ? 1 : 0)] != ref[i];
        int guards = got[off ? count + 1 : count] == 0xFFFF && (!off || got[0] == 0xFFFF);
        tap_ok(differ == 0 && guards && dbuf_guards_ok(&d_x),
               "%s %s n=%d C=%d%s: the fp32 kernel then cuda_convert_to_half, bit for bit (%zu of %zu differ)%s",
               names[which], is_bf16 ? "bf16" : "fp16", n, C, off ? " (misaligned out)" : "", differ, count,
               guards ? "" : ", PAST THE END WRITTEN");
        free(ref), free(got);
    }
    cudaFree(d_ref), cudaFree(d_got);
    dbuf_free(&d_x), dbuf_free(&d_w), dbuf_free(&d_b), dbuf_free(&d_f32);
    free(x), free(w), free(b);
}

/* ---- elementwise: gelu, swiglu, residual_add ---- */

enum { ELT_GELU, ELT_SWIGLU, ELT_RESIDUAL };

static void test_elementwise(int which, long count, int off)
{
    static const char *names[] = {"gelu", "swiglu", "residual_add"};
    /* gelu over [-5, 5): both tails and the curved middle; swiglu's up over
     * [-8, 8) reaches where exp(-v) is large. */
    float *x = frand_buf(count, which == ELT_GELU ? 5.0f : which == ELT_SWIGLU ? 8.0f : 1.0f, 0.0f);
    float *y = frand_buf(count, 2.0f, 0.0f);
    float *ref = xmalloc((size_t)count * sizeof(float));
    memcpy(ref, x, (size_t)count * sizeof(float));
    if (which == ELT_GELU)
        cpu_gelu_ref(ref, count);
    else if (which == ELT_SWIGLU)
        cpu_swiglu_ref(ref, y, count);
    else
        cpu_residual_add(NULL, ref, y, count); /* NULL pool: runs on the calling thread */

    dbuf d_x = dbuf_from(x, count, off), d_y = dbuf_from(y, count, off);
    int rc = which == ELT_GELU     ? cuda_gelu(d_x.p, count, 0)
             : which == ELT_SWIGLU ? cuda_swiglu(d_x.p, d_y.p, count, 0)
                                   : cuda_residual_add(d_x.p, d_y.p, count, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "count=%ld%s", count, off ? " (misaligned)" : "");
    report(names[which], rc, &d_x, ref, shape);

    dbuf_free(&d_x), dbuf_free(&d_y);
    free(x), free(y), free(ref);
}

/* ---- add_bias ---- */

static void test_add_bias(int n, int m, int off)
{
    float *x = frand_buf((size_t)n * m, 1.0f, 0.0f), *bias = frand_buf(m, 1.0f, 0.0f);
    float *ref = xmalloc((size_t)n * m * sizeof(float));
    /* The twin is the bias part of cpu_matmul_ref: out[i][j] = dot + bias[j]. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
            ref[(size_t)i * m + j] = x[(size_t)i * m + j] + bias[j];
    dbuf d_x = dbuf_from(x, (size_t)n * m, off), d_b = dbuf_from(bias, m, 0);
    int rc = cuda_add_bias(d_x.p, d_b.p, n, m, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d m=%d%s", n, m, off ? " (misaligned)" : "");
    report("add_bias", rc, &d_x, ref, shape);
    dbuf_free(&d_x), dbuf_free(&d_b);
    free(x), free(bias), free(ref);
}

/* ---- rope ---- */

static void test_rope(int n, int n_head, int n_kv_head, int head_dim, float theta, int off)
{
    /* q, k and v heads: only q and k turn; v must come back unchanged. */
    const int stride = (n_head + 2 * n_kv_head) * head_dim;
    const size_t count = (size_t)n * stride;
    float *qkv = frand_buf(count, 1.0f, 0.0f);
    int *pos = irand_buf(n, 8192);
    pos[0] = 0; /* the identity rotation */
    float *ref = xmalloc(count * sizeof(float));
    memcpy(ref, qkv, count * sizeof(float));
    cpu_rope_ref(ref, pos, n, stride, n_head, n_kv_head, head_dim, theta);

    dbuf d_qkv = dbuf_from(qkv, count, off), d_pos = dbuf_from(pos, n, 0);
    int rc = cuda_rope(d_qkv.p, d_pos.p, n, stride, n_head, n_kv_head, head_dim, theta, 0);
    char shape[128];
    snprintf(shape, sizeof shape, "n=%d heads=%d+%d head_dim=%d theta=%g%s", n, n_head, n_kv_head, head_dim,
             theta, off ? " (misaligned)" : "");
    report("rope", rc, &d_qkv, ref, shape);
    dbuf_free(&d_qkv), dbuf_free(&d_pos);
    free(qkv), free(pos), free(ref);
}

/* ---- gather ---- */

static void test_gather(int n, int C, int off)
{
    const int R = 40; /* rows to choose from; repeats allowed */
    float *in = frand_buf((size_t)R * C, 1.0f, 0.0f);
    int *rows = irand_buf(n, R);
    float *ref = xmalloc((size_t)n * C * sizeof(float));
    cpu_gather_rows(ref, in, rows, n, C);
    dbuf d_in = dbuf_from(in, (size_t)R * C, 0), d_rows = dbuf_from(rows, n, 0);
    dbuf d_out = dbuf_new((size_t)n * C, off);
    dbuf_poison(&d_out);
    int rc = cuda_gather_rows(d_out.p, d_in.p, d_rows.p, n, C, 0);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d C=%d%s", n, C, off ? " (misaligned out)" : "");
    report("gather_rows", rc, &d_out, ref, shape);
    dbuf_free(&d_in), dbuf_free(&d_rows), dbuf_free(&d_out);
    free(in), free(rows), free(ref);
}

/* ---- argmax ---- */

/* specials: the corner rows of the CPU's loop (all equal, all -inf, NaN at 0,
 * NaN beside the max), each in turn, on top of the planted ties. */
static void test_argmax(int n, int vocab, int off, int specials)
{
    const size_t count = (size_t)n * vocab;
    float *lg = frand_buf(count, 10.0f, 0.0f);
    for (int r = 0; r < n; r++) {
        float *row = lg + (size_t)r * vocab;
        /* Plant a tie for the maximum at two or three random ids. */
        int k = 2 + irand(2);
        float top = 20.0f + frand();
        for (int t = 0; t < k; t++)
            row[irand(vocab)] = top;
        if (!specials)
            continue;
        switch (r % 5) {
        case 0: /* all equal: id 0 */
            for (int c = 0; c < vocab; c++)
                row[c] = 1.5f;
            break;
        case 1: /* all -inf: id 0 */
            for (int c = 0; c < vocab; c++)
                row[c] = -INFINITY;
            break;
        case 2: /* NaN at id 0: the CPU never replaces it */
            row[0] = NAN;
            break;
        case 3: /* NaNs beside the maximum: ignored */
            for (int c = 1; c < vocab; c += 7) /* from 1: a NaN at 0 is case 2 */
                if (row[c] != top)
                    row[c] = NAN;
            break;
        default: /* the maximum at the last id, tied with one in the middle */
            row[vocab - 1] = top + 1.0f;
            row[vocab / 2] = top + 1.0f;
            break;
        }
    }
    int *ref = xmalloc((size_t)n * sizeof(int)), *got = xmalloc((size_t)n * sizeof(int));
    for (int r = 0; r < n; r++)
        ref[r] = gs_sample_argmax(lg + (size_t)r * vocab, vocab);

    dbuf d_lg = dbuf_from(lg, count, off), d_out = dbuf_new(n, 0);
    dbuf_poison(&d_out); /* -1 in every slot */
    int rc = cuda_argmax(d_out.p, d_lg.p, n, vocab, 0);
    char shape[128], why[160] = "";
    snprintf(shape, sizeof shape, "n=%d vocab=%d%s%s", n, vocab, off ? " (misaligned)" : "",
             specials ? " with ties/-inf/NaN rows" : " with planted ties");
    if (!ran_ok(rc, why, sizeof why)) {
        tap_ok(0, "argmax %s: %s", shape, why);
    } else {
        dbuf_get(&d_out, got);
        int bad = 0, first_bad = -1;
        for (int r = 0; r < n; r++)
            if (got[r] != ref[r] && bad++ == 0)
                first_bad = r;
        int guards = dbuf_guards_ok(&d_out);
        if (bad)
            tap_diag("argmax %s: row %d gave id %d, the CPU %d", shape, first_bad, got[first_bad],
                     ref[first_bad]);
        tap_ok(!bad && guards, "argmax %s: %d of %d ids equal the CPU's%s", shape, n - bad, n,
               guards ? "" : ", GUARD ZONE OVERWRITTEN");
    }
    dbuf_free(&d_lg), dbuf_free(&d_out);
    free(lg), free(ref), free(got);
}

/* ---- empty calls ---- */

static void test_empty(void)
{
    int rc = 0;
    rc |= cuda_embed(NULL, NULL, NULL, NULL, NULL, 0, 768, 0);
    rc |= cuda_layernorm(NULL, NULL, NULL, NULL, 0, 768, 1e-5f, 0);
    rc |= cuda_rmsnorm(NULL, NULL, NULL, 0, 768, 1e-5f, 0);
    rc |= cuda_gelu(NULL, 0, 0);
    rc |= cuda_swiglu(NULL, NULL, 0, 0);
    rc |= cuda_add_bias(NULL, NULL, 0, 768, 0);
    rc |= cuda_rope(NULL, NULL, 0, 192, 1, 1, 64, 10000.0f, 0);
    rc |= cuda_residual_add(NULL, NULL, 0, 0);
    rc |= cuda_gather_rows(NULL, NULL, NULL, 0, 768, 0);
    rc |= cuda_argmax(NULL, NULL, 0, 50257, 0);
    cudaError_t sync = cudaDeviceSynchronize();
    tap_ok(rc == 0 && sync == cudaSuccess, "n == 0 / count == 0: every kernel returns 0 without launching");
}

/* ---- --bench: time and bandwidth ---- */

typedef enum { B_EMBED, B_LAYERNORM, B_RMSNORM, B_GELU, B_SWIGLU, B_RESIDUAL, B_ADD_BIAS, B_ROPE, B_GATHER,
               B_ARGMAX, B_COPY, B_COUNT } bench_kind;

typedef struct bench_bufs {
    float *a, *b, *c, *w, *bias; /* a, b, c: n*C floats each; w, bias: C floats */
    int *ids;                     /* n ids, all < n */
} bench_bufs;

static int bench_launch(bench_kind k, const bench_bufs *d, int n, int C)
{
    switch (k) {
    case B_EMBED: return cuda_embed(d->c, d->ids, d->ids, d->a, d->b, n, C, 0);
    case B_LAYERNORM: return cuda_layernorm(d->c, d->a, d->w, d->bias, n, C, 1e-5f, 0);
    case B_RMSNORM: return cuda_rmsnorm(d->c, d->a, d->w, n, C, 1e-5f, 0);
    case B_GELU: return cuda_gelu(d->c, (long)n * C, 0);
    case B_SWIGLU: return cuda_swiglu(d->c, d->a, (long)n * C, 0);
    case B_RESIDUAL: return cuda_residual_add(d->c, d->a, (long)n * C, 0);
    case B_ADD_BIAS: return cuda_add_bias(d->c, d->bias, n, C, 0);
    /* qkv rows of C floats: 12 q heads + 4 k heads + 4 v heads of C/20 */
    case B_ROPE: return cuda_rope(d->c, d->ids, n, C, 12, 4, C / 20, 10000.0f, 0);
    case B_GATHER: return cuda_gather_rows(d->c, d->a, d->ids, n, C, 0);
    case B_ARGMAX: return cuda_argmax(d->ids, d->a, n, C, 0);
    default: return (int)cudaMemcpy(d->c, d->a, (size_t)n * C * sizeof(float), cudaMemcpyDeviceToDevice);
    }
}

/* Bytes each call must move at the least (the floor is bytes / copy bandwidth). */
static double bench_bytes(bench_kind k, int n, int C)
{
    double e = (double)n * C * sizeof(float);
    switch (k) {
    case B_EMBED: case B_SWIGLU: case B_RESIDUAL: return 3 * e;
    case B_ROPE: return 2 * e * 16 / 20; /* q and k heads only */
    case B_ARGMAX: return e;
    default: return 2 * e;
    }
}

static int bench(void)
{
    static const char *names[] = {"embed", "layernorm", "rmsnorm", "gelu", "swiglu", "residual_add",
                                  "add_bias", "rope", "gather_rows", "argmax", "copy (D2D)"};
    /* prefill: 8192 x 3200 floats = 105 MB per array, past the 50 MB L2; decode: one GPT-2
     * row; then argmax alone over logits rows (GPT-2's and Llama-3's vocab). */
    static const int shapes[][2] = {{8192, 3200}, {1, 768}, {1, 50257}, {16, 50257}, {256, 50257}, {64, 128256}};
    const size_t max_elems = (size_t)8192 * 3200;
    bench_bufs d;
    cuda_or_bail(cudaMalloc((void **)&d.a, max_elems * 4), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d.b, max_elems * 4), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d.c, max_elems * 4), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d.w, 65536 * 4), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d.bias, 65536 * 4), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d.ids, 8192 * 4), "cudaMalloc"); /* n <= 8192 */
    /* Not all-zero data: small random values, ids 0..n-1 reversed. */
    float *h = frand_buf(max_elems, 1.0f, 0.0f);
    cuda_or_bail(cudaMemcpy(d.a, h, max_elems * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d.b, h, max_elems * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d.c, h, max_elems * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d.w, h, 65536 * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    cuda_or_bail(cudaMemcpy(d.bias, h + 65536, 65536 * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    free(h);
    cudaEvent_t e0, e1;
    cuda_or_bail(cudaEventCreate(&e0), "cudaEventCreate");
    cuda_or_bail(cudaEventCreate(&e1), "cudaEventCreate");
    enum { REPS = 51 };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], C = shapes[s][1];
        int *ids = xmalloc((size_t)n * sizeof(int));
        for (int i = 0; i < n; i++)
            ids[i] = n - 1 - i;
        cuda_or_bail(cudaMemcpy(d.ids, ids, (size_t)n * sizeof(int), cudaMemcpyHostToDevice), "cudaMemcpy");
        free(ids);
        printf("n=%d C=%d (median of %d, after a warm-up)\n", n, C, REPS);
        for (int k = 0; k < B_COUNT; k++) {
            int logits_shape = s >= 2;
            if (logits_shape != (k == B_ARGMAX) && k != B_COPY)
                continue; /* argmax runs on logits shapes only, the others never do */
            float ms[REPS];
            int rc = bench_launch(k, &d, n, C);
            for (int r = 0; r < REPS && rc == 0; r++) {
                cudaEventRecord(e0, 0);
                rc = bench_launch(k, &d, n, C);
                cudaEventRecord(e1, 0);
                cudaEventSynchronize(e1);
                cudaEventElapsedTime(&ms[r], e0, e1);
            }
            if (rc != 0 || cudaDeviceSynchronize() != cudaSuccess) {
                printf("  %-13s failed: %s\n", names[k], cudaGetErrorString((cudaError_t)rc));
                continue;
            }
            qsort(ms, REPS, sizeof ms[0], cmp_float);
            double us = ms[REPS / 2] * 1e3;
            printf("  %-13s %9.2f us  %7.1f GB/s\n", names[k], us, bench_bytes(k, n, C) / (us * 1e3));
        }
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(d.a), cudaFree(d.b), cudaFree(d.c), cudaFree(d.w), cudaFree(d.bias), cudaFree(d.ids);
    return 0;
}

int main(int argc, char **argv)
{
    if (!gpu_test_device_or_skip())
        return 0;
    const uint64_t seed = rng_seed_from_env();
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench();
    tap_diag("seed %llu (replay with GS_TEST_SEED=%llu)", (unsigned long long)seed, (unsigned long long)seed);

    static const int rows_C[][2] = {{1, 768}, {17, 768}, {17, 64}, {17, 1600}, {5, 13}, {3, 1}, {64, 4096}};
    const int nshapes = (int)(sizeof rows_C / sizeof rows_C[0]);

    for (int s = 0; s < nshapes; s++)
        test_embed(rows_C[s][0], rows_C[s][1], 1, 0);
    test_embed(17, 768, 0, 0);
    test_embed(17, 13, 0, 0);
    test_embed(17, 768, 1, 1);
    test_embed(70000, 8, 1, 0); /* more rows than gridDim.y: the row loop wraps */

    for (int rms = 0; rms <= 1; rms++) {
        for (int s = 0; s < nshapes; s++)
            test_norm(rms, rows_C[s][0], rows_C[s][1], 0.0f, 0);
        test_norm(rms, 17, 768, 0.0f, 1);
        /* one width per register-resident instantiation (float4s per lane
         * 1, 2, 4, 8, 12, 24, 32), then rows too wide for registers (the
         * multi-pass float4 kernel) */
        static const int widths[] = {4, 256, 512, 1024, 1280, 3072, 3200, 4100, 6144};
        for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
            test_norm(rms, 9, widths[i], 0.5f, 0);
        test_norm(rms, 5, 6144, 300.0f, 0);
        test_norm(rms, 17, 1600, 300.0f, 0);
        test_norm(rms, 3, 13, -1000.0f, 1);
        test_norm(rms, 1000, 768, 0.0f, 0); /* many blocks of 8 rows */
        test_norm_in_place(rms, 17, 768);
    }

    for (int bf16 = 0; bf16 <= 1; bf16++) {
        for (int which = HALF_LN; which <= HALF_RMS; which++) {
            static const int half_C[] = {768, 64, 13, 3072, 5000}; /* registers, scalar, the multi-pass kernel */
            for (size_t i = 0; i < sizeof half_C / sizeof half_C[0]; i++)
                test_half_out(which, 17, half_C[i], bf16, 0);
            test_half_out(which, 1000, 768, bf16, 0);
            test_half_out(which, 17, 768, bf16, 1);
            test_half_out(which, 5, 768, bf16, 0); /* decode-sized rows */
        }
        test_half_out(HALF_GELU, 17, 3072, bf16, 0);
        test_half_out(HALF_GELU, 1, 13, bf16, 0);
        test_half_out(HALF_GELU, 17, 3072, bf16, 1);
    }

    static const long counts[] = {1, 3, 4, 17, 768, 17 * 1600 + 3, 17 * 3072, (1L << 20) + 1};
    for (int which = ELT_GELU; which <= ELT_RESIDUAL; which++) {
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
            test_elementwise(which, counts[i], 0);
        test_elementwise(which, 17 * 768 + 1, 1);
        test_elementwise(which, 3, 1);
    }

    test_add_bias(1, 768, 0);
    test_add_bias(17, 2304, 0);
    test_add_bias(5, 13, 0);
    test_add_bias(17, 4800, 0);
    test_add_bias(3, 768, 1);
    test_add_bias(70000, 8, 0); /* more rows than gridDim.y: the row loop wraps */

    test_rope(1, 4, 4, 64, 10000.0f, 0);     /* decode, Llama-2 style */
    test_rope(17, 8, 2, 128, 500000.0f, 0);  /* grouped kv heads, Llama-3 theta */
    test_rope(5, 3, 1, 10, 10000.0f, 0);     /* pairs not a multiple of anything */
    test_rope(17, 12, 12, 64, 10000.0f, 1);  /* misaligned: scalar path */
    test_rope(3, 2, 1, 7, 10000.0f, 0);      /* odd head_dim: last element untouched */
    test_rope(64, 32, 8, 128, 10000.0f, 0);  /* 2560 items: three chunks per token */
    test_rope(70000, 1, 1, 4, 10000.0f, 0);  /* more tokens than gridDim.y */

    for (int s = 0; s < nshapes; s++)
        test_gather(rows_C[s][0], rows_C[s][1], 0);
    test_gather(17, 768, 1);
    test_gather(70000, 4, 0);

    test_argmax(1, 50257, 0, 0);
    test_argmax(17, 32000, 0, 0);
    test_argmax(17, 50257, 0, 0); /* odd vocab: rows start off 16-byte alignment */
    test_argmax(4, 7, 0, 0);
    test_argmax(3, 1, 0, 0);
    test_argmax(5, 1000, 1, 0);
    test_argmax(10, 1000, 0, 1);
    test_argmax(10, 50257, 0, 1);

    test_empty();
    return tap_done();
}
