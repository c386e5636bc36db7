/* tf-cli-plot.c: pictures of a training run, drawn with Cairo:
 * `transfusion-cli plot LOG.jsonl --output curves.png` (the loss curves and
 * the learning rate of the log the trainer writes beside its model) and
 * `transfusion-cli samples --output grid.png` (generated images, a row per
 * Fashion-MNIST class and one each for shapes and emoji). */
#include "config.h"

#include "tf-cli-private.h"

#include <inttypes.h>
#include <cairo.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "tf-data.h"
#include "tf-image.h"
#include "tf-model-info.h"
#include "tf-json.h"
#include "tf-loss-plot.h"

/* ---- Shared ------------------------------------------------------------- */

static cairo_status_t
append_bytes (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append (closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

/* Writes @surface as PNG atomically (g_file_set_contents: temporary file,
 * rename), so a half-written picture never replaces a good one. */
static gboolean
write_surface (cairo_surface_t *surface, const char *path, GError **error)
{
  g_autoptr(GByteArray) png = g_byte_array_new ();
  cairo_status_t status = cairo_surface_write_to_png_stream (surface, append_bytes, png);

  if (status != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not encode the PNG: %s", path,
                   cairo_status_to_string (status));
      return FALSE;
    }
  if (!g_file_set_contents (path, (const char *) png->data, png->len, error))
    {
      g_prefix_error (error, "%s: could not write: ", path);
      return FALSE;
    }
  return TRUE;
}

/* ---- plot --------------------------------------------------------------- */

/* Draws the curves of the logs @log_paths into a @width × @height PNG at
 * @out_path; each log after the first continues the one before it (a warm
 * restart from its weights), so its steps follow on. Skipped lines are
 * reported on @err. */
static gboolean
plot_log (char **log_paths, const char *out_path, int width, int height, FILE *err,
          GError **error)
{
  g_autoptr(GArray) points = tf_loss_points_new ();
  int segment = -1, n_logs = 0;
  for (; log_paths[n_logs] != NULL; n_logs++)
    {
      const double offset = points->len > 0
        ? g_array_index (points, TfLossPoint, points->len - 1).step : 0;
      int skipped;
      if (!tf_loss_log_read (log_paths[n_logs], n_logs, offset, points, &segment, &skipped,
                             error))
        return FALSE;
      if (skipped > 0)
        fprintf (err, _("%s: %s: %d line(s) were not complete records and were skipped\n"),
                 PROGRAM, log_paths[n_logs], skipped);
    }
  const int segments = segment + 1;
  g_autoptr(GString) names = g_string_new (NULL);
  for (int i = 0; i < n_logs; i++)
    {
      g_autofree char *name = g_path_get_basename (log_paths[i]);
      g_string_append_printf (names, "%s%s", i > 0 ? " → " : "", name);
    }
  g_autofree char *title = g_strdup_printf (_("%s: %u steps logged, %d run%s"), names->str,
                                            points->len, segments, segments == 1 ? "" : "s");

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create (surface);
  tf_loss_plot_draw (cr, width, height, points, n_logs, title);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  gboolean ok = write_surface (surface, out_path, error);
  cairo_surface_destroy (surface);
  return ok;
}

int
tf_cli_plot (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s plot [OPTION…] LOG.jsonl [LOG.jsonl…] --output FILE.png",
                                            PROGRAM);
  g_autofree char *output = NULL;
  int width = 1200, height = 800;
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, N_("Where to write the plot (PNG)"), N_("FILE") },
    { "width", 0, 0, G_OPTION_ARG_INT, &width, N_("Width in pixels (1200)"), N_("W") },
    { "height", 0, 0, G_OPTION_ARG_INT, &height, N_("Height in pixels (800)"), N_("H") },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Reads the log that 'train' writes beside its model (OUT.log.jsonl) and draws\n"
        "the LM and diffusion losses (raw and smoothed, on a log scale when they span\n"
        "a wide range) above the learning rate, against the step. Where a resumed run\n"
        "starts over from an earlier step, a dashed line marks it. Several logs are\n"
        "drawn as one run, each continuing the one before it from its last step (a\n"
        "warm restart with --init-from), a solid line marking where each starts."));
  g_auto(GStrv) operands = NULL;
  int status = tf_cli_parse_options (cli, line, usage, summary, entries, FALSE, argc, argv,
                                     &operands);
  if (status >= 0)
    return status;
  if (operands[0] == NULL)
    return tf_cli_usage_error (cli, line, _("no log file given"));
  if (g_strv_length (operands) > 16)
    return tf_cli_usage_error (cli, line, _("at most 16 logs can be drawn together"));
  if (output == NULL)
    return tf_cli_usage_error (cli, line, _("no --output FILE.png given"));
  if (width < 400 || width > 8000 || height < 300 || height > 8000)
    return tf_cli_usage_error (cli, line, _("--width must be 400 to 8000 and --height 300 to 8000"));

  g_autoptr(GError) error = NULL;
  if (!plot_log (operands, output, width, height, cli->err, &error))
    return tf_cli_fail (cli, error);
  fprintf (cli->out, "%s\n", output);
  return TF_CLI_EXIT_OK;
}

