/* cmd_live.c - `gptscope` / `gptscope live`.
 *
 * Until the terminal UI lands this is a short headless demo: it generates
 * from the configured model, printing each step as it runs, then the per-op
 * timing table that the live views will draw. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "op_report.h"
#include "rng.h"
#include "session.h"

int cmd_live(int argc, char **argv)
{
    gs_cli cli;
    gs_error err = {0};
    unsigned groups = GS_OPTS_COMMON | GS_OPTS_WORKLOAD | GS_OPTS_SAMPLING;
    int rc = gs_cli_parse(&cli, "live", groups, argc, argv, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if (cli.help) {
        printf("usage: gptscope [live] [-c CONFIG] [--model M] [--batch B] [-n N]\n\n"
               "Runs the model and shows where the time goes. (This build prints a headless\n"
               "demo: generation step by step, then the per-op timing table.)\n\noptions:\n");
        gs_cli_print_options(groups);
        gs_cli_free(&cli);
        return 0;
    }
    gs_config cfg = cli.cfg;
    if (cli.n_tokens >= 0)
        cfg.workload.gen_len = cli.n_tokens;
    printf("gptscope: loading %s ...\n", cfg.model);
    fflush(stdout);
    gs_session s;
    rc = gs_session_open(&s, &cfg, &cli.sampler, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    const gs_model_shape *sh = &s.model.shape;
    printf("model   %s: %s, %d layers, %d heads (%d KV), width %d, vocab %d, %.1fM params (ready in %.2f s)\n",
           cfg.model, sh->arch == GS_ARCH_GPT2 ? "GPT-2 style" : "Llama style", sh->n_layer, sh->n_head,
           sh->n_kv_head, sh->n_embd, sh->vocab, (double)gs_shape_param_count(sh) / 1e6, s.load_seconds);
    printf("backend %s: %s\n", s.be->ops->name, s.be->device_name);
    printf("KV      %d blocks of %d tokens, %.1f MiB\n\n", s.engine.kv.n_blocks, s.engine.kv.block_size,
           (double)s.engine.fwd.kv_bytes / (1 << 20));
    gs_op_table ops;
    gs_op_table_init(&ops);
    gs_ranges_add_sink(&s.engine.ranges, gs_op_table_sink(&ops));
    const gs_workload *wl = &cfg.workload;
    int *prompt = malloc((size_t)wl->prompt_len * sizeof(int));
    gs_rng rng;
    gs_rng_seed(&rng, cfg.seed);
    prompt[0] = 1;
    for (int i = 1; i < wl->prompt_len; i++)
        prompt[i] = (int)(gs_rng_next(&rng) % (uint64_t)sh->vocab);
    for (int q = 0; rc == GS_OK && q < wl->batch; q++) {
        int id = gs_engine_submit(&s.engine, prompt, wl->prompt_len, wl->gen_len, &err);
        if (id < 0)
            rc = -id;
    }
    free(prompt);
    uint64_t decode_ns = 0;
    long decode_tokens = 0;
    while (rc == GS_OK && gs_engine_busy(&s.engine)) {
        rc = gs_engine_step(&s.engine, &err);
        const gs_step_info *st = &s.engine.last;
        if (rc || st->n_tokens == 0)
            continue;
        gs_kv_stats kvs;
        kv_cache_stats(&s.engine.kv, &kvs);
        const gs_request *r0 = gs_engine_request(&s.engine, 0);
        printf("step %3ld  %-7s %4d tokens %8.2f ms   KV %3d/%d blocks   seq0 -> %d\n", st->index,
               st->n_prefill_tokens ? "prefill" : "decode", st->n_tokens, (double)st->ns * 1e-6,
               kvs.blocks_used, s.engine.kv.n_blocks, r0->tokens[r0->n_prompt + r0->n_generated - 1]);
        if (!st->n_prefill_tokens) {
            decode_ns += st->ns;
            decode_tokens += st->n_decode_tokens;
        }
    }
    if (rc == GS_OK) {
        printf("\ndecode: %.1f tokens/s over %ld tokens\n\n",
               decode_ns ? (double)decode_tokens / ((double)decode_ns * 1e-9) : 0.0, decode_tokens);
        gs_op_report_print(stdout, &ops, s.engine.steps);
        printf("\n(the interactive timeline, flame and memory views arrive with the terminal UI)\n");
    }
    gs_session_close(&s);
    gs_cli_free(&cli);
    return rc ? gs_report(&err) : 0;
}
