/* forward.c - one engine step of the GPT, expressed in backend ops.
 *
 * GPT-2:  x = wte[tok] + wpe[pos]; per layer: x += proj(attn(ln1(x))),
 *         x += down(gelu(up(ln2(x)))); logits = lnf(x) . wte^T.
 * Llama:  x = wte[tok]; per layer: x += wo(attn(rope(qkv(rms1(x))))),
 *         x += w2(silu(w1 y) * w3 y) with y = rms2(x); logits = rmsf(x) . lm_head^T. */
#include "forward.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "quant_layout.h"

static _Atomic uint64_t forward_count; /* forward passes made in this process */

/* The calling thread's weight-placement progress hook (gs_forward_set_progress). */
static _Thread_local gs_forward_progress_fn progress;
static _Thread_local void *progress_ctx;

void gs_forward_set_progress(gs_forward_progress_fn fn, void *ctx)
{
    progress = fn;
    progress_ctx = ctx;
}

#define OP_BEGIN(f, name, layer) gs_range_begin((f)->ranges, GS_RANGE_OP, (name), (layer))
#define OP_END(f, name) gs_range_end((f)->ranges, GS_RANGE_OP, (name))

size_t gs_forward_kv_bytes_per_token(const gs_model_shape *s, int kv_dtype)
{
    return (size_t)2 * (size_t)s->n_layer * (size_t)s->n_kv_head *
           gs_kv_token_head_bytes(kv_dtype, gs_shape_head_dim(s));
}

/* Allocates or records the failure; callers check *failed once at the end. */
static void *take(gs_forward *f, size_t bytes, size_t *acct, size_t *failed_bytes)
{
    void *p = f->be->ops->alloc(f->be, bytes);
    *acct += bytes; /* what was asked for, so an out-of-memory message can say it */
    if (!p)
        *failed_bytes += bytes;
    return p;
}

/* Matrices go to the matrix arena in the chosen precision; everything else
 * (norm gains, biases, the embeddings the embed op gathers from) stays fp32. */
static int is_matrix(const char *name)
{
    static const char *const suffixes[] = {".wqkv", ".wo", ".w_up", ".w_gate", ".w_down"};
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0)
            return 1;
    }
    return strcmp(name, "lm_head") == 0;
}

typedef struct placed {
    const float *master;
    const void *dev;
} placed;

static const void *find_placed(const placed *p, int n, const float *master)
{
    if (!master)
        return NULL;
    for (int i = 0; i < n; i++)
        if (p[i].master == master)
            return p[i].dev;
    return NULL;
}

