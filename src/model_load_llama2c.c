/* model_load_llama2c.c - llama2.c checkpoints (karpathy/llama2.c, "version 0").
 *
 * Layout: seven little-endian int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len), then fp32 arrays, each grouped over all
 * layers: token_embedding [V][C], rms_att [L][C], wq [L][C][C],
 * wk [L][KV][C], wv [L][KV][C], wo [L][C][C], rms_ffn [L][C],
 * w1 [L][H][C], w2 [L][C][H], w3 [L][H][C], rms_final [C], two legacy RoPE
 * tables freq_cis_real and freq_cis_imag [seq_len][head_size/2], and, only
 * when vocab_size is negative (an unshared classifier), wcls [V][C].
 * The format has no magic number: the exact file size is the check. It
 * cannot carry norm_eps or rope_theta, which are 1e-5 and 10000. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_load_internal.h"

#define L2C_HEADER_BYTES 28
#define L2C_NORM_EPS 1e-5f
#define L2C_ROPE_THETA 10000.0f

typedef struct l2c_header {
    gs_model_shape shape;
    uint64_t need_bytes;  /* exact file size the shape implies */
    uint64_t wcls_floats; /* the classifier's size, present or not */
} l2c_header;

/* Decodes and validates the header; GS_ERR_INPUT if the values cannot be a model. */
static int parse_header(const char *path, const unsigned char *h, l2c_header *out, gs_error *err)
{
    int32_t v[7];
    for (int i = 0; i < 7; i++)
        v[i] = gs_ld_get_i32(h + 4 * i);
    if (v[5] == INT32_MIN) /* -v[5] would overflow */
        return gs_ld_fail(err, path, 20, "llama2.c header: vocab_size %d out of range", v[5]);
    gs_model_shape *s = &out->shape;
    memset(s, 0, sizeof *s);
    s->arch = GS_ARCH_LLAMA;
    s->n_embd = v[0];
    s->n_hidden = v[1];
    s->n_layer = v[2];
    s->n_head = v[3];
    s->n_kv_head = v[4];
    s->vocab = v[5] < 0 ? -v[5] : v[5];
    s->tied_embedding = v[5] > 0;
    s->n_ctx = v[6];
    s->norm_eps = L2C_NORM_EPS;
    s->rope_theta = L2C_ROPE_THETA;
    int rc = gs_ld_validate_shape(s, path, 0, "llama2.c header", err);
    if (rc)
        return rc;
    /* gs_shape_validate bounds every field (C <= 2^16, H <= 2^18, L <= 2^9,
     * V <= 2^20, seq_len <= 2^17), so no product below comes near 2^64. */
    uint64_t C = (uint64_t)s->n_embd, H = (uint64_t)s->n_hidden, L = (uint64_t)s->n_layer;
    uint64_t V = (uint64_t)s->vocab, KV = (uint64_t)gs_shape_kv_dim(s);
    uint64_t hs = (uint64_t)gs_shape_head_dim(s), T = (uint64_t)s->n_ctx;
    uint64_t floats = V * C                /* token_embedding */
                      + L * C              /* rms_att */
                      + L * C * C * 2      /* wq, wo */
                      + L * KV * C * 2     /* wk, wv */
                      + L * C              /* rms_ffn */
                      + L * H * C * 3      /* w1, w2, w3 */
                      + C                  /* rms_final */
                      + T * (hs / 2) * 2;  /* freq_cis_real, freq_cis_imag */
    out->wcls_floats = V * C;
    if (!s->tied_embedding)
        floats += out->wcls_floats;
    out->need_bytes = L2C_HEADER_BYTES + floats * 4;
    return GS_OK;
}

/* Says why a file of this size cannot hold the header's shape. */
static void size_mismatch(const gs_ld_file *f, const l2c_header *h, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "offset %d: file is %llu bytes, the header's shape needs %llu bytes",
                     L2C_HEADER_BYTES, (unsigned long long)f->size_bytes,
                     (unsigned long long)h->need_bytes);
    if (n > 0 && (size_t)n < cap && h->shape.tied_embedding &&
        f->size_bytes == h->need_bytes + h->wcls_floats * 4)
        snprintf(buf + n, cap - (size_t)n,
                 " (the extra bytes are one classifier: an unshared one needs a negative "
                 "vocab_size)");
}

static int probe(const gs_ld_file *f, const unsigned char *head, size_t head_len, char *why,
                 size_t why_cap)
{
    l2c_header h;
    if (head_len < L2C_HEADER_BYTES || parse_header(f->path, head, &h, NULL))
        return GS_PROBE_NO;
    if (f->size_bytes != h.need_bytes) {
        size_mismatch(f, &h, why, why_cap);
        return GS_PROBE_NEAR;
    }
    return GS_PROBE_YES;
}

typedef struct l2c_reader {
    const gs_ld_file *f;
    uint64_t off;
    gs_error *err;
} l2c_reader;

static int take(l2c_reader *r, float *dst, uint64_t n, const char *what, int layer)
{
    char desc[64];
    if (layer >= 0)
        snprintf(desc, sizeof desc, "%s of layer %d", what, layer);
    else
        snprintf(desc, sizeof desc, "%s", what);
    int rc = gs_ld_read_floats(r->f, r->off, dst, (size_t)n, GS_DT_F32, desc, r->err);
    r->off += n * 4;
    return rc;
}

