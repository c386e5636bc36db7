/* tf-loss-plot.c: the loss curves of a training run (tf-loss-plot.h). */
#include "config.h"

#include "tf-loss-plot.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <math.h>

#include "tf-json.h"
#include "transfusion.h"

GArray *
tf_loss_points_new (void)
{
  return g_array_new (FALSE, FALSE, sizeof (TfLossPoint));
}

void
tf_loss_points_append (GArray *points, double step, double lm, double ddpm, double lr)
{
  TfLossPoint p = { step, lm, ddpm, lr, 0, 0 };
  if (points->len > 0)
    {
      const TfLossPoint *last = &g_array_index (points, TfLossPoint, points->len - 1);
      p.segment = last->segment + (step <= last->step);
      p.log = last->log;
    }
  g_array_append_val (points, p);
}

/* ---- The log -------------------------------------------------------------- */


/* tf_loss_log_read: appends the complete records of @path, log number @log, to @points, their
 * steps moved on by @offset. A line that is not a JSON object with step, lm,
 * ddpm and lr (the last line of a killed run, say) is skipped and counted in
 * *skipped. *segment is the run of the last point so far (−1 before the
 * first); a log starts a run, and so does a step that goes back. */
gboolean
tf_loss_log_read (const char *path, int log, double offset, GArray *points, int *segment,
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
      TfLossPoint p = {
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

void
tf_cairo_text_at (cairo_t *cr, double x, double y, const char *text, double align_x,
                  double align_y)
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
          tf_cairo_text_at (cr, px, p->y + p->h + 9, buf, 0.5, 0);
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
                tf_cairo_text_at (cr, p->x - 9, py, buf, 1, 0.5);
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
          tf_cairo_text_at (cr, p->x - 9, py, buf, 1, 0.5);
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
  tf_cairo_text_at (cr, 0, 0, y_label, 0.5, 0.5);
  cairo_restore (cr);
}

typedef enum { FIELD_LM, FIELD_DDPM, FIELD_LR } Field;

static double
field (const TfLossPoint *p, Field f)
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
      const TfLossPoint *pt = &g_array_index (points, TfLossPoint, i);
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
      const TfLossPoint *a = &g_array_index (points, TfLossPoint, i - 1);
      const TfLossPoint *b = &g_array_index (points, TfLossPoint, i);
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

#define LEGEND_FONT 13.0
#define LEGEND_MIN_FONT 8.0

/* The legend as one flowing line (wrapped when it does not fit) from
 * (@left, @top) to @right, above the plot so that it hides no curve; an
 * entry wider than the whole line on its own gets a smaller font, down to
 * LEGEND_MIN_FONT. Returns the height it took. */
static double
draw_legend (cairo_t *cr, double left, double top, double right, const LegendEntry *entries,
             int n)
{
  const double dash[] = { 5, 3 }, line_h = 20;
  double x = left, y = top + line_h / 2;

  for (int i = 0; i < n; i++)
    {
      cairo_text_extents_t e;
      cairo_set_font_size (cr, LEGEND_FONT);
      cairo_text_extents (cr, entries[i].label, &e);
      if (36 + e.x_advance > right - left && e.x_advance > 0)
        {
          cairo_set_font_size (cr, MAX (LEGEND_MIN_FONT,
                                        LEGEND_FONT * (right - left - 36) / e.x_advance));
          cairo_text_extents (cr, entries[i].label, &e);
        }
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
      tf_cairo_text_at (cr, x + 34, y, entries[i].label, 0, 0.5);
      x += w + 24;
    }
  return y + line_h / 2 - top;
}

void
tf_loss_plot_draw (cairo_t *cr, int width, int height, const GArray *points, int n_logs,
                   const char *title)
{
  g_return_if_fail (points->len > 0);
  int resumes = 0;
  for (guint i = 1; i < points->len; i++)
    {
      const TfLossPoint *a = &g_array_index (points, TfLossPoint, i - 1);
      const TfLossPoint *b = &g_array_index (points, TfLossPoint, i);
      resumes += a->segment != b->segment && a->log == b->log;
    }

  const TfLossPoint *first = &g_array_index (points, TfLossPoint, 0);
  double x0 = first->step, x1 = first->step, lo = INFINITY, hi = 0, lr_hi = 0;
  for (guint i = 0; i < points->len; i++)
    {
      const TfLossPoint *p = &g_array_index (points, TfLossPoint, i);
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

  cairo_save (cr);
  cairo_set_source_rgb (cr, 0.97, 0.97, 0.96);
  cairo_paint (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

  /* The title and the legend first: the panels take the room left. */
  double top = 14;
  if (title != NULL)
    {
      /* A long title (the names of many logs) is set smaller to fit the
       * width, down to a size that still reads; past that its middle gives
       * way to "…", keeping how it starts and its summary at the end. */
      cairo_text_extents_t e;
      const double room = width - pad_left - pad_right;
      g_autofree char *shown = g_strdup (title);
      cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
      cairo_set_font_size (cr, 18);
      cairo_text_extents (cr, shown, &e);
      if (e.width > room && room > 0)   /* hinting may round up a little */
        cairo_set_font_size (cr, MAX (9.0, 0.97 * 18 * room / e.width));
      cairo_text_extents (cr, shown, &e);
      const glong n = g_utf8_strlen (title, -1);
      for (glong cut = 1; e.width > room && cut < n; cut++)
        {
          const glong keep = n - cut, head = keep / 2;
          g_autofree char *front = g_utf8_substring (title, 0, head);
          g_autofree char *back = g_utf8_substring (title, n - (keep - head), n);
          g_free (shown);
          shown = g_strconcat (front, "…", back, NULL);
          cairo_text_extents (cr, shown, &e);
        }
      tf_cairo_text_at (cr, pad_left, 24, shown, 0, 0.5);
      top = 46;
    }
  g_autofree char *smooth_lm = g_strdup_printf (_("LM loss (cross-entropy, nats), smoothed over ~%.0f steps"), span);
  LegendEntry legend[5] = {
    { smooth_lm, lm_rgb[0], lm_rgb[1], lm_rgb[2], FALSE },
    { _("diffusion loss (MSE of the prediction), smoothed"), dd_rgb[0], dd_rgb[1], dd_rgb[2], FALSE },
    { _("raw values, per step"), 0.6, 0.6, 0.6, FALSE },
  };
  int n_legend = 3;
  if (resumes > 0)
    legend[n_legend++] = (LegendEntry) { _("a resumed run starts"), 0.3, 0.3, 0.3, TRUE };
  if (n_logs > 1)
    legend[n_legend++] = (LegendEntry) { _("the next log starts (a warm restart from the weights)"),
                                         WARM_RGB, FALSE };
  /* Narrow (the Teach view at phone width): the legend takes the whole
   * width when an entry does not fit beside the axis labels' margin. */
  double legend_left = pad_left;
  cairo_set_font_size (cr, LEGEND_FONT);
  for (int i = 0; i < n_legend; i++)
    {
      cairo_text_extents_t e;
      cairo_text_extents (cr, legend[i].label, &e);
      if (36 + e.x_advance > width - pad_right - pad_left)
        legend_left = pad_right;
    }
  const double pad_top = top + draw_legend (cr, legend_left, top, width - pad_right, legend,
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
  tf_cairo_text_at (cr, rate.x + rate.w / 2, height - 18, _("optimizer step"), 0.5, 0.5);

  cairo_restore (cr);
}
