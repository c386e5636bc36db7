/* tf-cli-convert.c: `transfusion-cli convert MODEL --dtype f16 --out FILE`:
 * the same model with its weights stored in another type (F16 and BF16
 * halve the file), every other piece of metadata kept. The result is read
 * back and its largest change from the original reported. With
 * --examples-from REPORT.json it also stores the prompts an `eval` report
 * found the model draws as asked, as "example_prompts": what the app
 * suggests first; and when the report chose its image settings by a sweep
 * (`eval --sweep`), those, as "sampling": the model's own defaults for
 * `generate` and the app. */
#include "config.h"

#include "tf-cli-private.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "tf-json.h"
#include "tf-model-info.h"
#include "tf-safetensors.h"
#include "transfusion.h"

/* What a report's "examples" may hold: a few short prompts. */
#define MAX_EXAMPLES 16
#define MAX_EXAMPLE_CHARS 200

/* The largest magnitude F16 holds; beyond it a weight would become Inf. */
#define F16_MAX 65504.0f

static gboolean
parse_dtype (const char *name, TfDtype *dtype)
{
  g_autofree char *upper = g_ascii_strup (name, -1);
  return tf_dtype_from_name (upper, dtype) &&
         (*dtype == TF_DTYPE_F32 || *dtype == TF_DTYPE_F16 || *dtype == TF_DTYPE_BF16);
}

/* The "examples" of an eval report (JSON text), checked, as a JSON array;
 * NULL with @error naming the file and the problem. @sampling is set to the
 * image settings the report's sweep chose ("sampling" when it has a
 * "sweep"), checked, or to NULL. */
static char *
examples_from_report (const char *path, char **sampling, GError **error)
{
  g_autofree char *text = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) parse_error = NULL;
  g_autofree char *shown = g_filename_display_name (path);
  JsonNode *root, *node;

  if (!g_file_get_contents (path, &text, NULL, error))
    return NULL;
  if (!tf_json_parse (parser, text, -1, &parse_error))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, _("%s: not JSON: %s"), shown,
                   parse_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  *sampling = NULL;
  if (JSON_NODE_HOLDS_OBJECT (root) &&
      json_object_has_member (json_node_get_object (root), "sweep"))
    {
      JsonNode *chosen = json_object_get_member (json_node_get_object (root), "sampling");
      g_autofree char *text_of = NULL;
      TfGenerateSettings settings;
      tf_generate_settings_init (&settings);
      if (chosen != NULL)
        text_of = tf_json_node_to_string (chosen);
      if (text_of == NULL ||
          !tf_generate_settings_sampling_from_json (&settings, text_of, &parse_error))
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, _("%s: the sweep's \"sampling\": %s"),
                       shown, parse_error != NULL ? parse_error->message : _("missing"));
          return NULL;
        }
      *sampling = tf_generate_settings_sampling_to_json (&settings);
    }
  node = JSON_NODE_HOLDS_OBJECT (root)
         ? json_object_get_member (json_node_get_object (root), "examples") : NULL;
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   _("%s: no \"examples\" list (write the report with 'eval --json-file')"),
                   shown);
      return NULL;
    }
  JsonArray *array = json_node_get_array (node);
  guint n = json_array_get_length (array);
  if (n == 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   _("%s: the report has no prompt the model drew as asked"), shown);
      return NULL;
    }
  if (n > MAX_EXAMPLES)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, _("%s: more than %d examples"), shown,
                   MAX_EXAMPLES);
      return NULL;
    }
  for (guint i = 0; i < n; i++)
    {
      JsonNode *e = json_array_get_element (array, i);
      const char *s = JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING
                      ? json_node_get_string (e) : NULL;
      if (s == NULL || s[0] == '\0' || g_utf8_strlen (s, -1) > MAX_EXAMPLE_CHARS)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       _("%s: example %u is not a prompt of 1 to %d characters"), shown, i + 1,
                       MAX_EXAMPLE_CHARS);
          return NULL;
        }
    }
  return tf_json_node_to_string (node);
}

