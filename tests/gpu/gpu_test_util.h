/* gpu_test_util.h - what the GPU tests share: a seeded xorshift64* generator
 * (GS_TEST_SEED replays a run), host allocation that bails out, CUDA calls
 * that bail out, device buffers with 0xFF guard zones, the host's fp16 / bf16
 * conversions and GELU, and the checks on a kernel's result. Each test is its
 * own program: everything here is static.
 * Include after <cuda_runtime_api.h>; GUARD (4-byte elements of 0xFF on each
 * side of a device buffer) may be defined first. */
#ifndef GS_GPU_TEST_UTIL_H
#define GS_GPU_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#ifndef GUARD
#define GUARD 16 /* 64 bytes: keeps alignment */
#endif

/* 1 when there is a CUDA device; else prints the TAP plan that skips the
 * whole program ("1..0 # SKIP no CUDA device") and returns 0. */
static __attribute__((unused)) int gpu_test_device_or_skip(void)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0)
        return 1;
    printf("1..0 # SKIP no CUDA device\n");
    return 0;
}

/* ---- random data: xorshift64*, seeded per run ---- */

static uint64_t rng_state;

static __attribute__((unused)) uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Seeds rng_state from GS_TEST_SEED (decimal or 0x hex), else from the clock
 * and the pid, and returns the seed so a test can print how to replay it. */
static __attribute__((unused)) uint64_t rng_seed_from_env(void)
{
    const char *env = getenv("GS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : ((uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)getpid();
    if (seed == 0)
        seed = 0x9E3779B97F4A7C15ULL; /* xorshift's one forbidden state */
    rng_state = seed;
    return seed;
}

/* uniform in [-1, 1) */
static __attribute__((unused)) float frand(void) { return (float)((double)(rng_next() >> 40) / (double)(1ULL << 23) - 1.0); }
static __attribute__((unused)) int irand(int n) { return (int)(rng_next() % (uint64_t)n); }

static __attribute__((unused)) void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        printf("Bail out! out of host memory\n");
        exit(2);
    }
    return p;
}

static __attribute__((unused)) void cuda_or_bail(cudaError_t rc, const char *what)
{
    if (rc != cudaSuccess) {
        printf("Bail out! %s: %s\n", what, cudaGetErrorString(rc));
        exit(2);
    }
}

/* ---- device buffers with guard zones ----
 * count 4-byte elements (float or int) at p = base + GUARD + off; off = 1
 * puts p one float past a 16-byte boundary, which sends the kernels down
 * their scalar paths. */

typedef struct dbuf {
    unsigned char *base;
    void *p;
    size_t count;
    int off;
} dbuf;

static __attribute__((unused)) size_t dbuf_total(const dbuf *b) { return b->count + 2 * GUARD + 1; }


static __attribute__((unused)) dbuf dbuf_new(size_t count, int off)
{
    dbuf b = {NULL, NULL, count, off};
    void *base = NULL;
    cuda_or_bail(cudaMalloc(&base, dbuf_total(&b) * 4), "cudaMalloc");
    b.base = base;
    b.p = b.base + (size_t)(GUARD + off) * 4;
    cuda_or_bail(cudaMemset(b.base, 0xFF, dbuf_total(&b) * 4), "cudaMemset");
    return b;
}

static __attribute__((unused)) void dbuf_free(dbuf *b)
{
    cudaFree(b->base);
    b->base = NULL;
}

/* The whole allocation, guards included, to 0xFF bytes (NaN as float, -1 as int). */
static __attribute__((unused)) void dbuf_poison(dbuf *b) { cuda_or_bail(cudaMemset(b->base, 0xFF, dbuf_total(b) * 4), "cudaMemset"); }

