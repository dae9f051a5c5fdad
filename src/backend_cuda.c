/* backend_cuda.c - the CUDA backend: device memory, one stream, cuBLAS for
 * the dense products (what real engines use) and the project's kernels in
 * kernels/cuda for everything else.
 *
 * Products: fp32 weights go to cublasSgemm; half-precision weights to the
 * project's GEMV for decode-sized steps (<= GEMV_MAX_ROWS rows) and to
 * cuBLASLt on tensor cores for larger ones, which adds the bias and the
 * residual stream (beta = 1, C = D) in its epilogue instead of in kernels
 * of ours; quantized blocks to the project's kernels at every size.
 *
 * Ops are void in the backend table, so a failed launch or library call is
 * remembered (the first one, with its name) and reported by the next
 * synchronize: the forward pass checks it once per step. */
#include "backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"

#ifndef HAVE_CUDA

int gs_backend_cuda_create(gs_backend **out, gs_error *err)
{
    *out = NULL;
    return gs_error_set(err, GS_ERR_RUNTIME, "backend cuda: this build has no CUDA support (configure --with-cuda)");
}

#else

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda/attention_cuda.h"
#include "cuda/fused_cuda.h"
#include "cuda/gemv_cuda.h"
#include "cuda/matmul_quant_cuda.h"
#include "cuda/ops_cuda.h"

#define GRAPH_CACHE 32
#define LT_PLANS 64
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

/* What picks a cuBLASLt algorithm: the shape, the types, the epilogue and
 * the alignment of every pointer (the heuristic reads them: an algorithm
 * picked for 256-byte aligned data may not run on less). */
typedef struct lt_key {
    int n, k, m, bf16, bias, accumulate;
    unsigned align_w, align_in, align_out, align_bias;
} lt_key;

/* A kept cuBLASLt product: its descriptors and the heuristic's algorithm. */
typedef struct lt_plan {
    lt_key key;
    int used;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

typedef struct cuda_impl {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cublasLtHandle_t lt;
    lt_plan lt_plans[LT_PLANS]; /* replaced round robin when full */
    int lt_next;
    void *attn_scratch;
    size_t attn_scratch_bytes;
    void *half_in;           /* activations converted for half-precision products */
    size_t half_in_bytes;
    void *cublas_workspace;  /* cuBLAS must not allocate while a graph records; cuBLASLt shares it (one stream) */
    /* Recorded steps kept by key (batch shape, context bucket, variant):
     * replayed untouched, so a decode step costs one launch. */
    struct { uint64_t key; cudaGraphExec_t exec; } graphs[GRAPH_CACHE];
    int next_graph;
    long graph_instantiations, graph_replays;
    int failed;            /* first failure, reported by synchronize */
    char failure[256];
} cuda_impl;

/* Kept graphs hold raw pointers to scratch buffers: whenever one moves, they go. */
static void graphs_clear(cuda_impl *c)
{
    for (int i = 0; i < GRAPH_CACHE; i++) {
        if (c->graphs[i].exec)
            cudaGraphExecDestroy(c->graphs[i].exec);
        c->graphs[i].exec = NULL;
        c->graphs[i].key = 0;
    }
}

#define IMPL(be) ((cuda_impl *)(be)->impl)

static void note_failure(gs_backend *be, const char *what, int code, const char *detail)
{
    cuda_impl *c = IMPL(be);
    if (!c->failed) {
        c->failed = code ? code : 1;
        snprintf(c->failure, sizeof c->failure, "%s failed: %s", what, detail);
    }
}

static void check_kernel(gs_backend *be, const char *what, int rc)
{
    if (rc)
        note_failure(be, what, rc, cudaGetErrorString((cudaError_t)rc));
}

static void lt_plan_free(lt_plan *p)
{
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->a)
        cublasLtMatrixLayoutDestroy(p->a);
    if (p->b)
        cublasLtMatrixLayoutDestroy(p->b);
    if (p->d)
        cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

static void cuda_destroy(gs_backend *be)
{
    cuda_impl *c = IMPL(be);
    if (c) {
        for (int i = 0; i < LT_PLANS; i++)
            lt_plan_free(&c->lt_plans[i]);
        if (c->lt)
            cublasLtDestroy(c->lt);
        if (c->attn_scratch)
            cudaFree(c->attn_scratch);
        if (c->half_in)
            cudaFree(c->half_in);
        graphs_clear(c);
        if (c->cublas_workspace)
            cudaFree(c->cublas_workspace);
        if (c->cublas)
            cublasDestroy(c->cublas);
        if (c->stream)
            cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

static void *cuda_alloc(gs_backend *be, size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is reported by the caller, with sizes */
        return NULL;
    }
    return p;
}

static void cuda_free(gs_backend *be, void *ptr) { cudaFree(ptr); }

static void *cuda_alloc_host(gs_backend *be, size_t bytes)
{
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_free_host(gs_backend *be, void *ptr) { cudaFreeHost(ptr); }

static int cuda_upload(gs_backend *be, void *dst, const void *src, size_t bytes)
{
    /* From pageable memory the call returns once src is staged: the caller may reuse it. */
    cudaError_t rc = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, IMPL(be)->stream);
    if (rc != cudaSuccess) {
        note_failure(be, "cudaMemcpyAsync (upload)", rc, cudaGetErrorString(rc));
        return GS_ERR_RUNTIME;
    }
    return GS_OK;
}

static int cuda_download(gs_backend *be, void *dst, const void *src, size_t bytes)
{
    cudaError_t rc = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, IMPL(be)->stream);
    if (rc != cudaSuccess) {
        note_failure(be, "cudaMemcpyAsync (download)", rc, cudaGetErrorString(rc));
        return GS_ERR_RUNTIME;
    }
    return GS_OK;
}

static int cuda_copy(gs_backend *be, void *dst, const void *src, size_t bytes)
{
    cudaError_t rc = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, IMPL(be)->stream);
    if (rc != cudaSuccess) {
        note_failure(be, "cudaMemcpyAsync (device to device)", rc, cudaGetErrorString(rc));
        return GS_ERR_RUNTIME;
    }
    return GS_OK;
}

