/* tf-model-info.c: what a model file holds, for people. */
#include "config.h"

#include "tf-model-info.h"

#include <cblas.h>

#include <glib/gi18n.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <stddef.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "tf-image.h"

/* Engine messages name the file already; this is the safety net that keeps
 * "FILE: problem" true for every message a person sees. */
static void
propagate_naming_file (GError **dest, GError *src, const char *path)
{
  g_autofree char *base = g_path_get_basename (path);

  if (strstr (src->message, path) == NULL && strstr (src->message, base) == NULL)
    g_prefix_error (&src, "%s: ", path);
  g_propagate_error (dest, src);
}

static char *
describe_dtypes (const TfSafetensors *st)
{
  int counts[TF_N_DTYPES] = { 0 };
  int n_kinds = 0;
  int n = tf_safetensors_n_tensors (st);

  for (int i = 0; i < n; i++)
    {
      int dtype = (int) tf_safetensors_tensor (st, i)->dtype;

      if (dtype < 0 || dtype >= TF_N_DTYPES)
        continue;
      if (counts[dtype]++ == 0)
        n_kinds++;
    }

  if (n_kinds == 0)
    return g_strdup (_("none"));

  g_autoptr(GString) text = g_string_new (NULL);
  for (int d = 0; d < TF_N_DTYPES; d++)
    {
      if (counts[d] == 0)
        continue;
      if (text->len > 0)
        g_string_append (text, ", ");
      g_string_append (text, tf_dtype_name ((TfDtype) d));
      if (n_kinds > 1)
        g_string_append_printf (text,
                                g_dngettext (GETTEXT_PACKAGE, " (%d tensor)", " (%d tensors)",
                                             counts[d]),
                                counts[d]);
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

TfModel *
tf_model_file_open (const char *path, gboolean need_tokenizer, TfSafetensors **st_out,
                    TfTokenizer **tokenizer_out, GError **error)
{
  GError *local_error = NULL;
  g_autoptr(TfTokenizer) tokenizer = NULL;
  const char *json;

  g_return_val_if_fail (path != NULL, NULL);

  g_autoptr(TfSafetensors) st = tf_safetensors_open (path, &local_error);
  if (st == NULL)
    {
      propagate_naming_file (error, local_error, path);
      return NULL;
    }
  g_autoptr(TfModel) model = tf_model_load_from (st, &local_error);
  if (model == NULL)
    {
      propagate_naming_file (error, local_error, path);
      return NULL;
    }
  json = tf_safetensors_metadata (st, "tokenizer");
  if (json == NULL && need_tokenizer)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   _("%s: __metadata__ has no “tokenizer”, so text cannot be read or written"),
                   path);
      return NULL;
    }
  if (json != NULL)
    {
      tokenizer = tf_tokenizer_from_json (json, path, &local_error);
      if (tokenizer == NULL
          || !tf_tokenizer_matches_config (tokenizer, tf_model_config (model), path, &local_error))
        {
          propagate_naming_file (error, local_error, path);
          return NULL;
        }
    }
  if (st_out != NULL)
    *st_out = g_steal_pointer (&st);
  if (tokenizer_out != NULL)
    *tokenizer_out = g_steal_pointer (&tokenizer);
  return g_steal_pointer (&model);
}

gboolean
tf_model_file_sampling (TfSafetensors *st, TfGenerateSettings *settings)
{
  const char *json = tf_safetensors_metadata (st, "sampling");
  return json != NULL && tf_generate_settings_sampling_from_json (settings, json, NULL);
}

void
tf_image_defaults (GSettings *settings, const TfGenerateSettings *model_sampling,
                   TfGenerateSettings *out)
{
  g_autoptr(GVariant) steps = g_settings_get_user_value (settings, "default-steps");
  g_autoptr(GVariant) cfg = g_settings_get_user_value (settings, "default-cfg");
  g_autoptr(GVariant) sampler = g_settings_get_user_value (settings, "default-sampler");

  out->steps = steps == NULL && model_sampling != NULL ? model_sampling->steps
               : g_settings_get_int (settings, "default-steps");
  out->cfg = cfg == NULL && model_sampling != NULL ? model_sampling->cfg
             : g_settings_get_double (settings, "default-cfg");
  out->sampler = sampler == NULL && model_sampling != NULL
                 ? model_sampling->sampler
                 : (TfSampler) g_settings_get_enum (settings, "default-sampler");
}

