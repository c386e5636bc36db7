/* tf-cli-private.h: what the commands of transfusion-cli share. */
#pragma once

#include "tf-cli.h"
#include "tf-data.h"

#include <signal.h>

#include "tf-generate.h"

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
/* The same for a command that takes options only: an operand is a usage
 * error. -1 on success, else the exit status. */
int tf_cli_parse_flags (TfCli *cli, const char *line, const char *usage, const char *summary,
                        const GOptionEntry *entries, int argc, char **argv);
/* Prints "LINE: MESSAGE" and where to find the usage; returns the usage
 * exit status. */
int tf_cli_usage_error (TfCli *cli, const char *line, const char *message);
/* The same for an operand the command does not take. */
int tf_cli_unexpected_argument (TfCli *cli, const char *line, const char *operand);

/* The --precision option of the commands that run the model, and what it
 * reads: @text (NULL: fp32) into *@precision. -1 on success, else the usage
 * error's exit status. */
#define TF_CLI_PRECISION_ENTRY(text) \
  { "precision", 0, 0, G_OPTION_ARG_STRING, &(text), \
    N_("Matrix products in fp32, bf16 (fp32 accumulation) or auto: bf16 where the CPU has it natively, else fp32 (auto)"), \
    N_("NAME") }
int tf_cli_precision (TfCli *cli, const char *line, const char *text, TfPrecision *precision);
/* Gives @gen the precision; when not fp32, says on standard error what runs
 * the products ("matrix products: bf16 (emulated)"). */
void tf_cli_set_precision (TfCli *cli, TfGenerator *gen, TfPrecision precision);

/* "transfusion-cli NAME" and its usage line. */
char *tf_cli_command_line (const TfCliCommand *command);
char *tf_cli_command_usage (const TfCliCommand *command);

int tf_cli_train (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
int tf_cli_convert (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
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
/* The generator of --model FILE (@given), or of the bundled model when
 * @given is NULL; prints what is wrong and returns NULL on failure.
 * *@path_out (may be NULL) receives the path used. */
TfGenerator *tf_cli_open_generator (TfCli *cli, const char *given, char **path_out);

/* The model's own image settings (tf_model_file_sampling()) for the options
 * a person did not give. Call _mark after the options are built (their help
 * shows @settings' values) and before parsing; _fill after parsing gives
 * what was not given the program's default, so that the settings can be
 * checked before the model is read, and returns which were not given
 * (TF_CLI_NOT_GIVEN_*; add _SAMPLER when the sampler's option was not
 * given); then, once the model's path is known, _use_model replaces those
 * with the model's own when its file names them. */
typedef struct {
  int       steps;
  double    cfg;
} TfCliImageDefaults;
#define TF_CLI_NOT_GIVEN_STEPS   1u
#define TF_CLI_NOT_GIVEN_CFG     2u
#define TF_CLI_NOT_GIVEN_SAMPLER 4u
void  tf_cli_image_options_mark (TfGenerateSettings *settings, TfCliImageDefaults *defaults);
guint tf_cli_image_options_fill (TfGenerateSettings *settings, const TfCliImageDefaults *defaults);
void  tf_cli_image_options_use_model (const char *model_path, guint not_given,
                                      TfGenerateSettings *settings);

/* Ctrl-C while a command works: sets tf_cli_interrupted and stops @gen
 * (may be NULL) within a step or token; a second Ctrl-C ends the program.
 * Release puts the previous handler back. */
extern volatile gint tf_cli_interrupted;
void tf_cli_catch_interrupt (TfGenerator *gen, struct sigaction *previous);
void tf_cli_release_interrupt (const struct sigaction *previous);

/* tf-cli-eval.c */
/* Prints "transfusion-cli: MESSAGE" (after flushing stdout); returns the
 * failure exit status. */
int tf_cli_fail (TfCli *cli, const GError *error);
int tf_cli_eval (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
int tf_cli_judge_train (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
/* tf-cli-plot.c */
int tf_cli_plot (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
int tf_cli_samples (TfCli *cli, const TfCliCommand *command, int argc, char **argv);
