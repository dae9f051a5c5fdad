/* attention.c - causal attention over the paged KV cache, and the KV store.
 *
 * Versions:
 *   cpu_attention_ref  per (token, head): materialize the full score row,
 *                      softmax, weighted sum of v, all in double; the twin.
 *   cpu_attention      per (token, head), threaded over those pairs. Scores
 *                      go into a 4096-float stack buffer (no malloc on the
 *                      hot path); the arithmetic is llama2.c's: the score a
 *                      float dot product divided by sqrtf(head_dim), softmax
 *                      with the max subtracted, expf, normalized weights,
 *                      and out += p * v in position order. Histories longer
 *                      than the buffer are taken a buffer at a time with an
 *                      online softmax (running max and sum, rescaling out),
 *                      so no length ever needs a heap allocation.
 *
 * Visible positions of a token at pos: [0, pos], or with window > 0 the last
 * `window` of them, (pos - window, pos], plus the sinks [0, n_sink). Both
 * versions walk the same "visible index" j = 0..count-1: sinks first, then
 * the window, so position order is kept.
 *
 * A block of the cache holds block_size consecutive positions, so the code
 * walks runs of rows inside a block instead of dividing per position.
 *
 * KV element types (a->kv_dtype, kv_format.h): cpu_kv_store encodes
 * (int8: a scale per slot and KV head), both attentions decode on load with
 * fp32 arithmetic after it. fp8 works here too (the GPU tests' twin), though
 * the CPU backend refuses it: it is a GPU feature. */
#include "attention.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One token's K or V row (kv_dim values of x) into cache slot s, as dt. */
static void store_row(void *cache, float *scale, int dt, size_t s, const float *x, int kv_dim, int hd)
{
    size_t base = s * (size_t)kv_dim;
    switch (dt) {
    case GS_KV_F16:
        for (int c = 0; c < kv_dim; c++)
            ((uint16_t *)cache)[base + c] = gs_kv_f32_to_f16(x[c]);
        break;
    case GS_KV_FP8:
        for (int c = 0; c < kv_dim; c++)
            ((uint8_t *)cache)[base + c] = gs_kv_f32_to_e4m3(x[c]);
        break;
    case GS_KV_I8: {
        /* One scale per KV head: a head's values share a range, other
         * heads' outliers do not widen its steps. */
        int n_kv = kv_dim / hd;
        for (int h = 0; h < n_kv; h++) {
            const float *xh = x + (size_t)h * hd;
            float amax = 0.0f;
            for (int c = 0; c < hd; c++)
                amax = fmaxf(amax, fabsf(xh[c]));
            float sc = gs_kv_i8_scale(amax);
            scale[s * n_kv + h] = sc;
            for (int c = 0; c < hd; c++)
                ((int8_t *)cache)[base + (size_t)h * hd + c] = gs_kv_i8_quant(xh[c], sc);
        }
        break;
    }
    default:
        memcpy((float *)cache + base, x, (size_t)kv_dim * sizeof(float));
    }
}

void cpu_kv_store(void *k_cache, void *v_cache, float *k_scale, float *v_scale, int kv_dtype,
                  const float *qkv, const int *slot, int n, int qkv_stride, int q_dim, int kv_dim,
                  int head_dim)
{
    for (int i = 0; i < n; i++) {
        /* A negative slot marks a padding token with nothing to store. */
        if (slot[i] < 0)
            continue;
        const float *row = qkv + (size_t)i * qkv_stride;
        store_row(k_cache, k_scale, kv_dtype, (size_t)slot[i], row + q_dim, kv_dim, head_dim);
        store_row(v_cache, v_scale, kv_dtype, (size_t)slot[i], row + q_dim + kv_dim, kv_dim, head_dim);
    }
}

/* The visible positions of one token: [0, sink_end) then [lo, pos]. */
typedef struct visible {
    int sink_end, lo, pos;
} visible;

