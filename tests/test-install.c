/* test-install.c: `meson install` of this build into a staging folder
 * (DESTDIR) gives a working installation: the programs, the desktop file
 * with its icons, the AppStream metainfo, the settings schema (which
 * compiles), a translation for every language in po/LINGUAS and the
 * bundled model, each in its standard place, and the installed
 * transfusion-cli finds and uses the installed model (not the source
 * tree's), as it does after a real install. */
#include "config.h"

#include "tf-test-util.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#define APP_ID "org.transfusion.Transfusion"

static char *stage;   /* DESTDIR */
static char *root;    /* DESTDIR/PREFIX */

typedef struct {
  int   status;
  char *out, *err;
} Run;

static void
run_clear (Run *r)
{
  g_free (r->out);
  g_free (r->err);
}

/* Runs @argv without $TRANSFUSION_MODEL (so the program looks for its own),
 * in German when @german. */
static void
run_in (Run *r, const char *const *argv, gboolean german)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) env = g_environ_unsetenv (g_get_environ (), "TRANSFUSION_MODEL");
  if (german)
    {
      env = g_environ_setenv (env, "LANGUAGE", "de", TRUE);
      env = g_environ_setenv (env, "LC_ALL", "C.UTF-8", TRUE);
    }
  int wait_status;
  memset (r, 0, sizeof *r);
  g_assert_true (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               &r->out, &r->err, &wait_status, &error));
  g_assert_no_error (error);
  r->status = g_spawn_check_wait_status (wait_status, NULL) ? 0 : 1;
}

static void
run (Run *r, const char *const *argv)
{
  run_in (r, argv, FALSE);
}

/* A file of the installation: DESTDIR/PREFIX/… */
#define installed(...) tf_test_path (root, __VA_ARGS__)

static void
assert_file (const char *path, GFileTest test)
{
  if (!g_file_test (path, test))
    g_error ("%s is not installed (or not %s)", path,
             test == G_FILE_TEST_IS_EXECUTABLE ? "executable" : "a file");
}

static void
svg_start (GMarkupParseContext *context, const char *element, const char **names,
           const char **values, gpointer data, GError **error)
{
  char **view_box = data;
  if (strcmp (element, "svg") == 0 && *view_box == NULL)
    for (guint i = 0; names[i] != NULL; i++)
      if (strcmp (names[i], "viewBox") == 0)
        *view_box = g_strdup (values[i]);
}

/* Well-formed XML with an <svg> root whose viewBox is @view_box (if given). */
static void
assert_svg (const char *path, const char *view_box)
{
  g_autofree char *text = NULL, *found = NULL;
  gsize len;
  g_autoptr (GError) error = NULL;
  const GMarkupParser parser = { .start_element = svg_start };
  g_assert_true (g_file_get_contents (path, &text, &len, NULL));
  g_autoptr (GMarkupParseContext) context = g_markup_parse_context_new (&parser, 0, &found, NULL);
  if (!g_markup_parse_context_parse (context, text, len, &error) ||
      !g_markup_parse_context_end_parse (context, &error))
    g_error ("%s: %s", path, error->message);
  g_assert_nonnull (found);
  if (view_box != NULL)
    g_assert_cmpstr (found, ==, view_box);
}

