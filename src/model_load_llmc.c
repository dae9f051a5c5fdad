/* model_load_llmc.c - llm.c GPT-2 checkpoints (karpathy/llm.c, gpt2_124M.bin).
 *
 * Layout (train_gpt2.py write_model, train_gpt2.c gpt2_build_from_checkpoint):
 * a header of 256 little-endian int32: [0] magic 20240326, [1] version
 * (3: fp32 parameters, 5: bf16), [2] maxT, [3] V, [4] L, [5] NH, [6] C,
 * [7] Vp (V padded up, 128 by the exporter), the rest zero. Then the
 * parameters, each grouped over all layers: wte [Vp][C], wpe [maxT][C],
 * ln1w [L][C], ln1b [L][C], qkvw [L][3C][C], qkvb [L][3C],
 * attprojw [L][C][C], attprojb [L][C], ln2w [L][C], ln2b [L][C],
 * fcw [L][4C][C], fcb [L][4C], fcprojw [L][C][4C], fcprojb [L][C],
 * lnfw [C], lnfb [C]. Weights are [out][in] (PyTorch nn.Linear), so they map
 * onto our layout unchanged; rows V..Vp of wte are padding and are dropped.
 * The classifier is always tied to wte, and LayerNorm eps is 1e-5. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "model_load_internal.h"

#define LLMC_HEADER_INTS 256
#define LLMC_HEADER_BYTES (LLMC_HEADER_INTS * 4)
#define LLMC_MAGIC 20240326
#define LLMC_STATE_MAGIC 20240327 /* llm.c's debug state file, not a model */
#define LLMC_VERSION_F32 3
#define LLMC_VERSION_BF16 5
#define LLMC_VOCAB_ALIGN 128
#define LLMC_MAX_PADDED_VOCAB (1 << 21)

static int probe(const gs_ld_file *f, const unsigned char *head, size_t head_len, char *why,
                 size_t why_cap)
{
    return head_len >= 4 && gs_ld_get_i32(head) == LLMC_MAGIC ? GS_PROBE_YES : GS_PROBE_NO;
}

typedef struct llmc_reader {
    const gs_ld_file *f;
    gs_ld_dtype dt;
    uint64_t off;
    gs_error *err;
} llmc_reader;

/* Reads one parameter group: n_layer slices of n floats into each layer's field. */
static int take_layers(llmc_reader *r, gs_model *m, size_t field_offset, uint64_t n, const char *what)
{
    for (int l = 0; l < m->shape.n_layer; l++) {
        float **dst = (float **)((char *)&m->layers[l] + field_offset);
        char desc[64];
        snprintf(desc, sizeof desc, "%s of layer %d", what, l);
        int rc = gs_ld_read_floats(r->f, r->off, *dst, (size_t)n, r->dt, desc, r->err);
        if (rc)
            return rc;
        r->off += n * gs_ld_dtype_size(r->dt);
    }
    return GS_OK;
}

static int take(llmc_reader *r, float *dst, uint64_t n, const char *what)
{
    int rc = gs_ld_read_floats(r->f, r->off, dst, (size_t)n, r->dt, what, r->err);
    r->off += n * gs_ld_dtype_size(r->dt);
    return rc;
}

