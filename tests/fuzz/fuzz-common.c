/* fuzz-common.c: see fuzz-common.h. */
#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Warnings of our own code about bad input are expected and dropped; a
 * warning from GLib or json-glib means a caller broke a rule (a GError set
 * twice, say), and aborts like a critical. */
static GLogWriterOutput
quiet_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  const char *domain = "";
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0 && fields[i].value != NULL)
      domain = fields[i].value;
  const gboolean library = g_str_has_prefix (domain, "GLib") || g_str_has_prefix (domain, "Json");
  if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) ||
      (library && (level & G_LOG_LEVEL_WARNING)))
    {
      g_log_writer_standard_streams (level, fields, n_fields, user_data);
      if (level & G_LOG_LEVEL_WARNING)
        abort ();
      return G_LOG_WRITER_HANDLED;
    }
  return G_LOG_WRITER_HANDLED;
}

void
tf_fuzz_init (void)
{
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      g_log_set_writer_func (quiet_writer, NULL, NULL);
      g_once_init_leave (&done, 1);
    }
}

void
tf_fuzz_check_result (const char *what, gboolean ok, GError **error)
{
  if (ok == (*error != NULL))
    {
      fprintf (stderr, "%s: %s\n", what,
               ok ? (*error)->message : "failed without an error");
      abort ();
    }
  if (*error != NULL)
    {
      /* TF_FUZZ_VERBOSE=1: what each refused input was refused for, to see
       * that a seed reaches as far as it should. */
      if (g_getenv ("TF_FUZZ_VERBOSE") != NULL)
        fprintf (stderr, "%s: %s\n", what, (*error)->message);
      g_clear_error (error);
    }
}

TfSafetensors *
tf_fuzz_open_safetensors (const uint8_t *data, size_t size, const char *name)
{
  g_autoptr (GBytes) bytes = g_bytes_new_static (data, size);
  GError *error = NULL;
  TfSafetensors *st = tf_safetensors_open_bytes (bytes, name, &error);
  tf_fuzz_check_result ("tf_safetensors_open_bytes", st != NULL, &error);
  return st;
}

volatile uint8_t tf_fuzz_sink;

void
tf_fuzz_touch (const void *data, size_t size)
{
  const uint8_t *bytes = data;
  uint8_t sum = 0;
  for (size_t i = 0; i < size; i++)
    sum += bytes[i];
  tf_fuzz_sink = sum;
}

void
tf_fuzz_check_image (const TfImage *image)
{
  if (image->width < 1 || image->height < 1 ||
      (uint64_t) image->width * image->height > TF_IMAGE_MAX_PIXELS)
    {
      fprintf (stderr, "an image of %d × %d was accepted\n", image->width, image->height);
      abort ();
    }
  tf_fuzz_touch (image->rgba, (size_t) image->width * image->height * 4);
  static const int sizes[] = { 1, 8, 64 };
  for (size_t s = 0; s < G_N_ELEMENTS (sizes); s++)
    for (int channels = 1; channels <= 3; channels += 2)
      {
        g_autofree float *pixels = g_new (float, sizes[s] * sizes[s] * channels);
        /* as training fits a picture, and as a person's is fitted (within
         * a smaller square when it is grey and cut to its subject) */
        for (int as_picture = 0; as_picture <= 1; as_picture++)
          {
            if (as_picture)
              tf_image_to_model_picture (image, sizes[s], channels, (sizes[s] * 7 + 7) / 8, pixels);
            else
              tf_image_to_model (image, sizes[s], channels, pixels);
            for (int i = 0; i < sizes[s] * sizes[s] * channels; i++)
              if (!(pixels[i] >= -1.0f && pixels[i] <= 1.0f))
                {
                  fprintf (stderr, "model pixel %d is %g, outside [-1, 1]\n", i, pixels[i]);
                  abort ();
                }
          }
      }
}