/* Uploads every tensor into the two arenas and fills f->w. */
static int place_weights(gs_forward *f, const gs_model *m, gs_dtype wdt, size_t *missing, gs_error *err)
{
    gs_backend *be = f->be;
    const gs_model_shape *s = &m->shape;
    int n = gs_model_tensors(m, NULL, 0);
    gs_tensor_ref *refs = calloc((size_t)n + 1, sizeof *refs);
    placed *pl = calloc((size_t)n + 1, sizeof *pl);
    if (!refs || !pl) {
        free(refs);
        free(pl);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory");
    }
    gs_model_tensors(m, refs, n);
    /* A tied head is wte; in half precision the product needs its own copy. */
    int head_copy = s->tied_embedding && wdt != GS_DTYPE_F32;
    if (head_copy) {
        refs[n] = refs[0]; /* wte */
        snprintf(refs[n].name, sizeof refs[n].name, "lm_head");
        n++;
    }
    /* Matrices sit in the arena at 256-byte boundaries, each in wdt's own
     * layout (packed formats carry their scales: kernels/quant_layout.h). */
    size_t f32_count = 0, mat_bytes = 0;
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)refs[i].rows * (size_t)refs[i].cols;
        if (is_matrix(refs[i].name) && wdt != GS_DTYPE_F32)
            mat_bytes += gs_quant_align(gs_weight_bytes(wdt, refs[i].rows, refs[i].cols));
        else
            f32_count += cnt;
    }
    f->w_f32 = be->ops->alloc(be, f32_count * sizeof(float));
    f->w_mat = mat_bytes ? be->ops->alloc(be, mat_bytes) : NULL;
    int rc = GS_OK;
    f->weight_bytes = f32_count * sizeof(float) + mat_bytes;
    /* Packed formats are written on the host and uploaded as bytes. */
    uint8_t *packed = NULL;
    if (gs_dtype_is_quant(wdt)) {
        size_t largest = 0;
        for (int i = 0; i < n; i++)
            if (is_matrix(refs[i].name)) {
                size_t b = gs_weight_bytes(wdt, refs[i].rows, refs[i].cols);
                largest = b > largest ? b : largest;
            }
        packed = malloc(largest ? largest : 1);
        if (!packed) {
            free(refs);
            free(pl);
            return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory quantizing the weights");
        }
    }
    if (!f->w_f32 || (mat_bytes && !f->w_mat)) {
        *missing += f->weight_bytes;
    } else {
        size_t fo = 0, mo = 0;
        for (int i = 0; i < n && rc == GS_OK; i++) {
            size_t cnt = (size_t)refs[i].rows * (size_t)refs[i].cols;
            int mat = is_matrix(refs[i].name) && wdt != GS_DTYPE_F32;
            void *dst = mat ? (char *)f->w_mat + mo : (void *)((float *)f->w_f32 + fo);
            if (mat && packed) {
                gs_quantize_matrix(wdt, refs[i].data, refs[i].rows, refs[i].cols, packed);
                if (be->ops->upload(be, dst, packed, gs_weight_bytes(wdt, refs[i].rows, refs[i].cols)))
                    rc = gs_error_set(err, GS_ERR_RUNTIME, "uploading the %s weights of %s failed",
                                      gs_dtype_name(wdt), refs[i].name);
            } else {
                rc = be->ops->upload_weights(be, dst, refs[i].data, cnt, mat ? wdt : GS_DTYPE_F32, err);
            }
            if (progress && progress(progress_ctx, i + 1, n))
                rc = gs_error_set(err, GS_ERR_RUNTIME, "cancelled");
            /* The tied head copy shares wte's master pointer: record it under lm_head's role. */
            pl[i].master = (head_copy && i == n - 1) ? NULL : refs[i].data;
            pl[i].dev = dst;
            if (mat)
                mo += gs_quant_align(gs_weight_bytes(wdt, refs[i].rows, refs[i].cols));
            else
                fo += cnt;
        }
    }
    free(packed);
    if (rc == GS_OK && !*missing) {
        f->w.wdt = wdt;
        f->w.wte = find_placed(pl, n, m->wte);
        f->w.wpe = find_placed(pl, n, m->wpe);
        f->w.lnf_w = find_placed(pl, n, m->lnf_w);
        f->w.lnf_b = find_placed(pl, n, m->lnf_b);
        f->w.lm_head = head_copy ? pl[n - 1].dev : find_placed(pl, n, m->lm_head);
        for (int l = 0; l < s->n_layer; l++) {
            const gs_layer_weights *a = &m->layers[l];
            gs_fw_layer *d = &f->w.layers[l];
            d->ln1_w = find_placed(pl, n, a->ln1_w);
            d->ln1_b = find_placed(pl, n, a->ln1_b);
            d->wqkv = find_placed(pl, n, a->wqkv);
            d->bqkv = find_placed(pl, n, a->bqkv);
            d->wo = find_placed(pl, n, a->wo);
            d->bo = find_placed(pl, n, a->bo);
            d->ln2_w = find_placed(pl, n, a->ln2_w);
            d->ln2_b = find_placed(pl, n, a->ln2_b);
            d->w_up = find_placed(pl, n, a->w_up);
            d->b_up = find_placed(pl, n, a->b_up);
            d->w_gate = find_placed(pl, n, a->w_gate);
            d->w_down = find_placed(pl, n, a->w_down);
            d->b_down = find_placed(pl, n, a->b_down);
        }
    }
    free(refs);
    free(pl);
    return rc;
}

int gs_forward_init(gs_forward *f, gs_backend *be, const gs_model *m, gs_dtype wdt, gs_ranges *ranges,
                    int max_tokens, int max_rows, int n_blocks, int block_size, gs_error *err)
{
    return gs_forward_init_kv(f, be, m, wdt, GS_KV_F32, ranges, max_tokens, max_rows, n_blocks, block_size, err);
}