static void
test_files (void)
{
  g_autofree char *bin_app = installed (TF_BINDIR, "transfusion", NULL);
  g_autofree char *bin_cli = installed (TF_BINDIR, "transfusion-cli", NULL);
  g_autofree char *desktop = installed (TF_DATADIR, "applications", APP_ID ".desktop", NULL);
  g_autofree char *metainfo = installed (TF_DATADIR, "metainfo", APP_ID ".metainfo.xml", NULL);
  g_autofree char *schema = installed (TF_DATADIR, "glib-2.0", "schemas", APP_ID ".gschema.xml",
                                       NULL);
  g_autofree char *model = installed (TF_DATADIR, "transfusion", "models", "default.safetensors",
                                      NULL);
  assert_file (bin_app, G_FILE_TEST_IS_EXECUTABLE);
  assert_file (bin_cli, G_FILE_TEST_IS_EXECUTABLE);
  assert_file (desktop, G_FILE_TEST_IS_REGULAR);
  assert_file (metainfo, G_FILE_TEST_IS_REGULAR);
  assert_file (schema, G_FILE_TEST_IS_REGULAR);
  assert_file (model, G_FILE_TEST_IS_REGULAR);

  /* The desktop file starts the installed program and names installed icons. */
  g_autoptr (GKeyFile) keys = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (g_key_file_load_from_file (keys, desktop, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  g_autofree char *icon = g_key_file_get_string (keys, "Desktop Entry", "Icon", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (icon, ==, APP_ID);
  g_autofree char *exec = g_key_file_get_string (keys, "Desktop Entry", "Exec", &error);
  g_assert_true (g_str_has_prefix (exec, "transfusion "));
  g_autofree char *scalable_name = g_strconcat (icon, ".svg", NULL);
  g_autofree char *symbolic_name = g_strconcat (icon, "-symbolic.svg", NULL);
  g_autofree char *scalable = installed (TF_DATADIR, "icons", "hicolor", "scalable", "apps",
                                         scalable_name, NULL);
  g_autofree char *symbolic = installed (TF_DATADIR, "icons", "hicolor", "symbolic", "apps",
                                         symbolic_name, NULL);
  assert_file (scalable, G_FILE_TEST_IS_REGULAR);
  assert_file (symbolic, G_FILE_TEST_IS_REGULAR);
  assert_svg (scalable, NULL);
  assert_svg (symbolic, "0 0 16 16");   /* symbolic icons are drawn on 16 × 16 */

  /* The metainfo launches that desktop file. */
  g_autofree char *xml = NULL;
  g_assert_true (g_file_get_contents (metainfo, &xml, NULL, NULL));
  g_assert_nonnull (strstr (xml, "<launchable type=\"desktop-id\">" APP_ID ".desktop<"));
}

/* A staged install leaves compiling schemas to the packager's trigger (meson
 * skips post-install scripts with DESTDIR): compile them as it would. */
static void
test_schema_compiles (void)
{
  g_autofree char *dir = installed (TF_DATADIR, "glib-2.0", "schemas", NULL);
  const char *const argv[] = { "glib-compile-schemas", "--strict", dir, NULL };
  Run r;
  run (&r, argv);
  if (r.status != 0)
    g_error ("glib-compile-schemas %s failed: %s", dir, r.err);
  g_autofree char *compiled = g_build_filename (dir, "gschemas.compiled", NULL);
  assert_file (compiled, G_FILE_TEST_IS_REGULAR);
  run_clear (&r);
}

static void
test_translations (void)
{
  g_autofree char *linguas_path = g_build_filename (g_getenv ("G_TEST_SRCDIR"), "..", "po",
                                                    "LINGUAS", NULL);
  g_autofree char *linguas = NULL;
  g_assert_true (g_file_get_contents (linguas_path, &linguas, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (linguas, "\n", -1);
  guint n = 0;
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_strstrip (lines[i]);
      if (lines[i][0] == '\0' || lines[i][0] == '#')
        continue;
      g_autofree char *mo = installed (TF_LOCALEDIR, lines[i], "LC_MESSAGES",
                                       GETTEXT_PACKAGE ".mo", NULL);
      assert_file (mo, G_FILE_TEST_IS_REGULAR);
      n++;
    }
  g_test_message ("%u translations installed", n);

  /* the installed program finds the installed German catalogue */
  if (g_strv_contains ((const char *const *) lines, "de"))
    {
      g_autofree char *cli = installed (TF_BINDIR, "transfusion-cli", NULL);
      const char *const argv[] = { cli, "--help", NULL };
      Run r;
      run_in (&r, argv, TRUE);
      g_assert_cmpint (r.status, ==, 0);
      if (strstr (r.out, "Befehle:") == NULL)
        g_error ("the installed %s --help is not in German:\n%s", cli, r.out);
      run_clear (&r);
    }
}

/* The installed eval judges with the installed judge: broken, it is what
 * eval names (before any model work). */
static void
test_installed_judge_is_used (void)
{
  g_autofree char *cli = installed (TF_BINDIR, "transfusion-cli", NULL);
  g_autofree char *judge = installed (TF_DATADIR, "transfusion", "judge",
                                      "fashion-judge.safetensors", NULL);
  assert_file (judge, G_FILE_TEST_IS_REGULAR);
  g_autofree char *saved = g_strconcat (judge, ".saved", NULL);
  g_assert_cmpint (g_rename (judge, saved), ==, 0);
  tf_test_write_file (stage, "broken", "not a judge", -1);
  g_autofree char *broken = g_build_filename (stage, "broken", NULL);
  g_assert_cmpint (g_rename (broken, judge), ==, 0);
  const char *const argv[] = { cli, "eval", "--only", "fashion", NULL };
  Run r;
  run (&r, argv);
  g_assert_cmpint (r.status, !=, 0);
  g_assert_nonnull (strstr (r.err, judge));
  run_clear (&r);
  g_assert_cmpint (g_rename (saved, judge), ==, 0);
}

/* The installed command-line tool draws with the installed model; a broken
 * installed model is then what it complains about, by its installed path. */
static void
test_installed_model_is_used (void)
{
  g_autofree char *cli = installed (TF_BINDIR, "transfusion-cli", NULL);
  g_autofree char *model = installed (TF_DATADIR, "transfusion", "models", "default.safetensors",
                                      NULL);
  g_autofree char *out = g_build_filename (stage, "circle.png", NULL);
  const char *const argv[] = { cli, "generate", "--prompt", "a red circle", "--steps", "2",
                               "--seed", "1", "--out", out, NULL };
  Run r;
  run (&r, argv);
  if (r.status != 0)
    g_error ("%s failed: %s", cli, r.err);
  assert_file (out, G_FILE_TEST_IS_REGULAR);
  run_clear (&r);

  g_assert_cmpint (truncate (model, 16), ==, 0);
  run (&r, argv);
  g_test_message ("with a broken installed model: %s", r.err);
  g_assert_cmpint (r.status, !=, 0);
  g_assert_nonnull (strstr (r.err, model));
  run_clear (&r);

  /* and with none, it says where it looked (unless this machine has one
   * installed for real where the build was configured to go) */
  g_autofree char *configured = g_build_filename (TF_PREFIX, TF_DATADIR, "transfusion", "models",
                                                  "default.safetensors", NULL);
  g_assert_cmpint (g_unlink (model), ==, 0);
  if (g_file_test (configured, G_FILE_TEST_EXISTS))
    {
      g_test_message ("%s exists: not checking the message of a missing model", configured);
      return;
    }
  run (&r, argv);
  g_assert_cmpint (r.status, !=, 0);
  g_assert_nonnull (strstr (r.err, model));
  g_assert_null (strstr (r.err, TF_SOURCE_ROOT));
  run_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  stage = tf_test_make_temp_dir ("tf-install-XXXXXX");
  root = g_build_filename (stage, TF_PREFIX, NULL);
  const char *const install[] = { "meson", "install", "-C", TF_BUILD_ROOT, "--no-rebuild",
                                  "--quiet", "--destdir", stage, NULL };
  Run r;
  run (&r, install);
  if (r.status != 0)
    g_error ("meson install failed:\n%s\n%s", r.out, r.err);
  run_clear (&r);

  /* in this order: the last one breaks the installed model */
  g_test_add_func ("/install/files", test_files);
  g_test_add_func ("/install/schema-compiles", test_schema_compiles);
  g_test_add_func ("/install/translations", test_translations);
  g_test_add_func ("/install/installed-judge-is-used", test_installed_judge_is_used);
  g_test_add_func ("/install/installed-model-is-used", test_installed_model_is_used);
  int status = g_test_run ();

  tf_test_remove_tree (stage);
  g_free (stage);
  g_free (root);
  return status;
}
