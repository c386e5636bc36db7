/* test-training.c: TfTraining, the trainer on a worker thread, on a plain
 * main loop (no GTK): steps arrive in order and in bursts, a pause saves and
 * a resume ends with the bits of an uninterrupted run, stop keeps the model
 * as it is, a run in minutes decides its steps first, and a second start
 * while one runs is refused. In the `threads` suite, so ThreadSanitizer
 * watches the hand-offs. */
#include "config.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "tf-data.h"
#include "tf-image.h"
#include "tf-loss-plot.h"
#include "tf-safetensors.h"
#include "tf-training.h"
#include "tf-test-util.h"

static char *tmp_dir;
static char *folder;

typedef struct {
  TfTraining *training;
  guint       progress;
  guint       grids;
  guint       n_images;
  int64_t     last_step;     /* steps never go back within a run */
  int64_t     pause_at;      /* > 0: pause (or stop) at this step or later */
  gboolean    stop;          /* stop instead of pause */
  gboolean    asked;
  int         end;           /* −1 before `ended` */
  char       *error;
} Log;

static void
on_progress (TfTraining *training, Log *log)
{
  const TfTrainProgress *p = tf_training_get_progress (training);

  log->progress++;
  if (p->step > 0)
    {
      g_assert_cmpint (p->step, >, log->last_step);
      log->last_step = p->step;
    }
  if (log->pause_at > 0 && !log->asked && p->step >= log->pause_at)
    {
      log->asked = TRUE;
      if (log->stop)
        tf_training_stop (training);
      else
        tf_training_pause (training);
    }
}

static void
on_samples (TfTraining *training, guint n_images, guint size, guint channels, GBytes *pixels,
            Log *log)
{
  log->grids++;
  log->n_images = n_images;
  g_assert_cmpuint (g_bytes_get_size (pixels), ==, (gsize) n_images * size * size * channels * 4);
}

static void
on_ended (TfTraining *training, int end, const GError *error, Log *log)
{
  g_assert_false (tf_training_get_running (training));
  log->end = end;
  log->error = error != NULL ? g_strdup (error->message) : NULL;
}

/* Runs the main context until the run ends: no wall-clock bound (meson's
 * timeout catches a hang). */