static int cuda_synchronize(gs_backend *be)
{
    cuda_impl *c = IMPL(be);
    cudaError_t rc = cudaStreamSynchronize(c->stream);
    if (rc != cudaSuccess)
        note_failure(be, "cudaStreamSynchronize", rc, cudaGetErrorString(rc));
    if (c->failed) {
        fprintf(stderr, "gptscope: cuda: %s\n", c->failure);
        return GS_ERR_RUNTIME;
    }
    return GS_OK;
}

static int cuda_mem_info(gs_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = 0;
    return cudaMemGetInfo(free_bytes, total_bytes) == cudaSuccess ? GS_OK : GS_ERR_RUNTIME;
}

static void op_embed(gs_backend *be, float *out, const int *tokens, const int *pos, const float *wte,
                     const float *wpe, int n, int C)
{
    check_kernel(be, "embed", cuda_embed(out, tokens, pos, wte, wpe, n, C, IMPL(be)->stream));
}

static void op_layernorm(gs_backend *be, float *out, const float *in, const float *w, const float *b, int n,
                         int C, float eps)
{
    check_kernel(be, "layernorm", cuda_layernorm(out, in, w, b, n, C, eps, IMPL(be)->stream));
}

static void op_rmsnorm(gs_backend *be, float *out, const float *in, const float *w, int n, int C, float eps)
{
    check_kernel(be, "rmsnorm", cuda_rmsnorm(out, in, w, n, C, eps, IMPL(be)->stream));
}

/* Grows a device scratch buffer; 0 or the failure already noted. */
static int ensure_scratch(gs_backend *be, void **buf, size_t *have, size_t need, const char *what)
{
    cuda_impl *c = IMPL(be);
    if (need <= *have)
        return 0;
    /* Grow geometrically so a growing context reallocates rarely. */
    size_t want = need > 2 * *have ? need : 2 * *have;
    if (*buf) {
        cudaStreamSynchronize(c->stream);
        cudaFree(*buf);
    }
    graphs_clear(c);
    *buf = NULL;
    *have = 0;
    if (cudaMalloc(buf, want) != cudaSuccess) {
        cudaGetLastError();
        char detail[96];
        snprintf(detail, sizeof detail, "out of GPU memory for %zu bytes of scratch", want);
        note_failure(be, what, cudaErrorMemoryAllocation, detail);
        return 1;
    }
    *have = want;
    return 0;
}

