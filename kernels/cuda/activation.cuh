// activation.cuh - device activation functions shared by the elementwise
// kernels (activation.cu) and the GEMV's fused epilogue (gemv.cu), so both
// paths compute bit-identical values.
#pragma once

// GELU, tanh form, written as v / (1 + exp(-2u)) with u = s (v + 0.044715 v^3):
// 0.5 (1 + tanh(u)) is 1 / (1 + exp(-2u)) exactly, and nothing cancels in the
// negative tail (see activation.cu). v -> -inf gives -0, v -> +inf gives v.
static __device__ __forceinline__ float gelu1(float v)
{
    const float s = 0.7978845608028654f;  // sqrtf(2 / pi), as llm.c's GELU_SCALING_FACTOR
    const float cube = 0.044715f * v * v * v;
    return v / (1.0f + expf(-2.0f * (s * (v + cube))));
}
