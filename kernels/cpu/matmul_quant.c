/* matmul_quant.c - the CPU product over packed weights (fp16, bf16, int8,
 * int4), the twin of the CUDA GEMVs that read the same bytes.
 *
 * A task owns 4 output columns (4 rows of W) and up to 16 input rows. It
 * walks k in chunks of 256: the 4 W rows' chunk is decoded to fp32 into a
 * 4 KB stack tile (L1), then every input row of the task takes 4 dot
 * products against it, in 8-lane partial sums the compiler vectorizes.
 * Decode (n <= 16) therefore reads each packed weight byte once; prefill
 * decodes a tile once per 16 input rows, a few percent of the work. Sums
 * run in a different order from the reference, so results differ from it by
 * fp rounding only. Compiled for the baseline ISA and for AVX2+FMA, chosen
 * at run time as cpu_matmul is (GS_CPU_ISA=generic forces the baseline). */
#include "matmul_quant.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant_layout.h"

#define KC 256 /* inputs per decoded chunk */
#define RB 16  /* input rows per task */
#define CB 4   /* output columns per task */

typedef struct qjob {
    float *out;
    const float *in;
    const uint8_t *w;
    gs_dtype wdt;
    const float *bias;
    int n, k, m, n_rb;
} qjob;

static float f16_table[65536]; /* every fp16 bit pattern as fp32: decoding is one load */
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static void table_init(void)
{
    for (uint32_t i = 0; i < 65536; i++)
        f16_table[i] = gs_f16_to_f32((uint16_t)i);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* 8 halves to 8 floats per instruction (F16C), for the AVX2 build. */
__attribute__((target("avx2,f16c"))) static void f16_decode_f16c(float *restrict dst, const uint16_t *restrict h,
                                                                   int len)
{
    int i = 0;
    for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + i))));
    for (; i < len; i++)
        dst[i] = f16_table[h[i]];
}
static int have_f16c;
#endif

static inline __attribute__((always_inline)) void f16_decode(float *restrict dst, const uint16_t *restrict h, int len)
{
#if defined(__x86_64__) || defined(__i386__)
    if (have_f16c) {
        f16_decode_f16c(dst, h, len);
        return;
    }
#endif
    for (int i = 0; i < len; i++)
        dst[i] = f16_table[h[i]];
}

/* Decodes W[row][c0, c0 + len) into dst. */
static inline void decode(const qjob *j, int row, int c0, int len, float *restrict dst)
{
    const uint8_t *w = j->w;
    int k = j->k;
    switch (j->wdt) {
    case GS_DTYPE_F16: {
        const uint16_t *h = (const uint16_t *)w + (size_t)row * k + c0;
        f16_decode(dst, h, len);
        break;
    }
    case GS_DTYPE_BF16: {
        const uint16_t *h = (const uint16_t *)w + (size_t)row * k + c0;
        for (int i = 0; i < len; i++) {
            uint32_t b = (uint32_t)h[i] << 16;
            memcpy(&dst[i], &b, 4);
        }
        break;
    }
    case GS_DTYPE_I8: {
        const int8_t *q = (const int8_t *)w + (size_t)row * k + c0;
        float s = ((const float *)(w + gs_q8_scale_offset(j->m, k)))[row];
        for (int i = 0; i < len; i++)
            dst[i] = (float)q[i] * s;
        break;
    }
    default: { /* int4 */
        int group = gs_dtype_group(j->wdt);
        long ng = gs_q4_groups(k, group);
        const uint8_t *q = w + (size_t)row * gs_q4_row_bytes(k);
        const uint16_t *sz = (const uint16_t *)(w + gs_q4_sz_offset(j->m, k)) + (size_t)row * ng * 2;
        int c = c0, end = c0 + len;
        while (c < end) {
            int g = c / group, gend = (g + 1) * group < end ? (g + 1) * group : end;
            float s = f16_table[sz[2 * g]], z = f16_table[sz[2 * g + 1]];
            /* c is even here (chunks and groups start at even inputs): whole
             * bytes, two inputs each, a loop the compiler vectorizes. */
            int pairs = (gend - c) / 2;
            const uint8_t *qb = q + (c >> 1);
            float *d = dst + (c - c0);
            for (int i = 0; i < pairs; i++) {
                d[2 * i] = ((float)(qb[i] & 0xf) - z) * s;
                d[2 * i + 1] = ((float)(qb[i] >> 4) - z) * s;
            }
            c += 2 * pairs;
            if (c < gend) { /* an odd row's last input */
                d[2 * pairs] = ((float)(qb[pairs] & 0xf) - z) * s;
                c++;
            }
        }
        break;
    }
    }
}

