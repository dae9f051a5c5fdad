// activation.cu - the CUDA twins of kernels/cpu/activation.c, plus the bias
// epilogue of the cuBLAS products.
//
// gelu_kernel<VEC, OT>: x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in
//   place (OT fp32), or written to another array as the fp16/bf16 rows a
//   half-precision product reads (cuda_gelu_half: half_out.cuh's rounding, so
//   equal to the fp32 GELU converted, in one pass instead of two).
// swiglu_kernel<VEC>: up = silu(up) * gate, silu(v) = v / (1 + exp(-v)), in place.
//   Elementwise and memory bound: a grid-stride loop over float4s (one 16-byte
//   access per thread per step) with 64-bit indices, since n * hidden passes
//   2^31 in a long prefill; then the 0-3 leftover floats (count % 4) go one per
//   thread. VEC needs the arrays 16-byte aligned (cudaMalloc'd buffers are); a
//   misaligned pointer takes the scalar instantiation, which is the same loop
//   one float at a time. The formulas are the CPU's, in float, with the precise
//   expf (not __expf / fast-math): the test compares with the double-precision
//   _ref twins at 1e-5. GELU is evaluated in its exact sigmoid rewrite, which
//   keeps the negative tail accurate (see gelu1).
//   Measured on an H100 (--bench), 8192 x 3200 floats: gelu 79 us, 2.67 TB/s;
//   swiglu 112 us, 2.80 TB/s; a device-to-device copy moves 2.73 TB/s there.
// add_bias_kernel<VEC>: x[i][j] += bias[j] over n rows of m. Threads run across
//   the columns, each loads its bias element(s) once into registers and walks
//   the rows (grid-stride in y, which stops at 65535), so the bias is read once
//   per block instead of once per element, and no thread divides an index by m.
//   8192 x 3200 on an H100: 76 us, 2.76 TB/s (the copy's speed).
#include <stdint.h>

#include "activation.cuh"
#include "check_cuda.cuh"
#include "half_out.cuh"
#include "ops_cuda.h"

#define ELT_THREADS 256
// Enough blocks to fill an H100 (132 SMs x 8 resident 256-thread blocks) about
// four times over; past that the grid-stride loop gives each thread more
// elements, which keeps several loads in flight per thread.
#define ELT_MAX_BLOCKS 4096
#define BIAS_MAX_THREADS 256
#define MAX_GRID_Y 65535

// GPT-2's tanh approximation, written without tanh: 0.5 (1 + tanh(u)) equals
// 1 / (1 + exp(-2u)) exactly, so gelu(v) = v / (1 + exp(-2u)). The literal form
// (llm.c's, and the CPU fast path's) loses the negative tail to cancellation:
// near v = -4, tanh(u) = -0.99997 and 1 + tanhf(u) keeps only a few good bits,
// a 1e-2 relative error on a single element against the double reference.
// Here nothing cancels: both tails and the middle stay within a few ulps (a
// few 1e-6 at v = -5, from rounding u itself). Limits: v -> -inf gives -0 (exp
// overflows to inf), v -> +inf gives v; NaN stays NaN, as in the literal form.
// gelu1: see activation.cuh (the GEMV's epilogue uses the same function).

static __device__ __forceinline__ float swiglu1(float v, float g)
{
    v *= 1.0f / (1.0f + expf(-v));
    return v * g;
}

// out == x for fp32 (in place); a half out must not overlap x.
template <bool VEC, int OT>
__global__ void __launch_bounds__(ELT_THREADS) gelu_kernel(void *out, const float *x, long count)
{
    const long stride = (long)gridDim.x * blockDim.x;
    const long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long done = 0;
    if constexpr (VEC) {
        const long n4 = count / 4;
        const float4 *x4 = reinterpret_cast<const float4 *>(x);
        for (long i = tid; i < n4; i += stride) {
            float4 v = x4[i];
            v.x = gelu1(v.x);
            v.y = gelu1(v.y);
            v.z = gelu1(v.z);
            v.w = gelu1(v.w);
            out_store4<OT>(out, (size_t)i, v);
        }
        done = n4 * 4;
    }
    for (long i = done + tid; i < count; i += stride)  // the tail, or everything when !VEC
        out_store1<OT>(out, (size_t)i, gelu1(x[i]));
}