static visible visible_of(const gs_attn_args *a, int pos)
{
    visible v = {0, 0, pos};
    if (a->window > 0) {
        v.lo = pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        /* Sinks already inside the window are not counted twice. */
        v.sink_end = a->n_sink < v.lo ? (a->n_sink > 0 ? a->n_sink : 0) : v.lo;
    }
    return v;
}

static inline int visible_count(visible v) { return v.sink_end + v.pos + 1 - v.lo; }
static inline int visible_pos(visible v, int j) { return j < v.sink_end ? j : v.lo + (j - v.sink_end); }

static inline size_t cache_row(const gs_attn_args *a, const int *table, int p)
{
    return (size_t)table[p / a->block_size] * a->block_size + p % a->block_size;
}

/* Scale of (cache row, KV head) for int8, unused (0) otherwise. */
static inline float row_scale(const gs_attn_args *a, const float *scale, size_t row, size_t kvh)
{
    return a->kv_dtype == GS_KV_I8 ? scale[row * (size_t)a->n_kv_head + kvh] : 0.0f;
}

void cpu_attention_ref(float *out, const float *qkv, const void *k_cache, const void *v_cache,
                       const gs_attn_args *a)
{
    const int hd = a->head_dim, kv_dim = a->n_kv_head * hd, group = a->n_head / a->n_kv_head;
    const int dt = a->kv_dtype;
    double *score = malloc((size_t)(a->max_pos > 0 ? a->max_pos : 1) * sizeof(double));
    if (!score)
        return;
    for (int t = 0; t < a->n_tokens; t++) {
        visible vis = visible_of(a, a->token_pos[t]);
        int count = visible_count(vis);
        const int *table = a->block_tables + (size_t)a->token_seq[t] * a->max_blocks_per_seq;
        for (int h = 0; h < a->n_head; h++) {
            const float *q = qkv + (size_t)t * a->qkv_stride + (size_t)h * hd;
            size_t kvh = (size_t)(h / group), off = kvh * hd;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < count; j++) {
                size_t row = cache_row(a, table, visible_pos(vis, j));
                size_t k = row * kv_dim + off;
                float sc = row_scale(a, a->k_scale, row, kvh);
                double s = 0.0;
                for (int i = 0; i < hd; i++)
                    s += (double)q[i] * gs_kv_load(k_cache, dt, k + i, sc);
                score[j] = s / sqrt((double)hd);
                if (score[j] > mx)
                    mx = score[j];
            }
            for (int j = 0; j < count; j++) {
                score[j] = exp(score[j] - mx);
                sum += score[j];
            }
            float *o = out + (size_t)t * a->n_head * hd + (size_t)h * hd;
            for (int i = 0; i < hd; i++) {
                double acc = 0.0;
                for (int j = 0; j < count; j++) {
                    size_t row = cache_row(a, table, visible_pos(vis, j));
                    acc += score[j] / sum * gs_kv_load(v_cache, dt, row * kv_dim + off + i,
                                                       row_scale(a, a->v_scale, row, kvh));
                }
                o[i] = (float)acc;
            }
        }
    }
    free(score);
}

/* Scores that fit on the stack; longer histories go through it in pieces. */
#define ATTN_BUF 4096

typedef struct attn_job {
    float *out;
    const float *qkv;
    const void *k_cache, *v_cache;
    const gs_attn_args *a;
    int n_pairs;
} attn_job;

/* Calls RUN(row0, j, len) over the visible indices [j0, j1): len
 * consecutive positions starting at visible index j, whose cache rows are
 * row0 .. row0 + len - 1 (a run never crosses a block or a segment). A
 * macro so both passes (scores, weighted sum) share one walk. */
