/* embedding.h - token embedding plus learned position embedding (GPT-2) or
 * token embedding alone (wpe == NULL, Llama). Tokens are not range checked
 * here: the engine validates ids before they reach a kernel. */
#ifndef GS_CPU_EMBEDDING_H
#define GS_CPU_EMBEDDING_H

void cpu_embed(float *out, const int *tokens, const int *pos, const float *wte, const float *wpe,
               int n, int C);

#endif