static int load(gs_model *m, const gs_ld_file *f, const gs_load_hints *hints, gs_error *err)
{
    unsigned char raw[L2C_HEADER_BYTES];
    l2c_header h;
    if (f->size_bytes < L2C_HEADER_BYTES)
        return gs_ld_fail(err, f->path, 0, "file is %llu bytes, too short for the %d-byte llama2.c header",
                          (unsigned long long)f->size_bytes, L2C_HEADER_BYTES);
    int rc = gs_ld_read(f, 0, raw, sizeof raw, "the llama2.c header", err);
    if (rc || (rc = parse_header(f->path, raw, &h, err)))
        return rc;
    /* Check the size before allocating: a lying header must not cost memory. */
    if (f->size_bytes != h.need_bytes) {
        char why[300];
        size_mismatch(f, &h, why, sizeof why);
        return gs_ld_fail_path(err, f->path, "%s", why);
    }
    if ((rc = gs_model_alloc(m, &h.shape, err)))
        return rc;

    const gs_model_shape *s = &m->shape;
    uint64_t C = (uint64_t)s->n_embd, H = (uint64_t)s->n_hidden, V = (uint64_t)s->vocab;
    uint64_t KV = (uint64_t)gs_shape_kv_dim(s);
    int L = s->n_layer;
    l2c_reader r = {f, L2C_HEADER_BYTES, err};
    rc = take(&r, m->wte, V * C, "token_embedding", -1);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].ln1_w, C, "rms_att", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].wqkv, C * C, "wq", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].wqkv + C * C, KV * C, "wk", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].wqkv + (C + KV) * C, KV * C, "wv", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].wo, C * C, "wo", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].ln2_w, C, "rms_ffn", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].w_up, H * C, "w1", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].w_down, C * H, "w2", l);
    for (int l = 0; l < L && !rc; l++)
        rc = take(&r, m->layers[l].w_gate, H * C, "w3", l);
    if (!rc)
        rc = take(&r, m->lnf_w, C, "rms_final", -1);
    /* The RoPE tables are recomputed by the kernels from rope_theta. */
    r.off += (uint64_t)s->n_ctx * (uint64_t)(gs_shape_head_dim(s) / 2) * 2 * 4;
    if (!rc && !s->tied_embedding)
        rc = take(&r, m->lm_head, V * C, "wcls", -1);
    if (rc)
        gs_model_free(m);
    return rc;
}

static int save(const gs_model *m, const char *path, gs_error *err)
{
    const gs_model_shape *s = &m->shape;
    if (s->arch != GS_ARCH_LLAMA)
        return gs_ld_fail_path(err, path, "the llama2c format holds Llama-style models only "
                                          "(this one is GPT-2 style: save it as llmc or safetensors)");
    if (s->norm_eps != L2C_NORM_EPS || s->rope_theta != L2C_ROPE_THETA)
        return gs_ld_fail_path(err, path,
                               "the llama2c format fixes norm_eps 1e-5 and rope_theta 10000 "
                               "(this model has %g and %g: save it as safetensors)",
                               s->norm_eps, s->rope_theta);
    size_t C = (size_t)s->n_embd, H = (size_t)s->n_hidden, V = (size_t)s->vocab;
    size_t KV = (size_t)gs_shape_kv_dim(s), hs = (size_t)gs_shape_head_dim(s);
    int L = s->n_layer;
    gs_ld_writer w;
    int rc = gs_ld_writer_open(&w, path, err);
    if (rc)
        return rc;
    int32_t hdr[7] = {s->n_embd, s->n_hidden, s->n_layer, s->n_head, s->n_kv_head,
                      s->tied_embedding ? s->vocab : -s->vocab, s->n_ctx};
    for (int i = 0; i < 7; i++)
        gs_ld_write_i32(&w, hdr[i]);
    gs_ld_write_floats(&w, m->wte, V * C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].ln1_w, C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].wqkv, C * C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].wqkv + C * C, KV * C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].wqkv + (C + KV) * C, KV * C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].wo, C * C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].ln2_w, C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].w_up, H * C, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].w_down, C * H, GS_DT_F32);
    for (int l = 0; l < L; l++)
        gs_ld_write_floats(&w, m->layers[l].w_gate, H * C, GS_DT_F32);
    gs_ld_write_floats(&w, m->lnf_w, C, GS_DT_F32);
    /* The legacy tables, written as llama2.c's exporter did, so older readers
     * that still use them get the same rotation: cos and sin of
     * pos * theta^(-2i/head_size), rows by position. */
    float *row = malloc((hs / 2 + 1) * sizeof *row);
    if (!row) {
        gs_ld_writer_close(&w, NULL);
        remove(path);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory writing %s", path);
    }
    for (int table = 0; table < 2; table++) {
        for (int pos = 0; pos < s->n_ctx; pos++) {
            for (size_t i = 0; i < hs / 2; i++) {
                double freq = 1.0 / pow((double)L2C_ROPE_THETA, (double)(2 * i) / (double)hs);
                double a = (double)pos * freq;
                row[i] = (float)(table == 0 ? cos(a) : sin(a));
            }
            gs_ld_write_floats(&w, row, hs / 2, GS_DT_F32);
        }
    }
    free(row);
    if (!s->tied_embedding)
        gs_ld_write_floats(&w, m->lm_head, V * C, GS_DT_F32);
    return gs_ld_writer_close(&w, err);
}

const gs_format_ops gs_format_llama2c = {GS_FORMAT_LLAMA2C, "llama2c", probe, load, save};
