/* commands.h - the subcommands; each returns the process exit status. */
#ifndef GS_COMMANDS_H
#define GS_COMMANDS_H

#include "status.h"

int cmd_live(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_compare(int argc, char **argv);

/* Prints "gptscope: message" to stderr and returns the error's code. */
int gs_report(const gs_error *err);

#endif
