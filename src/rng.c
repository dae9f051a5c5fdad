/* rng.c - xoshiro256** seeded through splitmix64, plus Box-Muller normals. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void gs_rng_seed(gs_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0f;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gs_rng_next(gs_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float gs_rng_uniform(gs_rng *r)
{
    return (float)(gs_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

float gs_rng_normal(gs_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* u1 in (0, 1] so the log is finite. */
    float u1 = ((float)(gs_rng_next(r) >> 40) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = gs_rng_uniform(r);
    float mag = sqrtf(-2.0f * logf(u1));
    float a = 6.2831853f * u2;
    r->spare = mag * sinf(a);
    r->has_spare = 1;
    return mag * cosf(a);
}
