// rope.cu - the CUDA twin of kernels/cpu/rope.c: rotary position embedding, in
// place on the q and k heads of n qkv rows (llama2.c's convention: within each
// head the adjacent pair (x[2i], x[2i+1]) turns by pos * theta^(-2i/head_dim)).
//
// rope_kernel<VEC2>: a token's rotations are heads x head_dim/2 independent
// (head, pair) items, all sharing head_dim/2 angles. Blocks walk the tokens
// (y, grid-stride past 65535) and split a token's items in chunks of
// ROPE_THREADS * ROPE_ITEMS (x); consecutive threads take consecutive pairs,
// so the float2 loads and stores are coalesced. Per token, the block computes
// the (cos, sin) of each pair once into shared memory (the CPU fast path's
// saving: once per pair, not once per head) while its items' loads, issued
// first, are in flight; a barrier, then each thread rotates its ROPE_ITEMS pairs.
// On an H100 (--bench), 8192 tokens of 16 rotated heads of 160: 76 us, 2.21 TB/s
// counting the q and k bytes; a device-to-device copy moves 2.73 TB/s.
//
// The angle follows the CPU twin's float recipe step by step:
//   freq = 1.0f / powf(theta, (float)(2i) / (float)head_dim); val = pos * freq
// with IEEE division (nvcc's default -prec-div=true). Three deliberate choices
// keep the result on the CPU's bits rather than a few ulps away (on an H100 the
// test saw rel err 0 to 9e-9 against cpu_rope_ref):
//  - powf is evaluated as (float)pow((double)theta, (double)e): the correctly
//    rounded value, which is what glibc's powf returned for every
//    (theta, head_dim, i) checked (theta 10, 1e4, 5e5, 1e6; head_dim 6-256),
//    while CUDA's powf may be a few ulps off; a 1-ulp error in freq is an
//    angle error of pos * 6e-8 rad, visible at pos in the thousands.
//  - cos and sin likewise come from double sincos rounded to float (within an
//    ulp of glibc's cosf/sinf), not __cosf/__sinf nor CUDA's 2-ulp sincosf.
//    The double math runs head_dim/2 times per token per block, overlapped
//    with the loads, so it costs little next to the rotations.
//  - the rotation v0 c - v1 s, v0 s + v1 c uses __fmul_rn/__fadd_rn so nvcc
//    does not contract it into an fma: the same roundings as the CPU's plain
//    float multiply and add (gcc -std=c11 does not contract).
// VEC2 = true moves each pair as one float2; it needs qkv 8-byte aligned and
// qkv_stride and head_dim even. Otherwise the scalar instantiation runs. With
// an odd head_dim the last element of each head is left alone, as on the CPU.
#include <stdint.h>

#include "check_cuda.cuh"
#include "ops_cuda.h"

#define ROPE_THREADS 256
#define ROPE_ITEMS 4  // (head, pair) rotations per thread: four loads in flight each
#define MAX_GRID_Y 65535

template <bool VEC2>
__global__ void __launch_bounds__(ROPE_THREADS)
    rope_kernel(float *qkv, const int *__restrict__ pos, int n, int qkv_stride, int heads, int head_dim, float theta)
{
    extern __shared__ float2 cs[];  // (cos, sin) of each pair's angle: head_dim / 2 entries
    const int pairs = head_dim / 2;
    const int items = heads * pairs;
    const int j0 = blockIdx.x * (ROPE_THREADS * ROPE_ITEMS) + threadIdx.x;

    // t depends only on blockIdx, so every thread runs the same iterations and
    // reaches the same barriers.
    for (int t = blockIdx.y; t < n; t += gridDim.y) {
        float *row = qkv + (size_t)t * qkv_stride;  // 64-bit: n * qkv_stride passes 2^31
        float2 v[ROPE_ITEMS];
        int off[ROPE_ITEMS], pair[ROPE_ITEMS];
#pragma unroll
        for (int k = 0; k < ROPE_ITEMS; k++) {  // loads first: they overlap the trig below
            const int j = j0 + k * ROPE_THREADS;
            off[k] = -1;
            pair[k] = 0;
            v[k] = make_float2(0.0f, 0.0f);
            if (j < items) {
                const int h = j / pairs;
                pair[k] = j - h * pairs;
                off[k] = h * head_dim + 2 * pair[k];
                if constexpr (VEC2)
                    v[k] = *reinterpret_cast<const float2 *>(row + off[k]);
                else
                    v[k] = make_float2(row[off[k]], row[off[k] + 1]);
            }
        }
        const float p = (float)__ldg(pos + t);
        for (int i = threadIdx.x; i < pairs; i += ROPE_THREADS) {
            const float e = (float)(2 * i) / (float)head_dim;
            const float freq = 1.0f / (float)pow((double)theta, (double)e);
            const float val = p * freq;
            double s, c;
            sincos((double)val, &s, &c);
            cs[i] = make_float2((float)c, (float)s);
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < ROPE_ITEMS; k++) {
            if (off[k] < 0)
                continue;
            const float2 f = cs[pair[k]];
            float2 r;
            r.x = __fadd_rn(__fmul_rn(v[k].x, f.x), -__fmul_rn(v[k].y, f.y));
            r.y = __fadd_rn(__fmul_rn(v[k].x, f.y), __fmul_rn(v[k].y, f.x));
            if constexpr (VEC2) {
                *reinterpret_cast<float2 *>(row + off[k]) = r;
            } else {
                row[off[k]] = r.x;
                row[off[k] + 1] = r.y;
            }
        }
        __syncthreads();  // the next token overwrites cs
    }
}

extern "C" int cuda_rope(float *qkv, const int *pos, int n, int qkv_stride, int n_head, int n_kv_head, int head_dim,
                         float theta, cudaStream_t stream)
{
    const int heads = n_head + n_kv_head;  // q heads, then the k heads that follow them
    const int pairs = head_dim / 2;
    if (n <= 0 || heads <= 0 || pairs <= 0)
        return 0;
    const long items = (long)heads * pairs;
    const dim3 grid(gs_ceil_div(items, ROPE_THREADS * ROPE_ITEMS), n < MAX_GRID_Y ? n : MAX_GRID_Y);
    const size_t smem = (size_t)pairs * sizeof(float2);
    const bool vec2 = ((uintptr_t)qkv & 7) == 0 && qkv_stride % 2 == 0 && head_dim % 2 == 0;
    if (vec2)
        rope_kernel<true><<<grid, ROPE_THREADS, smem, stream>>>(qkv, pos, n, qkv_stride, heads, head_dim, theta);
    else
        rope_kernel<false><<<grid, ROPE_THREADS, smem, stream>>>(qkv, pos, n, qkv_stride, heads, head_dim, theta);
    CUDA_LAUNCHED();
    return 0;
}
