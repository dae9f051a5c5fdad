/* sampler.h - choosing the next token from logits (host side).
 * temperature 0 is greedy argmax (ties go to the lowest id, as llama2.c);
 * otherwise softmax(logits / T), optionally cut to the top_k ids and to the
 * smallest set whose probability reaches top_p, drawn with a seeded rng. */
#ifndef GS_SAMPLER_H
#define GS_SAMPLER_H

#include "rng.h"

typedef struct gs_sampler {
    float temperature;  /* 0 = greedy */
    int top_k;          /* 0 = off */
    float top_p;        /* 1 = off */
} gs_sampler;

int gs_sample_argmax(const float *logits, int vocab);
/* Whether gs_sample is gs_sample_argmax for this sampler (temperature 0). */
int gs_sampler_is_greedy(const gs_sampler *s);
/* scratch: 2*vocab floats (probabilities and a sort buffer). */
int gs_sample(const gs_sampler *s, const float *logits, int vocab, gs_rng *rng, float *scratch);

#endif
