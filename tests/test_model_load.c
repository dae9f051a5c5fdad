/* test_model_load.c - checkpoint readers and writers, and the JSON reader under them.
 *
 * Checks: element conversions (every fp16 and bf16 pattern), the JSON reader
 * (valid documents and the offset of the first error), stories260K.bin against
 * values read from the raw file here, round trips of small models through
 * every format that can hold them (bit for bit, and rounded as expected for
 * 16-bit files), the Hugging Face fixtures in tests/data (shapes, Conv1D
 * transposes and the rotary row permutation checked against the raw file),
 * many broken files (each must be GS_ERR_INPUT with the path in a one-line
 * message), and a mutation fuzz loop meant to run under AddressSanitizer. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "model_load.h"
#include "model_load_internal.h"
#include "tap.h"

/* ---- small helpers ---- */

static char tmpdir[512];

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A path in the test's directory; it stays valid until the end (freed_paths). */
static char **paths;
static size_t n_paths;
static const char *tmp_path(const char *name)
{
    size_t len = strlen(tmpdir) + strlen(name) + 2;
    char *p = malloc(len), **grown = realloc(paths, (n_paths + 1) * sizeof *paths);
    if (!p || !grown) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    snprintf(p, len, "%s/%s", tmpdir, name);
    paths = grown;
    paths[n_paths++] = p;
    return p;
}

static void free_paths(void)
{
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

static int spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *p = slurp(from, &n);
    int ok = p && spit(to, p, n);
    free(p);
    return ok;
}

static void put_i32(unsigned char *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)u;
    p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16);
    p[3] = (unsigned char)(u >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

static float get_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- models ---- */

static gs_model_shape llama_shape(int tied)
{
    gs_model_shape s;
    memset(&s, 0, sizeof s);
    s.arch = GS_ARCH_LLAMA;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_kv_head = 2;
    s.n_embd = 16;
    s.n_hidden = 40;
    s.n_ctx = 24;
    s.vocab = 37;
    s.tied_embedding = tied;
    s.norm_eps = 1e-5f;
    s.rope_theta = 10000.0f;
    return s;
}

static gs_model_shape gpt2_shape(int tied)
{
    gs_model_shape s;
    memset(&s, 0, sizeof s);
    s.arch = GS_ARCH_GPT2;
    s.n_layer = 2;
    s.n_head = 2;
    s.n_kv_head = 2;
    s.n_embd = 16;
    s.n_hidden = 64;
    s.n_ctx = 20;
    s.vocab = 50; /* llm.c pads it to 128 */
    s.tied_embedding = tied;
    s.norm_eps = 1e-5f;
    return s;
}

/* Deterministic values over many exponents, so a swapped or misplaced
 * element cannot compare equal by accident. */
static void fill_model(gs_model *m, uint64_t seed)
{
    rng_state = seed;
    int n = gs_model_tensors(m, NULL, 0);
    gs_tensor_ref *refs = calloc((size_t)n, sizeof *refs);
    gs_model_tensors(m, refs, n);
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)refs[i].rows * (size_t)refs[i].cols;
        for (size_t k = 0; k < cnt; k++) {
            double x = (double)(rnd() >> 40) / (double)(1 << 24) * 2.0 - 1.0;
            refs[i].data[k] = (float)ldexp(x, (int)(rnd() % 17) - 8);
        }
    }
    free(refs);
}

static int make_model(gs_model *m, const gs_model_shape *s, uint64_t seed)
{
    gs_error e;
    if (gs_model_alloc(m, s, &e) != GS_OK) {
        tap_diag("gs_model_alloc: %s", e.msg);
        return 0;
    }
    fill_model(m, seed);
    return 1;
}

/* Rounds every value as a 16-bit file would (dt F32 leaves them). */
static void round_model(gs_model *m, gs_ld_dtype dt)
{
    if (dt == GS_DT_F32)
        return;
    for (size_t i = 0; i < m->n_floats; i++)
        m->data[i] = dt == GS_DT_F16 ? gs_ld_f16_to_f32(gs_ld_f32_to_f16(m->data[i]))
                                     : gs_ld_bf16_to_f32(gs_ld_f32_to_bf16(m->data[i]));
}

/* Shape and every tensor, bit for bit. */
static int models_equal(const gs_model *a, const gs_model *b, char *why, size_t cap)
{
    const gs_model_shape *x = &a->shape, *y = &b->shape;
    if (x->arch != y->arch || x->n_layer != y->n_layer || x->n_head != y->n_head ||
        x->n_kv_head != y->n_kv_head || x->n_embd != y->n_embd || x->n_hidden != y->n_hidden ||
        x->n_ctx != y->n_ctx || x->vocab != y->vocab || x->tied_embedding != y->tied_embedding ||
        !same_bits(x->norm_eps, y->norm_eps) ||
        (x->arch == GS_ARCH_LLAMA && !same_bits(x->rope_theta, y->rope_theta))) {
        snprintf(why, cap,
                 "shape differs: L %d/%d heads %d/%d kv %d/%d C %d/%d H %d/%d ctx %d/%d V %d/%d "
                 "tied %d/%d eps %g/%g theta %g/%g",
                 x->n_layer, y->n_layer, x->n_head, y->n_head, x->n_kv_head, y->n_kv_head, x->n_embd,
                 y->n_embd, x->n_hidden, y->n_hidden, x->n_ctx, y->n_ctx, x->vocab, y->vocab,
                 x->tied_embedding, y->tied_embedding, x->norm_eps, y->norm_eps, x->rope_theta,
                 y->rope_theta);
        return 0;
    }
    int na = gs_model_tensors(a, NULL, 0), nb = gs_model_tensors(b, NULL, 0);
    if (na != nb) {
        snprintf(why, cap, "%d tensors vs %d", na, nb);
        return 0;
    }
    gs_tensor_ref *ra = calloc((size_t)na, sizeof *ra), *rb = calloc((size_t)nb, sizeof *rb);
    gs_model_tensors(a, ra, na);
    gs_model_tensors(b, rb, nb);
    int ok = 1;
    for (int i = 0; i < na && ok; i++) {
        if (strcmp(ra[i].name, rb[i].name) || ra[i].rows != rb[i].rows || ra[i].cols != rb[i].cols) {
            snprintf(why, cap, "tensor %d: %s [%d][%d] vs %s [%d][%d]", i, ra[i].name, ra[i].rows,
                     ra[i].cols, rb[i].name, rb[i].rows, rb[i].cols);
            ok = 0;
            break;
        }
        size_t cnt = (size_t)ra[i].rows * (size_t)ra[i].cols;
        for (size_t k = 0; k < cnt; k++)
            if (!same_bits(ra[i].data[k], rb[i].data[k])) {
                snprintf(why, cap, "%s[%zu]: %.9g vs %.9g", ra[i].name, k, ra[i].data[k],
                         rb[i].data[k]);
                ok = 0;
                break;
            }
    }
    free(ra);
    free(rb);
    return ok;
}

/* Saves m in fmt (dt for the 16-bit writers), loads it back (auto-detected and
 * named), and compares with m rounded as dt rounds. */
static void round_trip(const gs_model *m, const char *label, const char *file, gs_model_format fmt,
                       gs_ld_dtype dt)
{
    const char *path = tmp_path(file);
    gs_error e = {0};
    int rc;
    if (dt == GS_DT_F32)
        rc = gs_model_save(m, path, fmt, &e);
    else if (fmt == GS_FORMAT_LLMC)
        rc = gs_ld_save_llmc(m, path, dt, &e);
    else
        rc = gs_ld_save_safetensors(m, path, dt, &e);
    tap_ok(rc == GS_OK, "%s: save as %s %s", label, gs_model_format_name(fmt), gs_ld_dtype_name(dt));
    if (rc) {
        tap_diag("%s", e.msg);
        return;
    }
    gs_model_format got = GS_FORMAT_AUTO;
    rc = gs_model_detect_format(path, &got, &e);
    tap_ok(rc == GS_OK && got == fmt, "%s: %s file detected as %s", label, gs_model_format_name(fmt),
           rc ? e.msg : gs_model_format_name(got));

    gs_model want;
    gs_error e2;
    if (gs_model_alloc(&want, &m->shape, &e2) != GS_OK)
        return;
    memcpy(want.data, m->data, m->n_floats * sizeof(float));
    round_model(&want, dt);
    for (int named = 0; named < 2; named++) {
        gs_model back;
        char why[300] = "";
        rc = gs_model_load(&back, path, named ? fmt : GS_FORMAT_AUTO, NULL, &e);
        int same = rc == GS_OK && models_equal(&want, &back, why, sizeof why);
        tap_ok(same, "%s: %s %s loads back identical (%s)", label, gs_model_format_name(fmt),
               gs_ld_dtype_name(dt), named ? "format named" : "format detected");
        if (!same)
            tap_diag("%s", rc ? e.msg : why);
        if (rc == GS_OK)
            gs_model_free(&back);
    }
    gs_model_free(&want);
}

