/* cmd_later.c - the commands whose machinery lands with later parts (trace
 * files, compare). They already parse their options and answer --help, and
 * say plainly that the feature is not in this build yet. */
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "cli.h"
#include "commands.h"

static int not_yet(const char *name, const char *usage_line, const char *what, unsigned groups, int argc,
                   char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: gptscope %s\n\n%s\n\n", usage_line, what);
            if (groups) {
                printf("options:\n");
                gs_cli_print_options(groups);
            }
            printf("\nstatus: not available in gptscope %s yet.\n", PACKAGE_VERSION);
            return 0;
        }
    }
    fprintf(stderr, "gptscope %s: not available in this version yet (%s)\n", name, what);
    return 1;
}


int cmd_record(int argc, char **argv)
{
    return not_yet("record", "record -o FILE.gst [-c CONFIG] [--steps N | --seconds S]",
                   "records a run headless to a crash-safe trace file", GS_OPTS_COMMON, argc, argv);
}

int cmd_replay(int argc, char **argv)
{
    return not_yet("replay", "replay [--summary] FILE.gst", "opens a recorded trace in the terminal UI", 0,
                   argc, argv);
}

int cmd_export(int argc, char **argv)
{
    return not_yet("export", "export FILE.gst -o OUT [--format chrome|folded|csv]",
                   "writes Chrome-trace JSON for Perfetto, folded stacks or CSV", 0, argc, argv);
}

int cmd_compare(int argc, char **argv)
{
    return not_yet("compare", "compare -c A.yaml -c B.yaml",
                   "measures two configurations side by side in one run", GS_OPTS_COMMON, argc, argv);
}
