/* cmd_generate.c - `gptscope generate`: token ids in, token ids out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "session.h"

int cmd_generate(int argc, char **argv)
{
    gs_cli cli;
    gs_error err = {0};
    unsigned groups = GS_OPTS_COMMON | GS_OPTS_SAMPLING;
    int rc = gs_cli_parse(&cli, "generate", groups, argc, argv, &err);
    if (rc) {
        gs_cli_free(&cli);
        return gs_report(&err);
    }
    if (cli.help) {
        printf("usage: gptscope generate [--model M] [-n N] [--temperature T] [--prompt-ids 1,2,3] [--seed S]\n\n"
               "Prints the N generated token ids (not the prompt) on one line. Without a prompt\n"
               "generation starts from the beginning-of-sequence id 1; temperature 0 is greedy.\n\noptions:\n");
        gs_cli_print_options(groups);
        gs_cli_free(&cli);
        return 0;
    }
    if (cli.n_args > 0) {
        fprintf(stderr, "gptscope generate: unexpected argument '%s'\n", cli.args[0]);
        gs_cli_free(&cli);
        return 2;
    }
    int bos = 1;
    const int *prompt = cli.prompt_ids ? cli.prompt_ids : &bos;
    int n_prompt = cli.prompt_ids ? cli.n_prompt_ids : 1;
    int n_gen = cli.n_tokens >= 0 ? cli.n_tokens : cli.cfg.workload.gen_len;
    gs_config cfg = cli.cfg;
    cfg.workload.batch = 1;
    cfg.workload.prompt_len = n_prompt;
    cfg.workload.gen_len = n_gen;
    gs_session s;
    rc = gs_session_open(&s, &cfg, &cli.sampler, &err);
    if (rc == GS_OK) {
        int id = gs_engine_submit(&s.engine, prompt, n_prompt, n_gen, &err);
        rc = id < 0 ? -id : GS_OK;
        FILE *lf = NULL;
        if (rc == GS_OK && cli.logits_out && !(lf = fopen(cli.logits_out, "wb")))
            rc = gs_error_set(&err, GS_ERR_INPUT, "%s: %s", cli.logits_out, strerror(errno));
        /* The file wants the logits themselves, not just the greedy ids. */
        s.engine.cfg.keep_logits = lf != NULL;
        /* Step by step so each step's logits (one row: one request) can be written. */
        while (rc == GS_OK && gs_engine_busy(&s.engine)) {
            rc = gs_engine_step(&s.engine, &err);
            if (rc == GS_OK && lf && s.engine.last.n_sampled == 1 &&
                fwrite(s.engine.h_logits, sizeof(float), (size_t)s.model.shape.vocab, lf) != (size_t)s.model.shape.vocab)
                rc = gs_error_set(&err, GS_ERR_RUNTIME, "%s: write failed", cli.logits_out);
        }
        if (lf && fclose(lf) != 0 && rc == GS_OK)
            rc = gs_error_set(&err, GS_ERR_RUNTIME, "%s: write failed", cli.logits_out);
        if (rc == GS_OK) {
            const gs_request *r = gs_engine_request(&s.engine, id);
            for (int i = 0; i < r->n_generated; i++)
                printf(i ? " %d" : "%d", r->tokens[r->n_prompt + i]);
            printf("\n");
        }
        gs_session_close(&s);
    }
    gs_cli_free(&cli);
    return rc ? gs_report(&err) : 0;
}
