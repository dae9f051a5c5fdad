/* workload_runner.c - the configured workload as engine requests (see the header). */
#include "workload_runner.h"

#include <stdlib.h>
#include <string.h>

static double first_due(const gs_workload_runner *r)
{
    /* With an arrival rate requests trickle in (one now, rate more per step);
     * without one the whole round arrives at once. */
    return r->wl.arrival_rate > 0 ? 1.0 : (double)r->n_req;
}

int gs_workload_runner_init(gs_workload_runner *r, gs_engine *e, const gs_workload *wl, int vocab, uint64_t seed,
                            int repeat, gs_error *err)
{
    memset(r, 0, sizeof *r);
    r->engine = e;
    r->wl = *wl;
    r->vocab = vocab > 0 ? vocab : 1;
    r->repeat = repeat;
    gs_rng_seed(&r->rng, seed);
    r->n_req = wl->requests > 0 ? wl->requests : wl->batch;
    r->prompt = malloc((size_t)(wl->prompt_len > 0 ? wl->prompt_len : 1) * sizeof(int));
    if (!r->prompt)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory");
    r->due = first_due(r);
    r->rounds = 1;
    return GS_OK;
}

int gs_workload_runner_feed(gs_workload_runner *r, int *done, gs_error *err)
{
    *done = 0;
    if (r->submitted >= r->n_req && !gs_engine_busy(r->engine)) {
        if (!r->repeat) {
            *done = 1;
            return GS_OK;
        }
        r->submitted = 0; /* the workload again */
        r->due = first_due(r);
        r->rounds++;
    }
    while (r->submitted < r->n_req && r->submitted < (int)r->due) {
        for (int i = 0; i < r->wl.prompt_len; i++)
            r->prompt[i] = (int)(gs_rng_next(&r->rng) % (uint64_t)r->vocab);
        int id = gs_engine_submit(r->engine, r->prompt, r->wl.prompt_len, r->wl.gen_len, err);
        if (id < 0)
            return -id;
        r->submitted++;
    }
    r->due += r->wl.arrival_rate;
    return GS_OK;
}

void gs_workload_runner_free(gs_workload_runner *r)
{
    free(r->prompt);
    r->prompt = NULL;
}
