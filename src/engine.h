/* engine.h - requests, the continuous-batching scheduler, and steps.
 *
 * Each step the scheduler gives every running request its next tokens (one
 * for a decoding request, a chunk of the prompt for one still in prefill),
 * admits waiting requests while batch slots, the token budget and free KV
 * blocks allow, and, when the KV cache cannot hold the running requests' next
 * tokens, preempts the most recently admitted one (its blocks are freed, it
 * goes back to the front of the queue and is recomputed from its tokens when
 * readmitted). Then one forward pass runs the whole mixed batch. */
#ifndef GS_ENGINE_H
#define GS_ENGINE_H

#include <stdint.h>

#include "backend.h"
#include "forward.h"
#include "kv_cache.h"
#include "model.h"
#include "op_cost.h"
#include "ranges.h"
#include "rng.h"
#include "sampler.h"

typedef enum { GS_REQ_WAITING = 0, GS_REQ_RUNNING, GS_REQ_DONE } gs_request_state;

typedef struct gs_request {
    int id;
    int *tokens;          /* prompt then generated ids; capacity n_prompt + n_gen */
    int n_prompt, n_gen, n_generated;
    int n_cached;         /* tokens whose K/V are in the cache (while running) */
    int seq;              /* KV-cache sequence slot while running, else -1 */
    gs_request_state state;
    gs_rng rng;
    int preemptions;
    long admitted_step, first_token_step, done_step;
    uint64_t submit_ns, first_token_ns, done_ns;
} gs_request;

#define GS_ENGINE_MIN_LOGIT_ROWS 32

typedef struct gs_engine_config {
    int max_batch;           /* sequences in flight */
    int max_tokens_per_step; /* token budget of one step (chunked prefill beyond it) */
    int kv_blocks;           /* 0: enough for max_batch full-context sequences */
    int kv_block_size;
    gs_sampler sampler;
    uint64_t seed;
    gs_dtype weight_dtype;   /* precision of the weight matrices on the backend */
    int kv_dtype;            /* KV-cache element type, GS_KV_F32 (0, the default) .. GS_KV_FP8 */
    /* 1: every step reads its logits back into h_logits, for a caller that
     * reads them (a logits file). 0 (default): a greedy sampler gets only the
     * ids, picked where the logits are when the backend can (argmax_rows),
     * and h_logits is then not written. Read each step: may be set after init. */
    int keep_logits;
} gs_engine_config;

typedef struct gs_step_info {
    long index;
    int n_tokens, n_prefill_tokens, n_decode_tokens, n_seqs, n_sampled;
    int preempted;           /* preemptions this step */
    uint64_t ns;             /* wall time of the step */
    gs_step_shape batch;     /* composition for the analytic model: sequences, tokens, attended positions */
} gs_step_info;

typedef struct gs_engine {
    gs_backend *be;
    gs_model_shape shape;
    gs_engine_config cfg;
    gs_ranges ranges;        /* collectors attach sinks here */
    gs_forward fwd;
    gs_kv_cache kv;
    gs_request *reqs;
    int n_reqs, cap_reqs;
    int *running, n_running; /* request indices in admission order */
    int *waiting, n_waiting; /* FIFO; preempted requests re-enter at the front */
    /* host staging for one step */
    int *h_tokens, *h_pos, *h_seq, *h_slot, *h_logit_rows, *h_logit_req;
    int *h_ids;              /* [max_batch] the step's greedy ids, when it read back ids */
    float *h_logits, *h_scratch; /* h_logits: [max_batch][vocab], the step's logits when it read them back */
    long steps;
    gs_step_info last;
    long total_prefill_tokens, total_decode_tokens;
} gs_engine;

void gs_engine_config_defaults(gs_engine_config *c);
int gs_engine_init(gs_engine *e, gs_backend *be, const gs_model *m, const gs_engine_config *cfg,
                   gs_error *err);
void gs_engine_destroy(gs_engine *e);

/* Queues a request; returns its id (>= 0) or -code with err filled
 * (GS_ERR_INPUT for bad ids or a request longer than the context). */
int gs_engine_submit(gs_engine *e, const int *prompt, int n_prompt, int n_gen, gs_error *err);
/* Runs one step. GS_OK with e->last filled (n_tokens 0 when idle). */
int gs_engine_step(gs_engine *e, gs_error *err);
/* Steps until every request is done. */
int gs_engine_run(gs_engine *e, gs_error *err);
int gs_engine_busy(const gs_engine *e);
const gs_request *gs_engine_request(const gs_engine *e, int id);

#endif