/* Decode-sized products (few rows) are bound by reading w: the project's GEMV
 * reads each half-precision row once for all rows of in. Larger ones go to
 * cuBLAS on tensor cores after converting in to the weights' type. */
#define GEMV_MAX_ROWS 16

/* Row-major out[n][m] = in[n][k] . w[m][k]^T is, in cuBLAS's column-major
 * terms, out^T (m x n) = w^T(op T on the k x m view) . in^T (k x n). */

/* The largest power of two up to 256 dividing p's address. */
static unsigned align_of(const void *p)
{
    unsigned a = 256;
    while (a > 1 && (uintptr_t)p % a)
        a /= 2;
    return a;
}

/* Makes the descriptors of a plan and asks the heuristic for its algorithm. */
static cublasStatus_t lt_plan_make(cuda_impl *c, lt_plan *p, const lt_key *key, const float *bias)
{
    const cudaDataType_t t = key->bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = key->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    const cudaDataType_t bias_t = CUDA_R_32F;
    const uint64_t ws = CUBLAS_WORKSPACE_BYTES;
    memset(p, 0, sizeof *p);
    p->key = *key;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (st == CUBLAS_STATUS_SUCCESS && key->bias)
        st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t, sizeof bias_t);
    if (st == CUBLAS_STATUS_SUCCESS && key->bias) /* the heuristic reads its alignment */
        st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    /* Column-major views of the row-major operands: w is k x m (op T), in k x n, out m x n. */
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&p->a, t, (uint64_t)key->k, (uint64_t)key->m, key->k);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&p->b, t, (uint64_t)key->k, (uint64_t)key->n, key->k);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, (uint64_t)key->m, (uint64_t)key->n, key->m);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceCreate(&pref);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    const struct { cublasLtMatmulPreferenceAttributes_t attr; unsigned v; } aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key->align_w},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key->align_in},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key->align_out},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key->align_out},
    };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0] && st == CUBLAS_STATUS_SUCCESS; i++) {
        const uint32_t v = aligns[i].v;
        st = cublasLtMatmulPreferenceSetAttribute(pref, aligns[i].attr, &v, sizeof v);
    }
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->d, p->d, pref, 1, &res, &found);
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && found < 1)
        st = CUBLAS_STATUS_NOT_SUPPORTED;
    if (st != CUBLAS_STATUS_SUCCESS) {
        lt_plan_free(p);
        return st;
    }
    p->algo = res.algo;
    p->used = 1;
    return CUBLAS_STATUS_SUCCESS;
}

/* out[n][m] = in_h[n][k] . w[m][k]^T (+ bias[m]) (+ out, when accumulate) on
 * tensor cores: fp16/bf16 operands, fp32 sums and output, the bias and the
 * accumulation applied by cuBLASLt's epilogue (D = A B + beta C + bias with
 * beta = 1 and C = D = out). Plans are kept by lt_key: the heuristic runs
 * once per shape, and a call inside a graph recording touches no memory
 * allocator (the workspace is ours, allocated at create). */
static void lt_matmul(gs_backend *be, float *out, const void *in_h, const void *w, int bf16, const float *bias,
                      int n, int k, int m, int accumulate)
{
    cuda_impl *c = IMPL(be);
    lt_key key = {n, k, m, bf16, bias != NULL, accumulate, align_of(w), align_of(in_h), align_of(out),
                  bias ? align_of(bias) : 256};
    lt_plan *p = NULL;
    for (int i = 0; i < LT_PLANS && !p; i++)
        if (c->lt_plans[i].used && !memcmp(&c->lt_plans[i].key, &key, sizeof key))
            p = &c->lt_plans[i];
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (!p) {
        p = &c->lt_plans[c->lt_next];
        c->lt_next = (c->lt_next + 1) % LT_PLANS;
        lt_plan_free(p);
        st = lt_plan_make(c, p, &key, bias);
    }
    if (st == CUBLAS_STATUS_SUCCESS && bias)
        st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    const float one = 1.0f, zero = 0.0f;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmul(c->lt, p->desc, &one, w, p->a, in_h, p->b, accumulate ? &one : &zero, out, p->d, out,
                            p->d, &p->algo, c->cublas_workspace, CUBLAS_WORKSPACE_BYTES, c->stream);
    if (st != CUBLAS_STATUS_SUCCESS)
        note_failure(be, "cuBLASLt matmul", (int)st, cublasGetStatusString(st));
}

