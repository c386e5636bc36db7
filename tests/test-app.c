/* test-app.c: the application in a real GTK (under Xvfb): the window maps
 * with its empty state, loads a model the way the UI does and shows it, and
 * shows a bad file's problem instead of crashing. */
#include "config.h"

#include <glib/gstdio.h>
#include <gtk/gtk.h>
#include <string.h>

#include "tf-application.h"
#include "tf-window.h"
#include "transfusion.h"
#include "tf-test-util.h"

static TfApplication *app;  /* registered once: GTK starts once per process */
static char *tmp_dir;

static gboolean
skip_without_display (void)
{
  if (app != NULL)
    return FALSE;
  g_test_skip ("no display (DISPLAY and WAYLAND_DISPLAY are unset); run under xvfb-run");
  return TRUE;
}

/* ---- Waiting on the main loop ------------------------------------------- */

typedef gboolean (*Condition) (gpointer data);

static gboolean
tick (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main context until @done holds or @timeout_ms passes. */
static gboolean
wait_until (Condition done, gpointer data, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  guint tick_id = g_timeout_add (20, tick, NULL);  /* to wake up for the deadline */

  while (!done (data) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick_id);
  return done (data);
}

static gboolean
is_mapped (gpointer widget)
{
  return gtk_widget_get_mapped (widget);
}

static gboolean
is_null (gpointer pointer)
{
  return *(gpointer *) pointer == NULL;
}

/* ---- Looking at the window ---------------------------------------------- */

/* A label on screen whose text contains @needle. */
static GtkLabel *
find_mapped_label (GtkWidget *widget, const char *needle)
{
  if (!gtk_widget_get_mapped (widget))
    return NULL;
  if (GTK_IS_LABEL (widget) && strstr (gtk_label_get_text (GTK_LABEL (widget)), needle) != NULL)
    return GTK_LABEL (widget);
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkLabel *label = find_mapped_label (child, needle);

      if (label != NULL)
        return label;
    }
  return NULL;
}

static gboolean
shows (TfWindow *window, const char *needle)
{
  return find_mapped_label (GTK_WIDGET (window), needle) != NULL;
}

static TfWindow *
open_window (void)
{
  TfWindow *window = tf_window_new (app);

  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (wait_until (is_mapped, window, 10000));
  return window;
}

static void
close_window (TfWindow *window)
{
  gpointer weak = window;

  g_object_add_weak_pointer (G_OBJECT (window), &weak);
  gtk_window_destroy (GTK_WINDOW (window));
  g_assert_true (wait_until (is_null, &weak, 10000));
}

/* ---- Loading ------------------------------------------------------------ */

typedef struct {
  gboolean loaded;
  gboolean failed;
  char    *message;
} LoadOutcome;

static void
on_model_loaded (TfWindow *window, LoadOutcome *outcome)
{
  outcome->loaded = TRUE;
}

static void
on_model_failed (TfWindow *window, const GError *error, LoadOutcome *outcome)
{
  outcome->failed = TRUE;
  outcome->message = g_strdup (error->message);
}

static gboolean
load_ended (gpointer data)
{
  LoadOutcome *outcome = data;

  return outcome->loaded || outcome->failed;
}

/* Opens @path as the UI does (the file chooser's path), waits for the end. */
static void
load (TfWindow *window, const char *path, LoadOutcome *outcome)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  gulong loaded_id, failed_id;

  memset (outcome, 0, sizeof *outcome);
  loaded_id = g_signal_connect (window, "model-loaded", G_CALLBACK (on_model_loaded), outcome);
  failed_id = g_signal_connect (window, "model-failed", G_CALLBACK (on_model_failed), outcome);

  tf_window_open_model (window, file);
  /* The work is in a thread: the call returns at once, with a spinner. */
  g_assert_true (tf_window_get_loading (window) || load_ended (outcome));

  g_assert_true (wait_until (load_ended, outcome, 60000));
  g_assert_false (tf_window_get_loading (window));
  g_signal_handler_disconnect (window, loaded_id);
  g_signal_handler_disconnect (window, failed_id);
}


/* ---- Tests -------------------------------------------------------------- */

