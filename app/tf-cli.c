/* tf-cli.c: `transfusion-cli COMMAND [OPTION…] [ARG…]`.
 *
 * Each command is a function with its own GOptionContext, listed in the
 * table below; --help is handled here rather than by GLib so that the
 * library never exits the process. */
#include "config.h"

#include "tf-cli-private.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <string.h>

#include "tf-model-info.h"
#include "tf-train.h"
#include "transfusion.h"

static int cmd_info (TfCli *cli, const TfCliCommand *command, int argc, char **argv);

/* The commands, in the order --help lists them. train, generate, caption,
 * chat, eval, bench and data join here as they are written. */
static const TfCliCommand commands[] = {
  { "info", N_("MODEL.safetensors…"), N_("Show what a model file holds"), cmd_info },
  { "convert", N_("MODEL.safetensors"), N_("Store a model's weights in another type (F16 halves the file)"), tf_cli_convert },
  { "train", "", N_("Train a model on the bundled data sets or a folder"), tf_cli_train },
  { "generate", "", N_("Draw an image from a prompt"), tf_cli_generate },
  { "caption", "", N_("Describe a picture"), tf_cli_caption },
  { "chat", "", N_("Talk with a model in the terminal"), tf_cli_chat },
  { "data", "", N_("Look at the training data"), tf_cli_data },
  { "eval", "", N_("Measure a model on held-out data"), tf_cli_eval },
  { "judge-train", "", N_("Train the classifier that eval judges images with"), tf_cli_judge_train },
  { "plot", N_("LOG.jsonl"), N_("Draw the loss curves of a training log"), tf_cli_plot },
  { "samples", "", N_("Draw a grid of generated samples per class"), tf_cli_samples },
  { "bench", "", N_("Measure how fast this machine runs the engine"), tf_cli_bench },
};

/* ---- Options ------------------------------------------------------------ */

/* GOptionContext's help starts "Usage:\n  PRGNAME [OPTION…] PARAMETERS";
 * the command's name belongs after the program's, so the line is ours. */
static void
print_help (FILE *to, GOptionContext *context, const char *usage)
{
  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);
  const char *first = strchr (help, '\n');
  const char *rest = first != NULL ? strchr (first + 1, '\n') : NULL;

  if (first == NULL || rest == NULL)
    {
      fputs (help, to);
      return;
    }
  fprintf (to, "%.*s\n  %s%s", (int) (first - help), help, usage, rest);
}

/* Parses @argv (whose [0] names the program or the command) with @entries
 * and --help. @command is what the user typed to get here ("transfusion-cli
 * info"), @usage its usage line. On success *operands holds what is left and
 * the return value is -1; otherwise the return value is the exit status. */
int
tf_cli_parse_options (TfCli *cli, const char *command, const char *usage, const char *summary,
               const GOptionEntry *entries, gboolean stop_at_operand,
               int argc, char **argv, GStrv *operands)
{
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) args = g_new0 (char *, argc + 1);
  gboolean help = FALSE;
  const GOptionEntry help_entries[] = {
    { "help", 'h', G_OPTION_FLAG_NONE, G_OPTION_ARG_NONE, &help,
      N_("Show this help and exit"), NULL },
    G_OPTION_ENTRY_NULL
  };

  for (int i = 0; i < argc; i++)
    args[i] = g_strdup (argv[i]);

  g_option_context_set_help_enabled (context, FALSE);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_strict_posix (context, stop_at_operand);
  g_option_context_set_summary (context, summary);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, help_entries, GETTEXT_PACKAGE);

  if (!g_option_context_parse_strv (context, &args, &error))
    {
      fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
      fprintf (cli->err, _("Run '%s --help' for usage.\n"), command);
      return TF_CLI_EXIT_USAGE;
    }
  if (help)
    {
      print_help (cli->out, context, usage);
      return TF_CLI_EXIT_OK;
    }

  /* Drop args[0]. */
  g_free (args[0]);
  memmove (args, args + 1, g_strv_length (args + 1) * sizeof (char *) + sizeof (char *));
  *operands = g_steal_pointer (&args);
  return -1;
}

