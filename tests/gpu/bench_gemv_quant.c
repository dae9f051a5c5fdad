/* bench_gemv_quant.c - decode GEMV time for fp16 (cuda_gemv_half) against
 * int8 and int4 (cuda_gemv_quant) on GPT-2 1558M's matrices (d = 1600), and
 * the device-to-device copy bandwidth as the floor. See tests/bench/README.md.
 *
 *   bench_gemv_quant [--n N] [--reps R] [--all-groups] [--prefill N]
 *
 * --n N          token rows per call (default 1; <= 16 is the GEMV)
 * --reps R       timed batches per shape (default 50; the median is printed)
 * --all-groups   int4 g32 and g64 too (default: g128 only)
 * --prefill N    also time cuda_matmul_quant at N rows (the tile kernel) and
 *                print its TFLOP/s
 *
 * Each timed batch is one replay of a CUDA graph of back-to-back calls
 * bracketed by CUDA events, every call reading a different copy of the
 * matrix (a 512 MB pool, >= 256 MB per replay), so weights come from DRAM,
 * not from the 50 MB L2, and the host's launch rate is not what is timed
 * (the decode step runs as a graph too). GB/s counts
 * the weight block's bytes (data and scales) over the time; "floor" is those
 * bytes at the copy's GB/s; "x fp16" is the fp16 time over this format's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "cuda/gemv_cuda.h"
#include "cuda/matmul_quant_cuda.h"
#include "dtype.h"
#include "quant.h"

#define POOL_BYTES (512UL << 20)
#define MAXREPS 1000

static float ms_buf[MAXREPS];

/* Median microseconds per call of fn: `calls` calls (each on its own copy
 * of the weights) recorded into one CUDA graph on `st`, the graph replayed
 * reps times between events. A graph, because back-to-back launches from the
 * host measure the launch rate for calls under ~5 us (the decode step runs
 * as a graph too); many copies, so the weights come from DRAM, not L2. */
typedef int (*call_fn)(void *ctx, size_t copy, cudaStream_t st);
static double time_calls(call_fn fn, void *ctx, size_t calls, int reps, cudaStream_t st, cudaEvent_t e0,
                         cudaEvent_t e1)
{
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
        return -1;
    int rc = 0;
    for (size_t c = 0; c < calls && !rc; c++)
        rc = fn(ctx, c, st);
    if (cudaStreamEndCapture(st, &graph) != cudaSuccess || rc)
        return -1;
    if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
        cudaGraphDestroy(graph);
        return -1;
    }
    for (int r = 0; r < 3; r++)
        cudaGraphLaunch(exec, st);
    for (int r = 0; r < reps; r++) {
        cudaEventRecord(e0, st);
        cudaGraphLaunch(exec, st);
        cudaEventRecord(e1, st);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms_buf[r], e0, e1);
    }
    const cudaError_t err = cudaStreamSynchronize(st);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess)
        return -1;
    qsort(ms_buf, (size_t)reps, sizeof ms_buf[0], cmp_float);
    return ms_buf[reps / 2] * 1e3 / (double)calls;
}

typedef struct call_ctx {
    gs_dtype dt;
    char *pool;
    size_t stride; /* bytes between copies */
    float *out;
    const float *in, *bias;
    int n, k, m;
} call_ctx;

static int call_one(void *p, size_t copy, cudaStream_t st)
{
    call_ctx *c = p;
    const void *w = c->pool + copy * c->stride;
    if (c->dt == GS_DTYPE_F16)
        return cuda_gemv_half(c->out, c->in, w, 0, c->bias, c->n, c->k, c->m, st);
    return cuda_matmul_quant(c->out, c->in, w, gs_dtype_group(c->dt), c->bias, c->n, c->k, c->m, GS_GEMV_EPI_NONE, st);
}