static __attribute__((unused)) void dbuf_put(dbuf *b, const void *host)
{
    cuda_or_bail(cudaMemcpy(b->p, host, b->count * 4, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

static __attribute__((unused)) void dbuf_get(const dbuf *b, void *host)
{
    cuda_or_bail(cudaMemcpy(host, b->p, b->count * 4, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}

/* Both guard zones still all 0xFF bytes. */
static __attribute__((unused)) int dbuf_guards_ok(const dbuf *b)
{
    size_t total = dbuf_total(b);
    unsigned char *h = xmalloc(total * 4);
    cuda_or_bail(cudaMemcpy(h, b->base, total * 4, cudaMemcpyDeviceToHost), "cudaMemcpy guards");
    size_t lo = (size_t)(GUARD + b->off) * 4, hi = lo + b->count * 4;
    int ok = 1;
    for (size_t i = 0; i < total * 4 && ok; i++)
        if ((i < lo || i >= hi) && h[i] != 0xFF)
            ok = 0;
    free(h);
    return ok;
}

/* A device copy of a host array (aligned), for inputs. */
static __attribute__((unused)) dbuf dbuf_from(const void *host, size_t count, int off)
{
    dbuf b = dbuf_new(count, off);
    dbuf_put(&b, host);
    return b;
}

/* ---- checks ---- */

static __attribute__((unused)) int all_finite(const float *a, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

/* The kernel's return code and the asynchronous result of its launches. */
static __attribute__((unused)) int ran_ok(int rc, char *why, size_t cap)
{
    cudaError_t sync = cudaDeviceSynchronize();
    if (rc != 0) {
        snprintf(why, cap, "returned %d (%s)", rc, cudaGetErrorString((cudaError_t)rc));
        return 0;
    }
    if (sync != cudaSuccess) {
        snprintf(why, cap, "failed on the device: %s", cudaGetErrorString(sync));
        return 0;
    }
    return 1;
}

/* ---- half precision on the host: the reference twins of the device's
 * conversions (__float2half_rn, __float2bfloat16_rn and the widenings) ---- */

static __attribute__((unused)) uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static __attribute__((unused)) float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* fp32 -> fp16, round to nearest even; every NaN -> 0x7FFF. */
static __attribute__((unused)) uint16_t host_f2h(float f)
{
    const uint32_t x = f2u(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return 0x7fff;
    if (ax >= 0x477ff000u) /* >= 65520 = 65504 + half an ulp: rounds to inf (and inf itself) */
        return sign | 0x7c00u;
    if (ax >= 0x38800000u) { /* >= 2^-14: a normal half */
        uint32_t r = ax - (112u << 23); /* exponent bias 127 -> 15 */
        r += 0xfffu + ((r >> 13) & 1u); /* round the 13 dropped bits, ties to even; a carry bumps the exponent */
        return sign | (uint16_t)(r >> 13);
    }
    /* a subnormal half (units of 2^-24) or zero: value = mant * 2^(e - 150) = mant * 2^-shift units */
    const uint32_t e = ax >> 23;
    if (e < 102) /* < 2^-25: below half the smallest subnormal, rounds to zero (fp32 subnormals too) */
        return sign;
    const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e; /* 14 .. 24 */
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1u)))
        q++; /* may reach 0x400, the smallest normal: the right encoding */
    return sign | (uint16_t)q;
}

/* fp32 -> bf16, round to nearest even; every NaN -> 0x7FFF. */
static __attribute__((unused)) uint16_t host_f2bf(float f)
{
    const uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return 0x7fff;
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static __attribute__((unused)) float host_h2f(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1f, mant = h & 0x3ffu;
    if (e == 0x1f)
        return u2f(sign | 0x7f800000u | (mant << 13));
    if (e == 0) /* zero or subnormal: mant * 2^-24, exact in fp32 */
        return (sign ? -1.0f : 1.0f) * (float)mant * 0x1p-24f;
    return u2f(sign | ((e + 112) << 23) | (mant << 13));
}

static __attribute__((unused)) float host_bf2f(uint16_t h) { return u2f((uint32_t)h << 16); }

/* GELU, the tanh form of the gelu kernel (activation.cuh), in double. */
static __attribute__((unused)) double gelu_ref(double v)
{
    const double s = 0.7978845608028654;
    return 0.5 * v * (1.0 + tanh(s * (v + 0.044715 * v * v * v)));
}

/* For qsort: medians of timings. */
static __attribute__((unused)) int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

#endif