/* Rows of in converted to the weights' half type, in c->half_in; NULL on failure (noted). */
static const void *half_rows(gs_backend *be, const float *in, long count, int bf16)
{
    cuda_impl *c = IMPL(be);
    if (ensure_scratch(be, &c->half_in, &c->half_in_bytes, (size_t)count * 2, "matmul (half)"))
        return NULL;
    int rc = cuda_convert_to_half(c->half_in, in, count, bf16, c->stream);
    check_kernel(be, "convert_to_half", rc);
    return rc ? NULL : c->half_in;
}

static void op_matmul(gs_backend *be, float *out, const float *in, const void *w, gs_dtype wdt,
                      const float *bias, int n, int k, int m)
{
    cuda_impl *c = IMPL(be);
    if (gs_dtype_is_quant(wdt)) { /* int8 / int4 blocks: the project's kernels for any n, no cuBLAS */
        check_kernel(be, "matmul_quant",
                     cuda_matmul_quant(out, in, w, gs_dtype_group(wdt), bias, n, k, m, GS_GEMV_EPI_NONE, c->stream));
        return;
    }
    if (wdt != GS_DTYPE_F32) {
        const int bf16 = wdt == GS_DTYPE_BF16;
        if (n <= GEMV_MAX_ROWS) {
            check_kernel(be, "gemv_half", cuda_gemv_half(out, in, w, bf16, bias, n, k, m, c->stream));
            return;
        }
        const void *in_h = half_rows(be, in, (long)n * k, bf16);
        if (in_h)
            lt_matmul(be, out, in_h, w, bf16, bias, n, k, m, 0); /* the bias in the epilogue */
        return;
    }
    /* fp32 means fp32: the handle's math mode is pedantic (no TF32), set at create. */
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = cublasSgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, (const float *)w, k, in, k,
                                    &zero, out, m);
    if (st != CUBLAS_STATUS_SUCCESS) {
        note_failure(be, "cuBLAS matmul", (int)st, cublasGetStatusString(st));
        return;
    }
    if (bias)
        check_kernel(be, "add_bias", cuda_add_bias(out, bias, n, m, c->stream));
}

static int op_matmul_ex_fits(gs_backend *be, gs_dtype wdt, int n)
{
    (void)be;
    (void)n;
    /* The quantized GEMV and prefill tile kernel apply the epilogues, and so
     * do the half GEMV (decode) and cuBLASLt (larger steps): all but fp32. */
    return wdt != GS_DTYPE_F32;
}

/* The kernels' form of a folded norm (norm_fold.h); NULL: none. */
static gs_norm_fold norm_fold_of(const gs_prenorm *norm)
{
    gs_norm_fold nf = {GS_NORM_FOLD_NONE, NULL, NULL, 0.0f};
    if (norm) {
        nf.kind = norm->rms ? GS_NORM_FOLD_RMS : GS_NORM_FOLD_LAYER;
        nf.w = norm->w;
        nf.b = norm->b;
        nf.eps = norm->eps;
    }
    return nf;
}

/* Norms fold into the decode GEMVs (half and quantized weights) for a few
 * rows: each block takes the rows' statistics and normalizes each input as
 * it reads it. Past 4 rows the statistics (a block reduction per row) and
 * the per-input normalization cost more than the norm kernel they replace. */
#define NORM_FOLD_MAX_ROWS 4
static int op_matmul_norm_fits(gs_backend *be, gs_dtype wdt, int n)
{
    (void)be;
    return wdt != GS_DTYPE_F32 && n <= NORM_FOLD_MAX_ROWS;
}

/* Half rows in: where a product would convert its fp32 rows itself. */
static int op_half_in_fits(gs_backend *be, gs_dtype wdt, int n)
{
    (void)be;
    return (wdt == GS_DTYPE_F16 || wdt == GS_DTYPE_BF16) && n > GEMV_MAX_ROWS;
}

