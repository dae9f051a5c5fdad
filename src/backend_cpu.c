/* backend_cpu.c - the CPU backend: host memory and the kernels in kernels/cpu,
 * run on a pool of worker threads. Ops finish before they return, so
 * synchronize has nothing to wait for. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "activation.h"
#include "attention.h"
#include "backend.h"
#include "backend_cpu.h"
#include "embedding.h"
#include "fused.h"
#include "gather.h"
#include "matmul.h"
#include "matmul_quant.h"
#include "quant.h"
#include "norm.h"
#include "residual.h"
#include "rope.h"
#include "sampler.h"
#include "thread_pool.h"

#define POOL(be) ((gs_pool *)(be)->impl)

static void cpu_destroy(gs_backend *be)
{
    gs_pool_destroy(POOL(be));
    free(be);
}

static void *cpu_alloc(gs_backend *be, size_t bytes)
{
    void *p = NULL;
    /* 64-byte alignment: whole cache lines, and aligned vector loads. */
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

static void cpu_free(gs_backend *be, void *ptr) { free(ptr); }

static int cpu_copy(gs_backend *be, void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return GS_OK;
}

/* One memcpy per thread: a single core cannot draw the machine's whole
 * memory bandwidth, so the peak measurement copies on every worker. */
#define COPY_CHUNK ((size_t)1 << 20)

typedef struct copy_job {
    char *dst;
    const char *src;
    size_t bytes;
} copy_job;

static void copy_chunks(void *ctx, int begin, int end)
{
    const copy_job *j = ctx;
    size_t lo = (size_t)begin * COPY_CHUNK, hi = (size_t)end * COPY_CHUNK;
    if (hi > j->bytes)
        hi = j->bytes;
    memcpy(j->dst + lo, j->src + lo, hi - lo);
}

static int cpu_copy_d2d(gs_backend *be, void *dst, const void *src, size_t bytes)
{
    size_t chunks = (bytes + COPY_CHUNK - 1) / COPY_CHUNK;
    if (chunks < 2 || chunks > (size_t)INT_MAX)
        return cpu_copy(be, dst, src, bytes);
    copy_job j = {dst, src, bytes};
    gs_pool_parallel_for(POOL(be), (int)chunks, 1, copy_chunks, &j);
    return GS_OK;
}

static int cpu_synchronize(gs_backend *be) { return GS_OK; }

static int cpu_mem_info(gs_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    long avail = sysconf(_SC_AVPHYS_PAGES), total = sysconf(_SC_PHYS_PAGES);
    *free_bytes = avail > 0 ? (size_t)avail * (size_t)page : 0;
    *total_bytes = total > 0 ? (size_t)total * (size_t)page : 0;
    return GS_OK;
}

static void op_embed(gs_backend *be, float *out, const int *tokens, const int *pos,
                     const float *wte, const float *wpe, int n, int C)
{
    cpu_embed(out, tokens, pos, wte, wpe, n, C);
}

static void op_layernorm(gs_backend *be, float *out, const float *in, const float *w,
                         const float *b, int n, int C, float eps)
{
    cpu_layernorm(POOL(be), out, in, w, b, n, C, eps);
}

static void op_rmsnorm(gs_backend *be, float *out, const float *in, const float *w, int n, int C,
                       float eps)
{
    cpu_rmsnorm(POOL(be), out, in, w, n, C, eps);
}

static void op_matmul(gs_backend *be, float *out, const float *in, const void *w, gs_dtype wdt,
                      const float *bias, int n, int k, int m)
{
    if (wdt == GS_DTYPE_F32)
        cpu_matmul(POOL(be), out, in, (const float *)w, bias, n, k, m);
    else
        cpu_matmul_packed(POOL(be), out, in, w, wdt, bias, n, k, m);
}

static int cpu_upload_weights(gs_backend *be, void *dst, const float *src, size_t count, gs_dtype dt,
                              gs_error *err)
{
    if (gs_dtype_is_quant(dt)) /* packed formats are written by the forward pass and uploaded as bytes */
        return gs_error_set(err, GS_ERR_RUNTIME, "upload_weights: %s takes a matrix shape; quantize with quant.h",
                            gs_dtype_name(dt));
    gs_quantize_matrix(dt, src, 1, (long)count, dst); /* fp32 copies; fp16/bf16 round to nearest even */
    return GS_OK;
}

