/* session.h - turns a configuration into a model, a backend and an engine. */
#ifndef GS_SESSION_H
#define GS_SESSION_H

#include "backend.h"
#include "config.h"
#include "engine.h"
#include "model.h"

/* Builds the fp32 master named by c->model: a preset (synthetic weights from
 * c->seed, shape overrides applied) or a checkpoint file. */
int gs_session_load_model(const gs_config *c, gs_model *m, gs_error *err);

/* The weight format c asks for (optimizations.weights, and group_size for
 * int4), checked against the model's shape: GS_ERR_INPUT naming the key when
 * it cannot be (int4 groups wider than a matrix row). */
int gs_session_weight_dtype(const gs_config *c, const gs_model_shape *shape, gs_dtype *out, gs_error *err);

typedef struct gs_session {
    gs_config cfg;
    gs_model model;       /* what the engine runs: the master with optimizations.kv_heads and
                           * optimizations.sparsity applied (the master itself is not kept) */
    gs_backend *be;
    gs_engine engine;
    int engine_ready;
    int borrowed_be;      /* be belongs to another session (compare: one device, one thread pool) */
    double load_seconds;
} gs_session;

/* Model, backend and engine sized for the configuration's workload. */
int gs_session_open(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_error *err);
void gs_session_close(gs_session *s);
/* As gs_session_open, on another session's backend (not destroyed by close):
 * two configurations compared in one process then share one device and one
 * CPU thread pool instead of competing for the cores. */
int gs_session_open_on(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_backend *be, gs_error *err);

/* Progress of an open, for a UI that builds a variant beside a running one:
 * called at each stage ("loading", "transforming", "quantizing/uploading")
 * with the fraction done so far (0..1). A nonzero return cancels the open
 * (GS_ERR_RUNTIME "cancelled"; nothing is left allocated). */
typedef int (*gs_session_progress_fn)(void *ctx, const char *stage, double frac);
/* gs_session_open_on with progress (fn may be NULL). */
int gs_session_open_progress(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_backend *be,
                             gs_session_progress_fn fn, void *ctx, gs_error *err);

#endif
