/* test_cuda_forward.c - the whole model on the GPU against the CPU path and
 * against Hugging Face transformers' fixtures (GPU machine only).
 *  - stories260K greedy ids on the GPU (fp32) equal the CPU path's, 256 tokens,
 *    whether the GPU picks the ids in the step or reads the logits back;
 *  - greedy ids picked on the GPU (argmax inside the step and its CUDA graph)
 *    generate the tokens of logits read back and sampled on the host: graphs
 *    off and on, batch 1 and 4, fp32 and fp16 weights;
 *  - tiny GPT-2 / Llama logits at every position match transformers;
 *  - GPU and CPU logits agree for synthetic models, both attention variants,
 *    through the batching engine (mixed prefill and decode, preemption);
 *  - KV cache in fp16, int8, fp8: prefill logits on the GPU (naive and
 *    fused) against the CPU path with the same KV type, and decode steps
 *    replayed as CUDA graphs generate the unreplayed run's tokens;
 *  - fp16/bf16 weights, fused and not, decode-sized and prefill-sized
 *    steps: logits against each other and against the fp32 CPU path;
 *  - a model too large for the card fails with a clear runtime error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "engine.h"
#include "model_load.h"
#include "presets.h"
#include "tap.h"
#include "test_support.h"


/* Greedy generation from a prompt; returns the request's tokens (prompt + generated).
 * keep_logits: the logits are read back and sampled on the host, else the
 * backend picks the ids in the step. */
static int generate(gs_backend *be, const gs_model *m, int variant, int graphs, int keep_logits, const int *prompt,
                    int n_prompt, int n_gen, int *out, gs_error *err)
{
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 1;
    c.keep_logits = keep_logits;
    int rc = gs_engine_init(&e, be, m, &c, err);
    if (rc)
        return rc;
    e.fwd.attn_variant = variant;
    e.fwd.use_graphs = graphs;
    int id = gs_engine_submit(&e, prompt, n_prompt, n_gen, err);
    rc = id < 0 ? -id : gs_engine_run(&e, err);
    if (rc == GS_OK)
        memcpy(out, gs_engine_request(&e, id)->tokens, (size_t)(n_prompt + n_gen) * sizeof(int));
    gs_engine_destroy(&e);
    return rc;
}

static void test_ids_path(gs_backend *gpu, const gs_model *m, const char *name);

static void test_stories(gs_backend *gpu, gs_backend *cpu)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.bin", tap_models_dir());
    gs_model m;
    gs_error err = {0};
    if (gs_model_load(&m, path, GS_FORMAT_AUTO, NULL, &err)) {
        tap_ok(0, "stories260K loads: %s", err.msg);
        return;
    }
    int bos = 1, a[257], b[257];
    /* The reference: the CPU's logits read back and argmaxed on the host. */
    int rc = generate(cpu, &m, GS_ATTN_NAIVE, 0, 1, &bos, 1, 256, a, &err);
    /* k: naive, fused, fused + graphs with the ids picked on the GPU; then
     * fused and fused + graphs with the logits read back. */
    for (int k = 0; k < 5; k++) {
        int v = k ? GS_ATTN_FUSED : GS_ATTN_NAIVE, graphs = k == 2 || k == 4, keep = k >= 3;
        int rc2 = generate(gpu, &m, v, graphs, keep, &bos, 1, 256, b, &err);
        int same = 0;
        while (same < 256 && a[1 + same] == b[1 + same])
            same++;
        tap_ok(rc == GS_OK && rc2 == GS_OK && same == 256,
               "stories260K greedy on the GPU (%s attention%s, %s) equals the CPU for 256 tokens (%d agree) %s",
               v ? "fused" : "naive", graphs ? ", CUDA graphs" : "", keep ? "logits read back" : "ids picked on the GPU",
               same, err.msg);
    }
    test_ids_path(gpu, &m, "stories260K");
    gs_model_free(&m);
}

/* Greedy tokens of n_req requests run together through the engine. */
static long last_id_rows; /* logit rows the last engine_tokens_g run read back as ids */

static int engine_tokens_g(gs_backend *be, const gs_model *m, int variant, int graphs, int batch, int kv_blocks,
                           float *out, int n_req, int plen, int n_gen, gs_error *err);

