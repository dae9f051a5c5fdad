/* matmul.c - the dense fp32 matrix product of the CPU backend, out = in . w^T + bias.
 *
 * Versions, slow to fast:
 *   cpu_matmul_ref  the obvious triple loop, accumulated in double: the twin
 *                   every other version is tested against.
 *   cpu_matmul      8-wide vector accumulators in register tiles, threaded
 *                   over blocks of output columns (and of input rows when
 *                   there are many), and compiled twice: once for the
 *                   baseline ISA and once with AVX2+FMA, picked at run time
 *                   (GS_CPU_ISA=generic forces the baseline, for comparison
 *                   and for the test).
 *
 * Decode (n = 1..16) is bound by reading w from memory: every w element is
 * loaded from DRAM once per call and used for all n rows while it sits in
 * L1. With one or two rows, w is walked one row at a time (one sequential
 * stream, four accumulator chains); with more, 4x2 tiles. Prefill (n > 16)
 * is bound by arithmetic: a 4x2 tile does 8 multiply-adds per 6 vector
 * loads, and a block of w columns stays in L2 while consecutive tasks walk
 * the row blocks. Sums run in a different order from the reference, so
 * results differ from it by fp rounding only. */
#include "matmul.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void cpu_matmul_ref(float *out, const float *in, const float *w, const float *bias, int n, int k, int m)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double s = bias ? bias[j] : 0.0;
            for (int l = 0; l < k; l++)
                s += (double)in[(size_t)i * k + l] * w[(size_t)j * k + l];
            out[(size_t)i * m + j] = (float)s;
        }
}

/* 8 floats: one AVX register, or two SSE registers on the baseline build. */
typedef float v8f __attribute__((vector_size(32)));
/* The same, for loads from any float address (rows of odd k are unaligned). */
typedef float v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
#define LOADU(p) (*(const v8f_u *)(const void *)(p))

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* One register tile: out[r][c] for R rows of in and C rows of w. R and C are
 * literal constants at every call, so after inlining the acc array lives in
 * registers (4x2: 8 accumulators + 4 inputs + 2 weights of the 16). */
static ALWAYS_INLINE void tile(float *restrict out, const float *restrict in, const float *restrict w,
                               const float *restrict bias, int k, int m, const int R, const int C)
{
    v8f acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = (v8f){0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        v8f wv[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            wv[c] = LOADU(w + (size_t)c * k + i);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            v8f x = LOADU(in + (size_t)r * k + i);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                acc[r][c] += x * wv[c]; /* one FMA in the AVX2 build (contraction on) */
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            v8f a = acc[r][c];
            float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
            /* k % 8 leftover: scalar, in order. */
            for (int l = i; l < k; l++)
                s += in[(size_t)r * k + l] * w[(size_t)c * k + l];
            out[(size_t)r * m + c] = bias ? s + bias[c] : s;
        }
}

/* One w row against R (1 or 2) rows of in. The k loop is unrolled into
 * 4 / R independent accumulators per row, so four multiply-add chains are in
 * flight even for a single row. */
static ALWAYS_INLINE void tile_row(float *restrict out, const float *restrict in, const float *restrict w,
                                   const float *restrict bias, int k, int m, const int R)
{
    enum { CHAINS = 4 };
    const int U = CHAINS / R; /* accumulators per row */
    v8f acc[2][CHAINS];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int u = 0; u < U; u++)
            acc[r][u] = (v8f){0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 * U <= k; i += 8 * U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            v8f wv = LOADU(w + i + 8 * u);
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                acc[r][u] += LOADU(in + (size_t)r * k + i + 8 * u) * wv;
        }
    }
    for (; i + 8 <= k; i += 8) {
        v8f wv = LOADU(w + i);
#pragma GCC unroll 2
        for (int r = 0; r < R; r++)
            acc[r][0] += LOADU(in + (size_t)r * k + i) * wv;
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        v8f a = acc[r][0];
#pragma GCC unroll 4
        for (int u = 1; u < U; u++)
            a += acc[r][u];
        float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        for (int l = i; l < k; l++)
            s += in[(size_t)r * k + l] * w[l];
        out[(size_t)r * m] = bias ? s + bias[0] : s;
    }
}

typedef struct mm_job {
    float *out;
    const float *in, *w, *bias;
    int n, k, m;
    int rb, cb; /* rows and columns of one task */
    int n_rb;   /* row blocks: task t is column block t / n_rb, row block t % n_rb */
} mm_job;

/* Picks the tile for rn (1..4) rows and cn (1..4) columns. One or two rows
 * (decode) go one w row at a time: w is then read as a single sequential
 * stream, which on the test machine (a Zen 4 VM) reads ~1.8x faster from
 * DRAM than four interleaved row streams. Three or four rows take two
 * columns at a time, the most accumulators that fit in 16 registers. */
