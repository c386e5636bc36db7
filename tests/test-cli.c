/* test-cli.c: transfusion-cli, in process (through the tfcli library) and as
 * the built program (exit statuses, what reaches stdout and stderr). */
#include "config.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <glib/gstdio.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tf-cli.h"
#include "tf-generate.h"
#include "tf-image.h"
#include "tf-model-info.h"
#include "transfusion.h"
#include "tf-test-util.h"
#include "tf-tokenizer.h"

#include <json-glib/json-glib.h>

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

/* Starts the built program with @args in the C locale, its stdout and
 * stderr piped, and its stdin too when @with_stdin. */
static GSubprocess *
spawn_program (GPtrArray *args, gboolean with_stdin)
{
  g_autofree char *program = g_test_build_filename (G_TEST_BUILT, "..", "app",
                                                    "transfusion-cli", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  GSubprocess *proc;

  g_ptr_array_add (argv, program);
  for (guint i = 0; i < args->len; i++)
    g_ptr_array_add (argv, g_ptr_array_index (args, i));
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE |
                                        (with_stdin ? G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                    : G_SUBPROCESS_FLAGS_NONE));
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C", TRUE);
  proc = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  return proc;
}

/* A NUL-terminated copy (GBytes gives NULL for no bytes). */
static char *
bytes_to_string (GBytes *bytes)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return len > 0 ? g_strndup (data, len) : g_strdup ("");
}

/* Feeds @input (or nothing) to @proc, collects what it writes and its exit
 * status. */
static void
finish_program (CliResult *r, GSubprocess *proc, const char *input)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) in = input != NULL ? g_bytes_new (input, strlen (input)) : NULL;
  g_autoptr(GBytes) out = NULL, err = NULL;

  /* Bytes, not UTF-8: a model made of random numbers writes any bytes. */
  g_subprocess_communicate (proc, in, NULL, &out, &err, &error);
  g_assert_no_error (error);
  r->out = bytes_to_string (out);
  r->err = bytes_to_string (err);
  /* A crash is a failure in itself, whatever the output. */
  g_assert_true (g_subprocess_get_if_exited (proc));
  r->status = g_subprocess_get_exit_status (proc);
}

static void
run_program_va (CliResult *r, const char *input, const char *first, va_list ap)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_autoptr(GSubprocess) proc = NULL;

  for (const char *arg = first; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (args, (char *) arg);
  proc = spawn_program (args, input != NULL);
  finish_program (r, proc, input);
}

/* Runs the built program with ARGS… (NULL-terminated) in the C locale. */
static void
run_program (CliResult *r, const char *first, ...)
{
  va_list ap;

  va_start (ap, first);
  run_program_va (r, NULL, first, ap);
  va_end (ap);
}