TfModelInfo *
tf_model_info_load (const char *path, GError **error)
{
  GStatBuf st_buf;
  g_autoptr(TfSafetensors) st = NULL;
  g_autoptr(TfModel) model = tf_model_file_open (path, FALSE, &st, NULL, error);

  if (model == NULL)
    return NULL;

  g_autoptr(TfModelInfo) info = g_new0 (TfModelInfo, 1);
  info->path = g_strdup (path);

  info->name = tf_model_name_from_path (path);

  if (g_stat (path, &st_buf) == 0)
    info->file_size = (guint64) st_buf.st_size;

  info->n_tensors = tf_safetensors_n_tensors (st);
  info->dtypes = describe_dtypes (st);

  guint n_keys = 0;
  g_autofree const char **keys = tf_safetensors_metadata_keys (st, &n_keys);
  info->metadata_keys = g_new0 (char *, n_keys + 1);
  for (guint i = 0; i < n_keys; i++)
    info->metadata_keys[i] = g_strdup (keys[i]);
  info->provenance = g_strdup (tf_safetensors_metadata (st, "provenance"));
  tf_generate_settings_init (&info->sampling);
  info->has_sampling = tf_model_file_sampling (st, &info->sampling);

  info->model = g_steal_pointer (&model);
  return g_steal_pointer (&info);
}

TfGenerator *
tf_model_info_open_generator (const char *path, GError **error)
{
  TfTokenizer *tokenizer = NULL;
  g_autoptr (TfSafetensors) st = NULL;
  TfModel *model = tf_model_file_open (path, TRUE, &st, &tokenizer, error);

  if (model == NULL)
    return NULL;
  return tf_generator_new_with_file (model, tokenizer, st, error);
}

char *
tf_format_duration (double seconds)
{
  if (!isfinite (seconds) || seconds < 0)
    return g_strdup ("--:--");
  gint64 s = (gint64) (seconds + 0.5);
  if (s >= 3600)
    return g_strdup_printf ("%" G_GINT64_FORMAT ":%02d:%02d", s / 3600, (int) (s / 60 % 60),
                            (int) (s % 60));
  return g_strdup_printf ("%d:%02d", (int) (s / 60), (int) (s % 60));
}

char *
tf_model_name_from_path (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);

  if (g_str_has_suffix (base, ".safetensors") && strlen (base) > strlen (".safetensors"))
    return g_strndup (base, strlen (base) - strlen (".safetensors"));
  return g_steal_pointer (&base);
}

void
tf_model_info_free (TfModelInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->path);
  g_free (info->name);
  g_free (info->dtypes);
  g_strfreev (info->metadata_keys);
  g_free (info->provenance);
  g_clear_pointer (&info->model, tf_model_free);
  g_free (info);
}

/* ---- The config's fields ---------------------------------------------- */

/* The kind follows the member's C type, so the table stays right when a
 * field changes type. */
#define FIELD_KIND(key) \
  _Generic (((TfConfig *) 0)->key, \
            int: TF_CONFIG_FIELD_INT, \
            float: TF_CONFIG_FIELD_FLOAT, \
            double: TF_CONFIG_FIELD_DOUBLE, \
            char *: TF_CONFIG_FIELD_STRING, \
            TfPrediction: TF_CONFIG_FIELD_PREDICTION, \
            TfTSampling: TF_CONFIG_FIELD_T_SAMPLING, \
            TfTimeConditioning: TF_CONFIG_FIELD_TIME_CONDITIONING, \
            TfImageEncoder: TF_CONFIG_FIELD_IMAGE_ENCODER, \
            TfImageRope: TF_CONFIG_FIELD_IMAGE_ROPE)
