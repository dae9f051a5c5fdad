/* model_load_safetensors.c - safetensors files with Hugging Face GPT-2 or Llama names.
 *
 * A safetensors file is a u64 little-endian header length N, N bytes of JSON
 * mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the first byte after the header), an optional
 * "__metadata__" object of strings, then the raw data. We read F32, F16 and
 * BF16. The header is checked whole before anything is allocated: every entry
 * must be well formed, its offsets inside the file and its byte span equal to
 * its shape times its element size; names must be unique.
 *
 * The architecture comes from the names (model.embed_tokens.weight: Llama;
 * [transformer.]wte.weight: GPT-2), the sizes from the shapes, and what the
 * shapes cannot say (head count, context length, eps, rope theta) from a
 * config.json beside the file, then the caller's hints, then defaults.
 *
 * Two layout differences from ours, handled by one table of bindings shared
 * by the reader and the writer:
 * - GPT-2's Conv1D stores weights [in][out]; we keep [out][in]: transpose.
 * - HF Llama rotates pairs (i, i + head_dim/2) within a head (rotate_half);
 *   our kernels rotate adjacent pairs (2i, 2i+1) as llama2.c does. So the
 *   rows of q_proj and k_proj are permuted within each head: HF row j is our
 *   row 2j for j < head_dim/2 and 2(j - head_dim/2) + 1 above. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "model_load_internal.h"

#define ST_MAX_HEADER_BYTES (100ull << 20) /* HF's own reader refuses more too */
#define ST_MAX_CONFIG_BYTES (16ull << 20)
#define ST_MAX_DEPTH 8   /* root, entry, shape: 3 is all a valid header needs */
#define ST_CONFIG_DEPTH 32
#define ST_MAX_RANK 8
#define ST_CHUNK_FLOATS 65536
#define ST_PATH_MAX 4096
#define ST_DEFAULT_HEAD_DIM 64 /* every GPT-2 size uses 64 */
#define ST_DEFAULT_N_CTX 2048

/* ---- the header ---- */

typedef struct st_dtype {
    const char *name;
    size_t size;
    int supported;
    gs_ld_dtype dt;
} st_dtype;

/* Every dtype of the safetensors spec with a whole-byte element, so the size
 * check covers tensors we do not read (a file may carry them unused). */
static const st_dtype st_dtypes[] = {
    {"F32", 4, 1, GS_DT_F32}, {"F16", 2, 1, GS_DT_F16},    {"BF16", 2, 1, GS_DT_BF16},
    {"F64", 8, 0, GS_DT_F32}, {"I64", 8, 0, GS_DT_F32},    {"I32", 4, 0, GS_DT_F32},
    {"I16", 2, 0, GS_DT_F32}, {"I8", 1, 0, GS_DT_F32},     {"U64", 8, 0, GS_DT_F32},
    {"U32", 4, 0, GS_DT_F32}, {"U16", 2, 0, GS_DT_F32},    {"U8", 1, 0, GS_DT_F32},
    {"BOOL", 1, 0, GS_DT_F32}, {"F8_E4M3", 1, 0, GS_DT_F32}, {"F8_E5M2", 1, 0, GS_DT_F32},
    {"F8_E8M0", 1, 0, GS_DT_F32},
};

typedef struct st_tensor {
    const char *name; /* decoded, in the JSON document's strings */
    size_t name_len;
    const st_dtype *dtype;
    int rank;
    uint64_t shape[ST_MAX_RANK];
    uint64_t begin, end; /* absolute file offsets */
    uint64_t entry_off;  /* absolute offset of the entry, for messages */
    int used;
} st_tensor;

typedef struct st_file {
    const gs_ld_file *f;
    gs_json_doc doc;
    st_tensor *t; /* sorted by name */
    int n;
} st_file;

/* A tensor name fit for a one-line message: control bytes become '?'. */
typedef struct st_name {
    char s[112];
} st_name;