static void op_matmul_ex(gs_backend *be, float *out, const void *in, const void *w, gs_dtype wdt,
                         const float *bias, int n, int k, int m, int epilogue, const gs_prenorm *norm)
{
    const int in_half = (epilogue & GS_EPI_IN_HALF) != 0;
    epilogue &= ~GS_EPI_IN_HALF;
    /* A folded norm reads fp32 rows, so it never comes with half rows in
     * (the shapes are disjoint too: at most 4 rows against more than 16). */
    if (!op_matmul_ex_fits(be, wdt, n) || (in_half && (norm || !op_half_in_fits(be, wdt, n))) ||
        (norm && !op_matmul_norm_fits(be, wdt, n))) {
        note_failure(be, "matmul_ex", cudaErrorInvalidValue,
                     in_half ? "half rows in need fp16/bf16 weights, more than 16 rows and no folded norm"
                     : norm  ? "a folded norm outside the decode GEMV's shapes"
                             : "fused epilogues need half-precision or quantized weights");
        return;
    }
    int epi = epilogue == GS_EPI_GELU ? GS_GEMV_EPI_GELU : epilogue == GS_EPI_ACCUMULATE ? GS_GEMV_EPI_ACCUMULATE
                                                                                          : GS_GEMV_EPI_NONE;
    const gs_norm_fold nf = norm_fold_of(norm);
    if (gs_dtype_is_quant(wdt)) {
        if (n <= GEMV_MAX_ROWS)
            check_kernel(be, "gemv_quant_ex",
                         cuda_gemv_quant(out, in, w, gs_dtype_group(wdt), bias, n, k, m, epi, nf, IMPL(be)->stream));
        else
            check_kernel(be, "matmul_quant_ex",
                         cuda_matmul_quant(out, in, w, gs_dtype_group(wdt), bias, n, k, m, epi, IMPL(be)->stream));
        return;
    }
    const int bf16 = wdt == GS_DTYPE_BF16;
    if (n <= GEMV_MAX_ROWS) {
        check_kernel(be, "gemv_half_ex",
                     cuda_gemv_half_ex(out, in, w, bf16, bias, n, k, m, epi, nf, IMPL(be)->stream));
        return;
    }
    const void *in_h = in_half ? in : half_rows(be, in, (long)n * k, bf16);
    if (!in_h)
        return;
    lt_matmul(be, out, in_h, w, bf16, bias, n, k, m, epi == GS_GEMV_EPI_ACCUMULATE);
    /* cuBLASLt's GELU epilogue is its own approximation, not gelu1 of
     * activation.cuh that the GEMV, the gelu kernel and the CPU twin share:
     * GELU stays a kernel of ours. */
    if (epi == GS_GEMV_EPI_GELU)
        check_kernel(be, "gelu", cuda_gelu(out, (long)n * m, IMPL(be)->stream));
}

static void op_norm_half(gs_backend *be, void *out, const float *in, const float *w, const float *b, int rms, int n,
                         int C, float eps, gs_dtype wdt)
{
    check_kernel(be, "norm_half",
                 cuda_norm_half(out, in, w, b, rms, n, C, eps, wdt == GS_DTYPE_BF16, IMPL(be)->stream));
}

static void op_gelu_half(gs_backend *be, void *out, const float *x, long count, gs_dtype wdt)
{
    check_kernel(be, "gelu_half", cuda_gelu_half(out, x, count, wdt == GS_DTYPE_BF16, IMPL(be)->stream));
}

/* The KV store folds into the half-weight decode GEMV (gemv.cu) for fp32
 * caches, at the few rows that GEMV takes: 5-16 rows go to the tensor-core
 * GEMV (gemv_mma.cu), which has no such epilogue, and its product plus the
 * kv_store kernel is far cheaper than the fp32-input GEMV at 16 rows (H100,
 * gpt2-124m qkv: ~12 us against a few). */
static int op_matmul_kv_fits(gs_backend *be, gs_dtype wdt, int n, int kv_dtype)
{
    (void)be;
    return (wdt == GS_DTYPE_F16 || wdt == GS_DTYPE_BF16) && n <= NORM_FOLD_MAX_ROWS && kv_dtype == GS_KV_F32;
}