static int engine_tokens(gs_backend *be, const gs_model *m, int variant, int batch, int kv_blocks, float *out,
                         int n_req, int plen, int n_gen, gs_error *err)
{
    return engine_tokens_g(be, m, variant, 0, batch, kv_blocks, out, n_req, plen, n_gen, err);
}

static int engine_tokens_g(gs_backend *be, const gs_model *m, int variant, int graphs, int batch, int kv_blocks,
                           float *out, int n_req, int plen, int n_gen, gs_error *err)
{
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = batch;
    c.kv_block_size = 4;
    c.kv_blocks = kv_blocks;
    if (graphs & 4)
        c.weight_dtype = GS_DTYPE_F16; /* bit 2: fp16 weight matrices (the GEMV path) */
    c.kv_dtype = (graphs >> 3) & 3;    /* bits 3-4: the KV-cache element type (GS_KV_*) */
    c.keep_logits = (graphs & 32) != 0; /* bit 5: logits read back and sampled on the host */
    int rc = gs_engine_init(&e, be, m, &c, err);
    if (rc)
        return rc;
    e.fwd.attn_variant = variant;
    e.fwd.use_graphs = graphs & 1; /* bit 0: CUDA graphs, bit 1: fusion */
    e.fwd.fuse = (graphs & 2) != 0;
    int V = m->shape.vocab;
    int *prompt = malloc((size_t)plen * sizeof(int));
    for (int q = 0; q < n_req; q++) {
        for (int i = 0; i < plen; i++)
            prompt[i] = (q * 97 + i * 13 + 1) % V;
        gs_engine_submit(&e, prompt, plen - q, n_gen, err);
    }
    free(prompt);
    last_id_rows = 0;
    while (rc == GS_OK && gs_engine_busy(&e)) {
        rc = gs_engine_step(&e, err);
        last_id_rows += e.last.batch.n_ids;
    }
    for (int q = 0; rc == GS_OK && q < n_req; q++) {
        const gs_request *r = gs_engine_request(&e, q);
        for (int i = 0; i < n_gen; i++)
            out[q * n_gen + i] = (float)r->tokens[r->n_prompt + i];
    }
    gs_engine_destroy(&e);
    return rc;
}