static int load(gs_model *m, const gs_ld_file *f, const gs_load_hints *hints, gs_error *err)
{
    unsigned char raw[LLMC_HEADER_BYTES];
    const char *path = f->path;
    if (f->size_bytes < 8)
        return gs_ld_fail(err, path, 0, "file is %llu bytes, too short for the %d-byte llm.c header",
                          (unsigned long long)f->size_bytes, LLMC_HEADER_BYTES);
    int rc = gs_ld_read(f, 0, raw, 8, "the llm.c magic", err);
    if (rc)
        return rc;
    int32_t magic = gs_ld_get_i32(raw), version = gs_ld_get_i32(raw + 4);
    if (magic != LLMC_MAGIC)
        return gs_ld_fail(err, path, 0, "bad magic %d (llm.c model files start with %d%s)", magic,
                          LLMC_MAGIC,
                          magic == LLMC_STATE_MAGIC ? "; this is an llm.c debug state file" : "");
    if (version != LLMC_VERSION_F32 && version != LLMC_VERSION_BF16)
        return gs_ld_fail(err, path, 4, "llm.c checkpoint version %d not supported (3 = fp32, 5 = bf16)",
                          version);
    if (f->size_bytes < LLMC_HEADER_BYTES)
        return gs_ld_fail(err, path, 0, "file is %llu bytes, too short for the %d-byte llm.c header",
                          (unsigned long long)f->size_bytes, LLMC_HEADER_BYTES);
    if ((rc = gs_ld_read(f, 0, raw, sizeof raw, "the llm.c header", err)))
        return rc;
    int32_t maxT = gs_ld_get_i32(raw + 8), V = gs_ld_get_i32(raw + 12), L = gs_ld_get_i32(raw + 16);
    int32_t NH = gs_ld_get_i32(raw + 20), C = gs_ld_get_i32(raw + 24), Vp = gs_ld_get_i32(raw + 28);

    gs_model_shape s;
    memset(&s, 0, sizeof s);
    s.arch = GS_ARCH_GPT2;
    s.n_layer = L;
    s.n_head = NH;
    s.n_kv_head = NH;
    s.n_embd = C;
    /* 4C only once C is known to be small; an absurd C is reported as such. */
    s.n_hidden = C > 0 && C <= 65536 ? 4 * C : 0;
    s.n_ctx = maxT;
    s.vocab = V;
    s.tied_embedding = 1;
    s.norm_eps = 1e-5f;
    if ((rc = gs_ld_validate_shape(&s, path, 8, "llm.c header", err)))
        return rc;
    if (Vp < V || Vp > LLMC_MAX_PADDED_VOCAB)
        return gs_ld_fail(err, path, 28, "llm.c header: padded vocab %d must be in %d..%d", Vp, V,
                          LLMC_MAX_PADDED_VOCAB);

    /* Validated bounds keep every product far below 2^64. */
    uint64_t c = (uint64_t)C, l = (uint64_t)L;
    uint64_t floats = (uint64_t)Vp * c + (uint64_t)maxT * c +
                      l * (c + c + 3 * c * c + 3 * c + c * c + c + c + c + 4 * c * c + 4 * c +
                           4 * c * c + c) +
                      c + c;
    gs_ld_dtype dt = version == LLMC_VERSION_F32 ? GS_DT_F32 : GS_DT_BF16;
    uint64_t need = LLMC_HEADER_BYTES + floats * gs_ld_dtype_size(dt);
    if (f->size_bytes != need)
        return gs_ld_fail(err, path, LLMC_HEADER_BYTES,
                          "file is %llu bytes, the header's shape needs %llu bytes",
                          (unsigned long long)f->size_bytes, (unsigned long long)need);
    if ((rc = gs_model_alloc(m, &s, err)))
        return rc;

    llmc_reader r = {f, dt, LLMC_HEADER_BYTES, err};
    rc = take(&r, m->wte, (uint64_t)V * c, "wte");
    r.off += (uint64_t)(Vp - V) * c * gs_ld_dtype_size(dt); /* padding rows */
    if (!rc)
        rc = take(&r, m->wpe, (uint64_t)maxT * c, "wpe");
#define LAYERS(field, n, what)                                                          \
    do {                                                                                \
        if (!rc)                                                                        \
            rc = take_layers(&r, m, offsetof(gs_layer_weights, field), (n), (what));    \
    } while (0)
    LAYERS(ln1_w, c, "ln1w");
    LAYERS(ln1_b, c, "ln1b");
    LAYERS(wqkv, 3 * c * c, "qkvw");
    LAYERS(bqkv, 3 * c, "qkvb");
    LAYERS(wo, c * c, "attprojw");
    LAYERS(bo, c, "attprojb");
    LAYERS(ln2_w, c, "ln2w");
    LAYERS(ln2_b, c, "ln2b");
    LAYERS(w_up, 4 * c * c, "fcw");
    LAYERS(b_up, 4 * c, "fcb");
    LAYERS(w_down, 4 * c * c, "fcprojw");
    LAYERS(b_down, c, "fcprojb");
#undef LAYERS
    if (!rc)
        rc = take(&r, m->lnf_w, c, "lnfw");
    if (!rc)
        rc = take(&r, m->lnf_b, c, "lnfb");
    if (rc)
        gs_model_free(m);
    return rc;
}