static st_name show(const char *name, size_t len)
{
    st_name r;
    size_t k = 0;
    for (size_t i = 0; i < len && k < sizeof r.s - 4; i++) {
        unsigned char c = (unsigned char)name[i];
        r.s[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (k < len && k >= sizeof r.s - 4) {
        memcpy(r.s + k, "...", 3);
        k += 3;
    }
    r.s[k] = '\0';
    return r;
}

static void format_shape(const uint64_t *d, int rank, char *buf, size_t cap)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
}

static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int tensor_cmp(const void *pa, const void *pb)
{
    const st_tensor *a = pa, *b = pb;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static st_tensor *st_find(const st_file *st, const char *name)
{
    size_t len = strlen(name);
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = name_cmp(name, len, st->t[mid].name, st->t[mid].name_len);
        if (c == 0)
            return &st->t[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* A non-negative JSON integer. */
static int get_u64(const gs_json_value *v, uint64_t *out)
{
    if (!v || v->type != GS_JSON_NUMBER || !v->is_integer || v->integer < 0)
        return 0;
    *out = (uint64_t)v->integer;
    return 1;
}

static int parse_entry(st_file *st, const gs_json_value *v, uint64_t data_start, st_tensor *t,
                       gs_error *err)
{
    const char *path = st->f->path;
    st_name nm = show(v->key, v->key_len);
    uint64_t base = 8; /* JSON offsets count from the first header byte */
    uint64_t data_bytes = st->f->size_bytes - data_start;
    memset(t, 0, sizeof *t);
    t->name = v->key;
    t->name_len = v->key_len;
    t->entry_off = base + v->offset;
    if (v->type != GS_JSON_OBJECT)
        return gs_ld_fail(err, path, t->entry_off, "tensor \"%s\": entry must be an object, not %s",
                          nm.s, gs_json_type_name(v->type));

    const gs_json_value *dt = gs_json_get(&st->doc, v, "dtype");
    if (!dt || dt->type != GS_JSON_STRING)
        return gs_ld_fail(err, path, dt ? base + dt->offset : t->entry_off,
                          "tensor \"%s\": \"dtype\" must be a string", nm.s);
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strlen(st_dtypes[i].name) == dt->len && memcmp(st_dtypes[i].name, dt->str, dt->len) == 0)
            t->dtype = &st_dtypes[i];
    if (!t->dtype)
        return gs_ld_fail(err, path, base + dt->offset, "tensor \"%s\": unknown dtype \"%s\"", nm.s,
                          show(dt->str, dt->len).s);

    const gs_json_value *sh = gs_json_get(&st->doc, v, "shape");
    if (!sh || sh->type != GS_JSON_ARRAY)
        return gs_ld_fail(err, path, sh ? base + sh->offset : t->entry_off,
                          "tensor \"%s\": \"shape\" must be an array", nm.s);
    if (sh->len > ST_MAX_RANK)
        return gs_ld_fail(err, path, base + sh->offset, "tensor \"%s\": rank %zu is over %d", nm.s,
                          sh->len, ST_MAX_RANK);
    uint64_t elems = 1;
    for (const gs_json_value *d = gs_json_child(&st->doc, sh); d; d = gs_json_next(&st->doc, d)) {
        uint64_t x;
        if (!get_u64(d, &x))
            return gs_ld_fail(err, path, base + d->offset,
                              "tensor \"%s\": shape entries must be non-negative integers", nm.s);
        if (!gs_ld_mul(elems, x, &elems))
            return gs_ld_fail(err, path, base + sh->offset, "tensor \"%s\": shape overflows", nm.s);
        t->shape[t->rank++] = x;
    }

    const gs_json_value *of = gs_json_get(&st->doc, v, "data_offsets");
    const gs_json_value *o0 = gs_json_child(&st->doc, of), *o1 = gs_json_next(&st->doc, o0);
    uint64_t b, e;
    if (!of || of->type != GS_JSON_ARRAY || of->len != 2 || !get_u64(o0, &b) || !get_u64(o1, &e))
        return gs_ld_fail(err, path, of ? base + of->offset : t->entry_off,
                          "tensor \"%s\": \"data_offsets\" must be [begin, end], non-negative integers",
                          nm.s);
    if (b > e)
        return gs_ld_fail(err, path, base + of->offset,
                          "tensor \"%s\": data_offsets [%llu, %llu] end before they begin", nm.s,
                          (unsigned long long)b, (unsigned long long)e);
    if (e > data_bytes)
        return gs_ld_fail(err, path, base + of->offset,
                          "tensor \"%s\": data_offsets [%llu, %llu] run past the end of the file "
                          "(the data section is %llu bytes)",
                          nm.s, (unsigned long long)b, (unsigned long long)e,
                          (unsigned long long)data_bytes);
    uint64_t bytes;
    char shs[160];
    format_shape(t->shape, t->rank, shs, sizeof shs);
    if (!gs_ld_mul(elems, t->dtype->size, &bytes))
        return gs_ld_fail(err, path, base + sh->offset, "tensor \"%s\": shape %s of %s is too large",
                          nm.s, shs, t->dtype->name);
    if (bytes != e - b)
        return gs_ld_fail(err, path, base + sh->offset,
                          "tensor \"%s\": shape %s of %s needs %llu bytes, data_offsets span %llu",
                          nm.s, shs, t->dtype->name, (unsigned long long)bytes,
                          (unsigned long long)(e - b));
    t->begin = data_start + b;
    t->end = data_start + e;
    return GS_OK;
}

static void st_close(st_file *st)
{
    gs_json_free(&st->doc);
    free(st->t);
    st->t = NULL;
    st->n = 0;
}

/* Reads and checks the whole header. */
static int st_open(st_file *st, const gs_ld_file *f, gs_error *err)
{
    unsigned char lenbuf[8];
    const char *path = f->path;
    memset(st, 0, sizeof *st);
    st->f = f;
    if (f->size_bytes < 8)
        return gs_ld_fail(err, path, 0,
                          "file is %llu bytes, too short for the 8-byte safetensors header length",
                          (unsigned long long)f->size_bytes);
    int rc = gs_ld_read(f, 0, lenbuf, 8, "the safetensors header length", err);
    if (rc)
        return rc;
    uint64_t n = gs_ld_get_u64(lenbuf);
    if (n > f->size_bytes - 8)
        return gs_ld_fail(err, path, 0,
                          "safetensors header length %llu runs past the end of the file "
                          "(%llu bytes follow the length)",
                          (unsigned long long)n, (unsigned long long)(f->size_bytes - 8));
    if (n > ST_MAX_HEADER_BYTES)
        return gs_ld_fail(err, path, 0, "safetensors header length %llu is over the %llu MiB limit",
                          (unsigned long long)n, ST_MAX_HEADER_BYTES >> 20);
    if (n < 2)
        return gs_ld_fail(err, path, 0, "safetensors header length %llu is too short for a JSON object",
                          (unsigned long long)n);
    char *text = malloc((size_t)n);
    if (!text)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading the header of %s", path);
    rc = gs_ld_read(f, 8, text, (size_t)n, "the safetensors header", err);
    if (!rc) {
        rc = gs_json_parse(&st->doc, text, (size_t)n, ST_MAX_DEPTH);
        if (rc == GS_ERR_INPUT)
            gs_ld_fail(err, path, 8 + st->doc.error_offset, "header JSON: %s", st->doc.error);
        else if (rc)
            gs_error_set(err, GS_ERR_RUNTIME, "%s: header JSON: %s", path, st->doc.error);
    }
    free(text);
    if (rc)
        return rc;

    const gs_json_value *root = gs_json_root(&st->doc);
    if (root->type != GS_JSON_OBJECT)
        return gs_ld_fail(err, path, 8 + root->offset, "safetensors header must be a JSON object, not %s",
                          gs_json_type_name(root->type));
    st->t = calloc(root->len + 1, sizeof *st->t);
    if (!st->t)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading the header of %s", path);
    uint64_t data_start = 8 + n;
    for (const gs_json_value *v = gs_json_child(&st->doc, root); v; v = gs_json_next(&st->doc, v)) {
        if (v->key_len == 12 && memcmp(v->key, "__metadata__", 12) == 0) {
            if (v->type != GS_JSON_OBJECT)
                return gs_ld_fail(err, path, 8 + v->offset, "\"__metadata__\" must be an object");
            for (const gs_json_value *mv = gs_json_child(&st->doc, v); mv; mv = gs_json_next(&st->doc, mv))
                if (mv->type != GS_JSON_STRING)
                    return gs_ld_fail(err, path, 8 + mv->offset,
                                      "\"__metadata__\" values must be strings");
            continue;
        }
        if ((rc = parse_entry(st, v, data_start, &st->t[st->n], err)))
            return rc;
        st->n++;
    }
    qsort(st->t, (size_t)st->n, sizeof *st->t, tensor_cmp);
    for (int i = 1; i < st->n; i++)
        if (tensor_cmp(&st->t[i - 1], &st->t[i]) == 0) {
            const st_tensor *a = &st->t[i - 1], *b = &st->t[i];
            return gs_ld_fail(err, path, a->entry_off > b->entry_off ? a->entry_off : b->entry_off,
                              "tensor \"%s\" appears twice", show(a->name, a->name_len).s);
        }
    return GS_OK;
}

/* ---- config.json beside the file ---- */

typedef struct st_config {
    char path[ST_PATH_MAX]; /* "" when there is none */
    gs_json_doc doc;
    const gs_json_value *root;
} st_config;

int gs_ld_safetensors_config_path(const char *path, char *out, size_t cap)
{
    static const char ext[] = ".safetensors";
    size_t len = strlen(path), el = sizeof ext - 1;
    if (len > el && strcmp(path + len - el, ext) == 0)
        len -= el;
    int n = snprintf(out, cap, "%.*s.config.json", (int)len, path);
    return n > 0 && (size_t)n < cap;
}

static int dir_config_path(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    int n = slash ? snprintf(out, cap, "%.*s/config.json", (int)(slash - path), path)
                  : snprintf(out, cap, "config.json");
    return n > 0 && (size_t)n < cap;
}

static void config_close(st_config *c)
{
    gs_json_free(&c->doc);
    c->root = NULL;
}

/* Finds and parses the config: "<stem>.config.json" first (it names this
 * file), then "config.json" in the same directory. None is fine. */
static int config_open(st_config *c, const char *model_path, gs_error *err)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        int ok = i == 0 ? gs_ld_safetensors_config_path(model_path, c->path, sizeof c->path)
                        : dir_config_path(model_path, c->path, sizeof c->path);
        if (!ok || stat(c->path, &sb) != 0)
            continue;
        gs_ld_file f;
        int rc = gs_ld_open(&f, c->path, err);
        if (rc)
            return rc;
        if (f.size_bytes > ST_MAX_CONFIG_BYTES) {
            gs_ld_close(&f);
            return gs_ld_fail_path(err, c->path, "config is %llu bytes, over the %llu MiB limit",
                                   (unsigned long long)f.size_bytes, ST_MAX_CONFIG_BYTES >> 20);
        }
        char *text = malloc((size_t)f.size_bytes + 1);
        if (!text) {
            gs_ld_close(&f);
            return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading %s", c->path);
        }
        rc = gs_ld_read(&f, 0, text, (size_t)f.size_bytes, "the config", err);
        gs_ld_close(&f);
        if (!rc) {
            rc = gs_json_parse(&c->doc, text, (size_t)f.size_bytes, ST_CONFIG_DEPTH);
            if (rc == GS_ERR_INPUT)
                gs_ld_fail(err, c->path, c->doc.error_offset, "%s", c->doc.error);
            else if (rc)
                gs_error_set(err, GS_ERR_RUNTIME, "%s: %s", c->path, c->doc.error);
        }
        free(text);
        if (rc)
            return rc;
        c->root = gs_json_root(&c->doc);
        if (c->root->type != GS_JSON_OBJECT)
            return gs_ld_fail(err, c->path, c->root->offset, "config must be a JSON object");
        return GS_OK;
    }
    c->path[0] = '\0';
    return GS_OK;
}

/* The first of keys present (and not null) in obj. */
static const gs_json_value *cfg_find(const st_config *c, const gs_json_value *obj,
                                     const char *const *keys)
{
    for (; *keys; keys++) {
        const gs_json_value *v = gs_json_get(&c->doc, obj, *keys);
        if (v && v->type != GS_JSON_NULL)
            return v;
    }
    return NULL;
}

/* A positive int; *out untouched when absent. */
static int cfg_int(const st_config *c, const char *const *keys, int *out, gs_error *err)
{
    const gs_json_value *v = c->root ? cfg_find(c, c->root, keys) : NULL;
    if (!v)
        return GS_OK;
    if (v->type != GS_JSON_NUMBER || !v->is_integer || v->integer < 1 || v->integer > INT32_MAX)
        return gs_ld_fail(err, c->path, v->offset, "\"%s\" must be a positive integer", v->key);
    *out = (int)v->integer;
    return GS_OK;
}

static int cfg_num(const st_config *c, const gs_json_value *obj, const char *const *keys,
                   double *out, gs_error *err)
{
    const gs_json_value *v = obj ? cfg_find(c, obj, keys) : NULL;
    if (!v)
        return GS_OK;
    if (v->type != GS_JSON_NUMBER)
        return gs_ld_fail(err, c->path, v->offset, "\"%s\" must be a number", v->key);
    /* Values become floats: refuse what a float cannot hold rather than overflow. */
    if (fabs(v->number) > FLT_MAX)
        return gs_ld_fail(err, c->path, v->offset, "\"%s\" %g is out of range", v->key, v->number);
    *out = v->number;
    return GS_OK;
}

/* Fails when key is present with a value other than one of allowed (strings). */
static int cfg_expect_str(const st_config *c, const gs_json_value *obj, const char *key,
                          const char *const *allowed, const char *why, gs_error *err)
{
    const gs_json_value *v = obj ? gs_json_get(&c->doc, obj, key) : NULL;
    if (!v || v->type == GS_JSON_NULL)
        return GS_OK;
    if (v->type == GS_JSON_STRING)
        for (const char *const *a = allowed; *a; a++)
            if (strlen(*a) == v->len && memcmp(*a, v->str, v->len) == 0)
                return GS_OK;
    return gs_ld_fail(err, c->path, v->offset, "\"%s\" is %s%s%s, %s", key,
                      v->type == GS_JSON_STRING ? "\"" : "",
                      v->type == GS_JSON_STRING ? show(v->str, v->len).s : gs_json_type_name(v->type),
                      v->type == GS_JSON_STRING ? "\"" : "", why);
}

/* Fails when key is present and a boolean other than want. */
static int cfg_expect_bool(const st_config *c, const char *key, int want, const char *why,
                           gs_error *err)
{
    const gs_json_value *v = c->root ? gs_json_get(&c->doc, c->root, key) : NULL;
    if (!v || v->type == GS_JSON_NULL)
        return GS_OK;
    if (v->type != GS_JSON_BOOL)
        return gs_ld_fail(err, c->path, v->offset, "\"%s\" must be true or false", key);
    if (v->boolean != want)
        return gs_ld_fail(err, c->path, v->offset, "\"%s\" is %s, %s", key,
                          v->boolean ? "true" : "false", why);
    return GS_OK;
}

/* ---- bindings: our tensors to HF names, for reading and writing ---- */

enum { XF_NONE = 0, XF_TRANSPOSE, XF_ROPE };

typedef struct st_binding {
    char name[96];
    float *data;    /* our block, [rows][cols] ([rows] when cols == 0); NULL while checking */
    int rows, cols;
    int xf;         /* XF_TRANSPOSE: HF holds [cols][rows]; XF_ROPE: rows permuted per head */
    int head_dim;   /* XF_ROPE */
} st_binding;

/* Our row for HF row j (see the file comment). */
static size_t rope_row(size_t j, size_t hd)
{
    size_t head = j / hd, r = j % hd, half = hd / 2;
    return head * hd + (r < half ? 2 * r : 2 * (r - half) + 1);
}

/* The HF shape of a binding. */
static int binding_shape(const st_binding *b, uint64_t *d)
{
    if (b->cols == 0) {
        d[0] = (uint64_t)b->rows;
        return 1;
    }
    d[0] = (uint64_t)(b->xf == XF_TRANSPOSE ? b->cols : b->rows);
    d[1] = (uint64_t)(b->xf == XF_TRANSPOSE ? b->rows : b->cols);
    return 2;
}

/* Lists every tensor of shape s under its HF name. m NULL: names and sizes
 * only (to check a file before allocating). gpt2_prefix: "transformer." or "". */
static int build_bindings(const gs_model_shape *s, const gs_model *m, const char *gpt2_prefix,
                          st_binding **out, int *n_out)
{
    int L = s->n_layer, C = s->n_embd, H = s->n_hidden, V = s->vocab;
    int KV = gs_shape_kv_dim(s), QKV = gs_shape_qkv_dim(s), hd = gs_shape_head_dim(s);
    st_binding *b = calloc((size_t)L * 16 + 8, sizeof *b);
    int n = 0;
    if (!b)
        return GS_ERR_RUNTIME;
#define BIND(ptr, r, c, x, ...)                                              \
    do {                                                                     \
        snprintf(b[n].name, sizeof b[n].name, __VA_ARGS__);                  \
        b[n].data = m ? (ptr) : NULL;                                        \
        b[n].rows = (r);                                                     \
        b[n].cols = (c);                                                     \
        b[n].xf = (x);                                                       \
        b[n].head_dim = hd;                                                  \
        n++;                                                                 \
    } while (0)
    /* With m NULL the pointer expressions below are never evaluated. */
    const gs_layer_weights *w0 = m ? m->layers : NULL;
    if (s->arch == GS_ARCH_GPT2) {
        const char *p = gpt2_prefix;
        BIND(m->wte, V, C, XF_NONE, "%swte.weight", p);
        BIND(m->wpe, s->n_ctx, C, XF_NONE, "%swpe.weight", p);
        for (int l = 0; l < L; l++) {
            const gs_layer_weights *w = m ? &w0[l] : NULL;
            BIND(w->ln1_w, C, 0, XF_NONE, "%sh.%d.ln_1.weight", p, l);
            BIND(w->ln1_b, C, 0, XF_NONE, "%sh.%d.ln_1.bias", p, l);
            BIND(w->wqkv, QKV, C, XF_TRANSPOSE, "%sh.%d.attn.c_attn.weight", p, l);
            BIND(w->bqkv, QKV, 0, XF_NONE, "%sh.%d.attn.c_attn.bias", p, l);
            BIND(w->wo, C, C, XF_TRANSPOSE, "%sh.%d.attn.c_proj.weight", p, l);
            BIND(w->bo, C, 0, XF_NONE, "%sh.%d.attn.c_proj.bias", p, l);
            BIND(w->ln2_w, C, 0, XF_NONE, "%sh.%d.ln_2.weight", p, l);
            BIND(w->ln2_b, C, 0, XF_NONE, "%sh.%d.ln_2.bias", p, l);
            BIND(w->w_up, H, C, XF_TRANSPOSE, "%sh.%d.mlp.c_fc.weight", p, l);
            BIND(w->b_up, H, 0, XF_NONE, "%sh.%d.mlp.c_fc.bias", p, l);
            BIND(w->w_down, C, H, XF_TRANSPOSE, "%sh.%d.mlp.c_proj.weight", p, l);
            BIND(w->b_down, C, 0, XF_NONE, "%sh.%d.mlp.c_proj.bias", p, l);
        }
        BIND(m->lnf_w, C, 0, XF_NONE, "%sln_f.weight", p);
        BIND(m->lnf_b, C, 0, XF_NONE, "%sln_f.bias", p);
    } else {
        BIND(m->wte, V, C, XF_NONE, "model.embed_tokens.weight");
        for (int l = 0; l < L; l++) {
            const gs_layer_weights *w = m ? &w0[l] : NULL;
            BIND(w->ln1_w, C, 0, XF_NONE, "model.layers.%d.input_layernorm.weight", l);
            BIND(w->wqkv, C, C, XF_ROPE, "model.layers.%d.self_attn.q_proj.weight", l);
            BIND(w->wqkv + (size_t)C * C, KV, C, XF_ROPE, "model.layers.%d.self_attn.k_proj.weight", l);
            BIND(w->wqkv + (size_t)(C + KV) * C, KV, C, XF_NONE,
                 "model.layers.%d.self_attn.v_proj.weight", l);
            BIND(w->wo, C, C, XF_NONE, "model.layers.%d.self_attn.o_proj.weight", l);
            BIND(w->ln2_w, C, 0, XF_NONE, "model.layers.%d.post_attention_layernorm.weight", l);
            /* HF gate_proj is the silu input (our w_up); up_proj multiplies (our w_gate). */
            BIND(w->w_up, H, C, XF_NONE, "model.layers.%d.mlp.gate_proj.weight", l);
            BIND(w->w_gate, H, C, XF_NONE, "model.layers.%d.mlp.up_proj.weight", l);
            BIND(w->w_down, C, H, XF_NONE, "model.layers.%d.mlp.down_proj.weight", l);
        }
        BIND(m->lnf_w, C, 0, XF_NONE, "model.norm.weight");
    }
    if (!s->tied_embedding)
        BIND(m->lm_head, V, C, XF_NONE, "lm_head.weight");
#undef BIND
    *out = b;
    *n_out = n;
    return GS_OK;
}

/* Reads a binding's tensor into b->data, converting and rearranging. */
static int read_binding(const st_file *st, const st_binding *b, const st_tensor *t, gs_error *err)
{
    gs_ld_dtype dt = t->dtype->dt;
    size_t es = gs_ld_dtype_size(dt), rows = (size_t)b->rows;
    size_t cols = b->cols ? (size_t)b->cols : 1;
    if (b->xf == XF_NONE)
        return gs_ld_read_floats(st->f, t->begin, b->data, rows * cols, dt, b->name, err);
    size_t src_rows = b->xf == XF_TRANSPOSE ? cols : rows;
    size_t src_len = b->xf == XF_TRANSPOSE ? rows : cols;
    size_t per = src_len >= ST_CHUNK_FLOATS ? 1 : ST_CHUNK_FLOATS / src_len;
    float *tmp = malloc(per * src_len * sizeof *tmp);
    if (!tmp)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading %s", st->f->path);
    int rc = GS_OK;
    for (size_t r0 = 0; r0 < src_rows && !rc; r0 += per) {
        size_t k = src_rows - r0 < per ? src_rows - r0 : per;
        rc = gs_ld_read_floats(st->f, t->begin + (uint64_t)r0 * src_len * es, tmp, k * src_len, dt,
                               b->name, err);
        for (size_t i = 0; i < k && !rc; i++) {
            const float *src = tmp + i * src_len;
            size_t sr = r0 + i;
            if (b->xf == XF_TRANSPOSE) {
                for (size_t j = 0; j < src_len; j++)
                    b->data[j * cols + sr] = src[j];
            } else {
                memcpy(b->data + rope_row(sr, (size_t)b->head_dim) * cols, src, src_len * sizeof *src);
            }
        }
    }
    free(tmp);
    return rc;
}

/* Sets *same when two tensors of one shape hold the same values once widened to fp32. */
static int same_values(const st_file *st, const st_tensor *a, const st_tensor *b, int *same,
                       gs_error *err)
{
    uint64_t n = 1;
    for (int i = 0; i < a->rank; i++)
        n *= a->shape[i]; /* checked against the data span when the header was read */
    *same = 1;
    if (a->begin == b->begin && a->dtype == b->dtype)
        return GS_OK;
    float *x = malloc(2 * ST_CHUNK_FLOATS * sizeof *x);
    if (!x)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading %s", st->f->path);
    float *y = x + ST_CHUNK_FLOATS;
    int rc = GS_OK;
    for (uint64_t done = 0; done < n && !rc && *same; done += ST_CHUNK_FLOATS) {
        size_t k = n - done < ST_CHUNK_FLOATS ? (size_t)(n - done) : ST_CHUNK_FLOATS;
        rc = gs_ld_read_floats(st->f, a->begin + done * a->dtype->size, x, k, a->dtype->dt, "lm_head", err);
        if (!rc)
            rc = gs_ld_read_floats(st->f, b->begin + done * b->dtype->size, y, k, b->dtype->dt, "wte", err);
        if (!rc && memcmp(x, y, k * sizeof *x) != 0)
            *same = 0;
    }
    free(x);
    return rc;
}

/* ---- shape inference ---- */

static int dim_int(uint64_t d)
{
    return d > INT32_MAX ? INT32_MAX : (int)d;
}

/* A tensor that must exist with the given rank. */
static int need(const st_file *st, const char *name, int rank, const st_tensor **out, gs_error *err)
{
    const st_tensor *t = st_find(st, name);
    if (!t)
        return gs_ld_fail_path(err, st->f->path, "tensor \"%s\" is missing", name);
    if (t->rank != rank) {
        char shs[160];
        format_shape(t->shape, t->rank, shs, sizeof shs);
        return gs_ld_fail(err, st->f->path, t->entry_off, "tensor \"%s\" has shape %s, expected rank %d",
                          name, shs, rank);
    }
    *out = t;
    return GS_OK;
}

static int count_layers(const st_file *st, const char *fmt, const char *prefix)
{
    char name[128];
    int l = 0;
    for (;; l++) {
        if (prefix)
            snprintf(name, sizeof name, fmt, prefix, l);
        else
            snprintf(name, sizeof name, fmt, l);
        if (!st_find(st, name) || l > 1 << 20)
            return l;
    }
}

/* Checks a config value against what the tensors say. */
static int cfg_agrees(const st_config *c, const char *const *keys, int actual, const char *what,
                      gs_error *err)
{
    int v = -1, rc = cfg_int(c, keys, &v, err);
    if (rc || v < 0 || v == actual)
        return rc;
    const gs_json_value *j = cfg_find(c, c->root, keys);
    return gs_ld_fail(err, c->path, j->offset, "\"%s\" is %d but the tensors have %s %d", j->key, v,
                      what, actual);
}

static const char *const K_N_HEAD[] = {"n_head", "num_attention_heads", NULL};
static const char *const K_N_KV[] = {"num_key_value_heads", NULL};
static const char *const K_N_CTX[] = {"max_position_embeddings", "n_positions", "n_ctx", NULL};
static const char *const K_N_EMBD[] = {"n_embd", "hidden_size", NULL};
static const char *const K_N_LAYER[] = {"n_layer", "num_hidden_layers", NULL};
static const char *const K_HEAD_DIM[] = {"head_dim", NULL};
static const char *const K_EPS[] = {"layer_norm_epsilon", "rms_norm_eps", NULL};
static const char *const K_THETA[] = {"rope_theta", NULL};

/* n_head from the config, else the hints; 0 when neither says. A count that
 * does not divide n_embd is refused naming where it came from. */
static int choose_n_head(const st_file *st, const st_config *c, const gs_load_hints *hints,
                         gs_model_shape *s, gs_error *err)
{
    int rc = cfg_int(c, K_N_HEAD, &s->n_head, err);
    if (rc)
        return rc;
    if (s->n_head > 0) {
        if (s->n_embd % s->n_head != 0) {
            const gs_json_value *v = cfg_find(c, c->root, K_N_HEAD);
            return gs_ld_fail(err, c->path, v->offset,
                              "\"%s\" is %d, which does not divide n_embd %d of the tensors", v->key,
                              s->n_head, s->n_embd);
        }
        return GS_OK;
    }
    if (hints->n_head > 0) {
        if (s->n_embd % hints->n_head != 0)
            return gs_ld_fail_path(err, st->f->path, "n_head %d (asked for) does not divide n_embd %d",
                                   hints->n_head, s->n_embd);
        s->n_head = hints->n_head;
    }
    return GS_OK;
}

static int infer_gpt2(const st_file *st, const st_config *c, const gs_load_hints *hints,
                      const char *prefix, gs_model_shape *s, gs_error *err)
{
    char name[128];
    const st_tensor *wte, *wpe, *fc;
    int rc;
    snprintf(name, sizeof name, "%swte.weight", prefix);
    if ((rc = need(st, name, 2, &wte, err)))
        return rc;
    snprintf(name, sizeof name, "%swpe.weight", prefix);
    if ((rc = need(st, name, 2, &wpe, err)))
        return rc;
    s->arch = GS_ARCH_GPT2;
    s->vocab = dim_int(wte->shape[0]);
    s->n_embd = dim_int(wte->shape[1]);
    s->n_ctx = dim_int(wpe->shape[0]);
    s->n_layer = count_layers(st, "%sh.%d.ln_1.weight", prefix);
    snprintf(name, sizeof name, "%sh.0.mlp.c_fc.weight", prefix);
    if ((rc = need(st, name, 2, &fc, err)))
        return rc;
    s->n_hidden = dim_int(fc->shape[1]);
    if ((rc = choose_n_head(st, c, hints, s, err)))
        return rc;
    if (s->n_head <= 0) {
        if (s->n_embd % ST_DEFAULT_HEAD_DIM != 0)
            return gs_ld_fail_path(err, st->f->path,
                                   "cannot tell n_head: n_embd %d is not a multiple of GPT-2's head "
                                   "size 64; put config.json beside the file or give n_head",
                                   s->n_embd);
        s->n_head = s->n_embd / ST_DEFAULT_HEAD_DIM;
    }
    s->n_kv_head = s->n_head;
    static const char *const gelu_tanh[] = {"gelu_new", "gelu_pytorch_tanh", NULL};
    static const char *const gpt2[] = {"gpt2", NULL};
    if ((rc = cfg_expect_str(c, c->root, "model_type", gpt2, "but the tensors are GPT-2's", err)) ||
        (rc = cfg_expect_str(c, c->root, "activation_function", gelu_tanh,
                             "only gelu_new (tanh GELU) is supported", err)) ||
        (rc = cfg_expect_bool(c, "scale_attn_weights", 1, "unscaled attention is not supported", err)) ||
        (rc = cfg_expect_bool(c, "scale_attn_by_inverse_layer_idx", 0,
                              "per-layer attention scaling is not supported", err)))
        return rc;
    return GS_OK;
}

static int infer_llama(const st_file *st, const st_config *c, const gs_load_hints *hints,
                       gs_model_shape *s, gs_error *err)
{
    const st_tensor *emb, *gate, *k;
    int rc;
    if ((rc = need(st, "model.embed_tokens.weight", 2, &emb, err)))
        return rc;
    s->arch = GS_ARCH_LLAMA;
    s->vocab = dim_int(emb->shape[0]);
    s->n_embd = dim_int(emb->shape[1]);
    s->n_layer = count_layers(st, "model.layers.%d.input_layernorm.weight", NULL);
    if ((rc = need(st, "model.layers.0.mlp.gate_proj.weight", 2, &gate, err)) ||
        (rc = need(st, "model.layers.0.self_attn.k_proj.weight", 2, &k, err)))
        return rc;
    s->n_hidden = dim_int(gate->shape[0]);
    if ((rc = choose_n_head(st, c, hints, s, err)))
        return rc;
    if (s->n_head <= 0)
        return gs_ld_fail_path(err, st->f->path,
                               "cannot tell n_head for a Llama model: put config.json (with "
                               "num_attention_heads) beside the file or give n_head");
    if (s->n_embd < 1 || s->n_embd % s->n_head != 0)
        return gs_ld_fail_path(err, st->f->path, "n_head %d does not divide n_embd %d", s->n_head,
                               s->n_embd);
    int hd = s->n_embd / s->n_head, head_dim = -1;
    uint64_t kv_rows = k->shape[0];
    if (kv_rows % (uint64_t)hd != 0 || kv_rows == 0)
        return gs_ld_fail(err, st->f->path, k->entry_off,
                          "k_proj has %llu rows, not a multiple of head_dim %d",
                          (unsigned long long)kv_rows, hd);
    s->n_kv_head = dim_int(kv_rows / (uint64_t)hd);
    if ((rc = cfg_agrees(c, K_N_KV, s->n_kv_head, "n_kv_head", err)) ||
        (rc = cfg_int(c, K_HEAD_DIM, &head_dim, err)))
        return rc;
    if (head_dim > 0 && head_dim != hd)
        return gs_ld_fail(err, c->path, cfg_find(c, c->root, K_HEAD_DIM)->offset,
                          "\"head_dim\" %d differs from n_embd / n_head = %d, which is not supported",
                          head_dim, hd);
    if (hints->n_kv_head > 0 && hints->n_kv_head != s->n_kv_head)
        return gs_ld_fail_path(err, st->f->path, "n_kv_head %d was asked for, the tensors have %d",
                               hints->n_kv_head, s->n_kv_head);
    if ((rc = cfg_int(c, K_N_CTX, &s->n_ctx, err)))
        return rc;
    /* A context the user asks for wins over the trained one: shrinking it is
     * how a long-context model fits a small KV cache. */
    if (hints->n_ctx > 0)
        s->n_ctx = hints->n_ctx;
    if (s->n_ctx <= 0)
        s->n_ctx = ST_DEFAULT_N_CTX;

    /* rope_theta: transformers 5 nests it in rope_parameters, 4 had it on top. */
    double theta = 10000.0;
    const gs_json_value *rp = c->root ? gs_json_get(&c->doc, c->root, "rope_parameters") : NULL;
    static const char *const plain[] = {"default", NULL};
    static const char *const llama[] = {"llama", NULL};
    static const char *const silu[] = {"silu", NULL};
    if ((rc = cfg_num(c, c->root, K_THETA, &theta, err)))
        return rc;
    if (rp && rp->type == GS_JSON_OBJECT &&
        ((rc = cfg_num(c, rp, K_THETA, &theta, err)) ||
         (rc = cfg_expect_str(c, rp, "rope_type", plain, "only plain RoPE is supported", err))))
        return rc;
    const gs_json_value *scaling = c->root ? gs_json_get(&c->doc, c->root, "rope_scaling") : NULL;
    if (scaling && scaling->type != GS_JSON_NULL)
        return gs_ld_fail(err, c->path, scaling->offset,
                          "\"rope_scaling\" is set; only plain RoPE is supported");
    if ((rc = cfg_expect_str(c, c->root, "model_type", llama, "but the tensors are Llama's", err)) ||
        (rc = cfg_expect_str(c, c->root, "hidden_act", silu, "only silu (SwiGLU) is supported", err)))
        return rc;
    s->rope_theta = (float)theta;
    if (!(s->rope_theta > 1.0f)) {
        const gs_json_value *v = rp ? cfg_find(c, rp, K_THETA) : NULL;
        if (!v)
            v = cfg_find(c, c->root, K_THETA);
        return gs_ld_fail(err, c->path, v->offset, "rope_theta %g must be > 1", theta);
    }
    return GS_OK;
}

/* Shape, tied classifier and which tensors are expected. */
static int infer_shape(const st_file *st, const st_config *c, const gs_load_hints *hints,
                       gs_model_shape *s, const char **prefix, gs_error *err)
{
    memset(s, 0, sizeof *s);
    int rc;
    if (st_find(st, "model.embed_tokens.weight")) {
        *prefix = "";
        rc = infer_llama(st, c, hints, s, err);
    } else if (st_find(st, "transformer.wte.weight") || st_find(st, "wte.weight")) {
        *prefix = st_find(st, "transformer.wte.weight") ? "transformer." : "";
        rc = infer_gpt2(st, c, hints, *prefix, s, err);
    } else {
        return gs_ld_fail_path(err, st->f->path,
                               "no GPT-2 (transformer.wte.weight) or Llama (model.embed_tokens.weight) "
                               "token embedding among its %d tensors",
                               st->n);
    }
    if (rc)
        return rc;
    if (s->n_layer == 0)
        return gs_ld_fail_path(err, st->f->path, "no layers: tensor \"%s\" is missing",
                               s->arch == GS_ARCH_GPT2 ? "h.0.ln_1.weight"
                                                       : "model.layers.0.input_layernorm.weight");
    double eps = 1e-5;
    if ((rc = cfg_num(c, c->root, K_EPS, &eps, err)) ||
        (rc = cfg_agrees(c, K_N_EMBD, s->n_embd, "n_embd", err)) ||
        (rc = cfg_agrees(c, K_N_LAYER, s->n_layer, "n_layer", err)))
        return rc;
    s->norm_eps = (float)eps;
    if (!(s->norm_eps > 0.0f && s->norm_eps < 1.0f))
        return gs_ld_fail(err, c->path, cfg_find(c, c->root, K_EPS)->offset,
                          "norm_eps %g out of range (0, 1)", eps);

    /* A classifier is tied when the file has none, or (GPT-2 files saved by
     * older transformers) one identical to the embedding. */
    st_tensor *head = st_find(st, "lm_head.weight");
    s->tied_embedding = head == NULL;
    if (head && s->arch == GS_ARCH_GPT2) {
        char name[128];
        snprintf(name, sizeof name, "%swte.weight", *prefix);
        const st_tensor *wte = st_find(st, name);
        int same = 0;
        if (head->rank == wte->rank && memcmp(head->shape, wte->shape, sizeof head->shape) == 0 &&
            head->dtype->supported && wte->dtype->supported) {
            if ((rc = same_values(st, head, wte, &same, err)))
                return rc;
        }
        s->tied_embedding = same;
        if (same)
            head->used = 1; /* read once, as wte */
    }
    return gs_ld_validate_shape(s, st->f->path, 8, "shape from the tensors", err);
}

/* Buffers that GPT-2 files from older transformers carry and we derive ourselves. */
static int ignorable(const st_tensor *t, gs_arch arch)
{
    static const char *const gpt2[] = {".attn.bias", ".attn.masked_bias", NULL};
    static const char *const llama[] = {".rotary_emb.inv_freq", NULL};
    for (const char *const *sfx = arch == GS_ARCH_GPT2 ? gpt2 : llama; *sfx; sfx++) {
        size_t l = strlen(*sfx);
        if (t->name_len >= l && memcmp(t->name + t->name_len - l, *sfx, l) == 0)
            return 1;
    }
    return 0;
}

/* Every binding present with the right shape and a readable dtype, and no tensor left over. */
static int check_bindings(const st_file *st, const st_binding *b, int n, gs_arch arch, gs_error *err)
{
    const char *path = st->f->path;
    for (int i = 0; i < n; i++) {
        st_tensor *t = st_find(st, b[i].name);
        uint64_t want[2];
        int rank = binding_shape(&b[i], want);
        if (!t)
            return gs_ld_fail_path(err, path, "tensor \"%s\" is missing", b[i].name);
        if (t->rank != rank || memcmp(t->shape, want, (size_t)rank * sizeof want[0]) != 0) {
            char got[160], exp[64];
            format_shape(t->shape, t->rank, got, sizeof got);
            format_shape(want, rank, exp, sizeof exp);
            return gs_ld_fail(err, path, t->entry_off, "tensor \"%s\" has shape %s, expected %s",
                              b[i].name, got, exp);
        }
        if (!t->dtype->supported)
            return gs_ld_fail(err, path, t->entry_off,
                              "tensor \"%s\" has dtype %s; supported: F32, F16, BF16", b[i].name,
                              t->dtype->name);
        t->used = 1;
    }
    for (int i = 0; i < st->n; i++)
        if (!st->t[i].used && !ignorable(&st->t[i], arch))
            return gs_ld_fail(err, path, st->t[i].entry_off,
                              "tensor \"%s\" is not part of a %s model as gptscope runs it",
                              show(st->t[i].name, st->t[i].name_len).s,
                              arch == GS_ARCH_GPT2 ? "GPT-2" : "Llama");
    return GS_OK;
}

static int load(gs_model *m, const gs_ld_file *f, const gs_load_hints *hints, gs_error *err)
{
    st_file st;
    st_config c;
    st_binding *b = NULL;
    int nb = 0;
    gs_model_shape s;
    const char *prefix = "";
    memset(&c, 0, sizeof c);
    int rc = st_open(&st, f, err);
    if (!rc)
        rc = config_open(&c, f->path, err);
    if (!rc)
        rc = infer_shape(&st, &c, hints, &s, &prefix, err);
    /* Check every tensor against the shape before allocating for it. */
    if (!rc && build_bindings(&s, NULL, prefix, &b, &nb))
        rc = gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading %s", f->path);
    if (!rc)
        rc = check_bindings(&st, b, nb, s.arch, err);
    free(b);
    b = NULL;
    if (!rc)
        rc = gs_model_alloc(m, &s, err);
    if (!rc && build_bindings(&s, m, prefix, &b, &nb))
        rc = gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading %s", f->path);
    for (int i = 0; i < nb && !rc; i++)
        rc = read_binding(&st, &b[i], st_find(&st, b[i].name), err);
    free(b);
    config_close(&c);
    st_close(&st);
    if (rc)
        gs_model_free(m);
    return rc;
}

/* ---- writing ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *sb, const char *fmt, ...)
{
    if (sb->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(sb->p ? sb->p + sb->n : NULL, sb->p ? sb->cap - sb->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            sb->oom = 1;
            return;
        }
        if (sb->p && sb->n + (size_t)k < sb->cap) {
            sb->n += (size_t)k;
            return;
        }
        size_t cap = sb->cap ? sb->cap : 4096;
        while (cap < sb->n + (size_t)k + 1)
            cap *= 2;
        char *q = realloc(sb->p, cap);
        if (!q) {
            sb->oom = 1;
            return;
        }
        sb->p = q;
        sb->cap = cap;
    }
}

/* Writes the config.json that lets gs_model_load read the file without hints.
 * Floats go out with 17 digits, so they read back as the same float. */
static int write_config(const gs_model_shape *s, const char *path, gs_error *err)
{
    char cpath[ST_PATH_MAX];
    if (!gs_ld_safetensors_config_path(path, cpath, sizeof cpath))
        return gs_ld_fail_path(err, path, "path too long for its config file");
    sbuf sb = {0};
    const char *tied = s->tied_embedding ? "true" : "false";
    if (s->arch == GS_ARCH_GPT2)
        sb_printf(&sb,
                  "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n"
                  "  \"vocab_size\": %d,\n  \"n_embd\": %d,\n  \"n_layer\": %d,\n  \"n_head\": %d,\n"
                  "  \"n_inner\": %d,\n  \"n_positions\": %d,\n  \"layer_norm_epsilon\": %.17g,\n"
                  "  \"activation_function\": \"gelu_new\",\n  \"tie_word_embeddings\": %s\n}\n",
                  s->vocab, s->n_embd, s->n_layer, s->n_head, s->n_hidden, s->n_ctx,
                  (double)s->norm_eps, tied);
    else
        sb_printf(&sb,
                  "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
                  "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
                  "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                  "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
                  "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.17g,\n"
                  "  \"rope_theta\": %.17g,\n  \"hidden_act\": \"silu\",\n"
                  "  \"tie_word_embeddings\": %s\n}\n",
                  s->vocab, s->n_embd, s->n_hidden, s->n_layer, s->n_head, s->n_kv_head,
                  gs_shape_head_dim(s), s->n_ctx, (double)s->norm_eps, (double)s->rope_theta, tied);
    if (sb.oom) {
        free(sb.p);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory writing %s", cpath);
    }
    gs_ld_writer w;
    int rc = gs_ld_writer_open(&w, cpath, err);
    if (!rc) {
        gs_ld_write(&w, sb.p, sb.n);
        rc = gs_ld_writer_close(&w, err);
    }
    free(sb.p);
    return rc;
}

int gs_ld_save_safetensors(const gs_model *m, const char *path, gs_ld_dtype dt, gs_error *err)
{
    const gs_model_shape *s = &m->shape;
    st_binding *b;
    int nb;
    if (build_bindings(s, m, "transformer.", &b, &nb))
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory writing %s", path);
    sbuf sb = {0};
    uint64_t off = 0;
    sb_printf(&sb, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < nb; i++) {
        uint64_t d[2], bytes = gs_ld_dtype_size(dt);
        int rank = binding_shape(&b[i], d);
        for (int k = 0; k < rank; k++)
            bytes *= d[k];
        sb_printf(&sb, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu", b[i].name, gs_ld_dtype_name(dt),
                  (unsigned long long)d[0]);
        if (rank == 2)
            sb_printf(&sb, ",%llu", (unsigned long long)d[1]);
        sb_printf(&sb, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_printf(&sb, "}");
    while (!sb.oom && sb.n % 8 != 0) /* pad with spaces, as the reference writer does */
        sb_printf(&sb, " ");
    float *tmp = malloc(((size_t)s->n_embd > (size_t)s->n_hidden ? (size_t)s->n_embd
                                                                   : (size_t)s->n_hidden) *
                            4 * sizeof *tmp +
                        sizeof *tmp);
    if (sb.oom || !tmp) {
        free(sb.p);
        free(b);
        free(tmp);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory writing %s", path);
    }
    gs_ld_writer w;
    int rc = gs_ld_writer_open(&w, path, err);
    if (!rc) {
        unsigned char len[8];
        for (int k = 0; k < 8; k++)
            len[k] = (unsigned char)((uint64_t)sb.n >> (8 * k));
        gs_ld_write(&w, len, 8);
        gs_ld_write(&w, sb.p, sb.n);
        for (int i = 0; i < nb; i++) {
            const st_binding *x = &b[i];
            size_t rows = (size_t)x->rows, cols = x->cols ? (size_t)x->cols : 1;
            if (x->xf == XF_NONE) {
                gs_ld_write_floats(&w, x->data, rows * cols, dt);
            } else if (x->xf == XF_TRANSPOSE) {
                for (size_t c = 0; c < cols; c++) {
                    for (size_t r = 0; r < rows; r++)
                        tmp[r] = x->data[r * cols + c];
                    gs_ld_write_floats(&w, tmp, rows, dt);
                }
            } else {
                for (size_t j = 0; j < rows; j++)
                    gs_ld_write_floats(&w, x->data + rope_row(j, (size_t)x->head_dim) * cols, cols, dt);
            }
        }
        rc = gs_ld_writer_close(&w, err);
    }
    free(tmp);
    free(sb.p);
    free(b);
    if (!rc)
        rc = write_config(s, path, err);
    return rc;
}

static int save(const gs_model *m, const char *path, gs_error *err)
{
    return gs_ld_save_safetensors(m, path, GS_DT_F32, err);
}

static int probe(const gs_ld_file *f, const unsigned char *head, size_t head_len, char *why,
                 size_t why_cap)
{
    if (head_len < 9 || head[8] != '{')
        return GS_PROBE_NO;
    uint64_t n = gs_ld_get_u64(head);
    if (n < 2 || n > f->size_bytes - 8 || n > ST_MAX_HEADER_BYTES) {
        snprintf(why, why_cap, "offset 0: header length %llu does not fit a %llu-byte file",
                 (unsigned long long)n, (unsigned long long)f->size_bytes);
        return GS_PROBE_NEAR;
    }
    return GS_PROBE_YES;
}

const gs_format_ops gs_format_safetensors = {GS_FORMAT_SAFETENSORS, "safetensors", probe, load, save};