static void test_synthetic(gs_backend *gpu, gs_backend *cpu, const char *preset)
{
    gs_model m;
    gs_error err = {0};
    gs_model_alloc(&m, &gs_preset_find(preset)->shape, &err);
    gs_model_init_synthetic(&m, 21);
    enum { NREQ = 4, PLEN = 30, NGEN = 16 };
    float want[NREQ * NGEN], got[NREQ * NGEN];
    int rc = engine_tokens(cpu, &m, GS_ATTN_NAIVE, NREQ, 0, want, NREQ, PLEN, NGEN, &err);
    for (int v = 0; v < 2; v++) {
        int rc2 = engine_tokens(gpu, &m, v, NREQ, 0, got, NREQ, PLEN, NGEN, &err);
        tap_ok(rc == GS_OK && rc2 == GS_OK && memcmp(want, got, sizeof want) == 0,
               "%s: %d batched requests generate the same tokens on GPU (%s) and CPU %s", preset, NREQ,
               v ? "fused" : "naive", err.msg);
        rc2 = engine_tokens(gpu, &m, v, NREQ, 20, got, NREQ, PLEN, NGEN, &err);
        tap_ok(rc2 == GS_OK && memcmp(want, got, sizeof want) == 0,
               "%s: with preemption (20 blocks) the GPU (%s) still generates the same tokens", preset,
               v ? "fused" : "naive");
    }
    int rc4 = engine_tokens_g(gpu, &m, GS_ATTN_FUSED, 2, NREQ, 0, got, NREQ, PLEN, NGEN, &err);
    tap_ok(rc4 == GS_OK && memcmp(want, got, sizeof want) == 0,
           "%s: with residual+norm fused on the GPU, the same tokens %s", preset, err.msg);
    int rc3 = engine_tokens_g(gpu, &m, GS_ATTN_FUSED, 1, NREQ, 20, got, NREQ, PLEN, NGEN, &err);
    tap_ok(rc3 == GS_OK && memcmp(want, got, sizeof want) == 0,
           "%s: decode steps replayed as CUDA graphs (batch changing as requests finish, preemption) generate the same tokens %s",
           preset, err.msg);
    /* fp16 weights: fusion puts the residual adds and GELU into the GEMV's
     * epilogue in decode steps, the same operations in the same order; in
     * the prefill steps (over 16 tokens) cuBLASLt adds the bias and the
     * residual in its epilogue, whose order of the two fp32 additions is its
     * own: a rounding apart, far below a greedy token's margin here. So the
     * tokens equal the unfused fp16 run's exactly (also with graphs). */
    float want16[NREQ * NGEN];
    int r16 = engine_tokens_g(gpu, &m, GS_ATTN_FUSED, 4, NREQ, 0, want16, NREQ, PLEN, NGEN, &err);
    int r16f = engine_tokens_g(gpu, &m, GS_ATTN_FUSED, 4 | 2 | 1, NREQ, 20, got, NREQ, PLEN, NGEN, &err);
    tap_ok(r16 == GS_OK && r16f == GS_OK && memcmp(want16, got, sizeof want16) == 0,
           "%s: fp16 weights with the GEMV's fused epilogues (and graphs, preemption) generate the unfused tokens %s",
           preset, err.msg);
    /* Quantized KV caches: graphs and fusion must not change a token. */
    static const char *const kvn[] = {"fp32", "fp16", "int8", "fp8"};
    for (int kt = GS_KV_F16; kt < GS_KV_N_DTYPES; kt++) {
        int ra = engine_tokens_g(gpu, &m, GS_ATTN_FUSED, kt << 3, NREQ, 0, want16, NREQ, PLEN, NGEN, &err);
        int rb = engine_tokens_g(gpu, &m, GS_ATTN_FUSED, kt << 3 | 2 | 1, NREQ, 20, got, NREQ, PLEN, NGEN, &err);
        tap_ok(ra == GS_OK && rb == GS_OK && memcmp(want16, got, sizeof want16) == 0,
               "%s: %s KV cache, decode steps replayed as CUDA graphs (fusion, preemption) generate the plain run's "
               "tokens %s",
               preset, kvn[kt], err.msg);
    }
    test_ids_path(gpu, &m, preset);
    /* Prefill logits, all positions, GPU vs CPU, fp32. */
    gs_model_free(&m);
}

/* The same requests with the ids picked on the GPU (the argmax recorded in
 * the step's graph when graphed; graph keys tell such steps from steps that
 * return logits) and with the logits read back and sampled on the host.
 * Batch 4 shrinks as requests finish, so several shapes of each are
 * recorded and replayed. */
static void test_ids_path(gs_backend *gpu, const gs_model *m, const char *name)
{
    enum { NREQ = 4, PLEN = 30, NGEN = 16 };
    float want[NREQ * NGEN], got[NREQ * NGEN];
    gs_error err = {0};
    for (int f = 0; f < 4; f++) {
        int flags = (f & 1) | (f & 2 ? 4 : 0); /* bit 0: CUDA graphs, bit 2: fp16 weights (the GEMV path) */
        for (int batch = 1; batch <= NREQ; batch += NREQ - 1) {
            int ra = engine_tokens_g(gpu, m, GS_ATTN_FUSED, flags | 32, batch, 0, want, NREQ, PLEN, NGEN, &err);
            long logit_run_ids = last_id_rows;
            int rb = ra ? ra : engine_tokens_g(gpu, m, GS_ATTN_FUSED, flags, batch, 0, got, NREQ, PLEN, NGEN, &err);
            long ids = last_id_rows;
            tap_ok(ra == GS_OK && rb == GS_OK && logit_run_ids == 0 && ids == (long)NREQ * NGEN &&
                       memcmp(want, got, sizeof want) == 0,
                   "%s, batch %d, %s weights%s: ids picked on the GPU (%ld rows) generate the tokens of logits read "
                   "back %s",
                   name, batch, flags & 4 ? "fp16" : "fp32", flags & 1 ? ", CUDA graphs" : "", ids, err.msg);
        }
    }
}


