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

#endif