/* The same, with @input on its standard input. */
static void
run_program_with_input (CliResult *r, const char *input, const char *first, ...)
{
  va_list ap;

  va_start (ap, first);
  run_program_va (r, input, first, ap);
  va_end (ap);
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
  g_assert_true (g_regex_match_simple ("^  generate +", r.out, G_REGEX_MULTILINE, 0));
  g_assert_true (g_regex_match_simple ("^  caption +", r.out, G_REGEX_MULTILINE, 0));
  g_assert_true (g_regex_match_simple ("^  chat +", r.out, G_REGEX_MULTILINE, 0));
  g_assert_true (g_regex_match_simple ("^  bench +", r.out, G_REGEX_MULTILINE, 0));
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
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
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
  /* linear patches: no U-Net or conv encoder rows, which would say nothing of this model */
  g_assert_null (strstr (r.out, "unet_"));
  g_assert_null (strstr (r.out, "conv_"));
  cli_result_clear (&r);

  /* the U-Net's, with every one of its fields as the file has them */
  g_autofree char *unet = g_build_filename (dir, "unet.safetensors", NULL);
  g_assert_true (tf_config_apply_recipe (&config, "prediction=v,image_encoder=unet,"
                                         "unet_channels=4,unet_blocks=1,unet_skips=false",
                                         &error));
  g_autoptr (TfModel) model = tf_model_new (&config, &error);
  g_assert_no_error (error);
  g_assert_true (tf_model_save (model, unet, TF_DTYPE_F32, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  run_in_process (&r, "info", unet, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (has_row (r.out, "image_encoder", "unet"));
  g_assert_true (has_row (r.out, "unet_channels", "4"));
  g_assert_true (has_row (r.out, "unet_skips", "false"));
  g_assert_null (strstr (r.out, "conv_"));
  cli_result_clear (&r);

  /* the conv encoder's: its channels, and no U-Net rows */
  g_autofree char *conv = g_build_filename (dir, "conv.safetensors", NULL);
  g_assert_true (tf_config_apply_recipe (&config, "image_encoder=conv,conv_channels=6", &error));
  g_autoptr (TfModel) conv_model = tf_model_new (&config, &error);
  g_assert_no_error (error);
  g_assert_true (tf_model_save (conv_model, conv, TF_DTYPE_F32, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  run_in_process (&r, "info", conv, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (has_row (r.out, "image_encoder", "conv"));
  g_assert_true (has_row (r.out, "conv_channels", "6"));
  g_assert_null (strstr (r.out, "unet_"));
  cli_result_clear (&r);

  tf_test_remove_tree (dir);
}

/* convert: F16 and BF16 halve the file, keep every piece of metadata and
 * load as the same model within the rounding; a weight F16 cannot hold and
 * an unknown type are refused. */
static void
test_convert (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *path = tf_test_save_tiny_model_with_tokenizer (dir, 96);
  g_autofree char *half = g_build_filename (dir, "half.safetensors", NULL);
  CliResult r = { 0 };

  run_in_process (&r, "convert", path, "--dtype", "f16", "--out", half, NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "parameters as F16"));
  cli_result_clear (&r);
  g_autoptr(TfSafetensors) a = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr(TfSafetensors) b = tf_safetensors_open (half, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_safetensors_metadata (a, "tokenizer"), ==,
                   tf_safetensors_metadata (b, "tokenizer"));
  g_assert_cmpstr (tf_safetensors_metadata (a, "config"), ==,
                   tf_safetensors_metadata (b, "config"));
  g_assert_cmpint (tf_safetensors_tensor (b, 0)->dtype, ==, TF_DTYPE_F16);
  g_autoptr(TfModel) ma = tf_model_load (path, &error);
  g_assert_no_error (error);
  g_autoptr(TfModel) mb = tf_model_load (half, &error);
  g_assert_no_error (error);
  for (size_t k = 0; k < tf_model_n_params (ma); k++)
    g_assert_cmpfloat (fabsf (tf_model_params (mb)[k] - tf_model_params (ma)[k]), <=,
                       fabsf (tf_model_params (ma)[k]) / 1024 + 1e-7f);

  run_in_process (&r, "convert", path, "--dtype", "f8", "--out", half, NULL);
  g_assert_cmpint (r.status, ==, TF_CLI_EXIT_USAGE);
  g_assert_nonnull (strstr (r.err, "give --dtype f32, f16 or bf16"));
  cli_result_clear (&r);

  /* a weight of 1e5 becomes Inf in F16: refused, BF16 is fine */
  tf_model_params (ma)[0] = 1e5f;
  const char *keys[] = { "tokenizer" };
  const char *values[] = { tf_safetensors_metadata (a, "tokenizer") };
  g_autofree char *big = g_build_filename (dir, "big.safetensors", NULL);
  g_assert_true (tf_model_save (ma, big, TF_DTYPE_F32, keys, values, 1, &error));
  g_assert_no_error (error);
  run_in_process (&r, "convert", big, "--dtype", "f16", "--out", half, NULL);
  g_assert_cmpint (r.status, ==, TF_CLI_EXIT_FAILURE);
  g_assert_nonnull (strstr (r.err, "tensor 'tok_emb.weight' holds 100000, more than F16 can"));
  cli_result_clear (&r);
  run_in_process (&r, "convert", big, "--dtype", "bf16", "--out", half, NULL);
  g_assert_cmpint (r.status, ==, 0);
  cli_result_clear (&r);

  tf_test_remove_tree (dir);
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
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
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
  tf_test_write_file (NULL, empty, "", 0);
  assert_bad_file (empty);

  for (guint i = 0; i < sizeof noise; i++)
    noise[i] = (guint8) g_rand_int_range (rand, 0, 256);
  g_rand_free (rand);
  garbage = g_build_filename (dir, "garbage.safetensors", NULL);
  tf_test_write_file (NULL, garbage, noise, sizeof noise);
  assert_bad_file (garbage);

  /* A good model cut in half. */
  model = tf_test_save_tiny_model (dir, &config, &n_params);
  g_file_get_contents (model, &contents, &len, &error);
  g_assert_no_error (error);
  truncated = g_build_filename (dir, "truncated.safetensors", NULL);
  tf_test_write_file (NULL, truncated, contents, len / 2);
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

  tf_test_remove_tree (dir);
}

/* Issue 17: a model whose config's special-token ids contradict its
 * tokenizer is refused the same way, with the same words, by every command
 * that opens a model: info, generate, caption, convert. */
static void
test_model_check_shared (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *good = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *bad = g_build_filename (dir, "swapped.safetensors", NULL);
  g_autofree char *out = g_build_filename (dir, "out.safetensors", NULL);
  g_autofree char *png = g_build_filename (dir, "out.png", NULL);
  g_autofree char *expected = NULL;
  g_autoptr(TfSafetensors) st = tf_safetensors_open (good, &error);
  g_assert_no_error (error);
  g_autoptr(TfModel) model = tf_model_load_from (st, &error);
  g_assert_no_error (error);

  /* The same weights and tokenizer; the config's <|bos|> and <|eos|> swapped. */
  TfConfig config = *tf_model_config (model);
  int bos = config.bos_id;
  config.bos_id = config.eos_id;
  config.eos_id = bos;
  g_autoptr(TfModel) swapped = tf_model_new (&config, &error);
  g_assert_no_error (error);
  memcpy (tf_model_params (swapped), tf_model_params (model),
          sizeof (float) * tf_model_n_params (model));
  const char *const keys[] = { "tokenizer" };
  const char *const values[] = { tf_safetensors_metadata (st, "tokenizer") };
  g_assert_true (tf_model_save (swapped, bad, TF_DTYPE_F32, keys, values, 1, &error));
  g_assert_no_error (error);
  float grey[8 * 8 * 3] = { 0 };
  g_assert_true (tf_write_generated_png (png, grey, 8, 3, 1, NULL, &error));
  g_assert_no_error (error);
  expected = g_strdup_printf ("transfusion-cli: %s: config has bos_id %d but the tokenizer's "
                              "<|bos|> is %d\n", bad, config.bos_id, bos);

  const char *const commands[][9] = {
    { "info", bad },
    { "generate", "--model", bad, "--prompt", "a red circle", "--steps", "2", "--out", png },
    { "caption", "--model", bad, "--image", png },
    { "convert", bad, "--dtype", "f16", "--out", out },
  };
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      CliResult r = { 0 };

      run_in_process (&r, commands[i][0], commands[i][1], commands[i][2], commands[i][3],
                      commands[i][4], commands[i][5], commands[i][6], commands[i][7],
                      commands[i][8], NULL);
      g_test_message ("%s: status %d, %s", commands[i][0], r.status, r.err);
      g_assert_cmpint (r.status, ==, 1);
      g_assert_cmpstr (r.err, ==, expected);
      cli_result_clear (&r);
    }
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  /* The model it came from passes the same check. */
  {
    CliResult r = { 0 };

    run_in_process (&r, "info", good, NULL);
    g_assert_cmpint (r.status, ==, 0);
    cli_result_clear (&r);
  }
  tf_test_remove_tree (dir);
}

/* `data --preview` writes a contact sheet a person can look at. */
static void
test_data_preview (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
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

  tf_test_remove_tree (dir);
}

/* ---- data --export (the shards the PyTorch trainer reads) ---------------- */

static void
test_data_export (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *out = g_build_filename (dir, "shards", NULL);
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *shapes = g_build_filename (out, "shapes.safetensors", NULL);
  CliResult r = { 0 };

  run_in_process (&r, "data", "--data", "shapes,wordnet", "--count", "3", "--export", out,
                  "--tokenizer", model, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "3 of"));
  cli_result_clear (&r);

  g_autoptr(TfSafetensors) st = tf_safetensors_open (shapes, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_safetensors_metadata (st, "format"), ==, "transfusion-data");
  const TfTensorInfo *pixels = tf_safetensors_find (st, "pixels");
  g_assert_nonnull (pixels);
  g_assert_cmpint (pixels->n_dims, ==, 4);
  g_assert_cmpint (pixels->shape[0], ==, 3);
  g_assert_cmpint (pixels->shape[3], ==, 3);

  /* Each caption comes with the ids the model's own tokenizer gives it. */
  g_autoptr(TfSafetensors) model_st = tf_safetensors_open (model, &error);
  g_assert_no_error (error);
  g_autoptr(TfTokenizer) tok = tf_tokenizer_from_json (
      tf_safetensors_metadata (model_st, "tokenizer"), model, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_safetensors_metadata (st, "tokenizer"), ==,
                   tf_safetensors_metadata (model_st, "tokenizer"));
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, tf_safetensors_metadata (st, "examples"),
                                             -1, &error));
  JsonArray *examples = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (examples), ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      JsonObject *ex = json_array_get_object_element (examples, i);
      const char *caption = json_object_get_string_member (ex, "caption");
      JsonArray *ids = json_object_get_array_member (ex, "caption_ids");
      size_t n = 0;
      g_autofree int32_t *want = tf_tokenizer_encode (tok, caption, strlen (caption), &n);
      g_assert_cmpint (json_object_get_int_member (ex, "image"), ==, i);
      g_assert_cmpuint (json_array_get_length (ids), ==, n);
      for (size_t k = 0; k < n; k++)
        g_assert_cmpint (json_array_get_int_element (ids, k), ==, want[k]);
    }

  g_autofree char *wordnet = g_build_filename (out, "wordnet.safetensors", NULL);
  g_autoptr(TfSafetensors) text = tf_safetensors_open (wordnet, &error);
  g_assert_no_error (error);
  g_assert_null (tf_safetensors_find (text, "pixels"));
  g_assert_nonnull (strstr (tf_safetensors_metadata (text, "examples"), "\"text_ids\""));

  /* --export and --preview are two different things to do. */
  run_in_process (&r, "data", "--export", out, "--preview", shapes, NULL);
  g_assert_cmpint (r.status, ==, 2);
  cli_result_clear (&r);
  g_autofree char *no_tokenizer = tf_test_save_tiny_model (dir, NULL, NULL);
  run_in_process (&r, "data", "--data", "shapes", "--export", out, "--tokenizer", no_tokenizer,
                  NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "tokenizer"));
  cli_result_clear (&r);

  tf_test_remove_tree (dir);
}