int gs_forward_init_kv(gs_forward *f, gs_backend *be, const gs_model *m, gs_dtype wdt, int kv_dtype,
                       gs_ranges *ranges, int max_tokens, int max_rows, int n_blocks, int block_size,
                       gs_error *err)
{
    memset(f, 0, sizeof *f);
    if (kv_dtype < 0 || kv_dtype >= GS_KV_N_DTYPES)
        return gs_error_set(err, GS_ERR_INPUT, "KV-cache element type %d unknown", kv_dtype);
    const gs_model_shape *s = &m->shape;
    f->graph_salt = atomic_fetch_add(&forward_count, 1) + 1;
    f->be = be;
    f->shape = *s;
    f->ranges = ranges;
    f->max_tokens = max_tokens;
    f->max_rows = max_rows;
    f->n_blocks = n_blocks;
    f->block_size = block_size;
    f->max_blocks_per_seq = (s->n_ctx + block_size - 1) / block_size;
    size_t C = (size_t)s->n_embd, H = (size_t)s->n_hidden, T = (size_t)max_tokens;
    size_t missing = 0;

    f->w.layers = calloc((size_t)s->n_layer, sizeof *f->w.layers);
    if (!f->w.layers)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory");
    int rc = place_weights(f, m, wdt, &missing, err);
    if (rc) {
        gs_forward_destroy(f);
        return rc;
    }
    f->x = take(f, T * C * sizeof(float), &f->activation_bytes, &missing);
    f->xn = take(f, T * C * sizeof(float), &f->activation_bytes, &missing);
    /* att holds the attention output (Q wide) and, when fused, normed rows (C wide). */
    size_t att_w = (size_t)gs_shape_q_dim(s) > C ? (size_t)gs_shape_q_dim(s) : C;
    f->att = take(f, T * att_w * sizeof(float), &f->activation_bytes, &missing);
    f->qkv = take(f, T * (size_t)gs_shape_qkv_dim(s) * sizeof(float), &f->activation_bytes, &missing);
    f->h_up = take(f, T * H * sizeof(float), &f->activation_bytes, &missing);
    f->h_gate = take(f, T * H * sizeof(float), &f->activation_bytes, &missing);
    f->gathered = take(f, (size_t)max_rows * C * sizeof(float), &f->activation_bytes, &missing);
    f->logits = take(f, (size_t)max_rows * (size_t)s->vocab * sizeof(float), &f->activation_bytes, &missing);
    if (be->ops->half_in_fits && be->ops->half_in_fits(be, wdt, max_tokens))
        f->act_half = take(f, T * (H > C ? H : C) * 2, &f->activation_bytes, &missing);
    /* One region for the step's inputs, so they cross in one upload (five
     * pageable copies took ~30 us a decode step on the H100, the GPU idle). */
    size_t n_inputs = 4 * T + (size_t)max_rows + (size_t)max_rows * (size_t)f->max_blocks_per_seq;
    f->d_inputs = take(f, n_inputs * sizeof(int), &f->activation_bytes, &missing);
    if (f->d_inputs) {
        f->d_tokens = f->d_inputs;
        f->d_pos = f->d_inputs + T;
        f->d_seq = f->d_inputs + 2 * T;
        f->d_slot = f->d_inputs + 3 * T;
        f->d_logit_rows = f->d_inputs + 4 * T;
        f->d_tables = f->d_logit_rows + max_rows;
    }
    /* Page-locked where the backend has it; plain memory (pageable uploads,
     * slower, the same bytes) where pinning fails. */
    f->h_inputs = be->ops->alloc_host ? be->ops->alloc_host(be, n_inputs * sizeof(int)) : NULL;
    f->h_inputs_pinned = f->h_inputs != NULL;
    if (!f->h_inputs)
        f->h_inputs = malloc(n_inputs * sizeof(int));
    if (!f->h_inputs) {
        gs_forward_destroy(f);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the step's inputs (%zu bytes)",
                            n_inputs * sizeof(int));
    }
    memset(f->h_inputs, 0, n_inputs * sizeof(int)); /* the gaps an upload carries along are defined */
    f->d_ids = take(f, (size_t)max_rows * sizeof(int), &f->activation_bytes, &missing);
    /* The cache at its element size; int8 adds a float scale per (slot, KV head). */
    int i8 = kv_dtype == GS_KV_I8;
    f->kv_dtype = kv_dtype;
    f->k_cache = calloc((size_t)s->n_layer, sizeof(void *));
    f->v_cache = calloc((size_t)s->n_layer, sizeof(void *));
    f->k_scale = i8 ? calloc((size_t)s->n_layer, sizeof(float *)) : NULL;
    f->v_scale = i8 ? calloc((size_t)s->n_layer, sizeof(float *)) : NULL;
    if (!f->k_cache || !f->v_cache || (i8 && (!f->k_scale || !f->v_scale))) {
        gs_forward_destroy(f);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the KV-cache pointers");
    }
    size_t slots = (size_t)n_blocks * (size_t)block_size;
    size_t layer_kv = slots * (size_t)gs_shape_kv_dim(s) * gs_kv_elem_size(kv_dtype);
    for (int l = 0; l < s->n_layer; l++) {
        f->k_cache[l] = take(f, layer_kv, &f->kv_bytes, &missing);
        f->v_cache[l] = take(f, layer_kv, &f->kv_bytes, &missing);
        if (i8) {
            f->k_scale[l] = take(f, slots * (size_t)s->n_kv_head * sizeof(float), &f->kv_bytes, &missing);
            f->v_scale[l] = take(f, slots * (size_t)s->n_kv_head * sizeof(float), &f->kv_bytes, &missing);
        }
    }
    if (missing) {
        size_t need = f->weight_bytes + f->activation_bytes + f->kv_bytes, weights = f->weight_bytes;
        size_t kv = f->kv_bytes, fr = 0, tot = 0;
        gs_forward_destroy(f); /* free what did fit first, so "free" means free */
        be->ops->mem_info(be, &fr, &tot);
        return gs_error_set(err, GS_ERR_RUNTIME,
                            "out of %s memory: the model needs %zu bytes (weights %zu, KV cache %zu), "
                            "%zu of %zu bytes are free",
                            be->ops->name, need, weights, kv, fr, tot);
    }
    return GS_OK;
}

