/* tf-loss-plot.h: the loss curves of a training run, drawn with Cairo.
 *
 * One drawing serves `transfusion-cli plot` (into a PNG) and the Teach view
 * of the application (live, as the run goes): the LM and diffusion losses
 * per step (faint) and smoothed (bold), on a log scale when they span more
 * than a factor of three, above the learning rate, against the step. No
 * GTK here. */
#pragma once

#include <cairo.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  double step, lm, ddpm, lr;
  int    segment;     /* runs: a new one starts where the step goes back */
  int    log;         /* which of the logs given, in order */
} TfLossPoint;

/* A new array of TfLossPoint. */
GArray *tf_loss_points_new (void);

/* Appends the complete records of @path, log number @log, to @points
 * (TfLossPoint), their steps moved on by @offset. A line that is not a JSON
 * object with step, lm, ddpm and lr (the last line of a killed run, say) is
 * skipped and counted in *skipped. *segment is the run of the last point so
 * far (−1 before the first); a log starts a run, and so does a step that
 * goes back. Fails when the file has no record at all. */
gboolean tf_loss_log_read (const char *path, int log, double offset, GArray *points,
                           int *segment, int *skipped, GError **error);

/* Appends one point of the run whose last point is at the end of @points
 * (a new run when @points is empty or the step goes back). */
void tf_loss_points_append (GArray *points, double step, double lm, double ddpm, double lr);

/* Draws @points (at least one) in @width × @height from (0, 0) on @cr:
 * @title on top (NULL: none), the legend, the loss panel and the learning
 * rate panel. @n_logs > 1 marks where each next log starts. */
void tf_loss_plot_draw (cairo_t *cr, int width, int height, const GArray *points, int n_logs,
                        const char *title);

/* Shows @text with its ink box aligned at (@x, @y): @align_x 0 left, 0.5
 * centred, 1 right; @align_y likewise from the top. */
void tf_cairo_text_at (cairo_t *cr, double x, double y, const char *text, double align_x,
                       double align_y);

G_END_DECLS