#define FIELD(key, label, group) \
  { #key, label, TF_CONFIG_GROUP_##group, FIELD_KIND (key), offsetof (TfConfig, key) }
/* gboolean is an int to _Generic: named */
#define BOOLEAN_FIELD(key, label, group) \
  { #key, label, TF_CONFIG_GROUP_##group, TF_CONFIG_FIELD_BOOLEAN, offsetof (TfConfig, key) }

static const TfConfigField config_fields[] = {
  FIELD (vocab_size,      N_("Vocabulary"),           TEXT),
  FIELD (d_model,         N_("Width"),                TRANSFORMER),
  FIELD (n_layers,        N_("Layers"),               TRANSFORMER),
  FIELD (n_heads,         N_("Attention heads"),      TRANSFORMER),
  FIELD (mlp_hidden,      N_("MLP hidden size"),      TRANSFORMER),
  FIELD (max_seq_len,     N_("Context length"),       TEXT),
  FIELD (image_size,      N_("Image size"),           IMAGE),
  FIELD (image_channels,  N_("Channels"),             IMAGE),
  FIELD (patch_size,      N_("Patch size"),           IMAGE),
  FIELD (image_encoder,   N_("Image encoder"),        IMAGE),
  FIELD (unet_channels,   N_("U-Net channels"),       IMAGE),
  FIELD (unet_blocks,     N_("U-Net blocks per level"), IMAGE),
  BOOLEAN_FIELD (unet_skips, N_("U-Net skip connections"), IMAGE),
  FIELD (conv_channels,   N_("Convolution channels"), IMAGE),
  FIELD (image_rope,      N_("Patch positions (RoPE)"), IMAGE),
  FIELD (diffusion_steps, N_("Steps"),                DIFFUSION),
  FIELD (schedule,        N_("Noise schedule"),       DIFFUSION),
  FIELD (prediction,      N_("Prediction target"),    DIFFUSION),
  FIELD (t_sampling,      N_("Training noise levels"), DIFFUSION),
  FIELD (t_mean,          N_("Noise level location"), DIFFUSION),
  FIELD (t_scale,         N_("Noise level scale"),    DIFFUSION),
  FIELD (min_snr_gamma,   N_("Min-SNR γ"),            DIFFUSION),
  FIELD (time_conditioning, N_("Timestep conditioning"), DIFFUSION),
  FIELD (rope_theta,      N_("RoPE θ"),               TRANSFORMER),
  FIELD (norm_eps,        N_("RMSNorm ε"),            TRANSFORMER),
  FIELD (bos_id,          N_("Beginning of text"),    TOKENS),
  FIELD (eos_id,          N_("End of text"),          TOKENS),
  FIELD (boi_id,          N_("Beginning of image"),   TOKENS),
  FIELD (eoi_id,          N_("End of image"),         TOKENS),
  FIELD (pad_id,          N_("Padding"),              TOKENS),
  FIELD (user_id,         N_("User"),                 TOKENS),
  FIELD (assistant_id,    N_("Assistant"),            TOKENS),
};

#undef FIELD
#undef BOOLEAN_FIELD
#undef FIELD_KIND

const TfConfigField *
tf_config_fields (guint *n_fields)
{
  *n_fields = G_N_ELEMENTS (config_fields);
  return config_fields;
}

gboolean
tf_config_field_applies (const TfConfigField *field, const TfConfig *config)
{
  if (g_str_has_prefix (field->key, "unet_"))
    return config->image_encoder == TF_IMAGE_ENCODER_UNET;
  if (g_str_has_prefix (field->key, "conv_"))
    return config->image_encoder == TF_IMAGE_ENCODER_CONV;
  return TRUE;
}

const char *
tf_config_group_title (TfConfigGroup group)
{
  switch (group)
    {
    case TF_CONFIG_GROUP_TRANSFORMER: return _("Transformer");
    case TF_CONFIG_GROUP_TEXT:        return _("Text");
    case TF_CONFIG_GROUP_IMAGE:       return _("Image");
    case TF_CONFIG_GROUP_DIFFUSION:   return _("Diffusion");
    case TF_CONFIG_GROUP_TOKENS:      return _("Special tokens");
    case TF_N_CONFIG_GROUPS:
    default:                          break;
    }
  g_return_val_if_reached (NULL);
}

char *
tf_config_field_format (const TfConfigField *field, const TfConfig *config)
{
  const char *base = (const char *) config + field->offset;
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  switch (field->kind)
    {
    case TF_CONFIG_FIELD_INT:
      return g_strdup_printf ("%d", *(const int *) base);
    case TF_CONFIG_FIELD_FLOAT:
      return g_strdup (g_ascii_formatd (buf, sizeof buf, "%g", *(const float *) base));
    case TF_CONFIG_FIELD_DOUBLE:
      return g_strdup (g_ascii_formatd (buf, sizeof buf, "%g", *(const double *) base));
    case TF_CONFIG_FIELD_STRING:
      return g_strndup (base, TF_CONFIG_SCHEDULE_MAX);
    case TF_CONFIG_FIELD_PREDICTION:
      return g_strdup (tf_prediction_name (*(const TfPrediction *) base));
    case TF_CONFIG_FIELD_T_SAMPLING:
      return g_strdup (tf_t_sampling_name (*(const TfTSampling *) base));
    case TF_CONFIG_FIELD_TIME_CONDITIONING:
      return g_strdup (tf_time_conditioning_name (*(const TfTimeConditioning *) base));
    case TF_CONFIG_FIELD_IMAGE_ENCODER:
      return g_strdup (tf_image_encoder_name (*(const TfImageEncoder *) base));
    case TF_CONFIG_FIELD_IMAGE_ROPE:
      return g_strdup (tf_image_rope_name (*(const TfImageRope *) base));
    case TF_CONFIG_FIELD_BOOLEAN:
      return g_strdup (*(const gboolean *) base ? "true" : "false");
    default:
      g_return_val_if_reached (NULL);
    }
}

/* ---- Numbers for people ------------------------------------------------ */

char *
tf_format_count (guint64 n)
{
  static const char *const prefixes[] = { "k", "M", "G", "T" };
  double value = (double) n;
  guint unit;

  if (n < 1000)
    return g_strdup_printf ("%" G_GUINT64_FORMAT, n);

  value /= 1000.0;
  for (unit = 0; unit + 1 < G_N_ELEMENTS (prefixes) && value >= 999.5; unit++)
    value /= 1000.0;

  /* Three significant digits, rounding as printf will. */
  if (value < 9.995)
    return g_strdup_printf ("%.2f %s", value, prefixes[unit]);
  if (value < 99.95)
    return g_strdup_printf ("%.1f %s", value, prefixes[unit]);
  return g_strdup_printf ("%.0f %s", value, prefixes[unit]);
}

/* ---- The bundled model ------------------------------------------------- */

#define DEFAULT_MODEL_FILE "default.safetensors"

/* ---- Where the program's files are -------------------------------------- */

static char *
executable_path (void)
{
  return g_file_read_link ("/proc/self/exe", NULL);
}

gboolean
tf_running_uninstalled (void)
{
  g_autofree char *exe = executable_path ();
  return exe != NULL && g_str_has_prefix (exe, TF_BUILD_ROOT G_DIR_SEPARATOR_S);
}

/* PREFIX/@relative for the prefix the executable sits in, or NULL. */
static char *
beside_executable (const char *relative)
{
  g_autofree char *exe = executable_path ();
  if (exe == NULL || g_path_is_absolute (TF_BINDIR) || g_path_is_absolute (relative) ||
      tf_running_uninstalled ())
    return NULL;
  /* PREFIX/BINDIR/transfusion: one level up for each part of BINDIR */
  g_autofree char *dir = g_path_get_dirname (exe);
  g_auto(GStrv) parts = g_strsplit (TF_BINDIR, G_DIR_SEPARATOR_S, -1);
  for (guint i = g_strv_length (parts); i > 0; i--)
    {
      if (parts[i - 1][0] == '\0' || strcmp (parts[i - 1], ".") == 0)
        continue;
      g_autofree char *base = g_path_get_basename (dir);
      if (strcmp (base, parts[i - 1]) != 0)
        return NULL;   /* not where an installation puts it */
      char *up = g_path_get_dirname (dir);
      g_free (dir);
      dir = up;
    }
  return g_build_filename (dir, relative, NULL);
}

char *
tf_installed_data_dir (void)
{
  char *dir = beside_executable (TF_DATADIR_RELATIVE);
  return dir != NULL ? dir : g_strdup (TF_DATADIR);
}

char *
tf_locale_dir (void)
{
  if (tf_running_uninstalled ())
    return g_build_filename (TF_BUILD_ROOT, "po", NULL);
  char *dir = beside_executable (TF_LOCALEDIR_RELATIVE);
  return dir != NULL ? dir : g_strdup (LOCALEDIR);
}

void
tf_bind_translations (void)
{
  g_autofree char *dir = tf_locale_dir ();
  bindtextdomain (GETTEXT_PACKAGE, dir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}

GStrv
tf_default_model_locations (void)
{
  const char *override = g_getenv ("TRANSFUSION_MODEL");
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

  if (override != NULL && override[0] != '\0')
    g_strv_builder_add (builder, override);
  else
    {
      g_autofree char *data = tf_installed_data_dir ();
      g_autofree char *installed = g_build_filename (data, "transfusion", "models",
                                                     DEFAULT_MODEL_FILE, NULL);
      g_autofree char *configured = g_build_filename (TF_DATADIR, "transfusion", "models",
                                                      DEFAULT_MODEL_FILE, NULL);

      if (tf_running_uninstalled ())
        {
          g_autofree char *source = g_build_filename (TF_SOURCE_ROOT, "resources", "models",
                                                      DEFAULT_MODEL_FILE, NULL);
          g_strv_builder_add (builder, source);
        }
      g_strv_builder_add (builder, installed);
      if (strcmp (installed, configured) != 0)
        g_strv_builder_add (builder, configured);
    }
  return g_strv_builder_end (builder);
}

char *
tf_default_model_path (void)
{
  g_auto(GStrv) locations = tf_default_model_locations ();
  const char *override = g_getenv ("TRANSFUSION_MODEL");

  if (override != NULL && override[0] != '\0')
    return g_strdup (locations[0]);
  for (guint i = 0; locations[i] != NULL; i++)
    if (g_file_test (locations[i], G_FILE_TEST_IS_REGULAR))
      return g_strdup (locations[i]);
  return NULL;
}

/* ---- Generated images ------------------------------------------------- */

/* A1111 shows the first 10 hex digits of the file's SHA-256 ("AutoV2"). */
#define MODEL_HASH_DIGITS 10

char *
tf_model_file_hash (const char *path, GError **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guchar *buffer = g_malloc (1 << 20);
  g_autofree char *shown = g_filename_display_name (path);
  FILE *file = fopen (path, "rb");
  size_t n;

  if (file == NULL)
    {
      int saved = errno;

      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not read: %s", shown,
                   g_strerror (saved));
      return NULL;
    }
  while ((n = fread (buffer, 1, 1 << 20, file)) > 0)
    g_checksum_update (checksum, buffer, (gssize) n);
  if (ferror (file))
    {
      int saved = errno;

      fclose (file);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not read: %s", shown,
                   g_strerror (saved));
      return NULL;
    }
  fclose (file);
  return g_strndup (g_checksum_get_string (checksum), MODEL_HASH_DIGITS);
}

char *
tf_png_parameters_text (const char *prompt, const TfGenerateSettings *settings, int size,
                        const char *model_name, const char *model_hash)
{
  g_autoptr(GString) text = g_string_new (prompt);
  g_autofree char *sampler = g_ascii_strup (tf_sampler_name (settings->sampler), -1);
  char cfg[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append_c (text, '\n');
  if (settings->negative != NULL && settings->negative[0] != '\0')
    g_string_append_printf (text, "Negative prompt: %s\n", settings->negative);
  g_ascii_formatd (cfg, sizeof cfg, "%g", settings->cfg);
  g_string_append_printf (text, "Steps: %d, Sampler: %s, CFG scale: %s, Seed: %" G_GUINT64_FORMAT
                          ", Size: %dx%d, Model: %s, Model hash: %s",
                          settings->steps, sampler, cfg, (guint64) settings->seed, size, size,
                          model_name, model_hash);
  if (settings->init_image != NULL)
    {
      char strength[G_ASCII_DTOSTR_BUF_SIZE];
      g_ascii_formatd (strength, sizeof strength, "%g", settings->strength);
      g_string_append_printf (text, ", Denoising strength: %s", strength);
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

gboolean
tf_write_generated_png (const char *path, const float *pixels, int size, int channels,
                        int scale, const char *parameters, GError **error)
{
  const char *const keys[] = { "parameters", NULL };
  const char *const values[] = { parameters, NULL };
  int side = size * scale;

  g_return_val_if_fail (size > 0 && (channels == 1 || channels == 3), FALSE);
  g_return_val_if_fail (scale >= 1 && side / scale == size, FALSE);

  g_autofree uint8_t *model = g_malloc ((size_t) size * size * channels);
  g_autofree uint8_t *rgb = g_malloc ((size_t) side * side * 3);

  tf_image_from_model (pixels, size, channels, model);
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++)
      {
        const uint8_t *src = model + ((size_t) (y / scale) * size + x / scale) * channels;
        uint8_t *dst = rgb + ((size_t) y * side + x) * 3;

        for (int c = 0; c < 3; c++)
          dst[c] = src[channels == 1 ? 0 : c];
      }
  return tf_image_write_png (path, rgb, side, side, 3, parameters != NULL ? keys : NULL,
                             parameters != NULL ? values : NULL, error);
}

void
tf_configure_threads (void)
{
  if (g_getenv ("OPENBLAS_NUM_THREADS") == NULL)
    openblas_set_num_threads (1);
}