int
tf_cli_parse_flags (TfCli *cli, const char *line, const char *usage, const char *summary,
                    const GOptionEntry *entries, int argc, char **argv)
{
  g_auto(GStrv) operands = NULL;
  int status = tf_cli_parse_options (cli, line, usage, summary, entries, FALSE, argc, argv,
                                     &operands);
  if (status >= 0)
    return status;
  if (operands[0] != NULL)
    return tf_cli_unexpected_argument (cli, line, operands[0]);
  return -1;
}

int
tf_cli_usage_error (TfCli *cli, const char *line, const char *message)
{
  fprintf (cli->err, "%s: %s\n", line, message);
  fprintf (cli->err, _("Run '%s --help' for usage.\n"), line);
  return TF_CLI_EXIT_USAGE;
}

int
tf_cli_precision (TfCli *cli, const char *line, const char *text, TfPrecision *precision)
{
  *precision = TF_PRECISION_AUTO;   /* bf16 where the CPU does it natively */
  if (text == NULL || tf_precision_parse (text, precision, NULL))
    return -1;
  g_autofree char *message = g_strdup_printf (_("--precision: '%s' is not fp32, bf16 or auto"),
                                              text);
  return tf_cli_usage_error (cli, line, message);
}

void
tf_cli_set_precision (TfCli *cli, TfGenerator *gen, TfPrecision precision)
{
  tf_generator_set_precision (gen, precision);
  /* said when asked for (auto, the default, is quiet) */
  if (precision != TF_PRECISION_AUTO && tf_gemm_backend_is_bf16 (tf_generator_backend (gen)))
    fprintf (cli->err, _("matrix products: %s\n"),
             tf_gemm_backend_name (tf_generator_backend (gen)));
}

int
tf_cli_unexpected_argument (TfCli *cli, const char *line, const char *operand)
{
  g_autofree char *message = g_strdup_printf (_("unexpected argument '%s'"), operand);
  return tf_cli_usage_error (cli, line, message);
}

/* ---- info --------------------------------------------------------------- */

static void
print_row (FILE *out, int width, const char *key, const char *value)
{
  fprintf (out, "%-*s  %s\n", width, key, value);
}

static void
print_model_info (TfCli *cli, const TfModelInfo *info)
{
  const TfConfig *config = tf_model_config (info->model);
  guint64 n_params = tf_model_n_params (info->model);
  g_autofree char *count = tf_format_count (n_params);
  g_autofree char *params = g_strdup_printf ("%" G_GUINT64_FORMAT " (%s)", n_params, count);
  g_autofree char *size = g_format_size_full (info->file_size, G_FORMAT_SIZE_LONG_FORMAT);
  g_autofree char *tensors = g_strdup_printf ("%d", info->n_tensors);
  g_autofree char *keys = info->metadata_keys[0] != NULL
                          ? g_strjoinv (", ", info->metadata_keys) : g_strdup (_("(none)"));
  const char *const file_rows[][2] = {
    { "file", info->path },
    { "file_size", size },
    { "tensors", tensors },
    { "dtype", info->dtypes },
    { "parameters", params },
    { "metadata", keys },
  };
  const TfConfigField *fields;
  guint n_fields;
  int width = 0;

  fields = tf_config_fields (&n_fields);
  for (guint i = 0; i < G_N_ELEMENTS (file_rows); i++)
    width = MAX (width, (int) strlen (file_rows[i][0]));
  for (guint i = 0; i < n_fields; i++)
    width = MAX (width, (int) strlen (fields[i].key));

  for (guint i = 0; i < G_N_ELEMENTS (file_rows); i++)
    print_row (cli->out, width, file_rows[i][0], file_rows[i][1]);
  /* How long its weights trained: this run, and with the runs it was
   * warm-started from. */
  TfLineage lineage;
  if (tf_provenance_lineage (info->provenance, &lineage))
    {
      g_autofree char *run = g_strdup_printf (_("%" PRId64 " steps in %.1f h"), lineage.run_steps,
                                              lineage.run_wall_seconds / 3600);
      print_row (cli->out, width, "trained", run);
      if (lineage.runs > 1)
        {
          g_autofree char *all = g_strdup_printf (
            _("%" PRId64 " steps in %.1f h over %d runs, each from the weights of the one before"),
            lineage.steps, lineage.wall_seconds / 3600, lineage.runs);
          print_row (cli->out, width, "trained_in_all", all);
        }
    }
  fputc ('\n', cli->out);
  for (guint i = 0; i < n_fields; i++)
    {
      if (!tf_config_field_applies (&fields[i], config))
        continue;
      g_autofree char *value = tf_config_field_format (&fields[i], config);

      print_row (cli->out, width, fields[i].key, value);
    }
}

