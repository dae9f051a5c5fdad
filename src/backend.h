/* backend.h - the seam between the engine and the hardware.
 *
 * A backend is a table of function pointers (as nvtop's gpu_vendor): memory
 * (allocate, upload, download), synchronize, and one entry per op of the
 * forward pass. Pointers passed to ops are the backend's own memory (host
 * memory on the CPU, device memory on CUDA). Ops enqueue work and may return
 * before it finishes; synchronize waits. Shapes use llm.c's names: n rows
 * (tokens), C width, k/m inner/outer sizes. */
#ifndef GS_BACKEND_H
#define GS_BACKEND_H

#include <stddef.h>

#include "attention_args.h"
#include "dtype.h"
#include "status.h"

typedef struct gs_backend gs_backend;

/* A LayerNorm (b its bias) or RMSNorm (rms, b unused) folded into the product
 * that reads its output (matmul_ex); w and b are the backend's memory. */
typedef struct gs_prenorm {
    int rms;
    const float *w, *b;
    float eps;
} gs_prenorm;

typedef struct gs_backend_ops {
    const char *name; /* "cpu", "cuda" */
    void (*destroy)(gs_backend *be);

    /* Memory. alloc returns NULL when out of memory (the caller reports the bytes). */
    void *(*alloc)(gs_backend *be, size_t bytes);
    void (*free)(gs_backend *be, void *ptr);
    int (*upload)(gs_backend *be, void *dst, const void *src, size_t bytes);
    int (*download)(gs_backend *be, void *dst, const void *src, size_t bytes);
    int (*synchronize)(gs_backend *be);
    /* Optional: host memory upload reads fastest (CUDA: page-locked, so an
     * upload is one DMA the call does not wait for; the caller must not
     * rewrite it before the stream has read it). NULL: plain malloc. */
    void *(*alloc_host)(gs_backend *be, size_t bytes);
    void (*free_host)(gs_backend *be, void *ptr);
    /* Device-to-device copy of bytes (enqueued like an op; regions must not
     * overlap). The peak-bandwidth measurement (peaks.h) times it. */
    int (*copy)(gs_backend *be, void *dst, const void *src, size_t bytes);
    /* Stores count fp32 weights at dst converted to dt (dst holds count *
     * gs_dtype_size(dt) bytes). GS_ERR_INPUT when this backend cannot compute
     * with dt, with a message saying so. */
    int (*upload_weights)(gs_backend *be, void *dst, const float *src, size_t count, gs_dtype dt,
                          gs_error *err);
    /* Bytes free and total on the device (host RAM for the CPU backend). */
    int (*mem_info)(gs_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* Ops. */
    void (*embed)(gs_backend *be, float *out, const int *tokens, const int *pos, const float *wte,
                  const float *wpe, int n, int C);
    void (*layernorm)(gs_backend *be, float *out, const float *in, const float *w, const float *b,
                      int n, int C, float eps);
    void (*rmsnorm)(gs_backend *be, float *out, const float *in, const float *w, int n, int C,
                    float eps);
    /* out[n][m] = in[n][k] . w[m][k]^T (+ bias); w stored as wdt, fp32 accumulation */
    void (*matmul)(gs_backend *be, float *out, const float *in, const void *w, gs_dtype wdt,
                   const float *bias, int n, int k, int m);
    /* Optional: the product with a fused epilogue, GS_EPI_GELU (out = gelu(v))
     * or GS_EPI_ACCUMULATE (out += v), v = in . w^T + bias. Only where
     * matmul_ex_fits says so (CUDA: half-precision or quantized weights, any
     * number of rows); in must not overlap out. in holds fp32 rows, or with
     * GS_EPI_IN_HALF or'ed into epilogue, rows in wdt (fp16/bf16) as
     * norm_half and gelu_half write them: only where half_in_fits says so,
     * and never with a norm. */
    void (*matmul_ex)(gs_backend *be, float *out, const void *in, const void *w, gs_dtype wdt,
                      const float *bias, int n, int k, int m, int epilogue, const gs_prenorm *norm);
    int (*matmul_ex_fits)(gs_backend *be, gs_dtype wdt, int n);
    /* Whether matmul_ex takes a non-NULL norm for these shapes: in then holds
     * the raw fp32 rows and the product reads norm(in), equal to running the
     * norm op first (the decode GEMVs normalize as they read: no norm kernel). */
    int (*matmul_norm_fits)(gs_backend *be, gs_dtype wdt, int n);
    /* Optional: the qkv product (no epilogue; norm as matmul_ex's) that also
     * stores its K and V columns [q_dim, q_dim + 2 kv_dim) into the caches at
     * slot[i], as kv_store would; only where matmul_kv_fits says so. */
    void (*matmul_store_kv)(gs_backend *be, float *out, const float *in, const void *w, gs_dtype wdt,
                            const float *bias, int n, int k, int m, const gs_prenorm *norm, void *k_cache,
                            void *v_cache, int kv_dtype, const int *slot, int q_dim, int kv_dim);
    int (*matmul_kv_fits)(gs_backend *be, gs_dtype wdt, int n, int kv_dtype);
    /* Optional: 1 when matmul_ex over n rows of wdt weights (fp16/bf16) takes
     * GS_EPI_IN_HALF rows (the backend would round fp32 rows to wdt itself:
     * CUDA's tensor-core products), so norm_half and gelu_half can write
     * them in the pass that computes them instead of a conversion pass. */
    int (*half_in_fits)(gs_backend *be, gs_dtype wdt, int n);
    /* Optional, with half_in_fits: the norm (RMSNorm when rms, else LayerNorm
     * with bias b) of n rows, or the GELU of count values, written as wdt
     * halves: the fp32 result rounded once, as the product would round it.
     * out must not overlap the input. */
    void (*norm_half)(gs_backend *be, void *out, const float *in, const float *w, const float *b, int rms, int n,
                      int C, float eps, gs_dtype wdt);
    void (*gelu_half)(gs_backend *be, void *out, const float *x, long count, gs_dtype wdt);
    void (*gelu)(gs_backend *be, float *x, long count);
    void (*swiglu)(gs_backend *be, float *up, const float *gate, long count);
    void (*rope)(gs_backend *be, float *qkv, const int *pos, int n, int qkv_stride, int n_head,
                 int n_kv_head, int head_dim, float theta);
    /* The caches hold kv_dtype elements (kernels/kv_format.h); k_scale and
     * v_scale ([slots][kv_dim / head_dim]) only for GS_KV_I8, else NULL. */
    void (*kv_store)(gs_backend *be, void *k_cache, void *v_cache, float *k_scale, float *v_scale,
                     int kv_dtype, const float *qkv, const int *slot, int n, int qkv_stride, int q_dim,
                     int kv_dim, int head_dim);
    /* a->kv_dtype (and a->k_scale/v_scale) say how to read the caches. */
    void (*attention)(gs_backend *be, float *out, const float *qkv, const void *k_cache,
                      const void *v_cache, const gs_attn_args *a);
    /* Optional, with half_in_fits: the same attention with its output rows
     * written as wdt halves into out_half, the GS_EPI_IN_HALF rows the output
     * projection reads (each element rounded once from the fp32 result, the
     * bits a conversion would give). out is the fp32 output's buffer, which
     * the backend may use on the way (CUDA: where the tensor-core prefill
     * does not take every row, fp32 attention then a conversion). */
    void (*attention_half)(gs_backend *be, void *out_half, float *out, const float *qkv, const void *k_cache,
                           const void *v_cache, const gs_attn_args *a, gs_dtype wdt);
    void (*residual_add)(gs_backend *be, float *x, const float *y, long count);
    /* Fused: x += y, then out = norm(x) (RMSNorm when rms, else LayerNorm with
     * bias b). Optional (NULL: the forward pass runs the pair unfused). */
    void (*residual_norm)(gs_backend *be, float *x, const float *y, float *out, const float *w, const float *b,
                          int rms, int n, int C, float eps);
    /* out[i] = in[rows[i]] for i < n: picks the rows that need logits. */
    void (*gather_rows)(gs_backend *be, float *out, const float *in, const int *rows, int n, int C);
    /* Optional: out[i] = the greedy id of logits row i, n rows of vocab, by
     * gs_sample_argmax's rules (ties to the lowest id, NaN never wins); out
     * is backend memory. Greedy decoding then reads back n ints instead of
     * n x vocab floats. NULL: the caller reads the logits and picks on the host. */
    void (*argmax_rows)(gs_backend *be, int *out, const float *logits, int n, int vocab);

    /* Optional (NULL where there is nothing to gain): the ops issued between
     * graph_begin and graph_end are recorded and replayed as one graph. aa is
     * the step's attention shape, so scratch can be reserved before recording
     * (nothing may allocate while recording). */
    int (*graph_begin)(gs_backend *be, const gs_attn_args *aa);
    /* Ends the recording, keeps the graph under key and runs it. */
    int (*graph_end)(gs_backend *be, uint64_t key);
    /* Runs the graph kept under key: GS_OK, or GS_GRAPH_NONE when there is
     * none (record one). A key names everything the recorded kernels' host
     * arguments depend on, so a kept graph replays untouched. */
    int (*graph_replay)(gs_backend *be, uint64_t key);
} gs_backend_ops;

#define GS_GRAPH_NONE (-1)
enum { GS_EPI_NONE = 0, GS_EPI_GELU = 1, GS_EPI_ACCUMULATE = 2, GS_EPI_IN_HALF = 4 };

struct gs_backend {
    const gs_backend_ops *ops;
    void *impl;               /* the backend's private state */
    char device_name[128];    /* "AMD EPYC ... (2 threads)", "NVIDIA H100 80GB HBM3" */
    int threads;              /* CPU worker threads; 0 for device backends */
};

/* Creates a backend by name: "cpu", "cuda" or "auto" (CUDA when a device is
 * usable, else CPU). threads: CPU worker threads, 0 = one per core.
 * Unknown name: GS_ERR_INPUT; "cuda" without a usable device: GS_ERR_RUNTIME. */
int gs_backend_create(gs_backend **out, const char *name, int threads, gs_error *err);
void gs_backend_destroy(gs_backend *be);
/* Whether gs_backend_create(name) will try the CUDA backend (so a profiler
 * must start CUPTI first). Creates no CUDA context. */
int gs_backend_wants_cuda(const char *name);

/* The constructors (registered in backend.c). */
int gs_backend_cpu_create(gs_backend **out, int threads, gs_error *err);
int gs_backend_cuda_create(gs_backend **out, gs_error *err);

#endif
