/* tf-cli-data-export.c: `transfusion-cli data --export DIR`, the training
 * examples as shards that other trainers read (the PyTorch trainer in
 * tests/reference/ reads them for the sources it does not render itself).
 *
 * One file per source, DIR/NAME.safetensors, of --count examples: all of
 * a source in index order when it has no more, otherwise drawn at random as
 * the trainer draws them (so a few may repeat). Tensor "pixels" F32
 * [n_images, size, size, channels] (channels-last, in [-1, 1], exactly what
 * training sees) and __metadata__ "examples", a JSON list in index order of
 * {"image": k, "caption", "subject", "label"} or {"prompt", "text"}. With
 * --tokenizer MODEL each text also gets its ids from that model's tokenizer
 * ("caption_ids", "prompt_ids", "text_ids"), and "tokenizer" holds it. */
#include "config.h"

#include "tf-cli-private.h"
#include "tf-model-info.h"

#include <inttypes.h>
#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

#include "tf-data.h"
#include "tf-json.h"
#include "tf-tokenizer.h"
#include "transfusion.h"

#define EXPORT_FORMAT "transfusion-data"

static void
add_text (JsonBuilder *b, const TfTokenizer *tok, const char *key, const char *text)
{
  if (text == NULL)
    return;
  json_builder_set_member_name (b, key);
  json_builder_add_string_value (b, text);
  if (tok == NULL)
    return;
  g_autofree char *ids_key = g_strconcat (key, "_ids", NULL);
  size_t n = 0;
  g_autofree int32_t *ids = tf_tokenizer_encode (tok, text, strlen (text), &n);
  json_builder_set_member_name (b, ids_key);
  json_builder_begin_array (b);
  for (size_t i = 0; i < n; i++)
    json_builder_add_int_value (b, ids[i]);
  json_builder_end_array (b);
}

/* The file name of a source: its own name, or "folder-BASENAME". */
static char *
shard_name (const TfDataSource *source)
{
  const char *name = tf_data_source_name (source);
  if (strchr (name, G_DIR_SEPARATOR) == NULL && !g_file_test (name, G_FILE_TEST_IS_DIR))
    return g_strconcat (name, ".safetensors", NULL);
  g_autofree char *base = g_path_get_basename (name);
  return g_strconcat ("folder-", base, ".safetensors", NULL);
}

static gboolean
export_source (TfDataSource *source, TfSplit split, guint64 seed, gint64 count,
               const TfConfig *c, const TfTokenizer *tok, const char *tok_json,
               const char *path, gint64 *n_written, GError **error)
{
  const gint64 size = tf_data_source_size (source), n = MIN (count, size);
  const size_t values = (size_t) tf_config_image_values (c);
  g_autoptr (GArray) pixels = g_array_new (FALSE, FALSE, sizeof (float));
  g_autoptr (JsonBuilder) b = json_builder_new ();
  gint64 n_images = 0;
  TfRng rng;

  tf_rng_seed (&rng, seed);
  json_builder_begin_array (b);
  for (gint64 i = 0; i < n; i++)
    {
      /* A whole source in order; part of one as training draws it. */
      gint64 index = n == size ? i : (gint64) tf_rng_below (&rng, (guint64) size);
      TfExample ex = { 0 };
      if (!tf_data_source_get (source, index, &rng, &ex, error))
        {
          tf_example_clear (&ex);
          return FALSE;
        }
      json_builder_begin_object (b);
      if (ex.kind == TF_EXAMPLE_IMAGE)
        {
          json_builder_set_member_name (b, "image");
          json_builder_add_int_value (b, n_images++);
          g_array_append_vals (pixels, ex.pixels, (guint) values);
          add_text (b, tok, "caption", ex.caption);
        }
      else
        {
          add_text (b, tok, "prompt", ex.prompt);
          add_text (b, tok, "text", ex.text);
        }
      if (ex.subject != NULL)
        {
          json_builder_set_member_name (b, "subject");
          json_builder_add_string_value (b, ex.subject);
        }
      json_builder_set_member_name (b, "label");
      json_builder_add_int_value (b, ex.label);
      json_builder_end_object (b);
      tf_example_clear (&ex);
    }
  json_builder_end_array (b);

  g_autofree char *examples = tf_json_builder_to_string (b);
  g_autofree char *size_text = g_strdup_printf ("%d", c->image_size);
  g_autofree char *channels = g_strdup_printf ("%d", c->image_channels);
  g_autofree char *seed_text = g_strdup_printf ("%" G_GUINT64_FORMAT, seed);
  const char *keys[] = { "format", "source", "split", "seed", "image_size", "image_channels",
                         "examples", "tokenizer" };
  const char *vals[] = { EXPORT_FORMAT, tf_data_source_name (source),
                         split == TF_SPLIT_TRAIN ? "train" : "heldout", seed_text, size_text,
                         channels, examples, tok_json };
  TfTensorOut tensor = { .name = "pixels", .dtype = TF_DTYPE_F32, .n_dims = 4,
                         .shape = { n_images, c->image_size, c->image_size,
                                    c->image_channels },
                         .data = (const float *) pixels->data };
  *n_written = n;
  return tf_safetensors_write (path, &tensor, n_images > 0 ? 1 : 0, keys, vals,
                               tok_json != NULL ? 8 : 7, error);
}

/* The tokenizer of a model file, checked against its config as every
 * command checks a model. */
static TfTokenizer *
load_tokenizer (const char *model_path, char **json_out, GError **error)
{
  g_autoptr (TfSafetensors) st = NULL;
  TfTokenizer *tok = NULL;
  g_autoptr (TfModel) model = tf_model_file_open (model_path, TRUE, &st, &tok, error);
  if (model == NULL)
    return NULL;
  *json_out = g_strdup (tf_safetensors_metadata (st, "tokenizer"));
  return tok;
}

int
tf_cli_data_export (TfCli *cli, char **names, TfSplit split, guint64 seed, gint64 count,
                    const char *dir, const char *tokenizer_model)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tok_json = NULL;
  TfTokenizer *tok = NULL;
  TfConfig c;
  int status = TF_CLI_EXIT_OK;

  tf_config_preset (&c, "default", NULL);
  if (tokenizer_model != NULL && (tok = load_tokenizer (tokenizer_model, &tok_json, &error)) == NULL)
    {
      fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
      return TF_CLI_EXIT_FAILURE;
    }
  if (g_mkdir_with_parents (dir, 0777) != 0)
    {
      fprintf (cli->err, "%s: %s: could not make the folder: %s\n", PROGRAM, dir,
               g_strerror (errno));
      g_clear_pointer (&tok, tf_tokenizer_free);
      return TF_CLI_EXIT_FAILURE;
    }
  for (guint i = 0; names[i] != NULL && status == TF_CLI_EXIT_OK; i++)
    {
      g_autoptr (TfDataSource) source = tf_data_source_open (names[i], split, c.image_size,
                                                             c.image_channels, &error);
      g_autofree char *file = source ? shard_name (source) : NULL;
      g_autofree char *path = file ? g_build_filename (dir, file, NULL) : NULL;
      gint64 n = 0;
      if (source == NULL ||
          !export_source (source, split, seed, count, &c, tok, tok_json, path, &n, &error))
        {
          fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
          status = TF_CLI_EXIT_FAILURE;
        }
      else
        fprintf (cli->out, _("wrote %s (%" PRId64 " of %" PRId64
                             " examples of %s)\n"),
                 path, n, tf_data_source_size (source), tf_data_source_name (source));
    }
  g_clear_pointer (&tok, tf_tokenizer_free);
  return status;
}