/* ---- generate, caption, chat -------------------------------------------- */

/* The A1111 form, exactly: other tools parse it. */
static void
test_parameters_text (void)
{
  TfGenerateSettings settings;
  g_autofree char *plain = NULL, *negative = NULL, *empty = NULL;

  tf_generate_settings_init (&settings);
  settings.steps = 50;
  settings.cfg = 3;
  settings.seed = 1234567890123ull;
  plain = tf_png_parameters_text ("a red circle", &settings, 32, "default", "0123456789");
  g_assert_cmpstr (plain, ==,
                   "a red circle\n"
                   "Steps: 50, Sampler: DDPM, CFG scale: 3, Seed: 1234567890123, Size: 32x32, "
                   "Model: default, Model hash: 0123456789");

  settings.negative = "blue, blurry";
  settings.sampler = TF_SAMPLER_DDIM;
  settings.steps = 20;
  settings.cfg = 7.5;
  settings.seed = 0;
  negative = tf_png_parameters_text ("a cat\non a mat", &settings, 64, "my model", "abcdef0123");
  g_assert_cmpstr (negative, ==,
                   "a cat\non a mat\n"
                   "Negative prompt: blue, blurry\n"
                   "Steps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 0, Size: 64x64, "
                   "Model: my model, Model hash: abcdef0123");

  /* An empty negative prompt is no negative prompt, as in A1111. */
  settings.negative = "";
  empty = tf_png_parameters_text ("a cat", &settings, 64, "m", "h");
  g_assert_null (strstr (empty, "Negative"));
}

static void
test_default_model (void)
{
  g_autofree char *saved = g_strdup (g_getenv ("TRANSFUSION_MODEL"));
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  g_auto(GStrv) locations = NULL;
  g_autofree char *path = NULL;

  /* The override wins, even when it is wrong: loading it says so. */
  g_setenv ("TRANSFUSION_MODEL", "/nowhere/model.safetensors", TRUE);
  path = tf_default_model_path ();
  g_assert_cmpstr (path, ==, "/nowhere/model.safetensors");
  g_clear_pointer (&path, g_free);
  {
    CliResult r = { 0 };

    run_in_process (&r, "caption", "--image", "/nowhere/picture.png", NULL);
    g_assert_cmpint (r.status, ==, 1);
    g_assert_true (g_str_has_prefix (r.err, "transfusion-cli: /nowhere/picture.png: "));
    cli_result_clear (&r);

    run_in_process (&r, "generate", "--prompt", "x", "--out", out, NULL);
    g_assert_cmpint (r.status, ==, 1);
    g_assert_nonnull (strstr (r.err, "transfusion-cli: /nowhere/model.safetensors: "));
    g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
    cli_result_clear (&r);
  }

  g_unsetenv ("TRANSFUSION_MODEL");
  locations = tf_default_model_locations ();
  g_assert_cmpuint (g_strv_length (locations), ==, 2);
  g_assert_true (g_str_has_suffix (locations[0], "/resources/models/default.safetensors"));
  g_assert_true (g_str_has_suffix (locations[1], "/transfusion/models/default.safetensors"));
  path = tf_default_model_path ();
  if (path == NULL)
    {
      CliResult r = { 0 };

      run_in_process (&r, "chat", NULL);
      g_assert_cmpint (r.status, ==, 1);
      g_assert_nonnull (strstr (r.err, "no model given and no bundled model found (looked in "));
      g_assert_nonnull (strstr (r.err, locations[0]));
      g_assert_nonnull (strstr (r.err, "pass --model FILE"));
      cli_result_clear (&r);
    }
  else
    g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));

  if (saved != NULL)
    g_setenv ("TRANSFUSION_MODEL", saved, TRUE);
  tf_test_remove_tree (dir);
}