/* A load that must fail as bad input, with the path in one line. */
static void expect_input(const char *path, gs_model_format fmt, const gs_load_hints *hints,
                         const char *label, const char *needle)
{
    gs_model m;
    gs_error e;
    memset(&e, 0, sizeof e);
    int rc = gs_model_load(&m, path, fmt, hints, &e);
    int ok = rc == GS_ERR_INPUT && strstr(e.msg, path) != NULL && strchr(e.msg, '\n') == NULL &&
             m.data == NULL && (!needle || strstr(e.msg, needle) != NULL);
    tap_ok(ok, "%s (%s) is refused as bad input", label, gs_model_format_name(fmt));
    tap_diag("  rc %d: %s", rc, e.msg);
    if (rc == GS_OK)
        gs_model_free(&m);
}

/* ---- element conversions ---- */

static double f16_reference(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexp(1024 + man, exp - 25);
    return sign ? -v : v;
}

static void test_conversions(void)
{
    int bad_widen = 0, bad_f16_back = 0, bad_bf16_back = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = gs_ld_f16_to_f32((uint16_t)h);
        double r = f16_reference((uint16_t)h);
        int nan_h = ((h >> 10) & 0x1f) == 31 && (h & 0x3ff);
        if (nan_h ? !isnan(f) : ((double)f != r || !signbit(f) != !signbit(r)))
            bad_widen++;
        if (!nan_h && gs_ld_f32_to_f16(f) != h)
            bad_f16_back++;
        float g = gs_ld_bf16_to_f32((uint16_t)h);
        if (!isnan(g) && gs_ld_f32_to_bf16(g) != h)
            bad_bf16_back++;
        if (isnan(g) && !isnan(gs_ld_bf16_to_f32(gs_ld_f32_to_bf16(g))))
            bad_bf16_back++;
    }
    tap_ok(bad_widen == 0, "fp16 -> fp32 exact for all 65536 patterns (subnormals, inf, NaN) (%d bad)",
           bad_widen);
    tap_ok(bad_f16_back == 0, "fp32 -> fp16 gives back every non-NaN fp16 (%d bad)", bad_f16_back);
    tap_ok(bad_bf16_back == 0, "bf16 -> fp32 -> bf16 is the identity (%d bad)", bad_bf16_back);

    /* Rounding: nearest, ties to even, overflow to infinity, NaN kept. */
    float one_plus_half_ulp = 1.0f + ldexpf(1.0f, -11); /* tie between 1 and 1+2^-10 */
    float one_plus_3half_ulp = 1.0f + 3 * ldexpf(1.0f, -11);
    int ok = gs_ld_f32_to_f16(1.0f) == 0x3c00 && gs_ld_f32_to_f16(-2.0f) == 0xc000 &&
             gs_ld_f32_to_f16(one_plus_half_ulp) == 0x3c00 &&
             gs_ld_f32_to_f16(one_plus_3half_ulp) == 0x3c02 &&
             gs_ld_f32_to_f16(65504.0f) == 0x7bff && gs_ld_f32_to_f16(65519.0f) == 0x7bff &&
             gs_ld_f32_to_f16(65520.0f) == 0x7c00 && gs_ld_f32_to_f16(1e10f) == 0x7c00 &&
             gs_ld_f32_to_f16(ldexpf(1.0f, -24)) == 0x0001 &&
             gs_ld_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000 &&
             gs_ld_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001 &&
             gs_ld_f32_to_f16(ldexpf(3.0f, -25)) == 0x0002 &&
             gs_ld_f32_to_f16(-0.0f) == 0x8000 && gs_ld_f32_to_f16(INFINITY) == 0x7c00 &&
             isnan(gs_ld_f16_to_f32(gs_ld_f32_to_f16(NAN)));
    tap_ok(ok, "fp32 -> fp16 rounds to nearest even, saturates to inf, keeps NaN");
    ok = gs_ld_f32_to_bf16(1.0f) == 0x3f80 && gs_ld_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80 &&
         gs_ld_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82 &&
         gs_ld_f32_to_bf16(3.4028235e38f) == 0x7f80 && isnan(gs_ld_bf16_to_f32(gs_ld_f32_to_bf16(NAN)));
    tap_ok(ok, "fp32 -> bf16 rounds to nearest even, overflows to inf, keeps NaN");
#ifdef __FLT16_MANT_DIG__
    int bad = 0;
    rng_state = 99;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)rnd();
        float f;
        memcpy(&f, &u, 4);
        _Float16 r = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &r, 2);
        if (!isnan(f) && gs_ld_f32_to_f16(f) != rb)
            bad++;
    }
    tap_ok(bad == 0, "fp32 -> fp16 matches the compiler's _Float16 on 200000 random floats (%d bad)", bad);
#endif
}

/* ---- JSON ---- */

static void json_expect_error(const char *text, size_t want_off, const char *needle, int depth)
{
    gs_json_doc d;
    int rc = gs_json_parse(&d, text, strlen(text), depth);
    int ok = rc == GS_ERR_INPUT && d.error_offset == want_off && strstr(d.error, needle) != NULL;
    tap_ok(ok, "json: error at offset %zu in %.40s", want_off, text);
    if (!ok)
        tap_diag("rc %d offset %zu: %s", rc, d.error_offset, d.error);
    gs_json_free(&d);
}

static void test_json(void)
{
    const char *doc = " {\"a\": [1, -0, 2.5e3, 123456789012345678, -9223372036854775808, true, false, null],"
                      " \"s\": \"x\\n\\\"\\\\\\/\\u00e9\\ud83d\\ude00\\u0000y\", \"o\": {\"k\": {}}, \"e\": [] } ";
    gs_json_doc d;
    int rc = gs_json_parse(&d, doc, strlen(doc), 4);
    const gs_json_value *root = gs_json_root(&d);
    const gs_json_value *a = gs_json_get(&d, root, "a"), *s = gs_json_get(&d, root, "s");
    const gs_json_value *v = gs_json_child(&d, a);
    int ok = rc == GS_OK && root->type == GS_JSON_OBJECT && root->len == 4 && root->offset == 1 && a &&
             a->len == 8 && v->is_integer && v->integer == 1;
    v = gs_json_next(&d, v);
    ok = ok && v->is_integer && v->integer == 0 && signbit(v->number);
    v = gs_json_next(&d, v);
    ok = ok && !v->is_integer && v->number == 2500.0;
    v = gs_json_next(&d, v);
    ok = ok && v->is_integer && v->integer == 123456789012345678ll;
    v = gs_json_next(&d, v);
    ok = ok && v->is_integer && v->integer == INT64_MIN;
    v = gs_json_next(&d, v);
    ok = ok && v->type == GS_JSON_BOOL && v->boolean == 1;
    v = gs_json_next(&d, v);
    ok = ok && v->type == GS_JSON_BOOL && v->boolean == 0;
    v = gs_json_next(&d, v);
    ok = ok && v->type == GS_JSON_NULL && gs_json_next(&d, v) == NULL;
    static const char want_s[] = "x\n\"\\/\xc3\xa9\xf0\x9f\x98\x80\0y";
    ok = ok && s && s->type == GS_JSON_STRING && s->len == sizeof want_s - 1 &&
         memcmp(s->str, want_s, sizeof want_s - 1) == 0;
    const gs_json_value *o = gs_json_get(&d, root, "o");
    ok = ok && o && gs_json_get(&d, o, "k") && gs_json_get(&d, o, "k")->len == 0 &&
         gs_json_get(&d, root, "missing") == NULL && gs_json_get(&d, root, "e")->type == GS_JSON_ARRAY;
    tap_ok(ok, "json: a document with every value type and escape parses as written");
    gs_json_free(&d);

    json_expect_error("{\"a\":1,}", 7, "string key", 4);
    json_expect_error("[1 2]", 3, "','", 4);
    json_expect_error("[\"ab\\qc\"]", 4, "invalid escape", 4);
    json_expect_error("[01]", 2, "leading zero", 4);
    json_expect_error("{\"a\" 1}", 5, "':'", 4);
    json_expect_error("{\"a\":\"b", 7, "end of text", 4);
    json_expect_error("[[[[[1]]]]]", 4, "nesting", 4);
    json_expect_error("[\"a\x01\"]", 3, "control character", 4);
    json_expect_error("[\"\xff\"]", 2, "UTF-8", 4);
    json_expect_error("[\"\xc0\x80\"]", 2, "UTF-8", 4);
    json_expect_error("[\"\\ud800x\"]", 2, "surrogate", 4);
    json_expect_error("[\"\\udc00\"]", 2, "surrogate", 4);
    json_expect_error("[\"\\u12g4\"]", 6, "hex", 4);
    json_expect_error("{} x", 3, "after the JSON value", 4);
    json_expect_error("", 0, "end of text", 4);
    json_expect_error("[tru]", 1, "a value", 4);
    json_expect_error("[1.]", 3, "decimal point", 4);
    json_expect_error("[1e+]", 4, "exponent", 4);
    json_expect_error("[-]", 2, "digit", 4);
    json_expect_error("[1e999]", 1, "out of range", 4);
    json_expect_error("[+1]", 1, "a value", 4);

    /* Deep nesting must be refused without deep recursion. */
    size_t deep = 100000;
    char *big = malloc(2 * deep + 1);
    memset(big, '[', deep);
    memset(big + deep, ']', deep);
    big[2 * deep] = '\0';
    rc = gs_json_parse(&d, big, 2 * deep, 64);
    tap_ok(rc == GS_ERR_INPUT && d.error_offset == 64, "json: 100000 nested arrays stop at depth 64");
    gs_json_free(&d);
    free(big);

    /* Mutations of a valid document never crash and always say parsed or not. */
    const char *base = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                       "\"data_offsets\":[0,24]},\"s\":\"\\u00e9\\n\"}";
    size_t bl = strlen(base);
    char *buf = malloc(bl + 8);
    int bad = 0;
    rng_state = 7;
    for (int i = 0; i < 3000; i++) {
        memcpy(buf, base, bl);
        size_t len = bl;
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) {
            static const char special[] = "{}[]\":,\\u0e-+.tfn \x01\xff\xc3";
            buf[rnd() % len] = rnd() % 2 ? (char)rnd() : special[rnd() % (sizeof special - 1)];
        }
        if (rnd() % 3 == 0)
            len = rnd() % (len + 1);
        rc = gs_json_parse(&d, buf, len, 8);
        if (rc != GS_OK && (rc != GS_ERR_INPUT || d.error_offset > len || !d.error[0]))
            bad++;
        gs_json_free(&d);
    }
    free(buf);
    tap_ok(bad == 0, "json: 3000 mutated documents parse or fail with an offset inside the text");
}

