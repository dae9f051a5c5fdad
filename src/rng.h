/* rng.h - a small seeded generator (xoshiro256**) for synthetic weights,
 * sampling and tests: the same seed gives the same numbers on every machine. */
#ifndef GS_RNG_H
#define GS_RNG_H

#include <stdint.h>

typedef struct gs_rng {
    uint64_t s[4];
    int has_spare;
    float spare;
} gs_rng;

void gs_rng_seed(gs_rng *r, uint64_t seed);
uint64_t gs_rng_next(gs_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float gs_rng_uniform(gs_rng *r);
/* Standard normal (Box-Muller). */
float gs_rng_normal(gs_rng *r);

#endif