static void test_hf_fixture(gs_backend *gpu, const char *name)
{
    enum { T = 24 };
    gs_model m;
    gs_error err = {0};
    int ids[T];
    float *want = NULL;
    if (gs_test_load_hf_fixture(name, T, &m, ids, &want, &err)) {
        tap_ok(0, "%s: fixture loads: %s", name, err.msg);
        return;
    }
    size_t nl = (size_t)T * (size_t)m.shape.vocab;
    float *got = malloc(nl * sizeof(float));
    for (int v = 0; v < 2; v++) {
        for (size_t i = 0; i < nl; i++)
            got[i] = NAN;
        int rc = gs_test_forward_all(gpu, &m, v, GS_DTYPE_F32, ids, T, got, &err);
        double e = rc ? 1.0 : gs_test_rel_err(got, want, nl);
        tap_ok(rc == GS_OK && e < 1e-4, "%s on the GPU (%s attention): logits at %d positions match transformers (rel err %.2e)",
               name, v ? "fused" : "naive", T, e);
    }
    free(want);
    free(got);
    gs_model_free(&m);
}

static void test_prefill_logits(gs_backend *gpu, gs_backend *cpu, const char *preset, int T)
{
    gs_model m;
    gs_error err = {0};
    gs_model_alloc(&m, &gs_preset_find(preset)->shape, &err);
    gs_model_init_synthetic(&m, 5);
    int V = m.shape.vocab;
    int *ids = malloc((size_t)T * sizeof(int));
    for (int i = 0; i < T; i++)
        ids[i] = (i * 7919 + 3) % V;
    float *a = malloc((size_t)T * V * sizeof(float)), *b = malloc((size_t)T * V * sizeof(float));
    int rc = gs_test_forward_all(cpu, &m, GS_ATTN_NAIVE, GS_DTYPE_F32, ids, T, a, &err);
    for (int v = 0; v < 2; v++) {
        int rc2 = gs_test_forward_all(gpu, &m, v, GS_DTYPE_F32, ids, T, b, &err);
        double e = rc || rc2 ? 1.0 : gs_test_rel_err(b, a, (size_t)T * V);
        tap_ok(rc == GS_OK && rc2 == GS_OK && e < 1e-4, "%s: %d-token prefill logits, GPU (%s) vs CPU, rel err %.2e %s",
               preset, T, v ? "fused" : "naive", e, err.msg);
    }
    /* Quantized KV caches: the GPU against the CPU path with the same KV type.
     * Both dequantize exactly alike; the K/V they quantize differ only by
     * fp32 rounding (cuBLAS vs the CPU's products), which can move a value
     * across a rounding boundary now and then, hence a bound above fp32's:
     * 2e-3, and 1e-2 for fp8, whose 3 mantissa bits make one such move a
     * 6% change of that value (measured on the H100: 1.5e-3 on gpt2-124m,
     * 5.0e-3 on llama-110m). */
    static const char *const kvn[] = {"fp32", "fp16", "int8", "fp8"};
    for (int kt = GS_KV_F16; kt < GS_KV_N_DTYPES; kt++) {
        int rc3 = gs_test_forward_all_kv(cpu, &m, GS_ATTN_NAIVE, GS_DTYPE_F32, kt, ids, T, a, &err);
        for (int v = 0; v < 2; v++) {
            int rc2 = gs_test_forward_all_kv(gpu, &m, v, GS_DTYPE_F32, kt, ids, T, b, &err);
            double e = rc2 || rc3 ? 1.0 : gs_test_rel_err(b, a, (size_t)T * V);
            double bound = kt == GS_KV_FP8 ? 1e-2 : 2e-3;
            tap_ok(rc2 == GS_OK && rc3 == GS_OK && e < bound,
                   "%s: %d-token prefill logits with %s KV, GPU (%s) vs CPU (%s KV), rel err %.2e (bound %g) %s",
                   preset, T, kvn[kt], v ? "fused" : "naive", kvn[kt], e, bound, err.msg);
        }
    }
    /* Half-precision weights: the GEMV path (<= 16 rows) and the tensor-core
     * path, each also fused: the products' epilogues (the GEMV's, cuBLASLt's
     * bias and residual accumulation; over 16 rows also the norms and GELU
     * writing the products' half rows themselves, the same bits) must give
     * the unfused logits up to the order of the fp32 additions, and the fp32
     * CPU's within half precision. An fp32 difference in the last bit moves
     * an activation across a rounding boundary of the half rows the next
     * product reads, one half ulp, and 12 layers carry it: measured on the
     * H100 4.1e-4 (fp16) and 3.1e-3 (bf16) over 64 rows, so the bound is a
     * half ulp of the type's 11 or 8 bits times 4. */
    float *c = malloc((size_t)T * V * sizeof(float));
    for (int d = GS_DTYPE_F16; d <= GS_DTYPE_BF16; d++) {
        for (int rows = 12; rows <= T; rows += T - 12) {
            int rc2 = gs_test_forward_all(gpu, &m, GS_ATTN_FUSED, (gs_dtype)d, ids, rows, b, &err);
            int rc3 = gs_test_forward_all(cpu, &m, GS_ATTN_NAIVE, GS_DTYPE_F32, ids, rows, a, &err);
            double e = rc2 || rc3 ? 1.0 : gs_test_rel_err(b, a, (size_t)rows * V);
            tap_ok(rc2 == GS_OK && rc3 == GS_OK && e < 1e-2,
                   "%s: %d-token logits with %s weights on the GPU vs fp32 CPU, rel err %.2e (bound 1e-2) %s", preset,
                   rows, gs_dtype_name((gs_dtype)d), e, err.msg);
            int rc4 = gs_test_forward_all_fuse(gpu, &m, GS_ATTN_FUSED, (gs_dtype)d, GS_KV_F32, 1, ids, rows, c, &err);
            double ef = rc2 || rc4 ? 1.0 : gs_test_rel_err(c, b, (size_t)rows * V);
            double ec = rc3 || rc4 ? 1.0 : gs_test_rel_err(c, a, (size_t)rows * V);
            const double bound = d == GS_DTYPE_BF16 ? 4.0 / 512.0 : 4.0 / 4096.0;
            tap_ok(rc4 == GS_OK && ef < bound && ec < 1e-2,
                   "%s: %d-token logits with %s weights, fused (%s epilogues): vs unfused rel err %.2e (bound %.1e), "
                   "vs fp32 CPU %.2e (bound 1e-2) %s",
                   preset, rows, gs_dtype_name((gs_dtype)d), rows > 16 ? "cuBLASLt" : "GEMV", ef, bound, ec, err.msg);
        }
    }
    free(c);
    free(ids);
    free(a);
    free(b);
    gs_model_free(&m);
}