void gs_forward_destroy(gs_forward *f)
{
    gs_backend *be = f->be;
    if (!be)
        return;
    void *bufs[] = {f->w_f32, f->w_mat, f->x, f->xn, f->att, f->qkv, f->h_up, f->h_gate, f->gathered,
                    f->logits, f->act_half, f->d_inputs, f->d_ids};
    if (f->h_inputs) {
        if (f->inputs_in_flight)
            be->ops->synchronize(be); /* the upload must be done reading it */
        if (f->h_inputs_pinned)
            be->ops->free_host(be, f->h_inputs);
        else
            free(f->h_inputs);
    }
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    for (int l = 0; f->k_cache && l < f->shape.n_layer; l++) {
        if (f->k_cache[l])
            be->ops->free(be, f->k_cache[l]);
        if (f->v_cache[l])
            be->ops->free(be, f->v_cache[l]);
        if (f->k_scale && f->k_scale[l])
            be->ops->free(be, f->k_scale[l]);
        if (f->v_scale && f->v_scale[l])
            be->ops->free(be, f->v_scale[l]);
    }
    free(f->k_cache);
    free(f->v_cache);
    free(f->k_scale);
    free(f->v_scale);
    free(f->w.layers);
    memset(f, 0, sizeof *f);
}

static void norm(gs_forward *f, float *out, const float *in, const float *w, const float *b, int n)
{
    const gs_model_shape *s = &f->shape;
    if (s->arch == GS_ARCH_GPT2)
        f->be->ops->layernorm(f->be, out, in, w, b, n, s->n_embd, s->norm_eps);
    else
        f->be->ops->rmsnorm(f->be, out, in, w, n, s->n_embd, s->norm_eps);
}

int gs_forward_picks_ids(const gs_forward *f) { return f->be->ops->argmax_rows != NULL; }

/* The graph key's bit 7 says whether a step returns ids: n stays below it. */
_Static_assert(GS_GRAPH_MAX_TOKENS < 128, "a graphed step's token count must fit the graph key's bits 0-6");

