/* main.c - gptscope's entry point: picks the subcommand. */
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "commands.h"
#include "status.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"live", cmd_live, "run the model and show where time goes (default; headless demo until the UI lands)"},
    {"generate", cmd_generate, "generate tokens and print their ids"},
    {"bench", cmd_bench, "run a workload headless and print throughput, latency and memory"},
    {"record", cmd_record, "record a run to a trace file"},
    {"replay", cmd_replay, "open a recorded trace"},
    {"export", cmd_export, "export a trace to Chrome JSON, folded stacks or CSV"},
    {"compare", cmd_compare, "measure two configurations side by side"},
    {"info", cmd_info, "list backends, devices, presets and profiler support"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

int gs_report(const gs_error *err)
{
    /* Command-line errors already name the command ("gptscope generate: ..."). */
    if (strncmp(err->msg, "gptscope", 8) == 0)
        fprintf(stderr, "%s\n", err->msg);
    else
        fprintf(stderr, "gptscope: %s\n", err->msg);
    return err->code ? err->code : 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: gptscope [COMMAND] [OPTIONS]\n\n"
                 "An interactive profiler for transformer inference: it runs a built-in GPT on\n"
                 "the GPU or CPU and shows where the time and the bytes go.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n  gptscope COMMAND --help   options of one command\n"
                 "  gptscope --version        print the version\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("gptscope %s\n", PACKAGE_VERSION);
        return 0;
    }
    /* No command, or options first: the default command, live. */
    if (argc < 2 || argv[1][0] == '-')
        return cmd_live(argc, argv);
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gptscope: unknown command '%s' (see gptscope --help)\n", argv[1]);
    return 2;
}
