/* variant_quality.h - the live run's one door to quality measurement.
 *
 * A rebuilt variant's KL, top-1 agreement and perplexity against the fp32
 * baseline come from the quality module (quality.h). When the baseline
 * cannot be made, every call answers "not measured" and the cost table says
 * so rather than showing a figure nobody measured. */
#ifndef GS_VARIANT_QUALITY_H
#define GS_VARIANT_QUALITY_H

#include "config.h"
#include "session.h"
#include "status.h"

typedef struct gs_variant_quality {
    int measured;          /* 0: not measured (the fields below mean nothing) */
    double kl;             /* mean KL(baseline || variant) per token, nats */
    double top1;           /* fraction of tokens whose argmax agrees */
    double perplexity;     /* the variant's, on the same tokens */
    int n_tokens;
} gs_variant_quality;

typedef struct gs_variant_quality_ref gs_variant_quality_ref;

/* The reference (baseline) for later measurements; *out NULL and GS_OK when
 * quality cannot be measured in this build. */
int gs_variant_quality_ref_create(gs_variant_quality_ref **out, const gs_config *baseline, gs_error *err);
/* Measures variant against ref; q->measured 0 when it cannot. */
int gs_variant_quality_measure(const gs_variant_quality_ref *ref, gs_session *variant, gs_variant_quality *q,
                               gs_error *err);
void gs_variant_quality_ref_destroy(gs_variant_quality_ref *ref);
/* Why quality is not measured ("not measured: no quality module in this build"). */
const char *gs_variant_quality_unavailable(void);

#endif