static void
run (TfTraining *training, const TfTrainOptions *options, double minutes,
     const char *const *prompts, int64_t pause_at, gboolean stop, Log *log)
{
  g_autoptr(GError) error = NULL;

  memset (log, 0, sizeof *log);
  log->end = -1;
  log->pause_at = pause_at;
  log->stop = stop;
  g_signal_connect (training, "progress", G_CALLBACK (on_progress), log);
  g_signal_connect (training, "samples", G_CALLBACK (on_samples), log);
  g_signal_connect (training, "ended", G_CALLBACK (on_ended), log);
  g_assert_true (tf_training_start (training, options, minutes, prompts, 1000, &error));
  g_assert_no_error (error);
  g_assert_true (tf_training_get_running (training));
  /* One run at a time. */
  g_assert_false (tf_training_start (training, options, minutes, prompts, 1000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  while (log->end < 0)
    g_main_context_iteration (NULL, TRUE);
  g_signal_handlers_disconnect_by_data (training, log);
}

static void
options_for (TfTrainOptions *o, const char *name, int64_t steps)
{
  tf_train_options_init (o);
  g_free (o->preset);
  o->preset = g_strdup ("tiny");
  g_strfreev (o->data);
  o->data = g_new0 (char *, 2);
  o->data[0] = g_strdup (folder);
  o->out = g_build_filename (tmp_dir, name, NULL);
  o->steps = steps;
  o->batch = 2;
}

static int64_t
saved_step (const char *model)
{
  g_autofree char *path = tf_train_state_path (model);
  g_autoptr(GError) error = NULL;
  g_autoptr(TfSafetensors) st = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  return g_ascii_strtoll (tf_safetensors_metadata (st, "step"), NULL, 10);
}

/* Pause at step ≥ 5 of 40, resume: the same bits as 40 steps in one go. */
static void
test_pause_resume_exact (void)
{
  g_autoptr(TfTraining) training = tf_training_new ();
  const char *prompts[] = { "a red square", NULL };
  TfTrainOptions o, r;
  Log log;

  options_for (&o, "paused.safetensors", 40);
  run (training, &o, 0, prompts, 0, FALSE, &log);
  g_assert_cmpint (log.end, ==, TF_TRAINING_FINISHED);   /* nothing asked it to pause */
  g_free (log.error);
  tf_train_options_clear (&o);

  /* Again, paused this time. */
  options_for (&o, "paused-2.safetensors", 40);
  run (training, &o, 0, prompts, 5, FALSE, &log);
  g_assert_cmpint (log.end, ==, TF_TRAINING_PAUSED);
  g_assert_null (log.error);
  const int64_t paused = saved_step (o.out);
  g_test_message ("paused at step %" G_GINT64_FORMAT, paused);
  g_assert_cmpint (paused, >=, 5);
  g_assert_cmpint (paused, <, 40);
  g_assert_cmpuint (tf_training_get_points (training)->len, ==, (guint) paused);
  g_assert_cmpuint (log.grids, ==, 1);   /* before the first step */
  g_assert_cmpuint (log.n_images, ==, 1);

  /* Resume as the view does: the saved options. */
  tf_train_options_init (&r);
  {
    g_autoptr(GError) error = NULL;
    g_assert_true (tf_train_options_load_saved (&r, o.out, &error));
    g_assert_no_error (error);
  }
  g_free (r.out);
  r.out = g_strdup (o.out);
  r.resume = TRUE;
  run (training, &r, 0, prompts, 0, FALSE, &log);
  g_assert_cmpint (log.end, ==, TF_TRAINING_FINISHED);
  /* The curves: the earlier log, then the new steps. */
  g_assert_cmpuint (tf_training_get_points (training)->len, ==, 40);
  g_assert_cmpint (tf_training_get_progress (training)->step, ==, 40);
  g_assert_cmpuint (log.grids, ==, 2);   /* on resuming and at the end */
  g_assert_cmpint (tf_training_get_samples_step (training), ==, 40);
  tf_train_options_clear (&r);

  g_autofree char *a = g_build_filename (tmp_dir, "paused.safetensors", NULL);
  tf_test_assert_same_tensors (a, o.out);
  g_autofree char *sa = tf_train_state_path (a), *sb = tf_train_state_path (o.out);
  tf_test_assert_same_tensors (sa, sb);
  tf_train_options_clear (&o);
}

/* Stop: the model as it is, before the end, and said so. */
static void
test_stop (void)
{
  g_autoptr(TfTraining) training = tf_training_new ();
  TfTrainOptions o;
  Log log;

  options_for (&o, "stopped.safetensors", 1000);
  run (training, &o, 0, NULL, 3, TRUE, &log);
  g_assert_cmpint (log.end, ==, TF_TRAINING_STOPPED);
  g_assert_true (g_file_test (o.out, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpint (saved_step (o.out), >=, 3);
  g_assert_cmpint (saved_step (o.out), <, 1000);
  g_assert_cmpuint (log.grids, ==, 0);   /* no prompts, no samples */
  tf_train_options_clear (&o);
}

/* Minutes: two throwaway steps measure, then the run has at least 10
 * steps; the probe leaves nothing behind. A failure (a folder that is not
 * there) ends the run with its message. */
static void
test_minutes_and_failure (void)
{
  g_autoptr(TfTraining) training = tf_training_new ();
  TfTrainOptions o;
  Log log;

  options_for (&o, "minutes.safetensors", 1);
  run (training, &o, 0.001, NULL, 0, FALSE, &log);
  g_assert_cmpint (log.end, ==, TF_TRAINING_FINISHED);
  g_assert_cmpint (tf_training_get_progress (training)->steps, >=, 10);
  g_assert_cmpint (tf_training_get_progress (training)->step,
                   ==, tf_training_get_progress (training)->steps);
  g_autofree char *probe = g_build_filename (tmp_dir, "speed-probe", NULL);
  g_assert_false (g_file_test (probe, G_FILE_TEST_EXISTS));
  tf_train_options_clear (&o);

  options_for (&o, "failed.safetensors", 10);
  g_free (o.data[0]);
  o.data[0] = g_build_filename (tmp_dir, "no-such-folder", NULL);
  run (training, &o, 0, NULL, 0, FALSE, &log);
  g_assert_cmpint (log.end, ==, TF_TRAINING_FAILED);
  g_assert_nonnull (strstr (log.error, "no-such-folder"));
  g_free (log.error);
  g_assert_false (g_file_test (o.out, G_FILE_TEST_EXISTS));
  tf_train_options_clear (&o);
}

/* Keep What It Knew's mix: the folder weighs as much as all the rest; the
 * sources come from the model's provenance, else the standard image ones;
 * a source this computer lacks is left out and named. */
static void
test_keep_mix (void)
{
  g_autofree char *gone = g_build_filename (tmp_dir, "gone-folder", NULL);
  g_autofree char *options = g_strdup_printf (
    "{\"preset\":\"tiny\",\"data\":[\"shapes\",\"%s\",\"chat\"],\"weights\":[3,2,1]}", gone);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "options");
  json_builder_add_string_value (b, options);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autofree char *provenance = json_to_string (root, FALSE);
  g_auto(GStrv) data = NULL, missing = NULL;
  g_autofree double *weights = NULL;

  tf_training_keep_mix (folder, provenance, &data, &weights, &missing);
  g_assert_cmpuint (g_strv_length (data), ==, 3);
  g_assert_cmpstr (data[0], ==, folder);
  g_assert_cmpstr (data[1], ==, "shapes");
  g_assert_cmpstr (data[2], ==, "chat");
  g_assert_cmpfloat (weights[0], ==, 4);
  g_assert_cmpfloat (weights[1], ==, 3);
  g_assert_cmpfloat (weights[2], ==, 1);
  g_assert_cmpuint (g_strv_length (missing), ==, 1);
  g_assert_cmpstr (missing[0], ==, "gone-folder");
  g_clear_pointer (&data, g_strfreev);
  g_clear_pointer (&missing, g_strfreev);
  g_clear_pointer (&weights, g_free);

  /* No provenance: the standard image sources this computer has. */
  tf_training_keep_mix (folder, NULL, &data, &weights, &missing);
  const char *const standard[] = { "fashion", "shapes", "emoji" };
  guint n = 1, n_missing = 0;
  for (guint i = 0; i < G_N_ELEMENTS (standard); i++)
    if (tf_data_source_installed (standard[i], NULL))
      g_assert_cmpstr (data[n++], ==, standard[i]);
    else
      g_assert_cmpstr (missing[n_missing++], ==, standard[i]);
  g_assert_null (data[n]);
  g_assert_null (missing[n_missing]);
  g_assert_cmpfloat (weights[0], ==, n - 1);
  g_assert_false (tf_data_source_installed (gone, NULL));
  g_assert_true (tf_data_source_installed ("shapes", NULL));
}

/* A title longer than the plot is wide is set smaller to fit: nothing is
 * drawn in the right margin of the title's band. */
static void
test_plot_long_title (void)
{
  enum { W = 600, H = 400 };
  g_autoptr (GArray) points = g_array_new (FALSE, TRUE, sizeof (TfLossPoint));
  for (int i = 1; i <= 50; i++)
    tf_loss_points_append (points, i, 3.0 / i, 0.5 / i, 1e-3);
  g_autoptr (GString) title = g_string_new (NULL);
  for (int i = 0; i < 5; i++)
    g_string_append_printf (title, "%scampaign-%d.log.jsonl", i ? " → " : "", i);
  g_string_append (title, ": 22797 steps logged, 5 runs");
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, W, H);
  cairo_t *cr = cairo_create (surface);
  tf_loss_plot_draw (cr, W, H, points, 1, title->str);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  const unsigned char *data = cairo_image_surface_get_data (surface);
  const int stride = cairo_image_surface_get_stride (surface);
  int inked_left = 0;
  for (int y = 8; y < 40; y++)
    for (int x = 0; x < W; x++)
      {
        const guint32 px = *(const guint32 *) (data + (size_t) y * stride + 4 * (size_t) x);
        const int g = (px >> 8) & 0xff;
        if (g < 128)
          {
            g_assert_cmpint (x, <, W - 20);   /* the right margin is empty */
            inked_left += x < W / 2;
          }
      }
  g_assert_cmpint (inked_left, >, 0);   /* and the title is there */
  cairo_surface_destroy (surface);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = tf_test_make_temp_dir ("test-training-XXXXXX");
  folder = g_build_filename (tmp_dir, "pictures", NULL);
  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
  for (int i = 0; i < 3; i++)
    {
      guint8 rgb[16 * 16 * 3];
      g_autofree char *png = g_strdup_printf ("%s/%d.png", folder, i);
      g_autofree char *txt = g_strdup_printf ("%d.txt", i);
      g_autoptr(GError) error = NULL;
      for (int k = 0; k < 16 * 16; k++)
        {
          rgb[k * 3 + 0] = i == 0 ? 220 : 30;
          rgb[k * 3 + 1] = i == 1 ? 200 : 30;
          rgb[k * 3 + 2] = i == 2 ? 210 : 30;
        }
      g_assert_true (tf_image_write_png (png, rgb, 16, 16, 3, NULL, NULL, &error));
      tf_test_write_file (folder, txt, i == 0 ? "a red square" : i == 1 ? "a green square"
                                                                     : "a blue square", -1);
    }
  g_test_add_func ("/training/pause-resume-exact", test_pause_resume_exact);
  g_test_add_func ("/training/stop", test_stop);
  g_test_add_func ("/training/minutes-and-failure", test_minutes_and_failure);
  g_test_add_func ("/training/keep-mix", test_keep_mix);
  g_test_add_func ("/training/plot-long-title", test_plot_long_title);
  int status = g_test_run ();
  tf_test_remove_tree (tmp_dir);
  g_free (tmp_dir);
  g_free (folder);
  return status;
}
