/* variant_quality.c - adapter from the live run to the quality module: the
 * baseline is made once per run (on a backend of its own, so the running
 * variant's backend is never used from the builder thread), each rebuilt
 * variant is measured on its own session before it is swapped in. */
#include "variant_quality.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "quality.h"

struct gs_variant_quality_ref {
    gs_quality_baseline *base;
};

int gs_variant_quality_ref_create(gs_variant_quality_ref **out, const gs_config *baseline, gs_error *err)
{
    *out = NULL;
    gs_variant_quality_ref *r = calloc(1, sizeof *r);
    if (!r)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory for the quality baseline");
    gs_backend *be = NULL;
    int rc = gs_backend_create(&be, baseline->backend, baseline->threads, err);
    if (rc == GS_OK) {
        rc = gs_quality_baseline_create(&r->base, baseline, be, 0, NULL, err);
        gs_backend_destroy(be);
    }
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return GS_OK;
}

int gs_variant_quality_measure(const gs_variant_quality_ref *ref, gs_session *variant, gs_variant_quality *q,
                               gs_error *err)
{
    memset(q, 0, sizeof *q);
    if (!ref || !ref->base)
        return GS_OK;
    gs_quality m;
    int rc = gs_quality_measure(ref->base, variant, &m, err);
    if (rc)
        return rc;
    q->measured = 1;
    q->kl = m.kl;
    q->top1 = m.top1;
    q->perplexity = m.perplexity;
    q->n_tokens = m.n_tokens;
    return GS_OK;
}

void gs_variant_quality_ref_destroy(gs_variant_quality_ref *ref)
{
    if (!ref)
        return;
    gs_quality_baseline_free(ref->base);
    free(ref);
}

const char *gs_variant_quality_unavailable(void) { return "not measured (the quality baseline could not be made)"; }
