/* embedding.c - the first op of a forward pass: each token's row of wte,
 * plus its position's row of wpe for models with learned positions (GPT-2).
 * Llama-style models pass wpe == NULL and get positions from RoPE later.
 * A few rows per step: a copy is cheaper than a dispatch, so no pool. */
#include "embedding.h"

#include <stddef.h>
#include <string.h>

void cpu_embed(float *out, const int *tokens, const int *pos, const float *wte, const float *wpe,
               int n, int C)
{
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * C;
        const float *t = wte + (size_t)tokens[i] * C;
        if (!wpe) {
            memcpy(o, t, (size_t)C * sizeof(float));
            continue;
        }
        const float *p = wpe + (size_t)pos[i] * C;
        for (int c = 0; c < C; c++)
            o[c] = t[c] + p[c];
    }
}
