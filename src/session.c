/* session.c - configuration to running engine. */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kv_heads.h"
#include "model_load.h"
#include "presets.h"
#include "ranges.h"

static int shape_overridden(const gs_shape_override *o)
{
    return o->arch >= 0 || o->n_layer > 0 || o->n_head > 0 || o->n_kv_head > 0 || o->n_embd > 0 ||
           o->n_hidden > 0 || o->n_ctx > 0 || o->vocab > 0;
}

int gs_session_load_model(const gs_config *c, gs_model *m, gs_error *err)
{
    const gs_preset *p = gs_preset_find(c->model);
    if (p) {
        gs_model_shape s = p->shape;
        const gs_shape_override *o = &c->shape;
        if (o->arch >= 0)
            s.arch = (gs_arch)o->arch;
        if (o->n_layer > 0)
            s.n_layer = o->n_layer;
        if (o->n_head > 0)
            s.n_head = o->n_head;
        if (o->n_kv_head > 0)
            s.n_kv_head = o->n_kv_head;
        else if (o->n_head > 0)
            s.n_kv_head = s.arch == GS_ARCH_GPT2 || p->shape.n_kv_head == p->shape.n_head ? o->n_head : s.n_kv_head;
        if (o->n_embd > 0)
            s.n_embd = o->n_embd;
        if (o->n_hidden > 0)
            s.n_hidden = o->n_hidden;
        else if (o->n_embd > 0 && s.arch == GS_ARCH_GPT2)
            s.n_hidden = 4 * o->n_embd;
        if (o->n_ctx > 0)
            s.n_ctx = o->n_ctx;
        if (o->vocab > 0)
            s.vocab = o->vocab;
        if (s.arch == GS_ARCH_GPT2)
            s.tied_embedding = 1;
        int rc = gs_model_alloc(m, &s, err);
        if (rc)
            return rc;
        gs_model_init_synthetic(m, c->seed);
        return GS_OK;
    }
    struct stat st;
    if (stat(c->model, &st) != 0)
        return gs_error_set(err, GS_ERR_INPUT, "unknown model '%s': not a preset (%s) and %s", c->model,
                            gs_preset_names(), errno == ENOENT ? "no such file" : strerror(errno));
    if (shape_overridden(&c->shape) &&
        (c->shape.n_layer > 0 || c->shape.n_embd > 0 || c->shape.n_hidden > 0 || c->shape.vocab > 0 ||
         c->shape.arch >= 0))
        return gs_error_set(err, GS_ERR_INPUT,
                            "%s: a checkpoint's shape comes from the file; only n_head, n_kv_head and n_ctx may be given",
                            c->model);
    gs_load_hints hints = {c->shape.n_head, c->shape.n_kv_head, c->shape.n_ctx};
    return gs_model_load(m, c->model, c->format, &hints, err);
}

int gs_session_weight_dtype(const gs_config *c, const gs_model_shape *shape, gs_dtype *out, gs_error *err)
{
    const char *w = c->opt.weights;
    if (strcmp(w, "fp32") == 0) {
        *out = GS_DTYPE_F32;
    } else if (strcmp(w, "fp16") == 0) {
        *out = GS_DTYPE_F16;
    } else if (strcmp(w, "bf16") == 0) {
        *out = GS_DTYPE_BF16;
    } else if (strcmp(w, "int8") == 0) {
        *out = GS_DTYPE_I8;
    } else if (strcmp(w, "int4") == 0) {
        int dt = gs_dtype_q4(c->opt.group_size);
        if (dt < 0)
            return gs_error_set(err, GS_ERR_INPUT, "optimizations.group_size: %d is not one of 32, 64, 128",
                                c->opt.group_size);
        /* The narrowest matrix row is the model width or the MLP width. */
        int row = shape->n_embd < shape->n_hidden ? shape->n_embd : shape->n_hidden;
        if (c->opt.group_size > row)
            return gs_error_set(err, GS_ERR_INPUT,
                                "optimizations.group_size: int4 groups of %d are larger than the model's %d-input rows",
                                c->opt.group_size, row);
        *out = (gs_dtype)dt;
    } else {
        return gs_error_set(err, GS_ERR_INPUT, "optimizations.weights: unknown precision '%s'", w);
    }
    return GS_OK;
}

/* The model the engine runs: the master's key/value heads merged, then
 * pruned, as the optimizations ask (each step replaces *m; the master is not
 * kept: quality baselines come from a separate fp32 session). Also the
 * checks that need the model's shape. */
static int transform_model(const gs_config *c, gs_model *m, gs_error *err)
{
    const gs_optimizations *o = &c->opt;
    if (o->window > 0 && o->window >= m->shape.n_ctx)
        return gs_error_set(err, GS_ERR_INPUT,
                            "optimizations.window: %d is not smaller than the model's %d-token context",
                            o->window, m->shape.n_ctx);
    gs_model t;
    int rc;
    if (o->kv_heads > 0 && o->kv_heads != m->shape.n_kv_head) {
        if ((rc = gs_convert_kv_heads(&t, m, o->kv_heads, err)))
            return rc;
        gs_model_free(m);
        *m = t;
    }
    if (o->sparsity.kind != GS_SPARSITY_NONE) {
        if ((rc = gs_prune(&t, m, &o->sparsity, err)))
            return rc;
        gs_model_free(m);
        *m = t;
    }
    return GS_OK;
}