static inline __attribute__((always_inline)) void q_tasks(const qjob *j, int t0, int t1)
{
    float tilebuf[CB][KC];
    float acc[RB][CB];
    for (int t = t0; t < t1; t++) {
        int r0 = (t % j->n_rb) * RB, col0 = (t / j->n_rb) * CB;
        int rn = j->n - r0 < RB ? j->n - r0 : RB, cn = j->m - col0 < CB ? j->m - col0 : CB;
        memset(acc, 0, sizeof acc);
        for (int c0 = 0; c0 < j->k; c0 += KC) {
            int len = j->k - c0 < KC ? j->k - c0 : KC;
            for (int c = 0; c < cn; c++)
                decode(j, col0 + c, c0, len, tilebuf[c]);
            for (int r = 0; r < rn; r++) {
                const float *x = j->in + (size_t)(r0 + r) * j->k + c0;
                for (int c = 0; c < cn; c++) {
                    const float *wt = tilebuf[c];
                    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    int i = 0;
                    for (; i + 8 <= len; i += 8)
                        for (int l = 0; l < 8; l++)
                            p[l] += x[i + l] * wt[i + l];
                    float s = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
                    for (; i < len; i++)
                        s += x[i] * wt[i];
                    acc[r][c] += s;
                }
            }
        }
        for (int r = 0; r < rn; r++)
            for (int c = 0; c < cn; c++)
                j->out[(size_t)(r0 + r) * j->m + col0 + c] = acc[r][c] + (j->bias ? j->bias[col0 + c] : 0.0f);
    }
}

__attribute__((optimize("O3"))) static void q_tasks_generic(void *ctx, int t0, int t1) { q_tasks(ctx, t0, t1); }

#if defined(__x86_64__) || defined(__i386__)
#define GS_HAVE_AVX2_BUILD 1
#if defined(__clang__)
#define GS_FP_CONTRACT
#else
#define GS_FP_CONTRACT __attribute__((optimize("O3,fp-contract=fast")))
#endif
__attribute__((target("avx2,fma,f16c"))) GS_FP_CONTRACT static void q_tasks_avx2(void *ctx, int t0, int t1)
{
    q_tasks(ctx, t0, t1);
}
#endif

static gs_pool_fn q_impl;
static pthread_once_t q_once = PTHREAD_ONCE_INIT;
static void q_resolve(void)
{
    q_impl = q_tasks_generic;
#ifdef GS_HAVE_AVX2_BUILD
    const char *isa = getenv("GS_CPU_ISA");
    if (!(isa && strcmp(isa, "generic") == 0) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
        q_impl = q_tasks_avx2;
        have_f16c = 1;
    }
#endif
}

void cpu_matmul_packed(gs_pool *pool, float *out, const float *in, const void *w, gs_dtype wdt, const float *bias,
                       int n, int k, int m)
{
    if (n <= 0 || m <= 0)
        return;
    pthread_once(&table_once, table_init);
    pthread_once(&q_once, q_resolve);
    qjob j = {.out = out, .in = in, .w = w, .wdt = wdt, .bias = bias, .n = n, .k = k < 0 ? 0 : k, .m = m};
    j.n_rb = (n + RB - 1) / RB;
    int n_tasks = j.n_rb * ((m + CB - 1) / CB);
    long task_macs = (long)RB * CB * (j.k > 0 ? j.k : 1);
    int min_chunk = (int)((16384L + task_macs - 1) / task_macs);
    gs_pool_parallel_for(pool, n_tasks, min_chunk, q_impl, &j);
}
