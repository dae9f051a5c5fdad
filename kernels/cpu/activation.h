/* activation.h - GELU (GPT-2's tanh form) and SwiGLU (Llama), in place. */
#ifndef GS_CPU_ACTIVATION_H
#define GS_CPU_ACTIVATION_H

#include "thread_pool.h"

/* x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void cpu_gelu_ref(float *x, long count);
void cpu_gelu(gs_pool *pool, float *x, long count);
/* up = silu(up) * gate, silu(v) = v / (1 + exp(-v)) */
void cpu_swiglu_ref(float *up, const float *gate, long count);
void cpu_swiglu(gs_pool *pool, float *up, const float *gate, long count);

#endif