/* ---- samples ------------------------------------------------------------ */

/* @text in lines of at most @width characters (a longer word alone on its
 * line), right-aligned at @x and centred on @y as a block; at most three
 * lines, the last ending in "…" when the text goes on. */
static void
draw_wrapped (cairo_t *cr, double x, double y, const char *text, int width)
{
  g_auto (GStrv) words = g_strsplit (text, " ", -1);
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  GString *current = g_string_new (NULL);
  for (guint i = 0; words[i] != NULL; i++)
    {
      if (current->len > 0 && current->len + 1 + strlen (words[i]) > (size_t) width)
        {
          g_ptr_array_add (lines, g_string_free (current, FALSE));
          current = g_string_new (NULL);
        }
      if (current->len > 0)
        g_string_append_c (current, ' ');
      g_string_append (current, words[i]);
    }
  g_ptr_array_add (lines, g_string_free (current, FALSE));
  const guint shown = MIN (lines->len, 3u);
  if (lines->len > shown)
    {
      char *last = g_ptr_array_index (lines, shown - 1);
      lines->pdata[shown - 1] = g_strconcat (last, "…", NULL);
      g_free (last);
    }
  const double line_h = 16;
  for (guint i = 0; i < shown; i++)
    tf_cairo_text_at (cr, x, y + (i - (shown - 1) / 2.0) * line_h,
                      g_ptr_array_index (lines, i), 1, 0.5);
}