int gs_ld_save_llmc(const gs_model *m, const char *path, gs_ld_dtype dt, gs_error *err)
{
    const gs_model_shape *s = &m->shape;
    if (s->arch != GS_ARCH_GPT2)
        return gs_ld_fail_path(err, path, "the llmc format holds GPT-2 style models only "
                                          "(this one is Llama style: save it as llama2c or safetensors)");
    if (!s->tied_embedding || s->n_hidden != 4 * s->n_embd || s->norm_eps != 1e-5f)
        return gs_ld_fail_path(err, path,
                               "the llmc format fixes a tied classifier, n_hidden = 4*n_embd and "
                               "norm_eps 1e-5 (this model has tied %d, n_hidden %d, norm_eps %g: "
                               "save it as safetensors)",
                               s->tied_embedding, s->n_hidden, s->norm_eps);
    if (dt != GS_DT_F32 && dt != GS_DT_BF16)
        return gs_ld_fail_path(err, path, "the llmc format stores F32 or BF16, not %s",
                               gs_ld_dtype_name(dt));
    size_t C = (size_t)s->n_embd, V = (size_t)s->vocab, T = (size_t)s->n_ctx;
    size_t Vp = (V + LLMC_VOCAB_ALIGN - 1) / LLMC_VOCAB_ALIGN * LLMC_VOCAB_ALIGN;
    int L = s->n_layer;
    float *zeros = calloc(C, sizeof *zeros);
    if (!zeros)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory writing %s", path);
    gs_ld_writer w;
    int rc = gs_ld_writer_open(&w, path, err);
    if (rc) {
        free(zeros);
        return rc;
    }
    int32_t hdr[LLMC_HEADER_INTS] = {0};
    hdr[0] = LLMC_MAGIC;
    hdr[1] = dt == GS_DT_F32 ? LLMC_VERSION_F32 : LLMC_VERSION_BF16;
    hdr[2] = s->n_ctx;
    hdr[3] = s->vocab;
    hdr[4] = s->n_layer;
    hdr[5] = s->n_head;
    hdr[6] = s->n_embd;
    hdr[7] = (int32_t)Vp;
    for (int i = 0; i < LLMC_HEADER_INTS; i++)
        gs_ld_write_i32(&w, hdr[i]);
    gs_ld_write_floats(&w, m->wte, V * C, dt);
    for (size_t v = V; v < Vp; v++)
        gs_ld_write_floats(&w, zeros, C, dt);
    gs_ld_write_floats(&w, m->wpe, T * C, dt);
#define LAYERS(field, n)                                          \
    for (int l = 0; l < L; l++)                                   \
        gs_ld_write_floats(&w, m->layers[l].field, (n), dt)
    LAYERS(ln1_w, C);
    LAYERS(ln1_b, C);
    LAYERS(wqkv, 3 * C * C);
    LAYERS(bqkv, 3 * C);
    LAYERS(wo, C * C);
    LAYERS(bo, C);
    LAYERS(ln2_w, C);
    LAYERS(ln2_b, C);
    LAYERS(w_up, 4 * C * C);
    LAYERS(b_up, 4 * C);
    LAYERS(w_down, 4 * C * C);
    LAYERS(b_down, C);
#undef LAYERS
    gs_ld_write_floats(&w, m->lnf_w, C, dt);
    gs_ld_write_floats(&w, m->lnf_b, C, dt);
    free(zeros);
    return gs_ld_writer_close(&w, err);
}

static int save(const gs_model *m, const char *path, gs_error *err)
{
    return gs_ld_save_llmc(m, path, GS_DT_F32, err);
}

const gs_format_ops gs_format_llmc = {GS_FORMAT_LLMC, "llmc", probe, load, save};
