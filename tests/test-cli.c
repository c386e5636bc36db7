/* test-cli.c: transfusion-cli, in process (through the tfcli library) and as
 * the built program (exit statuses, what reaches stdout and stderr). */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "tf-cli.h"
#include "tf-image.h"
#include "transfusion.h"
#include "tf-test-util.h"

typedef struct {
  int   status;
  char *out;
  char *err;
} CliResult;

static void
cli_result_clear (CliResult *r)
{
  g_clear_pointer (&r->out, g_free);
  g_clear_pointer (&r->err, g_free);
}

/* Runs tf_cli_run() on "transfusion-cli ARGS…" (NULL-terminated). */
static void
run_in_process (CliResult *r, const char *first, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  char *out_buf = NULL, *err_buf = NULL;
  size_t out_len = 0, err_len = 0;
  FILE *out = open_memstream (&out_buf, &out_len);
  FILE *err = open_memstream (&err_buf, &err_len);
  va_list ap;

  g_ptr_array_add (argv, (char *) "transfusion-cli");
  va_start (ap, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  r->status = tf_cli_run ((int) argv->len - 1, (char **) argv->pdata, out, err);
  fclose (out);
  fclose (err);
  r->out = out_buf;
  r->err = err_buf;
}

/* Runs the built program with ARGS… (NULL-terminated) in the C locale. */
static void
run_program (CliResult *r, const char *first, ...)
{
  g_autofree char *program = g_test_build_filename (G_TEST_BUILT, "..", "app",
                                                    "transfusion-cli", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  va_list ap;

  g_ptr_array_add (argv, program);
  va_start (ap, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C", TRUE);
  proc = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (proc, NULL, NULL, &r->out, &r->err, &error);
  g_assert_no_error (error);
  /* A crash is a failure in itself, whatever the output. */
  g_assert_true (g_subprocess_get_if_exited (proc));
  r->status = g_subprocess_get_exit_status (proc);
}

/* Whether @text has a line "KEY   VALUE" (aligned with spaces). */
static gboolean
has_row (const char *text, const char *key, const char *value)
{
  g_autofree char *k = g_regex_escape_string (key, -1);
  g_autofree char *v = g_regex_escape_string (value, -1);
  g_autofree char *pattern = g_strdup_printf ("^%s +%s$", k, v);

  return g_regex_match_simple (pattern, text, G_REGEX_MULTILINE, 0);
}


static void
write_file (const char *path, const void *data, gsize len)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, data, (gssize) len, &error);
  g_assert_no_error (error);
}

/* ---- Tests -------------------------------------------------------------- */

static void
test_version (void)
{
  CliResult r = { 0 };
  g_autofree char *expected = g_strdup_printf ("transfusion-cli %s\n", PACKAGE_VERSION);

  run_program (&r, "--version", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.out, ==, expected);
  g_assert_cmpstr (r.err, ==, "");
  cli_result_clear (&r);
}

static void
test_help (void)
{
  CliResult r = { 0 };

  run_in_process (&r, "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "transfusion-cli [OPTION…] COMMAND"));
  g_assert_true (g_regex_match_simple ("^  info +", r.out, G_REGEX_MULTILINE, 0));
  g_assert_cmpstr (r.err, ==, "");
  cli_result_clear (&r);

  /* What exists is listed, and only that. */
  run_in_process (&r, "-h", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_regex_match_simple ("^  train +", r.out, G_REGEX_MULTILINE, 0));
  g_assert_true (g_regex_match_simple ("^  data +", r.out, G_REGEX_MULTILINE, 0));
  g_assert_null (strstr (r.out, "generate"));
  cli_result_clear (&r);

  run_in_process (&r, "train", "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "--save-every"));
  g_assert_nonnull (strstr (r.out, "--resume"));
  cli_result_clear (&r);

  run_in_process (&r, "train", "--steps", "10", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "no --out"));
  cli_result_clear (&r);

  run_in_process (&r, "info", "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "transfusion-cli info [OPTION…] MODEL.safetensors"));
  cli_result_clear (&r);
}

static void
test_usage_errors (void)
{
  const char *cases[][3] = {
    { NULL },
    { "frobnicate", NULL },
    { "--frobnicate", NULL },
    { "info", NULL },
    { "info", "--frobnicate", NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      CliResult r = { 0 };

      run_in_process (&r, cases[i][0], cases[i][1], NULL);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_cmpstr (r.out, ==, "");
      g_assert_true (g_str_has_prefix (r.err, "transfusion-cli"));
      g_assert_nonnull (strstr (r.err, "--help"));
      cli_result_clear (&r);
    }
}

static void
test_info_generated (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-cli-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autofree char *d_model = NULL;
  g_autofree char *params = NULL;
  TfConfig config;
  guint64 n_params;
  CliResult r = { 0 };

  g_assert_no_error (error);
  path = tf_test_save_tiny_model (dir, &config, &n_params);
  d_model = g_strdup_printf ("%d", config.d_model);
  params = g_strdup_printf ("^parameters +%" G_GUINT64_FORMAT " \\([0-9.]+ [kMGT]?\\)$",
                            n_params);

  run_in_process (&r, "info", path, NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (has_row (r.out, "file", path));
  g_assert_true (has_row (r.out, "d_model", d_model));
  g_assert_true (has_row (r.out, "schedule", "cosine"));
  g_assert_true (has_row (r.out, "dtype", "F32"));
  g_assert_true (g_regex_match_simple (params, r.out, G_REGEX_MULTILINE, 0));
  cli_result_clear (&r);

  g_unlink (path);
  g_rmdir (dir);
}

static void
test_info_golden (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "golden",
                                                 "tiny-model.safetensors", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(TfModel) model = NULL;
  g_autofree char *params = NULL;
  CliResult r = { 0 };

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_test_skip ("tests/golden/tiny-model.safetensors is not there yet");
      return;
    }

  model = tf_model_load (path, &error);
  g_assert_no_error (error);
  params = g_strdup_printf ("^parameters +%" G_GUINT64_FORMAT " \\(",
                            (guint64) tf_model_n_params (model));

  run_program (&r, "info", path, NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (has_row (r.out, "d_model", "32"));
  g_assert_true (g_regex_match_simple (params, r.out, G_REGEX_MULTILINE, 0));
  cli_result_clear (&r);
}

/* Every bad file: status 1, "transfusion-cli: FILE: problem" on stderr,
 * nothing on stdout, no crash. */
static void
assert_bad_file (const char *path)
{
  g_autofree char *prefix = g_strdup_printf ("transfusion-cli: %s: ", path);
  CliResult r = { 0 };

  run_program (&r, "info", path, NULL);
  if (r.status != 1 || !g_str_has_prefix (r.err, prefix))
    g_test_message ("%s: status %d, stderr: %s", path, r.status, r.err);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (g_str_has_prefix (r.err, prefix));
  g_assert_true (g_str_has_suffix (r.err, "\n"));
  g_assert_cmpstr (r.out, ==, "");
  cli_result_clear (&r);
}

static void
test_info_bad_files (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-cli-XXXXXX", &error);
  g_autofree char *missing = NULL, *empty = NULL, *garbage = NULL;
  g_autofree char *truncated = NULL, *not_model = NULL, *model = NULL;
  g_autofree char *contents = NULL;
  gsize len;
  TfConfig config;
  guint64 n_params;
  guint8 noise[4096];
  GRand *rand = g_rand_new_with_seed (42);

  g_assert_no_error (error);

  missing = g_build_filename (dir, "missing.safetensors", NULL);
  assert_bad_file (missing);

  empty = g_build_filename (dir, "empty.safetensors", NULL);
  write_file (empty, "", 0);
  assert_bad_file (empty);

  for (guint i = 0; i < sizeof noise; i++)
    noise[i] = (guint8) g_rand_int_range (rand, 0, 256);
  g_rand_free (rand);
  garbage = g_build_filename (dir, "garbage.safetensors", NULL);
  write_file (garbage, noise, sizeof noise);
  assert_bad_file (garbage);

  /* A good model cut in half. */
  model = tf_test_save_tiny_model (dir, &config, &n_params);
  g_file_get_contents (model, &contents, &len, &error);
  g_assert_no_error (error);
  truncated = g_build_filename (dir, "truncated.safetensors", NULL);
  write_file (truncated, contents, len / 2);
  assert_bad_file (truncated);

  /* A good safetensors file that is not a Transfusion model. */
  {
    const float values[4] = { 1, 2, 3, 4 };
    TfTensorOut tensor = {
      .name = "weight", .dtype = TF_DTYPE_F32, .n_dims = 2, .shape = { 2, 2 }, .data = values,
    };

    not_model = g_build_filename (dir, "other.safetensors", NULL);
    tf_safetensors_write (not_model, &tensor, 1, NULL, NULL, 0, &error);
    g_assert_no_error (error);
    assert_bad_file (not_model);
  }

  /* A directory. */
  assert_bad_file (dir);

  g_unlink (empty);
  g_unlink (garbage);
  g_unlink (truncated);
  g_unlink (not_model);
  g_unlink (model);
  g_rmdir (dir);
}

/* `data --preview` writes a contact sheet a person can look at. */
static void
test_data_preview (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("test-cli-XXXXXX", &error);
  g_autofree char *sheet = g_build_filename (dir, "sheet.png", NULL);
  CliResult r = { 0 };

  run_in_process (&r, "data", "--data", "shapes", "--count", "4", "--preview", sheet, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "shapes"));
  g_assert_nonnull (strstr (r.out, "wrote"));
  cli_result_clear (&r);

  TfImage image = { 0 };
  g_assert_true (tf_image_read_png (sheet, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, >, 4 * 32);
  tf_image_clear (&image);

  run_in_process (&r, "data", "--data", "no-such-folder", "--preview", sheet, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "no-such-folder"));
  cli_result_clear (&r);

  run_in_process (&r, "data", "--split", "test", "--preview", sheet, NULL);
  g_assert_cmpint (r.status, ==, 2);
  cli_result_clear (&r);

  g_unlink (sheet);
  g_rmdir (dir);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/cli/version", test_version);
  g_test_add_func ("/cli/help", test_help);
  g_test_add_func ("/cli/usage-errors", test_usage_errors);
  g_test_add_func ("/cli/info/generated", test_info_generated);
  g_test_add_func ("/cli/info/golden", test_info_golden);
  g_test_add_func ("/cli/info/bad-files", test_info_bad_files);
  g_test_add_func ("/cli/data/preview", test_data_preview);

  return g_test_run ();
}