int gs_forward_step(gs_forward *f, const gs_step_batch *b, float *logits_out, gs_error *err)
{
    gs_backend *be = f->be;
    const gs_backend_ops *op = be->ops;
    const gs_model_shape *s = &f->shape;
    int n = b->n, C = s->n_embd, H = s->n_hidden, hd = gs_shape_head_dim(s);
    int kv_dim = gs_shape_kv_dim(s), qkv_dim = gs_shape_qkv_dim(s), q_dim = gs_shape_q_dim(s);
    if (n < 1 || n > f->max_tokens || b->n_logits > f->max_rows || b->n_rows > f->max_rows)
        return gs_error_set(err, GS_ERR_RUNTIME, "step of %d tokens exceeds the %d planned", n,
                            f->max_tokens);
    if (b->table_stride != f->max_blocks_per_seq)
        return gs_error_set(err, GS_ERR_RUNTIME, "block-table rows of %d blocks, the forward pass expects %d",
                            b->table_stride, f->max_blocks_per_seq);
    /* Greedy ids picked where the logits are: n_logits ints cross back instead
     * of n_logits x vocab floats (3.2 MB for GPT-2 at batch 16). */
    int ids = b->ids_out != NULL && b->n_logits > 0;
    if (ids && !op->argmax_rows)
        return gs_error_set(err, GS_ERR_RUNTIME, "the %s backend cannot pick greedy ids (no argmax_rows)", op->name);
    int max_pos = 0;
    for (int i = 0; i < n; i++)
        if (b->pos[i] + 1 > max_pos)
            max_pos = b->pos[i] + 1;

    OP_BEGIN(f, "upload_inputs", -1);
    /* Into h_inputs at d_inputs' layout, then one upload of the span in use.
     * A step that ended without a sync may have its upload still reading. */
    int rc = 0;
    if (f->inputs_in_flight)
        rc |= op->synchronize(be);
    f->inputs_in_flight = 0;
    const size_t T = (size_t)f->max_tokens, mb = (size_t)f->max_blocks_per_seq;
    int *staged = f->h_inputs;
    memcpy(staged, b->tokens, (size_t)n * sizeof(int));
    memcpy(staged + T, b->pos, (size_t)n * sizeof(int));
    memcpy(staged + 2 * T, b->seq_row, (size_t)n * sizeof(int));
    memcpy(staged + 3 * T, b->slot, (size_t)n * sizeof(int));
    if (b->n_logits > 0)
        memcpy(staged + 4 * T, b->logit_rows, (size_t)b->n_logits * sizeof(int));
    memcpy(staged + 4 * T + f->max_rows, b->block_tables, (size_t)b->n_rows * mb * sizeof(int));
    /* The gaps (slots past n) are sent as they are: no kernel reads them. */
    rc |= op->upload(be, f->d_inputs, staged, (4 * T + (size_t)f->max_rows + (size_t)b->n_rows * mb) * sizeof(int));
    f->inputs_in_flight = 1;
    OP_END(f, "upload_inputs");
    if (rc)
        return gs_error_set(err, GS_ERR_RUNTIME, "uploading step inputs failed");

    gs_attn_args aa = {
        .n_tokens = n, .n_head = s->n_head, .n_kv_head = s->n_kv_head, .head_dim = hd,
        .qkv_stride = qkv_dim, .block_size = f->block_size,
        .max_blocks_per_seq = f->max_blocks_per_seq, .max_pos = max_pos,
        .token_seq = f->d_seq, .token_pos = f->d_pos, .block_tables = f->d_tables,
        .window = f->window, .n_sink = f->n_sink, .variant = f->attn_variant,
        .kv_dtype = f->kv_dtype,
        .half_ok = f->w.wdt != GS_DTYPE_F32, /* half-precision weights: attention may use fp16 operands */
        .token_seq_host = b->seq_row, /* the backend may skip kernels no row of this step needs */
    };
    /* Decode-shaped steps are recorded once per shape as a CUDA graph and
     * replayed untouched: the ~150 launches of a step then cost one. What the
     * kernels read per step (tokens, positions, slots, block tables) lives in
     * device buffers uploaded above; what they take as host arguments is the
     * key: the token and logit-row counts, whether the step ends in greedy
     * ids (the argmax is recorded with it), the attention variant and window,
     * and the context rounded up to a power of two (kernels mask positions a
     * token cannot see, so a larger bound only adds idle blocks). Host ranges
     * inside a recording time the recording; a replayed step has one op,
     * graph_replay, which launched all its kernels. The KV element type
     * picks kernels too but needs no key bit: it is fixed when the forward
     * pass is made, and the salt below keeps each pass's graphs its own. */
    int graphed = f->use_graphs && op->graph_begin && op->graph_end && n <= GS_GRAPH_MAX_TOKENS;
    uint64_t graph_key = 0;
    if (graphed) {
        int ctx = f->max_blocks_per_seq * f->block_size, bucket = 64;
        while (bucket < aa.max_pos && bucket < ctx)
            bucket *= 2;
        aa.max_pos = bucket < ctx ? bucket : ctx;
        aa.token_seq_host = NULL; /* a replay serves other steps of this key, whose rows differ */
        graph_key = (uint64_t)n | (uint64_t)ids << 7 | (uint64_t)b->n_logits << 8 | (uint64_t)aa.max_pos << 16 |
                    (uint64_t)(f->attn_variant & 3) << 40 | (uint64_t)(f->fuse ? 1 : 0) << 42 |
                    ((uint64_t)f->n_sink & 0xff) << 43 | ((uint64_t)f->window & 0x1fff) << 51;
        /* Graphs hold this forward pass's buffers: another engine on the same
         * backend (compare), or a later one whose buffers land at the same
         * addresses, must never replay them. Mix in this pass's own number. */
        uint64_t h = f->graph_salt;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
        graph_key ^= h ^ (h >> 31);
        if (op->graph_replay) {
            OP_BEGIN(f, "graph_replay", -1);
            rc = op->graph_replay(be, graph_key);
            OP_END(f, "graph_replay");
            if (rc == GS_OK)
                goto logits;
            if (rc != GS_GRAPH_NONE)
                return gs_error_set(err, GS_ERR_RUNTIME, "replaying the step's CUDA graph failed");
        }
        if ((rc = op->graph_begin(be, &aa)) != GS_OK)
            return gs_error_set(err, GS_ERR_RUNTIME, "starting a CUDA graph recording failed");
    }

    OP_BEGIN(f, "embed", -1);
    op->embed(be, f->x, f->d_tokens, f->d_pos, f->w.wte, f->w.wpe, n, C);
    OP_END(f, "embed");
    /* Fusion folds each residual add into the norm that follows it (one pass
     * over the residual stream instead of two); the normed rows then live in
     * att, which is free at those points. The first norm has no residual
     * before it and the last residual feeds the gathered final norm. */
    /* With the products' epilogues (CUDA, half-precision or quantized
     * weights: the GEMV in decode, cuBLASLt in prefill), fusion instead puts
     * the residual adds and GELU inside the products (x += W h + b;
     * h = gelu(W x + b)): fewer kernels a layer and no extra pass over the
     * residual stream; the norms then run on their own. */
    int epi = f->fuse && op->matmul_ex && op->matmul_ex_fits && op->matmul_ex_fits(be, f->w.wdt, n);
    int fuse = f->fuse && op->residual_norm && !epi;
    /* And the GEMVs normalize their input rows as they read them: the norms
     * fold into the products that read them (matmul_qkv, matmul_up/gate,
     * matmul_logits; those ops' times include them) and run no kernel.
     * Decode-sized steps only (matmul_norm_fits). */
    int nfold = epi && op->matmul_norm_fits && op->matmul_norm_fits(be, f->w.wdt, n);
    /* And the qkv GEMV writes K and V into the cache itself (GPT-2: no rope
     * between the product and the store): no kv_store kernel. */
    int kvfold = epi && s->arch == GS_ARCH_GPT2 && op->matmul_store_kv && op->matmul_kv_fits &&
                 op->matmul_kv_fits(be, f->w.wdt, n, f->kv_dtype);
    int rms = s->arch == GS_ARCH_LLAMA, gpt2 = s->arch == GS_ARCH_GPT2;
    /* Where the products would round fp32 rows to half precision themselves
     * (CUDA's tensor-core products in prefill), the norms and GELU write
     * those rows directly: one pass each instead of a pass and a conversion,
     * the same bits. Their rows then live in act_half, not in normed. Never
     * with nfold: a folded norm reads the fp32 residual rows (the backend's
     * shapes keep the two apart, this says so here too). */
    int hin = epi && !nfold && f->act_half && op->half_in_fits && op->half_in_fits(be, f->w.wdt, n) &&
              op->norm_half && (!gpt2 || op->gelu_half);
    /* And attention writes its output as those rows too, the output
     * projection's input (act_half holds n rows of max(C, H) halves). */
    int hatt = hin && op->attention_half && q_dim <= (H > C ? H : C);
    float *normed = fuse ? f->att : f->xn;
    for (int l = 0; l < s->n_layer; l++) {
        const gs_fw_layer *w = &f->w.layers[l];
        gs_range_begin(f->ranges, GS_RANGE_LAYER, "layer", l);
        const gs_prenorm ln1 = {rms, w->ln1_w, w->ln1_b, s->norm_eps}, ln2 = {rms, w->ln2_w, w->ln2_b, s->norm_eps};

        if (nfold) {
            /* norm_attn runs inside matmul_qkv */
        } else if (!fuse || l == 0) {
            OP_BEGIN(f, "norm_attn", l);
            if (hin)
                op->norm_half(be, f->act_half, f->x, w->ln1_w, w->ln1_b, rms, n, C, s->norm_eps, f->w.wdt);
            else
                norm(f, normed, f->x, w->ln1_w, w->ln1_b, n);
            OP_END(f, "norm_attn");
        }
        OP_BEGIN(f, "matmul_qkv", l);
        if (kvfold)
            op->matmul_store_kv(be, f->qkv, nfold ? f->x : normed, w->wqkv, f->w.wdt, w->bqkv, n, C, qkv_dim,
                                nfold ? &ln1 : NULL, f->k_cache[l], f->v_cache[l], f->kv_dtype, f->d_slot, q_dim,
                                kv_dim);
        else if (nfold)
            op->matmul_ex(be, f->qkv, f->x, w->wqkv, f->w.wdt, w->bqkv, n, C, qkv_dim, GS_EPI_NONE, &ln1);
        else if (hin)
            op->matmul_ex(be, f->qkv, f->act_half, w->wqkv, f->w.wdt, w->bqkv, n, C, qkv_dim, GS_EPI_IN_HALF,
                          NULL);
        else
            op->matmul(be, f->qkv, normed, w->wqkv, f->w.wdt, w->bqkv, n, C, qkv_dim);
        OP_END(f, "matmul_qkv");
        if (s->arch == GS_ARCH_LLAMA) {
            OP_BEGIN(f, "rope", l);
            op->rope(be, f->qkv, f->d_pos, n, qkv_dim, s->n_head, s->n_kv_head, hd, s->rope_theta);
            OP_END(f, "rope");
        }
        float *ksc = f->k_scale ? f->k_scale[l] : NULL, *vsc = f->v_scale ? f->v_scale[l] : NULL;
        if (!kvfold) { /* else matmul_qkv stored K and V */
            OP_BEGIN(f, "kv_store", l);
            op->kv_store(be, f->k_cache[l], f->v_cache[l], ksc, vsc, f->kv_dtype, f->qkv, f->d_slot, n, qkv_dim,
                         q_dim, kv_dim, hd);
            OP_END(f, "kv_store");
        }
        aa.k_scale = ksc;
        aa.v_scale = vsc;
        OP_BEGIN(f, "attention", l);
        if (hatt)
            op->attention_half(be, f->act_half, f->att, f->qkv, f->k_cache[l], f->v_cache[l], &aa, f->w.wdt);
        else
            op->attention(be, f->att, f->qkv, f->k_cache[l], f->v_cache[l], &aa);
        OP_END(f, "attention");
        OP_BEGIN(f, "matmul_out", l);
        if (hatt)
            op->matmul_ex(be, f->x, f->act_half, w->wo, f->w.wdt, w->bo, n, q_dim, C,
                          GS_EPI_ACCUMULATE | GS_EPI_IN_HALF, NULL);
        else if (epi)
            op->matmul_ex(be, f->x, f->att, w->wo, f->w.wdt, w->bo, n, q_dim, C, GS_EPI_ACCUMULATE, NULL);
        else
            op->matmul(be, f->xn, f->att, w->wo, f->w.wdt, w->bo, n, q_dim, C);
        OP_END(f, "matmul_out");
        if (nfold) {
            /* norm_mlp runs inside matmul_up (and matmul_gate) */
        } else if (epi) {
            OP_BEGIN(f, "norm_mlp", l);
            if (hin)
                op->norm_half(be, f->act_half, f->x, w->ln2_w, w->ln2_b, rms, n, C, s->norm_eps, f->w.wdt);
            else
                norm(f, normed, f->x, w->ln2_w, w->ln2_b, n);
            OP_END(f, "norm_mlp");
        } else if (fuse) {
            OP_BEGIN(f, "residual_norm_mlp", l);
            op->residual_norm(be, f->x, f->xn, normed, w->ln2_w, w->ln2_b, rms, n, C, s->norm_eps);
            OP_END(f, "residual_norm_mlp");
        } else {
            OP_BEGIN(f, "residual_attn", l);
            op->residual_add(be, f->x, f->xn, (long)n * C);
            OP_END(f, "residual_attn");
            OP_BEGIN(f, "norm_mlp", l);
            norm(f, normed, f->x, w->ln2_w, w->ln2_b, n);
            OP_END(f, "norm_mlp");
        }
        OP_BEGIN(f, "matmul_up", l);
        const float *mlp_in = nfold ? f->x : normed;
        const gs_prenorm *mlp_norm = nfold ? &ln2 : NULL;
        if (hin) /* GELU follows as gelu_half: one pass for GELU and the down product's rows */
            op->matmul_ex(be, f->h_up, f->act_half, w->w_up, f->w.wdt, w->b_up, n, C, H, GS_EPI_IN_HALF, NULL);
        else if (epi && gpt2)
            op->matmul_ex(be, f->h_up, mlp_in, w->w_up, f->w.wdt, w->b_up, n, C, H, GS_EPI_GELU, mlp_norm);
        else if (nfold)
            op->matmul_ex(be, f->h_up, mlp_in, w->w_up, f->w.wdt, w->b_up, n, C, H, GS_EPI_NONE, mlp_norm);
        else
            op->matmul(be, f->h_up, normed, w->w_up, f->w.wdt, w->b_up, n, C, H);
        OP_END(f, "matmul_up");
        const void *down_in = f->h_up;
        int down_epi = GS_EPI_ACCUMULATE;
        if (hin && gpt2) {
            OP_BEGIN(f, "gelu", l);
            op->gelu_half(be, f->act_half, f->h_up, (long)n * H, f->w.wdt);
            OP_END(f, "gelu");
            down_in = f->act_half;
            down_epi |= GS_EPI_IN_HALF;
        } else if (epi && gpt2) {
            /* GELU ran in matmul_up's epilogue */
        } else if (gpt2) {
            OP_BEGIN(f, "gelu", l);
            op->gelu(be, f->h_up, (long)n * H);
            OP_END(f, "gelu");
        } else {
            OP_BEGIN(f, "matmul_gate", l);
            if (nfold)
                op->matmul_ex(be, f->h_gate, mlp_in, w->w_gate, f->w.wdt, NULL, n, C, H, GS_EPI_NONE, mlp_norm);
            else if (hin)
                op->matmul_ex(be, f->h_gate, f->act_half, w->w_gate, f->w.wdt, NULL, n, C, H, GS_EPI_IN_HALF, NULL);
            else
                op->matmul(be, f->h_gate, normed, w->w_gate, f->w.wdt, NULL, n, C, H);
            OP_END(f, "matmul_gate");
            OP_BEGIN(f, "swiglu", l);
            op->swiglu(be, f->h_up, f->h_gate, (long)n * H);
            OP_END(f, "swiglu");
        }
        OP_BEGIN(f, "matmul_down", l);
        if (epi)
            op->matmul_ex(be, f->x, down_in, w->w_down, f->w.wdt, w->b_down, n, H, C, down_epi, NULL);
        else
            op->matmul(be, f->xn, f->h_up, w->w_down, f->w.wdt, w->b_down, n, H, C);
        OP_END(f, "matmul_down");
        if (epi) {
            /* the residual add ran in matmul_down's epilogue */
        } else if (fuse && l + 1 < s->n_layer) {
            const gs_fw_layer *next = &f->w.layers[l + 1];
            OP_BEGIN(f, "residual_norm_attn", l);
            op->residual_norm(be, f->x, f->xn, normed, next->ln1_w, next->ln1_b, rms, n, C, s->norm_eps);
            OP_END(f, "residual_norm_attn");
        } else {
            OP_BEGIN(f, "residual_mlp", l);
            op->residual_add(be, f->x, f->xn, (long)n * C);
            OP_END(f, "residual_mlp");
        }

        gs_range_end(f->ranges, GS_RANGE_LAYER, "layer");
    }
    if (b->n_logits > 0) {
        OP_BEGIN(f, "gather_last", -1);
        op->gather_rows(be, f->gathered, f->x, f->d_logit_rows, b->n_logits, C);
        OP_END(f, "gather_last");
        /* The final norm folds into the logits GEMV like the layers' norms. */
        int nfold_logits = f->fuse && op->matmul_ex && op->matmul_ex_fits && op->matmul_norm_fits &&
                           op->matmul_ex_fits(be, f->w.wdt, b->n_logits) &&
                           op->matmul_norm_fits(be, f->w.wdt, b->n_logits);
        const gs_prenorm lnf = {rms, f->w.lnf_w, f->w.lnf_b, s->norm_eps};
        if (!nfold_logits) {
            OP_BEGIN(f, "norm_final", -1);
            norm(f, f->gathered, f->gathered, f->w.lnf_w, f->w.lnf_b, b->n_logits);
            OP_END(f, "norm_final");
        }
        OP_BEGIN(f, "matmul_logits", -1);
        if (nfold_logits)
            op->matmul_ex(be, f->logits, f->gathered, f->w.lm_head, f->w.wdt, NULL, b->n_logits, C, s->vocab,
                          GS_EPI_NONE, &lnf);
        else
            op->matmul(be, f->logits, f->gathered, f->w.lm_head, f->w.wdt, NULL, b->n_logits, C, s->vocab);
        OP_END(f, "matmul_logits");
        if (ids) {
            /* Before graph_end, so a replayed step picks its ids too. */
            OP_BEGIN(f, "sample_argmax", -1);
            op->argmax_rows(be, f->d_ids, f->logits, b->n_logits, s->vocab);
            OP_END(f, "sample_argmax");
        }
    }
    if (graphed && (rc = op->graph_end(be, graph_key)) != GS_OK)
        return gs_error_set(err, GS_ERR_RUNTIME, "recording the step's CUDA graph failed");
logits:
    if (ids) {
        OP_BEGIN(f, "download_ids", -1);
        rc = op->download(be, b->ids_out, f->d_ids, (size_t)b->n_logits * sizeof(int));
        rc |= op->synchronize(be);
        f->inputs_in_flight = 0;
        OP_END(f, "download_ids");
        if (rc)
            return gs_error_set(err, GS_ERR_RUNTIME, "reading the greedy ids back failed");
    } else if (b->n_logits > 0) {
        OP_BEGIN(f, "download_logits", -1);
        rc = op->download(be, logits_out, f->logits, (size_t)b->n_logits * (size_t)s->vocab * sizeof(float));
        rc |= op->synchronize(be);
        f->inputs_in_flight = 0;
        OP_END(f, "download_logits");
        if (rc)
            return gs_error_set(err, GS_ERR_RUNTIME, "reading the logits back failed");
    }
    return GS_OK;
}