/* ---- stories260K.bin ---- */

static void test_stories(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/stories260K.bin", tap_models_dir());
    if (access(path, R_OK) != 0) {
        tap_skip("stories260K.bin not found in the models directory");
        return;
    }
    gs_model_format fmt;
    gs_error e;
    int rc = gs_model_detect_format(path, &fmt, &e);
    tap_ok(rc == GS_OK && fmt == GS_FORMAT_LLAMA2C, "stories260K.bin is detected as llama2c");
    gs_model m;
    rc = gs_model_load(&m, path, GS_FORMAT_AUTO, NULL, &e);
    tap_ok(rc == GS_OK, "stories260K.bin loads");
    if (rc) {
        tap_diag("%s", e.msg);
        return;
    }
    const gs_model_shape *s = &m.shape;
    tap_ok(s->arch == GS_ARCH_LLAMA && s->n_embd == 64 && s->n_hidden == 172 && s->n_layer == 5 &&
               s->n_head == 8 && s->n_kv_head == 4 && s->vocab == 512 && s->n_ctx == 512 &&
               s->tied_embedding && m.lm_head == m.wte && s->norm_eps == 1e-5f &&
               s->rope_theta == 10000.0f,
           "stories260K.bin shape: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, "
           "seq_len 512, tied");

    /* Spot checks against the raw file, offsets computed from the README. */
    size_t n;
    unsigned char *raw = slurp(path, &n);
    const size_t C = 64, H = 172, L = 5, V = 512, KV = 32, T = 512, hs = 8;
    size_t wte = 0, rms_att = wte + V * C, wq = rms_att + L * C, wk = wq + L * C * C,
           wv = wk + L * KV * C, wo = wv + L * KV * C, rms_ffn = wo + L * C * C,
           w1 = rms_ffn + L * C, w2 = w1 + L * H * C, w3 = w2 + L * C * H, rms_final = w3 + L * H * C,
           end = rms_final + C + 2 * T * hs / 2;
    tap_ok(raw && n == 1056540 && n == 28 + 4 * end, "stories260K.bin is %zu bytes, as the README's layout adds up",
           n);
#define AT(idx) get_f32(raw + 28 + 4 * (idx))
    int ok = raw != NULL;
    ok = ok && same_bits(m.wte[5 * C + 3], AT(wte + 5 * C + 3));
    ok = ok && same_bits(m.wte[511 * C + 63], AT(wte + 511 * C + 63));
    ok = ok && same_bits(m.layers[3].ln1_w[17], AT(rms_att + 3 * C + 17));
    ok = ok && same_bits(m.layers[2].wqkv[7 * C + 9], AT(wq + 2 * C * C + 7 * C + 9));
    ok = ok && same_bits(m.layers[1].wqkv[(C + 3) * C + 2], AT(wk + 1 * KV * C + 3 * C + 2));
    ok = ok && same_bits(m.layers[4].wqkv[(C + KV + 31) * C + 63], AT(wv + 4 * KV * C + 31 * C + 63));
    ok = ok && same_bits(m.layers[0].wo[10 * C + 11], AT(wo + 0 * C * C + 10 * C + 11));
    ok = ok && same_bits(m.layers[2].ln2_w[0], AT(rms_ffn + 2 * C));
    ok = ok && same_bits(m.layers[4].w_up[171 * C + 5], AT(w1 + 4 * H * C + 171 * C + 5));
    ok = ok && same_bits(m.layers[1].w_down[6 * H + 170], AT(w2 + 1 * C * H + 6 * H + 170));
    ok = ok && same_bits(m.layers[3].w_gate[100 * C + 40], AT(w3 + 3 * H * C + 100 * C + 40));
    ok = ok && same_bits(m.lnf_w[63], AT(rms_final + 63));
    /* The legacy table holds cos(pos * 10000^(-2i/hs)): pos 3, i 1. */
    ok = ok && fabsf(AT(rms_final + C + 3 * hs / 2 + 1) - cosf(3.0f * powf(10000.0f, -2.0f / 8))) < 1e-6f;
#undef AT
    tap_ok(ok, "stories260K.bin: 12 weights match the raw file at offsets computed from the README");
    free(raw);

    /* Write it back: the same bytes, legacy tables included. */
    const char *out = tmp_path("stories_copy.bin");
    rc = gs_model_save(&m, out, GS_FORMAT_LLAMA2C, &e);
    size_t n2;
    unsigned char *a = slurp(path, &n), *b = rc ? NULL : slurp(out, &n2);
    size_t diff_tables = 0, diff_other = 0;
    for (size_t i = 0; a && b && n == n2 && i < n; i++) {
        if (a[i] == b[i])
            continue;
        if (i >= 28 + 4 * (rms_final + C) && i < 28 + 4 * end)
            diff_tables++;
        else
            diff_other++;
    }
    tap_ok(a && b && n == n2 && diff_other == 0,
           "stories260K.bin saved again as llama2c is byte-identical outside the RoPE tables");
    /* The tables are recomputed in double precision; PyTorch's fp32 differs in the last bits. */
    tap_diag("RoPE table bytes that differ from the original file: %zu of %zu", diff_tables,
             (size_t)(4 * 2 * T * hs / 2));
    free(a);
    free(b);
    gs_model_free(&m);
}

/* ---- round trips ---- */