static void
test_actions (void)
{
  const struct { const char *action; const char *accel; } expected[] = {
    { "app.open-model", "<Control>o" },
    { "app.quit", "<Control>q" },
  };

  if (skip_without_display ())
    return;

  g_assert_true (g_action_group_has_action (G_ACTION_GROUP (app), "about"));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      g_auto(GStrv) accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app),
                                                                   expected[i].action);

      g_assert_true (g_action_group_has_action (G_ACTION_GROUP (app),
                                                strchr (expected[i].action, '.') + 1));
      g_assert_true (g_strv_contains ((const char *const *) accels, expected[i].accel));
    }
}

static void
test_empty_state (void)
{
  TfWindow *window;

  if (skip_without_display ())
    return;

  window = open_window ();
  g_assert_true (shows (window, "No Model Loaded"));
  g_assert_true (shows (window, "Open Model"));
  g_assert_null (tf_window_get_model_info (window));
  g_assert_false (tf_window_get_loading (window));
  close_window (window);
}

static void
test_load_model (void)
{
  TfWindow *window;
  LoadOutcome outcome;
  g_autofree char *path = NULL;
  g_autofree char *count = NULL;
  const TfModelInfo *info;
  guint64 n_params;

  if (skip_without_display ())
    return;

  path = tf_test_save_tiny_model (tmp_dir, NULL, &n_params);
  count = g_strdup_printf ("%" G_GUINT64_FORMAT, n_params);

  window = open_window ();
  load (window, path, &outcome);
  if (outcome.failed)
    g_error ("loading %s failed: %s", path, outcome.message);
  g_assert_true (outcome.loaded);

  info = tf_window_get_model_info (window);
  g_assert_nonnull (info);
  g_assert_cmpuint (tf_model_n_params (info->model), ==, n_params);
  g_assert_true (shows (window, count));
  g_assert_true (shows (window, "tiny"));
  g_assert_false (shows (window, "No Model Loaded"));

  close_window (window);
  g_unlink (path);
}

static void
test_load_bad_file (void)
{
  TfWindow *window;
  LoadOutcome outcome;
  g_autofree char *path = g_build_filename (tmp_dir, "garbage.safetensors", NULL);
  g_autofree char *good = NULL;
  g_autoptr(GError) error = NULL;
  guint64 n_params;

  if (skip_without_display ())
    return;

  g_file_set_contents (path, "this is not a model", -1, &error);
  g_assert_no_error (error);

  window = open_window ();
  load (window, path, &outcome);
  g_assert_true (outcome.failed);
  g_assert_nonnull (strstr (outcome.message, "garbage.safetensors"));
  /* The problem is on screen, and the window is as it was. */
  g_assert_true (shows (window, outcome.message));
  g_assert_true (shows (window, "No Model Loaded"));
  g_clear_pointer (&outcome.message, g_free);

  /* A bad file after a good one keeps the good one. */
  good = tf_test_save_tiny_model (tmp_dir, NULL, &n_params);
  load (window, good, &outcome);
  g_assert_true (outcome.loaded);
  load (window, path, &outcome);
  g_assert_true (outcome.failed);
  g_assert_nonnull (tf_window_get_model_info (window));
  g_assert_true (shows (window, outcome.message));
  g_assert_true (shows (window, "tiny"));
  g_clear_pointer (&outcome.message, g_free);

  close_window (window);
  g_unlink (path);
  g_unlink (good);
}

int
main (int argc, char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  /* Numbers as the C locale writes them, whatever the machine's. */
  gtk_disable_setlocale ();
  g_test_init (&argc, &argv, NULL);

  tmp_dir = tf_test_make_temp_dir ("test-app-XXXXXX");

  if (g_getenv ("DISPLAY") != NULL || g_getenv ("WAYLAND_DISPLAY") != NULL)
    {
      app = tf_application_new ();
      /* Never hand the test over to an instance the user is running. */
      g_application_set_flags (G_APPLICATION (app),
                               g_application_get_flags (G_APPLICATION (app)) |
                               G_APPLICATION_NON_UNIQUE);
      g_application_register (G_APPLICATION (app), NULL, &error);
      g_assert_no_error (error);
      /* Stack and revealer changes happen at once, so what is mapped is
       * what the window shows. */
      g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);
    }

  g_test_add_func ("/app/actions", test_actions);
  g_test_add_func ("/app/window/empty-state", test_empty_state);
  g_test_add_func ("/app/window/load-model", test_load_model);
  g_test_add_func ("/app/window/load-bad-file", test_load_bad_file);

  status = g_test_run ();

  g_clear_object (&app);
  tf_test_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return status;
}