int main(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("1..0 # SKIP no CUDA device\n");
        return 0;
    }
    gs_backend *gpu = NULL, *cpu = NULL;
    gs_error err = {0};
    if (gs_backend_cuda_create(&gpu, &err) || gs_backend_cpu_create(&cpu, 0, &err)) {
        tap_ok(0, "backends: %s", err.msg);
        return tap_done();
    }
    tap_diag("device: %s", gpu->device_name);
    test_stories(gpu, cpu);
    test_hf_fixture(gpu, "gpt2_tiny");
    test_hf_fixture(gpu, "llama_tiny");
    test_synthetic(gpu, cpu, "gpt2-tiny");
    test_synthetic(gpu, cpu, "llama-tiny");
    test_prefill_logits(gpu, cpu, "gpt2-124m", 64);
    test_prefill_logits(gpu, cpu, "llama-110m", 48);

    /* Too large for the card: a runtime error naming the bytes, not a crash. */
    gs_model m;
    gs_model_shape s = gs_preset_find("llama-1b")->shape;
    gs_model_alloc(&m, &s, &err); /* zero weights: only the sizes matter here */
    gs_engine e;
    gs_engine_config c;
    gs_engine_config_defaults(&c);
    c.max_batch = 4096; /* 4096 full 2048-token contexts: ~380 GB of KV cache */
    int rc = gs_engine_init(&e, gpu, &m, &c, &err);
    tap_ok(rc == GS_ERR_RUNTIME && strstr(err.msg, "bytes") != NULL, "an impossible KV cache fails clearly: %s", err.msg);
    if (rc == GS_OK)
        gs_engine_destroy(&e);
    gs_model_free(&m);
    gs_backend_destroy(gpu);
    gs_backend_destroy(cpu);
    return tap_done();
}
