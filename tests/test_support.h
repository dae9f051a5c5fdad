/* test_support.h - helpers shared by the model-level tests (CPU and GPU). */
#ifndef GS_TEST_SUPPORT_H
#define GS_TEST_SUPPORT_H

#include <stddef.h>

#include "backend.h"
#include "model.h"

/* ||a - b|| / ||b|| (plain norm of a - b when b is all zero; infinity on NaN). */
double gs_test_rel_err(const float *a, const float *b, size_t n);

/* Logits at every position of one sequence of n tokens, in one prefill step
 * through gs_forward, with the sequence's KV blocks interleaved with another
 * sequence's so they are not contiguous. logits: [n][vocab]. */
int gs_test_forward_all(gs_backend *be, const gs_model *m, int attn_variant, gs_dtype wdt, const int *ids,
                        int n, float *logits, gs_error *err);
/* The same with a KV cache of kv_dtype elements (GS_KV_*). */
int gs_test_forward_all_kv(gs_backend *be, const gs_model *m, int attn_variant, gs_dtype wdt, int kv_dtype,
                           const int *ids, int n, float *logits, gs_error *err);
/* The same with fusion (gs_forward.fuse) on when fuse is 1. */
int gs_test_forward_all_fuse(gs_backend *be, const gs_model *m, int attn_variant, gs_dtype wdt, int kv_dtype,
                             int fuse, const int *ids, int n, float *logits, gs_error *err);

/* Reads the Hugging Face fixture NAME from $GS_TEST_DATA (tests/data): the
 * model, T token ids and the [T][vocab] reference logits (malloc'ed). */
int gs_test_load_hf_fixture(const char *name, int T, gs_model *m, int *ids, float **logits, gs_error *err);

#endif