#define FOR_VISIBLE_RUNS(a, table, vis, j0, j1, RUN)                                              \
    do {                                                                                          \
        for (int seg_ = 0; seg_ < 2; seg_++) {                                                    \
            /* segment 0: sinks [0, sink_end); segment 1: window [lo, pos] */                    \
            int sj0_ = seg_ == 0 ? 0 : (vis).sink_end;                                            \
            int sj1_ = seg_ == 0 ? (vis).sink_end : visible_count(vis);                           \
            int b_ = (j0) > sj0_ ? (j0) : sj0_, e_ = (j1) < sj1_ ? (j1) : sj1_;                   \
            int p_ = visible_pos(vis, b_);                                                        \
            for (int jj_ = b_; jj_ < e_;) {                                                       \
                int off_ = p_ % (a)->block_size;                                                  \
                int len_ = (a)->block_size - off_ < e_ - jj_ ? (a)->block_size - off_ : e_ - jj_; \
                size_t row0_ = (size_t)(table)[p_ / (a)->block_size] * (a)->block_size + off_;    \
                RUN(row0_, jj_, len_);                                                            \
                jj_ += len_;                                                                      \
                p_ += len_;                                                                       \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/* s[r] = (q . k_row) / sq for the len rows from row0. Four rows at a
 * time: four independent dot products in flight, each summed in index
 * order in float, exactly as llama2.c sums one. */
static void scores_run(float *s, const float *q, const float *k_cache, size_t row0, int len,
                       int kv_dim, size_t koff, int hd, float sq)
{
    const float *k = k_cache + row0 * kv_dim + koff;
    int r = 0;
    for (; r + 4 <= len; r += 4) {
        const float *k0 = k + (size_t)r * kv_dim, *k1 = k0 + kv_dim, *k2 = k1 + kv_dim, *k3 = k2 + kv_dim;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (int i = 0; i < hd; i++) {
            a0 += q[i] * k0[i];
            a1 += q[i] * k1[i];
            a2 += q[i] * k2[i];
            a3 += q[i] * k3[i];
        }
        s[r] = a0 / sq;
        s[r + 1] = a1 / sq;
        s[r + 2] = a2 / sq;
        s[r + 3] = a3 / sq;
    }
    for (; r < len; r++) {
        const float *k0 = k + (size_t)r * kv_dim;
        float a0 = 0.0f;
        for (int i = 0; i < hd; i++)
            a0 += q[i] * k0[i];
        s[r] = a0 / sq;
    }
}

/* 4 floats: one SSE register, native on every x86-64 (a wider generic
 * vector would be split through the stack in the baseline build). The _u
 * twin loads and stores at any float address. */
typedef float v4f __attribute__((vector_size(16)));
typedef float v4f_u __attribute__((vector_size(16), aligned(4), may_alias));

/* o += p[r] * v_row for len rows from row0. Eight output elements are kept
 * in registers across all rows instead of going through memory per row;
 * each element still sums its rows in row order, as llama2.c does. */
static void accum_run(float *restrict o, const float *restrict p, const float *v_cache, size_t row0,
                      int len, int kv_dim, size_t voff, int hd)
{
    const float *v = v_cache + row0 * kv_dim + voff;
    int i = 0;
    for (; i + 8 <= hd; i += 8) {
        v4f a0 = *(const v4f_u *)(o + i), a1 = *(const v4f_u *)(o + i + 4);
        for (int r = 0; r < len; r++) {
            const float *vr = v + (size_t)r * kv_dim + i;
            a0 += p[r] * *(const v4f_u *)vr;
            a1 += p[r] * *(const v4f_u *)(vr + 4);
        }
        *(v4f_u *)(o + i) = a0;
        *(v4f_u *)(o + i + 4) = a1;
    }
    for (; i < hd; i++) {
        float acc = o[i];
        for (int r = 0; r < len; r++)
            acc += p[r] * v[(size_t)r * kv_dim + i];
        o[i] = acc;
    }
}

/* Quantized caches: rows are dequantized a few at a time into a small
 * buffer (never a dequantized copy of the cache) and go through the same
 * fp32 scores_run / accum_run, so the result is bit for bit the fp32
 * kernel's on the dequantized values (what the tests hold it to). */
#define KV_DEQ 4096 /* floats of the dequantization buffer */

typedef struct kv_src {
    const void *cache;
    const float *scale; /* int8 only */
    int dt, n_kv;
} kv_src;

/* Rows [row0, row0 + len) of one KV head (at column off) into dst[len][hd]. */
static void deq_rows(float *restrict dst, const kv_src *src, size_t row0, int len, int kv_dim, size_t off, int hd)
{
    size_t kvh = off / (size_t)hd;
    for (int r = 0; r < len; r++) {
        size_t base = (row0 + r) * (size_t)kv_dim + off;
        float *d = dst + (size_t)r * hd;
        switch (src->dt) {
        case GS_KV_F16: {
            const uint16_t *x = (const uint16_t *)src->cache + base;
            for (int i = 0; i < hd; i++)
                d[i] = gs_kv_f16_to_f32(x[i]);
            break;
        }
        case GS_KV_I8: {
            const int8_t *x = (const int8_t *)src->cache + base;
            float sc = src->scale[(row0 + r) * (size_t)src->n_kv + kvh];
            for (int i = 0; i < hd; i++)
                d[i] = (float)x[i] * sc;
            break;
        }
        default: { /* GS_KV_FP8 */
            const uint8_t *x = (const uint8_t *)src->cache + base;
            for (int i = 0; i < hd; i++)
                d[i] = gs_kv_e4m3_to_f32(x[i]);
        }
        }
    }
}

static void scores_kv(float *s, const float *q, const kv_src *k, float *deq, int deq_n, size_t row0, int len,
                      int kv_dim, size_t koff, int hd, float sq)
{
    if (k->dt == GS_KV_F32) {
        scores_run(s, q, k->cache, row0, len, kv_dim, koff, hd, sq);
        return;
    }
    for (int r = 0; r < len; r += deq_n) {
        int m = len - r < deq_n ? len - r : deq_n;
        deq_rows(deq, k, row0 + r, m, kv_dim, koff, hd);
        scores_run(s + r, q, deq, 0, m, hd, 0, hd, sq);
    }
}

static void accum_kv(float *restrict o, const float *restrict p, const kv_src *v, float *deq, int deq_n,
                     size_t row0, int len, int kv_dim, size_t voff, int hd)
{
    if (v->dt == GS_KV_F32) {
        accum_run(o, p, v->cache, row0, len, kv_dim, voff, hd);
        return;
    }
    for (int r = 0; r < len; r += deq_n) {
        int m = len - r < deq_n ? len - r : deq_n;
        deq_rows(deq, v, row0 + r, m, kv_dim, voff, hd);
        accum_run(o, p + r, deq, 0, m, hd, 0, hd);
    }
}

static void attn_pairs(void *ctx, int u0, int u1)
{
    const attn_job *jb = ctx;
    const gs_attn_args *a = jb->a;
    const int hd = a->head_dim, kv_dim = a->n_kv_head * hd, group = a->n_head / a->n_kv_head;
    const float sq = sqrtf((float)hd);
    float buf[ATTN_BUF];
    const kv_src ks = {jb->k_cache, a->k_scale, a->kv_dtype, a->n_kv_head};
    const kv_src vs = {jb->v_cache, a->v_scale, a->kv_dtype, a->n_kv_head};
    /* Quantized caches: KV_DEQ / hd rows at a time on the stack; a head
     * wider than that (none in practice) takes a row at a time from the heap. */
    float deq_stack[KV_DEQ], *deq = deq_stack, *deq_heap = NULL;
    int deq_n = hd <= KV_DEQ ? KV_DEQ / hd : 1;
    if (a->kv_dtype != GS_KV_F32 && hd > KV_DEQ) {
        deq = deq_heap = malloc((size_t)hd * sizeof(float));
        if (!deq)
            return;
    }
    for (int u = u0; u < u1; u++) {
        /* Zigzag over the (token, head) pairs: 0, N-1, 1, N-2, ... In a
         * causal prefill a pair's work grows with its token's position, so
         * any contiguous range of u, hence every thread's chunk, gets an
         * even share of short and long rows. */
        int pair = (u & 1) ? jb->n_pairs - 1 - u / 2 : u / 2;
        int t = pair / a->n_head, h = pair % a->n_head;
        const float *q = jb->qkv + (size_t)t * a->qkv_stride + (size_t)h * hd;
        float *o = jb->out + (size_t)t * a->n_head * hd + (size_t)h * hd;
        size_t off = (size_t)(h / group) * hd;
        const int *table = a->block_tables + (size_t)a->token_seq[t] * a->max_blocks_per_seq;
        visible vis = visible_of(a, a->token_pos[t]);
        int count = visible_count(vis);
        for (int i = 0; i < hd; i++)
            o[i] = 0.0f;
        /* Online softmax state across pieces: running max and sum. */
        float run_max = -INFINITY, run_sum = 0.0f;
        for (int j0 = 0; j0 < count; j0 += ATTN_BUF) {
            int j1 = count - j0 < ATTN_BUF ? count : j0 + ATTN_BUF;
#define SCORES(row0, jj, len) scores_kv(buf + ((jj)-j0), q, &ks, deq, deq_n, row0, len, kv_dim, off, hd, sq)
            FOR_VISIBLE_RUNS(a, table, vis, j0, j1, SCORES);
#undef SCORES
            float mx = buf[0];
            for (int j = 1; j < j1 - j0; j++)
                if (buf[j] > mx)
                    mx = buf[j];
            float sum = 0.0f;
            if (count <= ATTN_BUF) {
                /* The whole row at once: llama2.c's softmax, then weights. */
                for (int j = 0; j < j1 - j0; j++) {
                    buf[j] = expf(buf[j] - mx);
                    sum += buf[j];
                }
                for (int j = 0; j < j1 - j0; j++)
                    buf[j] /= sum;
            } else {
                /* A piece of a long row: rescale what came before to the
                 * new max, add this piece unnormalized, divide at the end. */
                float new_max = mx > run_max ? mx : run_max;
                float scale = expf(run_max - new_max); /* 0 for the first piece */
                for (int i = 0; i < hd; i++)
                    o[i] *= scale;
                run_sum *= scale;
                for (int j = 0; j < j1 - j0; j++) {
                    buf[j] = expf(buf[j] - new_max);
                    run_sum += buf[j];
                }
                run_max = new_max;
            }
#define ACCUM(row0, jj, len) accum_kv(o, buf + ((jj)-j0), &vs, deq, deq_n, row0, len, kv_dim, off, hd)
            FOR_VISIBLE_RUNS(a, table, vis, j0, j1, ACCUM);
#undef ACCUM
        }
        if (count > ATTN_BUF)
            for (int i = 0; i < hd; i++)
                o[i] /= run_sum;
    }
    free(deq_heap);
}

void cpu_attention(gs_pool *pool, float *out, const float *qkv, const void *k_cache,
                   const void *v_cache, const gs_attn_args *a)
{
    int pairs = a->n_tokens * a->n_head;
    attn_job j = {out, qkv, k_cache, v_cache, a, pairs};
    /* A pair costs ~2 * visible * head_dim flops; use max_pos as its
     * bound and give each chunk ~16K of them, so decode at short context
     * (a few positions) stays on the calling thread. */
    long per_pair = 2L * (a->max_pos > 0 ? a->max_pos : 1) * (a->head_dim > 0 ? a->head_dim : 1);
    int min_chunk = per_pair >= 16384 ? 1 : (int)(16384 / per_pair);
    gs_pool_parallel_for(pool, pairs, min_chunk, attn_pairs, &j);
}
