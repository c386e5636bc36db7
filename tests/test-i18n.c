/* test-i18n.c: the German translation is used when German is asked for.
 * Everything runs with LANGUAGE=de in the C.UTF-8 locale, which every
 * system has (gettext honours LANGUAGE in any locale but plain "C"), with
 * the build tree's catalogues: transfusion-cli's help and errors, the
 * desktop file, an error of the generator's worker, the keyboard
 * shortcuts window and the chat's first screen (in a real GTK; skipped
 * without a display). */
#include "config.h"

#include "tf-chat-view.h"
#include "tf-generation.h"
#include "tf-model-info.h"
#include "tf-test-util.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <gtk/gtk.h>
#include <locale.h>
#include <string.h>

/* A file of the build tree, from the top. */
#define build_path(...) tf_test_path (g_getenv ("G_TEST_BUILDDIR"), "..", __VA_ARGS__)

static void
assert_contains (const char *text, const char *part)
{
  if (strstr (text, part) == NULL)
    g_error ("“%s” is not in:\n%s", part, text);
}

static void
test_cli (void)
{
  g_autofree char *cli = build_path ("app", "transfusion-cli", NULL);
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  const char *const help[] = { cli, "--help", NULL };
  g_assert_true (g_spawn_sync (NULL, (char **) help, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  assert_contains (out, "Befehle:");
  assert_contains (out, "Ein Bild nach einem Prompt zeichnen");
  assert_contains (out, "Im Terminal mit einem Modell sprechen");

  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  const char *const wrong[] = { cli, "generate", "--out", "x.png", NULL };
  g_assert_true (g_spawn_sync (NULL, (char **) wrong, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &status, &error));
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  assert_contains (err, "kein --prompt angegeben");
}

static void
test_desktop_file (void)
{
  g_autofree char *path = build_path ("resources", "org.transfusion.Transfusion.desktop", NULL);
  g_autoptr (GKeyFile) keys = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (g_key_file_load_from_file (keys, path, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  g_autofree char *comment = g_key_file_get_locale_string (keys, "Desktop Entry", "Comment",
                                                           "de", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (comment, ==, "Ein Modell trainieren und ausführen, das Texte schreibt und "
                                "Bilder zeichnet");
}

static void
remember_error (TfGeneration *gen, const GError *error, GError **out)
{
  g_clear_error (out);
  *out = g_error_copy (error);
}

/* An error made on the worker's side of the application, in German. */
static void
test_generation_error (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-i18n-XXXXXX");
  g_autofree char *path = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autoptr (GError) error = NULL;
  TfGenerator *generator = tf_model_info_open_generator (path, &error);
  g_assert_no_error (error);
  g_autoptr (TfGeneration) gen = tf_generation_new (generator);
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 1000;

  g_assert_true (tf_generation_generate_image (gen, "a red circle", &s, NULL, &error));
  g_assert_false (tf_generation_generate_image (gen, "again", &s, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_assert_cmpstr (error->message, ==, "Das Modell ist mit einer anderen Aufgabe beschäftigt");
  g_clear_error (&error);

  GError *failed = NULL;
  g_signal_connect (gen, "failed", G_CALLBACK (remember_error), &failed);
  tf_generation_cancel (gen);
  while (tf_generation_get_busy (gen))
    g_main_context_iteration (NULL, TRUE);
  g_assert_error (failed, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpstr (failed->message, ==, "Abgebrochen");
  g_error_free (failed);
  tf_test_remove_tree (dir);
}

/* The first widget under @widget (itself included) of @type whose
 * @property is @value; with @property NULL, the first of @type. */
static GtkWidget *
find_widget (GtkWidget *widget, GType type, const char *property, const char *value)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (widget, type))
    {
      g_autofree char *text = NULL;
      if (property != NULL)
        g_object_get (widget, property, &text, NULL);
      if (property == NULL || g_strcmp0 (text, value) == 0)
        return widget;
    }
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_widget (child, type, property, value);
      if (found != NULL)
        return found;
    }
  return NULL;
}

static gboolean
find_title (GtkWidget *widget, GType type, const char *title)
{
  return find_widget (widget, type, "title", title) != NULL;
}

/* TRUE, with the test skipped, when there is no display for GTK. */
static gboolean
skipped_without_display (void)
{
  if (g_getenv ("DISPLAY") != NULL || g_getenv ("WAYLAND_DISPLAY") != NULL)
    return FALSE;
  g_test_skip ("no display (DISPLAY and WAYLAND_DISPLAY are unset); run under xvfb-run");
  return TRUE;
}

/* The application's keyboard shortcuts window, built from the GResource. */
static void
test_shortcuts_window (void)
{
  if (skipped_without_display ())
    return;
  gtk_init ();
  g_autoptr (GtkBuilder) builder =
    gtk_builder_new_from_resource ("/org/transfusion/Transfusion/gtk/help-overlay.ui");
  GtkWidget *window = GTK_WIDGET (gtk_builder_get_object (builder, "help_overlay"));
  g_assert_nonnull (window);
  g_assert_true (find_title (window, GTK_TYPE_SHORTCUTS_GROUP, "Allgemein"));
  g_assert_true (find_title (window, GTK_TYPE_SHORTCUTS_SHORTCUT, "Beenden"));
  g_assert_true (find_title (window, GTK_TYPE_SHORTCUTS_SHORTCUT, "Die Nachricht senden"));
  g_assert_false (find_title (window, GTK_TYPE_SHORTCUTS_SHORTCUT, "Quit"));
  gtk_window_destroy (GTK_WINDOW (window));
}

/* The chat's first screen says in German that the model knows English
 * only, and its example messages, which the model reads, stay English. */
static void
test_chat_starters (void)
{
  if (skipped_without_display ())
    return;
  adw_init ();
  GtkWidget *view = g_object_ref_sink (g_object_new (TF_TYPE_CHAT_VIEW, NULL));
  g_assert_nonnull (find_widget (view, GTK_TYPE_BUTTON, "label", "Draw a sneaker"));
  g_assert_nonnull (find_widget (view, GTK_TYPE_BUTTON, "label", "What is a bicycle?"));
  g_assert_null (find_widget (view, GTK_TYPE_BUTTON, "label", "Zeichne einen Turnschuh"));
  AdwStatusPage *page = ADW_STATUS_PAGE (find_widget (view, ADW_TYPE_STATUS_PAGE, NULL, NULL));
  g_assert_nonnull (page);
  g_assert_cmpstr (adw_status_page_get_title (page), ==, "Mit dem Modell chatten");
  g_assert_nonnull (strstr (adw_status_page_get_description (page), "nur Englisch"));
  g_object_unref (view);
}

int
main (int argc, char **argv)
{
  /* German, whatever the caller's environment asked for; the programs
   * started from here inherit it. */
  g_setenv ("LANGUAGE", "de", TRUE);
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);
  g_unsetenv ("LANG");
  g_unsetenv ("LC_MESSAGES");
  g_assert_nonnull (setlocale (LC_ALL, ""));
  tf_bind_translations ();
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/i18n/cli", test_cli);
  g_test_add_func ("/i18n/desktop-file", test_desktop_file);
  g_test_add_func ("/i18n/generation-error", test_generation_error);
  g_test_add_func ("/i18n/chat-starters", test_chat_starters);
  g_test_add_func ("/i18n/shortcuts-window", test_shortcuts_window);
  return g_test_run ();
}