static void op_matmul_store_kv(gs_backend *be, float *out, const float *in, const void *w, gs_dtype wdt,
                               const float *bias, int n, int k, int m, const gs_prenorm *norm, void *k_cache,
                               void *v_cache, int kv_dtype, const int *slot, int q_dim, int kv_dim)
{
    if (!op_matmul_kv_fits(be, wdt, n, kv_dtype) || (norm && !op_matmul_norm_fits(be, wdt, n))) {
        note_failure(be, "gemv_half_kv", cudaErrorInvalidValue, "a folded KV store outside the GEMV's shapes");
        return;
    }
    const gs_norm_fold nf = norm_fold_of(norm);
    const gs_gemv_kv kv = {(float *)k_cache, (float *)v_cache, slot, q_dim, kv_dim};
    check_kernel(be, "gemv_half_kv",
                 cuda_gemv_half_kv(out, in, w, wdt == GS_DTYPE_BF16, bias, n, k, m, nf, kv, IMPL(be)->stream));
}

static int cuda_upload_weights(gs_backend *be, void *dst, const float *src, size_t count, gs_dtype dt,
                               gs_error *err)
{
    if (gs_dtype_is_quant(dt)) /* a block of data and scales, not elements: the caller packs it */
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "backend cuda: upload_weights takes fp32/fp16/bf16; %s weights are packed on the host "
                            "(gs_quantize_matrix) and copied with upload",
                            gs_dtype_name(dt));
    if (dt == GS_DTYPE_F32) {
        cudaError_t rc = cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyHostToDevice);
        return rc == cudaSuccess ? GS_OK
                                 : gs_error_set(err, GS_ERR_RUNTIME, "uploading weights: %s", cudaGetErrorString(rc));
    }
    /* Convert on the host in slices so the staging buffer stays small. */
    enum { SLICE = 1 << 20 };
    uint16_t *tmp = malloc(SLICE * sizeof(uint16_t));
    if (!tmp)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory converting weights");
    for (size_t done = 0; done < count; done += SLICE) {
        size_t nn = count - done < SLICE ? count - done : SLICE;
        for (size_t i = 0; i < nn; i++)
            tmp[i] = dt == GS_DTYPE_F16 ? gs_f32_to_f16(src[done + i]) : gs_f32_to_bf16(src[done + i]);
        cudaError_t rc = cudaMemcpy((uint16_t *)dst + done, tmp, nn * sizeof(uint16_t), cudaMemcpyHostToDevice);
        if (rc != cudaSuccess) {
            free(tmp);
            return gs_error_set(err, GS_ERR_RUNTIME, "uploading weights: %s", cudaGetErrorString(rc));
        }
    }
    free(tmp);
    return GS_OK;
}

static void op_gelu(gs_backend *be, float *x, long count)
{
    check_kernel(be, "gelu", cuda_gelu(x, count, IMPL(be)->stream));
}

static void op_swiglu(gs_backend *be, float *up, const float *gate, long count)
{
    check_kernel(be, "swiglu", cuda_swiglu(up, gate, count, IMPL(be)->stream));
}

static void op_rope(gs_backend *be, float *qkv, const int *pos, int n, int qkv_stride, int n_head, int n_kv_head,
                    int head_dim, float theta)
{
    check_kernel(be, "rope",
                 cuda_rope(qkv, pos, n, qkv_stride, n_head, n_kv_head, head_dim, theta, IMPL(be)->stream));
}

static void op_kv_store(gs_backend *be, void *k_cache, void *v_cache, float *k_scale, float *v_scale, int kv_dtype,
                        const float *qkv, const int *slot, int n, int qkv_stride, int q_dim, int kv_dim, int head_dim)
{
    check_kernel(be, "kv_store",
                 cuda_kv_store(k_cache, v_cache, k_scale, v_scale, kv_dtype, qkv, slot, n, qkv_stride, q_dim, kv_dim,
                               head_dim, IMPL(be)->stream));
}

static void op_attention(gs_backend *be, float *out, const float *qkv, const void *k_cache, const void *v_cache,
                         const gs_attn_args *a)
{
    cuda_impl *c = IMPL(be);
    if (ensure_scratch(be, &c->attn_scratch, &c->attn_scratch_bytes, cuda_attention_scratch_bytes(a), "attention"))
        return;
    check_kernel(be, "attention",
                 cuda_attention(out, qkv, k_cache, v_cache, a, c->attn_scratch, c->attn_scratch_bytes, c->stream));
}

