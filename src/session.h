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
    gs_model model;
    gs_backend *be;
    gs_engine engine;
    int engine_ready;
    double load_seconds;
} gs_session;

/* Model, backend and engine sized for the configuration's workload. */
int gs_session_open(gs_session *s, const gs_config *c, const gs_sampler *sampler, gs_error *err);
void gs_session_close(gs_session *s);

#endif