/* The first 10 hex digits of the file's SHA-256, computed here another way. */
static char *
expected_hash (const char *path)
{
  g_autofree char *contents = NULL;
  g_autofree char *sum = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, len);
  return g_strndup (sum, 10);
}

/* Whether the PNG at @path is 8-bit RGB (IHDR's bit depth and colour type). */
static gboolean
is_8bit_rgb_png (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return len > 26 && memcmp (contents + 12, "IHDR", 4) == 0 && contents[24] == 8 &&
         contents[25] == 2;
}

static void
test_generate_png (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  g_autofree char *big = g_build_filename (dir, "out-x3.png", NULL);
  g_autofree char *hash = expected_hash (model);
  g_autofree char *expected = NULL;
  g_autoptr(GHashTable) text = NULL;
  g_autoptr(GError) error = NULL;
  TfImage small = { 0 }, large = { 0 };
  CliResult r = { 0 };

  run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle", "--steps", "3",
                  "--cfg", "2.5", "--sampler", "ddim", "--seed", "7", "--out", out,
                  "--upscale", "3", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, out));
  g_assert_nonnull (strstr (r.out, big));
  /* Not a terminal: no bar, one line at the end; a given seed is not echoed. */
  g_assert_null (strstr (r.err, "\r"));
  g_assert_null (strstr (r.err, "seed"));
  g_assert_true (g_regex_match_simple ("^3 of 3 steps in [0-9.]+ s \\([0-9.]+ steps/s\\)\n$",
                                       r.err, 0, 0));
  cli_result_clear (&r);

  g_assert_true (is_8bit_rgb_png (out));
  g_assert_true (tf_image_read_png (out, &small, &error));
  g_assert_no_error (error);
  g_assert_cmpint (small.width, ==, 32);
  g_assert_cmpint (small.height, ==, 32);

  text = tf_image_read_png_text (out, &error);
  g_assert_no_error (error);
  expected = g_strdup_printf ("a red circle\nSteps: 3, Sampler: DDIM, CFG scale: 2.5, Seed: 7, "
                              "Size: 32x32, Model: tiny-text, Model hash: %s", hash);
  g_assert_cmpstr (g_hash_table_lookup (text, "parameters"), ==, expected);

  /* Nearest neighbour: each pixel is a crisp 3×3 block. */
  g_assert_true (tf_image_read_png (big, &large, &error));
  g_assert_no_error (error);
  g_assert_cmpint (large.width, ==, 96);
  g_assert_cmpint (large.height, ==, 96);
  for (int y = 0; y < 96; y++)
    for (int x = 0; x < 96; x++)
      g_assert_cmpmem (large.rgba + ((size_t) y * 96 + x) * 4, 4,
                       small.rgba + ((size_t) (y / 3) * 32 + x / 3) * 4, 4);
  tf_image_clear (&small);
  tf_image_clear (&large);

  /* Several on consecutive seeds (the web UI's batch count): FILE-1.png…,
   * the second the very image a single run with the next seed draws. */
  {
    g_autofree char *many = g_build_filename (dir, "many.png", NULL);
    g_autofree char *second = g_build_filename (dir, "many-2.png", NULL);
    g_autofree char *single = g_build_filename (dir, "single.png", NULL);
    TfImage a = { 0 }, b = { 0 };
    run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle", "--steps", "3",
                    "--seed", "7", "--count", "3", "--out", many, NULL);
    g_assert_cmpint (r.status, ==, 0);
    for (int i = 1; i <= 3; i++)
      {
        g_autofree char *name = g_strdup_printf ("many-%d.png", i);
        g_autofree char *path = g_build_filename (dir, name, NULL);
        g_autofree char *seed = g_strdup_printf (", Seed: %d, ", 6 + i);
        g_autoptr(GHashTable) params = tf_image_read_png_text (path, &error);
        g_assert_no_error (error);
        g_assert_nonnull (strstr (r.out, path));
        g_assert_nonnull (strstr (g_hash_table_lookup (params, "parameters"), seed));
      }
    g_assert_false (g_file_test (many, G_FILE_TEST_EXISTS));
    cli_result_clear (&r);
    run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle", "--steps", "3",
                    "--seed", "8", "--out", single, NULL);
    g_assert_cmpint (r.status, ==, 0);
    cli_result_clear (&r);
    g_assert_true (tf_image_read_png (second, &a, &error) && tf_image_read_png (single, &b, &error));
    g_assert_cmpmem (a.rgba, (size_t) a.width * a.height * 4, b.rgba, (size_t) b.width * b.height * 4);
    tf_image_clear (&a);
    tf_image_clear (&b);
    run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle", "--count", "2",
                    "--previews", dir, "--out", many, NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_nonnull (strstr (r.err, "leave out --count"));
    cli_result_clear (&r);
  }

  /* From a picture (img2img): half of the 4-step schedule, and the web UI's
   * "Denoising strength" in the parameters. */
  run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle", "--steps", "4",
                  "--seed", "7", "--init-image", big, "--strength", "0.5", "--out", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_regex_match_simple ("^2 of 2 steps in ", r.err, 0, 0));
  cli_result_clear (&r);
  {
    g_autoptr(GHashTable) i2i = tf_image_read_png_text (out, &error);
    g_assert_no_error (error);
    g_assert_true (g_str_has_suffix (g_hash_table_lookup (i2i, "parameters"),
                                     ", Denoising strength: 0.5"));
  }
  run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle",
                  "--init-image", big, "--strength", "1.5", "--out", out, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "denoising strength 1.5 is out of range"));
  cli_result_clear (&r);

  /* Without --seed, a random seed is printed and stored. */
  run_in_process (&r, "generate", "--model", model, "--prompt", "a red circle", "--steps", "2",
                  "--out", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  {
    g_autoptr(GMatchInfo) match = NULL;
    g_autoptr(GRegex) seed = g_regex_new ("^seed ([0-9]+) ", 0, 0, NULL);
    g_autofree char *number = NULL;
    g_autofree char *field = NULL;
    g_autoptr(GHashTable) again = NULL;

    g_assert_true (g_regex_match (seed, r.err, 0, &match));
    number = g_match_info_fetch (match, 1);
    field = g_strdup_printf (", Seed: %s, ", number);
    again = tf_image_read_png_text (out, &error);
    g_assert_no_error (error);
    g_assert_nonnull (strstr (g_hash_table_lookup (again, "parameters"), field));
  }
  cli_result_clear (&r);

  tf_test_remove_tree (dir);
}