static void op_attention_half(gs_backend *be, void *out_half, float *out, const float *qkv, const void *k_cache,
                              const void *v_cache, const gs_attn_args *a, gs_dtype wdt)
{
    cuda_impl *c = IMPL(be);
    const int bf16 = wdt == GS_DTYPE_BF16;
    if (!cuda_attention_half_fits(a, k_cache, v_cache)) { /* fp32 rows (some or all not tensor-core rows), converted */
        op_attention(be, out, qkv, k_cache, v_cache, a);
        if (!c->failed)
            check_kernel(be, "convert_to_half",
                         cuda_convert_to_half(out_half, out, (long)a->n_tokens * a->n_head * a->head_dim, bf16,
                                              c->stream));
        return;
    }
    if (ensure_scratch(be, &c->attn_scratch, &c->attn_scratch_bytes, cuda_attention_scratch_bytes(a), "attention"))
        return;
    check_kernel(be, "attention",
                 cuda_attention_half(out_half, bf16, qkv, k_cache, v_cache, a, c->attn_scratch,
                                     c->attn_scratch_bytes, c->stream));
}

static void op_residual_add(gs_backend *be, float *x, const float *y, long count)
{
    check_kernel(be, "residual_add", cuda_residual_add(x, y, count, IMPL(be)->stream));
}

static void op_residual_norm(gs_backend *be, float *x, const float *y, float *out, const float *w, const float *b,
                             int rms, int n, int C, float eps)
{
    cudaStream_t st = IMPL(be)->stream;
    if (rms)
        check_kernel(be, "residual_rmsnorm", cuda_residual_rmsnorm(x, y, out, w, n, C, eps, st));
    else
        check_kernel(be, "residual_layernorm", cuda_residual_layernorm(x, y, out, w, b, n, C, eps, st));
}

static void op_gather_rows(gs_backend *be, float *out, const float *in, const int *rows, int n, int C)
{
    check_kernel(be, "gather_rows", cuda_gather_rows(out, in, rows, n, C, IMPL(be)->stream));
}

static void op_argmax_rows(gs_backend *be, int *out, const float *logits, int n, int vocab)
{
    check_kernel(be, "argmax", cuda_argmax(out, logits, n, vocab, IMPL(be)->stream));
}

static int cuda_graph_begin(gs_backend *be, const gs_attn_args *aa)
{
    cuda_impl *c = IMPL(be);
    if (ensure_scratch(be, &c->attn_scratch, &c->attn_scratch_bytes, cuda_attention_scratch_bytes(aa), "attention"))
        return GS_ERR_RUNTIME;
    cudaError_t rc = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (rc != cudaSuccess) {
        note_failure(be, "cudaStreamBeginCapture", rc, cudaGetErrorString(rc));
        return GS_ERR_RUNTIME;
    }
    return GS_OK;
}

static int cuda_graph_launch(gs_backend *be, cudaGraphExec_t exec)
{
    cudaError_t rc = cudaGraphLaunch(exec, IMPL(be)->stream);
    if (rc != cudaSuccess) {
        note_failure(be, "cudaGraphLaunch", rc, cudaGetErrorString(rc));
        return GS_ERR_RUNTIME;
    }
    return GS_OK;
}

/* Ends the recording, instantiates it, keeps it under key (replacing the
 * oldest kept one when full) and runs it. */
static int cuda_graph_end(gs_backend *be, uint64_t key)
{
    cuda_impl *c = IMPL(be);
    cudaGraph_t graph = NULL;
    cudaError_t rc = cudaStreamEndCapture(c->stream, &graph);
    if (rc != cudaSuccess || c->failed) {
        if (rc != cudaSuccess)
            note_failure(be, "cudaStreamEndCapture", rc, cudaGetErrorString(rc));
        if (graph)
            cudaGraphDestroy(graph);
        return GS_ERR_RUNTIME;
    }
    cudaGraphExec_t exec = NULL;
    rc = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (rc != cudaSuccess) {
        note_failure(be, "cudaGraphInstantiate", rc, cudaGetErrorString(rc));
        return GS_ERR_RUNTIME;
    }
    c->graph_instantiations++;
    int slot = -1;
    for (int i = 0; i < GRAPH_CACHE && slot < 0; i++)
        if (c->graphs[i].exec && c->graphs[i].key == key)
            slot = i;
    if (slot < 0) {
        slot = c->next_graph;
        c->next_graph = (c->next_graph + 1) % GRAPH_CACHE;
    }
    if (c->graphs[slot].exec)
        cudaGraphExecDestroy(c->graphs[slot].exec);
    c->graphs[slot].key = key;
    c->graphs[slot].exec = exec;
    return cuda_graph_launch(be, exec);
}

