/* sampler.c - argmax, temperature, top-k and top-p sampling. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

/* The first index of the largest logit. Two passes: the maximum in eight
 * independent lanes (no loop-carried index, so the compiler vectorizes it),
 * then the first position holding it. The obvious one-pass loop carries
 * `best` from one comparison to the next and took 190 us over GPT-2's 50,257
 * logits, a third of a decode step on the GPU; this takes a few. NaNs never
 * win, as in the one-pass loop (which returns 0 when logits[0] is NaN). */
int gs_sample_argmax(const float *logits, int vocab)
{
    if (vocab <= 1 || logits[0] != logits[0])
        return 0;
    float lane[8];
    for (int l = 0; l < 8; l++)
        lane[l] = logits[0];
    int i = 0;
    for (; i + 8 <= vocab; i += 8)
        for (int l = 0; l < 8; l++)
            lane[l] = logits[i + l] > lane[l] ? logits[i + l] : lane[l];
    float mx = lane[0];
    for (int l = 1; l < 8; l++)
        mx = lane[l] > mx ? lane[l] : mx;
    for (; i < vocab; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (i = 0; i < vocab; i++)
        if (logits[i] == mx)
            return i;
    return 0;
}

typedef struct prob_index {
    float p;
    int i;
} prob_index;

static int by_prob_desc(const void *a, const void *b)
{
    const prob_index *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->i - y->i;
}

int gs_sampler_is_greedy(const gs_sampler *s) { return s->temperature <= 0.0f; }

int gs_sample(const gs_sampler *s, const float *logits, int vocab, gs_rng *rng, float *scratch)
{
    if (gs_sampler_is_greedy(s))
        return gs_sample_argmax(logits, vocab);
    float *p = scratch;
    float mx = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) {
        p[i] = expf((logits[i] - mx) / s->temperature);
        sum += p[i];
    }
    for (int i = 0; i < vocab; i++)
        p[i] = (float)(p[i] / sum);
    float u = gs_rng_uniform(rng);
    int cut_k = s->top_k > 0 && s->top_k < vocab;
    int cut_p = s->top_p > 0.0f && s->top_p < 1.0f;
    if (!cut_k && !cut_p) {
        float acc = 0.0f;
        for (int i = 0; i < vocab; i++) {
            acc += p[i];
            if (u < acc)
                return i;
        }
        return vocab - 1; /* rounding left u above the total */
    }
    /* The sort buffer is the second half of scratch viewed as pairs. */
    prob_index *pi = malloc((size_t)vocab * sizeof *pi);
    if (!pi)
        return gs_sample_argmax(logits, vocab);
    for (int i = 0; i < vocab; i++) {
        pi[i].p = p[i];
        pi[i].i = i;
    }
    qsort(pi, (size_t)vocab, sizeof *pi, by_prob_desc);
    int n = cut_k ? s->top_k : vocab;
    if (cut_p) {
        float acc = 0.0f;
        for (int i = 0; i < n; i++) {
            acc += pi[i].p;
            if (acc >= s->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    float total = 0.0f;
    for (int i = 0; i < n; i++)
        total += pi[i].p;
    float r = u * total, acc = 0.0f;
    int pick = pi[n - 1].i;
    for (int i = 0; i < n; i++) {
        acc += pi[i].p;
        if (r < acc) {
            pick = pi[i].i;
            break;
        }
    }
    free(pi);
    return pick;
}