int
tf_cli_samples (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s samples [OPTION…] --output FILE.png", PROGRAM);
  g_autofree char *output = NULL, *model = NULL, *sampler = NULL;
  g_autofree char *source = NULL;
  int columns = 6, scale = 3, n_rows = 8;
  gboolean no_extra = FALSE;
  gint64 seed = 1;
  TfGenerateSettings settings;

  tf_generate_settings_init (&settings);
  settings.steps = 25;
  settings.sampler = TF_SAMPLER_DDIM;
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, N_("Where to write the grid (PNG)"), N_("FILE") },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("The model (the bundled one)"), N_("FILE") },
    { "columns", 'n', 0, G_OPTION_ARG_INT, &columns, N_("Images per row (6)"), N_("N") },
    { "scale", 0, 0, G_OPTION_ARG_INT, &scale, N_("Pixel size of the images, nearest-neighbour (3)"), N_("K") },
    { "steps", 0, 0, G_OPTION_ARG_INT, &settings.steps, N_("Denoising steps (the model's own, else 25)"), N_("S") },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &settings.cfg, N_("Guidance scale (the model's own, else 3)"), N_("W") },
    { "sampler", 0, 0, G_OPTION_ARG_STRING, &sampler, N_("ddpm or ddim (the model's own, else ddim)"), N_("NAME") },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, N_("Seed of the first image; the others follow (1)"), N_("S") },
    { "fashion-only", 0, 0, G_OPTION_ARG_NONE, &no_extra, N_("Leave out the shapes and emoji rows"), NULL },
    { "source", 0, 0, G_OPTION_ARG_STRING, &source, N_("One source's grid: fashion, shapes or emoji"), N_("NAME") },
    { "rows", 0, 0, G_OPTION_ARG_INT, &n_rows, N_("With --source shapes or emoji: prompts, a row each (8)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("A row per Fashion-MNIST class (prompts: captions of held-out t10k images of\n"
        "the class), then a row of held-out shapes prompts and one of held-out emoji\n"
        "prompts. --source shapes (or emoji) draws that source alone: --rows held-out\n"
        "prompts, each written beside its row and drawn --columns times, one seed\n"
        "after another. Drawn with the model's own steps, guidance and sampler when\n"
        "its file names them, as 'generate' and the app draw. Ctrl-C stops."));
  TfCliImageDefaults defaults;
  tf_cli_image_options_mark (&settings, &defaults);
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  const guint not_given = tf_cli_image_options_fill (&settings, &defaults) |
                          (sampler == NULL ? TF_CLI_NOT_GIVEN_SAMPLER : 0);
  if (sampler != NULL && !tf_sampler_from_name (sampler, &settings.sampler))
    return tf_cli_usage_error (cli, line, _("--sampler must be ddpm or ddim"));
  if (output == NULL)
    return tf_cli_usage_error (cli, line, _("no --output FILE.png given"));
  if (columns < 1 || columns > 64 || scale < 1 || scale > 16 || seed < 0)
    return tf_cli_usage_error (cli, line, _("--columns must be 1 to 64, --scale 1 to 16, --seed not negative"));
  /* The sources the grid draws, and whether a row is one prompt. */
  const char *all_sources[3] = { "fashion", "shapes", "emoji" };
  const char *const *sources = all_sources;
  int n_sources = no_extra ? 1 : 3;
  gboolean prompt_rows = FALSE;
  if (source != NULL)
    {
      int which = -1;
      for (int k = 0; k < 3; k++)
        if (strcmp (source, all_sources[k]) == 0)
          which = k;
      if (which < 0)
        return tf_cli_usage_error (cli, line, _("--source must be fashion, shapes or emoji"));
      sources = all_sources + which;
      n_sources = 1;
      prompt_rows = which > 0;
    }
  if (n_rows < 1 || n_rows > 64)
    return tf_cli_usage_error (cli, line, _("--rows must be 1 to 64"));
  g_autoptr(GError) error = NULL;
  settings.seed = (uint64_t) seed;
  if (!tf_generate_settings_validate (&settings, &error))
    return tf_cli_usage_error (cli, line, error->message);

  g_autofree char *model_path = NULL;
  g_autoptr(TfGenerator) gen = tf_cli_open_generator (cli, model, &model_path);
  if (gen == NULL)
    return TF_CLI_EXIT_FAILURE;
  tf_cli_image_options_use_model (model_path, not_given, &settings);
  const TfConfig *config = tf_model_config (tf_generator_model (gen));
  const int size = config->image_size, channels = config->image_channels;
  const int values = tf_config_image_values (config);

  /* The rows: a source and, for fashion, the class; or one prompt each. */
  g_autoptr(GPtrArray) row_labels = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) prompts = g_ptr_array_new_with_free_func (g_free);
  for (int s = 0; s < n_sources; s++)
    {
      g_autoptr(TfDataSource) src = tf_data_source_open (sources[s], TF_SPLIT_HELDOUT, size,
                                                         channels, &error);
      TfRng rng;
      if (src == NULL)
        return tf_cli_fail (cli, error);
      tf_rng_seed (&rng, settings.seed);
      const int64_t n = tf_data_source_size (src);
      if (!prompt_rows && strcmp (sources[s], "fashion") == 0)
        {
          const char *const *subjects = tf_data_source_subjects (src);
          for (int c = 0; subjects[c] != NULL; c++)
            {
              int found = 0;
              g_ptr_array_add (row_labels, g_strdup (subjects[c]));
              for (int64_t i = 0; i < n && found < columns; i++)
                {
                  TfExample ex;
                  if (!tf_data_source_get (src, i, &rng, &ex, &error))
                    return tf_cli_fail (cli, error);
                  if (ex.label == c)
                    {
                      g_ptr_array_add (prompts, g_steal_pointer (&ex.caption));
                      found++;
                    }
                  tf_example_clear (&ex);
                }
              for (; found < columns; found++)
                g_ptr_array_add (prompts, g_strdup (subjects[c]));
            }
        }
      else if (prompt_rows)
        for (int r = 0; r < n_rows; r++)
          {
            TfExample ex;
            if (!tf_data_source_get (src, r * (n / n_rows), &rng, &ex, &error))
              return tf_cli_fail (cli, error);
            g_ptr_array_add (row_labels, g_strdup (ex.caption));
            for (int k = 0; k < columns; k++)
              g_ptr_array_add (prompts, g_strdup (ex.caption));
            tf_example_clear (&ex);
          }
      else
        {
          g_ptr_array_add (row_labels, g_strdup (sources[s]));
          for (int k = 0; k < columns; k++)
            {
              TfExample ex;
              if (!tf_data_source_get (src, k * (n / columns), &rng, &ex, &error))
                return tf_cli_fail (cli, error);
              g_ptr_array_add (prompts, g_steal_pointer (&ex.caption));
              tf_example_clear (&ex);
            }
        }
    }

  /* A prompt beside its row takes up to three lines of a wider label. */
  const int rows = (int) row_labels->len, cell = size * scale, gap = 4;
  const int label_w = prompt_rows ? 300 : 120;
  const int width = label_w + columns * (cell + gap) + gap, top = 36;
  const int height = top + rows * (cell + gap) + gap;
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
  cairo_set_font_size (cr, 14);
  g_autofree char *model_name = tf_model_name_from_path (model_path);
  g_autofree char *sampler_name = g_ascii_strup (tf_sampler_name (settings.sampler), -1);
  /* Translators: how a grid was drawn, "25 steps DDPM, guidance 5" */
  g_autofree char *drawn_with = g_strdup_printf (ngettext ("%d step %s, guidance %g",
                                                           "%d steps %s, guidance %g",
                                                           (unsigned long) settings.steps),
                                                 settings.steps, sampler_name, settings.cfg);
  /* Translators: the grid's title, "default: 25 steps DDPM, guidance 5, seed 1" */
  g_autofree char *title = g_strdup_printf (_("%s: %s, seed %" PRId64), model_name, drawn_with,
                                            seed);
  tf_cairo_text_at (cr, gap, top / 2.0, title, 0, 0.5);

  g_autofree float *pixels = g_new (float, values);
  g_autofree guint8 *rgb = g_new (guint8, values);
  struct sigaction previous;
  tf_cli_catch_interrupt (gen, &previous);
  for (int r = 0; r < rows; r++)
    {
      const double y = top + r * (cell + gap);
      cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
      cairo_set_font_size (cr, 14);
      if (prompt_rows)
        draw_wrapped (cr, label_w - 10, y + cell / 2.0, g_ptr_array_index (row_labels, r), 34);
      else
        tf_cairo_text_at (cr, label_w - 10, y + cell / 2.0, g_ptr_array_index (row_labels, r), 1,
                          0.5);
      for (int k = 0; k < columns; k++)
        {
          const char *prompt = g_ptr_array_index (prompts, r * columns + k);
          TfGenerateSettings s = settings;
          s.seed = settings.seed + (uint64_t) (r * columns + k);
          fprintf (cli->err, "\r\033[K%d/%d %s", r * columns + k + 1, rows * columns, prompt);
          fflush (cli->err);
          if (!tf_generator_generate_image (gen, prompt, &s, NULL, pixels, &error))
            {
              tf_cli_release_interrupt (&previous);
              cairo_destroy (cr);
              cairo_surface_destroy (surface);
              fputc ('\n', cli->err);
              return tf_cli_fail (cli, error);
            }
          tf_image_from_model (pixels, size, channels, rgb);
          cairo_surface_t *img = cairo_image_surface_create (CAIRO_FORMAT_RGB24, size, size);
          guint8 *data = cairo_image_surface_get_data (img);
          const int stride = cairo_image_surface_get_stride (img);
          cairo_surface_flush (img);
          for (int yy = 0; yy < size; yy++)
            for (int xx = 0; xx < size; xx++)
              {
                const guint8 *p = rgb + ((size_t) yy * size + xx) * channels;
                guint32 v = channels >= 3 ? (guint32) p[0] << 16 | (guint32) p[1] << 8 | p[2]
                                          : (guint32) p[0] * 0x010101u;
                *(guint32 *) (data + (size_t) yy * stride + 4 * xx) = v;
              }
          cairo_surface_mark_dirty (img);
          cairo_save (cr);
          cairo_translate (cr, label_w + k * (cell + gap), y);
          cairo_scale (cr, scale, scale);
          cairo_set_source_surface (cr, img, 0, 0);
          cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
          cairo_paint (cr);
          cairo_restore (cr);
          cairo_surface_destroy (img);
        }
    }
  tf_cli_release_interrupt (&previous);
  fputc ('\n', cli->err);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  gboolean ok = write_surface (surface, output, &error);
  cairo_surface_destroy (surface);
  if (!ok)
    return tf_cli_fail (cli, error);
  fprintf (cli->out, "%s (%s)\n", output, drawn_with);
  return TF_CLI_EXIT_OK;
}