/* @keep_dtype: store the weights in the type the file has them in. */
static gboolean
convert (TfCli *cli, const char *in, const char *out, TfDtype dtype, gboolean keep_dtype,
         const char *examples, const char *sampling, GError **error)
{
  g_autoptr (TfSafetensors) st = NULL;
  g_autoptr (TfModel) model = tf_model_file_open (in, FALSE, &st, NULL, error);
  if (model == NULL)
    return FALSE;
  if (keep_dtype)
    dtype = tf_safetensors_tensor (st, 0)->dtype;

  const float *params = tf_model_params (model);
  const size_t n = tf_model_n_params (model);
  if (dtype == TF_DTYPE_F16)
    for (int i = 0; i < tf_model_n_tensors (model); i++)
      {
        const TfParamInfo *t = tf_model_tensor (model, i);
        for (size_t k = 0; k < t->size; k++)
          if (fabsf (params[t->offset + k]) > F16_MAX)
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           _("%s: tensor '%s' holds %g, more than F16 can (%g); use --dtype bf16"),
                           in, t->name, params[t->offset + k], F16_MAX);
              return FALSE;
            }
      }

  /* Everything but what tf_model_save_weights writes itself. */
  guint n_keys;
  g_autofree const char **keys = tf_safetensors_metadata_keys (st, &n_keys);
  g_autofree const char **meta_keys = g_new (const char *, n_keys + 3);
  g_autofree const char **meta_values = g_new (const char *, n_keys + 3);
  int n_meta = 0;
  for (guint i = 0; i < n_keys; i++)
    if (strcmp (keys[i], "format") != 0 && strcmp (keys[i], "config") != 0 &&
        (examples == NULL || strcmp (keys[i], "example_prompts") != 0) &&
        (sampling == NULL || strcmp (keys[i], "sampling") != 0))
      {
        meta_keys[n_meta] = keys[i];
        meta_values[n_meta++] = tf_safetensors_metadata (st, keys[i]);
      }
  if (examples != NULL)
    {
      meta_keys[n_meta] = "example_prompts";
      meta_values[n_meta++] = examples;
    }
  if (sampling != NULL)
    {
      meta_keys[n_meta] = "sampling";
      meta_values[n_meta++] = sampling;
    }
  /* The file is written beside @out and renamed over it, so @out may be @in
   * (whose mapping the rename leaves intact). */
  if (!tf_model_save_weights (model, params, out, dtype, meta_keys, meta_values, n_meta, error))
    return FALSE;

  g_autoptr (TfModel) back = tf_model_load (out, error);
  if (back == NULL)
    return FALSE;
  double largest = 0, scale = 0;
  const float *converted = tf_model_params (back);
  for (size_t k = 0; k < n; k++)
    {
      largest = MAX (largest, fabs ((double) converted[k] - params[k]));
      scale = MAX (scale, fabs ((double) params[k]));
    }
  GStatBuf before, after;
  g_autofree char *size_before = g_stat (in, &before) == 0 ? g_format_size (before.st_size) : NULL;
  g_autofree char *size_after = g_stat (out, &after) == 0 ? g_format_size (after.st_size) : NULL;
  fprintf (cli->out, _("%s: %zu parameters as %s, %s (was %s); the largest change of a weight "
                       "is %.3g (the largest weight is %.3g)\n"),
           out, n, tf_dtype_name (dtype), size_after ? size_after : "?",
           size_before ? size_before : "?", largest, scale);
  return TRUE;
}

int
tf_cli_convert (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s convert [OPTION…] MODEL.safetensors --dtype TYPE "
                                            "--out FILE", PROGRAM);
  g_autofree char *out = NULL, *dtype_name = NULL, *report = NULL, *examples = NULL;
  g_autofree char *sampling = NULL;
  const GOptionEntry entries[] = {
    { "dtype", 0, 0, G_OPTION_ARG_STRING, &dtype_name, N_("f32, f16 or bf16"), N_("TYPE") },
    { "examples-from", 0, 0, G_OPTION_ARG_FILENAME, &report,
      N_("Also store the prompts this eval report (--json-file) found the model draws as asked, and the image settings its --sweep chose"),
      N_("REPORT.json") },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Where to write the model (.safetensors)"), N_("FILE") },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Writes the model with its weights in another type: F16 or BF16 take half the\n"
        "space of F32, and the engine computes in F32 whatever the file holds. The\n"
        "tokenizer, provenance and every other piece of metadata are kept. Prints the\n"
        "largest change of a weight that the rounding made.\n\n"
        "--examples-from REPORT.json (from 'eval --json-file') also stores the prompts\n"
        "the model drew as asked, which the app then suggests first, and, when the\n"
        "report comes from 'eval --sweep', the sampler, steps and guidance it chose,\n"
        "which 'generate' and the app then start with; without --dtype the weights\n"
        "keep their type."));
  g_auto (GStrv) operands = NULL;
  int status = tf_cli_parse_options (cli, line, usage, summary, entries, FALSE, argc, argv,
                                     &operands);
  if (status >= 0)
    return status;
  if (operands[0] == NULL)
    return tf_cli_usage_error (cli, line, _("no model file given"));
  if (operands[1] != NULL)
    return tf_cli_unexpected_argument (cli, line, operands[1]);
  if (out == NULL)
    return tf_cli_usage_error (cli, line, _("no --out model file given"));
  TfDtype dtype = TF_DTYPE_F32;
  /* With --examples-from alone the weights stay as they are. */
  const gboolean keep_dtype = dtype_name == NULL && report != NULL;
  if (!keep_dtype && (dtype_name == NULL || !parse_dtype (dtype_name, &dtype)))
    return tf_cli_usage_error (cli, line, _("give --dtype f32, f16 or bf16"));

  g_autoptr (GError) error = NULL;
  if (report != NULL && (examples = examples_from_report (report, &sampling, &error)) == NULL)
    return tf_cli_fail (cli, error);
  if (!convert (cli, operands[0], out, dtype, keep_dtype, examples, sampling, &error))
    return tf_cli_fail (cli, error);
  return TF_CLI_EXIT_OK;
}
