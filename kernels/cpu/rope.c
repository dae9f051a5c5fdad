/* rope.c - rotary position embedding on the q and k heads of qkv rows.
 *
 * llama2.c's convention: within each head, the pair (x[2i], x[2i+1]) turns
 * by pos * theta^(-2i/head_dim). The angle is computed in float exactly as
 * llama2.c computes it (powf, then cosf/sinf of pos * freq) so the rotation
 * matches it bit for bit; both versions below do that, and the ref twin is
 * the literal per-head loop. The fast version computes each (cos, sin) once
 * per token and pair and applies it to all q and k heads, instead of once
 * per head, and splits tokens across the pool during prefill. */
#include "rope.h"

#include <math.h>
#include <stddef.h>

static inline void rotate(float *v, float fcr, float fci)
{
    float v0 = v[0], v1 = v[1];
    v[0] = v0 * fcr - v1 * fci;
    v[1] = v0 * fci + v1 * fcr;
}

void cpu_rope_ref(float *qkv, const int *pos, int n, int qkv_stride, int n_head, int n_kv_head,
                  int head_dim, float theta)
{
    for (int t = 0; t < n; t++) {
        float *row = qkv + (size_t)t * qkv_stride;
        /* q heads, then the k heads that follow them */
        for (int h = 0; h < n_head + n_kv_head; h++)
            for (int i = 0; i < head_dim / 2; i++) {
                float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
                float val = pos[t] * freq;
                rotate(row + (size_t)h * head_dim + 2 * i, cosf(val), sinf(val));
            }
    }
}

typedef struct rope_job {
    float *qkv;
    const int *pos;
    int qkv_stride, heads, head_dim;
    float theta;
} rope_job;

static void rope_tokens(void *ctx, int t0, int t1)
{
    const rope_job *j = ctx;
    for (int t = t0; t < t1; t++) {
        float *row = j->qkv + (size_t)t * j->qkv_stride;
        for (int i = 0; i < j->head_dim / 2; i++) {
            float freq = 1.0f / powf(j->theta, (float)(2 * i) / (float)j->head_dim);
            float val = j->pos[t] * freq;
            float fcr = cosf(val), fci = sinf(val);
            for (int h = 0; h < j->heads; h++)
                rotate(row + (size_t)h * j->head_dim + 2 * i, fcr, fci);
        }
    }
}

void cpu_rope(gs_pool *pool, float *qkv, const int *pos, int n, int qkv_stride, int n_head,
              int n_kv_head, int head_dim, float theta)
{
    rope_job j = {qkv, pos, qkv_stride, n_head + n_kv_head, head_dim, theta};
    /* A token costs head_dim/2 powf+cosf+sinf plus the rotations: ~8K
     * elements of rotation per chunk before threads pay off. */
    int per_token = (n_head + n_kv_head) * head_dim;
    int min_chunk = per_token >= 8192 ? 1 : 8192 / (per_token > 0 ? per_token : 1);
    gs_pool_parallel_for(pool, n, min_chunk, rope_tokens, &j);
}
