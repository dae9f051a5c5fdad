/* workload_runner.h - feeds an engine the configured workload, step by step.
 *
 * The workload (batch, prompt and generation lengths, request count, arrival
 * rate) becomes engine requests with random prompt ids from the run's seed.
 * With repeat set, the workload starts again once every request is done, so
 * a loop can run for a number of steps, a time, or until the user quits
 * (live mode). The runner only submits; the caller runs the steps, so it can
 * put a profiler around each one. */
#ifndef GS_WORKLOAD_RUNNER_H
#define GS_WORKLOAD_RUNNER_H

#include "config.h"
#include "engine.h"
#include "rng.h"
#include "status.h"

typedef struct gs_workload_runner {
    gs_engine *engine;
    gs_workload wl;
    int vocab;
    int repeat;
    gs_rng rng;
    int *prompt;      /* [wl.prompt_len] scratch */
    int n_req;        /* requests per round */
    int submitted;    /* this round */
    double due;       /* requests that have arrived by now (arrival_rate per step) */
    long rounds;      /* rounds started */
} gs_workload_runner;

int gs_workload_runner_init(gs_workload_runner *r, gs_engine *e, const gs_workload *wl, int vocab, uint64_t seed,
                            int repeat, gs_error *err);
/* Submits the requests due before the next step. *done is set (and nothing
 * submitted) when the workload is over: every request finished and repeat
 * is off. GS_OK or the engine's error. */
int gs_workload_runner_feed(gs_workload_runner *r, int *done, gs_error *err);
void gs_workload_runner_free(gs_workload_runner *r);

#endif