static void
test_generate_previews (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  g_autofree char *every = g_build_filename (dir, "every", NULL);
  g_autofree char *some = g_build_filename (dir, "some", "deeper", NULL);
  g_autofree char *listing = NULL;
  g_autofree char *first = g_build_filename (every, "step-001.png", NULL);
  g_autoptr(GError) error = NULL;
  TfImage image = { 0 };
  CliResult r = { 0 };

  run_in_process (&r, "generate", "--model", model, "--prompt", "a star", "--steps", "4",
                  "--seed", "1", "--out", out, "--previews", every, NULL);
  g_assert_cmpint (r.status, ==, 0);
  cli_result_clear (&r);
  listing = tf_test_list_dir (every);
  g_assert_cmpstr (listing, ==, "step-001.png step-002.png step-003.png step-004.png");
  g_clear_pointer (&listing, g_free);
  g_assert_true (tf_image_read_png (first, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, 32);
  tf_image_clear (&image);

  /* Every 3rd, and always the last; the folder is made. */
  run_in_process (&r, "generate", "--model", model, "--prompt", "a star", "--steps", "4",
                  "--seed", "1", "--out", out, "--previews", some, "--preview-every", "3", NULL);
  g_assert_cmpint (r.status, ==, 0);
  cli_result_clear (&r);
  listing = tf_test_list_dir (some);
  g_assert_cmpstr (listing, ==, "step-003.png step-004.png");

  tf_test_remove_tree (dir);
}

/* Same model, prompt, settings and seed: the same bytes. */
static void
test_generate_deterministic (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  const char *names[] = { "a.png", "b.png", "c.png" };
  const char *seeds[] = { "42", "42", "43" };
  char *contents[3];
  gsize lengths[3];

  for (int i = 0; i < 3; i++)
    {
      g_autofree char *out = g_build_filename (dir, names[i], NULL);
      CliResult r = { 0 };

      run_program (&r, "generate", "--model", model, "--prompt", "a blue square",
                   "--negative", "red", "--steps", "3", "--seed", seeds[i], "--out", out, NULL);
      g_assert_cmpint (r.status, ==, 0);
      cli_result_clear (&r);
      g_assert_true (g_file_get_contents (out, &contents[i], &lengths[i], NULL));
    }
  g_assert_cmpmem (contents[0], lengths[0], contents[1], lengths[1]);
  g_assert_false (lengths[0] == lengths[2] && memcmp (contents[0], contents[2], lengths[0]) == 0);
  for (int i = 0; i < 3; i++)
    g_free (contents[i]);
  tf_test_remove_tree (dir);
}

/* --precision bf16: the same bytes for the same seed again, not fp32's;
 * the command says what ran; an unknown precision is a usage error. */
static void
test_generate_precision (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  const char *names[] = { "fp32.png", "bf16-a.png", "bf16-b.png" };
  const char *precisions[] = { "fp32", "bf16", "bf16" };
  char *contents[3];
  gsize lengths[3];

  for (int i = 0; i < 3; i++)
    {
      g_autofree char *out = g_build_filename (dir, names[i], NULL);
      CliResult r = { 0 };

      run_program (&r, "generate", "--model", model, "--prompt", "a blue square", "--steps", "3",
                   "--seed", "42", "--precision", precisions[i], "--out", out, NULL);
      g_assert_cmpint (r.status, ==, 0);
      if (i > 0)
        g_assert_nonnull (strstr (r.err, tf_gemm_bf16_native () ? "matrix products: bf16 (oneDNN)"
                                                                : "matrix products: bf16 (emulated)"));
      else
        g_assert_null (strstr (r.err, "matrix products"));
      cli_result_clear (&r);
      g_assert_true (g_file_get_contents (out, &contents[i], &lengths[i], NULL));
    }
  g_assert_cmpmem (contents[1], lengths[1], contents[2], lengths[2]);
  g_assert_false (lengths[0] == lengths[1] && memcmp (contents[0], contents[1], lengths[0]) == 0);
  for (int i = 0; i < 3; i++)
    g_free (contents[i]);

  CliResult r = { 0 };
  g_autofree char *out = g_build_filename (dir, "never.png", NULL);
  run_program (&r, "generate", "--model", model, "--prompt", "a blue square",
               "--precision", "fp16", "--out", out, NULL);
  g_assert_cmpint (r.status, ==, TF_CLI_EXIT_USAGE);
  g_assert_nonnull (strstr (r.err, "--precision: 'fp16' is not fp32, bf16 or auto"));
  cli_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  tf_test_remove_tree (dir);
}

static void
test_generate_bad_requests (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *no_tokenizer = tf_test_save_tiny_model (dir, NULL, NULL);
  g_autofree char *missing = g_build_filename (dir, "missing.safetensors", NULL);
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  g_autofree char *nowhere = g_build_filename (dir, "no-such-folder", "out.png", NULL);
  g_autofree char *listing = NULL;
  /* Wrong command lines: status 2, before the (missing) model is opened. */
  const struct {
    const char *flag, *value, *message;
  } usage[] = {
    { "--steps", "0", "steps 0 is out of range" },
    { "--steps", "20000", "steps 20000 is out of range" },
    { "--steps", "99999999999999", "--steps" },
    { "--cfg", "nan", "guidance scale" },
    { "--sampler", "euler", "--sampler: 'euler' is not ddpm or ddim" },
    { "--seed", "-1", "--seed" },
    { "--upscale", "1", "--upscale must be 2 to 32" },
    { "--preview-every", "0", "--preview-every" },
    { "--strength", "0.5", "--strength needs --init-image" },
    { "--count", "0", "--count must be 1 to 100" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (usage); i++)
    {
      CliResult r = { 0 };

      run_program (&r, "generate", "--model", missing, "--prompt", "x", "--out", out,
                   usage[i].flag, usage[i].value, NULL);
      if (r.status != 2 || strstr (r.err, usage[i].message) == NULL)
        g_test_message ("%s %s: status %d, stderr: %s", usage[i].flag, usage[i].value,
                        r.status, r.err);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_true (g_str_has_prefix (r.err, "transfusion-cli"));
      g_assert_nonnull (strstr (r.err, usage[i].message));
      g_assert_cmpstr (r.out, ==, "");
      cli_result_clear (&r);
    }

  {
    CliResult r = { 0 };

    run_in_process (&r, "generate", "--model", model, "--out", out, NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_nonnull (strstr (r.err, "no --prompt"));
    cli_result_clear (&r);

    run_in_process (&r, "generate", "--model", model, "--prompt", "x", NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_nonnull (strstr (r.err, "no --out"));
    cli_result_clear (&r);

    run_in_process (&r, "caption", "--model", model, NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_nonnull (strstr (r.err, "no --image"));
    cli_result_clear (&r);

    run_in_process (&r, "chat", "--model", model, "--top-p", "0", NULL);
    g_assert_cmpint (r.status, ==, 2);
    g_assert_nonnull (strstr (r.err, "top-p"));
    cli_result_clear (&r);
  }

  /* Bad files: status 1, "transfusion-cli: FILE: problem", nothing written. */
  const struct {
    const char *model, *out, *prefix;
  } files[] = {
    { missing, out, missing },
    { no_tokenizer, out, no_tokenizer },
    { model, nowhere, nowhere },
    { model, dir, dir },
  };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *prefix = g_strdup_printf ("transfusion-cli: %s: ", files[i].prefix);
      CliResult r = { 0 };

      run_program (&r, "generate", "--model", files[i].model, "--prompt", "x", "--steps", "2",
                   "--seed", "1", "--out", files[i].out, NULL);
      if (r.status != 1 || !g_str_has_prefix (r.err, prefix))
        g_test_message ("case %u: status %d, stderr: %s", i, r.status, r.err);
      g_assert_cmpint (r.status, ==, 1);
      g_assert_true (g_str_has_prefix (r.err, prefix));
      g_assert_cmpstr (r.out, ==, "");
      cli_result_clear (&r);
    }
  listing = tf_test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "tiny-text.safetensors tiny.safetensors");

  tf_test_remove_tree (dir);
}

/* Whether the child @pid has stopped (TRUE) or ended (FALSE), waiting for
 * one of the two; an ended child stays for GSubprocess to reap. */
static gboolean
child_stops (pid_t pid)
{
  siginfo_t info = { 0 };

  if (waitid (P_PID, pid, &info, WSTOPPED | WEXITED | WNOWAIT) != 0)
    {
      g_assert_cmpint (errno, ==, ECHILD);   /* already reaped: it ended */
      return FALSE;
    }
  return info.si_code == CLD_STOPPED;
}

/* Whether the child @pid has ended (it stays to be reaped). */
static gboolean
child_ended (pid_t pid)
{
  siginfo_t info = { 0 };

  return waitid (P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == pid;
}

/* Ctrl-C stops between steps: at most the step under way when it came is
 * finished, and the image is not written. The run is frozen (SIGSTOP) to
 * see how far it got, and the signal goes to its main thread, which runs
 * the steps: what is checked is then the same however the machine
 * schedules the two processes. */
static void
test_generate_interrupt (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  g_autofree char *previews = g_build_filename (dir, "previews", NULL);
  g_autofree char *first = g_build_filename (previews, "step-001.png", NULL);
  /* the tiny model's 1000 noise levels are as many steps as it takes */
  g_autofree char *last = g_build_filename (previews, "step-1000.png", NULL);
  const char *const argv[] = {
    "generate", "--model", model, "--prompt", "x", "--steps", "1000", "--seed", "1",
    "--out", out, "--previews", previews,
  };
  guint attempts = 0, frozen_at;
  CliResult r = { 0 };

  for (;;)
    {
      g_autoptr(GPtrArray) args = g_ptr_array_new ();
      g_autoptr(GSubprocess) proc = NULL;
      pid_t pid;

      for (guint i = 0; i < G_N_ELEMENTS (argv); i++)
        g_ptr_array_add (args, (char *) argv[i]);
      proc = spawn_program (args, FALSE);
      pid = (pid_t) g_ascii_strtoll (g_subprocess_get_identifier (proc), NULL, 10);
      attempts++;
      /* The first preview shows that it is stepping, with its handler for
       * Ctrl-C in place. No deadline: meson's timeout ends a hang. */
      while (!g_file_test (first, G_FILE_TEST_EXISTS) && !child_ended (pid))
        g_usleep (10000);
      kill (pid, SIGSTOP);
      if (child_stops (pid))
        {
          frozen_at = tf_test_count_files (previews, ".png");
          syscall (SYS_tgkill, pid, pid, SIGINT);
          kill (pid, SIGCONT);
          finish_program (&r, proc, NULL);
          break;
        }
      /* It made all its steps before this test came to stop it: there is
       * nothing to judge, so again. */
      finish_program (&r, proc, NULL);
      g_assert_cmpint (r.status, ==, 0);
      g_assert_true (g_file_test (last, G_FILE_TEST_EXISTS));
      cli_result_clear (&r);
      tf_test_remove_tree (previews);
      g_assert_cmpint (g_remove (out), ==, 0);
    }
  g_test_message ("stopped after %u of 1000 steps (attempt %u); %u previews in all", frozen_at,
                  attempts, tf_test_count_files (previews, ".png"));
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "transfusion-cli: stopped"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (last, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (tf_test_count_files (previews, ".png"), <=, frozen_at + 1);
  cli_result_clear (&r);
  tf_test_remove_tree (dir);
}

static void
test_caption (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *picture = g_build_filename (dir, "picture.png", NULL);
  g_autofree char *corrupt = g_build_filename (dir, "corrupt.png", NULL);
  g_autofree char *prefix = g_strdup_printf ("transfusion-cli: %s: ", corrupt);
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize len;
  uint8_t rgb[20 * 10 * 3];
  CliResult r = { 0 }, again = { 0 };

  /* Any PNG: not square, not the model's size. */
  for (guint i = 0; i < sizeof rgb; i++)
    rgb[i] = (uint8_t) (i * 7);
  g_assert_true (tf_image_write_png (picture, rgb, 20, 10, 3, NULL, NULL, &error));
  g_assert_no_error (error);

  run_in_process (&r, "caption", "--model", model, "--image", picture, "--seed", "3",
                  "--max-tokens", "12", NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_str_has_suffix (r.out, "\n"));
  g_assert_cmpint (strchr (r.out, '\n') - r.out, ==, strlen (r.out) - 1);
  run_in_process (&again, "caption", "--model", model, "--image", picture, "--seed", "3",
                  "--max-tokens", "12", NULL);
  g_assert_cmpstr (again.out, ==, r.out);
  cli_result_clear (&r);
  cli_result_clear (&again);

  /* A photo: JPEG, whatever its name says. */
  g_autoptr (GByteArray) jpeg = tf_test_encode_jpeg (rgb, 20, 10, 3, 90, 6, "MM");
  g_autofree char *photo = g_build_filename (dir, "photo.jpeg", NULL);
  tf_test_write_file (NULL, photo, jpeg->data, jpeg->len);
  run_in_process (&r, "caption", "--model", model, "--image", photo, "--max-tokens", "12", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_str_has_suffix (r.out, "\n"));
  /* greedy by default: no seed to tell, nothing on stderr */
  g_assert_cmpstr (r.err, ==, "");
  cli_result_clear (&r);

  /* A PNG cut short. */
  g_assert_true (g_file_get_contents (picture, &contents, &len, NULL));
  tf_test_write_file (NULL, corrupt, contents, (gssize) len / 2);
  run_program (&r, "caption", "--model", model, "--image", corrupt, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (g_str_has_prefix (r.err, prefix));
  g_assert_cmpstr (r.out, ==, "");
  cli_result_clear (&r);

  /* Not a picture at all. */
  tf_test_write_file (NULL, corrupt, "hello", -1);
  run_program (&r, "caption", "--model", model, "--image", corrupt, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (g_str_has_prefix (r.err, prefix));
  g_assert_nonnull (strstr (r.err, "not a PNG or JPEG file"));
  cli_result_clear (&r);

  tf_test_remove_tree (dir);
}

static guint
count_lines (const char *text)
{
  guint n = 0;

  for (const char *p = text; *p != '\0'; p++)
    n += *p == '\n';
  return n;
}

static void
test_chat (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 128);
  g_autofree char *images = g_build_filename (dir, "images", NULL);
  g_autofree char *picture = g_build_filename (dir, "picture.png", NULL);
  g_autofree char *input = NULL;
  g_autofree char *long_line = g_strnfill (600, 'a');
  g_autoptr(GError) error = NULL;
  uint8_t rgb[8 * 8 * 3] = { 0 };
  CliResult r = { 0 };

  g_assert_true (tf_image_write_png (picture, rgb, 8, 8, 3, NULL, NULL, &error));
  g_assert_no_error (error);

  /* Two messages, then EOF (sampled: greedy, this random model draws at once
   * and fills its 128 positions). */
  run_program_with_input (&r, "hello\nwhat is a dog?\n", "chat", "--model", model,
                          "--max-tokens", "6", "--steps", "2", "--seed", "5",
                          "--temperature", "0.8",
                          "--images", images, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_null (strstr (r.err, "transfusion-cli"));
  /* Not a terminal: no prompt; each reply ends its line. */
  g_assert_false (g_str_has_prefix (r.out, "> "));
  g_assert_cmpuint (count_lines (r.out), >=, 2);
  g_assert_true (g_str_has_suffix (r.out, "\n"));
  cli_result_clear (&r);

  /* Commands, a full context (the conversation goes on), /quit. */
  input = g_strdup_printf ("/image %s/nowhere.png\n"
                           "/image %s\n"
                           "what is this?\n"
                           "%s\n"
                           "/reset\n"
                           "/frobnicate\n"
                           "hi\n"
                           "/quit\n"
                           "never read\n", dir, picture, long_line);
  run_program_with_input (&r, input, "chat", "--model", model, "--max-tokens", "6",
                          "--steps", "2", "--seed", "5", "--images", images, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.err, "nowhere.png: could not read"));
  g_assert_nonnull (strstr (r.err, "attached"));
  g_assert_nonnull (strstr (r.err, "/reset to start a new conversation"));
  g_assert_nonnull (strstr (r.err, "unknown command '/frobnicate'"));
  g_assert_cmpuint (count_lines (r.out), >=, 2);
  cli_result_clear (&r);

  tf_test_remove_tree (dir);
}

/* The bundled model (when the tree has one) loads and does all three jobs. */
static void
test_bundled_model (void)
{
  g_autofree char *saved = g_strdup (g_getenv ("TRANSFUSION_MODEL"));
  g_unsetenv ("TRANSFUSION_MODEL");
  g_autofree char *path = tf_default_model_path ();
  if (path == NULL)
    {
      g_test_skip ("no bundled model in this tree");
      return;
    }
  g_autofree char *dir = tf_test_make_temp_dir ("test-cli-XXXXXX");
  g_autofree char *out = g_build_filename (dir, "bundled.png", NULL);
  CliResult r = { 0 };

  run_in_process (&r, "info", path, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "tokenizer"));
  cli_result_clear (&r);

  run_in_process (&r, "generate", "--prompt", "a sneaker", "--steps", "4", "--seed", "1",
                  "--out", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  cli_result_clear (&r);
  TfImage image = { 0 };
  g_autoptr(GError) error = NULL;
  g_assert_true (tf_image_read_png (out, &image, &error));
  g_assert_cmpint (image.width, ==, 32);
  tf_image_clear (&image);

  run_in_process (&r, "caption", "--image", out, "--max-tokens", "8", NULL);
  g_assert_cmpint (r.status, ==, 0);
  cli_result_clear (&r);

  if (saved != NULL)
    g_setenv ("TRANSFUSION_MODEL", saved, TRUE);
  tf_test_remove_tree (dir);
}

/* ---- bench ----------------------------------------------------------------- */

static double
positive_member (JsonObject *o, const char *part, const char *name)
{
  g_assert_true (json_object_has_member (o, part));
  JsonObject *p = json_object_get_object_member (o, part);
  if (!json_object_has_member (p, name))
    g_error ("bench JSON: %s has no %s", part, name);
  double v = json_object_get_double_member (p, name);
  if (!(isfinite (v) && v > 0))
    g_error ("bench JSON: %s.%s is %g", part, name, v);
  return v;
}

static void
test_bench (void)
{
  CliResult r = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();

  run_program (&r, "bench", "--preset", "tiny", "--repeat", "1", "--threads", "2", "--json",
               NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (json_parser_load_from_data (parser, r.out, -1, &error));
  g_assert_no_error (error);
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "preset"), ==, "tiny");
  g_assert_cmpint (json_object_get_int_member (o, "threads"), ==, 2);

  positive_member (o, "sgemm", "gflops_1");
  positive_member (o, "sgemm", "gflops_n");
  positive_member (o, "bandwidth", "gbps_1");
  double gbps = positive_member (o, "bandwidth", "gbps_n");

  /* The training figures agree with each other: 8 rows of 128 positions. */
  g_assert_cmpfloat (positive_member (o, "train", "batch"), ==, 8);
  g_assert_cmpfloat (positive_member (o, "train", "seq_len"), ==, 128);
  double ms = positive_member (o, "train", "ms_per_step");
  double tps = positive_member (o, "train", "tokens_per_second");
  g_assert_cmpfloat_with_epsilon (tps, 8 * 128 / (ms / 1e3), tps * 1e-6);
  double gflop = positive_member (o, "train", "gflop_per_step");
  g_assert_cmpfloat_with_epsilon (positive_member (o, "train", "gflops"), gflop / (ms / 1e3),
                                  gflop * 1e-3);
  positive_member (o, "train", "peak_rss_mb");

  /* [bos] + 14 prompt tokens + [boi]; 50 steps take longer than one. */
  g_assert_cmpfloat (positive_member (o, "image", "prefix_tokens"), ==, 16);
  g_assert_cmpfloat (positive_member (o, "image", "steps"), ==, 50);
  g_assert_cmpfloat (positive_member (o, "image", "seconds_per_image") * 1e3, >,
                     positive_member (o, "image", "ms_per_step"));
  positive_member (o, "image", "peak_rss_mb");

  /* Tiny's context holds the 64-token prompt and 64 more. */
  g_assert_cmpfloat (positive_member (o, "text", "decode_tokens"), ==, 64);
  positive_member (o, "text", "prefill_tokens_per_second");
  positive_member (o, "text", "decode_tokens_per_second");
  double bytes = positive_member (o, "text", "weight_bytes_per_token");
  g_assert_cmpfloat_with_epsilon (positive_member (o, "text", "bound_tokens_per_second"),
                                  gbps * 1e9 / bytes, 1e-3 * gbps * 1e9 / bytes);
  cli_result_clear (&r);

  /* The table names its parts and limits. */
  run_program (&r, "bench", "--preset", "tiny", "--repeat", "1", "--only", "train", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "training throughput"));
  g_assert_null (strstr (r.out, "decode"));
  cli_result_clear (&r);

  run_program (&r, "bench", "--preset", "huge", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "unknown preset 'huge'"));
  cli_result_clear (&r);

  /* A recipe on the preset: the U-Net's step, named in the table. */
  run_program (&r, "bench", "--preset", "tiny", "--repeat", "1", "--only", "train", "--recipe",
               "image_encoder=unet,unet_channels=4,unet_blocks=1", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "Recipe image_encoder=unet,unet_channels=4,unet_blocks=1"));
  g_assert_nonnull (strstr (r.out, "training step"));
  cli_result_clear (&r);

  /* and the conv encoder's */
  run_program (&r, "bench", "--preset", "tiny", "--repeat", "1", "--only", "train", "--recipe",
               "image_encoder=conv,conv_channels=4", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "Recipe image_encoder=conv,conv_channels=4"));
  cli_result_clear (&r);

  run_program (&r, "bench", "--preset", "tiny", "--recipe", "image_encoder=vae", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "'image_encoder' is 'vae', expected linear, unet or conv"));
  cli_result_clear (&r);
  run_program (&r, "bench", "--only", "train,warp", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "unknown part 'warp'"));
  cli_result_clear (&r);
  run_program (&r, "bench", "--repeat", "0", NULL);
  g_assert_cmpint (r.status, ==, 2);
  cli_result_clear (&r);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  /* The commands run in this process: threaded as the program's main sets
   * them (OpenBLAS's own threads, spinning beside the engine's, made the
   * tiny models' many small products 10× slower on a busy machine). */
  tf_configure_threads ();

  g_test_add_func ("/cli/version", test_version);
  g_test_add_func ("/cli/help", test_help);
  g_test_add_func ("/cli/usage-errors", test_usage_errors);
  g_test_add_func ("/cli/info/generated", test_info_generated);
  g_test_add_func ("/cli/info/golden", test_info_golden);
  g_test_add_func ("/cli/convert", test_convert);
  g_test_add_func ("/cli/info/bad-files", test_info_bad_files);
  g_test_add_func ("/cli/model-check-shared", test_model_check_shared);
  g_test_add_func ("/cli/data/preview", test_data_preview);
  g_test_add_func ("/cli/data/export", test_data_export);
  g_test_add_func ("/cli/generate/parameters-text", test_parameters_text);
  g_test_add_func ("/cli/generate/default-model", test_default_model);
  g_test_add_func ("/cli/bundled-model", test_bundled_model);
  g_test_add_func ("/cli/generate/png", test_generate_png);
  g_test_add_func ("/cli/generate/previews", test_generate_previews);
  g_test_add_func ("/cli/generate/deterministic", test_generate_deterministic);
  g_test_add_func ("/cli/generate/precision", test_generate_precision);
  g_test_add_func ("/cli/generate/bad-requests", test_generate_bad_requests);
  g_test_add_func ("/cli/generate/interrupt", test_generate_interrupt);
  g_test_add_func ("/cli/caption", test_caption);
  g_test_add_func ("/cli/chat", test_chat);
  g_test_add_func ("/cli/bench", test_bench);

  return g_test_run ();
}