static ALWAYS_INLINE void tile_any(const mm_job *j, int r, int rn, int c, int cn)
{
    const int k = j->k, m = j->m;
    const float *in = j->in + (size_t)r * k;
    const float *bias = j->bias ? j->bias + c : NULL;
    float *out = j->out + (size_t)r * m + c;
    const float *w = j->w + (size_t)c * k;
    if (rn <= 2) {
        for (int cc = 0; cc < cn; cc++) {
            const float *b = bias ? bias + cc : NULL;
            if (rn == 1)
                tile_row(out + cc, in, w + (size_t)cc * k, b, k, m, 1);
            else
                tile_row(out + cc, in, w + (size_t)cc * k, b, k, m, 2);
        }
        return;
    }
    for (int cc = 0; cc < cn; cc += 2) {
        const float *b = bias ? bias + cc : NULL;
        int two = cn - cc >= 2;
        if (rn == 4) {
            if (two)
                tile(out + cc, in, w + (size_t)cc * k, b, k, m, 4, 2);
            else
                tile(out + cc, in, w + (size_t)cc * k, b, k, m, 4, 1);
        } else {
            if (two)
                tile(out + cc, in, w + (size_t)cc * k, b, k, m, 3, 2);
            else
                tile(out + cc, in, w + (size_t)cc * k, b, k, m, 3, 1);
        }
    }
}

/* Runs tasks [t0, t1). Inside a task the column tile is the outer loop: its
 * four w rows stay in L1 while every row group of the task uses them. */
static ALWAYS_INLINE void mm_tasks(const mm_job *j, int t0, int t1)
{
    for (int t = t0; t < t1; t++) {
        int r0 = (t % j->n_rb) * j->rb, c0 = (t / j->n_rb) * j->cb;
        int r1 = r0 + j->rb < j->n ? r0 + j->rb : j->n;
        int c1 = c0 + j->cb < j->m ? c0 + j->cb : j->m;
        for (int c = c0; c < c1; c += 4) {
            int cn = c1 - c < 4 ? c1 - c : 4;
            for (int r = r0; r < r1; r += 4)
                tile_any(j, r, r1 - r < 4 ? r1 - r : 4, c, cn);
        }
    }
}

/* The two builds of the same code. Contraction is off under -std=c11, so
 * the AVX2 build turns it on to get fused multiply-adds. */
static void mm_tasks_generic(void *ctx, int t0, int t1) { mm_tasks(ctx, t0, t1); }

#if defined(__x86_64__) || defined(__i386__)
#define GS_HAVE_AVX2_BUILD 1
#if defined(__clang__)
#define GS_FP_CONTRACT /* clang: no per-function contraction switch; plain mul+add */
#else
#define GS_FP_CONTRACT __attribute__((optimize("fp-contract=fast")))
#endif
__attribute__((target("avx2,fma"))) GS_FP_CONTRACT static void mm_tasks_avx2(void *ctx, int t0, int t1)
{
    mm_tasks(ctx, t0, t1);
}
#endif

static gs_pool_fn mm_impl;
static pthread_once_t mm_once = PTHREAD_ONCE_INIT;

static void mm_resolve(void)
{
    mm_impl = mm_tasks_generic;
#ifdef GS_HAVE_AVX2_BUILD
    const char *isa = getenv("GS_CPU_ISA");
    if (!(isa && strcmp(isa, "generic") == 0) && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        mm_impl = mm_tasks_avx2;
#endif
}

/* Work per chunk below which threads cost more than they save: 16K
 * multiply-adds is a few microseconds, about one dispatch. So a product
 * with n*m*k under ~32K runs on the calling thread. */
#define MIN_MACS_PER_CHUNK 16384L

void cpu_matmul(gs_pool *pool, float *out, const float *in, const float *w, const float *bias,
                int n, int k, int m)
{
    if (n <= 0 || m <= 0)
        return;
    pthread_once(&mm_once, mm_resolve);
    mm_job j = {.out = out, .in = in, .w = w, .bias = bias, .n = n, .k = k < 0 ? 0 : k, .m = m};
    if (n <= 16) {
        /* Decode: all rows in every task, so w is read exactly once; 16
         * columns per task keep a few thousand tasks on a big matrix for
         * even splitting. */
        j.rb = n;
        j.cb = 16;
    } else {
        /* Prefill: a column block of ~256 KB of w stays in L2 while the
         * row blocks that follow it in task order reuse it. */
        j.rb = 32;
        int cb = (int)((64L * 1024) / (j.k > 0 ? j.k : 1)) & ~3;
        j.cb = cb < 4 ? 4 : cb > 256 ? 256 : cb;
    }
    j.n_rb = (n + j.rb - 1) / j.rb;
    int n_tasks = j.n_rb * ((m + j.cb - 1) / j.cb);
    long task_macs = (long)j.rb * j.cb * (j.k > 0 ? j.k : 1);
    int min_chunk = (int)((MIN_MACS_PER_CHUNK + task_macs - 1) / task_macs);
    gs_pool_parallel_for(pool, n_tasks, min_chunk, mm_impl, &j);
}