static void test_round_trips(void)
{
    gs_model m;
    gs_error e;
    gs_model_shape s;

    s = llama_shape(1);
    if (make_model(&m, &s, 1)) {
        round_trip(&m, "llama tied", "llama_tied.bin", GS_FORMAT_LLAMA2C, GS_DT_F32);
        round_trip(&m, "llama tied", "llama_tied.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F32);
        round_trip(&m, "llama tied", "llama_tied_f16.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F16);
        round_trip(&m, "llama tied", "llama_tied_bf16.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_BF16);
        int rc = gs_model_save(&m, tmp_path("x.bin"), GS_FORMAT_LLMC, &e);
        tap_ok(rc == GS_ERR_INPUT, "a Llama model cannot be saved as llmc: %s", e.msg);
        rc = gs_model_save(&m, tmp_path("x.bin"), GS_FORMAT_AUTO, &e);
        tap_ok(rc == GS_ERR_INPUT, "saving needs a named format: %s", e.msg);
        gs_model_free(&m);
    }
    s = llama_shape(0);
    if (make_model(&m, &s, 2)) {
        round_trip(&m, "llama untied", "llama_untied.bin", GS_FORMAT_LLAMA2C, GS_DT_F32);
        round_trip(&m, "llama untied", "llama_untied.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F32);
        size_t n;
        unsigned char *raw = slurp(tmp_path("llama_untied.bin"), &n);
        tap_ok(raw && gs_ld_get_i32(raw + 20) == -37, "an untied classifier is written as vocab_size -37");
        free(raw);
        gs_model_free(&m);
    }
    /* Multi-query attention (one kv head), odd sizes, non-default eps and theta. */
    s = llama_shape(1);
    s.n_head = 2;
    s.n_kv_head = 1;
    s.n_embd = 12;
    s.n_hidden = 7;
    s.norm_eps = 1e-6f;
    s.rope_theta = 500000.0f;
    if (make_model(&m, &s, 3)) {
        round_trip(&m, "llama mqa eps 1e-6 theta 5e5", "llama_mqa.safetensors", GS_FORMAT_SAFETENSORS,
                   GS_DT_F32);
        int rc = gs_model_save(&m, tmp_path("x.bin"), GS_FORMAT_LLAMA2C, &e);
        tap_ok(rc == GS_ERR_INPUT, "llama2c refuses a model whose eps/theta it cannot carry: %s", e.msg);
        gs_model_free(&m);
    }
    s = gpt2_shape(1);
    if (make_model(&m, &s, 4)) {
        round_trip(&m, "gpt2 tied", "gpt2.bin", GS_FORMAT_LLMC, GS_DT_F32);
        round_trip(&m, "gpt2 tied", "gpt2_bf16.bin", GS_FORMAT_LLMC, GS_DT_BF16);
        round_trip(&m, "gpt2 tied", "gpt2.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F32);
        round_trip(&m, "gpt2 tied", "gpt2_f16.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F16);
        size_t n;
        unsigned char *raw = slurp(tmp_path("gpt2.bin"), &n);
        int ok = raw && gs_ld_get_i32(raw) == 20240326 && gs_ld_get_i32(raw + 4) == 3 &&
                 gs_ld_get_i32(raw + 28) == 128;
        for (size_t i = 1024 + 4 * 50 * 16; ok && i < 1024 + 4 * 128 * 16; i++)
            ok = raw[i] == 0;
        tap_ok(ok, "llmc writes magic, version 3, Vp 128 and zero padding rows");
        free(raw);
        raw = slurp(tmp_path("gpt2_bf16.bin"), &n);
        tap_ok(raw && gs_ld_get_i32(raw + 4) == 5, "llmc bf16 files are version 5");
        free(raw);
        int rc = gs_model_save(&m, tmp_path("x.bin"), GS_FORMAT_LLAMA2C, &e);
        tap_ok(rc == GS_ERR_INPUT, "a GPT-2 model cannot be saved as llama2c: %s", e.msg);
        gs_model_free(&m);
    }
    s = gpt2_shape(0);
    if (make_model(&m, &s, 5)) {
        round_trip(&m, "gpt2 untied", "gpt2_untied.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F32);
        int rc = gs_model_save(&m, tmp_path("x.bin"), GS_FORMAT_LLMC, &e);
        tap_ok(rc == GS_ERR_INPUT, "llmc refuses an untied GPT-2: %s", e.msg);
        gs_model_free(&m);
    }

    /* Without the config beside it: hints, or a clear error. */
    s = llama_shape(1);
    if (make_model(&m, &s, 6)) {
        const char *p = tmp_path("noconf.safetensors");
        char conf[1024];
        gs_ld_safetensors_config_path(p, conf, sizeof conf);
        gs_model_save(&m, p, GS_FORMAT_SAFETENSORS, &e);
        tap_ok(strstr(conf, "noconf.config.json") != NULL && access(conf, R_OK) == 0,
               "the safetensors writer puts noconf.config.json beside the file");
        remove(conf);
        expect_input(p, GS_FORMAT_AUTO, NULL, "Llama safetensors without config or hints", "n_head");
        gs_load_hints h = {4, 0, 24};
        gs_model back;
        char why[300] = "";
        int rc = gs_model_load(&back, p, GS_FORMAT_AUTO, &h, &e);
        tap_ok(rc == GS_OK && models_equal(&m, &back, why, sizeof why),
               "Llama safetensors without config loads with hints n_head 4, n_ctx 24");
        if (rc == GS_OK)
            gs_model_free(&back);
        gs_load_hints bad = {4, 1, 24};
        expect_input(p, GS_FORMAT_AUTO, &bad, "hint n_kv_head 1 against tensors with 2", "n_kv_head");
        /* A plain config.json in the directory is found too. */
        char dir_conf[1024];
        snprintf(dir_conf, sizeof dir_conf, "%s/config.json", tmpdir);
        FILE *f = fopen(dir_conf, "w");
        if (f) {
            fputs("{\"num_attention_heads\": 4, \"max_position_embeddings\": 24}", f);
            fclose(f);
        }
        rc = gs_model_load(&back, p, GS_FORMAT_AUTO, NULL, &e);
        tap_ok(rc == GS_OK && models_equal(&m, &back, why, sizeof why),
               "Llama safetensors reads n_head from config.json in its directory");
        if (rc == GS_OK)
            gs_model_free(&back);
        remove(dir_conf);
        gs_model_free(&m);
    }
    s = gpt2_shape(1);
    s.n_embd = 128;
    s.n_hidden = 512;
    s.n_head = s.n_kv_head = 2; /* head size 64: the default when nothing says */
    if (make_model(&m, &s, 7)) {
        const char *p = tmp_path("gpt2_noconf.safetensors");
        char conf[1024];
        gs_ld_safetensors_config_path(p, conf, sizeof conf);
        gs_model_save(&m, p, GS_FORMAT_SAFETENSORS, &e);
        remove(conf);
        gs_model back;
        char why[300] = "";
        int rc = gs_model_load(&back, p, GS_FORMAT_AUTO, NULL, &e);
        tap_ok(rc == GS_OK && models_equal(&m, &back, why, sizeof why),
               "GPT-2 safetensors without config defaults to head size 64");
        if (rc == GS_OK)
            gs_model_free(&back);
        gs_model_free(&m);
    }
}

/* ---- Hugging Face fixtures ---- */

/* The raw fp32 data of one tensor of a safetensors file, found with the JSON reader. */
static float *raw_tensor(const unsigned char *file, size_t n, const char *name)
{
    if (n < 8)
        return NULL;
    uint64_t hl = gs_ld_get_u64(file);
    gs_json_doc d;
    float *out = NULL;
    if (gs_json_parse(&d, (const char *)file + 8, (size_t)hl, 8) == GS_OK) {
        const gs_json_value *t = gs_json_get(&d, gs_json_root(&d), name);
        const gs_json_value *of = gs_json_get(&d, t, "data_offsets");
        const gs_json_value *b = gs_json_child(&d, of), *en = gs_json_next(&d, b);
        if (b && en) {
            size_t cnt = (size_t)(en->integer - b->integer) / 4;
            out = malloc(cnt * sizeof *out);
            for (size_t i = 0; i < cnt; i++)
                out[i] = get_f32(file + 8 + hl + (size_t)b->integer + 4 * i);
        }
    }
    gs_json_free(&d);
    return out;
}

static void test_fixtures(void)
{
    const char *dir = getenv("GS_TEST_DATA");
    if (!dir)
        dir = "tests/data";
    char gp[1024], lp[1024];
    snprintf(gp, sizeof gp, "%s/gpt2_tiny.safetensors", dir);
    snprintf(lp, sizeof lp, "%s/llama_tiny.safetensors", dir);
    gs_model m;
    gs_error e;

    if (access(gp, R_OK) != 0) {
        tap_skip("tests/data/gpt2_tiny.safetensors not found");
    } else {
        int rc = gs_model_load(&m, gp, GS_FORMAT_AUTO, NULL, &e);
        tap_ok(rc == GS_OK, "gpt2_tiny.safetensors loads");
        if (rc) {
            tap_diag("%s", e.msg);
        } else {
            const gs_model_shape *s = &m.shape;
            tap_ok(s->arch == GS_ARCH_GPT2 && s->vocab == 256 && s->n_embd == 64 && s->n_layer == 2 &&
                       s->n_head == 4 && s->n_kv_head == 4 && s->n_hidden == 256 && s->n_ctx == 64 &&
                       s->tied_embedding && s->norm_eps == 1e-5f,
                   "gpt2_tiny shape: vocab 256, n_embd 64, 2 layers, 4 heads, hidden 256, ctx 64, tied");
            size_t n;
            unsigned char *raw = slurp(gp, &n);
            float *attn = raw_tensor(raw, n, "transformer.h.1.attn.c_attn.weight");
            float *fc = raw_tensor(raw, n, "transformer.h.0.mlp.c_fc.weight");
            float *wte = raw_tensor(raw, n, "transformer.wte.weight");
            int ok = attn && fc && wte;
            /* Conv1D [in][out] element (i, o) is our [out][in] element (o, i). */
            for (int i = 0; ok && i < 64; i += 7)
                for (int o = 0; o < 192; o += 5)
                    ok = ok && same_bits(attn[i * 192 + o], m.layers[1].wqkv[o * 64 + i]);
            for (int i = 0; ok && i < 64; i += 9)
                for (int o = 0; o < 256; o += 11)
                    ok = ok && same_bits(fc[i * 256 + o], m.layers[0].w_up[o * 64 + i]);
            ok = ok && same_bits(wte[255 * 64 + 63], m.wte[255 * 64 + 63]);
            tap_ok(ok, "gpt2_tiny: Conv1D weights arrive transposed to [out][in]");
            free(attn);
            free(fc);
            free(wte);
            free(raw);
            round_trip(&m, "gpt2_tiny", "gpt2_tiny_copy.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F32);
            round_trip(&m, "gpt2_tiny", "gpt2_tiny_copy.bin", GS_FORMAT_LLMC, GS_DT_F32);
            gs_model_free(&m);
        }
    }

    if (access(lp, R_OK) != 0) {
        tap_skip("tests/data/llama_tiny.safetensors not found");
    } else {
        int rc = gs_model_load(&m, lp, GS_FORMAT_AUTO, NULL, &e);
        tap_ok(rc == GS_OK, "llama_tiny.safetensors loads");
        if (rc) {
            tap_diag("%s", e.msg);
        } else {
            const gs_model_shape *s = &m.shape;
            tap_ok(s->arch == GS_ARCH_LLAMA && s->vocab == 256 && s->n_embd == 64 && s->n_layer == 2 &&
                       s->n_head == 8 && s->n_kv_head == 4 && s->n_hidden == 172 && s->n_ctx == 64 &&
                       !s->tied_embedding && s->norm_eps == 1e-5f && s->rope_theta == 10000.0f,
                   "llama_tiny shape: vocab 256, n_embd 64, 2 layers, 8 heads, 4 kv heads, hidden 172, "
                   "ctx 64, untied, theta 10000 (from rope_parameters)");
            size_t n;
            unsigned char *raw = slurp(lp, &n);
            float *q = raw_tensor(raw, n, "model.layers.1.self_attn.q_proj.weight");
            float *k = raw_tensor(raw, n, "model.layers.0.self_attn.k_proj.weight");
            float *g = raw_tensor(raw, n, "model.layers.1.mlp.gate_proj.weight");
            float *u = raw_tensor(raw, n, "model.layers.1.mlp.up_proj.weight");
            int ok = q && k && g && u;
            /* head_dim 8: HF row j of a head is our row 2j (j < 4) or 2(j-4)+1. */
            for (int h = 0; ok && h < 8; h++)
                for (int j = 0; j < 8; j++) {
                    int ours = h * 8 + (j < 4 ? 2 * j : 2 * (j - 4) + 1);
                    for (int c = 0; c < 64; c++)
                        ok = ok && same_bits(q[(h * 8 + j) * 64 + c], m.layers[1].wqkv[ours * 64 + c]);
                }
            for (int h = 0; ok && h < 4; h++)
                for (int j = 0; j < 8; j++) {
                    int ours = h * 8 + (j < 4 ? 2 * j : 2 * (j - 4) + 1);
                    for (int c = 0; c < 64; c++)
                        ok = ok && same_bits(k[(h * 8 + j) * 64 + c],
                                             m.layers[0].wqkv[(64 + ours) * 64 + c]);
                }
            tap_ok(ok, "llama_tiny: q_proj and k_proj rows permuted from rotate_half to adjacent pairs");
            ok = g && u && same_bits(g[171 * 64 + 3], m.layers[1].w_up[171 * 64 + 3]) &&
                 same_bits(u[171 * 64 + 3], m.layers[1].w_gate[171 * 64 + 3]);
            tap_ok(ok, "llama_tiny: gate_proj is w_up (silu input), up_proj is w_gate");
            free(q);
            free(k);
            free(g);
            free(u);
            free(raw);
            round_trip(&m, "llama_tiny", "llama_tiny_copy.safetensors", GS_FORMAT_SAFETENSORS, GS_DT_F32);
            round_trip(&m, "llama_tiny", "llama_tiny_copy.bin", GS_FORMAT_LLAMA2C, GS_DT_F32);
            gs_model_free(&m);
            gs_model small;
            gs_load_hints h = {0, 0, 32};
            gs_error e2 = {0};
            int rc2 = gs_model_load(&small, lp, GS_FORMAT_AUTO, &h, &e2);
            tap_ok(rc2 == GS_OK && small.shape.n_ctx == 32,
                   "llama_tiny: an n_ctx hint (32) wins over config.json's max_position_embeddings (64) %s", e2.msg);
            if (rc2 == GS_OK)
                gs_model_free(&small);
        }
    }
}

/* ---- bad inputs ---- */

/* Rewrites a safetensors file with its header edited: the first occurrence
 * of from becomes to, and the length prefix follows. */
static int st_edit(const char *src, const char *dst, const char *from, const char *to)
{
    size_t n;
    unsigned char *f = slurp(src, &n);
    if (!f)
        return 0;
    uint64_t hl = n >= 8 ? gs_ld_get_u64(f) : 0;
    if (n < 8 || hl > n - 8) {
        free(f);
        return 0;
    }
    char *hdr = malloc((size_t)hl + 1);
    memcpy(hdr, f + 8, (size_t)hl);
    hdr[hl] = '\0';
    char *at = strstr(hdr, from);
    int ok = at != NULL;
    if (ok) {
        size_t fl = strlen(from), tl = strlen(to), nl = (size_t)hl - fl + tl;
        size_t data = n - 8 - (size_t)hl;
        unsigned char *g = malloc(8 + nl + data);
        put_u64(g, nl);
        memcpy(g + 8, hdr, (size_t)(at - hdr));
        memcpy(g + 8 + (at - hdr), to, tl);
        memcpy(g + 8 + (at - hdr) + tl, at + fl, (size_t)hl - (size_t)(at - hdr) - fl);
        memcpy(g + 8 + nl, f + 8 + hl, data);
        ok = spit(dst, g, 8 + nl + data);
        free(g);
    } else {
        tap_diag("st_edit: \"%s\" not in the header", from);
    }
    free(hdr);
    free(f);
    return ok;
}

static void write_truncated(const char *src, const char *dst, size_t len)
{
    size_t n;
    unsigned char *p = slurp(src, &n);
    spit(dst, p, len < n ? len : n);
    free(p);
}

static void test_bad_inputs(void)
{
    gs_model m;
    gs_error e;
    gs_model_shape s;
    const gs_model_format all[] = {GS_FORMAT_AUTO, GS_FORMAT_LLAMA2C, GS_FORMAT_LLMC,
                                   GS_FORMAT_SAFETENSORS};
    char label[200];

    /* Valid sources to break. */
    const char *l2c = tmp_path("src_llama.bin"), *llmc = tmp_path("src_gpt2.bin");
    const char *stl = tmp_path("src_llama.safetensors"), *stg = tmp_path("src_gpt2.safetensors");
    s = llama_shape(1);
    if (make_model(&m, &s, 11)) {
        gs_model_save(&m, l2c, GS_FORMAT_LLAMA2C, &e);
        gs_model_save(&m, stl, GS_FORMAT_SAFETENSORS, &e);
        gs_model_free(&m);
    }
    s = gpt2_shape(1);
    if (make_model(&m, &s, 12)) {
        gs_model_save(&m, llmc, GS_FORMAT_LLMC, &e);
        gs_model_save(&m, stg, GS_FORMAT_SAFETENSORS, &e);
        gs_model_free(&m);
    }

    const char *missing = tmp_path("no_such_model.bin");
    for (int i = 0; i < 4; i++)
        expect_input(missing, all[i], NULL, "missing file", "No such file or directory");
    gs_model_format fmt;
    tap_ok(gs_model_detect_format(missing, &fmt, &e) == GS_ERR_INPUT && strstr(e.msg, missing),
           "detecting a missing file is bad input");
    expect_input(tmpdir, GS_FORMAT_AUTO, NULL, "a directory", "directory");

    const char *empty = tmp_path("empty.bin");
    spit(empty, "", 0);
    for (int i = 0; i < 4; i++)
        expect_input(empty, all[i], NULL, "empty file", NULL);

    /* Truncations: inside each header, at its end, in the weights, one byte short. */
    struct {
        const char *src;
        gs_model_format fmt;
        size_t cuts[8];
    } tr[] = {
        {l2c, GS_FORMAT_LLAMA2C, {1, 4, 27, 28, 29, 1000, 5000, 0}},
        {llmc, GS_FORMAT_LLMC, {3, 4, 8, 100, 1023, 1024, 9000, 0}},
        {stl, GS_FORMAT_SAFETENSORS, {7, 8, 9, 100, 500, 2000, 5000, 0}},
        {stg, GS_FORMAT_SAFETENSORS, {7, 8, 9, 100, 500, 2000, 5000, 0}},
    };
    const char *cut_st = tmp_path("cut.safetensors"), *cut_bin = tmp_path("cut.bin");
    for (size_t t = 0; t < sizeof tr / sizeof tr[0]; t++) {
        size_t n;
        unsigned char *p = slurp(tr[t].src, &n);
        free(p);
        tr[t].cuts[7] = n - 1;
        if (tr[t].fmt == GS_FORMAT_SAFETENSORS)
            copy_file(tmp_path(tr[t].src == stl ? "src_llama.config.json" : "src_gpt2.config.json"),
                      tmp_path("cut.config.json"));
        const char *cut = tr[t].fmt == GS_FORMAT_SAFETENSORS ? cut_st : cut_bin;
        for (int c = 0; c < 8; c++) {
            write_truncated(tr[t].src, cut, tr[t].cuts[c]);
            snprintf(label, sizeof label, "%s cut to %zu of %zu bytes",
                     gs_model_format_name(tr[t].fmt), tr[t].cuts[c], n);
            expect_input(cut, tr[t].fmt, NULL, label, NULL);
            if (c == 0 || c == 5 || c == 7)
                expect_input(cut, GS_FORMAT_AUTO, NULL, label, NULL);
        }
    }
    /* One byte too long. */
    const char *longer = tmp_path("longer.bin");
    for (int t = 0; t < 2; t++) {
        size_t n;
        unsigned char *p = slurp(t ? llmc : l2c, &n);
        p = realloc(p, n + 1);
        p[n] = 0;
        spit(longer, p, n + 1);
        free(p);
        expect_input(longer, t ? GS_FORMAT_LLMC : GS_FORMAT_LLAMA2C, NULL, "one byte too long", "needs");
        expect_input(longer, GS_FORMAT_AUTO, NULL, "one byte too long", "needs");
    }
    /* A tied llama2.c file with a classifier appended gets a hint. */
    {
        size_t n;
        unsigned char *p = slurp(l2c, &n);
        size_t extra = 37 * 16 * 4;
        p = realloc(p, n + extra);
        memset(p + n, 0, extra);
        spit(longer, p, n + extra);
        free(p);
        expect_input(longer, GS_FORMAT_LLAMA2C, NULL, "llama2c with a classifier but positive vocab",
                     "negative vocab_size");
    }

    /* llm.c header fields. */
    const char *hdr = tmp_path("hdr.bin");
    struct {
        int idx;
        int32_t val;
        const char *what, *needle;
    } lh[] = {
        {0, 20240327, "llm.c state-file magic", "state file"},
        {0, 1234, "bad llm.c magic", "magic"},
        {1, 4, "llm.c version 4", "version"},
        {1, 1, "llm.c version 1", "version"},
        {2, 0, "llm.c maxT 0", "n_ctx"},
        {3, 1, "llm.c vocab 1", "vocab"},
        {3, INT32_MAX, "llm.c vocab INT32_MAX", "vocab"},
        {4, -1, "llm.c n_layer -1", "n_layer"},
        {4, 100000000, "llm.c n_layer 1e8", "n_layer"},
        {5, 3, "llm.c 3 heads for C 16", "n_head"},
        {6, 0, "llm.c C 0", "n_embd"},
        {6, INT32_MIN, "llm.c C INT32_MIN", "n_embd"},
        {6, 65536, "llm.c C 65536 in a small file", "needs"},
        {7, 49, "llm.c Vp below V", "padded vocab"},
        {7, INT32_MAX, "llm.c Vp INT32_MAX", "padded vocab"},
    };
    for (size_t i = 0; i < sizeof lh / sizeof lh[0]; i++) {
        size_t n;
        unsigned char *p = slurp(llmc, &n);
        put_i32(p + 4 * lh[i].idx, lh[i].val);
        spit(hdr, p, n);
        free(p);
        expect_input(hdr, GS_FORMAT_LLMC, NULL, lh[i].what, lh[i].needle);
    }

    /* llama2.c header fields. */
    struct {
        int idx;
        int32_t val;
        const char *what, *needle;
    } h2[] = {
        {3, 3, "llama2c n_heads 3 not dividing dim 16", "n_head"},
        {3, 32, "llama2c n_heads 32 above dim 16", "n_head"},
        {4, 3, "llama2c n_kv_heads 3 not dividing n_heads 4", "n_kv_head"},
        {0, 0, "llama2c dim 0", "n_embd"},
        {0, -16, "llama2c dim -16", "n_embd"},
        {0, INT32_MAX, "llama2c dim INT32_MAX", "n_embd"},
        {1, -1, "llama2c hidden_dim -1", "n_hidden"},
        {1, 262144, "llama2c hidden_dim 262144 in a small file", "needs"},
        {2, 0, "llama2c n_layers 0", "n_layer"},
        {2, 512, "llama2c n_layers 512 in a small file", "needs"},
        {5, INT32_MIN, "llama2c vocab_size INT32_MIN", "vocab"},
        {5, 1, "llama2c vocab_size 1", "vocab"},
        {5, -1048576, "llama2c vocab -2^20 in a small file", "needs"},
        {6, 0, "llama2c seq_len 0", "n_ctx"},
        {6, 131072, "llama2c seq_len 131072 in a small file", "needs"},
    };
    for (size_t i = 0; i < sizeof h2 / sizeof h2[0]; i++) {
        size_t n;
        unsigned char *p = slurp(l2c, &n);
        put_i32(p + 4 * h2[i].idx, h2[i].val);
        spit(hdr, p, n);
        free(p);
        expect_input(hdr, GS_FORMAT_LLAMA2C, NULL, h2[i].what, h2[i].needle);
    }
    /* A 7B-sized header on 100 bytes: refused on size, nothing allocated. */
    {
        unsigned char p[128] = {0};
        int32_t big[7] = {4096, 11008, 32, 32, 32, 32000, 2048};
        for (int i = 0; i < 7; i++)
            put_i32(p + 4 * i, big[i]);
        spit(hdr, p, sizeof p);
        expect_input(hdr, GS_FORMAT_LLAMA2C, NULL, "a 7B llama2c header on a 128-byte file", "needs");
        expect_input(hdr, GS_FORMAT_AUTO, NULL, "a 7B llama2c header on a 128-byte file", "as llama2c");
    }
    /* Random bytes are no known format. */
    {
        unsigned char p[4096];
        rng_state = 77;
        for (size_t i = 0; i < sizeof p; i++)
            p[i] = (unsigned char)rnd();
        spit(hdr, p, sizeof p);
        expect_input(hdr, GS_FORMAT_AUTO, NULL, "4096 random bytes", "unknown model format");
    }

    /* safetensors header length. */
    const char *bad = tmp_path("bad.safetensors");
    copy_file(tmp_path("src_llama.config.json"), tmp_path("bad.config.json"));
    {
        size_t n;
        unsigned char *p = slurp(stl, &n);
        uint64_t lens[] = {n - 7, n, UINT64_MAX, (uint64_t)1 << 63, 0, 1, 101ull << 20};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            unsigned char *q = malloc(n);
            memcpy(q, p, n);
            put_u64(q, lens[i]);
            spit(bad, q, n);
            free(q);
            snprintf(label, sizeof label, "safetensors header length %llu in a %zu-byte file",
                     (unsigned long long)lens[i], n);
            expect_input(bad, GS_FORMAT_SAFETENSORS, NULL, label, "header length");
            expect_input(bad, GS_FORMAT_AUTO, NULL, label, NULL);
        }
        free(p);
    }
    /* safetensors header edits. */
    struct {
        const char *src, *from, *to, *what, *needle;
    } ed[] = {
        {stl, "\"dtype\":\"F32\"", "\"dtype\":\"I32\"", "a weight of dtype I32", "I32"},
        {stl, "\"dtype\":\"F32\"", "\"dtype\":\"F64\"", "dtype F64 with an F32-sized span", "needs"},
        {stl, "\"dtype\":\"F32\"", "\"dtype\":\"Q4\"", "an unknown dtype", "unknown dtype"},
        {stl, "\"dtype\":\"F32\"", "\"dtype\":32", "a numeric dtype", "dtype"},
        {stl, "\"shape\":[37,16]", "\"shape\":[38,16]", "a shape that disagrees with its offsets", "needs"},
        {stl, "\"shape\":[37,16]", "\"shape\":[37,-16]", "a negative dimension", "non-negative"},
        {stl, "\"shape\":[37,16]", "\"shape\":[37,16.0]", "a fractional dimension", "non-negative"},
        {stl, "\"shape\":[37,16]", "\"shape\":[4294967296,4294967296,4294967296]", "a shape that overflows",
         "overflows"},
        {stl, "\"shape\":[37,16]", "\"shape\":[2147483648,2147483648,2]", "a byte size that overflows",
         "too large"},
        {stl, "\"shape\":[37,16]", "\"shape\":[1,1,1,1,1,1,1,1,37,16]", "rank 10", "rank"},
        {stl, "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[16]",
         "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2,8]", "a tensor with the wrong rank", "expected [16]"},
        {stl, "\"model.layers.0.self_attn.o_proj.weight\":{\"dtype\":\"F32\",\"shape\":[16,16]",
         "\"model.layers.0.self_attn.o_proj.weight\":{\"dtype\":\"F32\",\"shape\":[8,32]",
         "a tensor with the wrong shape", "expected [16, 16]"},
        {stg, "c_attn.weight\":{\"dtype\":\"F32\",\"shape\":[16,48]",
         "c_attn.weight\":{\"dtype\":\"F32\",\"shape\":[48,16]", "c_attn stored [out][in]", "expected [16, 48]"},
        {stl, "\"data_offsets\":[0,2368]", "\"data_offsets\":[0,99999999]", "offsets beyond the file",
         "past the end"},
        {stl, "\"data_offsets\":[0,2368]", "\"data_offsets\":[2368,0]", "offsets that end before they begin",
         "before"},
        {stl, "\"data_offsets\":[0,2368]", "\"data_offsets\":[0]", "one offset", "data_offsets"},
        {stl, "\"data_offsets\":[0,2368]", "\"data_offsets\":[0,18446744073709551616]",
         "an offset past 2^64", "data_offsets"},
        {stl, "\"model.norm.weight\"", "\"model.norm.weighx\"", "a missing tensor", "model.norm.weight"},
        {stl, "\"model.norm.weight\"", "\"model.embed_tokens.weight\"", "a duplicate tensor", "twice"},
        {stl, "\"model.layers.1.input_layernorm.weight\"", "\"model.layers.1.input_layernorm.weighx\"",
         "tensors of a layer that is not there", "not part of"},
        {stl, "\"model.embed_tokens.weight\"", "\"model.embed_tokens\\q.weight\"", "a bad escape",
         "invalid escape"},
        {stl, "\"model.embed_tokens.weight\"", "\"model.embed_tokens\\u00\"", "a short \\u escape", "hex"},
        {stl, "{\"format\":\"pt\"}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
         "deep nesting", "nesting"},
        {stl, "{\"format\":\"pt\"}", "{\"format\":1}", "a metadata value that is not a string", "metadata"},
        {stl, "{\"__metadata__\"", "[{\"__metadata__\"", "a header that is not an object", NULL},
        {stl, "{\"__metadata__\":", "{\"x\":1,\"__metadata__\":", "an entry that is not an object", "entry"},
        {stl, "\"model.embed_tokens.weight\"", "\"other.weight\"", "no known embedding", "token embedding"},
        {stl, "\"model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[8,16]",
         "\"model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,64]",
         "k_proj rows not a multiple of head_dim", "multiple of head_dim"},
    };
    for (size_t i = 0; i < sizeof ed / sizeof ed[0]; i++) {
        if (!st_edit(ed[i].src, bad, ed[i].from, ed[i].to)) {
            tap_ok(0, "edit for: %s", ed[i].what);
            continue;
        }
        copy_file(tmp_path(ed[i].src == stl ? "src_llama.config.json" : "src_gpt2.config.json"),
                  tmp_path("bad.config.json"));
        if (strcmp(ed[i].needle ? ed[i].needle : "", "not part of") == 0) {
            /* Without num_hidden_layers, which would object first. */
            const char *c = "{\"num_attention_heads\": 4}";
            spit(tmp_path("bad.config.json"), c, strlen(c));
        }
        expect_input(bad, GS_FORMAT_SAFETENSORS, NULL, ed[i].what, ed[i].needle);
    }
    /* A header that is valid JSON but not an object. */
    {
        unsigned char p[16];
        put_u64(p, 8);
        memcpy(p + 8, "[]      ", 8);
        spit(bad, p, sizeof p);
        expect_input(bad, GS_FORMAT_SAFETENSORS, NULL, "a header that is an array", "JSON object");
        expect_input(bad, GS_FORMAT_AUTO, NULL, "a header that is an array", "unknown model format");
    }
    /* Header JSON cut short (the length prefix still consistent). */
    {
        size_t n;
        unsigned char *p = slurp(stl, &n);
        uint64_t hl = gs_ld_get_u64(p);
        put_u64(p, hl - 40);
        memmove(p + 8 + hl - 40, p + 8 + hl, n - 8 - hl);
        spit(bad, p, n - 40);
        free(p);
        expect_input(bad, GS_FORMAT_SAFETENSORS, NULL, "a truncated JSON header", "header JSON");
    }
    /* The config beside the file. */
    struct {
        const char *text, *what, *needle;
    } cf[] = {
        {"{\"num_attention_heads\": 4,", "a truncated config", "end of text"},
        {"[4]", "a config that is not an object", "object"},
        {"{\"num_attention_heads\": \"4\"}", "a string head count", "positive integer"},
        {"{\"num_attention_heads\": 3}", "3 heads for n_embd 16", "n_head"},
        {"{\"num_attention_heads\": 4, \"num_key_value_heads\": 4}", "kv heads against the tensors", "num_key_value_heads"},
        {"{\"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"llama3\"}}", "rope scaling", "rope_scaling"},
        {"{\"num_attention_heads\": 4, \"rope_parameters\": {\"rope_type\": \"yarn\"}}", "yarn rope", "rope_type"},
        {"{\"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}", "a gelu Llama", "hidden_act"},
        {"{\"num_attention_heads\": 4, \"model_type\": \"mistral\"}", "another model type", "model_type"},
        {"{\"num_attention_heads\": 4, \"hidden_size\": 32}", "hidden_size against the tensors", "hidden_size"},
        {"{\"num_attention_heads\": 4, \"head_dim\": 8}", "a head_dim that is not C/n_head", "head_dim"},
        {"{\"num_attention_heads\": 4, \"rms_norm_eps\": \"x\"}", "a string eps", "number"},
        {"{\"num_attention_heads\": 4, \"rope_theta\": 1e300}", "a theta beyond float", "out of range"},
        {"{\"num_attention_heads\": 4, \"rms_norm_eps\": -1}", "a negative eps", "norm_eps"},
    };
    char conf[1024];
    gs_ld_safetensors_config_path(bad, conf, sizeof conf);
    for (size_t i = 0; i < sizeof cf / sizeof cf[0]; i++) {
        copy_file(stl, bad);
        spit(conf, cf[i].text, strlen(cf[i].text));
        gs_model m2;
        memset(&e, 0, sizeof e);
        int rc = gs_model_load(&m2, bad, GS_FORMAT_AUTO, NULL, &e);
        tap_ok(rc == GS_ERR_INPUT && strstr(e.msg, conf) && strstr(e.msg, cf[i].needle) &&
                   m2.data == NULL,
               "config: %s is refused, naming the config file", cf[i].what);
        tap_diag("  rc %d: %s", rc, e.msg);
        if (rc == GS_OK)
            gs_model_free(&m2);
    }
    copy_file(tmp_path("src_gpt2.config.json"), conf);
    copy_file(stg, bad);
    {
        const char *gc[][2] = {
            {"{\"n_head\": 2, \"activation_function\": \"relu\"}", "activation_function"},
            {"{\"n_head\": 2, \"scale_attn_by_inverse_layer_idx\": true}", "scale_attn_by_inverse_layer_idx"},
            {"{\"n_head\": 2, \"n_layer\": 3}", "n_layer"},
        };
        for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++) {
            spit(conf, gc[i][0], strlen(gc[i][0]));
            gs_model m2;
            int rc = gs_model_load(&m2, bad, GS_FORMAT_AUTO, NULL, &e);
            tap_ok(rc == GS_ERR_INPUT && strstr(e.msg, gc[i][1]), "GPT-2 config: %s is refused", gc[i][1]);
            tap_diag("  rc %d: %s", rc, e.msg);
            if (rc == GS_OK)
                gs_model_free(&m2);
        }
    }
    /* A GPT-2 file with lm_head.weight equal to wte reads as tied; a different one as untied. */
    s = gpt2_shape(0);
    if (make_model(&m, &s, 13)) {
        memcpy(m.lm_head, m.wte, (size_t)s.vocab * (size_t)s.n_embd * sizeof(float));
        const char *p = tmp_path("gpt2_head.safetensors");
        gs_model_save(&m, p, GS_FORMAT_SAFETENSORS, &e);
        gs_model back;
        int rc = gs_model_load(&back, p, GS_FORMAT_AUTO, NULL, &e);
        tap_ok(rc == GS_OK && back.shape.tied_embedding && back.lm_head == back.wte,
               "GPT-2 lm_head.weight identical to wte reads as tied");
        if (rc == GS_OK)
            gs_model_free(&back);
        gs_model_free(&m);
    }
}

/* ---- fuzz ---- */

/* Variants per format; raise it (-DGS_FUZZ_VARIANTS=100000) for a long run. */
#ifndef GS_FUZZ_VARIANTS
#define GS_FUZZ_VARIANTS 400
#endif

static void fuzz(const char *src, const char *conf_src, gs_model_format fmt, size_t hot, int variants,
                 uint64_t seed)
{
    const char *path = tmp_path(fmt == GS_FORMAT_SAFETENSORS ? "fuzz.safetensors" : "fuzz.bin");
    if (conf_src)
        copy_file(conf_src, tmp_path("fuzz.config.json"));
    size_t n;
    unsigned char *orig = slurp(src, &n);
    unsigned char *buf = malloc(n + 16);
    int bad = 0, loaded = 0, refused = 0;
    rng_state = seed;
    for (int v = 0; v < variants && orig; v++) {
        memcpy(buf, orig, n);
        size_t len = n;
        int mode = (int)(rnd() % 4); /* 0 cut, 1 flip, 2 flip and grow, 3 flip and cut */
        if (mode == 0 || mode == 3)
            len = (size_t)(rnd() % n);
        if (mode == 2) {
            size_t extra = 1 + rnd() % 16;
            for (size_t k = 0; k < extra; k++)
                buf[len + k] = (unsigned char)rnd();
            len += extra;
        }
        if (mode != 0 && len > 0) {
            int flips = 1 + (int)(rnd() % 8);
            for (int k = 0; k < flips; k++) {
                size_t range = rnd() % 2 && hot < len ? hot : len;
                size_t at = (size_t)(rnd() % range);
                static const unsigned char special[] = {0x00, 0xff, 0x7f, 0x80, '{', '}', '[', ']',
                                                        '"', ',', ':', '0', '9', '-', '\\', 'e'};
                buf[at] = rnd() % 2 ? (unsigned char)rnd() : special[rnd() % sizeof special];
            }
        }
        spit(path, buf, len);
        for (int named = 0; named < 2; named++) {
            gs_model m;
            gs_error e;
            memset(&e, 0, sizeof e);
            int rc = gs_model_load(&m, path, named ? fmt : GS_FORMAT_AUTO, NULL, &e);
            if (rc == GS_OK) {
                loaded++;
                gs_model_free(&m);
            } else if (rc == GS_ERR_INPUT && strstr(e.msg, "fuzz") && !strchr(e.msg, '\n')) {
                refused++;
            } else {
                bad++;
                if (bad < 5)
                    tap_diag("variant %d: rc %d: %s", v, rc, e.msg);
            }
        }
    }
    tap_ok(orig && bad == 0, "fuzz %s: %d mutated files, %d loads and %d refusals as bad input, 0 else",
           gs_model_format_name(fmt), variants, loaded, refused);
    free(buf);
    free(orig);
}

static void test_fuzz(void)
{
    size_t n;
    unsigned char *p = slurp(tmp_path("src_llama.safetensors"), &n);
    size_t st_hot = p ? 8 + (size_t)gs_ld_get_u64(p) : 64;
    free(p);
    fuzz(tmp_path("src_llama.bin"), NULL, GS_FORMAT_LLAMA2C, 28, GS_FUZZ_VARIANTS, 21);
    fuzz(tmp_path("src_gpt2.bin"), NULL, GS_FORMAT_LLMC, 32, GS_FUZZ_VARIANTS, 22);
    fuzz(tmp_path("src_llama.safetensors"), tmp_path("src_llama.config.json"), GS_FORMAT_SAFETENSORS,
         st_hot, GS_FUZZ_VARIANTS, 23);
    p = slurp(tmp_path("src_gpt2.safetensors"), &n);
    st_hot = p ? 8 + (size_t)gs_ld_get_u64(p) : 64;
    free(p);
    fuzz(tmp_path("src_gpt2.safetensors"), tmp_path("src_gpt2.config.json"), GS_FORMAT_SAFETENSORS,
         st_hot, GS_FUZZ_VARIANTS, 24);
    /* And the config beside a valid file. */
    copy_file(tmp_path("src_llama.safetensors"), tmp_path("fuzzc.safetensors"));
    unsigned char *conf = slurp(tmp_path("src_llama.config.json"), &n);
    int bad = 0;
    rng_state = 25;
    for (int v = 0; v < 300 && conf; v++) {
        unsigned char *q = malloc(n);
        memcpy(q, conf, n);
        for (int k = 0; k < 1 + (int)(rnd() % 4); k++)
            q[rnd() % n] = rnd() % 2 ? (unsigned char)rnd() : (unsigned char)"{}[]\":,0-e"[rnd() % 10];
        spit(tmp_path("fuzzc.config.json"), q, rnd() % 4 ? n : (size_t)(rnd() % n));
        free(q);
        gs_model m;
        gs_error e;
        int rc = gs_model_load(&m, tmp_path("fuzzc.safetensors"), GS_FORMAT_AUTO, NULL, &e);
        if (rc == GS_OK)
            gs_model_free(&m);
        else if (rc != GS_ERR_INPUT || !strstr(e.msg, "fuzzc"))
            bad++;
    }
    free(conf);
    tap_ok(bad == 0, "fuzz config.json: 300 mutated configs load or are refused as bad input");
}

/* ---- names ---- */

static void test_names(void)
{
    tap_ok(gs_model_format_parse("auto") == GS_FORMAT_AUTO &&
               gs_model_format_parse("llama2c") == GS_FORMAT_LLAMA2C &&
               gs_model_format_parse("llmc") == GS_FORMAT_LLMC &&
               gs_model_format_parse("safetensors") == GS_FORMAT_SAFETENSORS &&
               gs_model_format_parse("gguf") == -1 && gs_model_format_parse("") == -1 &&
               gs_model_format_parse(NULL) == -1,
           "format names parse");
    int ok = 1;
    for (int f = GS_FORMAT_AUTO; f <= GS_FORMAT_SAFETENSORS; f++)
        ok = ok && gs_model_format_parse(gs_model_format_name((gs_model_format)f)) == f;
    tap_ok(ok, "format names round-trip through gs_model_format_name");
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        remove(tmp_path(de->d_name));
    }
    closedir(d);
    rmdir(tmpdir);
    free_paths();
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/gs_test_model_load.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! cannot create a temporary directory\n");
        return 1;
    }
    test_names();
    test_conversions();
    test_json();
    test_stories();
    test_round_trips();
    test_fixtures();
    test_bad_inputs();
    test_fuzz();
    remove_tmpdir();
    return tap_done();
}
