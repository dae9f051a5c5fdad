/* variant_quality.c - adapter to the quality module (see variant_quality.h).
 * Today the module is not in the build: nothing is measured. When it lands,
 * ref_create wraps gs_quality_baseline_create (on a backend of its own) and
 * measure wraps gs_quality_measure, copying kl, top1 and perplexity. */
#include "variant_quality.h"

#include <string.h>

int gs_variant_quality_ref_create(gs_variant_quality_ref **out, const gs_config *baseline, gs_error *err)
{
    (void)baseline;
    (void)err;
    *out = NULL;
    return GS_OK;
}

int gs_variant_quality_measure(const gs_variant_quality_ref *ref, gs_session *variant, gs_variant_quality *q,
                               gs_error *err)
{
    (void)ref;
    (void)variant;
    (void)err;
    memset(q, 0, sizeof *q);
    return GS_OK;
}

void gs_variant_quality_ref_destroy(gs_variant_quality_ref *ref) { (void)ref; }

const char *gs_variant_quality_unavailable(void) { return "not measured (no quality module in this build)"; }
