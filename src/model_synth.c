/* model_synth.c - synthetic weights at a trained model's scale.
 *
 * Matrices ~ N(0, 0.02^2) (GPT-2's initialisation scale), the projections
 * that write into the residual stream scaled by 1/sqrt(2 n_layer), norm gains
 * near 1, small biases. Trained transformers carry a few hidden dimensions
 * with very large activations (the "outlier features" that make naive int8
 * quantization fail); we plant them by giving a few channels large norm gains
 * and embedding columns, so quantization later behaves as on trained models.
 *
 * Every tensor is cut into chunks with their own stream derived from (seed,
 * tensor, chunk), so the result does not depend on the number of threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"
#include "thread_pool.h"

#define SYNTH_CHUNK (1 << 18)

typedef struct synth_job {
    gs_tensor_ref *refs;
    int n_refs;
    int *chunk_tensor;  /* [n_chunks] tensor index */
    size_t *chunk_start;/* [n_chunks] first float of the chunk in the tensor */
    float *stds;        /* [n_refs] */
    float *means;       /* [n_refs] */
    uint64_t seed;
} synth_job;

static void synth_chunks(void *ctx, int begin, int end)
{
    synth_job *job = ctx;
    for (int c = begin; c < end; c++) {
        int t = job->chunk_tensor[c];
        gs_tensor_ref *r = &job->refs[t];
        size_t total = (size_t)r->rows * (size_t)r->cols;
        size_t start = job->chunk_start[c];
        size_t count = total - start < SYNTH_CHUNK ? total - start : SYNTH_CHUNK;
        gs_rng rng;
        gs_rng_seed(&rng, job->seed ^ ((uint64_t)t << 40) ^ (uint64_t)(start / SYNTH_CHUNK) * 0x9e3779b97f4a7c15ULL);
        float sd = job->stds[t], mu = job->means[t];
        for (size_t i = 0; i < count; i++)
            r->data[start + i] = mu + sd * gs_rng_normal(&rng);
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void gs_model_init_synthetic(gs_model *m, uint64_t seed)
{
    const gs_model_shape *s = &m->shape;
    int n = gs_model_tensors(m, NULL, 0);
    gs_tensor_ref *refs = calloc((size_t)n, sizeof *refs);
    float *stds = calloc((size_t)n, sizeof *stds);
    float *means = calloc((size_t)n, sizeof *means);
    if (!refs || !stds || !means)
        abort(); /* a few KB: only a broken machine gets here */
    gs_model_tensors(m, refs, n);
    float resid_scale = 1.0f / sqrtf(2.0f * (float)s->n_layer);
    size_t n_chunks = 0;
    for (int t = 0; t < n; t++) {
        const char *nm = refs[t].name;
        size_t total = (size_t)refs[t].rows * (size_t)refs[t].cols;
        n_chunks += (total + SYNTH_CHUNK - 1) / SYNTH_CHUNK;
        if (ends_with(nm, "ln1_w") || ends_with(nm, "ln2_w") || ends_with(nm, "lnf_w")) {
            means[t] = 1.0f;
            stds[t] = 0.05f;
        } else if (refs[t].cols == 1) { /* biases */
            stds[t] = 0.01f;
        } else if (strcmp(nm, "wpe") == 0) {
            stds[t] = 0.01f;
        } else if (ends_with(nm, ".wo") || ends_with(nm, ".w_down")) {
            stds[t] = 0.02f * resid_scale;
        } else {
            stds[t] = 0.02f;
        }
    }
    int *chunk_tensor = malloc(n_chunks * sizeof *chunk_tensor);
    size_t *chunk_start = malloc(n_chunks * sizeof *chunk_start);
    if (!chunk_tensor || !chunk_start)
        abort();
    size_t c = 0;
    for (int t = 0; t < n; t++) {
        size_t total = (size_t)refs[t].rows * (size_t)refs[t].cols;
        for (size_t st = 0; st < total; st += SYNTH_CHUNK) {
            chunk_tensor[c] = t;
            chunk_start[c++] = st;
        }
    }
    synth_job job = {refs, n, chunk_tensor, chunk_start, stds, means, seed};
    gs_pool *pool = gs_pool_create(0);
    gs_pool_parallel_for(pool, (int)n_chunks, 1, synth_chunks, &job);
    gs_pool_destroy(pool);

    /* Outlier channels: about one in 256 hidden dimensions, at least two. */
    int C = s->n_embd;
    int n_out = C / 256 > 2 ? C / 256 : 2;
    if (n_out > C)
        n_out = C;
    gs_rng rng;
    gs_rng_seed(&rng, seed ^ 0x6f75746c69657273ULL); /* "outliers" */
    for (int k = 0; k < n_out; k++) {
        int ch = (int)(gs_rng_next(&rng) % (uint64_t)C);
        float gain = 8.0f + 8.0f * gs_rng_uniform(&rng);
        for (int l = 0; l < s->n_layer; l++) {
            m->layers[l].ln1_w[ch] *= gain;
            m->layers[l].ln2_w[ch] *= gain;
        }
        for (int v = 0; v < s->vocab; v++)
            m->wte[(size_t)v * C + ch] *= 4.0f;
    }
    free(chunk_tensor);
    free(chunk_start);
    free(refs);
    free(stds);
    free(means);
}
