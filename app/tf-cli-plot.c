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

/* ---- The log -------------------------------------------------------------- */

typedef struct {
  double step, lm, ddpm, lr;
  int    segment;     /* runs: a new one starts where the step goes back */
  int    log;         /* which of the logs given, in order */
} LogPoint;

/* Appends the complete records of @path, log number @log, to @points, their
 * steps moved on by @offset. A line that is not a JSON object with step, lm,
 * ddpm and lr (the last line of a killed run, say) is skipped and counted in
 * *skipped. *segment is the run of the last point so far (−1 before the
 * first); a log starts a run, and so does a step that goes back. */
static gboolean
read_log (const char *path, int log, double offset, GArray *points, int *segment,
          int *skipped, GError **error)
{
  g_autofree char *contents = NULL;
  gsize len;
  double last_step = -1;
  const guint first = points->len;

  *skipped = 0;
  if (!g_file_get_contents (path, &contents, &len, error))
    return FALSE;
  g_auto(GStrv) lines = g_strsplit (contents, "\n", -1);
  for (int i = 0; lines[i] != NULL; i++)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      JsonObject *o;

      if (g_strstrip (lines[i])[0] == '\0')
        continue;
      if (!tf_json_parse (parser, lines[i], -1, NULL)
          || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        {
          (*skipped)++;
          continue;
        }
      o = json_node_get_object (json_parser_get_root (parser));
      if (!json_object_has_member (o, "step") || !json_object_has_member (o, "lm")
          || !json_object_has_member (o, "ddpm") || !json_object_has_member (o, "lr"))
        {
          (*skipped)++;
          continue;
        }
      LogPoint p = {
        .step = json_object_get_double_member (o, "step"),
        .lm = json_object_get_double_member (o, "lm"),
        .ddpm = json_object_get_double_member (o, "ddpm"),
        .lr = json_object_get_double_member (o, "lr"),
      };
      if (last_step < 0 || p.step <= last_step)
        (*segment)++;
      last_step = p.step;
      p.step += offset;
      p.segment = *segment;
      p.log = log;
      g_array_append_val (points, p);
    }
  if (points->len == first)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: no training records (lines with step, lm, ddpm and lr)", path);
      return FALSE;
    }
  return TRUE;
}

/* ---- Axes ---------------------------------------------------------------- */

typedef struct {
  double x, y, w, h;          /* the plot area, in pixels */
  double x0, x1, y0, y1;      /* data range (y in log10 when log_y) */
  gboolean log_y;
} Panel;

static double
panel_x (const Panel *p, double v)
{
  return p->x + (v - p->x0) / (p->x1 - p->x0) * p->w;
}

static double
panel_y (const Panel *p, double v)
{
  double t = p->log_y ? log10 (MAX (v, 1e-30)) : v;
  return p->y + p->h - (t - p->y0) / (p->y1 - p->y0) * p->h;
}

