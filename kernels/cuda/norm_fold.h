/* norm_fold.h - a LayerNorm or RMSNorm folded into the product that reads its
 * output (decode GEMVs): the product takes the raw residual rows and
 * normalizes them as it reads them, so the norm needs no kernel of its own
 * and no pass through memory. Plain C: the backend fills it, the kernels take
 * it by value. */
#ifndef GS_NORM_FOLD_H
#define GS_NORM_FOLD_H

/* kind: GS_NORM_FOLD_NONE (in is used as it is), GS_NORM_FOLD_LAYER
 * (y = (x - mean) / sqrt(var + eps) * w + b) or GS_NORM_FOLD_RMS
 * (y = x / sqrt(mean(x^2) + eps) * w; b unused). w and b hold k fp32 values
 * in device memory. The statistics are those of norm.cu, in its order of
 * operations (norm_stats.cuh), so a folded product equals norm-then-product. */
enum { GS_NORM_FOLD_NONE = 0, GS_NORM_FOLD_LAYER = 1, GS_NORM_FOLD_RMS = 2 };

typedef struct gs_norm_fold {
    int kind;
    const float *w;
    const float *b;
    float eps;
} gs_norm_fold;

#endif