static void op_gelu(gs_backend *be, float *x, long count) { cpu_gelu(POOL(be), x, count); }

static void op_swiglu(gs_backend *be, float *up, const float *gate, long count)
{
    cpu_swiglu(POOL(be), up, gate, count);
}

static void op_rope(gs_backend *be, float *qkv, const int *pos, int n, int qkv_stride, int n_head,
                    int n_kv_head, int head_dim, float theta)
{
    cpu_rope(POOL(be), qkv, pos, n, qkv_stride, n_head, n_kv_head, head_dim, theta);
}

static void op_kv_store(gs_backend *be, void *k_cache, void *v_cache, float *k_scale, float *v_scale,
                        int kv_dtype, const float *qkv, const int *slot, int n, int qkv_stride, int q_dim,
                        int kv_dim, int head_dim)
{
    cpu_kv_store(k_cache, v_cache, k_scale, v_scale, kv_dtype, qkv, slot, n, qkv_stride, q_dim, kv_dim,
                 head_dim);
}

static void op_attention(gs_backend *be, float *out, const float *qkv, const void *k_cache,
                         const void *v_cache, const gs_attn_args *a)
{
    cpu_attention(POOL(be), out, qkv, k_cache, v_cache, a);
}

static void op_residual_add(gs_backend *be, float *x, const float *y, long count)
{
    cpu_residual_add(POOL(be), x, y, count);
}

static void op_residual_norm(gs_backend *be, float *x, const float *y, float *out, const float *w, const float *b,
                             int rms, int n, int C, float eps)
{
    if (rms)
        cpu_residual_rmsnorm(x, y, out, w, n, C, eps);
    else
        cpu_residual_layernorm(x, y, out, w, b, n, C, eps);
}

static void op_gather_rows(gs_backend *be, float *out, const float *in, const int *rows, int n, int C)
{
    cpu_gather_rows(out, in, rows, n, C);
}

/* The engine's own host argmax, row by row: the CPU takes the same path as
 * a device (ids out of the pass), so the tests exercise it here. */
static void op_argmax_rows(gs_backend *be, int *out, const float *logits, int n, int vocab)
{
    for (int i = 0; i < n; i++)
        out[i] = gs_sample_argmax(logits + (size_t)i * (size_t)vocab, vocab);
}

static const gs_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_synchronize,
    .copy = cpu_copy_d2d,
    .upload_weights = cpu_upload_weights,
    .mem_info = cpu_mem_info,
    .embed = op_embed,
    .layernorm = op_layernorm,
    .rmsnorm = op_rmsnorm,
    .matmul = op_matmul,
    .gelu = op_gelu,
    .swiglu = op_swiglu,
    .rope = op_rope,
    .kv_store = op_kv_store,
    .attention = op_attention,
    .residual_add = op_residual_add,
    .gather_rows = op_gather_rows,
    .residual_norm = op_residual_norm,
    .argmax_rows = op_argmax_rows,
};

/* The CPU's model name from /proc/cpuinfo, for the status line and traces. */
static void read_cpu_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ' || *colon == '\t')
                    colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(buf, cap, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

int gs_backend_cpu_create(gs_backend **out, int threads, gs_error *err)
{
    gs_backend *be = calloc(1, sizeof *be);
    if (!be)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory creating the CPU backend");
    gs_pool *pool = gs_pool_create(threads);
    if (!pool) {
        free(be);
        return gs_error_set(err, GS_ERR_RUNTIME, "could not start %d CPU worker threads", threads);
    }
    be->ops = &cpu_ops;
    be->impl = pool;
    be->threads = gs_pool_threads(pool);
    char cpu[96];
    read_cpu_name(cpu, sizeof cpu);
    snprintf(be->device_name, sizeof be->device_name, "%s (%d threads)", cpu, be->threads);
    *out = be;
    return GS_OK;
}

gs_pool *gs_backend_cpu_pool(const gs_backend *be) { return be && be->ops == &cpu_ops ? POOL(be) : NULL; }