static int cuda_graph_replay(gs_backend *be, uint64_t key)
{
    cuda_impl *c = IMPL(be);
    for (int i = 0; i < GRAPH_CACHE; i++)
        if (c->graphs[i].exec && c->graphs[i].key == key) {
            c->graph_replays++;
            return cuda_graph_launch(be, c->graphs[i].exec);
        }
    return GS_GRAPH_NONE;
}

static const gs_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .alloc_host = cuda_alloc_host,
    .free_host = cuda_free_host,
    .upload = cuda_upload,
    .download = cuda_download,
    .synchronize = cuda_synchronize,
    .copy = cuda_copy,
    .upload_weights = cuda_upload_weights,
    .mem_info = cuda_mem_info,
    .embed = op_embed,
    .layernorm = op_layernorm,
    .rmsnorm = op_rmsnorm,
    .matmul = op_matmul,
    .matmul_ex = op_matmul_ex,
    .matmul_ex_fits = op_matmul_ex_fits,
    .matmul_norm_fits = op_matmul_norm_fits,
    .matmul_store_kv = op_matmul_store_kv,
    .matmul_kv_fits = op_matmul_kv_fits,
    .half_in_fits = op_half_in_fits,
    .norm_half = op_norm_half,
    .gelu_half = op_gelu_half,
    .gelu = op_gelu,
    .swiglu = op_swiglu,
    .rope = op_rope,
    .kv_store = op_kv_store,
    .attention = op_attention,
    .attention_half = op_attention_half,
    .residual_add = op_residual_add,
    .gather_rows = op_gather_rows,
    .residual_norm = op_residual_norm,
    .argmax_rows = op_argmax_rows,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_replay = cuda_graph_replay,
};

int gs_backend_cuda_create(gs_backend **out, gs_error *err)
{
    *out = NULL;
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess || count == 0) {
        cudaGetLastError();
        return gs_error_set(err, GS_ERR_RUNTIME, "backend cuda: no usable GPU: %s",
                            rc != cudaSuccess ? cudaGetErrorString(rc) : "no device found");
    }
    gs_backend *be = calloc(1, sizeof *be);
    cuda_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory creating the CUDA backend");
    }
    be->ops = &cuda_ops;
    be->impl = c;
    struct cudaDeviceProp p;
    if ((rc = cudaSetDevice(0)) != cudaSuccess || (rc = cudaGetDeviceProperties(&p, 0)) != cudaSuccess ||
        (rc = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cuda_destroy(be);
        return gs_error_set(err, GS_ERR_RUNTIME, "backend cuda: %s", cudaGetErrorString(rc));
    }
    cublasStatus_t st = cublasCreate(&c->cublas);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetStream(c->cublas, c->stream);
    if (st == CUBLAS_STATUS_SUCCESS) /* the handle runs only fp32 products: fp32 means fp32, no TF32 */
        st = cublasSetMathMode(c->cublas, CUBLAS_PEDANTIC_MATH);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtCreate(&c->lt);
    /* A workspace of our own: cuBLAS may not allocate inside a graph recording. */
    if (st == CUBLAS_STATUS_SUCCESS && cudaMalloc(&c->cublas_workspace, CUBLAS_WORKSPACE_BYTES) != cudaSuccess)
        st = CUBLAS_STATUS_ALLOC_FAILED;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetWorkspace(c->cublas, c->cublas_workspace, CUBLAS_WORKSPACE_BYTES);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cuda_destroy(be);
        return gs_error_set(err, GS_ERR_RUNTIME, "backend cuda: cuBLAS: %s", cublasGetStatusString(st));
    }
    snprintf(be->device_name, sizeof be->device_name, "%.100s (sm_%d%d, %d SMs)", p.name, p.major, p.minor,
             p.multiProcessorCount);
    *out = be;
    return GS_OK;
}

#endif