/* What the user typed to run @command, and its usage line. */
char *
tf_cli_command_line (const TfCliCommand *command)
{
  return g_strdup_printf ("%s %s", PROGRAM, command->name);
}

char *
tf_cli_command_usage (const TfCliCommand *command)
{
  /* _("") would be the catalogue's header */
  const char *operands = command->operands[0] != '\0' ? _(command->operands) : "";
  return g_strdup_printf ("%s %s [OPTION…] %s", PROGRAM, command->name, operands);
}

static int
cmd_info (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = tf_cli_command_usage (command);
  g_autofree char *summary = NULL;
  g_auto(GStrv) files = NULL;
  int status;
  gboolean printed = FALSE;

  summary = g_strdup_printf ("%s\n\n%s", _(command->summary),
                             _("Prints each file's parameter count, data types, size,\n"
                               "metadata keys and how long it trained (also with the runs\n"
                               "it was warm-started from), then the model's config, one\n"
                               "field per line.\n"
                               "Exit status: 0 when every file is a good model, 1 otherwise."));
  status = tf_cli_parse_options (cli, line, usage, summary, NULL, FALSE, argc, argv, &files);
  if (status >= 0)
    return status;

  if (files[0] == NULL)
    return tf_cli_usage_error (cli, line, _("no model file given"));

  status = TF_CLI_EXIT_OK;
  for (guint i = 0; files[i] != NULL; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TfModelInfo) info = tf_model_info_load (files[i], &error);

      if (info == NULL)
        {
          fflush (cli->out);
          fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
          status = TF_CLI_EXIT_FAILURE;
          continue;
        }
      if (printed)
        fputc ('\n', cli->out);
      print_model_info (cli, info);
      printed = TRUE;
    }
  return status;
}

/* ---- The program -------------------------------------------------------- */

int
tf_cli_run (int argc, char **argv, FILE *out, FILE *err)
{
  TfCli cli = { .out = out, .err = err };
  g_auto(GStrv) operands = NULL;
  g_autoptr(GString) summary = g_string_new (_("Trains and runs Transfusion models."));
  gboolean version = FALSE;
  const GOptionEntry entries[] = {
    { "version", 0, G_OPTION_FLAG_NONE, G_OPTION_ARG_NONE, &version,
      N_("Show the version and exit"), NULL },
    G_OPTION_ENTRY_NULL
  };
  int status;

  g_return_val_if_fail (argc >= 1 && argv != NULL, TF_CLI_EXIT_USAGE);

  g_string_append_printf (summary, "\n\n%s", _("Commands:"));
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (summary, "\n  %-10s %s", commands[i].name, _(commands[i].summary));
  g_string_append_printf (summary, "\n\n");
  g_string_append_printf (summary, _("Run '%s COMMAND --help' for the options of a command."),
                          PROGRAM);

  status = tf_cli_parse_options (&cli, PROGRAM, PROGRAM " [OPTION…] COMMAND [ARG…]", summary->str,
                          entries, TRUE, argc, argv, &operands);
  if (status >= 0)
    return status;

  if (version)
    {
      fprintf (out, "%s %s\n", PROGRAM, PACKAGE_VERSION);
      return TF_CLI_EXIT_OK;
    }

  if (operands[0] == NULL)
    {
      fprintf (err, _("%s: no command given\n"), PROGRAM);
      fprintf (err, _("Run '%s --help' for usage.\n"), PROGRAM);
      return TF_CLI_EXIT_USAGE;
    }

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (operands[0], commands[i].name) == 0)
      return commands[i].run (&cli, &commands[i], (int) g_strv_length (operands), operands);

  fprintf (err, _("%s: unknown command '%s'\n"), PROGRAM, operands[0]);
  fprintf (err, _("Run '%s --help' for the list of commands.\n"), PROGRAM);
  return TF_CLI_EXIT_USAGE;
}