/* A tick spacing of 1, 2 or 5 × 10^k giving about @n ticks over @range. */
static double
nice_step (double range, int n)
{
  double raw = range / n, mag = pow (10, floor (log10 (raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* @thousands: write 1000 and more as "2k" (an axis that reaches 10 000
 * labels all its ticks alike). */
static void
format_number (char *buf, size_t size, double v, gboolean thousands)
{
  double a = fabs (v);
  if (v == 0)
    g_snprintf (buf, size, "0");
  else if (a >= 1e6)
    g_snprintf (buf, size, "%gM", v / 1e6);
  else if (a >= 1e3 && thousands)
    g_snprintf (buf, size, "%gk", v / 1e3);
  else if (a < 1e-2)
    g_snprintf (buf, size, "%.0e", v);
  else
    g_snprintf (buf, size, "%g", v);
}

static void
text_at (cairo_t *cr, double x, double y, const char *text, double align_x, double align_y)
{
  cairo_text_extents_t e;
  cairo_text_extents (cr, text, &e);
  cairo_move_to (cr, x - e.width * align_x - e.x_bearing, y - e.height * align_y - e.y_bearing);
  cairo_show_text (cr, text);
}

static void
draw_frame (cairo_t *cr, const Panel *p, const char *y_label, gboolean x_labels)
{
  char buf[32];

  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_rectangle (cr, p->x, p->y, p->w, p->h);
  cairo_fill (cr);
  cairo_set_font_size (cr, 13);
  cairo_set_line_width (cr, 1);

  /* x ticks and grid */
  double xs = nice_step (p->x1 - p->x0, 8);
  for (double v = ceil (p->x0 / xs) * xs; v <= p->x1 + 1e-9 * xs; v += xs)
    {
      double px = round (panel_x (p, v)) + 0.5;
      cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
      cairo_move_to (cr, px, p->y);
      cairo_line_to (cr, px, p->y + p->h);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
      cairo_move_to (cr, px, p->y + p->h);
      cairo_line_to (cr, px, p->y + p->h + 5);
      cairo_stroke (cr);
      if (x_labels)
        {
          format_number (buf, sizeof buf, v, p->x1 >= 1e4);
          text_at (cr, px, p->y + p->h + 9, buf, 0.5, 0);
        }
    }
  /* y ticks: decades (and 2, 5 between them when there are few) or nice steps */
  if (p->log_y)
    {
      const gboolean few = p->y1 - p->y0 <= 3;
      for (int e = (int) floor (p->y0); e <= (int) ceil (p->y1); e++)
        for (int m = 1; m <= 9; m++)
          {
            double v = m * pow (10, e), t = log10 (v);
            if (t < p->y0 - 1e-9 || t > p->y1 + 1e-9)
              continue;
            double py = round (panel_y (p, v)) + 0.5;
            gboolean major = m == 1, labelled = major || (few && (m == 2 || m == 5));
            cairo_set_source_rgb (cr, major ? 0.85 : 0.94, major ? 0.85 : 0.94, major ? 0.85 : 0.94);
            cairo_move_to (cr, p->x, py);
            cairo_line_to (cr, p->x + p->w, py);
            cairo_stroke (cr);
            cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
            cairo_move_to (cr, p->x - (major ? 6 : 3), py);
            cairo_line_to (cr, p->x, py);
            cairo_stroke (cr);
            if (labelled)
              {
                format_number (buf, sizeof buf, v, FALSE);
                text_at (cr, p->x - 9, py, buf, 1, 0.5);
              }
          }
    }
  else
    {
      double ys = nice_step (p->y1 - p->y0, 4);
      for (double v = ceil (p->y0 / ys) * ys; v <= p->y1 + 1e-9 * ys; v += ys)
        {
          double py = round (panel_y (p, v)) + 0.5;
          cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
          cairo_move_to (cr, p->x, py);
          cairo_line_to (cr, p->x + p->w, py);
          cairo_stroke (cr);
          cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
          cairo_move_to (cr, p->x - 6, py);
          cairo_line_to (cr, p->x, py);
          cairo_stroke (cr);
          format_number (buf, sizeof buf, v, FALSE);
          text_at (cr, p->x - 9, py, buf, 1, 0.5);
        }
    }
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_rectangle (cr, p->x + 0.5, p->y + 0.5, p->w - 1, p->h - 1);
  cairo_stroke (cr);
  /* the y label, turned */
  cairo_save (cr);
  cairo_translate (cr, p->x - 62, p->y + p->h / 2);
  cairo_rotate (cr, -G_PI / 2);
  cairo_set_font_size (cr, 14);
  text_at (cr, 0, 0, y_label, 0.5, 0.5);
  cairo_restore (cr);
}

typedef enum { FIELD_LM, FIELD_DDPM, FIELD_LR } Field;

static double
field (const LogPoint *p, Field f)
{
  return f == FIELD_LM ? p->lm : f == FIELD_DDPM ? p->ddpm : p->lr;
}

/* One curve: each run's points joined, not across runs. With @smooth, an
 * exponential moving average of @span points (restarted at each run). */
static void
draw_curve (cairo_t *cr, const Panel *p, const GArray *points, Field f, gboolean smooth,
            double span)
{
  const double alpha = 2.0 / (span + 1);
  double avg = 0;
  gboolean open = FALSE;
  int segment = -1;

  cairo_save (cr);
  cairo_rectangle (cr, p->x, p->y, p->w, p->h);
  cairo_clip (cr);
  for (guint i = 0; i < points->len; i++)
    {
      const LogPoint *pt = &g_array_index (points, LogPoint, i);
      double v = field (pt, f);
      if (p->log_y && !(v > 0))
        {
          open = FALSE;
          continue;
        }
      if (pt->segment != segment)
        {
          segment = pt->segment;
          open = FALSE;
          avg = v;
        }
      avg = smooth ? (p->log_y ? exp (alpha * log (v) + (1 - alpha) * log (avg))
                               : alpha * v + (1 - alpha) * avg)
                   : v;
      if (open)
        cairo_line_to (cr, panel_x (p, pt->step), panel_y (p, avg));
      else
        cairo_move_to (cr, panel_x (p, pt->step), panel_y (p, avg));
      open = TRUE;
    }
  cairo_stroke (cr);
  cairo_restore (cr);
}

#define WARM_RGB 0.55, 0.25, 0.60

/* Dashed lines where a resumed run starts, solid purple ones where the next
 * log (a warm restart) does. */
static void
draw_resumes (cairo_t *cr, const Panel *p, const GArray *points)
{
  const double dash[] = { 4, 4 };

  cairo_save (cr);
  for (guint i = 1; i < points->len; i++)
    {
      const LogPoint *a = &g_array_index (points, LogPoint, i - 1);
      const LogPoint *b = &g_array_index (points, LogPoint, i);
      if (a->segment == b->segment)
        continue;
      const gboolean warm = a->log != b->log;
      if (warm)
        cairo_set_source_rgba (cr, WARM_RGB, 0.9);
      else
        cairo_set_source_rgba (cr, 0.3, 0.3, 0.3, 0.7);
      cairo_set_line_width (cr, warm ? 2 : 1);
      cairo_set_dash (cr, dash, warm ? 0 : 2, 0);
      double px = round (panel_x (p, b->step)) + 0.5;
      cairo_move_to (cr, px, p->y);
      cairo_line_to (cr, px, p->y + p->h);
      cairo_stroke (cr);
    }
  cairo_restore (cr);
}

typedef struct {
  const char *label;
  double r, g, b;
  gboolean dashed;
} LegendEntry;

/* The legend as one flowing line (wrapped when it does not fit) from
 * (@left, @top) to @right, above the plot so that it hides no curve.
 * Returns the height it took. */
static double
draw_legend (cairo_t *cr, double left, double top, double right, const LegendEntry *entries,
             int n)
{
  const double dash[] = { 5, 3 }, line_h = 20;
  double x = left, y = top + line_h / 2;

  cairo_set_font_size (cr, 13);
  for (int i = 0; i < n; i++)
    {
      cairo_text_extents_t e;
      cairo_text_extents (cr, entries[i].label, &e);
      const double w = 36 + e.x_advance;
      if (x > left && x + w > right)
        {
          x = left;
          y += line_h;
        }
      cairo_set_source_rgb (cr, entries[i].r, entries[i].g, entries[i].b);
      cairo_set_line_width (cr, 2.5);
      cairo_set_dash (cr, dash, entries[i].dashed ? 2 : 0, 0);
      cairo_move_to (cr, x, y);
      cairo_line_to (cr, x + 28, y);
      cairo_stroke (cr);
      cairo_set_dash (cr, NULL, 0, 0);
      cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
      text_at (cr, x + 34, y, entries[i].label, 0, 0.5);
      x += w + 24;
    }
  return y + line_h / 2 - top;
}

/* Draws the curves of the logs @log_paths into a @width × @height PNG at
 * @out_path; each log after the first continues the one before it (a warm
 * restart from its weights), so its steps follow on. Skipped lines are
 * reported on @err. */
static gboolean
plot_log (char **log_paths, const char *out_path, int width, int height, FILE *err,
          GError **error)
{
  g_autoptr(GArray) points = g_array_new (FALSE, FALSE, sizeof (LogPoint));
  int segment = -1, n_logs = 0, resumes = 0;
  for (; log_paths[n_logs] != NULL; n_logs++)
    {
      const double offset = points->len > 0
        ? g_array_index (points, LogPoint, points->len - 1).step : 0;
      int skipped;
      if (!read_log (log_paths[n_logs], n_logs, offset, points, &segment, &skipped, error))
        return FALSE;
      if (skipped > 0)
        fprintf (err, _("%s: %s: %d line(s) were not complete records and were skipped\n"),
                 PROGRAM, log_paths[n_logs], skipped);
    }
  const int segments = segment + 1;
  for (guint i = 1; i < points->len; i++)
    {
      const LogPoint *a = &g_array_index (points, LogPoint, i - 1);
      const LogPoint *b = &g_array_index (points, LogPoint, i);
      resumes += a->segment != b->segment && a->log == b->log;
    }

  const LogPoint *first = &g_array_index (points, LogPoint, 0);
  double x0 = first->step, x1 = first->step, lo = INFINITY, hi = 0, lr_hi = 0;
  for (guint i = 0; i < points->len; i++)
    {
      const LogPoint *p = &g_array_index (points, LogPoint, i);
      x0 = MIN (x0, p->step);
      x1 = MAX (x1, p->step);
      for (Field f = FIELD_LM; f <= FIELD_DDPM; f++)
        if (field (p, f) > 0)
          {
            lo = MIN (lo, field (p, f));
            hi = MAX (hi, field (p, f));
          }
      lr_hi = MAX (lr_hi, p->lr);
    }
  if (x1 <= x0)
    x1 = x0 + 1;
  if (!(hi > 0))
    lo = 0.1, hi = 1;
  /* Log scale when the losses span more than a factor of three. */
  const gboolean log_y = hi / lo > 3;
  const double pad_left = 92, pad_right = 24, gap = 46, pad_bottom = 62;
  const double span = MAX (5.0, points->len / 40.0);
  const double lm_rgb[3] = { 0.12, 0.40, 0.75 }, dd_rgb[3] = { 0.85, 0.35, 0.10 };

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 0.97, 0.97, 0.96);
  cairo_paint (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

  /* The title and the legend first: the panels take the room left. */
  g_autoptr(GString) names = g_string_new (NULL);
  for (int i = 0; i < n_logs; i++)
    {
      g_autofree char *name = g_path_get_basename (log_paths[i]);
      g_string_append_printf (names, "%s%s", i > 0 ? " → " : "", name);
    }
  g_autofree char *title = g_strdup_printf (_("%s: %u steps logged, %d run%s"), names->str,
                                            points->len, segments, segments == 1 ? "" : "s");
  cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
  cairo_set_font_size (cr, 18);
  text_at (cr, pad_left, 24, title, 0, 0.5);
  g_autofree char *smooth_lm = g_strdup_printf (_("LM loss (cross-entropy, nats), smoothed over ~%.0f steps"), span);
  LegendEntry legend[5] = {
    { smooth_lm, lm_rgb[0], lm_rgb[1], lm_rgb[2], FALSE },
    { _("diffusion loss (MSE of ε), smoothed"), dd_rgb[0], dd_rgb[1], dd_rgb[2], FALSE },
    { _("raw values, per step"), 0.6, 0.6, 0.6, FALSE },
  };
  int n_legend = 3;
  if (resumes > 0)
    legend[n_legend++] = (LegendEntry) { _("a resumed run starts"), 0.3, 0.3, 0.3, TRUE };
  if (n_logs > 1)
    legend[n_legend++] = (LegendEntry) { _("the next log starts (a warm restart from the weights)"),
                                         WARM_RGB, FALSE };
  const double pad_top = 46 + draw_legend (cr, pad_left, 46, width - pad_right, legend,
                                           n_legend) + 14;

  const double area_h = MAX (height - pad_top - pad_bottom - gap, 40.0);
  Panel loss = { pad_left, pad_top, width - pad_left - pad_right, area_h * 0.72,
                 x0, x1, 0, 0, log_y };
  Panel rate = { pad_left, pad_top + loss.h + gap, loss.w, area_h - loss.h, x0, x1, 0,
                 lr_hi > 0 ? lr_hi * 1.08 : 1, FALSE };
  if (log_y)
    {
      loss.y0 = log10 (lo) - 0.05 * (log10 (hi) - log10 (lo));
      loss.y1 = log10 (hi) + 0.05 * (log10 (hi) - log10 (lo));
    }
  else
    {
      loss.y0 = MAX (0, lo - 0.05 * (hi - lo));
      loss.y1 = hi + 0.05 * (hi - lo) + 1e-9;
    }

  draw_frame (cr, &loss, log_y ? _("loss (log scale)") : _("loss"), FALSE);
  draw_frame (cr, &rate, _("learning rate"), TRUE);
  draw_resumes (cr, &loss, points);
  draw_resumes (cr, &rate, points);

  const Field fields[2] = { FIELD_LM, FIELD_DDPM };
  const double *colours[2] = { lm_rgb, dd_rgb };
  for (int k = 0; k < 2; k++)
    {
      const double *c = colours[k];
      cairo_set_line_width (cr, 1);
      cairo_set_source_rgba (cr, c[0], c[1], c[2], 0.25);
      draw_curve (cr, &loss, points, fields[k], FALSE, 1);
      cairo_set_line_width (cr, 2.5);
      cairo_set_source_rgb (cr, c[0], c[1], c[2]);
      draw_curve (cr, &loss, points, fields[k], TRUE, span);
    }
  cairo_set_line_width (cr, 2);
  cairo_set_source_rgb (cr, 0.2, 0.55, 0.25);
  draw_curve (cr, &rate, points, FIELD_LR, FALSE, 1);

  cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
  cairo_set_font_size (cr, 14);
  text_at (cr, rate.x + rate.w / 2, height - 18, _("optimizer step"), 0.5, 0.5);

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

int
tf_cli_samples (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s samples [OPTION…] --output FILE.png", PROGRAM);
  g_autofree char *output = NULL, *model = NULL;
  int columns = 6, scale = 3;
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
    { "steps", 0, 0, G_OPTION_ARG_INT, &settings.steps, N_("Denoising steps (25)"), N_("S") },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &settings.cfg, N_("Guidance scale (3)"), N_("W") },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, N_("Seed of the first image; the others follow (1)"), N_("S") },
    { "fashion-only", 0, 0, G_OPTION_ARG_NONE, &no_extra, N_("Leave out the shapes and emoji rows"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("A row per Fashion-MNIST class (prompts: captions of held-out t10k images of\n"
        "the class), then a row of held-out shapes prompts and one of held-out emoji\n"
        "prompts; DDIM sampling. Ctrl-C stops."));
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  if (output == NULL)
    return tf_cli_usage_error (cli, line, _("no --output FILE.png given"));
  if (columns < 1 || columns > 64 || scale < 1 || scale > 16 || seed < 0)
    return tf_cli_usage_error (cli, line, _("--columns must be 1 to 64, --scale 1 to 16, --seed not negative"));
  g_autoptr(GError) error = NULL;
  settings.seed = (uint64_t) seed;
  if (!tf_generate_settings_validate (&settings, &error))
    return tf_cli_usage_error (cli, line, error->message);

  g_autoptr(TfGenerator) gen = tf_cli_open_generator (cli, model, NULL);
  if (gen == NULL)
    return TF_CLI_EXIT_FAILURE;
  const TfConfig *config = tf_model_config (tf_generator_model (gen));
  const int size = config->image_size, channels = config->image_channels;
  const int values = tf_config_image_values (config);

  /* The rows: a source and, for fashion, the class. */
  const char *sources[3] = { "fashion", "shapes", "emoji" };
  const int n_sources = no_extra ? 1 : 3;
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
      if (s == 0)
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

  const int rows = (int) row_labels->len, cell = size * scale, gap = 4, label_w = 120;
  const int width = label_w + columns * (cell + gap) + gap, top = 36;
  const int height = top + rows * (cell + gap) + gap;
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
  cairo_set_font_size (cr, 14);
  g_autofree char *model_name = NULL;
  {
    g_autofree char *path = model != NULL ? g_strdup (model) : tf_default_model_path ();
    model_name = tf_model_name_from_path (path);
  }
  g_autofree char *title = g_strdup_printf (_("%s: %d steps DDIM, guidance %g, seed %" PRId64),
                                            model_name, settings.steps, settings.cfg, seed);
  text_at (cr, gap, top / 2.0, title, 0, 0.5);

  g_autofree float *pixels = g_new (float, values);
  g_autofree guint8 *rgb = g_new (guint8, values);
  struct sigaction previous;
  tf_cli_catch_interrupt (gen, &previous);
  for (int r = 0; r < rows; r++)
    {
      const double y = top + r * (cell + gap);
      cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
      cairo_set_font_size (cr, 14);
      text_at (cr, label_w - 10, y + cell / 2.0, g_ptr_array_index (row_labels, r), 1, 0.5);
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
  fprintf (cli->out, "%s\n", output);
  return TF_CLI_EXIT_OK;
}