int gs_session_open(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_error *err)
{
    return gs_session_open_on(s, c, sampler, NULL, err);
}

int gs_session_open_on(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_backend *be, gs_error *err)
{
    return gs_session_open_progress(s, c, sampler, be, NULL, NULL, err);
}

/* Reports a stage; GS_ERR_RUNTIME (session closed) when the caller cancels. */
static int progress(gs_session *s, gs_session_progress_fn fn, void *ctx, const char *stage, double frac,
                    gs_error *err)
{
    if (!fn || !fn(ctx, stage, frac))
        return GS_OK;
    gs_session_close(s);
    return gs_error_set(err, GS_ERR_RUNTIME, "cancelled");
}

int gs_session_open_progress(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_backend *be,
                             gs_session_progress_fn fn, void *ctx, gs_error *err)
{
    memset(s, 0, sizeof *s);
    s->cfg = *c;
    uint64_t t0 = gs_now_ns();
    int rc = progress(s, fn, ctx, "loading", 0.0, err);
    if (rc)
        return rc;
    rc = gs_session_load_model(c, &s->model, err);
    if (rc)
        return rc;
    if ((rc = transform_model(c, &s->model, err))) {
        gs_model_free(&s->model);
        return rc;
    }
    s->load_seconds = (double)(gs_now_ns() - t0) * 1e-9;
    if ((rc = progress(s, fn, ctx, "transforming", 0.4, err)))
        return rc;
    if (be) {
        s->be = be;
        s->borrowed_be = 1;
        rc = GS_OK;
    } else {
        rc = gs_backend_create(&s->be, c->backend, c->threads, err);
    }
    if (rc) {
        gs_session_close(s);
        return rc;
    }
    /* A toggle the backend lacks is refused, not silently ignored. */
    if (c->opt.cuda_graphs && !s->be->ops->graph_begin) {
        const char *bn = s->be->ops->name;
        gs_session_close(s);
        return gs_error_set(err, GS_ERR_INPUT,
                            "optimizations.cuda_graphs: the %s backend has no CUDA graphs (turn it off, or use --backend cuda)",
                            bn);
    }
    gs_engine_config ec;
    gs_engine_config_defaults(&ec);
    ec.max_batch = c->workload.batch;
    ec.kv_block_size = c->kv_cache.block_size;
    ec.kv_blocks = c->kv_cache.blocks;
    ec.seed = c->seed;
    rc = gs_session_weight_dtype(c, &s->model.shape, &ec.weight_dtype, err);
    if (rc) {
        gs_session_close(s);
        return rc;
    }
    /* KV-cache precision. fp8 (e4m3) is a GPU feature: the CPU kernels can
     * read it (the GPU tests' twin) but the CPU backend does not offer it. */
    ec.kv_dtype = -1;
    for (int i = 0; i < GS_KV_N_DTYPES; i++)
        if (strcmp(c->opt.kv, gs_kv_dtype_name(i)) == 0)
            ec.kv_dtype = i;
    if (ec.kv_dtype < 0 || (ec.kv_dtype == GS_KV_FP8 && strcmp(s->be->ops->name, "cuda") != 0)) {
        int unknown = ec.kv_dtype < 0;
        gs_session_close(s);
        if (unknown)
            return gs_error_set(err, GS_ERR_INPUT, "optimizations.kv: %s is not a KV precision (fp32, fp16, int8, fp8)",
                                c->opt.kv);
        return gs_error_set(err, GS_ERR_INPUT, "optimizations.kv: fp8 runs on the cuda backend only");
    }
    if (sampler)
        ec.sampler = *sampler;
    if ((rc = progress(s, fn, ctx, "quantizing/uploading", 0.5, err)))
        return rc;
    /* Prefill all of a batch's prompts in one step when they fit the budget. */
    long budget = (long)c->workload.batch * c->workload.prompt_len;
    if (budget < 64)
        budget = 64;
    if (budget > 2048)
        budget = 2048;
    ec.max_tokens_per_step = (int)budget;
    rc = gs_engine_init(&s->engine, s->be, &s->model, &ec, err);
    if (rc) {
        gs_session_close(s);
        return rc;
    }
    s->engine.fwd.window = c->opt.window;
    s->engine.fwd.n_sink = c->opt.sinks;
    s->engine.fwd.attn_variant = strcmp(c->opt.attention, "fused") == 0 ? GS_ATTN_FUSED : GS_ATTN_NAIVE;
    s->engine.fwd.use_graphs = c->opt.cuda_graphs;
    s->engine.fwd.fuse = c->opt.fusion;
    s->engine_ready = 1;
    return progress(s, fn, ctx, "ready", 1.0, err);
}

void gs_session_close(gs_session *s)
{
    if (s->engine_ready)
        gs_engine_destroy(&s->engine);
    if (!s->borrowed_be)
        gs_backend_destroy(s->be);
    gs_model_free(&s->model);
    memset(s, 0, sizeof *s);
}