template <bool VEC>
__global__ void __launch_bounds__(ELT_THREADS) swiglu_kernel(float *__restrict__ up, const float *__restrict__ gate,
                                                             long count)
{
    const long stride = (long)gridDim.x * blockDim.x;
    const long tid = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long done = 0;
    if constexpr (VEC) {
        const long n4 = count / 4;
        float4 *u4 = reinterpret_cast<float4 *>(up);
        const float4 *g4 = reinterpret_cast<const float4 *>(gate);
        for (long i = tid; i < n4; i += stride) {
            float4 v = u4[i];
            const float4 g = g4[i];
            v.x = swiglu1(v.x, g.x);
            v.y = swiglu1(v.y, g.y);
            v.z = swiglu1(v.z, g.z);
            v.w = swiglu1(v.w, g.w);
            u4[i] = v;
        }
        done = n4 * 4;
    }
    for (long i = done + tid; i < count; i += stride)
        up[i] = swiglu1(up[i], gate[i]);
}

template <bool VEC>
__global__ void add_bias_kernel(float *__restrict__ x, const float *__restrict__ bias, int n, int m)
{
    const int units = VEC ? m / 4 : m;
    const int u = blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= units)
        return;  // no barrier or shuffle below
    if constexpr (VEC) {
        const float4 b = __ldg(reinterpret_cast<const float4 *>(bias) + u);
        for (int i = blockIdx.y; i < n; i += gridDim.y) {
            float4 *row = reinterpret_cast<float4 *>(x + (size_t)i * m);  // 64-bit: n * m passes 2^31
            float4 v = row[u];
            v.x += b.x;
            v.y += b.y;
            v.z += b.z;
            v.w += b.w;
            row[u] = v;
        }
    } else {
        const float b = __ldg(bias + u);
        for (int i = blockIdx.y; i < n; i += gridDim.y)
            x[(size_t)i * m + u] += b;
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// Blocks for `units` work items of one thread each, at least 1, at most ELT_MAX_BLOCKS
// (computed in long: count / 256 itself can pass INT_MAX).
static int elt_blocks(long units)
{
    const long b = (units + ELT_THREADS - 1) / ELT_THREADS;
    return b < 1 ? 1 : b > ELT_MAX_BLOCKS ? ELT_MAX_BLOCKS : (int)b;
}

template <int OT>
static int gelu_launch(void *out, const float *x, long count, cudaStream_t stream)
{
    if (count <= 0)
        return 0;
    // Four outputs a store: 16 bytes of fp32, 8 of halves.
    const bool out_ok = OT == GS_OUT_F32 ? aligned16(out) : ((uintptr_t)out & 7) == 0;
    if (aligned16(x) && out_ok)
        gelu_kernel<true, OT><<<elt_blocks(count / 4), ELT_THREADS, 0, stream>>>(out, x, count);
    else
        gelu_kernel<false, OT><<<elt_blocks(count), ELT_THREADS, 0, stream>>>(out, x, count);
    CUDA_LAUNCHED();
    return 0;
}

extern "C" int cuda_gelu(float *x, long count, cudaStream_t stream)
{
    return gelu_launch<GS_OUT_F32>(x, x, count, stream);
}

extern "C" int cuda_gelu_half(void *out, const float *x, long count, int is_bf16, cudaStream_t stream)
{
    return is_bf16 ? gelu_launch<GS_OUT_BF16>(out, x, count, stream) : gelu_launch<GS_OUT_F16>(out, x, count, stream);
}

extern "C" int cuda_swiglu(float *up, const float *gate, long count, cudaStream_t stream)
{
    if (count <= 0)
        return 0;
    if (aligned16(up) && aligned16(gate))
        swiglu_kernel<true><<<elt_blocks(count / 4), ELT_THREADS, 0, stream>>>(up, gate, count);
    else
        swiglu_kernel<false><<<elt_blocks(count), ELT_THREADS, 0, stream>>>(up, gate, count);
    CUDA_LAUNCHED();
    return 0;
}

extern "C" int cuda_add_bias(float *x, const float *bias, int n, int m, cudaStream_t stream)
{
    if (n <= 0 || m <= 0)
        return 0;
    const bool vec = m % 4 == 0 && aligned16(x) && aligned16(bias);
    const int units = vec ? m / 4 : m;
    const int threads = units >= BIAS_MAX_THREADS ? BIAS_MAX_THREADS : (units + 31) / 32 * 32;
    const dim3 grid(gs_ceil_div(units, threads), n < MAX_GRID_Y ? n : MAX_GRID_Y);
    if (vec)
        add_bias_kernel<true><<<grid, threads, 0, stream>>>(x, bias, n, m);
    else
        add_bias_kernel<false><<<grid, threads, 0, stream>>>(x, bias, n, m);
    CUDA_LAUNCHED();
    return 0;
}
