/* test_support.c - helpers shared by the model-level tests (CPU and GPU). */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "forward.h"
#include "kv_cache.h"
#include "model_load.h"
#include "ranges.h"

double gs_test_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (num != num)
        return INFINITY; /* a NaN anywhere fails every bound */
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int gs_test_forward_all(gs_backend *be, const gs_model *m, int attn_variant, gs_dtype wdt, const int *ids,
                        int n, float *logits, gs_error *err)
{
    return gs_test_forward_all_kv(be, m, attn_variant, wdt, GS_KV_F32, ids, n, logits, err);
}

int gs_test_forward_all_kv(gs_backend *be, const gs_model *m, int attn_variant, gs_dtype wdt, int kv_dtype,
                           const int *ids, int n, float *logits, gs_error *err)
{
    return gs_test_forward_all_fuse(be, m, attn_variant, wdt, kv_dtype, 0, ids, n, logits, err);
}

int gs_test_forward_all_fuse(gs_backend *be, const gs_model *m, int attn_variant, gs_dtype wdt, int kv_dtype,
                             int fuse, const int *ids, int n, float *logits, gs_error *err)
{
    const int bs = 4;
    int per_seq = (m->shape.n_ctx + bs - 1) / bs;
    gs_kv_cache kv;
    int rc = kv_cache_init(&kv, 2 * per_seq, bs, 2, per_seq, err);
    if (rc)
        return rc;
    gs_ranges ranges;
    gs_ranges_init(&ranges);
    gs_forward f;
    rc = gs_forward_init_kv(&f, be, m, wdt, kv_dtype, &ranges, n, n, kv.n_blocks, bs, err);
    if (rc) {
        kv_cache_destroy(&kv);
        return rc;
    }
    f.attn_variant = attn_variant;
    f.fuse = fuse;
    /* Interleave a second sequence's blocks so ours are not contiguous. */
    int other = kv_cache_seq_open(&kv), seq = kv_cache_seq_open(&kv);
    for (int i = 0; i < n; i++) {
        kv_cache_seq_grow(&kv, other, 1);
        kv_cache_seq_grow(&kv, seq, 1);
    }
    int *pos = malloc((size_t)n * sizeof(int)), *row = malloc((size_t)n * sizeof(int));
    int *slot = malloc((size_t)n * sizeof(int)), *lr = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        row[i] = seq;
        slot[i] = kv_cache_slot(&kv, seq, i);
        lr[i] = i;
    }
    gs_step_batch b = {.n = n, .tokens = ids, .pos = pos, .seq_row = row, .slot = slot, .block_tables = kv.tables,
                       .n_rows = kv.max_seqs, .table_stride = kv.max_blocks_per_seq, .n_logits = n, .logit_rows = lr};
    rc = gs_forward_step(&f, &b, logits, err);
    free(pos);
    free(row);
    free(slot);
    free(lr);
    gs_forward_destroy(&f);
    kv_cache_destroy(&kv);
    return rc;
}

int gs_test_load_hf_fixture(const char *name, int T, gs_model *m, int *ids, float **logits, gs_error *err)
{
    const char *dir = getenv("GS_TEST_DATA") ? getenv("GS_TEST_DATA") : "tests/data";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    int rc = gs_model_load(m, path, GS_FORMAT_AUTO, NULL, err);
    if (rc)
        return rc;
    size_t nl = (size_t)T * (size_t)m->shape.vocab;
    *logits = malloc(nl * sizeof(float));
    snprintf(path, sizeof path, "%s/%s.ids.i32", dir, name);
    FILE *fi = fopen(path, "rb");
    snprintf(path, sizeof path, "%s/%s.logits.f32", dir, name);
    FILE *fl = fopen(path, "rb");
    int ok = *logits && fi && fl && fread(ids, sizeof(int), (size_t)T, fi) == (size_t)T &&
             fread(*logits, sizeof(float), nl, fl) == nl;
    if (fi)
        fclose(fi);
    if (fl)
        fclose(fl);
    if (!ok) {
        free(*logits);
        *logits = NULL;
        gs_model_free(m);
        return gs_error_set(err, GS_ERR_INPUT, "%s: fixture ids or logits missing or short", name);
    }
    return GS_OK;
}
