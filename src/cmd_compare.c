/* cmd_compare.c - `gptscope compare`: two configurations measured side by
 * side in one run. Its machinery lands with the compare work; until then it
 * parses its options, answers --help and says plainly that it is not here. */
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


int cmd_compare(int argc, char **argv)
{
    return not_yet("compare", "compare -c A.yaml -c B.yaml",
                   "measures two configurations side by side in one run", GS_OPTS_COMMON, argc, argv);
}
