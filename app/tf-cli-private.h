/* tf-cli-private.h: what the commands of transfusion-cli share. */
#pragma once

#include "tf-cli.h"
#include "tf-data.h"

#define PROGRAM "transfusion-cli"

typedef struct {
  FILE *out;
  FILE *err;
} TfCli;

typedef struct _TfCliCommand TfCliCommand;

/* @argv[0] is the command's name. */
typedef int (*TfCliCommandFunc) (TfCli *cli, const TfCliCommand *command,
                                 int argc, char **argv);

struct _TfCliCommand {
  const char       *name;
  const char       *operands;  /* for the usage line; N_(), translated at use */
  const char       *summary;   /* one line; N_(), translated at use */
  TfCliCommandFunc  run;
};

/* Parses @argv (whose [0] names the program or the command) with @entries
 * and --help. @command is what the user typed to get here ("transfusion-cli
 * info"), @usage its usage line. On success *operands holds what is left and
 * the return value is -1; otherwise the return value is the exit status. */
int tf_cli_parse_options (TfCli *cli, const char *command, const char *usage,
                          const char *summary, const GOptionEntry *entries,
                          gboolean stop_at_operand, int argc, char **argv, GStrv *operands);
/* Prints "LINE: MESSAGE" and where to find the usage; returns the usage
 * exit status. */
int tf_cli_usage_error (TfCli *cli, const char *line, const char *message);
/* The same for an operand the command does not take. */
int tf_cli_unexpected_argument (TfCli *cli, const char *line, const char *operand);

/* "transfusion-cli NAME" and its usage line. */
char *tf_cli_command_line (const TfCliCommand *command);
char *tf_cli_command_usage (const TfCliCommand *command);

int tf_cli_train (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
int tf_cli_data (TfCli *cli, const TfCliCommand *command, int argc, char **argv);

/* tf-cli-data-export.c: `data --export DIR`: the first @count examples of
 * each source in @names as DIR/NAME.safetensors (pixels and captions, and
 * their ids when @tokenizer_model names a model); returns the exit status. */
int tf_cli_data_export (TfCli *cli, char **names, TfSplit split, guint64 seed, gint64 count,
                        const char *dir, const char *tokenizer_model);

/* tf-cli-bench.c */
int tf_cli_bench (TfCli *cli, const TfCliCommand *command, int argc, char **argv);

/* tf-cli-generate.c */
int tf_cli_generate (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
int tf_cli_caption (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
int tf_cli_chat (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