int main(int argc, char **argv)
{
    int n = 1, reps = 50, all_groups = 0, prefill = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--all-groups") == 0)
            all_groups = 1;
        else if (strcmp(argv[i], "--prefill") == 0 && i + 1 < argc)
            prefill = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--n N] [--reps R] [--all-groups] [--prefill N]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || reps < 1 || reps > MAXREPS || prefill < 0) {
        fprintf(stderr, "bench_gemv_quant: bad --n / --reps / --prefill\n");
        return 2;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("bench_gemv_quant: no CUDA device\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    cuda_or_bail(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    rng_state = 0x9E3779B97F4A7C15ULL;

    /* GPT-2 1558M, d = 1600: {m outputs, k inputs, uses per token} */
    static const struct { const char *name; int m, k, per_token; } shapes[] = {
        {"qkv", 4800, 1600, 48}, {"attn-proj", 1600, 1600, 48}, {"fc", 6400, 1600, 48},
        {"fc-proj", 1600, 6400, 48}, {"lm-head", 50257, 1600, 1},
    };
    gs_dtype dts[5] = {GS_DTYPE_F16, GS_DTYPE_I8, GS_DTYPE_Q4_G128, GS_DTYPE_Q4_G64, GS_DTYPE_Q4_G32};
    const int ndt = all_groups ? 5 : 3;

    cudaEvent_t e0, e1;
    cudaStream_t st;
    cuda_or_bail(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda_or_bail(cudaEventCreate(&e0), "cudaEventCreate");
    cuda_or_bail(cudaEventCreate(&e1), "cudaEventCreate");
    char *pool = NULL;
    cuda_or_bail(cudaMalloc((void **)&pool, POOL_BYTES), "cudaMalloc pool");
    const int rows = n > prefill ? n : prefill;
    float *d_in = NULL, *d_out = NULL, *d_bias = NULL;
    cuda_or_bail(cudaMalloc((void **)&d_in, (size_t)rows * 6400 * sizeof(float)), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d_out, (size_t)rows * 50257 * sizeof(float)), "cudaMalloc");
    cuda_or_bail(cudaMalloc((void **)&d_bias, 50257 * sizeof(float)), "cudaMalloc");
    {
        /* one host buffer fills both: the inputs and the 50257 biases */
        const size_t cnt = (size_t)rows * 6400 > 50257 ? (size_t)rows * 6400 : 50257;
        float *h = xmalloc(cnt * sizeof(float));
        for (size_t i = 0; i < cnt; i++)
            h[i] = frand();
        cuda_or_bail(cudaMemcpy(d_in, h, (size_t)rows * 6400 * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        cuda_or_bail(cudaMemcpy(d_bias, h, 50257 * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        free(h);
    }

    /* the floor: a 256 MB device-to-device copy, (read + write) bytes over time */
    const size_t half_pool = POOL_BYTES / 2;
    for (int r = 0; r < 3; r++)
        cudaMemcpyAsync(pool + half_pool, pool, half_pool, cudaMemcpyDeviceToDevice, 0);
    for (int r = 0; r < 20; r++) {
        cudaEventRecord(e0, 0);
        cudaMemcpyAsync(pool + half_pool, pool, half_pool, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms_buf[r], e0, e1);
    }
    qsort(ms_buf, 20, sizeof ms_buf[0], cmp_float);
    const double copy_gbs = 2.0 * half_pool / (ms_buf[10] * 1e6);

    printf("# %s, %d SMs; decode GEMV at n = %d, GPT-2 1558M shapes; bias on; median of %d graph replays\n",
           prop.name, prop.multiProcessorCount, n, reps);
    printf("# device-to-device copy: %.1f GB/s (read + write of 256 MB); floor = weight bytes / that\n", copy_gbs);
    printf("# %-9s %5s %5s  %-9s %9s %9s %9s %8s %7s %7s\n", "matrix", "m", "k", "format", "MB", "us", "GB/s",
           "floor us", "x copy", "x fp16");

    double token_us[5] = {0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s].m, k = shapes[s].k;
        float *w = xmalloc((size_t)m * k * sizeof(float));
        for (size_t i = 0; i < (size_t)m * k; i++)
            w[i] = frand() * 0.05f;
        double fp16_us = 0;
        for (int d = 0; d < ndt; d++) {
            const gs_dtype dt = dts[d];
            const size_t bytes = gs_weight_bytes(dt, m, k);
            const size_t stride = (bytes + 255) & ~(size_t)255;
            const size_t copies = POOL_BYTES / stride;
            void *blk = xmalloc(bytes);
            gs_quantize_matrix(dt, w, m, k, blk);
            cuda_or_bail(cudaMemcpy(pool, blk, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
            for (size_t c = 1; c < copies; c++)
                cuda_or_bail(cudaMemcpy(pool + c * stride, pool, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");
            free(blk);
            call_ctx ctx = {dt, pool, stride, d_out, d_in, d_bias, n, k, m};
            /* enough calls per graph that one replay reads >= 256 MB (L2 is 50 MB) */
            size_t calls = ((256UL << 20) + bytes - 1) / bytes;
            calls = calls < 20 ? 20 : calls;
            calls = calls > copies ? copies : calls;
            const double us = time_calls(call_one, &ctx, calls, reps, st, e0, e1);
            if (us < 0) {
                printf("  %-9s %5d %5d  %-9s failed: %s\n", shapes[s].name, m, k, gs_dtype_name(dt),
                       cudaGetErrorString(cudaGetLastError()));
                continue;
            }
            if (dt == GS_DTYPE_F16)
                fp16_us = us;
            token_us[d] += us * shapes[s].per_token;
            const double gbs = bytes / (us * 1e3), floor_us = bytes / (copy_gbs * 1e3);
            printf("  %-9s %5d %5d  %-9s %9.2f %9.2f %9.1f %8.2f %6.0f%% %6.2fx\n", shapes[s].name, m, k,
                   gs_dtype_name(dt), bytes / 1e6, us, gbs, floor_us, 100.0 * gbs / copy_gbs,
                   fp16_us > 0 ? fp16_us / us : 0.0);
        }
        free(w);
    }
    printf("# per token (48 layers x 4 matrices + lm-head), sum of the medians above:\n");
    for (int d = 0; d < ndt; d++)
        printf("  %-9s %9.1f us  %6.2fx fp16\n", gs_dtype_name(dts[d]), token_us[d],
               token_us[d] > 0 ? token_us[0] / token_us[d] : 0.0);

    if (prefill > 0) {
        printf("# prefill: cuda_matmul_quant at n = %d (the tile kernel), fp32 out; TFLOP/s = 2 n m k / time\n",
               prefill);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int m = shapes[s].m, k = shapes[s].k;
            float *w = xmalloc((size_t)m * k * sizeof(float));
            for (size_t i = 0; i < (size_t)m * k; i++)
                w[i] = frand() * 0.05f;
            for (int d = 1; d < ndt; d++) {
                const gs_dtype dt = dts[d];
                const size_t bytes = gs_weight_bytes(dt, m, k);
                void *blk = xmalloc(bytes);
                gs_quantize_matrix(dt, w, m, k, blk);
                cuda_or_bail(cudaMemcpy(pool, blk, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
                free(blk);
                call_ctx ctx = {dt, pool, 0, d_out, d_in, d_bias, prefill, k, m};
                const double us = time_calls(call_one, &ctx, 1, reps < 10 ? reps : 10, st, e0, e1);
                if (us < 0) {
                    printf("  %-9s %-9s failed\n", shapes[s].name, gs_dtype_name(dt));
                    continue;
                }
                printf("  %-9s %5d %5d  %-9s %10.1f us %8.1f TFLOP/s\n", shapes[s].name, m, k, gs_dtype_name(dt),
                       us, 2.0 * prefill * m * k / (us * 1e6));
            }
            free(w);
        }
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaStreamDestroy(st);
    cudaFree(pool), cudaFree(d_in), cudaFree(d_out), cudaFree(d_bias);
    return 0;
}
